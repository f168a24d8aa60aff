"""revoke and migrate, and assign's migrate_orders_to, through Kafka and PostgreSQL."""
import unittest

import harness
from b2btest import B2bTestCase


class RevokeMigrateBase(B2bTestCase):

    def setUp(self):
        super().setUp()
        self.make_company("c-1", ["loc-1", "loc-2", "loc-3"])
        self.make_company("c-2", ["loc-x"])
        self.make_customer("cust-1")

    def order(self, order_id, status="open", company=None, location=None, customer="cust-1", **kw):
        payload = {"order_id": order_id, "customer_id": customer, "status": status,
                   "company_id": company, "location_id": location, "total": "10.00", "currency": "EUR"}
        payload.update(kw)
        return self.applied("order.upsert", payload)

    def orders(self, customer="cust-1"):
        return self.query("SELECT order_id, status, company_id, location_id FROM orders"
                          " WHERE shop_id = %s AND customer_id = %s ORDER BY order_id", (self.shop, customer))

    def revoke(self, scope, location_ids=None, customer="cust-1", company="c-1", **kw):
        p = {"company_id": company, "customer_id": customer, "scope": scope}
        if location_ids is not None:
            p["location_ids"] = location_ids
        p.update(kw)
        return p

    def migrate(self, location, customer="cust-1", company="c-1"):
        return {"company_id": company, "location_id": location, "customer_id": customer}

    def versions(self, customer="cust-1"):
        return [e["version"] for e in self.access_events(customer)]


