"""Batching, and the set-based path for runs of plain assigns (bulk_assign, src/apply_bulk.c and
sql/functions/assign.sql) against the one-by-one path: the same commands,
sent to two worlds that differ only in bulk_assign, give the same results, the same
access events and the same rows, for every outcome an assign can have."""
import re
import time
import unittest

import harness
from b2btest import B2bTestCase

COMPANY = "c-1"
LOCATIONS = ("loc-1", "loc-2", "loc-3")


def strip(msg, *keys):
    return {k: v for k, v in msg.items() if k not in keys}


class BulkMatchesOneByOne(B2bTestCase):
    SHARED = False
    START_DAEMON = False

    def scenario(self):
        """(setup commands, the assigns to compare): built once, so that both worlds get
        the same command ids."""
        shop = self.shop

        def cmd(type, payload, command_id=None):
            return harness.command(type, shop, payload, command_id=command_id)

        def assign(customer, locs, company=COMPANY):
            return cmd("assign", {"company_id": company, "customer": customer,
                                  "locations": [{"location_id": l, "role": r} for l, r in locs]})

        setup = [cmd("company.upsert", {"company_id": COMPANY, "name": "Company",
                                        "locations": [{"location_id": l, "name": l} for l in LOCATIONS]})]
        for i in range(1, 12):
            setup.append(cmd("customer.upsert", {"customer_id": "u%d" % i, "email": "u%d@example.com" % i,
                                                 "first_name": "F%d" % i}))
        # its id is an email, its email another one
        setup.append(cmd("customer.upsert", {"customer_id": "weird@example.com", "email": "other@example.com"}))
        # after the syncs: the assign topic is read apart from theirs
        setup_assign = [assign({"id": "u7"}, [("loc-1", "ordering_only")])]

        first = assign({"id": "u1"}, [("loc-1", "ordering_only")])
        created = assign({"email": "New1@Example.com", "first_name": "Ann", "last_name": "Lee",
                          "phone": "+1 555 0100"}, [("loc-2", "location_admin")])
        # same id, another payload, the same key (so the same partition, after it)
        reuse = dict(created, payload=dict(created["payload"],
                                           locations=[{"location_id": "loc-2", "role": "ordering_only"}]))
        cmds = [
            first,
            created,
            assign({"id": "u2", "email": "u2@example.com"}, [("loc-1", "ordering_only"), ("loc-3", "location_admin")]),
            assign({"email": "U3@EXAMPLE.com"}, [("loc-3", "ordering_only")]),       # found by email
            assign({"id": "n2", "email": "u4@example.com"}, [("loc-1", "ordering_only")]),  # CONFLICT
            assign({"id": "ghost"}, [("loc-1", "ordering_only")]),                   # NOT_FOUND customer
            assign({"id": "u5"}, [("loc-1", "ordering_only"), ("loc-404", "ordering_only")]),  # NOT_FOUND loc
            assign({"id": "u6"}, [("loc-1", "ordering_only")], company="c-404"),     # NOT_FOUND company
            assign({"email": "new3@example.com"}, [("loc-404", "ordering_only")]),   # nothing created
            assign({"id": "u1"}, [("loc-2", "location_admin")]),                     # same customer again
            first,                                                                  # duplicate
            reuse,                                                                  # key reused
            assign({"id": "u7"}, [("loc-1", "ordering_only")]),                      # no change
            assign({"id": "u7"}, [("loc-1", "location_admin")]),                     # role changed
            assign({"email": "Weird@Example.com"}, [("loc-1", "ordering_only")]),    # CONFLICT: id taken
            assign({"id": "u8"}, [("loc-1", "ordering_only")]),
            assign({"id": "u9"}, [("loc-2", "ordering_only")]),                      # LIMIT_REACHED
            assign({"id": "u10"}, [("loc-3", "ordering_only")]),                     # LIMIT_REACHED
            assign({"id": "u7"}, [("loc-2", "ordering_only")]),                      # no seat needed
            assign({"email": "new4@example.com"}, []),                               # contact, no roles
        ]
        return [setup, setup_assign], cmds

    def run_world(self, setup, cmds, bulk):
        prefix = harness.unique_name("t") + "."
        harness.create_topics(prefix)
        name, dsn = harness.create_database()
        bus = harness.Bus(prefix)
        try:
            env = {"B2BD_BULK_ASSIGN": bulk, "B2BD_BATCH_LINGER_MS": "200"}
            d = harness.Daemon(prefix, dsn, extra_env=env).start()
            for step in setup:
                for c in step:
                    bus.send(c)
                bus.flush()
                for r in bus.wait_results([c["command_id"] for c in step], timeout=60):
                    self.assertEqual(r["status"], "applied", r)
            self.assertEqual(d.stop(), 0)
            # seats: 9995 taken, so that the 6th new contact below is refused
            harness.db_query(dsn, "UPDATE companies SET contact_count = 9995 WHERE shop_id = %s", (self.shop,))
            # the commands wait in Kafka while no daemon runs: the next one reads them
            # in one batch, where the runs form
            for c in cmds:
                bus.send(c)
            bus.flush()
            d = harness.Daemon(prefix, dsn, extra_env=env).start()
            ids = [c["command_id"].lower() for c in cmds]
            bus.wait_results(ids, timeout=90)

            def collected():
                return [strip(r, "event_id", "processed_at")
                        for cid in dict.fromkeys(ids) for r in bus.results_for(cid)]
            # every command's result, the repeated ids' second ones too
            deadline = time.monotonic() + 30
            while len(collected()) < len(cmds) and time.monotonic() < deadline:
                bus.poll("results", 0.5)
            results = collected()
            keys = harness.result_keys(bus, cmds)
            self.assertEqual(d.stop(), 0)
            # b2bd exited on SIGTERM, which flushes the outbox: everything is on the broker
            access = [strip(m[1], "event_id", "occurred_at") for m in bus.read_to_end("events.access")
                      if isinstance(m[1], dict) and m[1].get("shop_id") == self.shop]
            access.sort(key=lambda e: (e["customer_id"], e["version"]))
            rows = {
                "customers": harness.db_query(dsn, "SELECT customer_id, email, first_name, last_name, phone,"
                                                   " access_version FROM customers WHERE shop_id = %s ORDER BY 1",
                                              (self.shop,)),
                "contacts": harness.db_query(dsn, "SELECT company_id, customer_id FROM contacts"
                                                  " WHERE shop_id = %s ORDER BY 1, 2", (self.shop,)),
                "roles": harness.db_query(dsn, "SELECT company_id, customer_id, location_id, role FROM roles"
                                               " WHERE shop_id = %s ORDER BY 1, 2, 3", (self.shop,)),
                "seats": harness.db_query(dsn, "SELECT company_id, contact_count FROM companies"
                                               " WHERE shop_id = %s ORDER BY 1", (self.shop,)),
                "inbox": harness.db_query(dsn, "SELECT command_id::text, encode(payload_hash, 'hex')"
                                               " FROM commands WHERE type = 'assign' ORDER BY 1"),
            }
            stopping = [l for l in d.log().splitlines() if "event=stopping" in l][-1]
            bulk_n = int(re.search(r" bulk=(\d+)", stopping).group(1))
            return results, access, rows, bulk_n, keys
        finally:
            bus.close()
            harness.drop_database(name)

    maxDiff = None

    def test_same_results_events_and_rows(self):
        setup, cmds = self.scenario()
        on = self.run_world(setup, cmds, "on")
        off = self.run_world(setup, cmds, "off")
        self.assertEqual(off[3], 0, "bulk_assign=off used the set-based path")
        # most of the commands went through the set-based path (runs split at the
        # second command about u1 and about u7)
        self.assertGreaterEqual(on[3], 12, "the set-based path was hardly used")
        # every result carries its command's key, on both paths
        self.assertEqual(on[4][0], on[4][1])
        self.assertEqual(off[4][0], off[4][1])
        self.assertEqual(on[0], off[0])
        self.assertEqual(on[1], off[1])
        self.assertEqual(on[2], off[2])

        results = {}
        for r in on[0]:
            results.setdefault(r["command_id"], r)  # a repeated id: its first result
        codes = [(r["status"], (r["error"] or {}).get("code")) for r in on[0]]
        for want in [("rejected", "CONFLICT"), ("rejected", "NOT_FOUND"), ("rejected", "LIMIT_REACHED"),
                     ("rejected", "IDEMPOTENCY_KEY_REUSED"), ("applied", None)]:
            self.assertIn(want, codes)
        self.assertEqual(len(on[0]), len(cmds))  # the duplicate's stored result, sent again
        created = results[cmds[1]["command_id"].lower()]["result"]
        self.assertEqual(created["customer_id"], "new1@example.com")
        self.assertTrue(created["customer_created"])
        self.assertEqual(created["roles"], [{"location_id": "loc-2", "role": "location_admin"}])
        customers = [r[0] for r in on[2]["customers"]]
        self.assertNotIn("new3@example.com", customers)  # a rejected assign creates nothing
        self.assertEqual(on[2]["seats"], [(COMPANY, 10000)])
        # u7's no-change assign published no access event; its role change did
        self.assertEqual([e["version"] for e in on[1] if e["customer_id"] == "u7"], [1, 2, 3])


