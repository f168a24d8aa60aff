"""assign through Kafka and PostgreSQL: every rule of the contract's `assign`."""
import unittest

import harness
from b2btest import B2bTestCase


class AssignTest(B2bTestCase):

    def setUp(self):
        super().setUp()
        self.make_company()
        self.make_customer("cust-9", email="Ann.Buyer@Example.com", first_name="Ann")

    def test_existing_customer_by_id_gets_roles_and_access_event(self):
        r = self.applied("assign", self.assign("cust-9", [("loc-1", "ordering_only"),
                                                          ("loc-2", "location_admin")]))
        self.assertEqual(r["customer_id"], "cust-9")
        self.assertFalse(r["customer_created"])
        self.assertTrue(r["contact_created"])
        self.assertEqual(r["roles"], [{"location_id": "loc-1", "role": "ordering_only"},
                                      {"location_id": "loc-2", "role": "location_admin"}])
        ev = self.wait_access("cust-9", 1)
        self.assertEqual(ev["experience"], "b2b")
        self.assertEqual(ev["email"], "Ann.Buyer@Example.com")
        self.assertEqual(ev["companies"], [{"company_id": "c-1", "access": "locations", "locations": [
            {"location_id": "loc-1", "role": "ordering_only"},
            {"location_id": "loc-2", "role": "location_admin"}]}])
        self.assertEqual(self.roles_in_db("cust-9"), [("loc-1", "ordering_only"), ("loc-2", "location_admin")])

    def test_customer_found_by_email_case_insensitively(self):
        r = self.applied("assign", self.assign({"email": "ann.BUYER@example.COM"}, [("loc-1", "ordering_only")]))
        self.assertEqual(r["customer_id"], "cust-9")
        self.assertFalse(r["customer_created"])
        self.assertEqual(self.query("SELECT count(*) FROM customers WHERE shop_id = %s", (self.shop,)), [(1,)])

    def test_new_customer_created_from_email(self):
        r = self.applied("assign", self.assign({"email": "New.Person@Example.org", "first_name": "Nia",
                                                "last_name": "Okafor", "phone": "+47 1234"},
                                               [("loc-3", "location_admin")]))
        self.assertEqual(r["customer_id"], "new.person@example.org")
        self.assertTrue(r["customer_created"])
        row = self.query("SELECT email, first_name, last_name, phone FROM customers WHERE shop_id = %s"
                         " AND customer_id = %s", (self.shop, "new.person@example.org"))
        self.assertEqual(row, [("New.Person@Example.org", "Nia", "Okafor", "+47 1234")])

    def test_new_customer_with_given_id(self):
        r = self.applied("assign", self.assign({"email": "z@example.org", "id": "crm-77"}, []))
        self.assertEqual(r["customer_id"], "crm-77")
        self.assertTrue(r["customer_created"])

    def test_unknown_customer_id_is_not_found(self):
        self.rejected("assign", self.assign("nobody", [("loc-1", "ordering_only")]), "NOT_FOUND",
                      "payload.customer.id")

    def test_empty_locations_make_a_contact_with_no_access(self):
        r = self.applied("assign", self.assign("cust-9", []))
        self.assertTrue(r["contact_created"])
        self.assertEqual(r["roles"], [])
        ev = self.wait_access("cust-9", 1)
        self.assertEqual(ev["experience"], "d2c")
        self.assertEqual(ev["companies"], [{"company_id": "c-1", "access": "no_access", "locations": []}])

    def test_existing_contact_listed_locations_changed_others_untouched(self):
        self.applied("assign", self.assign("cust-9", [("loc-1", "ordering_only"), ("loc-2", "ordering_only")]))
        r = self.applied("assign", self.assign("cust-9", [("loc-2", "location_admin"), ("loc-3", "ordering_only")]))
        self.assertFalse(r["contact_created"])
        self.assertEqual(r["roles"], [{"location_id": "loc-1", "role": "ordering_only"},
                                      {"location_id": "loc-2", "role": "location_admin"},
                                      {"location_id": "loc-3", "role": "ordering_only"}])
        ev = self.wait_access("cust-9", 2)
        self.assertEqual(len(ev["companies"][0]["locations"]), 3)

    def test_no_op_assign_is_applied_without_access_event(self):
        payload = self.assign("cust-9", [("loc-1", "ordering_only")])
        self.applied("assign", payload)
        self.wait_access("cust-9", 1)
        r = self.applied("assign", payload)  # a new command_id, nothing to change
        self.assertFalse(r["contact_created"])
        self.applied("assign", self.assign("cust-9", [("loc-1", "location_admin")]))
        self.wait_access("cust-9", 2)
        versions = [e["version"] for e in self.access_events("cust-9")]
        self.assertEqual(versions, [1, 2], "the no-op must not publish nor count a version")

    def test_location_of_another_company_is_not_found_and_nothing_changes(self):
        self.make_company("c-2", ["loc-other"])
        self.rejected("assign", self.assign({"email": "fresh@example.org"},
                                            [("loc-1", "ordering_only"), ("loc-other", "ordering_only")]),
                      "NOT_FOUND", "payload.locations[1].location_id")
        self.assertEqual(self.query("SELECT count(*) FROM customers WHERE shop_id = %s"
                                    " AND customer_id = 'fresh@example.org'", (self.shop,)), [(0,)])
        self.assertEqual(self.query("SELECT count(*) FROM contacts WHERE shop_id = %s", (self.shop,)), [(0,)])

    def test_unknown_location_is_not_found(self):
        self.rejected("assign", self.assign("cust-9", [("loc-nope", "ordering_only")]), "NOT_FOUND",
                      "payload.locations[0].location_id")

    def test_invalid_role_and_duplicate_location(self):
        self.rejected("assign", self.assign("cust-9", [("loc-1", "ordering_only"), ("loc-2", "owner")]),
                      "INVALID", "payload.locations[1].role")
        self.rejected("assign", self.assign("cust-9", [("loc-1", "ordering_only"), ("loc-1", "location_admin")]),
                      "INVALID", "payload.locations[1].location_id")
        self.assertEqual(self.roles_in_db("cust-9"), [])

    def test_unknown_company_is_not_found(self):
        self.rejected("assign", self.assign("cust-9", [], company="c-none"), "NOT_FOUND", "payload.company_id")

    def test_another_shops_company_is_not_found(self):
        other = harness.unique_name("shop-")
        self.make_company("c-theirs", ["loc-theirs"], shop=other)
        self.rejected("assign", self.assign("cust-9", [("loc-theirs", "ordering_only")], company="c-theirs"),
                      "NOT_FOUND", "payload.company_id")
        # their company untouched, and their location not reachable through ours
        self.rejected("assign", self.assign("cust-9", [("loc-theirs", "ordering_only")]),
                      "NOT_FOUND", "payload.locations[0].location_id")
        self.assertEqual(self.query("SELECT count(*) FROM contacts WHERE shop_id = %s", (other,)), [(0,)])

    def test_email_of_another_customer_with_new_id_is_conflict(self):
        self.rejected("assign", self.assign({"id": "crm-1", "email": "ann.buyer@example.com"}, []),
                      "CONFLICT", "payload.customer.email")

    def test_versions_grow_per_customer_across_companies(self):
        self.make_company("c-2", ["loc-x"])
        self.applied("assign", self.assign("cust-9", [("loc-1", "ordering_only")]))
        self.applied("assign", self.assign("cust-9", [("loc-x", "location_admin")], company="c-2"))
        ev = self.wait_access("cust-9", 2)
        self.assertEqual([c["company_id"] for c in ev["companies"]], ["c-1", "c-2"])


