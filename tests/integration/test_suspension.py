"""suspend and resume (CONTRACT.md, "Suspension") through Kafka and PostgreSQL: the
company's and the contact's suspension, their access events and results, bad input, and
how every other command behaves while a company or a contact is suspended."""
import sys
import time
import unittest

import harness
from b2btest import B2bTestCase, wait_until


class SuspensionBase(B2bTestCase):

    def setUp(self):
        super().setUp()
        self.make_company("c-1", ["loc-1", "loc-2"])
        self.make_company("c-2", ["loc-x"])
        for c in ("cust-1", "cust-2", "cust-3"):
            self.make_customer(c)

    def sus(self, company="c-1", customer=None):
        p = {"company_id": company}
        if customer is not None:
            p["customer_id"] = customer
        return p

    def last_event(self, customer):
        evs = self.access_events(customer)
        return evs[-1] if evs else None

    def entry(self, ev, company="c-1"):
        return [c for c in ev["companies"] if c["company_id"] == company][0]

    def versions(self, customer):
        return [e["version"] for e in self.access_events(customer)]


class SuspendTest(SuspensionBase):

    def test_company_suspend_keeps_roles_and_seats_and_resume_gives_them_back(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only"), ("loc-2", "location_admin")]))
        self.applied("assign", self.assign("cust-2", []))  # "No access"
        seats = self.query("SELECT contact_count FROM companies WHERE shop_id = %s AND company_id = 'c-1'",
                           (self.shop,))
        r = self.run_cmd("suspend", self.sus())
        self.assertEqual(r["status"], "applied", r)
        self.assertEqual(r["result"], {"company_id": "c-1", "customer_id": None, "changed": True,
                                       "customers_affected": 2})
        ev = self.wait_access("cust-1", 2)
        self.assertEqual(ev["companies"], [{"company_id": "c-1", "access": "suspended",
                                            "locations": [{"location_id": "loc-1", "role": "ordering_only"},
                                                          {"location_id": "loc-2", "role": "location_admin"}]}])
        self.assertEqual(ev["experience"], "d2c")
        self.assertEqual(ev["caused_by"], r["command_id"])
        ev2 = self.wait_access("cust-2", 2)
        self.assertEqual(ev2["companies"], [{"company_id": "c-1", "access": "suspended", "locations": []}])
        # roles and seats kept
        self.assertEqual(self.roles_in_db("cust-1"), [("loc-1", "ordering_only"), ("loc-2", "location_admin")])
        self.assertEqual(self.query("SELECT contact_count FROM companies WHERE shop_id = %s AND company_id = 'c-1'",
                                    (self.shop,)), seats)
        # suspending what is suspended: changed false, nothing published
        again = self.applied("suspend", self.sus())
        self.assertEqual(again, {"company_id": "c-1", "customer_id": None, "changed": False,
                                 "customers_affected": 0})
        self.assertEqual(self.versions("cust-1"), [1, 2])
        # resume: as it was
        r = self.applied("resume", self.sus())
        self.assertEqual(r, {"company_id": "c-1", "customer_id": None, "changed": True, "customers_affected": 2})
        ev = self.wait_access("cust-1", 3)
        self.assertEqual((ev["experience"], self.entry(ev)["access"]), ("b2b", "locations"))
        self.assertEqual(self.entry(self.wait_access("cust-2", 3))["access"], "no_access")
        self.assertEqual(self.applied("resume", self.sus())["changed"], False)
        self.assertEqual(self.versions("cust-1"), [1, 2, 3])
        self.check_schemas()

    def test_experience_b2b_only_through_a_company_not_suspended(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.applied("assign", self.assign("cust-1", [], company="c-2"))
        self.applied("suspend", self.sus())
        ev = self.wait_access("cust-1", 3)
        self.assertEqual(ev["experience"], "d2c", "c-2 gives no role, c-1 is suspended")
        self.assertEqual(self.entry(ev, "c-2")["access"], "no_access")
        self.applied("assign", self.assign("cust-1", [("loc-x", "ordering_only")], company="c-2"))
        ev = self.wait_access("cust-1", 4)
        self.assertEqual(ev["experience"], "b2b")
        self.assertEqual(self.entry(ev)["access"], "suspended")

    def test_contact_and_company_suspensions_are_independent(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.applied("assign", self.assign("cust-2", [("loc-2", "ordering_only")]))
        r = self.applied("suspend", self.sus(customer="cust-1"))
        self.assertEqual(r, {"company_id": "c-1", "customer_id": "cust-1", "changed": True, "customers_affected": 1})
        self.assertEqual(self.entry(self.wait_access("cust-1", 2))["access"], "suspended")
        self.assertEqual(self.versions("cust-2"), [1], "one contact: the others are untouched")
        # the company: only the contact whose entry changes gets an event
        r = self.applied("suspend", self.sus())
        self.assertEqual(r["customers_affected"], 1)
        self.assertEqual(self.versions("cust-1"), [1, 2])
        self.wait_access("cust-2", 2)
        # the contact's own, while the company's holds: changed, nothing to publish
        r = self.applied("resume", self.sus(customer="cust-1"))
        self.assertEqual(r, {"company_id": "c-1", "customer_id": "cust-1", "changed": True, "customers_affected": 0})
        r = self.applied("suspend", self.sus(customer="cust-1"))
        self.assertEqual((r["changed"], r["customers_affected"]), (True, 0))
        # resuming the company does not resume a contact suspended on its own
        r = self.applied("resume", self.sus())
        self.assertEqual(r["customers_affected"], 1)
        self.assertEqual(self.entry(self.wait_access("cust-2", 3))["access"], "locations")
        self.assertEqual(self.versions("cust-1"), [1, 2])
        self.assertEqual(self.entry(self.last_event("cust-1"))["access"], "suspended")
        r = self.applied("resume", self.sus(customer="cust-1"))
        self.assertEqual((r["changed"], r["customers_affected"]), (True, 1))
        self.assertEqual(self.entry(self.wait_access("cust-1", 3))["access"], "locations")
        self.assertEqual(self.applied("resume", self.sus(customer="cust-1"))["changed"], False)

    def test_repeat_gets_the_stored_result(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        r = self.run_cmd("suspend", self.sus())
        again = self.run_cmd("suspend", self.sus(), command_id=r["command_id"])
        self.assertEqual(again, r)
        self.assertEqual(self.versions("cust-1"), [1, 2])

    def test_metrics_count_what_is_suspended(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.applied("assign", self.assign("cust-2", []))
        self.applied("assign", self.assign("cust-3", [("loc-x", "ordering_only")], company="c-2"))

        def counts():
            m = self.d.metrics()
            return m.get("b2bd_suspended_companies"), m.get("b2bd_suspended_contacts")

        base = self.db_counts()
        self.applied("suspend", self.sus())
        self.applied("suspend", self.sus(customer="cust-1"))  # counted once
        self.applied("suspend", self.sus("c-2", customer="cust-3"))
        want = (base[0] + 1, base[1] + 3)
        self.assertEqual(self.db_counts(), want)
        wait_until(lambda: counts() == want, timeout=20, what="b2bd_suspended_* at %s" % (want,))
        self.applied("resume", self.sus())
        want = (base[0], base[1] + 2)
        wait_until(lambda: counts() == want, timeout=20, what="b2bd_suspended_* at %s" % (want,))

    def db_counts(self):
        """What the metrics must say, counted here another way (the whole database)."""
        return tuple(self.query(
            "SELECT (SELECT count(*) FROM companies WHERE suspended),"
            " (SELECT count(*) FROM contacts k JOIN companies c USING (shop_id, company_id)"
            "   WHERE k.suspended OR c.suspended)")[0])

    def test_bad_input(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.rejected("suspend", self.sus("nope"), "NOT_FOUND", "payload.company_id")
        self.rejected("suspend", self.sus(customer="nobody"), "NOT_FOUND", "payload.customer_id")
        self.rejected("resume", self.sus(customer="cust-2"), "NOT_A_CONTACT", "payload.customer_id")
        self.rejected("suspend", {"company_id": "c-1", "customer_id": 7}, "INVALID", "payload.customer_id")
        self.rejected("suspend", {"customer_id": "cust-1"}, "INVALID", "payload.company_id")
        cmd = harness.command("suspend", self.shop, self.sus())
        self.bus.send(cmd, topic_suffix="commands.assign", key="%s/c-1" % self.shop)
        self.bus.flush()
        r = self.bus.wait_result(cmd["command_id"])
        self.assertEqual((r["status"], r["error"]["code"], r["error"]["field"]), ("rejected", "WRONG_TOPIC", "type"))
        self.assertEqual(self.query("SELECT count(*) FROM companies WHERE shop_id = %s AND suspended", (self.shop,)),
                         [(0,)])
        self.assertEqual(self.versions("cust-1"), [1])


class WhileSuspendedTest(SuspensionBase):

    def test_assign_into_a_suspended_company(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.applied("suspend", self.sus())
        r = self.applied("assign", self.assign("cust-1", [("loc-2", "ordering_only")]))
        self.assertTrue(r["suspended"])
        self.assertEqual(len(r["roles"]), 2, "the roles wait for the return")
        ev = self.wait_access("cust-1", 3)
        self.assertEqual(self.entry(ev)["access"], "suspended")
        # a new contact is suspended with the company; notify queues nothing
        r = self.applied("assign", self.assign("cust-2", [("loc-1", "ordering_only")], notify=True))
        self.assertEqual((r["contact_created"], r["suspended"], r["notification_ids"], r["notification_skipped"]),
                         (True, True, [], {"reason": "SUSPENDED"}))
        self.assertEqual(self.entry(self.wait_access("cust-2", 1))["access"], "suspended")
        self.assertEqual(self.query("SELECT count(*) FROM notifications WHERE shop_id = %s", (self.shop,)), [(0,)])
        # not suspended: no field at all
        r = self.applied("assign", self.assign("cust-3", [("loc-x", "ordering_only")], company="c-2"))
        self.assertNotIn("suspended", r)
        self.applied("resume", self.sus())
        self.assertNotIn("suspended", self.applied("assign", self.assign("cust-2", [("loc-2", "ordering_only")])))

    def test_notify_skips_a_suspended_contact_and_resend_is_refused(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.applied("assign", self.assign("cust-2", [("loc-1", "ordering_only")]))
        first = self.applied("notify", {"company_id": "c-1", "customer_ids": ["cust-1"]})["queued"][0]["notification_id"]
        self.applied("suspend", self.sus(customer="cust-1"))
        r = self.applied("notify", {"company_id": "c-1", "customer_ids": ["cust-1", "cust-2"]})
        self.assertEqual(r["skipped"], [{"customer_id": "cust-1", "reason": "SUSPENDED"}])
        self.assertEqual([q["customer_id"] for q in r["queued"]], ["cust-2"])
        r = self.applied("notify", {"company_id": "c-1", "customer_ids": ["cust-1"], "preview": True})
        self.assertEqual((r["previews"], r["skipped"]), ([], [{"customer_id": "cust-1", "reason": "SUSPENDED"}]))
        self.rejected("notify", {"company_id": "c-1", "customer_ids": [], "resend_of": first},
                      "SUSPENDED", "payload.resend_of")
        self.rejected("notify", {"company_id": "c-1", "customer_ids": [], "resend_of": first,
                                 "recipient": "staff", "staff_email": "boss@example.com"},
                      "SUSPENDED", "payload.resend_of")
        # the company's suspension too
        self.applied("resume", self.sus(customer="cust-1"))
        self.applied("suspend", self.sus())
        r = self.applied("notify", {"company_id": "c-1", "customer_ids": ["cust-2"]})
        self.assertEqual(r["skipped"], [{"customer_id": "cust-2", "reason": "SUSPENDED"}])
        self.rejected("notify", {"company_id": "c-1", "customer_ids": [], "resend_of": first},
                      "SUSPENDED", "payload.resend_of")
        self.applied("resume", self.sus())
        self.assertEqual(len(self.applied("notify", {"company_id": "c-1", "customer_ids": [],
                                                     "resend_of": first})["queued"]), 1)

    def test_revoke_and_migrate_as_for_any_contact(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only"), ("loc-2", "ordering_only")]))
        self.applied("order.upsert", {"order_id": "o-1", "customer_id": "cust-1", "status": "open"})
        self.applied("suspend", self.sus())
        r = self.applied("migrate", {"company_id": "c-1", "location_id": "loc-1", "customer_id": "cust-1"})
        self.assertEqual(r["migrated_order_ids"], ["o-1"])
        r = self.applied("revoke", {"company_id": "c-1", "customer_id": "cust-1", "scope": "locations",
                                    "location_ids": ["loc-2"]})
        self.assertEqual(r["removed_roles"], [{"location_id": "loc-2", "role": "ordering_only"}])
        ev = self.wait_access("cust-1", 3)
        self.assertEqual(self.entry(ev), {"company_id": "c-1", "access": "suspended",
                                          "locations": [{"location_id": "loc-1", "role": "ordering_only"}]})

    def test_a_removed_contact_loses_its_own_suspension(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.applied("suspend", self.sus(customer="cust-1"))
        self.applied("revoke", {"company_id": "c-1", "customer_id": "cust-1", "scope": "company"})
        self.assertEqual(self.wait_access("cust-1", 3)["companies"], [])
        r = self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.assertNotIn("suspended", r)
        self.assertEqual(self.entry(self.wait_access("cust-1", 4))["access"], "locations")
        # customer.redact too; a new contact after it is suspended only if the company is
        self.applied("suspend", self.sus(customer="cust-1"))
        self.applied("customer.redact", {"customer_id": "cust-1"})
        self.assertEqual(self.query("SELECT count(*) FROM contacts WHERE shop_id = %s AND customer_id = 'cust-1'",
                                    (self.shop,)), [(0,)])
        self.make_customer("cust-1")
        self.assertNotIn("suspended", self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")])))
        self.applied("suspend", self.sus())
        self.applied("revoke", {"company_id": "c-1", "customer_id": "cust-1", "scope": "company"})
        self.assertTrue(self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))["suspended"])

    def test_merge_export_and_company_upsert(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.applied("assign", self.assign("cust-1", [], company="c-2"))
        self.applied("suspend", self.sus(customer="cust-1"))
        self.rejected("customer.merge", {"customer_id": "cust-2", "merge_customer_id": "cust-1"},
                      "MERGE_REFUSED", "payload.merge_customer_id")
        r = self.run_cmd("customer.data_request", {"customer_id": "cust-1"})
        self.assertEqual(r["status"], "applied", r)
        doc = self.bus.wait_for("events.privacy",
                                lambda m: isinstance(m[1], dict) and m[1].get("request_command_id") == r["command_id"])[1]
        self.assertEqual([(c["company_id"], c["suspended"]) for c in doc["companies"]],
                         [("c-1", True), ("c-2", False)])
        # company.upsert leaves a suspension as it is
        self.applied("suspend", self.sus("c-2"))
        self.applied("company.upsert", {"company_id": "c-2", "name": "Renamed", "locations": []})
        self.assertEqual(self.query("SELECT suspended FROM companies WHERE shop_id = %s AND company_id = 'c-2'",
                                    (self.shop,)), [(True,)])
        self.assertEqual(self.query("SELECT suspended FROM contacts WHERE shop_id = %s AND company_id = 'c-1'",
                                    (self.shop,)), [(True,)])
        self.assertEqual(self.applied("suspend", self.sus("c-2"))["changed"], False)


class RaceTest(B2bTestCase):
    """A company's suspend on one instance and assigns into the company on another, at
    once (CONTRACT.md, "Suspension"): every contact that ends in the company is suspended,
    and its last access event says so."""

    START_DAEMON = False

    def test_suspend_while_the_other_instance_assigns(self):
        d1, d2 = self.start_two_daemons()
        self.make_company("c-1", ["loc-1"])
        early = [self.command("assign", self.assign({"email": "early%03d@example.com" % i},
                                                    [("loc-1", "ordering_only")])) for i in range(20)]
        self.run_cmds(early)
        assigns = [self.command("assign", self.assign({"email": "n%03d@example.com" % i},
                                                      [("loc-1", "ordering_only")])) for i in range(300)]
        suspend = self.command("suspend", {"company_id": "c-1"})
        # the assigns on partition 2 (one daemon), in waves of 10 over about 3 s, and the
        # suspend on partition 0 (the other) after the 15th wave: some assigns are applied
        # before it, some after, and some in the batches that meet it
        for w in range(30):
            if w == 15:
                self.bus.send(suspend, partition=0)
            for c in assigns[10 * w:10 * w + 10]:
                self.bus.send(c, partition=2)
            self.bus.flush()
            time.sleep(0.1)
        results = self.bus.wait_results([c["command_id"] for c in assigns + [suspend]], timeout=120)
        self.assertEqual({r["status"] for r in results}, {"applied"})
        self.assertEqual((self.commands_done(d1, "suspend") + self.commands_done(d2, "suspend"),
                          self.commands_done(d1, "assign") + self.commands_done(d2, "assign")), (1, 320))
        # partitions 0 and 2 are on two daemons (start_two_daemons: range assignment), in
        # whichever order the group sorted them: the suspend and the waves met two daemons
        holder, other = (d1, d2) if self.commands_done(d1, "suspend") == 1 else (d2, d1)
        self.assertEqual(self.commands_done(holder, "suspend"), 1)
        self.assertGreaterEqual(self.commands_done(other, "assign"), 300,
                                "the suspend and the assigns were applied by one daemon")
        contacts = [r[0] for r in self.query("SELECT customer_id FROM contacts WHERE shop_id = %s AND company_id = 'c-1'",
                                             (self.shop,))]
        self.assertEqual(len(contacts), 320)
        self.settle()
        last = {}
        for m in self.bus.read_to_end("events.access"):
            ev = m[1]
            if isinstance(ev, dict) and ev.get("shop_id") == self.shop:
                if ev["version"] > last.get(ev["customer_id"], {"version": 0})["version"]:
                    last[ev["customer_id"]] = ev
        self.assertEqual(sorted(last), sorted(contacts))
        wrong = [c for c in contacts if last[c]["companies"] != [
            {"company_id": "c-1", "access": "suspended", "locations": [{"location_id": "loc-1", "role": "ordering_only"}]}]]
        self.assertEqual(wrong, [], "contacts whose last access event does not say suspended")
        # the assigns applied after the suspend say so in their results
        after = [r for r in results if r["type"] == "assign" and r["result"].get("suspended")]
        suspended_events = {c for c in contacts if last[c]["caused_by"] != suspend["command_id"]}
        self.assertEqual({r["result"]["customer_id"] for r in after}, suspended_events)
        sys.stderr.write("\nrace: %d of 300 assigns applied after the suspend, %d before it\n"
                         % (len(after), 300 - len(after)))
        self.assertTrue(0 < len(after) < 300, "the suspend came in the middle of the assigns")


if __name__ == "__main__":
    unittest.main()
