"""Dry runs (CONTRACT.md, "Trace context and dry runs") through Kafka and PostgreSQL: a dry
run of assign, revoke, migrate, suspend and resume gets the result the command would get,
marked "dry_run": true, and leaves nothing behind (rows, versions, history, the inbox, the
outbox's sequence, access events); the same command_id then applies for real; a dry run of
an applied command_id gets the stored result; each dry run is judged without the others,
one by one and in a set-based run."""
import unittest

import harness
from b2btest import B2bTestCase, wait_until

DRY_TYPES = ("assign", "revoke", "migrate", "suspend", "resume")


class DryRunBase(B2bTestCase):

    def world(self):
        self.make_company("c-1", ["loc-1", "loc-2"])
        self.make_customer("cust-1")
        self.make_customer("cust-2")

    def snapshot(self):
        """Everything of the shop that a command may change, and the outbox's sequence."""
        q = [
            "SELECT customer_id, email, access_version FROM customers WHERE shop_id = %s ORDER BY 1",
            "SELECT company_id, customer_id, suspended FROM contacts WHERE shop_id = %s ORDER BY 1, 2",
            "SELECT company_id, location_id, customer_id, role FROM roles WHERE shop_id = %s ORDER BY 1, 2, 3",
            "SELECT company_id, contact_count, suspended FROM companies WHERE shop_id = %s ORDER BY 1",
            "SELECT command_id::text, type FROM commands WHERE shop_id = %s ORDER BY 1",
            "SELECT customer_id, version, companies::text FROM access_history WHERE shop_id = %s ORDER BY 1, 2",
            "SELECT order_id, company_id, location_id FROM orders WHERE shop_id = %s ORDER BY 1",
            "SELECT company_id, customer_id, location_id FROM order_migrations WHERE shop_id = %s ORDER BY 1, 2",
            "SELECT count(*) FROM notifications WHERE shop_id = %s",
        ]
        return [self.query(s, (self.shop,)) for s in q]

    def outbox_ids(self):
        """The outbox sequence's position (nextval's last value, or 0 before any)."""
        last, called = self.query("SELECT last_value, is_called FROM outbox_id_seq")[0]
        return last if called else last - 1

    def dry(self, type, payload, **kw):
        r = self.run_cmd(type, payload, dry_run=True, **kw)
        self.assertIs(r.get("dry_run"), True, r)
        return r

    def events_caused_by(self, ids):
        self.settle()
        return [m[1] for m in self.bus.read_to_end("events.access")
                if isinstance(m[1], dict) and m[1].get("caused_by") in ids]