class CompanyLimitTest(B2bTestCase):
    """The 10,000-contact limit, with two daemons racing for the last seat."""

    START_DAEMON = False

    def test_two_commands_race_for_the_10001st_seat(self):
        d1, d2 = self.start_two_daemons()
        self.make_company("c-big", ["loc-1"])
        # 9,999 contacts straight into the database, then two newcomers race for the last seat
        self.query("INSERT INTO customers (shop_id, customer_id, email) SELECT %s, 'bulk-' || g,"
                   " 'bulk-' || g || '@example.com' FROM generate_series(1, 9999) g", (self.shop,))
        self.query("INSERT INTO contacts (shop_id, company_id, customer_id) SELECT %s, 'c-big', 'bulk-' || g"
                   " FROM generate_series(1, 9999) g", (self.shop,))
        self.query("UPDATE companies SET contact_count = 9999 WHERE shop_id = %s AND company_id = 'c-big'",
                   (self.shop,))
        cmds = [harness.command("assign", self.shop, self.assign({"email": "racer%d@example.com" % i},
                                                                 [("loc-1", "ordering_only")], company="c-big"))
                for i in range(6)]
        # different partitions, so that both daemons work at once
        before = [self.commands_done(d, "assign") for d in (d1, d2)]
        for i, c in enumerate(cmds):
            self.bus.send(c, partition=i % 4)
        self.bus.flush()
        results = self.bus.wait_results([c["command_id"] for c in cmds], timeout=60)
        done = [self.commands_done(d, "assign") - b for d, b in zip((d1, d2), before)]
        self.assertEqual(sum(done), 6, done)
        self.assertTrue(all(n > 0 for n in done), "both daemons took part: %s" % done)
        applied = [r for r in results if r["status"] == "applied"]
        limited = [r for r in results if r["status"] == "rejected"]
        self.assertEqual(len(applied), 1, results)
        self.assertEqual({r["error"]["code"] for r in limited}, {"LIMIT_REACHED"})
        self.assertEqual(self.query("SELECT count(*) FROM contacts WHERE shop_id = %s AND company_id = 'c-big'",
                                    (self.shop,)), [(10000,)])
        self.assertEqual(self.query("SELECT contact_count FROM companies WHERE shop_id = %s AND company_id = 'c-big'",
                                    (self.shop,)), [(10000,)])
        # a rejected newcomer left no profile behind (all or nothing)
        self.assertEqual(self.query("SELECT count(*) FROM customers WHERE shop_id = %s AND customer_id LIKE 'racer%%'",
                                    (self.shop,)), [(1,)])
        # an existing contact can still be given roles at a full company
        r = self.applied("assign", self.assign("bulk-1", [("loc-1", "location_admin")], company="c-big"))
        self.assertFalse(r["contact_created"])


