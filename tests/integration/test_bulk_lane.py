"""The bulk lane (CONTRACT.md, "Bulk lane"; src/kafka.c, src/lane.c): commands.bulk takes
every command type and applies it exactly as its own topic does (results, events, rows,
keys, idempotency across the two topics, no WRONG_TOPIC); a command on another topic is
applied while a bulk backlog waits, not behind it; and two imports on two bulk partitions
advance in turn."""
import json
import select
import time
import unittest

import harness
import psycopg2
from b2btest import B2bTestCase, wait_until

BULK = harness.BULK_TOPIC


def strip(msg, *keys):
    return {k: v for k, v in msg.items() if k not in keys}


class SameAsOwnTopic(B2bTestCase):
    """The same commands, one step at a time, to two worlds: one sends each to its own
    topic, the other everything to the bulk topic. Results, access events and rows are
    equal."""

    SHARED = False
    START_DAEMON = False

    def scenario(self):
        shop = self.shop

        def cmd(type, payload, command_id=None):
            return harness.command(type, shop, payload, command_id=command_id)

        def assign(customer, locs, company="c-1", **extra):
            p = {"company_id": company, "customer": customer,
                 "locations": [{"location_id": l, "role": r} for l, r in locs]}
            p.update(extra)
            return cmd("assign", p)

        steps = [
            [cmd("shop.upsert", {"name": "Shop"})],
            [cmd("company.upsert", {"company_id": "c-1", "name": "Company",
                                    "locations": [{"location_id": l, "name": l} for l in ("loc-1", "loc-2")]}),
             cmd("customer.upsert", {"customer_id": "u1", "email": "u1@example.com", "first_name": "Ann"}),
             cmd("customer.upsert", {"customer_id": "u2", "email": "u2@example.com"})],
            [cmd("order.upsert", {"order_id": "o-1", "customer_id": "u1", "status": "open",
                                  "placed_at": "2026-11-01T10:00:00Z", "total": "12.50",
                                  "currency": "EUR"})],
        ]
        first = assign({"id": "u1"}, [("loc-1", "ordering_only")])
        created = assign({"email": "New@Example.com", "first_name": "Bo"}, [("loc-2", "location_admin")])
        steps += [
            [first, created, assign({"id": "ghost"}, [("loc-1", "ordering_only")]),
             assign({"id": "u2"}, [("loc-9", "ordering_only")])],
            [first,  # a repeat: the stored result
             dict(created, payload=dict(created["payload"], locations=[]))],  # IDEMPOTENCY_KEY_REUSED
            [cmd("migrate", {"company_id": "c-1", "customer_id": "u1", "location_id": "loc-1"})],
            [cmd("revoke", {"company_id": "c-1", "customer_id": "new@example.com",
                            "scope": "locations", "location_ids": ["loc-2", "loc-1"]})],
            [cmd("notify", {"company_id": "c-1", "customer_ids": ["u1"], "preview": True})],
            [cmd("assign", {"company_id": "c-1"})],  # INVALID, as on its own topic
        ]
        return steps

    def run_world(self, steps, bulk):
        prefix = harness.unique_name("t") + "."
        harness.create_topics(prefix)
        name, dsn = harness.create_database()
        bus = harness.Bus(prefix)
        try:
            d = harness.Daemon(prefix, dsn).start()
            results = []
            for step in steps:
                seen = {c["command_id"].lower(): len(bus.results_for(c["command_id"].lower())) for c in step}
                for c in step:
                    bus.send(c, topic_suffix=BULK if bulk else None)
                bus.flush()
                for c in step:
                    cid = c["command_id"].lower()
                    results.append(strip(bus.wait_result(cid, timeout=60, nth=seen[cid] + 1),
                                         "event_id", "processed_at"))
            keys = harness.result_keys(bus, [c for s in steps for c in s])
            self.assertEqual(d.stop(), 0)
            access = [strip(m[1], "event_id", "occurred_at") for m in bus.read_to_end("events.access")
                      if isinstance(m[1], dict) and m[1].get("shop_id") == self.shop]
            access.sort(key=lambda e: (e["customer_id"], e["version"]))
            q = lambda sql: harness.db_query(dsn, sql, (self.shop,))  # noqa: E731
            rows = {
                "customers": q("SELECT customer_id, email, first_name, access_version FROM customers"
                               " WHERE shop_id = %s ORDER BY 1"),
                "roles": q("SELECT company_id, customer_id, location_id, role FROM roles"
                           " WHERE shop_id = %s ORDER BY 1, 2, 3"),
                "orders": q("SELECT order_id, company_id, location_id FROM orders WHERE shop_id = %s ORDER BY 1"),
                "inbox": [r[:3] + (strip(json.loads(r[3]), "event_id", "processed_at"),) for r in
                          q("SELECT command_id::text, type, encode(payload_hash, 'hex'), result FROM commands"
                            " WHERE shop_id = %s ORDER BY 1")],
            }
            return results, access, rows, keys
        finally:
            bus.close()
            harness.drop_database(name)

    maxDiff = None

    def test_bulk_topic_applies_every_type_as_its_own_topic(self):
        steps = self.scenario()
        own = self.run_world(steps, bulk=False)
        bulk = self.run_world(steps, bulk=True)
        codes = [(r["status"], (r["error"] or {}).get("code")) for r in bulk[0]]
        self.assertNotIn(("rejected", "WRONG_TOPIC"), codes)
        for want in [("applied", None), ("rejected", "NOT_FOUND"), ("rejected", "IDEMPOTENCY_KEY_REUSED"),
                     ("rejected", "INVALID")]:
            self.assertIn(want, codes)
        types = {c["type"] for s in steps for c in s}
        self.assertEqual(len(types), 8)
        self.assertEqual(bulk[3][0], bulk[3][1], "a result on the bulk lane without its command's key")
        self.assertEqual(bulk[0], own[0])
        self.assertEqual(bulk[1], own[1])
        self.assertEqual(bulk[2], own[2])


