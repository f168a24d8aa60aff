"""Operations: the HTTP endpoint (/metrics, /healthz, /readyz) of a running daemon read
with a real HTTP client, metrics moving as commands flow, readiness following a private
PostgreSQL going down and up, the sd_notify protocol, and the systemd units
(systemd-analyze verify, install layout)."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import harness
from b2btest import B2bTestCase, wait_until
from private_pg import PrivatePostgres

FAST_RETRY = {"B2BD_NOTIFIER_RETRY_INITIAL_MS": "200", "B2BD_NOTIFIER_RETRY_MAX_MS": "400"}


# the endpoint helpers live in harness (http_get, Metrics, scrape)
http_get = harness.http_get
Metrics = harness.Metrics
scrape = harness.scrape


class HttpMixin:
    """A daemon whose HTTP endpoint is on a free port of its own."""

    def wait_ready(self, port, timeout=60):
        last = [None]

        def ready():
            last[0] = http_get(port, "/readyz")
            return last[0][0] == 200
        try:
            wait_until(ready, timeout=timeout, what="/readyz 200")
        except AssertionError:
            raise AssertionError("/readyz still %r" % (last[0],)) from None

    def wait_metric(self, port, pred, timeout=30, what="metrics"):
        seen = [None]

        def check():
            seen[0] = scrape(port)
            return pred(seen[0])
        try:
            wait_until(check, timeout=timeout, what=what)
        except AssertionError:
            raise AssertionError("timed out waiting for %s; metrics:\n%s"
                                 % (what, seen[0].text if seen[0] else "")) from None
        return seen[0]


class EndpointTest(HttpMixin, B2bTestCase):
    """One daemon (all roles) with a private SMTP server; metrics read as deltas."""

    PRIVATE_SMTP = True

    @classmethod
    def setUpClass(cls):
        # port 0: the daemon binds a free port itself and logs it (no race with
        # another test taking a port picked in advance)
        cls.DAEMON_ENV = dict(FAST_RETRY, B2BD_HTTP_LISTEN="127.0.0.1:0",
                              B2BD_KAFKA__STATISTICS_INTERVAL_MS="1000")
        super().setUpClass()
        cls.port = cls.shared_daemon.http_port()

    def test_health_ready_and_errors(self):
        self.assertIn("event=http_listening addr=127.0.0.1:0 port=%d " % self.port, self.d.log())
        self.assertNotEqual(self.port, 0)
        self.assertEqual(http_get(self.port, "/healthz")[::2], (200, "ok\n"))
        self.wait_ready(self.port)
        status, ctype, body = http_get(self.port, "/readyz")
        self.assertEqual((status, body), (200, "ready\n"))
        self.assertTrue(ctype.startswith("text/plain"), ctype)
        self.assertEqual(http_get(self.port, "/nope")[0], 404)
        self.assertEqual(http_get(self.port, "/metrics", method="POST")[0], 405)
        self.assertEqual(http_get(self.port, "/healthz", method="HEAD")[0], 200)

    def test_metrics_text_format(self):
        status, ctype, body = http_get(self.port, "/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(ctype, "text/plain; version=0.0.4; charset=utf-8")
        m = Metrics(body)
        self.assertTrue(body.endswith("\n"))
        for name, t in m.type.items():
            self.assertTrue(name.startswith("b2bd_"), name)
            self.assertIn(name, m.help, "no HELP for " + name)
            self.assertIn(t, ("counter", "gauge", "histogram"))
            if t == "counter":
                self.assertTrue(name.endswith("_total"), name)
        for (name, _), _v in m.samples.items():
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            self.assertIn(name if name in m.type else base, m.type, "sample without TYPE: " + name)
        for name in ("b2bd_commands_consumed_total", "b2bd_commands_applied_total",
                     "b2bd_commands_rejected_total", "b2bd_commands_rejected_by_code_total",
                     "b2bd_dead_letters_total", "b2bd_batch_size_messages",
                     "b2bd_batch_duration_seconds", "b2bd_command_duration_seconds",
                     "b2bd_outbox_rows", "b2bd_outbox_oldest_age_seconds",
                     "b2bd_events_published_total", "b2bd_consumer_lag_messages",
                     "b2bd_consumer_assigned_partitions", "b2bd_notifications_sent_total",
                     "b2bd_notifications_retried_total", "b2bd_notifications_failed_total",
                     "b2bd_db_reconnects_total", "b2bd_ready"):
            self.assertIn(name, m.type)
        with open(os.path.join(harness.SOURCE_DIR, "CMakeLists.txt"), encoding="utf-8") as f:
            version = re.search(r"project\(b2bd VERSION ([0-9.]+)", f.read()).group(1)
        self.assertEqual(m.get("b2bd_build_info", version=version), 1)
        # histogram: buckets cumulative, +Inf equal to _count
        buckets = sorted((float(dict(k[1])["le"]), v) for k, v in m.samples.items()
                         if k[0] == "b2bd_batch_size_messages_bucket")
        self.assertEqual(buckets[-1][0], float("inf"))
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets))
        self.assertEqual(buckets[-1][1], m.get("b2bd_batch_size_messages_count"))

    def test_metrics_move_as_commands_flow(self):
        self.wait_ready(self.port)
        before = scrape(self.port)
        self.make_company()
        self.make_customer("cust-1")
        self.make_customer("cust-2")
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.applied("assign", self.assign("cust-2", [("loc-2", "location_admin")]))
        self.rejected("assign", self.assign("nobody", [("loc-1", "ordering_only")]), "NOT_FOUND")
        self.bus.send(b"this is not json", topic_suffix="commands.assign", key=self.shop)
        self.bus.flush()

        def moved(m):
            d = lambda name, **kw: m.get(name, **kw) - before.get(name, **kw)  # noqa: E731
            return (d("b2bd_commands_applied_total", type="assign") == 2
                    and d("b2bd_commands_applied_total", type="company.upsert") == 1
                    and d("b2bd_commands_applied_total", type="customer.upsert") == 2
                    and d("b2bd_commands_rejected_total", type="assign") == 1
                    and d("b2bd_commands_rejected_by_code_total", code="NOT_FOUND") == 1
                    and d("b2bd_dead_letters_total", code="NOT_JSON") == 1
                    and d("b2bd_commands_consumed_total", topic="commands.assign") == 4
                    and d("b2bd_commands_consumed_total", topic="commands.sync") == 3
                    and d("b2bd_events_published_total", topic="results") >= 6
                    and d("b2bd_events_published_total", topic="events.access") >= 2
                    and d("b2bd_events_published_total", topic="dlq") >= 1
                    and d("b2bd_batch_size_messages_count") >= 1
                    and d("b2bd_command_duration_seconds_count") == 7
                    and m.get("b2bd_batch_duration_seconds_sum") > before.get("b2bd_batch_duration_seconds_sum"))
        m = self.wait_metric(self.port, moved, what="the counters of 7 commands and a dead letter")
        # the relay drained the outbox; the consumer reports its partitions and their lag
        m = self.wait_metric(self.port, lambda m: m.get("b2bd_outbox_rows") == 0
                             and any(k.endswith("@" + self.prefix + "commands.assign")
                                     for k in m.series("b2bd_consumer_lag_messages")),
                             what="an empty outbox and lag series of our topics")
        # the five topics of their own and the bulk topic, 4 partitions each
        self.assertEqual(m.get("b2bd_consumer_assigned_partitions"), 24)
        for lane in ("interactive", "bulk"):
            self.assertIn(("b2bd_lane_lag_messages", (("lane", lane),)), m.samples)
        self.assertEqual(m.get("b2bd_outbox_oldest_age_seconds"), 0)
        self.assertEqual(m.get("b2bd_db_up"), 1)
        self.assertEqual(m.get("b2bd_ready"), 1)
        for k, lag in m.series("b2bd_consumer_lag_messages").items():
            self.assertGreaterEqual(lag, 0, k)

    def test_notification_counters(self):
        self.wait_ready(self.port)
        self.applied("shop.upsert", {"name": "Ops Shop", "account_url": "https://ops.example/account",
                                     "from_email": "hello@ops.example"})
        self.make_company("c-1", ["loc-1"])
        good, bad = "ok.%s@example.com" % self.shop, "bad.%s@example.com" % self.shop
        self.make_customer("cust-ok", email=good)
        self.make_customer("cust-bad", email=bad)
        for c in ("cust-ok", "cust-bad"):
            self.applied("assign", self.assign(c, [("loc-1", "ordering_only")]))
        before = scrape(self.port)
        self.smtp.control("fail-next 1 451 try again later")
        self.smtp.control("fail-rcpt %s 550 no such user" % bad)
        self.applied("notify", {"company_id": "c-1", "customer_ids": ["cust-ok"]})
        self.smtp.wait_messages(1, to=good)
        self.applied("notify", {"company_id": "c-1", "customer_ids": ["cust-bad"]})

        def counted(m):
            d = lambda name: m.get(name) - before.get(name)  # noqa: E731
            return (d("b2bd_notifications_sent_total") == 1 and d("b2bd_notifications_retried_total") == 1
                    and d("b2bd_notifications_failed_total") == 1
                    and d("b2bd_notification_send_duration_seconds_count") == 3)
        self.wait_metric(self.port, counted, what="1 sent, 1 retried, 1 failed")


class ReadinessTest(HttpMixin, B2bTestCase):
    """/readyz follows the database: a daemon on a private PostgreSQL that is stopped and
    started again; commands sent meanwhile are applied after, none skipped."""

    START_DAEMON = False

    def setUp(self):
        super().setUp()
        self.pg = PrivatePostgres()
        self.addCleanup(self.pg.destroy)

    def test_readyz_follows_postgres_and_nothing_is_skipped(self):
        d = self.daemon(extra_env={"B2BD_HTTP_LISTEN": "127.0.0.1:0"}, dsn=self.pg.dsn)
        d.start()
        port = d.http_port()
        self.wait_ready(port)
        self.make_company()
        customers = ["cust-%d" % i for i in range(6)]
        for c in customers:
            self.make_customer(c)
        self.applied("assign", self.assign(customers[0], [("loc-1", "ordering_only")]))

        self.pg.stop()
        wait_until(lambda: http_get(port, "/readyz") == (503, "text/plain; charset=utf-8",
                                                          "not ready: database unreachable\n"),
                   timeout=20, what="/readyz 503 database unreachable")
        self.assertEqual(http_get(port, "/healthz")[0], 200, "the process still runs")
        # commands while the database is away: consumed, not applied yet
        cmds = [harness.command("assign", self.shop, self.assign(c, [("loc-2", "location_admin")]))
                for c in customers]
        for c in cmds:
            self.bus.send(c)
        self.bus.flush()
        self.assertTrue(d.wait_log("event=batch_failed", timeout=30), "the batch waits for the database")
        self.assertEqual(http_get(port, "/readyz")[0], 503)
        self.assertEqual(scrape(port).get("b2bd_db_up"), 0)

        self.pg.start()
        started = time.monotonic()
        self.wait_ready(port, timeout=30)
        self.assertLess(time.monotonic() - started, 30)
        results = self.bus.wait_results([c["command_id"] for c in cmds], timeout=60)
        self.assertEqual([r["status"] for r in results], ["applied"] * len(cmds), results)
        rows = harness.db_query(self.pg.dsn, "SELECT customer_id, location_id, role FROM roles"
                                " WHERE shop_id = %s AND location_id = 'loc-2' ORDER BY 1", (self.shop,))
        self.assertEqual(rows, [(c, "loc-2", "location_admin") for c in sorted(customers)])
        m = scrape(port)
        self.assertGreaterEqual(m.get("b2bd_db_reconnects_total"), 1)
        self.assertGreaterEqual(m.get("b2bd_batch_retries_total"), 1)
        self.assertEqual(m.get("b2bd_db_up"), 1)
        self.assertEqual(d.stop(), 0)


class SdNotifyTest(B2bTestCase):
    """The Type=notify protocol: READY=1 once ready, WATCHDOG=1 while the main loop runs
    (WATCHDOG_USEC set), STOPPING=1 on SIGTERM; to a datagram socket as systemd does."""

    START_DAEMON = False

    def test_ready_watchdog_stopping(self):
        tmp = tempfile.mkdtemp(prefix="b2bd-notify.", dir="/tmp")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind(path)
        sock.settimeout(0.5)
        d = self.daemon(extra_env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000",
                                   "B2BD_HTTP_LISTEN": "127.0.0.1:0"})
        d.start()
        got = []

        def read_until(pred, timeout):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    got.append(sock.recv(4096).decode())
                except socket.timeout:
                    pass
                if pred():
                    return True
            return False
        self.assertTrue(read_until(lambda: any("READY=1" in g for g in got), 30), got)
        ready_at = next(i for i, g in enumerate(got) if "READY=1" in g)
        self.assertIn("STATUS=consuming commands", got[ready_at])
        # pings at a quarter of the period: several within 2 s
        self.assertTrue(read_until(lambda: sum(g == "WATCHDOG=1" for g in got[ready_at:]) >= 3, 5), got)
        d.signal(signal.SIGTERM)
        self.assertTrue(read_until(lambda: any(g.startswith("STOPPING=1") for g in got), 30), got)
        self.assertEqual(d.stop(), 0)


def _render_unit(name, bindir):
    with open(os.path.join(harness.SOURCE_DIR, "systemd", name + ".in")) as f:
        text = f.read()
    return text.replace("@B2BD_BINDIR@", bindir).replace("@B2BD_DOCDIR@", "/usr/share/doc/b2bd")


def _verify(directory, names):
    """systemd-analyze verify of the units: (exit code, the lines about our units)."""
    r = subprocess.run(["systemd-analyze", "verify"] + [os.path.join(directory, n) for n in names],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=120, env=dict(os.environ, SYSTEMD_LOG_COLOR="0"))
    lines = [l for l in r.stdout.decode("utf-8", "replace").splitlines()
             if any(n in l for n in names) or directory in l]
    return r.returncode, lines


class SystemdUnitsTest(unittest.TestCase):
    """The units in systemd/ are checked by systemd-analyze verify (any complaint fails),
    carry the settings the operations need, and cmake --install puts everything in place."""

    UNITS = ("b2bd.service", "b2bd-notifier.service")

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="b2bd-units.", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        harness.need_tool("systemd-analyze")
        self.b2bd = os.path.join(harness.BUILD_DIR, "b2bd")
        if not os.access(self.b2bd, os.X_OK):
            harness.missing("%s is not built" % self.b2bd)

    def write_units(self, edit=None):
        for n in self.UNITS:
            text = _render_unit(n, harness.BUILD_DIR)
            if edit:
                text = edit(text)
            with open(os.path.join(self.tmp, n), "w") as f:
                f.write(text)

    def test_units_verify_without_complaint(self):
        self.write_units()
        rc, lines = _verify(self.tmp, self.UNITS)
        self.assertEqual((rc, lines), (0, []))

    def test_verify_catches_a_broken_unit(self):
        # the check above must be able to fail: a misspelt key, a bad value, a missing binary
        for edit in (lambda t: t.replace("Restart=on-failure", "Restrat=on-failure"),
                     lambda t: t.replace("Type=notify", "Type=notifyy"),
                     lambda t: t.replace("ProtectSystem=strict", "ProtectSystem=very"),
                     lambda t: t.replace(harness.BUILD_DIR + "/b2bd", "/nonexistent/b2bd")):
            self.write_units(edit)
            rc, lines = _verify(self.tmp, self.UNITS)
            self.assertTrue(rc != 0 or lines, "verify accepted a broken unit")

    def test_security_exposure_low(self):
        # systemd's own score of the sandboxing, 0 (locked down) to 10; ours is 1.5
        self.write_units()
        for n in self.UNITS:
            r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20",
                                os.path.join(self.tmp, n)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
            self.assertEqual(r.returncode, 0, r.stdout.decode("utf-8", "replace")[-3000:])

    def test_units_settings(self):
        for n in self.UNITS:
            text = _render_unit(n, "/usr/bin")
            settings = {}
            for line in text.splitlines():
                if "=" in line and not line.startswith("#"):
                    k, _, v = line.partition("=")
                    settings.setdefault(k, []).append(v)
            one = {k: v[-1] for k, v in settings.items()}
            self.assertEqual(one["Type"], "notify")
            self.assertEqual(one["Restart"], "on-failure")
            self.assertTrue(one["WatchdogSec"])
            self.assertTrue(one["RestartSec"])
            for k, v in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                         ("PrivateTmp", "yes"), ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
                         ("CapabilityBoundingSet", ""), ("ConfigurationDirectory", "b2bd"),
                         ("DynamicUser", "yes")):
                self.assertEqual(one.get(k), v, "%s: %s" % (n, k))
            self.assertEqual(one["LoadCredential"], "pg_password:/etc/b2bd/pg_password")
            self.assertIn("B2BD_PG_PASSWORD_FILE=%d/pg_password", settings["Environment"])
            self.assertNotIn("password", one["ExecStart"].lower())
            self.assertTrue(one["ExecStart"].startswith("/usr/bin/b2bd --config /etc/b2bd/b2bd.conf"))
            self.assertEqual(one["ExecStart"].endswith("--role notifier"), n == "b2bd-notifier.service")

    def test_install_layout(self):
        prefix = os.path.join(self.tmp, "prefix")
        r = subprocess.run(["cmake", "--install", harness.BUILD_DIR, "--prefix", prefix],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout.decode()[-3000:])
        for p in ("bin/b2bd", "bin/b2bctl", "lib/systemd/system/b2bd.service",
                  "lib/systemd/system/b2bd-notifier.service", "share/b2bd/templates",
                  "share/doc/b2bd/b2bd.conf.example", "share/doc/b2bd/README.md"):
            self.assertTrue(os.path.exists(os.path.join(prefix, p)), p)
        self.assertTrue(os.listdir(os.path.join(prefix, "share/b2bd/templates")))
        with open(os.path.join(prefix, "lib/systemd/system/b2bd.service")) as f:
            unit = f.read()
        self.assertNotIn("@B2BD_", unit)
        self.assertRegex(unit, r"\nExecStart=/\S+/bin/b2bd --config /etc/b2bd/b2bd.conf\n")


if __name__ == "__main__":
    unittest.main()
