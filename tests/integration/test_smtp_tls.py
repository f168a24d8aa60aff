"""The notifier against SMTP servers that require STARTTLS and AUTH (tools/smtp_server.py
with a certificate from a CA made here with openssl, and a user and password):
a private CA through smtp_ca_file, a certificate b2bd must not trust, a wrong password,
smtp_starttls = required against a server without STARTTLS; and notifier_rate_per_s
measured by the start times of the emails."""
import os
import shutil
import subprocess
import tempfile

import harness
from b2btest import B2bTestCase, wait_until

FAST_RETRY = {"B2BD_NOTIFIER_RETRY_INITIAL_MS": "200", "B2BD_NOTIFIER_RETRY_MAX_MS": "400"}
USER, PASSWORD = "b2bd", "s3cret-smtp-pw"


def openssl(*args, cwd):
    subprocess.run([harness.need_tool("openssl")] + list(args), cwd=cwd, check=True,
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=60)


def make_ca(d, name):
    """A CA (name.pem, name.key) and a server certificate it signed for 127.0.0.1
    (name-server.pem, name-server.key)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", name + ".key", "-out", name + ".pem", "-days", "2",
            "-subj", "/CN=b2bd test CA " + name, cwd=d)
    openssl("req", *ec, "-keyout", name + "-server.key", "-out", name + "-server.csr",
            "-subj", "/CN=127.0.0.1", cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", name + "-server.csr", "-CA", name + ".pem", "-CAkey", name + ".key",
            "-CAcreateserial", "-out", name + "-server.pem", "-days", "2", "-extfile", name + ".ext",
            cwd=d)
    return os.path.join(d, name + ".pem")


class SmtpBase(B2bTestCase):
    START_DAEMON = False
    SHARED = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="smtp-tls-")
        cls.ca = make_ca(cls.tmp, "ca")
        cls.other_ca = make_ca(cls.tmp, "other")
        cls.password_file = os.path.join(cls.tmp, "password")
        with open(cls.password_file, "w") as f:
            f.write(PASSWORD + "\n")
        cls.wrong_password_file = os.path.join(cls.tmp, "wrong")
        with open(cls.wrong_password_file, "w") as f:
            f.write("not-the-password\n")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def tls_server(self):
        """A server that requires STARTTLS, then AUTH as USER."""
        return self.start_smtp(args=["--tls-cert", os.path.join(self.tmp, "ca-server.pem"),
                                     "--tls-key", os.path.join(self.tmp, "ca-server.key"),
                                     "--require-starttls", "--auth", "%s:%s" % (USER, PASSWORD)])

    def world(self, n_customers=1):
        self.applied("shop.upsert", {"name": "TLS Shop", "account_url": "https://tls.example/account",
                                     "from_email": "hello@tls.example"})
        self.make_company("c-1", ["loc-1"])
        ids = []
        for i in range(n_customers):
            cid = "cust-%d" % i
            self.make_customer(cid, email="%s.%s@example.com" % (cid, self.shop))
            self.applied("assign", self.assign(cid, [("loc-1", "ordering_only")]))
            ids.append(cid)
        r = self.applied("notify", {"company_id": "c-1", "customer_ids": ids})
        return [q["notification_id"] for q in r["queued"]]

    def row(self, nid):
        return self.query("SELECT status, attempts, last_error FROM notifications"
                          " WHERE notification_id = %s", (nid,))[0]

    def daemon_for(self, server, starttls="required", ca=None, password_file=None, user=USER):
        env = dict(FAST_RETRY, B2BD_SMTP_STARTTLS=starttls)
        if ca:
            env["B2BD_SMTP_CA_FILE"] = ca
        if password_file:
            env["B2BD_SMTP_PASSWORD_FILE"] = password_file
        url = "smtp://%s@%s" % (user, server.addr) if user else server.url
        return self.start_daemon(extra_env=env, smtp_url=url)

    def failing(self, nid, curl_code):
        """Waits until the email failed at least twice (retried, so transient), and
        returns its last error, which names curl's code."""
        wait_until(lambda: self.row(nid)[1] >= 2, timeout=60, what="two attempts")
        status, attempts, error = self.row(nid)
        self.assertEqual(status, "queued", error)
        self.assertIn("(curl %d" % curl_code, error)
        return error