class AcrossTopics(B2bTestCase):
    """Idempotency across the two topics of a type (one database, one command id)."""

    def setUp(self):
        super().setUp()
        self.make_company()
        self.make_customer("cust-1")
        self.make_customer("cust-2")

    def send_on(self, cmd, topic_suffix):
        cid = cmd["command_id"].lower()
        seen = len(self.bus.results_for(cid))
        self.bus.send(cmd, topic_suffix=topic_suffix)
        self.bus.flush()
        return self.bus.wait_result(cid, nth=seen + 1)

    def test_a_command_applied_on_one_topic_gets_its_stored_result_on_the_other(self):
        own = harness.command("assign", self.shop, self.assign("cust-1", [("loc-1", "ordering_only")]))
        first = self.send_on(own, "commands.assign")
        self.assertEqual(first["status"], "applied", first)
        self.assertEqual(self.send_on(own, BULK), first, "the stored result, same event_id")

        bulk = harness.command("assign", self.shop, self.assign("cust-2", [("loc-2", "location_admin")]))
        first = self.send_on(bulk, BULK)
        self.assertEqual(first["status"], "applied", first)
        self.assertEqual(self.send_on(bulk, "commands.assign"), first)
        # another payload under that id, on either topic: reused
        reused = dict(bulk, payload=self.assign("cust-2", [("loc-1", "ordering_only")]))
        for topic in ("commands.assign", BULK):
            r = self.send_on(reused, topic)
            self.assertEqual((r["status"], r["error"]["code"]), ("rejected", "IDEMPOTENCY_KEY_REUSED"), r)
        self.assertEqual(self.roles_in_db("cust-2"), [("loc-2", "location_admin")])
        self.assertEqual(len(self.access_events("cust-1")), 1, "applied once")
        self.assertEqual(len(self.access_events("cust-2")), 1, "applied once")