class RevokeTest(RevokeMigrateBase):

    def test_revoke_listed_locations_reports_not_held(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only"), ("loc-2", "location_admin")]))
        r = self.applied("revoke", self.revoke("locations", ["loc-2", "loc-3"]))
        self.assertEqual(r, {"customer_id": "cust-1", "removed_roles": [{"location_id": "loc-2", "role": "location_admin"}],
                             "not_held": ["loc-3"], "contact_removed": False, "reverted_order_ids": []})
        self.assertEqual(self.roles_in_db("cust-1"), [("loc-1", "ordering_only")])
        ev = self.wait_access("cust-1", 2)
        self.assertEqual(ev["experience"], "b2b")

    def test_revoke_only_roles_not_held_changes_nothing(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        r = self.applied("revoke", self.revoke("locations", ["loc-3"]))
        self.assertEqual((r["removed_roles"], r["not_held"]), ([], ["loc-3"]))
        self.assertEqual(self.versions(), [1], "no change, no access event")

    def test_location_of_another_company_is_not_found(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.rejected("revoke", self.revoke("locations", ["loc-1", "loc-x"]), "NOT_FOUND", "payload.location_ids[1]")
        self.assertEqual(self.roles_in_db("cust-1"), [("loc-1", "ordering_only")], "all or nothing")

    def test_revoke_all_then_assign_again(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only"), ("loc-2", "ordering_only")]))
        r = self.applied("revoke", self.revoke("all_locations"))
        self.assertEqual(len(r["removed_roles"]), 2)
        self.assertFalse(r["contact_removed"])
        ev = self.wait_access("cust-1", 2)
        self.assertEqual(ev["experience"], "d2c")
        self.assertEqual(ev["companies"], [{"company_id": "c-1", "access": "no_access", "locations": []}])
        self.assertEqual(self.query("SELECT count(*) FROM contacts WHERE shop_id = %s", (self.shop,)), [(1,)])
        r = self.applied("assign", self.assign("cust-1", [("loc-3", "location_admin")]))
        self.assertFalse(r["contact_created"])
        ev = self.wait_access("cust-1", 3)
        self.assertEqual(ev["experience"], "b2b")

    def test_remove_from_company_keeps_profile_and_other_companies(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.applied("assign", self.assign("cust-1", [("loc-x", "ordering_only")], company="c-2"))
        r = self.applied("revoke", self.revoke("company"))
        self.assertTrue(r["contact_removed"])
        self.assertEqual(r["removed_roles"], [{"location_id": "loc-1", "role": "ordering_only"}])
        self.assertEqual(self.query("SELECT company_id FROM contacts WHERE shop_id = %s", (self.shop,)), [("c-2",)])
        self.assertEqual(self.query("SELECT count(*) FROM customers WHERE shop_id = %s", (self.shop,)), [(1,)])
        self.assertEqual(self.query("SELECT contact_count FROM companies WHERE shop_id = %s AND company_id = 'c-1'",
                                    (self.shop,)), [(0,)])
        ev = self.wait_access("cust-1", 3)
        self.assertEqual([c["company_id"] for c in ev["companies"]], ["c-2"])
        self.applied("revoke", self.revoke("company", company="c-2"))
        ev = self.wait_access("cust-1", 4)
        self.assertEqual((ev["experience"], ev["companies"]), ("d2c", []))

    def test_not_found_and_not_a_contact(self):
        self.rejected("revoke", self.revoke("all_locations", customer="ghost"), "NOT_FOUND", "payload.customer_id")
        self.rejected("revoke", self.revoke("all_locations"), "NOT_A_CONTACT")
        self.rejected("revoke", self.revoke("company", company="c-none"), "NOT_FOUND", "payload.company_id")

    def test_remove_migrated_orders_needs_scope_company(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.rejected("revoke", self.revoke("all_locations", remove_migrated_orders=True), "INVALID",
                      "payload.remove_migrated_orders")

    def test_remove_with_and_without_migrated_orders(self):
        self.order("o-d2c-1")
        self.order("o-d2c-2", status="closed")
        self.order("o-b2b-here", company="c-1", location="loc-2")
        self.order("o-b2b-other", company="c-2", location="loc-x")
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")], migrate_orders_to="loc-1"))
        self.assertEqual(self.orders(), [("o-b2b-here", "open", "c-1", "loc-2"), ("o-b2b-other", "open", "c-2", "loc-x"),
                                         ("o-d2c-1", "open", "c-1", "loc-1"), ("o-d2c-2", "closed", "c-1", "loc-1")])
        # without remove_migrated_orders: the orders stay, and so does the binding
        r = self.applied("revoke", self.revoke("company"))
        self.assertEqual(r["reverted_order_ids"], [])
        self.assertEqual(self.orders()[2:], [("o-d2c-1", "open", "c-1", "loc-1"), ("o-d2c-2", "closed", "c-1", "loc-1")])
        self.applied("assign", self.assign("cust-1", [("loc-2", "ordering_only")]))
        self.rejected("migrate", self.migrate("loc-2"), "ALREADY_MIGRATED", "payload.location_id")
        # with it: only the migrated orders revert; B2B orders placed in the company stay
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        r = self.applied("revoke", self.revoke("company", remove_migrated_orders=True))
        self.assertEqual(r["reverted_order_ids"], ["o-d2c-1", "o-d2c-2"])
        self.assertEqual(self.orders(), [("o-b2b-here", "open", "c-1", "loc-2"), ("o-b2b-other", "open", "c-2", "loc-x"),
                                         ("o-d2c-1", "open", None, None), ("o-d2c-2", "closed", None, None)])
        # the binding ended: the history may now go to another location
        self.applied("assign", self.assign("cust-1", [("loc-2", "ordering_only")]))
        r = self.applied("migrate", self.migrate("loc-2"))
        self.assertEqual(r["migrated_order_ids"], ["o-d2c-1", "o-d2c-2"])
        v = self.versions()
        self.assertEqual(v, list(range(1, len(v) + 1)), "versions grow by one, no gap")


class MigrateTest(RevokeMigrateBase):

    def test_mixed_history(self):
        self.order("o-open")
        self.order("o-closed", status="closed")
        self.order("o-cancelled", status="cancelled")
        self.order("o-deleted", status="deleted")
        self.order("o-b2b-elsewhere", company="c-2", location="loc-x")
        self.order("o-b2b-cancelled", status="cancelled", company="c-1", location="loc-3")
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        r = self.applied("migrate", self.migrate("loc-1"))
        self.assertEqual(r["customer_id"], "cust-1")
        self.assertEqual(r["location_id"], "loc-1")
        self.assertEqual(r["migrated_order_ids"], ["o-closed", "o-open"])
        self.assertEqual(r["skipped"], {"b2b": 2, "cancelled": 1, "deleted": 1})
        self.assertEqual(r["orders.migrated"]["order_ids"], ["o-closed", "o-open"])
        migrated = self.query("SELECT order_id FROM orders WHERE shop_id = %s AND migrated_by IS NOT NULL ORDER BY 1",
                              (self.shop,))
        self.assertEqual(migrated, [("o-closed",), ("o-open",)])

    def test_twice_to_the_same_location_moves_orders_placed_since(self):
        self.order("o-1")
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.assertEqual(self.applied("migrate", self.migrate("loc-1"))["migrated_order_ids"], ["o-1"])
        self.order("o-2")
        r = self.applied("migrate", self.migrate("loc-1"))
        self.assertEqual(r["migrated_order_ids"], ["o-2"])
        self.assertEqual(r["skipped"], {"b2b": 0, "cancelled": 0, "deleted": 0})

    def test_to_a_second_location_is_already_migrated(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only"), ("loc-2", "ordering_only")]))
        r = self.applied("migrate", self.migrate("loc-1"))
        self.assertEqual(r["migrated_order_ids"], [], "nothing to move, but the history is bound")
        self.order("o-1")
        self.rejected("migrate", self.migrate("loc-2"), "ALREADY_MIGRATED", "payload.location_id")
        self.assertEqual(self.orders(), [("o-1", "open", None, None)])

    def test_preconditions(self):
        self.rejected("migrate", self.migrate("loc-1"), "NOT_A_CONTACT")
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.rejected("migrate", self.migrate("loc-2"), "NO_LOCATION_ACCESS", "payload.location_id")
        self.rejected("migrate", self.migrate("loc-x"), "NOT_FOUND", "payload.location_id")
        self.rejected("migrate", self.migrate("loc-1", customer="ghost"), "NOT_FOUND", "payload.customer_id")

    def test_order_upsert_of_a_migrated_order_keeps_its_location(self):
        self.order("o-1")
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")], migrate_orders_to="loc-1"))
        r = self.order("o-1", status="closed", total="99.00")
        self.assertTrue(r["migrated"])
        self.assertEqual(self.orders(), [("o-1", "closed", "c-1", "loc-1")])
        self.assertEqual(self.query("SELECT total::text FROM orders WHERE shop_id = %s", (self.shop,)), [("99.00",)])


    def test_order_upsert_of_a_migrated_order_keeps_its_customer(self):
        # the order stays the migrated customer's, so that removing that customer with
        # remove_migrated_orders still reverts it
        self.make_customer("cust-2")
        self.order("o-1")
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")], migrate_orders_to="loc-1"))
        r = self.order("o-1", customer="cust-2", status="closed", total="99.00")
        self.assertTrue(r["migrated"])
        self.assertEqual(self.orders(), [("o-1", "closed", "c-1", "loc-1")])
        self.assertEqual(self.orders("cust-2"), [])
        r = self.applied("revoke", self.revoke("company", remove_migrated_orders=True))
        self.assertEqual(r["reverted_order_ids"], ["o-1"])
        self.assertEqual(self.orders(), [("o-1", "closed", None, None)])

class AssignMigrateTest(RevokeMigrateBase):

    def test_assign_with_migration(self):
        self.order("o-1")
        self.order("o-2", status="cancelled")
        r = self.applied("assign", self.assign("cust-1", [("loc-2", "location_admin")], migrate_orders_to="loc-2"))
        self.assertEqual(r["migration"], {"customer_id": "cust-1", "location_id": "loc-2",
                                          "migrated_order_ids": ["o-1"],
                                          "skipped": {"b2b": 0, "cancelled": 1, "deleted": 0}})

    def test_failed_migration_leaves_nothing_assigned(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")], migrate_orders_to="loc-1"))
        self.applied("revoke", self.revoke("company"))
        versions_before = self.versions()
        self.order("o-new")
        # bound to loc-1: a migration to loc-2 is refused, and the assignment with it
        self.rejected("assign", self.assign("cust-1", [("loc-2", "ordering_only")], migrate_orders_to="loc-2"),
                      "ALREADY_MIGRATED", "payload.migrate_orders_to")
        self.assertEqual(self.query("SELECT count(*) FROM contacts WHERE shop_id = %s", (self.shop,)), [(0,)])
        self.assertEqual(self.roles_in_db("cust-1"), [])
        self.assertEqual(self.orders(), [("o-new", "open", None, None)])
        # a migration to a location without a role after the command
        self.rejected("assign", self.assign({"email": "new@example.com"}, [("loc-1", "ordering_only")],
                                            migrate_orders_to="loc-3"), "NO_LOCATION_ACCESS", "payload.migrate_orders_to")
        self.assertEqual(self.query("SELECT count(*) FROM customers WHERE shop_id = %s", (self.shop,)), [(1,)])
        self.assertEqual(self.versions(), versions_before, "rejected: no access event")


class MigrationRaceTest(RevokeMigrateBase):
    """Two daemons apply migrations of one customer to two locations at once: one wins,
    the other is ALREADY_MIGRATED; no order ends up split or half-moved."""

    START_DAEMON = False

    def setUp(self):
        self.d1 = None
        harness.TestCase.setUp(self)
        self.d1, self.d2 = self.start_two_daemons()
        self.d = self.d1
        self.make_company("c-1", ["loc-1", "loc-2", "loc-3"])
        self.make_company("c-2", ["loc-x"])
        self.make_customer("cust-1")

    def test_two_migrations_race(self):
        for i in range(20):
            self.order("o-%02d" % i)
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only"), ("loc-2", "ordering_only")]))
        cmds = [harness.command("migrate", self.shop, self.migrate(loc)) for loc in ("loc-1", "loc-2")]
        ups = [harness.command("order.upsert", self.shop, {"order_id": "o-%02d" % i, "customer_id": "cust-1",
                                                          "status": "closed"}) for i in range(20)]
        # partitions 0 and 2: one daemon each (start_two_daemons)
        before = [self.commands_done(d, "migrate") for d in (self.d1, self.d2)]
        for i, c in enumerate(cmds):
            self.bus.send(c, partition=2 * i)
        for u in ups:
            self.bus.send(u, partition=2)
        self.bus.flush()
        results = self.bus.wait_results([c["command_id"] for c in cmds + ups], timeout=60)
        done = [self.commands_done(d, "migrate") - b for d, b in zip((self.d1, self.d2), before)]
        self.assertEqual(done, [1, 1], "each daemon applied one of the two migrations")
        mig = results[:2]
        self.assertEqual(sorted(r["status"] for r in mig), ["applied", "rejected"], mig)
        won = [r for r in mig if r["status"] == "applied"][0]
        lost = [r for r in mig if r["status"] == "rejected"][0]
        self.assertEqual(lost["error"]["code"], "ALREADY_MIGRATED")
        locs = self.query("SELECT DISTINCT location_id, status FROM orders WHERE shop_id = %s", (self.shop,))
        self.assertEqual(locs, [(won["result"]["location_id"], "closed")])


if __name__ == "__main__":
    unittest.main()
