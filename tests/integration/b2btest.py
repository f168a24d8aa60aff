"""Shared steps of the integration tests: a world with a shop, a company and its
locations, command helpers, and the check that every message b2bd published matches
the contract's schemas (topics/schemas)."""
import sys
import time

import harness



class B2bTestCase(harness.TestCase):
    """One topic prefix, database and running daemon (self.d) per test class; each test
    has its own shop (self.shop), so tests do not see each other's rows. Helpers send a
    command and wait for its result. START_DAEMON = False: the test starts its own."""

    SHARED = True
    START_DAEMON = True
    DAEMON_ENV = None  # extra environment of the class's daemon
    PRIVATE_SMTP = False  # the class's daemon sends to its own SMTP server (cls.smtp)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.shared_daemon = None
        cls.smtp = harness.SmtpServer() if cls.PRIVATE_SMTP else None
        if cls.START_DAEMON:
            cls.shared_daemon = harness.Daemon(cls.prefix, cls.dsn, extra_env=cls.DAEMON_ENV,
                                               smtp_url=cls.smtp.url if cls.smtp else None).start()

    @classmethod
    def tearDownClass(cls):
        d = cls.shared_daemon
        problems = []
        try:
            if d is not None:
                # stopped by SIGTERM: status 0 (or what the class set in expect_exit),
                # and no sanitizer report in its log
                problems = d.judge()
        finally:  # a daemon that would not stop still leaves no SMTP server behind
            if cls.smtp is not None:
                cls.smtp.stop()
            super().tearDownClass()
        if problems:
            raise AssertionError("the shared b2bd of %s: %s" % (cls.__name__, "; ".join(problems)))

    def setUp(self):
        super().setUp()
        self.d = self.shared_daemon

    def tearDown(self):
        if self.shared_daemon is not None and self._failed():
            sys.stderr.write("\n----- shared b2bd log (tail) -----\n%s\n" % self.shared_daemon.log()[-30000:])
        super().tearDown()

    # -- sending ------------------------------------------------------------
    def run_cmd(self, type, payload, shop=None, timeout=30, **envelope):
        """Sends one command and returns its result."""
        cmd = harness.command(type, shop or self.shop, payload, **envelope)
        cid = cmd["command_id"].lower()  # results carry the canonical lower-case form
        seen = len(self.bus.results_for(cid))
        self.bus.send(cmd)
        self.bus.flush()
        return self.bus.wait_result(cid, timeout=timeout, nth=seen + 1)

    def run_cmds(self, cmds, timeout=60):
        for c in cmds:
            self.bus.send(c)
        self.bus.flush()
        return self.bus.wait_results([c["command_id"] for c in cmds], timeout=timeout)

    def applied(self, type, payload, **kw):
        r = self.run_cmd(type, payload, **kw)
        self.assertEqual(r["status"], "applied", r)
        return r["result"]

    def rejected(self, type, payload, code, field=None, **kw):
        r = self.run_cmd(type, payload, **kw)
        self.assertEqual(r["status"], "rejected", r)
        self.assertIsNone(r["result"], r)
        self.assertEqual(r["error"]["code"], code, r)
        if field is not None:
            self.assertEqual(r["error"]["field"], field, r)
        self.assertTrue(r["error"]["message"], r)
        return r

    # -- the world ----------------------------------------------------------
    def make_company(self, company="c-1", locations=("loc-1", "loc-2", "loc-3"), shop=None):
        self.applied("company.upsert", {"company_id": company, "name": "Company " + company,
                                        "locations": [{"location_id": l, "name": "Location " + l}
                                                      for l in locations]}, shop=shop)

    def make_customer(self, customer_id, email=None, shop=None, **fields):
        payload = {"customer_id": customer_id, "email": email or customer_id + "@example.com"}
        payload.update(fields)
        return self.applied("customer.upsert", payload, shop=shop)

    def assign(self, customer, locations=(), company="c-1", **extra):
        """customer: an id (str) or a customer object (dict); locations: pairs."""
        cust = {"id": customer} if isinstance(customer, str) else customer
        payload = {"company_id": company, "customer": cust,
                   "locations": [{"location_id": l, "role": r} for l, r in locations]}
        payload.update(extra)
        return payload

    # -- reading ------------------------------------------------------------
    def settle(self, shop=None, timeout=60):
        """Returns once everything b2bd committed before the call is on the broker: a
        marker command (an assign that is NOT_FOUND, so it records nothing) is sent and
        its result awaited. The relay publishes the outbox in rounds, each delivered
        whole before the next starts, and the marker's rows come in a later round than
        anything committed before it was sent. Then read with bus.read_to_end().
        With no daemon of this test running there is nothing to wait for: a daemon
        that exited on SIGTERM flushed the outbox first."""
        running = [d for d in self._daemons + [self.shared_daemon] if d is not None and d.alive()]
        if not running:
            return
        marker = harness.command("assign", shop or self.shop,
                                 {"company_id": "~settle-marker", "customer": {"id": "~settle"}, "locations": []})
        self.bus.send(marker)
        self.bus.flush()
        r = self.bus.wait_result(marker["command_id"], timeout)
        self.assertEqual((r["status"], r["error"]["code"]), ("rejected", "NOT_FOUND"), r)

    def access_events(self, customer_id):
        """Every access event of a customer of this shop published so far."""
        self.settle()
        msgs = self.bus.read_to_end("events.access")
        return [m[1] for m in msgs if isinstance(m[1], dict)
                and m[1].get("shop_id") == self.shop and m[1].get("customer_id") == customer_id]

    def wait_access(self, customer_id, version, timeout=30):
        return self.bus.wait_for(
            "events.access",
            lambda m: isinstance(m[1], dict) and m[1].get("shop_id") == self.shop
            and m[1].get("customer_id") == customer_id and m[1].get("version") == version,
            timeout=timeout)[1]

    def roles_in_db(self, customer_id, company="c-1", shop=None):
        return self.query("SELECT location_id, role FROM roles WHERE shop_id = %s AND company_id = %s"
                          " AND customer_id = %s ORDER BY 1", (shop or self.shop, company, customer_id))

    # -- two daemons in one group ------------------------------------------
    def start_two_daemons(self, extra_env=None):
        """Two daemons of one consumer group, returned once each holds its half of the
        partitions (range assignment: partitions 0-1 of every topic go to one, 2-3 to
        the other), so that commands sent to partitions 0 and 2 meet two daemons."""
        d1 = self.start_daemon(extra_env=extra_env)
        d2 = self.start_daemon(extra_env=extra_env, group_id=d1.env["B2BD_GROUP_ID"])
        half = len(harness.COMMAND_TOPIC_SUFFIXES) * harness.PARTITIONS // 2
        wait_until(lambda: all(d.metrics().get("b2bd_consumer_assigned_partitions") == half for d in (d1, d2)),
                   timeout=60, what="both daemons holding half of the partitions")
        return d1, d2

    @staticmethod
    def commands_done(d, type):
        """Commands of a type a daemon applied or rejected so far (its /metrics)."""
        m = d.metrics()
        return (m.get("b2bd_commands_applied_total", type=type)
                + m.get("b2bd_commands_rejected_total", type=type))

    def check_schemas(self):
        """Every message read so far in this test matches its schema (tearDown checks
        it again for every bus the test opened, see harness.TestCase.tearDown)."""
        if self._bus is not None:
            self.assertEqual(self._bus.schema_problems(), [])


def wait_until(pred, timeout=30, step=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(step)
