"""The B2B access email: notify, assign's notify, preview, resend, staff copies,
templates, and the notifier's delivery with retry against a real SMTP server."""
import os
import socket
import subprocess
import time
import unittest
import uuid

import harness
from b2btest import B2bTestCase, wait_until

FAST_RETRY = {"B2BD_NOTIFIER_RETRY_INITIAL_MS": "200", "B2BD_NOTIFIER_RETRY_MAX_MS": "400"}


class NotifyBase(B2bTestCase):
    PRIVATE_SMTP = True
    DAEMON_ENV = FAST_RETRY

    def setUp(self):
        super().setUp()
        self.smtp.control("clear")
        self.applied("shop.upsert", {"name": "Nordic Tools", "account_url": "https://nordic.example/account",
                                     "from_email": "hello@nordic.example", "staff_email": "staff@nordic.example"})
        self.make_company("c-1", ["loc-1", "loc-2"])
        self.email = "ann.%s@example.com" % self.shop
        self.make_customer("cust-1", email=self.email, first_name="Ann", last_name="Berg")

    def notify(self, customer_ids, **kw):
        p = {"company_id": "c-1", "customer_ids": customer_ids}
        p.update(kw)
        return p

    def mails(self, to=None, count=1, timeout=30):
        return self.smtp.wait_messages(count, to=to or self.email, timeout=timeout)

    def event(self, notification_id, status, timeout=30):
        return self.bus.wait_for("events.notifications",
                                 lambda m: m[1].get("notification_id") == notification_id
                                 and m[1].get("status") == status, timeout=timeout)[1]

    def row(self, notification_id):
        return self.query("SELECT status, attempts, last_error, template_version, to_address FROM notifications"
                          " WHERE notification_id = %s", (notification_id,))[0]