class RelayWake(B2bTestCase):
    """Each lane wakes the relays with a NOTIFY once its batch has committed (in a
    transaction of its own: a NOTIFY inside the batch's transaction would make the other
    lane's commits queue behind this one's WAL flush, PostgreSQL serialising notifying
    commits), so a result goes out at once, not at the relay's next poll."""

    def setUp(self):
        super().setUp()
        self.make_company()
        self.make_customer("cust-1")
        self.make_customer("cust-2")

    def test_each_lane_wakes_the_relay_after_its_commit(self):
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        try:
            cur = conn.cursor()
            cur.execute("LISTEN b2bd_outbox")
            for customer, topic in (("cust-1", "commands.assign"), ("cust-2", BULK)):
                cmd = harness.command("assign", self.shop, self.assign(customer, [("loc-1", "ordering_only")]))
                del conn.notifies[:]
                self.bus.send(cmd, topic_suffix=topic)
                self.bus.flush()
                deadline, committed = time.monotonic() + 20, None
                while committed is None and time.monotonic() < deadline:
                    select.select([conn], [], [], 0.5)
                    conn.poll()
                    if conn.notifies:  # a wake: is the command's transaction committed by now?
                        del conn.notifies[:]
                        cur.execute("SELECT count(*) FROM commands WHERE command_id = %s", (cmd["command_id"],))
                        if cur.fetchone()[0]:
                            committed = True
                self.assertTrue(committed, "no NOTIFY on b2bd_outbox after the %s command committed" % topic)
                self.assertEqual(self.bus.wait_result(cmd["command_id"])["status"], "applied")
        finally:
            conn.close()


def import_rows(shop, companies, per_company, tag):
    """Assigns that create new customers, as an import's rows do, the companies in turn."""
    return [harness.command("assign", shop, {
        "company_id": "c-%d" % c, "customer": {"email": "%s-%d-%d@example.com" % (tag, c, i)},
        "locations": [{"location_id": "l-%d" % c, "role": "ordering_only"}]}, import_id=tag)
        for i in range(per_company) for c in range(companies)]


