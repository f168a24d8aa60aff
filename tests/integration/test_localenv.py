"""Checks the local test environment itself (no daemon needed)."""

import smtplib
import os
import unittest
import uuid

import harness


def send_mail(port, to, subject="hello", body="body\r\n"):
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        return s.sendmail("sender@example.com", [to],
                          "From: sender@example.com\r\nTo: %s\r\nSubject: %s\r\n\r\n%s"
                          % (to, subject, body))


class KeysTest(unittest.TestCase):
    def test_key_and_topic_rules(self):
        c = harness.command("assign", "s1", {"company_id": "c-1", "customer": {"id": "x"}})
        uuid.UUID(c["command_id"])
        self.assertEqual(harness.key_for(c), "s1/c-1")
        self.assertEqual(harness.topic_for("assign"), "commands.assign")
        for t, payload, key in [
            ("shop.upsert", {"name": "n"}, "s1"),
            ("template.update", {"subject": "x"}, "s1"),
            ("company.upsert", {"company_id": "c-2"}, "s1/c-2"),
            ("customer.upsert", {"customer_id": "cu"}, "s1/cu"),
            ("order.upsert", {"order_id": "o", "customer_id": "cu"}, "s1/cu"),
            ("revoke", {"company_id": "c-3"}, "s1/c-3"),
        ]:
            cmd = harness.command(t, "s1", payload, actor="staff:1")
            self.assertEqual(cmd["actor"], "staff:1")
            self.assertEqual(harness.key_for(cmd), key, t)
            self.assertTrue(harness.topic_for(t).startswith("commands."), t)
        self.assertEqual(harness.topic_for("order.upsert"), "commands.sync")
        with self.assertRaises(ValueError):
            harness.topic_for("nope")


class LocalEnvTest(harness.TestCase):
    CHECK_SCHEMAS = False  # the round trip writes raw bytes to the results topic itself
    def test_postgres_as_b2bd(self):
        rows = self.query("SELECT current_user, current_database(), "
                          "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)")
        self.assertEqual(rows, [("b2bd", self.db_name, False)])
        self.query("CREATE TABLE t (id int PRIMARY KEY)")
        self.query("INSERT INTO t VALUES (%s)", (7,))
        self.assertEqual(self.query("SELECT id FROM t"), [(7,)])
        env = harness.env()
        self.assertEqual(harness.db_query(env["B2BD_PG_DSN"], "SELECT current_user"), [("b2bd",)])

    def test_kafka_roundtrip(self):
        cmd = self.command("assign", {"company_id": "c-1", "customer": {"id": "cu-1"},
                                      "locations": []})
        self.bus.send(cmd)
        self.bus.send(b"\xff not json", topic_suffix="results", key="k1",
                      headers={"error.code": "NOT_JSON"})
        self.bus.flush()
        key, value, headers, partition, offset = self.bus.wait_for(
            "commands.assign", lambda m: isinstance(m[1], dict)
            and m[1].get("command_id") == cmd["command_id"], timeout=30)
        self.assertEqual(key, "%s/c-1" % self.shop)
        self.assertEqual(value, cmd)
        self.assertIn(partition, range(harness.PARTITIONS))
        m = self.bus.wait_for("results", lambda m: m[0] == "k1", timeout=30)
        self.assertEqual(m[1], b"\xff not json")
        self.assertEqual(m[2], {"error.code": "NOT_JSON"})
        self.assertEqual(len(self.bus.read_to_end("results")), 1)

    def test_kafka_control(self):
        self.assertEqual(harness.kafka_control("ping"), "ok")
        self.assertTrue(harness.kafka_control("bogus", check=False).startswith("error"))
        with self.assertRaises(RuntimeError):
            harness.kafka_control("broker-down 99")
        name = harness.unique_name("x") + ".extra"
        harness.kafka_control("create-topic %s 2" % name)
        bus = harness.Bus("")
        try:
            bus.send(b"v", topic_suffix=name, key="k")
            bus.flush()
            self.assertEqual(bus.wait_for(name, lambda m: True)[1], b"v")
            self.assertEqual(len(bus._consumers[name].assignment()), 2)
        finally:
            bus.close()

    def test_smtp_accepts(self):
        to = "%s@example.com" % harness.unique_name("rcpt")
        port = int(harness.env()["SMTP_PORT"])
        self.assertEqual(send_mail(port, to, subject="Welcome"), {})
        msgs = harness.wait_smtp_messages(1, to=to, timeout=10)
        self.assertEqual(len(msgs), 1)
        self.assertEqual(msgs[0]["mail_from"], "sender@example.com")
        self.assertEqual(msgs[0].message["Subject"], "Welcome")
        self.assertIn(b"body", msgs[0]["raw"])

    def test_smtp_scripted_refusals(self):
        # Per recipient, on the shared server.
        to = "%s@example.com" % harness.unique_name("refused")
        port = int(harness.env()["SMTP_PORT"])
        harness.smtp_control("fail-rcpt %s 550 no such user" % to)
        with self.assertRaises(smtplib.SMTPRecipientsRefused) as cm:
            send_mail(port, to)
        self.assertEqual(cm.exception.recipients[to][0], 550)
        self.assertEqual(harness.smtp_messages(to=to), [])
        # Next N messages, on a private server.
        s = self.start_smtp()
        s.control("fail-next 1 554 go away")
        s.control("drop-next 1")
        with self.assertRaises(smtplib.SMTPServerDisconnected):  # drops come first
            send_mail(s.port, "a@example.com")
        with self.assertRaises(smtplib.SMTPDataError) as cm:
            send_mail(s.port, "a@example.com")
        self.assertEqual(cm.exception.smtp_code, 554)
        s.control("fail-next 1 451")
        with self.assertRaises(smtplib.SMTPDataError) as cm:
            send_mail(s.port, "a@example.com")
        self.assertEqual(cm.exception.smtp_code, 451)
        send_mail(s.port, "a@example.com", subject="finally")
        self.assertEqual([m.message["Subject"] for m in s.wait_messages(1)], ["finally"])
        self.assertEqual(s.control("stats"), "ok accepted=1 refused=2 dropped=1 rcpt_refused=0")

    def test_daemon_helper_without_binary(self):
        d = harness.Daemon(self.prefix, self.dsn, binary="/nonexistent/b2bd")
        # a skip when run by hand, a failure under CI (where the build must provide it)
        with self.assertRaises(AssertionError if os.environ.get("CI") else unittest.SkipTest):
            d.start()
        self.assertFalse(d.alive())
        self.assertEqual(d.env["B2BD_TOPIC_PREFIX"], self.prefix)
        self.assertEqual(d.env["B2BD_KAFKA__SESSION_TIMEOUT_MS"], "6000")


if __name__ == "__main__":
    unittest.main()
