"""The monitoring that ships with b2bd against a running daemon: /metrics passes
`promtool check metrics`, and every metric (and grouping label) that the Grafana
dashboard (monitoring/grafana/b2bd.json) queries is in /metrics."""
import os
import re
import subprocess
import sys
import unittest

import harness
from b2btest import B2bTestCase, wait_until
from harness import scrape

sys.path.insert(0, os.path.join(harness.SOURCE_DIR, "tests", "shipping"))
import dashboard  # noqa: E402

TARGET_LABELS = {"job", "instance"}  # added by Prometheus at scrape time


class MonitoringTest(B2bTestCase):
    @classmethod
    def setUpClass(cls):
        harness.need_tool("promtool")  # a skip by hand, a failure under CI
        cls.DAEMON_ENV = {"B2BD_HTTP_LISTEN": "127.0.0.1:0",
                          "B2BD_KAFKA__STATISTICS_INTERVAL_MS": "500"}
        super().setUpClass()
        cls.port = cls.shared_daemon.http_port()

    def busy_metrics(self):
        """/metrics after applied and rejected commands, once the consumer lag is in."""
        self.make_company("c-1")
        self.rejected("assign", self.assign("nobody", [("loc-1", "ordering_only")]), "NOT_FOUND")
        wait_until(lambda: any(k[0] == "b2bd_consumer_lag_messages" for k in scrape(self.port).samples),
                   timeout=30, what="consumer lag in /metrics")
        return scrape(self.port)

    def test_promtool_check_metrics(self):
        m = self.busy_metrics()
        r = subprocess.run(["promtool", "check", "metrics"], input=m.text, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))
        # the check can fail: a counter without _total, a metric without help
        broken = m.text.replace("b2bd_db_reconnects_total", "b2bd_db_reconnects")
        r = subprocess.run(["promtool", "check", "metrics"], input=broken, capture_output=True,
                           text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)

    def test_dashboard_metrics_exist(self):
        m = self.busy_metrics()
        names = {k[0] for k in m.samples}
        labels = {}
        for (name, lbls) in m.samples:
            labels.setdefault(name, set()).update(k for k, _ in lbls)
        queries = dashboard.queries()
        self.assertGreater(len(queries), 20)
        for title, expr in queries:
            used = set(re.findall(r"\b(b2bd_[a-z0-9_]+)", expr))
            self.assertTrue(used, title)
            for metric in used:
                self.assertIn(metric, names, "%s: %s is not in /metrics" % (title, metric))
            have = set().union(*(labels[u] for u in used))
            for group in re.findall(r"\bby \(([^)]*)\)", expr):
                for label in (l.strip() for l in group.split(",")):
                    if label not in TARGET_LABELS:
                        self.assertIn(label, have, "%s: no label %s on %s" % (title, label, used))


if __name__ == "__main__":
    unittest.main()
