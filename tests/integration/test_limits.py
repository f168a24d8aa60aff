"""No result or access event over max_message_bytes (CONTRACT.md, "Limits and failures"):
a command whose result or access event would be larger is rejected LIMIT_REACHED with
the field of the list that makes it large, and changes nothing; the next command on its
partition applies, and the relay never parks a message (outbox_parked stays empty).
A notify's customer_ids are looked up in one statement: 100,000 unknown ids are
answered within seconds."""
import json
import time

from confluent_kafka import Producer

import harness
from b2btest import B2bTestCase

SMALL_LIMIT = 65536


def short_ids(n, prefix=""):
    """n distinct short ids (base 36)."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = []
    for i in range(n):
        s = ""
        while True:
            i, r = divmod(i, 36)
            s = digits[r] + s
            if i == 0:
                break
        out.append(prefix + s)
    return out


class LimitBase(B2bTestCase):

    def parked(self):
        return self.query("SELECT count(*) FROM outbox_parked")[0][0]

    def assertNothingParked(self):
        # the relay has published everything written so far, or parked it
        deadline = time.time() + 30
        while self.query("SELECT count(*) FROM outbox")[0][0] and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.query("SELECT count(*) FROM outbox")[0][0], 0)
        self.assertEqual(self.parked(), 0, "outbox_parked received a message")

    def send_raw(self, cmd):
        """Sends a command as compact JSON (the contract allows any spacing)."""
        self.bus.send(json.dumps(cmd, separators=(",", ":")).encode(),
                      topic_suffix=harness.topic_for(cmd["type"]), key=harness.key_for(cmd))
        self.bus.flush()

    def result_size(self, r):
        return len(json.dumps(r, separators=(",", ":")).encode())


class SmallLimitTest(LimitBase):
    """A daemon with max_message_bytes = 64 KiB, so that a few contacts make a result
    too large."""

    DAEMON_ENV = {"B2BD_MAX_MESSAGE_BYTES": str(SMALL_LIMIT)}

    def setUp(self):
        super().setUp()
        self.make_company("c-1", ["loc-1", "loc-2"])

    def make_contacts(self, n):
        ids = ["p%03d" % i for i in range(n)]
        ups = [self.command("customer.upsert", {"customer_id": c, "email": c + "@example.com",
                                                "first_name": "F" + c}) for c in ids]
        self.run_cmds(ups)
        self.run_cmds([self.command("assign", self.assign(c, [("loc-1", "ordering_only")])) for c in ids])
        return ids

    def big_template(self, text_bytes):
        self.applied("template.update", {"subject": "Hello {{customer.first_name}}",
                                         "text": "{{customer.first_name}} " + "t" * text_bytes,
                                         "html": "<p>{{customer.first_name}}</p>"})

    def test_preview_over_the_limit_is_limit_reached(self):
        ids = self.make_contacts(16)
        self.big_template(5000)  # a preview of about 5 KB each: 16 make 80 KB
        few = self.applied("notify", {"company_id": "c-1", "customer_ids": ids[:4], "preview": True})
        self.assertEqual([p["customer_id"] for p in few["previews"]], ids[:4])
        self.assertEqual(few["skipped"], [])
        r = self.rejected("notify", {"company_id": "c-1", "customer_ids": ids + ["ghost"], "preview": True},
                          "LIMIT_REACHED", "payload.customer_ids")
        self.assertIn(str(SMALL_LIMIT), r["error"]["message"])
        self.assertLess(self.result_size(r), SMALL_LIMIT)
        # the next command on the partition (same key) applies
        after = self.applied("notify", {"company_id": "c-1", "customer_ids": ids[:2], "preview": True})
        self.assertEqual(len(after["previews"]), 2)
        self.assertEqual(self.query("SELECT count(*) FROM notifications WHERE shop_id = %s", (self.shop,)),
                         [(0,)])
        self.assertNothingParked()

    def test_queued_then_too_large_queues_nothing(self):
        """Contacts first (their emails are rendered and queued), then enough unknown ids
        that the skipped list is over the limit: LIMIT_REACHED, and no notification row."""
        ids = self.make_contacts(3)
        ghosts = short_ids(8000, "g")  # 8,000 skipped entries of about 45 bytes
        cmd = self.command("notify", {"company_id": "c-1", "customer_ids": ids + ghosts})
        self.assertLess(len(json.dumps(cmd, separators=(",", ":"))), SMALL_LIMIT - 1000)
        self.send_raw(cmd)
        r = self.bus.wait_result(cmd["command_id"])
        self.assertEqual((r["status"], r["error"]["code"], r["error"]["field"]),
                         ("rejected", "LIMIT_REACHED", "payload.customer_ids"), r)
        self.assertEqual(self.query("SELECT count(*) FROM notifications WHERE shop_id = %s", (self.shop,)),
                         [(0,)])
        self.assertEqual(self.query("SELECT count(*) FROM commands WHERE command_id = %s",
                                    (cmd["command_id"],)), [(0,)])
        # within the limit: applied, the shapes of the contract, in list order
        ok = self.applied("notify", {"company_id": "c-1", "customer_ids": ids + ghosts[:50]})
        self.assertEqual([q["customer_id"] for q in ok["queued"]], ids)
        self.assertEqual(ok["skipped"], [{"customer_id": g, "reason": "NOT_FOUND"} for g in ghosts[:50]])
        self.assertEqual(self.query("SELECT count(*) FROM notifications WHERE shop_id = %s", (self.shop,)),
                         [(3,)])
        self.assertNothingParked()

    def test_a_result_at_the_limit_to_the_byte(self):
        """A result whose key and value take max_message_bytes less the 256 bytes of
        framing room, to the byte, is applied; one byte more is LIMIT_REACHED on
        payload.customer_ids. The sizes are the published bytes (the inbox keeps the
        result as published)."""
        contact = self.make_contacts(1)

        def ghost(i, length=100):
            s = "g%03d-" % i
            return s + "x" * (length - len(s))

        def size(ghosts):
            cmd = self.command("notify", {"company_id": "c-1", "customer_ids": contact + ghosts,
                                          "preview": True})
            self.send_raw(cmd)
            r = self.bus.wait_result(cmd["command_id"])
            key = harness.key_for(cmd)
            key_len = len(key.encode() if isinstance(key, str) else key)
            if r["status"] != "applied":
                return r, None
            stored = self.query("SELECT octet_length(result) FROM commands WHERE command_id = %s",
                                (cmd["command_id"],))[0][0]
            return r, key_len + stored

        _, s1 = size([ghost(i) for i in range(300)])
        _, s2 = size([ghost(i) for i in range(301)])
        each = s2 - s1  # one more skipped entry of a 100-character id
        base = s1 - 300 * each
        target = SMALL_LIMIT - 256
        n = (target - base) // each
        rest = target - base - n * each  # made up by the last id's length
        self.assertLessEqual(100 + rest + 1, 255)
        at, s = size([ghost(i) for i in range(n - 1)] + [ghost(n - 1, 100 + rest)])
        self.assertEqual(at["status"], "applied", at)
        self.assertEqual(s, target)
        over, _ = size([ghost(i) for i in range(n - 1)] + [ghost(n - 1, 100 + rest + 1)])
        self.assertEqual((over["status"], over["error"]["code"], over["error"]["field"]),
                         ("rejected", "LIMIT_REACHED", "payload.customer_ids"), over)
        self.assertNothingParked()

    def test_access_event_over_the_limit(self):
        """A customer in five companies of 60 locations with 200-character ids: the access
        event of the fifth assign (all companies) would be about 73 KB. Its result (this
        company's roles, 15 KB) would fit: the access event is what refuses it."""
        long = lambda s: s + "-" + "x" * (200 - len(s) - 1)
        companies = [long("co%d" % k) for k in range(5)]
        for co in companies:
            self.applied("company.upsert", {"company_id": co, "name": "C",
                                            "locations": [{"location_id": long("%s-l%d" % (co[:3], i)), "name": "L"}
                                                          for i in range(60)]})
        self.make_customer("big")
        self.make_customer("other-1")
        self.make_customer("other-2")

        def assign(customer, co, n=60):
            return self.assign(customer, [(long("%s-l%d" % (co[:3], i)), "ordering_only") for i in range(n)],
                               company=co)
        for co in companies[:4]:
            self.applied("assign", assign("big", co))
        ev = self.wait_access("big", 4)
        self.assertGreater(self.result_size(ev), 55000)
        self.assertLess(self.result_size(ev), SMALL_LIMIT)
        # one by one
        self.rejected("assign", assign("big", companies[4]), "LIMIT_REACHED", "payload.locations")
        self.assertEqual(self.roles_in_db("big", companies[4]), [])
        self.assertEqual(self.query("SELECT count(*) FROM contacts WHERE shop_id = %s AND customer_id = 'big'",
                                    (self.shop,)), [(4,)])
        # in a run of plain assigns (the set-based path hands the run back, one by one)
        run = [self.command("assign", assign("other-1", companies[4], 2)),
               self.command("assign", assign("big", companies[4])),
               self.command("assign", assign("other-2", companies[4], 2))]
        got = self.run_cmds(run)
        self.assertEqual([g["status"] for g in got], ["applied", "rejected", "applied"], got)
        self.assertEqual((got[1]["error"]["code"], got[1]["error"]["field"]), ("LIMIT_REACHED", "payload.locations"))
        self.assertEqual(self.query("SELECT access_version FROM customers WHERE shop_id = %s AND customer_id = 'big'",
                                    (self.shop,)), [(4,)])
        # a smaller change of the same customer still applies
        self.applied("assign", assign("big", companies[4], 2))
        self.assertEqual(self.wait_access("big", 5)["version"], 5)
        self.assertNothingParked()

    def test_migrate_of_a_long_history(self):
        """A migrate whose order list would make the result too large: LIMIT_REACHED on
        payload.customer_id (the customer's history is the list), no order moves."""
        self.make_customer("hist")
        self.applied("assign", self.assign("hist", [("loc-1", "ordering_only")]))
        orders = ["o-%03d-%s" % (i, "y" * 190) for i in range(200)]  # 200 ids of 196 bytes, listed twice
        self.run_cmds([self.command("order.upsert", {"order_id": o, "customer_id": "hist", "status": "open"})
                       for o in orders])
        self.rejected("migrate", {"company_id": "c-1", "location_id": "loc-1", "customer_id": "hist"},
                      "LIMIT_REACHED", "payload.customer_id")
        self.assertEqual(self.query("SELECT count(*) FROM orders WHERE shop_id = %s AND company_id IS NULL",
                                    (self.shop,)), [(200,)])
        self.assertEqual(self.query("SELECT count(*) FROM order_migrations WHERE shop_id = %s", (self.shop,)),
                         [(0,)])
        self.assertNothingParked()


class DefaultLimitTest(LimitBase):
    """The default limit (1 MiB), and notify lists of many ids."""

    def setUp(self):
        super().setUp()
        self.make_company("c-1", ["loc-1"])
        self.make_customer("cust-1")
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))

    def timed(self, cmd):
        start = time.monotonic()
        self.send_raw(cmd)
        r = self.bus.wait_result(cmd["command_id"], timeout=120)
        return r, time.monotonic() - start

    def test_hundred_thousand_unknown_ids(self):
        """100,000 ids of at most 4 characters: a 0.7 MB command (it fits 1 MiB); their
        skipped entries would be 4.4 MB: LIMIT_REACHED on payload.customer_ids, within a
        bound (one lookup for all of them)."""
        ids = short_ids(100000, "")
        cmd = self.command("notify", {"company_id": "c-1", "customer_ids": ids, "preview": True})
        self.assertLess(len(json.dumps(cmd, separators=(",", ":"))), 1000000)
        r, seconds = self.timed(cmd)
        print("\n100,000 unknown ids: %.2f s" % seconds)
        self.assertEqual((r["status"], r["error"]["code"], r["error"]["field"]),
                         ("rejected", "LIMIT_REACHED", "payload.customer_ids"), r)
        self.assertLess(seconds, 30)
        self.assertNothingParked()

    def test_a_result_just_under_the_limit(self):
        """22,400 ids (a contact among them) fit in one result of about 1.03 MB: over
        librdkafka's default message.max.bytes (1,000,000), under 1 MiB less the framing
        room. Every one answered, in list order, with its reason; published, not parked."""
        ids = short_ids(22400, "uuu")
        ids[12345] = "cust-1"
        cmd = self.command("notify", {"company_id": "c-1", "customer_ids": ids, "preview": True})
        r, seconds = self.timed(cmd)
        print("\n22,400 ids, one result: %.2f s" % seconds)
        self.assertEqual(r["status"], "applied", r)
        self.assertGreater(self.result_size(r), 1000000)
        self.assertLess(self.result_size(r), 1048576 - 256)
        self.assertEqual([p["customer_id"] for p in r["result"]["previews"]], ["cust-1"])
        skipped = r["result"]["skipped"]
        self.assertEqual([s["customer_id"] for s in skipped], ids[:12345] + ids[12346:])
        self.assertEqual({s["reason"] for s in skipped}, {"NOT_FOUND"})
        self.assertLess(seconds, 30)
        self.assertNothingParked()

    def test_dead_letter_just_under_the_limit(self):
        """A message that is not JSON, just under 1 MiB: not TOO_LARGE, but with its
        headers over the limit: its dead letter keeps its first 64 KiB."""
        value = b"\xff" + b"x" * (1048576 - 100)
        p = Producer({"bootstrap.servers": harness.env()["B2BD_KAFKA_BOOTSTRAP"],
                      "message.max.bytes": 2000000, "message.timeout.ms": 30000})
        p.produce(self.prefix + "commands.notify", key=(self.shop + "/c-1").encode(), value=value, partition=1)
        self.assertEqual(p.flush(30), 0)
        m = self.bus.wait_for("dlq", lambda m: m[2].get("source.partition") == "1", timeout=60)
        self.assertEqual(m[2]["error.code"], "NOT_JSON")
        self.assertEqual((m[2]["source.size"], m[2]["value.truncated"]), (str(len(value)), "true"))
        self.assertEqual(m[1], value[:65536])
        self.assertNothingParked()


if __name__ == "__main__":
    import unittest
    unittest.main()
