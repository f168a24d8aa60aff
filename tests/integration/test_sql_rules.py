"""A few rules of the SQL functions (sql/functions) tested directly, with pgTAP
(tests/sql/rules.sql), on a database this build's b2bd brought to its schema. Skipped
without pgTAP (postgresql-15-pgtap, scripts/deps.sh) unless CI=true."""
import os
import re
import subprocess

import harness


class SqlRulesTest(harness.TestCase):
    CHECK_SCHEMAS = False

    def test_rules(self):
        if not os.path.exists("/usr/share/postgresql/15/extension/pgtap.control"):
            harness.missing("pgTAP (postgresql-15-pgtap: scripts/deps.sh)")
        d = self.start_daemon()
        self.assertEqual(d.stop(), 0)
        # CREATE EXTENSION pgtap needs a superuser: the admin role, on this test's database
        admin = re.sub(r"dbname=\S+", "dbname=" + self.db_name, harness.env()["PG_ADMIN_DSN"])
        harness.db_query(admin, "CREATE EXTENSION pgtap")
        r = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", admin,
                            "-f", os.path.join(harness.SOURCE_DIR, "tests", "sql", "rules.sql")],
                           capture_output=True, text=True, timeout=120)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out)
        lines = [l for l in out.split("\n") if re.match(r"(not )?ok \d+", l)]
        self.assertTrue(lines, out)
        self.assertEqual([l for l in lines if l.startswith("not ok")], [], out)
        self.assertIn("1..%d" % len(lines), out)
        self.assertNotIn("# Looks like", out)