class LimitThroughCommandsTest(B2bTestCase):
    """The 10,000-contact limit reached through commands alone (no counter written by
    SQL): 9,999 assigns that create their customers, two newcomers from two partitions
    (two daemons) racing for the last seat, then the 10,001st."""

    START_DAEMON = False

    def test_10000_assigns_then_the_race_then_the_10001st(self):
        d1, d2 = self.start_two_daemons()
        self.make_company("c-max", ["loc-1"])
        first = [harness.command("assign", self.shop, self.assign({"email": "m%05d@example.com" % i},
                                                                  [("loc-1", "ordering_only")], company="c-max"))
                 for i in range(9999)]
        for c in first:
            self.bus.send(c)
        self.bus.flush()
        results = self.bus.wait_results([c["command_id"] for c in first], timeout=300)
        self.assertEqual({r["status"] for r in results}, {"applied"})
        self.assertEqual(self.query("SELECT contact_count FROM companies WHERE shop_id = %s AND company_id = 'c-max'",
                                    (self.shop,)), [(9999,)])
        # two newcomers for the last seat, on partitions held by the two daemons
        racers = [harness.command("assign", self.shop, self.assign({"email": "racer%d@example.com" % i},
                                                                   [("loc-1", "ordering_only")], company="c-max"))
                  for i in range(2)]
        before = [self.commands_done(d, "assign") for d in (d1, d2)]
        for i, c in enumerate(racers):
            self.bus.send(c, partition=2 * i)
        self.bus.flush()
        race = self.bus.wait_results([c["command_id"] for c in racers], timeout=60)
        self.assertEqual([self.commands_done(d, "assign") - b for d, b in zip((d1, d2), before)], [1, 1],
                         "each daemon applied one of the racers")
        self.assertEqual(sorted(r["status"] for r in race), ["applied", "rejected"], race)
        self.assertEqual([r["error"]["code"] for r in race if r["status"] == "rejected"], ["LIMIT_REACHED"])
        # the 10,001st
        self.rejected("assign", self.assign({"email": "late@example.com"}, [("loc-1", "ordering_only")],
                                            company="c-max"), "LIMIT_REACHED")
        count = "SELECT count(*) FROM contacts WHERE shop_id = %s AND company_id = 'c-max'"
        self.assertEqual(self.query(count, (self.shop,)), [(10000,)])
        self.assertEqual(self.query("SELECT contact_count FROM companies WHERE shop_id = %s AND company_id = 'c-max'",
                                    (self.shop,)), [(10000,)])
        # a seat freed by a revoke is taken again by the next newcomer
        self.applied("revoke", {"company_id": "c-max", "customer_id": "m00000@example.com", "scope": "company"})
        self.applied("assign", self.assign({"email": "late@example.com"}, [("loc-1", "ordering_only")],
                                           company="c-max"))
        self.assertEqual(self.query(count, (self.shop,)), [(10000,)])


if __name__ == "__main__":
    unittest.main()