class DryRunTest(DryRunBase):

    def setUp(self):
        super().setUp()
        self.world()
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.settle()

    def check_then_real(self, type, payload):
        """A dry run leaves nothing; the same command_id then applied for real gets the same
        outcome (status, result or error), without the mark; a dry run of it afterwards
        gets the stored result."""
        before, ids = self.snapshot(), self.outbox_ids()
        d = self.dry(type, payload)
        self.settle()
        self.assertEqual(self.snapshot(), before, "the dry run of %s left something: %s" % (type, d))
        # its result and the settle marker's: no id taken by anything undone
        self.assertEqual(self.outbox_ids() - ids, 2, "outbox ids taken by the dry run of %s" % type)
        self.assertEqual(self.events_caused_by({d["command_id"]}), [])
        real = self.run_cmd(type, payload, command_id=d["command_id"])
        self.assertNotIn("dry_run", real)
        for k in ("status", "result", "error", "command_id", "type", "shop_id"):
            self.assertEqual(d[k], real[k], "%s: the dry run said %s, the command got %s" % (k, d, real))
        again = self.run_cmd(type, payload, command_id=d["command_id"], dry_run=True)
        if real["status"] == "applied":
            self.assertEqual(again, real, "a dry run of an applied command_id gets the stored result")
        else:  # a rejection is not stored: judged again
            self.assertEqual((again["dry_run"], again["error"]), (True, real["error"]), again)
        return d, real

    def test_each_type_judged_then_undone_then_applied_for_real(self):
        d, _ = self.check_then_real("assign", self.assign({"email": "New.Person@Example.com"},
                                                          [("loc-2", "location_admin")]))
        self.assertEqual((d["status"], d["result"]["customer_created"], d["result"]["contact_created"]),
                         ("applied", True, True), d)
        d, _ = self.check_then_real("assign", self.assign("cust-1", [("loc-2", "ordering_only")]))
        self.assertEqual(d["result"]["roles"], [{"location_id": "loc-1", "role": "ordering_only"},
                                                {"location_id": "loc-2", "role": "ordering_only"}])
        self.applied("order.upsert", {"order_id": "o-1", "customer_id": "cust-1", "status": "open",
                                      "company_id": None, "location_id": None, "total": "1.00",
                                      "currency": "EUR"})
        d, _ = self.check_then_real("migrate", {"company_id": "c-1", "location_id": "loc-1",
                                                "customer_id": "cust-1"})
        self.assertEqual(d["status"], "applied", d)
        d, _ = self.check_then_real("suspend", {"company_id": "c-1", "customer_id": "cust-1"})
        self.assertEqual(d["result"]["changed"], True, d)
        d, _ = self.check_then_real("resume", {"company_id": "c-1", "customer_id": "cust-1"})
        self.assertEqual(d["result"]["changed"], True, d)
        contacts = self.query("SELECT count(*) FROM contacts WHERE shop_id = %s AND company_id = 'c-1'",
                              (self.shop,))[0][0]
        d, _ = self.check_then_real("suspend", {"company_id": "c-1"})
        self.assertEqual(d["result"]["customers_affected"], contacts, d)
        d, _ = self.check_then_real("resume", {"company_id": "c-1"})
        d, _ = self.check_then_real("revoke", {"company_id": "c-1", "customer_id": "cust-1", "scope": "company"})
        self.assertEqual(d["status"], "applied", d)
        # a rejection: judged as the real one, marked too
        d, _ = self.check_then_real("assign", self.assign("cust-2", [("loc-404", "ordering_only")]))
        self.assertEqual((d["status"], d["error"]["code"], d["error"]["field"]),
                         ("rejected", "NOT_FOUND", "payload.locations[0].location_id"), d)
        d, _ = self.check_then_real("revoke", {"company_id": "c-1", "customer_id": "cust-2", "scope": "company"})
        self.assertEqual(d["error"]["code"], "NOT_A_CONTACT", d)
        self.check_schemas()

    def test_each_dry_run_judged_without_the_others(self):
        # a dry suspend is undone: a dry resume after it finds nothing suspended
        s = self.dry("suspend", {"company_id": "c-1"})
        r = self.dry("resume", {"company_id": "c-1"})
        self.assertEqual((s["result"]["changed"], r["result"]["changed"]), (True, False))
        # a repeated dry run is judged again: a result each time, with its own event
        cmd = harness.command("assign", self.shop, self.assign({"email": "twice@example.com"}, []), dry_run=True)
        self.bus.send(cmd)
        self.bus.flush()
        a = self.bus.wait_result(cmd["command_id"])
        self.bus.send(cmd)
        self.bus.flush()
        b = self.bus.wait_result(cmd["command_id"], nth=2)
        self.assertEqual((a["dry_run"], b["dry_run"], a["result"], a["status"]),
                         (True, True, b["result"], "applied"))
        self.assertNotEqual(a["event_id"], b["event_id"])
        self.assertEqual(self.query("SELECT count(*) FROM customers WHERE shop_id = %s AND email = %s",
                                    (self.shop, "twice@example.com")), [(0,)])

    def test_dry_run_field_checked(self):
        r = self.rejected("assign", self.assign("cust-2", []), "INVALID", "dry_run", dry_run="yes")
        self.assertNotIn("dry_run", r)
        self.rejected("company.upsert", {"company_id": "c-9", "name": "n", "locations": []}, "INVALID",
                      "dry_run", dry_run=True)
        # false and null: a command like any other
        self.assertEqual(self.run_cmd("assign", self.assign("cust-2", []), dry_run=False)["status"], "applied")
        self.assertEqual(self.query("SELECT count(*) FROM contacts WHERE shop_id = %s AND customer_id = 'cust-2'",
                                    (self.shop,)), [(1,)])
        # a dry run that its payload makes invalid: the rejection, marked
        r = self.run_cmd("assign", {"company_id": "c-1", "locations": []}, dry_run=True)
        self.assertEqual((r["status"], r["error"]["code"], r.get("dry_run")), ("rejected", "INVALID", True), r)
        m = self.d.metrics()
        self.assertGreaterEqual(m.get("b2bd_commands_dry_run_total"), 1.0)


