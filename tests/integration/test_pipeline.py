"""The pipeline: idempotency, dead letters, rejections that do not block a partition,
sync commands, and a SIGTERM in the middle of a stream."""
import json
import unittest
import uuid

import harness
from b2btest import B2bTestCase


class IdempotencyTest(B2bTestCase):

    def setUp(self):
        super().setUp()
        self.make_company()
        self.make_customer("cust-1")

    def test_duplicate_command_id_returns_the_stored_result(self):
        cmd = harness.command("assign", self.shop, self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.bus.send(cmd)
        self.bus.flush()
        first = self.bus.wait_result(cmd["command_id"])
        self.assertEqual(first["status"], "applied")
        cmd2 = dict(cmd, actor="someone-else", issued_at="2026-11-22T10:00:00Z")  # envelope only
        self.bus.send(cmd2)
        self.bus.flush()
        second = self.bus.wait_result(cmd["command_id"], nth=2)
        self.assertEqual(second, first, "the stored result, unchanged (same event_id)")
        self.assertEqual(len(self.access_events("cust-1")), 1, "applied once")

    def test_reused_command_id_with_another_payload_is_rejected(self):
        cid = str(uuid.uuid4())
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]), command_id=cid)
        r = self.rejected("assign", self.assign("cust-1", [("loc-1", "location_admin")]),
                          "IDEMPOTENCY_KEY_REUSED", command_id=cid)
        self.assertEqual(self.roles_in_db("cust-1"), [("loc-1", "ordering_only")], "the first command's effect stays")
        self.assertIsNone(r["result"])
        # another shop with the same command_id and the same payload: the hash covers
        # shop_id, so it is reused too, and it gets nothing of the first shop's result
        other = self.shop + "-b"
        self.make_company(shop=other)
        self.make_customer("cust-1", shop=other)
        r2 = self.rejected("assign", self.assign("cust-1", [("loc-1", "ordering_only")]),
                           "IDEMPOTENCY_KEY_REUSED", shop=other, command_id=cid)
        self.assertEqual((r2["shop_id"], r2["result"]), (other, None))
        self.assertEqual(self.roles_in_db("cust-1", shop=other), [], "nothing applied in the other shop")
        self.assertEqual(self.query("SELECT shop_id FROM commands WHERE command_id = %s", (cid,)), [(self.shop,)])

    def test_rejected_command_is_evaluated_afresh_when_sent_again(self):
        cid = str(uuid.uuid4())
        payload = self.assign("cust-1", [("loc-new", "ordering_only")])
        self.rejected("assign", payload, "NOT_FOUND", command_id=cid)
        self.make_company("c-1", ["loc-new"])  # the cause is fixed: the location exists now
        r = self.applied("assign", payload, command_id=cid)
        self.assertEqual(r["roles"], [{"location_id": "loc-new", "role": "ordering_only"}])

    def test_command_id_is_case_insensitive(self):
        cid = str(uuid.uuid4())
        payload = self.assign("cust-1", [("loc-1", "ordering_only")])
        first = self.run_cmd("assign", payload, command_id=cid)
        again = self.run_cmd("assign", payload, command_id=cid.upper())
        self.assertEqual(again["event_id"], first["event_id"])