class SmtpTlsTest(SmtpBase):
    def test_starttls_and_auth_with_a_private_ca(self):
        server = self.tls_server()
        d = self.daemon_for(server, ca=self.ca, password_file=self.password_file)
        nid = self.world()[0]
        mail = server.wait_messages(1)[0]
        self.assertTrue(mail["tls"], mail)
        self.assertEqual(mail["auth_user"], USER)
        wait_until(lambda: self.row(nid)[0] == "sent", what="sent recorded")
        self.assertEqual(self.row(nid)[:2], ("sent", 1))
        self.assertNotIn(PASSWORD, d.log())

    def test_certificate_the_daemon_must_not_trust(self):
        # the system's CAs (no smtp_ca_file), then another private CA: both refuse
        for ca in (None, self.other_ca):
            with self.subTest(ca=ca):
                server = self.tls_server()
                d = self.daemon_for(server, ca=ca, password_file=self.password_file)
                nid = self.world()[0] if ca is None else self.requeue()
                error = self.failing(nid, 60)  # CURLE_PEER_FAILED_VERIFICATION
                self.assertIn("certificate", error)
                self.assertEqual(server.messages(), [])
                self.assertEqual(d.stop(), 0)

    def requeue(self):
        r = self.applied("notify", {"company_id": "c-1", "customer_ids": ["cust-0"]})
        return r["queued"][0]["notification_id"]

    def test_wrong_password(self):
        server = self.tls_server()
        d = self.daemon_for(server, ca=self.ca, password_file=self.wrong_password_file)
        nid = self.world()[0]
        error = self.failing(nid, 67)  # CURLE_LOGIN_DENIED: retried, the settings' fault
        self.assertIn("reply 535", error)
        self.assertNotIn("not-the-password", error)
        self.assertNotIn("not-the-password", d.log())
        self.assertEqual(server.messages(), [])

    def test_required_starttls_refuses_a_server_without_it(self):
        plain = self.start_smtp()  # no STARTTLS offered, no AUTH
        d = self.daemon_for(plain, starttls="required", user=None)
        nid = self.world()[0]
        self.failing(nid, 64)  # CURLE_USE_SSL_FAILED
        self.assertEqual(plain.messages(), [])
        self.assertEqual(d.stop(), 0)
        # the same server with smtp_starttls = try: sent in clear
        self.daemon_for(plain, starttls="try", user=None)
        mail = plain.wait_messages(1)[0]
        self.assertFalse(mail["tls"])
        wait_until(lambda: self.row(nid)[0] == "sent", what="sent recorded")


class NotifierPaceTest(SmtpBase):
    RATE = 4
    EMAILS = 9

    def test_rate_spaces_the_starts(self):
        """notifier_rate_per_s = 4 with 4 workers: 9 emails queued at once start at
        least 1/4 s apart on average (the workers share one pace), where unpaced they
        all start within a fraction of a second."""
        server = self.start_smtp()
        self.start_daemon(extra_env=dict(FAST_RETRY, B2BD_NOTIFIER_RATE_PER_S=str(self.RATE),
                                         B2BD_NOTIFIER_CONCURRENCY="4"), smtp_url=server.url)
        self.world(self.EMAILS)
        mails = server.wait_messages(self.EMAILS, to=None, timeout=60)
        starts = sorted(m["mail_at"] for m in mails)
        span = starts[-1] - starts[0]
        gaps = sorted(b - a for a, b in zip(starts, starts[1:]))
        # the pace spaces the sends' starts by 1/RATE; their MAIL FROM reaches the
        # server after a connection and EHLO that vary a little
        self.assertGreaterEqual(span, (self.EMAILS - 1) / self.RATE - 0.25, starts)
        self.assertGreaterEqual(gaps[len(gaps) // 2], 0.8 / self.RATE, gaps)
        self.assertLess(span, (self.EMAILS - 1) / self.RATE + 10, starts)
        print("%d emails at %d/s: span %.2fs, gaps %s" % (self.EMAILS, self.RATE, span,
                                                          ", ".join("%.3f" % g for g in gaps)))
