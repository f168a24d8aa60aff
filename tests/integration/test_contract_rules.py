"""Rules of the contract (../shared/CONTRACT.md) that no other file exercised: several
instances starting at once on an empty database, SIGTERM flushing the outbox, --config,
the From fallback, resend_of with customer_ids, and order.upsert / revoke fine points."""
import os
import shutil
import tempfile
import threading
import unittest

import psycopg2

import harness
from b2btest import B2bTestCase, wait_until
from test_notify import NotifyBase
from test_revoke_migrate import RevokeMigrateBase


class StartTogetherTest(B2bTestCase):
    """Starting the daemon: "Pending database migrations are applied at start, under a
    lock, so several instances may start at once." Three instances start at the same
    moment on an empty database."""

    START_DAEMON = False
    SHARED = False

    def test_three_instances_start_at_once_on_an_empty_database(self):
        self.assertEqual(self.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), [(0,)])
        ds = [self.daemon(group_id=self.prefix + "b2bd") for _ in range(3)]
        barrier = threading.Barrier(3)
        errors = []

        def start(d):
            barrier.wait()
            try:
                d.start(timeout=60)
            except AssertionError as e:
                errors.append(str(e)[:3000])
        threads = [threading.Thread(target=start, args=(d,)) for d in ds]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        self.assertEqual(errors, [])
        self.assertTrue(all(d.alive() for d in ds))
        # each migration recorded once, and every file of sql/migrations applied
        files = sorted(f for f in os.listdir(os.path.join(harness.SOURCE_DIR, "sql", "migrations"))
                       if f.endswith(".sql"))
        rows = self.query("SELECT version, count(*) FROM schema_migrations GROUP BY version ORDER BY version")
        self.assertEqual(len(rows), len(files), rows)
        self.assertTrue(all(n == 1 for _, n in rows), rows)
        # and they work: commands are applied
        self.make_company("c-1", ["loc-1"])
        self.make_customer("cust-1")
        r = self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]), timeout=60)
        self.assertEqual(r["roles"], [{"location_id": "loc-1", "role": "ordering_only"}])


class SigtermFlushTest(B2bTestCase):
    """SIGTERM: "stop taking commands, finish and commit what is in hand, flush events,
    exit 0": after the exit, with no restart, every committed command's result is on
    the results topic and the outbox is empty."""

    START_DAEMON = False

    def test_sigterm_flushes_the_outbox_before_exit(self):
        d = self.start_daemon()
        self.make_company("c-1", ["loc-1", "loc-2"])
        n = 1000
        cmds = [harness.command("assign", self.shop, self.assign({"email": "f%04d@example.com" % i},
                                                                 [("loc-%d" % (1 + i % 2), "ordering_only")]))
                for i in range(n)]
        for c in cmds:
            self.bus.send(c)
        self.bus.flush()
        self.bus.wait_for("results", lambda m: m[1].get("type") == "assign", timeout=60)
        self.assertEqual(d.stop(), 0, "SIGTERM: exit 0")
        self.assertIn("event=stopped", d.log())
        # no daemon runs now: what was committed must already be published
        self.assertEqual(self.query("SELECT count(*) FROM outbox"), [(0,)], "the outbox was flushed")
        committed = {r[0] for r in self.query("SELECT command_id::text FROM commands WHERE shop_id = %s"
                                              " AND type = 'assign'", (self.shop,))}
        self.assertGreater(len(committed), 0)
        got = self.bus.wait_results(sorted(committed), timeout=30)
        self.assertEqual({r["status"] for r in got}, {"applied"})
        # and the access event of every customer created before the stop
        created = self.query("SELECT count(*) FROM customers WHERE shop_id = %s", (self.shop,))[0][0]

        def customers_with_events():
            self.bus.poll("events.access", 0.5)
            return len({m[1]["customer_id"] for m in self.bus.messages("events.access")
                        if isinstance(m[1], dict) and m[1].get("shop_id") == self.shop})
        wait_until(lambda: customers_with_events() >= created, timeout=30,
                   what="an access event for every customer created before SIGTERM")


