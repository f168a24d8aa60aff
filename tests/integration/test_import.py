"""b2bctl import: a CSV bulk import through Kafka and PostgreSQL: summary, rejected rows,
re-running changes nothing, and an import interrupted by a b2bd crash completes exactly once."""
import csv
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import harness
from b2btest import B2bTestCase, wait_until

B2BCTL = os.path.join(harness.BUILD_DIR, "b2bctl")


def ctl_env(prefix, dsn):
    e = dict(os.environ)
    e.update({"B2BD_KAFKA_BOOTSTRAP": harness.env()["B2BD_KAFKA_BOOTSTRAP"],
              "B2BD_TOPIC_PREFIX": prefix, "B2BD_PG_DSN": dsn})
    return e


class ImportCase(B2bTestCase):
    """Helpers to write a CSV in a temporary directory and run b2bctl on it."""

    def setUp(self):
        super().setUp()
        if not os.access(B2BCTL, os.X_OK):
            harness.missing("b2bctl is not built")
        self.tmp = tempfile.mkdtemp(prefix="import-", dir=harness.LOCALENV_DIR)

    def tearDown(self):
        if not self._failed():
            shutil.rmtree(self.tmp, ignore_errors=True)
        super().tearDown()

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w", newline="") as f:
            f.write(text)
        return path

    def ctl(self, *args, timeout=300):
        return subprocess.run([B2BCTL] + list(args), env=ctl_env(self.prefix, self.dsn),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)

    def import_json(self, path, *extra, expect_rc=None):
        p = self.ctl("import", "--shop", self.shop, "--company", "c-1", "--location", "loc-1",
                     "--json", *extra, path)
        if expect_rc is not None:
            self.assertEqual(p.returncode, expect_rc, p.stdout + p.stderr)
        return json.loads(p.stdout), p

    def state(self):
        """Everything an import can change, for this shop."""
        q = self.query
        return {
            "customers": q("SELECT customer_id, email, first_name, last_name, phone, access_version,"
                           " updated_at FROM customers WHERE shop_id = %s ORDER BY 1", (self.shop,)),
            "contacts": q("SELECT company_id, customer_id, created_at FROM contacts WHERE shop_id = %s"
                          " ORDER BY 1, 2", (self.shop,)),
            "roles": q("SELECT company_id, customer_id, location_id, role FROM roles WHERE shop_id = %s"
                       " ORDER BY 1, 2, 3", (self.shop,)),
            "commands": q("SELECT command_id::text, result, processed_at FROM commands WHERE shop_id = %s"
                          " ORDER BY 1", (self.shop,)),
            "contact_count": q("SELECT contact_count FROM companies WHERE shop_id = %s", (self.shop,)),
        }


GOOD_AND_BAD = (
    "email,first_name,last_name,location_id,role\r\n"
    "ann@example.com,Ann,Buyer,,\r\n"                              # 2: default location, role
    "bob@example.com,Bob,\"Smith, Jr.\",loc-2,location_admin\r\n"  # 3
    "carl@example.com,Carl,Nowhere,loc-404,ordering_only\r\n"      # 4: NOT_FOUND (daemon)
    "dora@example.com,Dora,Boss,loc-1,boss\r\n"                    # 5: bad role
    "not-an-email,Eve,Mail,loc-1,ordering_only\r\n"                # 6: malformed email
    "fay@example.com,Fay\r\n"                                      # 7: short line
    "ann@example.com,Ann,Buyer,,\r\n"                              # 8: duplicate of 2
    "\"gus@example.com\",\"Gus\nMulti\",Line,loc-3,ordering_only\r\n"  # 9-10: quoted newline
)