class BadInputTest(B2bTestCase):

    DAEMON_ENV = {"B2BD_MAX_MESSAGE_BYTES": "65536"}

    def setUp(self):
        super().setUp()
        self.make_company()
        self.make_customer("cust-1")

    def dlq_for(self, offset_and_partition):
        part, off = offset_and_partition
        return self.bus.wait_for("dlq", lambda m: m[2].get("source.partition") == str(part)
                                 and m[2].get("source.offset") == str(off))

    def test_dead_letters_do_not_block_the_partition(self):
        topic = "commands.assign"
        bad = [(b"\xff\xfe garbage", "NOT_JSON"), (b"not json at all", "NOT_JSON"),
               (b'["an", "array"]', "NOT_A_COMMAND"), (b'{"type": "assign"}', "NOT_A_COMMAND"),
               (b'{"command_id": "not-a-uuid", "type": "assign"}', "NOT_A_COMMAND"),
               (b'{"command_id": 42}', "NOT_A_COMMAND"),
               (b'{"command_id": "' + str(uuid.uuid4()).encode() + b'", "pad": "' + b"x" * (100 * 1024) + b'"}',
                "TOO_LARGE")]
        for value, _ in bad:
            self.bus.send(value, topic_suffix=topic, key=self.shop + "/c-1", partition=0)
        good = harness.command("assign", self.shop, self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.bus.send(good, partition=0)
        self.bus.flush()
        self.assertEqual(self.bus.wait_result(good["command_id"])["status"], "applied")
        self.settle()
        dlq = [m for m in self.bus.read_to_end("dlq") if m[0] == self.shop + "/c-1"]
        self.assertEqual(len(dlq), len(bad))
        offsets = sorted(int(m[2]["source.offset"]) for m in dlq)
        for (value, code), m in zip(bad, sorted(dlq, key=lambda m: int(m[2]["source.offset"]))):
            self.assertEqual(m[2]["error.code"], code, m[2])
            self.assertTrue(m[2]["error.message"])
            self.assertEqual(m[2]["source.topic"], self.prefix + topic)
            self.assertEqual(m[2]["source.partition"], "0")
            self.assertEqual(m[0], self.shop + "/c-1", "the original key")
            raw = m[1] if isinstance(m[1], bytes) else json.dumps(m[1]).encode()
            if code == "NOT_JSON":
                self.assertEqual(raw, value, "the original bytes")
            if code == "TOO_LARGE":
                self.assertEqual(m[2]["source.size"], str(len(value)))
                self.assertEqual(m[2]["value.truncated"], "true")
                self.assertEqual(raw, value[:65536], "the start of the original bytes")
        self.assertEqual(offsets, sorted(set(offsets)))
        self.assertTrue(self.d.alive())

    def test_invalid_commands_get_rejected_results(self):
        cmd = harness.command("bogus.type", self.shop, {})
        self.bus.send(cmd, topic_suffix="commands.assign", key=self.shop)
        wrong = harness.command("customer.upsert", self.shop, {"customer_id": "x", "email": "x@example.com"})
        self.bus.send(wrong, topic_suffix="commands.assign", key=self.shop)
        noshop = harness.command("assign", "bad shop id!", self.assign("cust-1", []))
        self.bus.send(noshop)
        nopayload = {"command_id": str(uuid.uuid4()), "type": "assign", "shop_id": self.shop}
        self.bus.send(nopayload, topic_suffix="commands.assign", key=self.shop)
        self.bus.flush()
        r = self.bus.wait_result(cmd["command_id"])
        self.assertEqual((r["status"], r["error"]["code"], r["error"]["field"]), ("rejected", "UNKNOWN_TYPE", "type"))
        self.assertEqual(r["type"], "bogus.type")
        r = self.bus.wait_result(wrong["command_id"])
        self.assertEqual(r["error"]["code"], "WRONG_TOPIC")
        r = self.bus.wait_result(noshop["command_id"])
        self.assertEqual((r["error"]["code"], r["error"]["field"]), ("INVALID", "shop_id"))
        r = self.bus.wait_result(nopayload["command_id"])
        self.assertEqual((r["error"]["code"], r["error"]["field"]), ("INVALID", "payload"))
        self.assertEqual(self.query("SELECT count(*) FROM commands WHERE shop_id = %s", (self.shop,)), [(2,)],
                         "rejections record nothing")


class SyncTest(B2bTestCase):

    def test_shop_company_customer_order_upserts(self):
        r = self.applied("shop.upsert", {"name": "Shop", "account_url": "https://s.example/account",
                                         "from_email": "shop@s.example", "b2b_only": True})
        self.assertEqual(r["shop_id"], self.shop)
        self.assertEqual(self.query("SELECT name, b2b_only FROM shops WHERE shop_id = %s", (self.shop,)),
                         [("Shop", True)])
        r = self.applied("company.upsert", {"company_id": "c-1", "name": "A",
                                            "locations": [{"location_id": "l-1", "name": "One"}]})
        self.assertEqual(r["locations_added"], ["l-1"])
        r = self.applied("company.upsert", {"company_id": "c-1", "name": "A2",
                                            "locations": [{"location_id": "l-1", "name": "Uno"},
                                                          {"location_id": "l-2", "name": "Two"}]})
        self.assertEqual((r["locations_added"], r["locations_renamed"]), (["l-2"], ["l-1"]))
        self.applied("company.upsert", {"company_id": "c-1", "name": "A2", "locations": []})
        self.assertEqual(self.query("SELECT count(*) FROM locations WHERE shop_id = %s", (self.shop,)), [(2,)],
                         "locations are never removed by omission")
        self.applied("company.upsert", {"company_id": "c-2", "name": "B"})
        self.rejected("company.upsert", {"company_id": "c-2", "name": "B",
                                         "locations": [{"location_id": "l-1", "name": "stolen"}]},
                      "CONFLICT", "payload.locations[0].location_id")

        r = self.applied("customer.upsert", {"customer_id": "k-1", "email": "K@example.com", "tags": ["vip", "VIP", "x"]})
        self.assertTrue(r["created"])
        self.assertEqual(self.query("SELECT tags FROM customers WHERE shop_id = %s", (self.shop,)), [(["vip", "x"],)])
        self.rejected("customer.upsert", {"customer_id": "k-2", "email": "k@EXAMPLE.com"}, "CONFLICT", "payload.email")
        self.rejected("customer.upsert", {"customer_id": "k-2"}, "INVALID", "payload.email")

        r = self.applied("order.upsert", {"order_id": "o-1", "customer_id": "k-1", "status": "open",
                                          "placed_at": "2026-11-01T10:00:00Z", "total": "12.50", "currency": "EUR"})
        self.assertTrue(r["created"])
        r = self.applied("order.upsert", {"order_id": "o-1", "customer_id": "k-1", "status": "closed",
                                          "company_id": "c-1", "location_id": "l-2", "total": "13.00"})
        self.assertFalse(r["created"])
        self.assertEqual(self.query("SELECT status, company_id, location_id, total::text FROM orders"
                                    " WHERE shop_id = %s", (self.shop,)), [("closed", "c-1", "l-2", "13.00")])
        self.rejected("order.upsert", {"order_id": "o-2", "customer_id": "nobody", "status": "open"},
                      "NOT_FOUND", "payload.customer_id")
        self.rejected("order.upsert", {"order_id": "o-2", "customer_id": "k-1", "status": "open",
                                       "company_id": "c-2", "location_id": "l-1"},
                      "NOT_FOUND", "payload.location_id")
        self.rejected("order.upsert", {"order_id": "o-2", "customer_id": "k-1", "status": "shipped"},
                      "INVALID", "payload.status")
        self.rejected("order.upsert", {"order_id": "o-2", "customer_id": "k-1", "status": "open", "total": 12.5},
                      "INVALID", "payload.total")

    def test_email_change_of_a_contact_republishes_access(self):
        self.make_company()
        self.make_customer("k-1", email="old@example.com")
        self.applied("assign", self.assign("k-1", [("loc-1", "ordering_only")]))
        self.wait_access("k-1", 1)
        self.make_customer("k-1", email="new@example.com")
        ev = self.wait_access("k-1", 2)
        self.assertEqual(ev["email"], "new@example.com")


class StopTest(B2bTestCase):
    """SIGTERM in the middle of a stream, then a restart: each command has exactly one
    effect and one result (a repeat only as the same event_id)."""

    START_DAEMON = False

    def test_sigterm_mid_stream_then_restart(self):
        self.d = self.start_daemon()
        self.make_company("c-1", ["loc-1", "loc-2"])
        n = 1500
        cmds = [harness.command("assign", self.shop, self.assign({"email": "u%04d@example.com" % i},
                                                                 [("loc-%d" % (1 + i % 2), "ordering_only")]))
                for i in range(n)]
        for c in cmds:
            self.bus.send(c)
        self.bus.flush()
        # stop as soon as part of the stream has been applied: an assign's result (the
        # company's is on the topic already)
        ids = {c["command_id"] for c in cmds}
        self.bus.wait_for("results", lambda m: isinstance(m[1], dict) and m[1].get("command_id") in ids,
                          timeout=30)
        self.assertEqual(self.d.stop(), 0, "SIGTERM: exit 0")
        done_before = self.query("SELECT count(*) FROM commands WHERE shop_id = %s", (self.shop,))[0][0]
        # SIGTERM came while commands were in flight: some applied (the company sync and
        # at least one assign), not all
        self.assertGreater(done_before, 1, "no assign applied before SIGTERM")
        self.assertLess(done_before, n + 1, "the whole stream was applied before SIGTERM")
        self.start_daemon()
        results = self.bus.wait_results([c["command_id"] for c in cmds], timeout=120)
        self.assertTrue(all(r["status"] == "applied" for r in results))
        self.assertEqual(self.query("SELECT count(*) FROM contacts WHERE shop_id = %s", (self.shop,)), [(n,)])
        self.assertEqual(self.query("SELECT contact_count FROM companies WHERE shop_id = %s", (self.shop,)), [(n,)])
        self.assertEqual(self.query("SELECT count(*) FROM commands WHERE shop_id = %s", (self.shop,)), [(n + 1,)])
        self.settle()
        by_cmd = {}
        for m in self.bus.read_to_end("results"):
            by_cmd.setdefault(m[1]["command_id"], set()).add(m[1]["event_id"])
        self.assertTrue(all(len(v) == 1 for v in by_cmd.values()), "one result per command")
        versions = {}
        for m in self.bus.read_to_end("events.access"):
            versions.setdefault(m[1]["customer_id"], []).append(m[1]["version"])
        self.assertEqual(len(versions), n)
        self.assertTrue(all(sorted(set(v)) == [1] for v in versions.values()))
        self.assertEqual(self.query("SELECT count(*) FROM outbox"), [(0,)], "everything published")


if __name__ == "__main__":
    unittest.main()
