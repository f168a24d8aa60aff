"""b2bctl privacy redact asks for confirmation on a terminal: driven through a pty, an
answer other than "yes" sends nothing, "yes" erases."""
import os
import pty
import select
import subprocess
import time

import harness
from b2btest import B2bTestCase

B2BCTL = os.path.join(harness.BUILD_DIR, "b2bctl")
PROMPT = b"This cannot be undone. Type yes: "


class RedactConfirmTest(B2bTestCase):
    def setUp(self):
        super().setUp()
        if not os.access(B2BCTL, os.X_OK):
            harness.missing("%s is not built" % B2BCTL)
        self.make_customer("cust-1", email="ann.%s@example.com" % self.shop)

    def redact_on_a_terminal(self, answer):
        """Runs `b2bctl privacy redact SHOP cust-1` with a pty as its terminal (stdin,
        stdout and stderr), answers the prompt; returns (exit status, what it wrote)."""
        master, slave = pty.openpty()
        e = dict(os.environ, B2BD_KAFKA_BOOTSTRAP=harness.env()["B2BD_KAFKA_BOOTSTRAP"],
                 B2BD_TOPIC_PREFIX=self.prefix, B2BD_PG_DSN=self.dsn)
        p = subprocess.Popen([B2BCTL, "privacy", "redact", self.shop, "cust-1"], env=e,
                             stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        out = b""
        try:
            out = self.read_until(master, p, PROMPT)
            self.assertTrue(out.endswith(PROMPT), out)
            os.write(master, answer + b"\n")
            status = p.wait(60)
            out += self.read_until(master, p, None)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(10)
            os.close(master)
        return status, out.decode("utf-8", "replace")

    @staticmethod
    def read_until(fd, proc, want, timeout=30):
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (want and buf.endswith(want)):
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the other side closed
                    break
                if not chunk:
                    break
                buf += chunk
            elif want is None and proc.poll() is not None:
                break
        return buf

    def customer_rows(self):
        return self.query("SELECT count(*) FROM customers WHERE shop_id = %s AND customer_id = %s",
                          (self.shop, "cust-1"))[0][0]

    def test_no_keeps_the_customer(self):
        for answer in (b"no", b"YES", b"y"):
            with self.subTest(answer=answer):
                status, out = self.redact_on_a_terminal(answer)
                self.assertEqual(status, 1, out)
                self.assertIn("not confirmed, nothing sent", out)
        # nothing was sent: the commands topic of customer.redact holds nothing
        self.settle()
        self.assertEqual(self.customer_rows(), 1)
        sent = [m for m in self.bus.read_to_end("results")
                if isinstance(m[1], dict) and m[1].get("type") == "customer.redact"
                and m[1].get("shop_id") == self.shop]
        self.assertEqual(sent, [])

    def test_yes_erases(self):
        status, out = self.redact_on_a_terminal(b"yes")
        self.assertEqual(status, 0, out)
        self.assertEqual(self.customer_rows(), 0)