class ImportSummaryTest(ImportCase):

    def setUp(self):
        super().setUp()
        self.make_company()

    def test_good_bad_and_duplicate_rows(self):
        path = self.write("customers.csv", GOOD_AND_BAD)
        s, p = self.import_json(path, expect_rc=1)
        self.assertEqual(s["rows"], 8)
        self.assertEqual(s["applied"], 3, s)
        self.assertEqual(s["applied_new"], 3)
        self.assertEqual(s["already_applied"], 0)
        self.assertEqual(s["duplicates"], 1)
        self.assertEqual(s["rejected"], 1)
        self.assertEqual(s["rejected_by_code"], {"NOT_FOUND": 1})
        self.assertEqual(s["unparseable"], 3)
        self.assertEqual(s["missing"], 0)
        self.assertEqual(s["rejected_file"], path + ".rejected.csv")
        self.assertTrue(s["import_id"].startswith("imp-"))
        # unparseable rows are reported on stderr with their line
        for line in (5, 6, 7):
            self.assertIn("customers.csv:%d:" % line, p.stderr)
        with open(path + ".rejected.csv", newline="") as f:
            rows = list(csv.reader(f))
        self.assertEqual(rows[0], ["email", "first_name", "last_name", "location_id", "role",
                                   "line", "error_code", "error_field", "error_message"])
        by_line = {r[5]: r for r in rows[1:]}
        self.assertEqual(sorted(by_line), ["4", "5", "6", "7"])
        self.assertEqual(by_line["4"][:5], ["carl@example.com", "Carl", "Nowhere", "loc-404", "ordering_only"])
        self.assertEqual(by_line["4"][6:8], ["NOT_FOUND", "location_id"])
        self.assertEqual(by_line["5"][6:8], ["UNPARSEABLE", "role"])
        self.assertEqual(by_line["6"][6:8], ["UNPARSEABLE", "email"])
        self.assertEqual(by_line["7"][:2], ["fay@example.com", "Fay"])
        self.assertEqual(by_line["7"][6], "UNPARSEABLE")
        self.assertIn("expected 5 fields, found 2", by_line["7"][8])
        # the effects
        self.assertEqual(self.query("SELECT customer_id, location_id, role FROM roles WHERE shop_id = %s"
                                    " ORDER BY 1", (self.shop,)),
                         [("ann@example.com", "loc-1", "ordering_only"),
                          ("bob@example.com", "loc-2", "location_admin"),
                          ("gus@example.com", "loc-3", "ordering_only")])
        self.assertEqual(self.query("SELECT first_name, last_name FROM customers WHERE shop_id = %s"
                                    " AND customer_id = 'gus@example.com'", (self.shop,)),
                         [("Gus\nMulti", "Line")])
        self.assertEqual(self.query("SELECT last_name FROM customers WHERE shop_id = %s"
                                    " AND customer_id = 'bob@example.com'", (self.shop,)), [("Smith, Jr.",)])
        # every applied command carries the import id
        self.assertEqual(self.query("SELECT count(*) FROM commands WHERE import_id = %s", (s["import_id"],)),
                         [(3,)])

    def test_dry_run_reports_what_the_import_would_do_then_the_import_does_it(self):
        path = self.write("customers.csv", GOOD_AND_BAD)
        before = self.state()
        d, p = self.import_json(path, "--dry-run", expect_rc=1)
        with open(path + ".rejected.csv", newline="") as f:
            dry_rejected = f.read()
        self.assertEqual(self.state(), before, "the dry run changed the database")
        self.settle()
        dry = [r for r in self.bus.read_to_end("results") and self.bus.values("results")
               if isinstance(r, dict) and r.get("import_id") == d["import_id"]]
        self.assertEqual(len(dry), 4)
        self.assertTrue(all(r.get("dry_run") is True for r in dry), dry)
        self.assertEqual([m for m in self.bus.read_to_end("events.access")
                          if isinstance(m[1], dict) and m[1].get("shop_id") == self.shop], [])
        self.assertIs(d["dry_run"], True)
        p2 = self.ctl("import", "--shop", self.shop, "--company", "c-1", "--location", "loc-1", "--dry-run", path)
        self.assertIn("dry run of import %s" % d["import_id"], p2.stdout)
        self.assertIn("nothing was applied", p2.stdout)
        # the import for real: the same report, the same rejected rows, the same command ids
        s, _ = self.import_json(path, expect_rc=1)
        for k in ("import_id", "rows", "applied", "applied_new", "already_applied", "duplicates", "rejected",
                  "rejected_by_code", "unparseable", "missing", "rejected_file"):
            self.assertEqual(d[k], s[k], "%s: the dry run said %s, the import did %s" % (k, d, s))
        self.assertIs(s["dry_run"], False)
        with open(path + ".rejected.csv", newline="") as f:
            self.assertEqual(f.read(), dry_rejected)
        self.settle()
        real = [r for r in self.bus.read_to_end("results") and self.bus.values("results")
                if isinstance(r, dict) and r.get("import_id") == d["import_id"] and "dry_run" not in r]
        self.assertEqual({r["command_id"] for r in real}, {r["command_id"] for r in dry})
        # a dry run after the import: every row already applied
        d2, _ = self.import_json(path, "--dry-run", expect_rc=1)
        self.assertEqual((d2["applied"], d2["already_applied"]), (3, 3), d2)

    def test_human_summary_and_exit_zero_when_all_applied(self):
        path = self.write("ok.csv", "email\nzed@example.com\n")
        old = self.write("ok.csv.rejected.csv", "stale\n")
        p = self.ctl("import", "--shop", self.shop, "--company", "c-1", "--location", "loc-2",
                     "--role", "location_admin", path)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("applied: 1 (new 1, already applied before this run 0)", p.stdout)
        self.assertIn("rejected: 0", p.stdout)
        self.assertFalse(os.path.exists(old), "a stale rejected file is removed")
        self.assertEqual(self.roles_in_db("zed@example.com"), [("loc-2", "location_admin")])

    def test_bad_header_and_usage(self):
        path = self.write("bad.csv", "email,colour\na@example.com,red\n")
        p = self.ctl("import", "--shop", self.shop, "--company", "c-1", path)
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown column \"colour\"", p.stderr)
        p = self.ctl("import", "--company", "c-1", path)
        self.assertEqual(p.returncode, 2)
        self.assertIn("needs --shop and --company", p.stderr)
        p = self.ctl("import", "--shop", self.shop, "--company", "c-1", os.path.join(self.tmp, "missing.csv"))
        self.assertEqual(p.returncode, 2)

    def test_jsonl_import_gets_import_id_and_ids(self):
        cmd = harness.command("assign", self.shop, self.assign({"email": "jl@example.com"}, [("loc-1", "ordering_only")]))
        del cmd["command_id"]
        path = self.write("cmds.jsonl", json.dumps(cmd) + "\nnot json\n")
        s, p = self.import_json(path, "--import-id", "jl-" + self.shop, expect_rc=1)
        self.assertEqual((s["applied"], s["unparseable"]), (1, 1), s)
        self.assertEqual(self.query("SELECT count(*) FROM commands WHERE import_id = %s",
                                    ("jl-" + self.shop,)), [(1,)])
        s2, _ = self.import_json(path, "--import-id", "jl-" + self.shop, expect_rc=1)
        self.assertEqual(s2["already_applied"], 1, s2)