class OneBatch(B2bTestCase):
    """Commands that wait in Kafka while no daemon runs reach the next one in a single
    batch (one transaction), checked with b2bd_batch_size_messages; each test runs with
    the set-based path on and off."""

    SHARED = False
    START_DAEMON = False

    def world(self):
        d = self.start_daemon()
        self.make_company(COMPANY, LOCATIONS)
        for i in range(1, 6):
            self.make_customer("u%d" % i)
        self.assertEqual(d.stop(), 0)

    def one_batch(self, cmds, bulk, partitions=None, env=None):
        """Sends cmds with no daemon running (cmds[i] to partitions[i] when given), then
        starts one: returns their results and the daemon's metrics."""
        for i, c in enumerate(cmds):
            self.bus.send(c, partition=partitions[i] if partitions else None)
        self.bus.flush()
        d = self.start_daemon(extra_env=dict(env or {}, B2BD_BULK_ASSIGN=bulk, B2BD_BATCH_LINGER_MS="200",
                                             B2BD_HTTP_LISTEN="127.0.0.1:0"))
        results = self.bus.wait_results([c["command_id"] for c in cmds], timeout=60)
        got, want = harness.result_keys(self.bus, cmds)
        self.assertEqual(got, want, "a result without its command's key")
        m = d.metrics()
        self.assertEqual((m.get("b2bd_batch_size_messages_count"), m.get("b2bd_batch_size_messages_sum")),
                         (1.0, float(len(cmds))), "the commands were not applied in one batch")
        return results, m

    def assign_cmd(self, customer, locs):
        return self.command("assign", self.assign(customer, locs))

    def test_rejected_commands_between_applied_ones(self):
        for bulk in ("on", "off"):
            with self.subTest(bulk_assign=bulk):
                self.shop = harness.unique_name("shop-")
                self.world()
                cmds = [self.assign_cmd("u1", [("loc-1", "ordering_only")]),
                        self.assign_cmd("ghost", [("loc-1", "ordering_only")]),
                        self.assign_cmd("u2", [("loc-2", "ordering_only")]),
                        self.assign_cmd("u3", [("loc-1", "ordering_only"), ("loc-404", "ordering_only")]),
                        self.assign_cmd("u4", [("loc-3", "location_admin")])]
                results, m = self.one_batch(cmds, bulk)
                self.assertEqual([r["status"] for r in results],
                                 ["applied", "rejected", "applied", "rejected", "applied"])
                self.assertEqual(results[1]["error"]["field"], "payload.customer.id")
                self.assertEqual(results[3]["error"]["field"], "payload.locations[1].location_id")
                self.assertEqual(self.roles_in_db("u3"), [])  # its loc-1 role was undone
                self.assertEqual(self.query("SELECT count(*) FROM contacts WHERE shop_id = %s", (self.shop,)),
                                 [(3,)])
                self.assertEqual(m.get("b2bd_apply_bulk_commands_total"), 5.0 if bulk == "on" else 0.0)
                for d in self._daemons:
                    d.stop()

    def test_two_commands_for_the_same_customer_in_order(self):
        for bulk in ("on", "off"):
            with self.subTest(bulk_assign=bulk):
                self.shop = harness.unique_name("shop-")
                self.world()
                # runs: [u1 u2 u4] [u1 u3 u5] [u1]: a command about u1 closes the run
                cmds = [self.assign_cmd("u1", [("loc-1", "ordering_only")]),
                        self.assign_cmd("u2", [("loc-1", "ordering_only")]),
                        self.assign_cmd("u4", [("loc-1", "ordering_only")]),
                        self.assign_cmd("u1", [("loc-1", "location_admin")]),
                        self.assign_cmd("u3", [("loc-1", "ordering_only")]),
                        self.assign_cmd("u5", [("loc-1", "ordering_only")]),
                        self.assign_cmd("u1", [("loc-2", "ordering_only")])]
                results, m = self.one_batch(cmds, bulk)
                self.assertEqual([r["status"] for r in results], ["applied"] * 7)
                self.assertEqual(m.get("b2bd_apply_bulk_commands_total"), 6.0 if bulk == "on" else 0.0)
                results = [results[0], None, results[3], None, results[6]]
                self.assertEqual([r["result"]["roles"] for r in (results[0], results[2], results[4])], [
                    [{"location_id": "loc-1", "role": "ordering_only"}],
                    [{"location_id": "loc-1", "role": "location_admin"}],
                    [{"location_id": "loc-1", "role": "location_admin"},
                     {"location_id": "loc-2", "role": "ordering_only"}]])
                self.assertEqual([r["result"]["contact_created"] for r in (results[0], results[2], results[4])],
                                 [True, False, False])
                self.assertEqual(self.roles_in_db("u1"), [("loc-1", "location_admin"), ("loc-2", "ordering_only")])
                events = self.access_events("u1")
                self.assertEqual([(e["version"], e["caused_by"]) for e in events],
                                 [(i + 1, cmds[k]["command_id"].lower()) for i, k in enumerate((0, 3, 6))])
                for d in self._daemons:
                    d.stop()

    def test_two_partitions_two_workers(self):
        """Two companies' commands on two partitions of one batch: each partition goes to
        one worker, in order, and both workers run; every command is applied once."""
        self.world()
        d = self.start_daemon()
        self.make_company("c-2", ("loc-b1", "loc-b2"))
        self.assertEqual(d.stop(), 0)
        cmds, parts = [], []
        for i in range(1, 6):
            for company, locs, part in ((COMPANY, ("loc-1", "loc-2"), 0), ("c-2", ("loc-b1", "loc-b2"), 1)):
                cmds.append(self.command("assign", self.assign("u%d" % i, [(locs[0], "ordering_only")],
                                                               company=company)))
                cmds.append(self.command("assign", self.assign("u%d" % i, [(locs[1], "location_admin")],
                                                               company=company)))
                parts += [part, part]
        results, m = self.one_batch(cmds, "on", parts, {"B2BD_APPLY_WORKERS": "2"})
        self.assertEqual([r["status"] for r in results], ["applied"] * len(cmds))
        self.assertEqual(m.get("b2bd_apply_parallel_batches_total"), 1.0)
        for i in range(1, 6):
            self.assertEqual(self.roles_in_db("u%d" % i), [("loc-1", "ordering_only"), ("loc-2", "location_admin")])
            self.assertEqual(self.roles_in_db("u%d" % i, "c-2"),
                             [("loc-b1", "ordering_only"), ("loc-b2", "location_admin")])
            # four changes of each customer, in two companies: versions 1..4, no gap
            self.assertEqual(sorted(e["version"] for e in self.access_events("u%d" % i)), [1, 2, 3, 4])
        self.assertEqual(self.query("SELECT company_id, contact_count FROM companies WHERE shop_id = %s"
                                    " ORDER BY 1", (self.shop,)), [(COMPANY, 5), ("c-2", 5)])


if __name__ == "__main__":
    unittest.main()