class DryRunBulkTest(DryRunBase):
    """A run of dry-run assigns in one batch, set-based (b2bd_assign_bulk) or one by one:
    each judged alone, so a company with two seats left takes every dry run, and the
    same commands for real take two."""
    START_DAEMON = False

    def one_batch(self, cmds, bulk, nth=1):
        for c in cmds:
            self.bus.send(c, topic_suffix="commands.bulk")
        self.bus.flush()
        d = self.start_daemon(extra_env={"B2BD_BULK_ASSIGN": bulk, "B2BD_BATCH_LINGER_MS": "200",
                                         "B2BD_HTTP_LISTEN": "127.0.0.1:0"})
        results = [self.bus.wait_result(c["command_id"], timeout=60, nth=nth) for c in cmds]
        # a batch is counted once all its workers are done, which can be after its results
        # went out: wait until every command sent is counted in some batch
        wait_until(lambda: d.metrics().total("b2bd_batch_size_messages_sum") >= len(cmds), timeout=10,
                   what="every command counted in a batch")
        m = d.metrics()
        d.stop()
        return results, m

    def test_run_of_dry_runs_each_alone(self):
        for bulk in ("on", "off"):
            with self.subTest(bulk_assign=bulk):
                self.shop = harness.unique_name("shop-")
                self.d = self.start_daemon()
                self.world()
                self.settle()
                self.d.stop()
                self.query("UPDATE companies SET contact_count = 9998 WHERE shop_id = %s", (self.shop,))
                before, ids = self.snapshot(), self.outbox_ids()
                cmds = [harness.command("assign", self.shop,
                                        self.assign({"email": "p%d@example.com" % i}, [("loc-1", "ordering_only")]),
                                        dry_run=True) for i in range(6)]
                results, m = self.one_batch(cmds, bulk)
                self.assertEqual([(r["status"], r.get("dry_run")) for r in results], [("applied", True)] * 6)
                self.assertEqual(m.get("b2bd_apply_bulk_commands_total"), 6.0 if bulk == "on" else 0.0)
                self.assertEqual(m.get("b2bd_commands_dry_run_total"), 6.0)
                self.assertEqual(self.snapshot(), before)
                self.assertEqual(self.outbox_ids() - ids, 6, "outbox ids taken by what was undone")
                self.assertEqual(self.events_caused_by({c["command_id"] for c in cmds}), [])
                # the same commands for real: two seats
                for c in cmds:
                    del c["dry_run"]
                results, m = self.one_batch(cmds, bulk, nth=2)
                self.assertEqual([r["status"] for r in results], ["applied"] * 2 + ["rejected"] * 4)
                self.assertEqual({r["error"]["code"] for r in results[2:]}, {"LIMIT_REACHED"})
                self.assertTrue(all("dry_run" not in r for r in results))
                self.assertEqual(m.get("b2bd_apply_bulk_commands_total"), 6.0 if bulk == "on" else 0.0)


if __name__ == "__main__":
    unittest.main()