class ImportRerunTest(ImportCase):

    def setUp(self):
        super().setUp()
        self.make_company()

    def test_same_import_twice_changes_nothing(self):
        rows = ["email,first_name,location_id,role"]
        rows += ["user%02d@example.com,User %d,loc-%d,%s" % (i, i, 1 + i % 3,
                                                             "location_admin" if i % 4 == 0 else "ordering_only")
                 for i in range(40)]
        rows.append("broken@example.com,Broken,loc-404,ordering_only")
        path = self.write("twice.csv", "\n".join(rows) + "\n")
        s1, _ = self.import_json(path, expect_rc=1)
        self.assertEqual((s1["applied"], s1["rejected"]), (40, 1), s1)
        self.settle()
        ids1 = {r["command_id"] for r in self.bus.read_to_end("results") and self.bus.values("results")
                if isinstance(r, dict) and r.get("import_id") == s1["import_id"]}
        events1 = [m[1] for m in self.bus.read_to_end("events.access")
                   if isinstance(m[1], dict) and m[1].get("shop_id") == self.shop]
        self.assertEqual(len(events1), 40)
        self.assertEqual({e["version"] for e in events1}, {1})
        before = self.state()

        s2, _ = self.import_json(path, expect_rc=1)
        self.assertEqual(s2["import_id"], s1["import_id"])
        self.assertEqual((s2["applied"], s2["already_applied"], s2["applied_new"]), (40, 40, 0), s2)
        self.assertEqual(s2["rejected_by_code"], {"NOT_FOUND": 1})
        self.settle()
        results = [r for r in self.bus.read_to_end("results") and self.bus.values("results")
                   if isinstance(r, dict) and r.get("import_id") == s1["import_id"]]
        self.assertEqual({r["command_id"] for r in results}, ids1, "the same command ids")
        # each applied command's repeat is its stored result, byte for byte (same event_id)
        by_id = {}
        for r in results:
            if r["status"] == "applied":
                by_id.setdefault(r["command_id"], set()).add(r["event_id"])
        self.assertEqual(len(by_id), 40)
        self.assertTrue(all(len(v) == 1 for v in by_id.values()))
        events2 = [m[1] for m in self.bus.read_to_end("events.access")
                   if isinstance(m[1], dict) and m[1].get("shop_id") == self.shop]
        self.assertEqual(len(events2), 40, "no new access event")
        self.assertEqual(self.state(), before, "the database is unchanged")


