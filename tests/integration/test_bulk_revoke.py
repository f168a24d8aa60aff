"""The set-based path for runs of revokes (bulk_assign, src/apply_bulk_revoke.c and
sql/functions/revoke.sql) against the one-by-one path (src/apply_revoke.c):
the same revokes, sent to two worlds that differ only in bulk_assign, give the same
results, the same access events and the same rows (roles, contacts, seats, inbox), for
every outcome a revoke can have: each scope, not_held, NOT_A_CONTACT, NOT_FOUND
(company, customer, location), duplicates, a reused command id, the second revoke of a
customer in one batch, remove_migrated_orders (which stays on the one-by-one path)."""
import re
import time
import unittest

import harness
from b2btest import B2bTestCase

# "Loc-Z" < "loc-1" < "loc-a" byte by byte (removed_roles' order), not in most locales
LOCATIONS = ("loc-1", "loc-2", "loc-3", "Loc-Z", "loc-a")
OTHER_LOCATIONS = ("loc-b1", "loc-b2")
# the contacts of loc-3 that a location clean-up removes, in one run
CLEANUP = ["m%02d" % i for i in range(1, 31)]


def strip(msg, *keys):
    return {k: v for k, v in msg.items() if k not in keys}


class RevokeRunsMatchOneByOne(B2bTestCase):
    SHARED = False
    START_DAEMON = False
    maxDiff = None

    def scenario(self):
        """(setup steps, the revokes to compare): built once, so that both worlds get
        the same command ids."""
        shop = self.shop

        def cmd(type, payload, command_id=None):
            return harness.command(type, shop, payload, command_id=command_id)

        def assign(customer, locs, company="c-1"):
            return cmd("assign", {"company_id": company,
                                  "customer": {"id": customer, "email": customer + "@example.com"},
                                  "locations": [{"location_id": l, "role": r} for l, r in locs]})

        def revoke(customer, scope, locs=None, company="c-1", **extra):
            p = {"company_id": company, "customer_id": customer, "scope": scope}
            if locs is not None:
                p["location_ids"] = list(locs)
            p.update(extra)
            return cmd("revoke", p)

        sync = [cmd("company.upsert", {"company_id": "c-1", "name": "One",
                                       "locations": [{"location_id": l, "name": l} for l in LOCATIONS]}),
                cmd("company.upsert", {"company_id": "c-2", "name": "Two",
                                       "locations": [{"location_id": l, "name": l} for l in OTHER_LOCATIONS]}),
                cmd("customer.upsert", {"customer_id": "outsider", "email": "outsider@example.com"})]
        oo, la = "ordering_only", "location_admin"
        assigns = [
            assign("u1", [("loc-1", oo), ("loc-2", la)]),
            assign("u2", [("loc-2", oo), ("loc-3", la)]),
            assign("u3", [("loc-1", oo)]),
            assign("u4", [("loc-a", oo), ("Loc-Z", la), ("loc-1", oo)]),
            assign("u5", []),                                   # a contact with no role
            assign("u6", [("loc-1", la)]),
            assign("u6", [("loc-b1", oo)], company="c-2"),      # in two companies
            assign("u7", []),
            assign("u9", [("loc-1", oo)]),
            assign("u10", [("loc-1", oo)]),
            assign("u11", [("loc-2", oo)]),
            assign("u12", [("loc-b2", la)], company="c-2"),
            assign("u13", [], company="c-2"),
        ] + [assign(m, [("loc-3", oo)] + ([("loc-1", la)] if i % 3 == 0 else []))
             for i, m in enumerate(CLEANUP)]

        first = revoke("u1", "locations", ["loc-1"])
        reuse = dict(first, payload=dict(first["payload"], location_ids=["loc-2"]))
        revokes = [
            first,                                                   # removed, loc-2 stays
            revoke("u2", "locations", ["loc-1", "loc-3", "loc-2"]),  # two removed, loc-1 not held
            revoke("u3", "locations", ["loc-2"]),                    # nothing held: no event
            revoke("u4", "all_locations"),                           # three removed, byte order
            revoke("u5", "all_locations"),                           # nothing to remove: no event
            revoke("u6", "company"),                                 # roles and contact, c-2 stays
            revoke("u7", "company"),                                 # contact without roles
            revoke("outsider", "all_locations"),                     # NOT_A_CONTACT
            revoke("ghost", "company"),                              # NOT_FOUND customer
            revoke("u9", "company", company="c-404"),                # NOT_FOUND company
            revoke("u9", "locations", ["loc-1", "loc-404"]),         # NOT_FOUND location[1]: nothing
            revoke("u10", "locations", ["loc-b1"]),                  # another company's location
            first,                                                   # duplicate: stored result
            reuse,                                                   # IDEMPOTENCY_KEY_REUSED
            revoke("u7", "company"),                                 # again: NOT_A_CONTACT now
            revoke("u1", "company"),                                 # u1 again: after its first
            revoke("u11", "company", remove_migrated_orders=True),   # the one-by-one path
            revoke("u12", "company", company="c-2"),
            revoke("u13", "all_locations", company="c-2"),
            revoke("u6", "company", company="c-2"),                  # out of both companies
        ] + [revoke(m, "locations", ["loc-3"]) for m in CLEANUP]     # a location's clean-up
        # assigns of other customers in the same batch (another topic): runs of their own
        revokes += [assign("n%d" % i, [("loc-3", la)]) for i in range(1, 6)]
        return [sync, assigns], revokes

    def run_world(self, setup, revokes, bulk, revoke_env=None):
        prefix = harness.unique_name("t") + "."
        harness.create_topics(prefix)
        name, dsn = harness.create_database()
        bus = harness.Bus(prefix)
        try:
            env = {"B2BD_BULK_ASSIGN": bulk, "B2BD_BATCH_LINGER_MS": "200"}
            d = harness.Daemon(prefix, dsn, extra_env=env).start()
            for step in setup:
                for c in step:
                    bus.send(c, partition=0)  # u6's two companies in one order
                bus.flush()
                for r in bus.wait_results([c["command_id"] for c in step], timeout=60):
                    self.assertEqual(r["status"], "applied", r)
            self.assertEqual(d.stop(), 0)
            seats_before = harness.db_query(dsn, "SELECT company_id, contact_count FROM companies"
                                                 " WHERE shop_id = %s ORDER BY 1", (self.shop,))
            # the revokes wait in Kafka while no daemon runs, on one partition (one order
            # across both companies): the next daemon reads them in one batch
            for c in revokes:
                bus.send(c, partition=0)
            bus.flush()
            d = harness.Daemon(prefix, dsn, extra_env=dict(env, **(revoke_env or {}))).start()
            ids = [c["command_id"].lower() for c in revokes]
            bus.wait_results(ids, timeout=90)

            def collected():
                return [strip(r, "event_id", "processed_at")
                        for cid in dict.fromkeys(ids) for r in bus.results_for(cid)]
            deadline = time.monotonic() + 30
            while len(collected()) < len(revokes) and time.monotonic() < deadline:
                bus.poll("results", 0.5)
            results = collected()
            keys = harness.result_keys(bus, revokes)
            self.assertEqual(d.stop(), 0)
            access = [strip(m[1], "event_id", "occurred_at") for m in bus.read_to_end("events.access")
                      if isinstance(m[1], dict) and m[1].get("shop_id") == self.shop]
            access.sort(key=lambda e: (e["customer_id"], e["version"]))
            q = lambda sql: harness.db_query(dsn, sql, (self.shop,))  # noqa: E731
            rows = {
                "customers": q("SELECT customer_id, access_version FROM customers WHERE shop_id = %s ORDER BY 1"),
                "contacts": q("SELECT company_id, customer_id FROM contacts WHERE shop_id = %s ORDER BY 1, 2"),
                "roles": q("SELECT company_id, customer_id, location_id, role FROM roles"
                           " WHERE shop_id = %s ORDER BY 1, 2, 3"),
                "seats": q("SELECT company_id, contact_count FROM companies WHERE shop_id = %s ORDER BY 1"),
                "inbox": q("SELECT command_id::text, type, encode(payload_hash, 'hex'), result::jsonb - 'event_id'"
                           " - 'processed_at' FROM commands WHERE shop_id = %s AND type = 'revoke' ORDER BY 1"),
            }
            stopping = [l for l in d.log().splitlines() if "event=stopping" in l][-1]
            bulk_n = int(re.search(r" bulk=(\d+)", stopping).group(1))
            return results, access, rows, bulk_n, seats_before, keys
        finally:
            bus.close()
            harness.drop_database(name)

    def test_same_results_events_and_rows(self):
        setup, revokes = self.scenario()
        on = self.run_world(setup, revokes, "on")
        off = self.run_world(setup, revokes, "off")
        self.assertEqual(off[3], 0, "bulk_assign=off used the set-based path")
        # the runs: [u1 .. u9 at c-404] (10; the second about u9 closes it), [u9 u10 and
        # u1's duplicate] (3), [the reused id, u7] and [u1] (too short: one by one), u11
        # (remove_migrated_orders: one by one), [u12 u13 u6 and the clean-up] (33)
        # (46), and the 5 assigns as a run of their own (Kafka hands over one topic's
        # messages, then the other's, in one batch or two)
        self.assertGreaterEqual(on[3], 46, "the set-based path was not used as expected")
        # every result carries its command's key, on both paths
        self.assertEqual(on[5][0], on[5][1])
        self.assertEqual(off[5][0], off[5][1])
        self.assertEqual(on[0], off[0])
        self.assertEqual(on[1], off[1])
        self.assertEqual(on[2], off[2])

        # and what they are, so that two wrong worlds cannot agree
        res = on[0]
        self.assertEqual(len(res), len(revokes))
        by_id = {}
        for r in res:
            by_id.setdefault(r["command_id"], r)
        r = [by_id[c["command_id"].lower()] for c in revokes]
        out = lambda k: (r[k]["status"], (r[k]["error"] or {}).get("code"),  # noqa: E731
                         (r[k]["error"] or {}).get("field"))
        self.assertEqual(r[0]["result"], {"customer_id": "u1", "removed_roles": [
            {"location_id": "loc-1", "role": "ordering_only"}], "not_held": [], "contact_removed": False,
            "reverted_order_ids": []})
        self.assertEqual(r[1]["result"]["removed_roles"], [{"location_id": "loc-2", "role": "ordering_only"},
                                                           {"location_id": "loc-3", "role": "location_admin"}])
        self.assertEqual(r[1]["result"]["not_held"], ["loc-1"])
        self.assertEqual((r[2]["result"]["removed_roles"], r[2]["result"]["not_held"]), ([], ["loc-2"]))
        self.assertEqual([x["location_id"] for x in r[3]["result"]["removed_roles"]], ["Loc-Z", "loc-1", "loc-a"])
        self.assertEqual(r[4]["result"]["removed_roles"], [])
        self.assertEqual((r[5]["result"]["contact_removed"], len(r[5]["result"]["removed_roles"])), (True, 1))
        self.assertEqual((r[6]["result"]["contact_removed"], r[6]["result"]["removed_roles"]), (True, []))
        self.assertEqual(out(7), ("rejected", "NOT_A_CONTACT", "payload.customer_id"))
        self.assertEqual(out(8), ("rejected", "NOT_FOUND", "payload.customer_id"))
        self.assertEqual(out(9), ("rejected", "NOT_FOUND", "payload.company_id"))
        self.assertEqual(out(10), ("rejected", "NOT_FOUND", "payload.location_ids[1]"))
        self.assertEqual(out(11), ("rejected", "NOT_FOUND", "payload.location_ids[0]"))
        # u1's first revoke, its duplicate (the stored result again), the reused id
        same_id = [x for x in res if x["command_id"] == r[0]["command_id"]]
        self.assertEqual(same_id[:2], [r[0]] * 2)
        self.assertEqual((same_id[2]["status"], same_id[2]["error"]["code"]), ("rejected", "IDEMPOTENCY_KEY_REUSED"))
        self.assertEqual(out(14), ("rejected", "NOT_A_CONTACT", "payload.customer_id"))
        self.assertEqual((r[15]["result"]["contact_removed"], r[15]["result"]["removed_roles"]),
                         (True, [{"location_id": "loc-2", "role": "location_admin"}]))
        self.assertEqual((r[16]["status"], r[16]["result"]["reverted_order_ids"]), ("applied", []))
        for k in range(20, 20 + len(CLEANUP)):
            self.assertEqual(out(k), ("applied", None, None))
            self.assertEqual(r[k]["result"]["removed_roles"], [{"location_id": "loc-3", "role": "ordering_only"}])
        rows = on[2]
        # u9 kept its role (its revoke was rejected), u3 and u4's contacts stay; seats
        # freed once for each contact row deleted: c-1 u6 u7 u1 u11, c-2 u12 u6
        self.assertIn(("c-1", "u9", "loc-1", "ordering_only"), rows["roles"])
        self.assertEqual(dict(rows["seats"]), {"c-1": dict(on[4])["c-1"] - 4 + 5, "c-2": dict(on[4])["c-2"] - 2})
        self.assertEqual(dict(rows["seats"]), {"c-1": 10 + len(CLEANUP) - 4 + 5, "c-2": 1})
        self.assertEqual([out(k) for k in range(20 + len(CLEANUP), len(revokes))], [("applied", None, None)] * 5)
        contacts = {c for _, c in rows["contacts"]}
        self.assertTrue({"u2", "u3", "u4", "u5", "m01", "m30", "u13"} <= contacts)
        self.assertFalse({"u1", "u6", "u7", "u11", "u12"} & contacts)
        self.assertEqual([x[1] for x in rows["roles"] if x[2] == "loc-3"], ["n%d" % i for i in range(1, 6)])
        # an access event for each change only: none for u3, u5, u13 (nothing removed)
        versions = {}
        for e in on[1]:
            versions.setdefault(e["customer_id"], []).append(e["version"])
        self.assertEqual(versions["u3"], [1])
        self.assertEqual(versions["u5"], [1])
        self.assertEqual(versions["u6"], [1, 2, 3, 4])
        self.assertEqual(versions["m01"], [1, 2])
        last_u6 = [e for e in on[1] if e["customer_id"] == "u6"][-1]
        self.assertEqual((last_u6["experience"], last_u6["companies"]), ("d2c", []))

    def test_result_over_the_message_limit(self):
        """A revoke whose result would be over max_message_bytes is LIMIT_REACHED and
        changes nothing, in a run as on its own: the run is handed back."""
        shop = self.shop
        longs = ["L%d-" % k + "x" * 200 for k in range(5)]

        def cmd(type, payload):
            return harness.command(type, shop, payload)
        setup = [[cmd("company.upsert", {"company_id": "c-1", "name": "One",
                                         "locations": [{"location_id": l, "name": "n"} for l in longs + ["loc-1"]]})],
                 [cmd("assign", {"company_id": "c-1", "customer": {"id": "big", "email": "big@example.com"},
                                 "locations": [{"location_id": l, "role": "ordering_only"} for l in longs]})]
                 + [cmd("assign", {"company_id": "c-1", "customer": {"id": c, "email": c + "@example.com"},
                                   "locations": [{"location_id": "loc-1", "role": "ordering_only"}]})
                    for c in ("s1", "s2", "s3", "s4")]]
        revokes = [cmd("revoke", {"company_id": "c-1", "customer_id": c, "scope": "all_locations"})
                   for c in ("s1", "s2", "big", "s3", "s4")]
        limit = {"B2BD_MAX_MESSAGE_BYTES": "1300"}
        on = self.run_world(setup, revokes, "on", limit)
        off = self.run_world(setup, revokes, "off", limit)
        self.assertEqual(on[5][0], on[5][1])
        self.assertEqual(off[5][0], off[5][1])
        self.assertEqual(on[0], off[0])
        self.assertEqual(on[1], off[1])
        self.assertEqual(on[2], off[2])
        self.assertEqual([(r["status"], (r["error"] or {}).get("code")) for r in on[0]],
                         [("applied", None)] * 2 + [("rejected", "LIMIT_REACHED")] + [("applied", None)] * 2)
        self.assertEqual(len([x for x in on[2]["roles"] if x[1] == "big"]), 5)


if __name__ == "__main__":
    unittest.main()
