"""monitoring/: the alerting rules pass `promtool check rules` and their unit tests
(`promtool test rules`), and every query of the Grafana dashboard is valid PromQL.
(That each metric and label the dashboard queries exists in a running b2bd's /metrics,
and that /metrics passes `promtool check metrics`: tests/integration/test_monitoring.py.)
"""
import json
import re
import subprocess
import tempfile
import unittest

import dashboard
from shipping import need_tool, src

RULES = src("monitoring", "b2bd.rules.yml")


def concrete(expr):
    return (expr.replace("$__rate_interval", "5m").replace("$job", "b2bd")
            .replace("$instance", ".*"))


def promtool(*args, cwd=None):
    return subprocess.run([need_tool("promtool")] + list(args), capture_output=True, text=True,
                          cwd=cwd, timeout=120)


class Rules(unittest.TestCase):
    def test_check_rules(self):
        r = promtool("check", "rules", RULES)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS", r.stdout)

    def test_rules_unit_tests(self):
        r = promtool("test", "rules", "b2bd.rules.test.yml", cwd=src("monitoring"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_the_alerts_the_issue_asks_for(self):
        with open(RULES, encoding="utf-8") as f:
            text = f.read()
        for metric in ("b2bd_ready", "b2bd_db_up", "b2bd_outbox_oldest_age_seconds",
                       "b2bd_consumer_lag_messages", "b2bd_notifications_failed_total",
                       "b2bd_apply_isolated_commands_total", "b2bd_commands_lost_total"):
            self.assertRegex(text, r"expr: [^\n]*%s|\n\s+[^\n]*%s" % (metric, metric), metric)
        # each alert has a unit test that expects it to fire
        with open(src("monitoring", "b2bd.rules.test.yml"), encoding="utf-8") as f:
            tests = f.read()
        for name in re.findall(r"- alert: (\w+)", text):
            self.assertRegex(tests, r"alertname: %s\n\s+exp_alerts:\n\s+- exp_labels" % name, name)


class Dashboard(unittest.TestCase):
    def test_queries_are_valid_promql(self):
        exprs = dashboard.queries(variables=False)
        self.assertGreater(len(exprs), 20)
        # promtool parses the queries as recording rules
        lines = ["groups:", "  - name: dashboard", "    rules:"]
        for i, (_, e) in enumerate(exprs):
            lines += ["      - record: dashboard:q%d" % i, "        expr: %s" % json.dumps(concrete(e))]
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            r = promtool("check", "rules", f.name)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_panels_the_issue_asks_for(self):
        exprs = " ".join(e for _, e in dashboard.queries())
        for metric in ("b2bd_commands_applied_total", "b2bd_commands_rejected_by_code_total",
                       "b2bd_batch_duration_seconds_bucket", "b2bd_command_duration_seconds_bucket",
                       "b2bd_consumer_lag_messages", "b2bd_outbox_rows",
                       "b2bd_outbox_oldest_age_seconds", "b2bd_notifications_sent_total"):
            self.assertIn(metric, exprs)
        ids = []
        with open(dashboard.DASHBOARD, encoding="utf-8") as f:
            for p in json.load(f)["panels"]:
                ids.append(p["id"])
        self.assertEqual(len(ids), len(set(ids)))


if __name__ == "__main__":
    unittest.main()