class ConfigFileTest(B2bTestCase):
    """b2bd --config FILE: the settings come from the file (the environment holds none of
    them), and an environment variable still overrides the file."""

    START_DAEMON = False

    def test_daemon_runs_from_a_config_file(self):
        tmp = tempfile.mkdtemp(prefix="b2bd-conf.", dir="/tmp")
        self.addCleanup(shutil.rmtree, tmp, True)
        e = harness.env()
        path = os.path.join(tmp, "b2bd.conf")
        with open(path, "w") as f:
            f.write("# written by test_contract_rules\n"
                    "kafka_bootstrap = %s\n"
                    "pg_dsn = \"%s\"\n"
                    "topic_prefix = %s\n"
                    "group_id = %sfromfile\n"
                    "smtp_url = %s\n"
                    "smtp_from = conf@example.com\n"
                    "http_listen = 127.0.0.1:0\n"
                    "kafka.session.timeout.ms = 6000\n"
                    "kafka.fetch.wait.max.ms = 10\n"
                    % (e["B2BD_KAFKA_BOOTSTRAP"], self.dsn, self.prefix, self.prefix, e["B2BD_SMTP_URL"]))
        d = self.daemon(args=["--config", path])
        for k in ("B2BD_KAFKA_BOOTSTRAP", "B2BD_PG_DSN", "B2BD_TOPIC_PREFIX", "B2BD_GROUP_ID", "B2BD_SMTP_URL",
                  "B2BD_SMTP_FROM", "B2BD_HTTP_LISTEN", "B2BD_KAFKA__SESSION_TIMEOUT_MS",
                  "B2BD_KAFKA__FETCH_WAIT_MAX_MS"):
            d.env.pop(k, None)
        d.start()
        self.assertIn("group=%sfromfile " % self.prefix, d.log())
        self.make_company("c-1", ["loc-1"])
        self.make_customer("cust-1")
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.assertEqual(self.query("SELECT DISTINCT group_id FROM consumer_offsets"), [(self.prefix + "fromfile",)])
        self.assertEqual(d.stop(), 0)
        # the environment overrides the file
        d2 = self.daemon(args=["--config", path], group_id=self.prefix + "fromenv")
        for k in ("B2BD_KAFKA_BOOTSTRAP", "B2BD_PG_DSN", "B2BD_TOPIC_PREFIX", "B2BD_SMTP_URL"):
            d2.env.pop(k, None)
        d2.start()
        self.applied("assign", self.assign("cust-1", [("loc-1", "location_admin")]), timeout=60)
        self.assertIn((self.prefix + "fromenv",), self.query("SELECT DISTINCT group_id FROM consumer_offsets"))