class Lanes(B2bTestCase):
    """Priority of the other topics over a bulk backlog, and turns between bulk partitions."""

    SHARED = False
    START_DAEMON = False

    def companies(self, shop, n, bus=None):
        bus = bus or self.bus
        cmds = [harness.command("company.upsert", shop, {"company_id": "c-%d" % c, "name": "C%d" % c,
                                                         "locations": [{"location_id": "l-%d" % c, "name": "L"}]})
                for c in range(n)]
        for c in cmds:
            bus.send(c)
        bus.flush()
        for r in bus.wait_results([c["command_id"] for c in cmds], timeout=60):
            self.assertEqual(r["status"], "applied", r)

    def done(self, shop):
        return self.query("SELECT count(*) FROM commands WHERE shop_id = %s AND type = 'assign'", (shop,))[0][0]

    def test_interactive_commands_are_applied_while_a_bulk_backlog_waits(self):
        importer, admin = self.shop, self.shop + "-b"
        d = self.start_daemon()
        self.companies(importer, 8)
        self.companies(admin, 1)
        for i in range(5):
            self.make_customer("u%d" % i, shop=admin)
        self.assertEqual(d.stop(), 0)
        # a backlog on the bulk topic, there before the daemon starts
        rows = import_rows(importer, 8, 2500, "imp")
        for c in rows:
            self.bus.send(c, topic_suffix=BULK)
        self.bus.flush()
        d = self.start_daemon()
        # each lane is a consumer group of its own; right after a start the interactive
        # consumer's first fetch of its partitions takes up to about a second (measured:
        # 0.7-1.2 s, 1,500-2,700 import rows, with the bulk lane's backlog already being
        # applied; README "Two lanes"): one admin command, applied, before the measured
        # ones, so that they measure the lanes, not the start
        self.assertTrue(d.wait_log("lane=interactive", timeout=60), "no interactive partitions")
        wait_until(lambda: self.done(importer) > 0, timeout=60, what="the import under way")
        warm = harness.command("assign", admin, self.assign("u0", [("l-0", "location_admin")], company="c-0"))
        self.bus.send(warm)
        self.bus.flush()
        self.assertEqual(self.bus.wait_result(warm["command_id"], timeout=120)["status"], "applied")
        waits, between = [], []
        for i in range(5):
            cmd = harness.command("assign", admin, self.assign("u%d" % i, [("l-0", "ordering_only")], company="c-0"))
            before = self.done(importer)
            sent = time.monotonic()
            self.bus.send(cmd)
            self.bus.flush()
            r = self.bus.wait_result(cmd["command_id"], timeout=120)
            waits.append(time.monotonic() - sent)
            self.assertEqual(r["status"], "applied", r)
            # import rows applied in transactions that began before this command's
            (applied_at,), = self.query("SELECT processed_at FROM commands WHERE command_id = %s",
                                        (cmd["command_id"],))
            between.append(self.query("SELECT count(*) FROM commands WHERE shop_id = %s AND type = 'assign'"
                                      " AND processed_at < %s", (importer, applied_at))[0][0] - before)
            time.sleep(0.2)
        wait_until(lambda: self.done(importer) == len(rows), timeout=300, what="the import applied")
        print("interactive waits (s): %s; import rows applied meanwhile: %s of %d"
              % (" ".join("%.3f" % w for w in waits), " ".join(map(str, between)), len(rows)))
        # the lanes are applied side by side: what the bulk lane applies while the
        # command goes from the producer to its commit (its fetch, its own batch) is a
        # batch or two (batch_max 500), counted from before the one in hand began (as the
        # count is read first); a slow fetch under load may add one more. Never the
        # backlog.
        self.assertLessEqual(max(between), 3 * 500 + 50, "an interactive command waited behind the backlog")

    def test_bulk_lane_advances_while_the_other_topics_are_saturated(self):
        busy, importer = self.shop, self.shop + "-i"
        d = self.start_daemon()
        self.companies(busy, 8)
        self.companies(importer, 4)
        self.assertEqual(d.stop(), 0)
        # more work on the assign topic than b2bd can take at once (its batches full),
        # and an import waiting on the bulk topic
        interactive, bulk = import_rows(busy, 8, 1000, "busy"), import_rows(importer, 4, 2500, "imp")
        for c in bulk:
            self.bus.send(c, topic_suffix=BULK)
        for c in interactive:
            self.bus.send(c)
        self.bus.flush()
        self.start_daemon()
        # from the 1,000th assign to the 7,000th: the assign topic's batches full all along
        # (whichever consumer got its partitions first, and the last partial batches, left
        # out)
        marks = []
        for at in (1000, 7000):
            wait_until(lambda: self.done(busy) >= at, timeout=300, step=0.05, what="%d assigns" % at)
            marks.append((self.done(busy), self.done(importer)))
        during = marks[1][1] - marks[0][1]
        self.assertLess(marks[1][1], len(bulk), "the import was done before the window closed")
        print("bulk rows applied while %d assigns on the assign topic were: %d"
              % (marks[1][0] - marks[0][0], during))
        # while the assign topic's batches are full, the bulk lane takes a tenth of
        # batch_max (500) once per such batch: about 6,000 / 500 * 50 = 600 rows
        self.assertGreater(during, 150, "the bulk lane starved while the other topics were busy")
        wait_until(lambda: self.done(importer) == len(bulk), timeout=300, what="the import applied")

    def test_bulk_partitions_are_served_in_turn(self):
        big, small = self.shop, self.shop + "-s"
        d = self.start_daemon()
        self.companies(big, 4)
        self.companies(small, 4)
        self.assertEqual(d.stop(), 0)
        # two imports that start at once, on two partitions of the bulk topic: the big
        # one fetched first
        big_rows, small_rows = import_rows(big, 4, 1500, "big"), import_rows(small, 4, 400, "small")
        for c in big_rows:
            self.bus.send(c, topic_suffix=BULK, partition=0)
        self.bus.flush()
        for c in small_rows:
            self.bus.send(c, topic_suffix=BULK, partition=1)
        self.bus.flush()
        self.start_daemon()
        wait_until(lambda: self.done(big) == len(big_rows) and self.done(small) == len(small_rows),
                           timeout=300, what="both imports applied")
        (t0, t_big), = self.query("SELECT min(processed_at), max(processed_at) FROM commands"
                                  " WHERE shop_id IN (%s, %s) AND type = 'assign'", (big, small))
        t_small = self.query("SELECT max(processed_at) FROM commands WHERE shop_id = %s AND type = 'assign'",
                             (small,))[0][0]
        ratio = (t_small - t0).total_seconds() / max((t_big - t0).total_seconds(), 1e-3)
        print("small import done at %.0f%% of the big one's time (%d and %d rows)"
              % (100 * ratio, len(small_rows), len(big_rows)))
        # in turn: the small one is done when about twice its rows were applied, 3,200 of
        # 7,600 (42%); one after the other it would be 100% (or 21% if the small one
        # came first, which the big one's head start rules out)
        self.assertLess(ratio, 0.65, "the small import waited for the big one")


if __name__ == "__main__":
    unittest.main()