class NotifyTest(NotifyBase):

    def test_notify_queues_sends_and_reports(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only"), ("loc-2", "location_admin")]))
        self.make_customer("cust-2")
        self.applied("assign", self.assign("cust-2", []))  # a contact with "No access"
        self.make_customer("cust-3")                       # not a contact
        r = self.applied("notify", self.notify(["cust-1", "cust-2", "cust-3", "ghost"]))
        self.assertEqual([q["customer_id"] for q in r["queued"]], ["cust-1"])
        self.assertEqual(r["skipped"], [{"customer_id": "cust-2", "reason": "NO_LOCATION_ACCESS"},
                                        {"customer_id": "cust-3", "reason": "NOT_A_CONTACT"},
                                        {"customer_id": "ghost", "reason": "NOT_FOUND"}])
        nid = r["queued"][0]["notification_id"]
        ev = self.event(nid, "sent")
        self.assertEqual((ev["type"], ev["attempts"], ev["error"], ev["customer_id"], ev["company_id"]),
                         ("notification.sent", 1, None, "cust-1", "c-1"))
        self.assertEqual(ev["message_id"], "<%s@b2bd>" % nid)
        mail = self.mails()[0]
        m = mail.message
        self.assertEqual(mail["mail_from"], "hello@nordic.example")
        self.assertEqual(m["To"], self.email)
        self.assertIn("hello@nordic.example", m["From"])
        self.assertEqual(m["Message-ID"], "<%s@b2bd>" % nid)
        self.assertIsNotNone(m["Date"])
        self.assertEqual(m.get_content_type(), "multipart/alternative")
        text = m.get_body(("plain",)).get_content()
        html = m.get_body(("html",)).get_content()
        self.assertIn("Hello Ann", text)
        self.assertIn("Company c-1", m["Subject"])
        self.assertIn("Location loc-1 (Ordering only)", text)
        self.assertIn("Location loc-2 (Location admin)", text)
        self.assertIn("6-digit code", text)
        self.assertIn("https://nordic.example/account", html)
        self.assertEqual(self.row(nid)[:2], ("sent", 1))

    def test_location_page_selects_contacts_of_that_location(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        r = self.applied("notify", self.notify(["cust-1"], location_id="loc-2"))
        self.assertEqual(r["skipped"], [{"customer_id": "cust-1", "reason": "NO_LOCATION_ACCESS"}])
        r = self.applied("notify", self.notify(["cust-1"], location_id="loc-1"))
        nid = r["queued"][0]["notification_id"]
        self.event(nid, "sent")
        self.assertIn("sent from the location Location loc-1", self.mails()[0].message.get_body(("plain",)).get_content())

    def test_assign_with_notify(self):
        r = self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")], notify=True))
        self.assertEqual(len(r["notification_ids"]), 1)
        self.event(r["notification_ids"][0], "sent")
        self.make_customer("cust-9")
        r = self.applied("assign", self.assign("cust-9", [], notify=True))
        self.assertEqual(r["notification_ids"], [])
        self.assertEqual(r["notification_skipped"], {"reason": "NO_LOCATION_ACCESS"})

    def test_preview_renders_and_queues_nothing(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        r = self.applied("notify", self.notify(["cust-1"], preview=True))
        self.assertEqual(len(r["previews"]), 1, r)
        p = r["previews"][0]
        self.assertEqual((p["customer_id"], p["to"]), ("cust-1", self.email))
        self.assertIn("Nordic Tools", p["subject"])
        self.assertIn("Hello Ann", p["text"])
        self.assertIn("<li>Location loc-1 (Ordering only)</li>", p["html"])
        self.assertEqual(self.query("SELECT count(*) FROM notifications WHERE shop_id = %s", (self.shop,)), [(0,)])

    def test_staff_copy_and_resend(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        first = self.applied("notify", self.notify(["cust-1"]))["queued"][0]["notification_id"]
        self.event(first, "sent")
        r = self.applied("notify", self.notify(["cust-1"], recipient="staff"))
        staff = r["queued"][0]["notification_id"]
        self.event(staff, "sent")
        self.assertEqual(self.row(staff)[4], "staff@nordic.example")
        r = self.applied("notify", self.notify([], resend_of=first))
        again = r["queued"][0]["notification_id"]
        self.assertNotEqual(again, first)
        self.event(again, "sent")
        mails = self.mails(count=2)
        self.assertEqual(mails[0].message.get_body(("plain",)).get_content(),
                         mails[1].message.get_body(("plain",)).get_content())
        self.assertNotEqual(mails[0].message["Message-ID"], mails[1].message["Message-ID"])
        r = self.applied("notify", self.notify([], resend_of=first, recipient="staff", staff_email="boss@example.com"))
        self.event(r["queued"][0]["notification_id"], "sent")
        self.mails(to="boss@example.com")
        # another shop's notification is not ours to resend
        other = harness.unique_name("shop-")
        self.make_company("c-1", ["loc-1"], shop=other)
        self.rejected("notify", self.notify([], resend_of=first), "NOT_FOUND", "payload.resend_of", shop=other)
        self.rejected("notify", self.notify([], resend_of=str(uuid.uuid4())), "NOT_FOUND", "payload.resend_of")

    def test_custom_template_and_escaping(self):
        r = self.applied("template.update", {"subject": "Welcome {{customer.first_name}} to {{company.name}}",
                                             "text": "T: {{customer.first_name}}{{#locations}} [{{name}}={{role}}]{{/locations}}",
                                             "html": "<p>{{customer.first_name}}</p>{{{customer.last_name}}}"})
        self.assertEqual(r["template_version"], 1)
        self.assertEqual(self.applied("template.update", {"subject": "{{shop.name}}", "text": "x {{customer.first_name}}",
                                                          "html": "<b>{{customer.first_name}}</b>"})["template_version"], 2)
        self.rejected("template.update", {"subject": "ok", "text": "fine", "html": "<p>\n{{#locations}}</p>"},
                      "INVALID", "payload.html")
        r = self.run_cmd("template.update", {"subject": "{{#a}}", "text": "x", "html": "y"})
        self.assertIn("line 1", r["error"]["message"])
        self.assertEqual(r["error"]["field"], "payload.subject")
        self.applied("template.update", {"subject": "Welcome {{customer.first_name}} to {{company.name}}",
                                         "text": "T: {{customer.first_name}}{{#locations}} [{{name}}={{role}}]{{/locations}}",
                                         "html": "<p>{{customer.first_name}}</p>{{{customer.last_name}}}"})
        self.make_customer("cust-1", email=self.email, first_name="<script>alert(1)</script>\r\nBcc: evil@example.com",
                           last_name="<b>raw</b>")
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        nid = self.applied("notify", self.notify(["cust-1"]))["queued"][0]["notification_id"]
        self.event(nid, "sent")
        self.assertEqual(self.row(nid)[3], 3)
        mail = self.mails()[0]
        m = mail.message
        self.assertEqual(mail["rcpt_tos"], [self.email], "no recipient added through a name")
        self.assertIsNone(m["Bcc"])
        self.assertNotIn("\n", str(m["Subject"]))
        self.assertIn("<script>alert(1)</script>", str(m["Subject"]))
        text = m.get_body(("plain",)).get_content().replace("\r\n", "\n")
        self.assertEqual(text.split(" [")[0], "T: <script>alert(1)</script>\nBcc: evil@example.com",
                         "text takes values as they are")
        html = m.get_body(("html",)).get_content()
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", html)
        self.assertNotIn("<script>", html)
        self.assertIn("<b>raw</b>", html, "triple mustache is raw")


class RetryTest(NotifyBase):

    def setUp(self):
        super().setUp()
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))

    def test_4xx_twice_then_accepted(self):
        self.smtp.control("fail-next 2 451 try again later")
        nid = self.applied("notify", self.notify(["cust-1"]))["queued"][0]["notification_id"]
        ev = self.event(nid, "sent")
        self.assertEqual(ev["attempts"], 3)
        self.assertEqual(len(self.mails()), 1)

    def test_connection_dropped_mid_message_then_accepted(self):
        self.smtp.control("drop-next 1 data")
        nid = self.applied("notify", self.notify(["cust-1"]))["queued"][0]["notification_id"]
        ev = self.event(nid, "sent")
        self.assertEqual(ev["attempts"], 2)
        self.assertEqual(len(self.mails()), 1)

    def test_5xx_fails_at_once(self):
        self.smtp.control("fail-rcpt %s 550 no such user" % self.email)
        nid = self.applied("notify", self.notify(["cust-1"]))["queued"][0]["notification_id"]
        ev = self.event(nid, "failed")
        self.assertEqual((ev["type"], ev["attempts"]), ("notification.failed", 1))
        self.assertIn("550", ev["error"])
        status, attempts, last_error, _, _ = self.row(nid)
        self.assertEqual((status, attempts), ("failed", 1))
        self.assertIn("550", last_error)


class GiveUpTest(NotifyBase):
    DAEMON_ENV = dict(FAST_RETRY, B2BD_NOTIFIER_GIVE_UP_S="2")

    def test_retries_exhausted(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.smtp.control("fail-next 1000 421 busy")
        nid = self.applied("notify", self.notify(["cust-1"]))["queued"][0]["notification_id"]
        ev = self.event(nid, "failed", timeout=30)
        self.assertGreater(ev["attempts"], 2)
        self.assertIn("421", ev["error"])
        self.smtp.control("clear")


class ServerDownTest(NotifyBase):
    """The SMTP server is down when the email is queued and comes back later."""

    START_DAEMON = False
    PRIVATE_SMTP = False

    def test_server_down_then_back(self):
        # a socket bound but not listening: connections to its port are refused, as with a
        # server that is down, and no other process can take the port meanwhile; the SMTP
        # server later listens on this very socket (--fd)
        held = socket.socket()
        self.addCleanup(held.close)
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        d = self.start_daemon(extra_env=FAST_RETRY, smtp_url="smtp://127.0.0.1:%d" % port)
        self.d = d
        tmp = os.path.join(harness.LOCALENV_DIR, "smtp-down-" + self.shop)
        os.makedirs(tmp, exist_ok=True)
        self.smtp = _Stub(tmp)
        self.applied("shop.upsert", {"name": "S", "from_email": "s@example.com"})
        self.make_company("c-1", ["loc-1"])
        self.make_customer("cust-1", email="down@example.com")
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        nid = self.applied("notify", self.notify(["cust-1"]))["queued"][0]["notification_id"]
        wait_until(lambda: self.row(nid)[1] >= 2, what="two failed attempts")
        self.assertEqual(self.row(nid)[0], "queued")
        proc = subprocess.Popen([harness.PYTHON, os.path.join(harness.SOURCE_DIR, "tools", "smtp_server.py"),
                                 "--fd", str(held.fileno()), "--dir", tmp],
                                pass_fds=(held.fileno(),), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            ev = self.event(nid, "sent", timeout=30)
            self.assertGreaterEqual(ev["attempts"], 3)
            self.assertEqual(len(harness.smtp_messages(directory=tmp)), 1)
        finally:
            proc.terminate()
            proc.wait(10)

    def setUp(self):
        harness.TestCase.setUp(self)


class _Stub:
    def __init__(self, d):
        self.dir = d

    def control(self, line):
        pass


class TwoWorkersTest(NotifyBase):
    """Two notifier-only daemons share one queue: every email is sent exactly once."""

    START_DAEMON = False

    def setUp(self):
        harness.TestCase.setUp(self)
        self.d = self.start_daemon(smtp_url=self.smtp.url)  # the command worker (and a notifier)
        self.start_daemon(args=["--role", "notifier"], smtp_url=self.smtp.url,
                          extra_env={"B2BD_NOTIFIER_CONCURRENCY": "3"})
        self.start_daemon(args=["--role", "notifier"], smtp_url=self.smtp.url,
                          extra_env={"B2BD_NOTIFIER_CONCURRENCY": "3"})
        self.smtp.control("clear")
        self.smtp.control("delay 20")
        self.applied("shop.upsert", {"name": "S", "from_email": "s@example.com"})
        self.make_company("c-1", ["loc-1"])

    def test_no_email_sent_twice(self):
        n = 40
        cmds = [harness.command("assign", self.shop, self.assign({"email": "w%02d.%s@example.com" % (i, self.shop)},
                                                                 [("loc-1", "ordering_only")], notify=True))
                for i in range(n)]
        results = self.run_cmds(cmds)
        ids = [r["result"]["notification_ids"][0] for r in results]
        for nid in ids:
            self.event(nid, "sent", timeout=60)
        mails = [m for m in self.smtp.messages() if self.shop in m["rcpt_tos"][0]]
        self.assertEqual(len(mails), n)
        self.assertEqual(len({m.message["Message-ID"] for m in mails}), n, "each email once")
        self.smtp.control("clear")


class LostSessionTest(NotifyBase):
    """The database session of the worker sending an email is lost while the mail server
    holds the reply to DATA: the notification stays leased to that worker (migration
    0010), no other worker sends it meanwhile, and the worker records the outcome on a
    new session. Exactly one delivery, recorded once."""

    DAEMON_ENV = dict(FAST_RETRY, B2BD_NOTIFIER_CONCURRENCY="3")

    def held(self):
        return int(self.smtp.control("held").split()[1])

    def test_session_lost_during_send_one_delivery(self):
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.smtp.control("hold")
        try:
            nid = self.applied("notify", self.notify(["cust-1"]))["queued"][0]["notification_id"]
            wait_until(lambda: self.held() >= 1, what="the DATA reply held")
            killed = self.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND query ILIKE '%notifications%'")
            self.assertTrue(killed and all(k for (k,) in killed), killed)
            # the other workers reconnect within a second; give them a few to send it too
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline and self.held() < 2:
                time.sleep(0.1)
            self.assertEqual(self.held(), 1, "a second send of the same notification in flight")
        finally:
            self.smtp.control("release")
        ev = self.event(nid, "sent")
        self.assertEqual(ev["attempts"], 1)
        # the server has answered every DATA it was given (its own count), and none is held
        wait_until(lambda: self.smtp.control("busy") == "ok 0", timeout=30, what="the SMTP server idle")
        self.assertEqual(self.held(), 0)
        self.assertEqual(len(self.smtp.messages(to=self.email)), 1, "delivered once")
        self.assertEqual(self.row(nid)[:2], ("sent", 1))
        self.assertEqual(self.query("SELECT lease_until, leased_by FROM notifications WHERE notification_id = %s",
                                    (nid,)), [(None, None)])
        self.settle()
        sent = [m for m in self.bus.read_to_end("events.notifications") if m[1].get("notification_id") == nid]
        self.assertEqual(len(sent), 1, "one notification.sent event")


if __name__ == "__main__":
    unittest.main()
