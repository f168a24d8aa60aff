"""The daemon under valgrind for a short run of every kind of command: no memory error
and no leak reported. valgrind needs a build without the sanitizers, so this test makes
one (BUILD_DIR/valgrind, the daemon only)."""
import os
import re
import stat
import subprocess
import unittest

import harness
from b2btest import B2bTestCase, wait_until


class ValgrindTest(B2bTestCase):
    START_DAEMON = False
    PRIVATE_SMTP = True

    def test_short_run_reports_no_error_and_no_leak(self):
        harness.need_tool("valgrind")
        vbuild = os.path.join(harness.BUILD_DIR, "valgrind")
        subprocess.run(["cmake", "-S", harness.SOURCE_DIR, "-B", vbuild, "-DB2BD_SANITIZE=OFF",
                        "-DB2BD_TESTS=OFF", "-DCMAKE_BUILD_TYPE=Debug"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", vbuild, "--target", "b2bd", "-j2"], check=True,
                       stdout=subprocess.DEVNULL)
        report = os.path.join(vbuild, "valgrind-%s.log" % self.shop)
        wrapper = os.path.join(vbuild, "b2bd-valgrind-%s.sh" % self.shop)
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec valgrind --leak-check=full --show-leak-kinds=definite,indirect "
                    "--errors-for-leak-kinds=definite,indirect --error-exitcode=99 --log-file=%s %s \"$@\"\n"
                    % (report, os.path.join(vbuild, "b2bd")))
        os.chmod(wrapper, os.stat(wrapper).st_mode | stat.S_IXUSR)
        d = harness.Daemon(self.prefix, self.dsn, binary=wrapper, smtp_url=self.smtp.url,
                           extra_env={"B2BD_NOTIFIER_CONCURRENCY": "2"})
        self._daemons.append(d)
        d.start(timeout=180)
        self.applied("shop.upsert", {"name": "V", "from_email": "v@example.com"}, timeout=120)
        self.make_company("c-1", ["loc-1", "loc-2"])
        self.make_customer("k-1", email="k1.%s@example.com" % self.shop, first_name="Vera")
        self.applied("order.upsert", {"order_id": "o-1", "customer_id": "k-1", "status": "open"})
        self.applied("assign", self.assign("k-1", [("loc-1", "ordering_only")], migrate_orders_to="loc-1",
                                           notify=True), timeout=60)
        self.applied("assign", self.assign({"email": "new.%s@example.com" % self.shop}, [("loc-2", "location_admin")]))
        self.rejected("assign", self.assign("ghost", []), "NOT_FOUND")
        self.applied("notify", {"company_id": "c-1", "customer_ids": ["k-1"], "preview": True})
        self.applied("template.update", {"subject": "Hi {{customer.first_name}}", "text": "t", "html": "<p>h</p>"})
        self.applied("revoke", {"company_id": "c-1", "customer_id": "k-1", "scope": "company",
                                "remove_migrated_orders": True})
        self.bus.send(b"not json", topic_suffix="commands.assign", key="x")
        self.bus.flush()
        self.bus.wait_for("dlq", lambda m: True, timeout=60)
        wait_until(lambda: self.query("SELECT count(*) FROM notifications WHERE status = 'sent'")[0][0] == 1,
                   timeout=120, what="the email sent")
        code = d.stop(timeout=180)
        with open(report) as f:
            text = f.read()
        self.assertEqual(code, 0, text[-5000:])
        summary = re.search(r"ERROR SUMMARY: (\d+) errors", text)
        self.assertIsNotNone(summary, text[-2000:])
        self.assertEqual(summary.group(1), "0", text[-20000:])
        # the leak check ran: valgrind prints its summary, or says there was nothing to leak
        if "All heap blocks were freed -- no leaks are possible" not in text:
            self.assertIn("LEAK SUMMARY:", text, "valgrind printed no leak summary:\n" + text[-5000:])
            for kind in ("definitely lost", "indirectly lost"):
                m = re.search(kind + r": ([\d,]+) bytes", text)
                self.assertIsNotNone(m, "no %r line in the leak summary:\n%s" % (kind, text[-5000:]))
                self.assertEqual(m.group(1), "0", text[-20000:])


if __name__ == "__main__":
    unittest.main()