class ImportInterruptedTest(ImportCase):
    """b2bd is killed (SIGKILL) in the middle of a 3,000-row import, then restarted, and the
    import is run again: every row has exactly one effect."""

    START_DAEMON = False
    ROWS = 3000

    def test_killed_daemon_then_rerun_completes_exactly_once(self):
        d = self.start_daemon(extra_env={"B2BD_BATCH_MAX": "50"})
        self.make_company()
        rows = ["email,first_name,last_name"]
        rows += ["bulk%05d@example.com,First%d,Last%d" % (i, i, i) for i in range(self.ROWS)]
        path = self.write("bulk.csv", "\n".join(rows) + "\n")
        args = [B2BCTL, "import", "--shop", self.shop, "--company", "c-1", "--location", "loc-1",
                "--wait-timeout", "4", "--json", path]
        t0 = time.monotonic()
        first = subprocess.Popen(args, env=ctl_env(self.prefix, self.dsn), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def applied():
            return self.query("SELECT count(*) FROM commands WHERE shop_id = %s AND type = 'assign'",
                              (self.shop,))[0][0]
        wait_until(lambda: applied() >= 300, timeout=120, step=0.02, what="300 rows applied")
        d.kill()
        at_kill = applied()
        self.assertLess(at_kill, self.ROWS, "the kill came in the middle of the import")
        out, err = first.communicate(timeout=300)
        self.assertEqual(first.returncode, 1, err)
        s1 = json.loads(out)
        self.assertGreater(s1["missing"], 0, s1)

        self.start_daemon(extra_env={"B2BD_BATCH_MAX": "50"})
        t1 = time.monotonic()
        p = self.ctl("import", "--shop", self.shop, "--company", "c-1", "--location", "loc-1", "--json", path)
        t2 = time.monotonic()
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        s2 = json.loads(p.stdout)
        self.assertEqual(s2["import_id"], s1["import_id"])
        self.assertEqual((s2["applied"], s2["rejected"], s2["missing"]), (self.ROWS, 0, 0), s2)
        self.assertGreaterEqual(s2["already_applied"], at_kill)
        self.assertEqual(self.query("SELECT count(*) FROM contacts WHERE shop_id = %s", (self.shop,)),
                         [(self.ROWS,)])
        self.assertEqual(self.query("SELECT contact_count FROM companies WHERE shop_id = %s", (self.shop,)),
                         [(self.ROWS,)])
        self.assertEqual(self.query("SELECT access_version, count(*) FROM customers WHERE shop_id = %s"
                                    " GROUP BY 1", (self.shop,)), [(1, self.ROWS)])
        self.assertEqual(self.query("SELECT count(*) FROM commands WHERE import_id = %s", (s1["import_id"],)),
                         [(self.ROWS,)])
        sys_msg = "import of %d rows: first run killed after %d applied (%.1f s); re-run %.1f s" % (
            self.ROWS, at_kill, t1 - t0, t2 - t1)
        print("\n" + sys_msg)


if __name__ == "__main__":
    unittest.main()