class FromFallbackTest(NotifyBase):
    """Email: "From is the shop's from_email, else B2BD_SMTP_FROM"."""

    def setUp(self):
        super().setUp()
        # a shop without from_email
        self.applied("shop.upsert", {"name": "No Sender"})

    def test_from_falls_back_to_b2bd_smtp_from(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        nid = self.applied("notify", self.notify(["cust-1"]))["queued"][0]["notification_id"]
        self.event(nid, "sent")
        m = self.mails()[0]
        self.assertEqual(m.message["From"], self.d.env["B2BD_SMTP_FROM"])
        self.assertEqual(self.d.env["B2BD_SMTP_FROM"], "b2bd-test@example.com")


class ResendIgnoresCustomerIdsTest(NotifyBase):
    """notify result: with resend_of, "customer_ids is then ignored", even when it is not
    empty: the email goes again to the first notification's recipient only."""

    def test_resend_of_ignores_a_non_empty_customer_ids(self):
        self.make_customer("cust-2", email="other.%s@example.com" % self.shop, first_name="Bo")
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.applied("assign", self.assign("cust-2", [("loc-1", "ordering_only")]))
        first = self.applied("notify", self.notify(["cust-1"]))["queued"][0]["notification_id"]
        self.event(first, "sent")
        r = self.applied("notify", self.notify(["cust-2", "ghost"], resend_of=first))
        self.assertEqual(len(r["queued"]), 1, r)
        self.assertEqual(r["queued"][0]["customer_id"], "cust-1")
        self.assertEqual(r["skipped"], [])
        again = r["queued"][0]["notification_id"]
        self.assertNotEqual(again, first)
        self.event(again, "sent")
        self.assertEqual(len(self.mails(count=2)), 2)
        self.assertEqual(self.query("SELECT count(*) FROM notifications WHERE shop_id = %s AND customer_id = 'cust-2'",
                                    (self.shop,)), [(0,)])
        self.assertEqual(self.smtp.messages(to="other.%s@example.com" % self.shop), [])


class OrderRulesTest(RevokeMigrateBase):
    """Migration binding: "A cancelled or deleted B2B order counts as b2b. An order.upsert
    of an order that was migrated updates its status, total and dates but never its
    company or location." revoke: "remove_migrated_orders with a scope other than company
    is INVALID"."""

    def test_upsert_of_a_migrated_order_keeps_company_and_location(self):
        self.order("o-1", placed_at="2026-01-01T10:00:00Z")
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.applied("migrate", self.migrate("loc-1"))
        self.assertEqual(self.orders(), [("o-1", "open", "c-1", "loc-1")])
        # names another company and location, a new status, total and date
        self.order("o-1", status="closed", company="c-2", location="loc-x", total="99.00",
                   placed_at="2026-02-02T12:00:00Z")
        self.assertEqual(self.orders(), [("o-1", "closed", "c-1", "loc-1")])
        self.assertEqual(self.query("SELECT total::text, placed_at = '2026-02-02T12:00:00Z' FROM orders"
                                    " WHERE shop_id = %s AND order_id = 'o-1'", (self.shop,)), [("99.00", True)])
        # another location of the same company: still not moved
        self.order("o-1", status="closed", company="c-1", location="loc-2")
        self.assertEqual(self.orders(), [("o-1", "closed", "c-1", "loc-1")])

    def test_deleted_and_cancelled_b2b_orders_count_as_b2b(self):
        self.order("b-del", status="deleted", company="c-1", location="loc-1")
        self.order("b-can", status="cancelled", company="c-1", location="loc-2")
        self.order("d-del", status="deleted")
        self.order("d-open")
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        r = self.applied("migrate", self.migrate("loc-1"))
        self.assertEqual(r["migrated_order_ids"], ["d-open"])
        self.assertEqual(r["skipped"], {"b2b": 2, "cancelled": 0, "deleted": 1})

    def test_remove_migrated_orders_needs_scope_company(self):
        self.order("o-1")
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")], migrate_orders_to="loc-1"))
        for scope, extra in (("locations", {"location_ids": ["loc-1"]}), ("all_locations", {})):
            self.rejected("revoke", self.revoke(scope, remove_migrated_orders=True, **extra), "INVALID",
                          "payload.remove_migrated_orders")
        self.assertEqual(self.roles_in_db("cust-1"), [("loc-1", "ordering_only")], "nothing revoked")
        self.assertEqual(self.orders(), [("o-1", "open", "c-1", "loc-1")], "nothing reverted")
        # false is allowed with any scope
        self.applied("revoke", self.revoke("locations", ["loc-1"], remove_migrated_orders=False))


class DeadlockTest(B2bTestCase):
    """"A command that hits a deadlock ... is retried in its savepoint" (README; the
    contract: a deadlock is a failure of the surroundings, retried, never a rejection).
    A real deadlock between b2bd and another session: a trigger made by the test takes
    two advisory locks in b2bd's transaction, the test's session holds the second and
    then asks for the first. PostgreSQL fails b2bd's statement with 40P01 (the test's
    session waits 20 s before it would look for a deadlock itself)."""

    def test_real_deadlock_is_retried_and_applied(self):
        self.make_company("c-1", ["loc-1"])
        self.make_customer("cust-dl")
        self.query("CREATE FUNCTION test_deadlock() RETURNS trigger LANGUAGE plpgsql AS $$"
                   " BEGIN"
                   "  IF NEW.shop_id = %s AND NEW.customer_id = 'cust-dl' THEN"
                   "   PERFORM pg_advisory_xact_lock(4242001);"
                   "   PERFORM pg_advisory_xact_lock(4242002);"
                   "  END IF;"
                   "  RETURN NEW;"
                   " END $$", (self.shop,))
        self.query("CREATE TRIGGER test_deadlock BEFORE INSERT ON contacts FOR EACH ROW"
                   " EXECUTE FUNCTION test_deadlock()")
        other = psycopg2.connect(harness.dsn_for(self.db_name, user="postgres"))
        self.addCleanup(other.close)
        cur = other.cursor()
        cur.execute("SET deadlock_timeout = '20s'")
        cur.execute("SELECT pg_advisory_xact_lock(4242002)")
        cmd = self.command("assign", self.assign("cust-dl", [("loc-1", "ordering_only")]))
        self.send(cmd)
        # b2bd holds the first lock and waits for the second, which the test holds
        wait_until(lambda: self.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                                      " AND objid = 4242002 AND NOT granted")[0][0] == 1,
                   timeout=60, what="b2bd waiting for the test's lock")
        cur.execute("SELECT pg_advisory_xact_lock(4242001)")  # returns once b2bd's statement failed
        other.commit()
        r = self.bus.wait_result(cmd["command_id"], timeout=60)
        self.assertEqual(r["status"], "applied", r)
        self.assertEqual(self.roles_in_db("cust-dl"), [("loc-1", "ordering_only")])
        log = self.d.log()
        self.assertIn("event=retry_command cmd_id=%s sqlstate=40P01" % cmd["command_id"], log)
        self.assertEqual(self.d.metrics().get("b2bd_apply_isolated_commands_total"), 0)


if __name__ == "__main__":
    unittest.main()
