"""The schema across versions (src/schema.c, sql/functions, sql/migrations).

Upgrade: b2bd of earlier landed versions, built from this repository's own history (the
commit where migration 0007 was the newest, and the last one before the function files
of sql/functions took over), each runs on a fresh database of its own and is fed data
through Kafka (shops, companies, customers, orders, assigns one by one and in a run,
revokes, a migrate, a notify), then stops; this build's b2bd starts on that database.
Then pg_dump --schema-only of it equals that of a fresh database made by this build
(function definitions included; only pg_dump's random \\restrict key is dropped), and
every row of every table the old version had is still there, unchanged (new columns
aside; schema_migrations only grew).

The old binaries are built without sanitizers in <build>/old-b2bd/<commit>/ (source and
build, kept: a second run does not build them again; b2bd reads its templates from its
source tree). A clone without that history skips the
test, or fails it under CI=true.

Refusal: this build's b2bd on a database whose recorded schema version is above its own
exits with status 4, naming both versions.
"""
import difflib
import os
import re
import shutil
import subprocess

import harness
from b2btest import B2bTestCase, wait_until

# the last commit with 0007_assign_bulk.sql as the newest migration (0008 came with 054fbf5)
COMMIT_0007 = "ef101aabbe6e519ee76a60e5f01540650eff49b4"
# the last commit before sql/functions (schema version 1)
COMMIT_0019 = "73751d0b7bf5aba4a0f306d46edcc9f40a2aacb7"

EXIT_SCHEMA_NEWER = 4


def schema_version():
    with open(os.path.join(harness.SOURCE_DIR, "sql", "VERSION")) as f:
        return int(re.search(r"^version ([0-9]+)$", f.read(), re.M).group(1))


def pg_dump_schema(dsn):
    out = subprocess.run(["pg_dump", "--schema-only", "--dbname", dsn],
                         capture_output=True, text=True, check=True).stdout
    # pg_dump 15.14 brackets its output with \restrict KEY / \unrestrict KEY, a random KEY
    return "\n".join(line for line in out.split("\n")
                     if not re.match(r"\\(un)?restrict ", line))


def tables(dsn):
    """{table: [columns]} of the public schema."""
    rows = harness.db_query(dsn, "SELECT table_name, column_name FROM information_schema.columns"
                                 " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position")
    out = {}
    for t, c in rows:
        out.setdefault(t, []).append(c)
    return out


def rows(dsn, table, columns):
    cols = ", ".join('"%s"::text' % c for c in columns)
    return sorted(harness.db_query(dsn, 'SELECT %s FROM "%s"' % (cols, table)),
                  key=lambda r: [(v is None, v or "") for v in r])


def old_b2bd(commit):
    """The path of b2bd built at commit (built on first use, then cached)."""
    src_dir = harness.SOURCE_DIR
    if subprocess.run(["git", "-C", src_dir, "cat-file", "-e", commit + "^{commit}"],
                      capture_output=True).returncode != 0:
        msg = "commit %s is not in %s's history (a shallow clone?)" % (commit, src_dir)
        if os.environ.get("CI") == "true":
            raise AssertionError(msg)
        harness.missing(msg)
    cache = os.path.join(harness.BUILD_DIR, "old-b2bd", commit)
    binary = os.path.join(cache, "build", "b2bd")
    if os.access(binary, os.X_OK):
        return binary
    # the source stays beside the binary: b2bd reads its email templates from there
    src, build = os.path.join(cache, "src"), os.path.join(cache, "build")
    shutil.rmtree(cache, ignore_errors=True)
    os.makedirs(src)
    archive = subprocess.run(["git", "-C", src_dir, "archive", commit],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
    for cmd in (["cmake", "-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                 "-DB2BD_SANITIZE=OFF", "-DB2BD_TESTS=OFF"],
                ["cmake", "--build", build, "--target", "b2bd", "-j2"]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError("building b2bd at %s: %s\n%s" % (commit, " ".join(cmd),
                                                                  (r.stdout + r.stderr)[-5000:]))
    return binary


class SchemaTest(B2bTestCase):
    SHARED = False
    START_DAEMON = False

    def feed(self):
        """Commands of every kind both versions know; waits for their results."""
        self.applied("shop.upsert", {"name": "Upgrade Tools", "account_url": "https://u.example/account",
                                     "from_email": "hello@u.example", "staff_email": "staff@u.example"})
        self.make_company("c-1", ["loc-1", "loc-2", "loc-3"])
        self.make_company("c-2", ["loc-x"])
        for i in range(1, 7):
            self.make_customer("cust-%d" % i, first_name="First%d" % i, last_name="Last%d" % i)
        for o, cust in (("o-1", "cust-1"), ("o-2", "cust-1"), ("o-3", "cust-2")):
            self.applied("order.upsert", {"order_id": o, "customer_id": cust, "status": "open",
                                          "total": "10.00", "currency": "EUR"})
        # a batch of plain assigns (a run, set-based where the version has it), one by email
        run = [harness.command("assign", self.shop, self.assign("cust-%d" % i, [("loc-1", "ordering_only"),
                                                                                 ("loc-2", "location_admin")]))
               for i in range(1, 5)]
        run.append(harness.command("assign", self.shop, self.assign({"email": "new.one@example.com"},
                                                                    [("loc-3", "ordering_only")])))
        for r in self.run_cmds(run):
            self.assertEqual(r["status"], "applied", r)
        self.applied("assign", self.assign("cust-5", [("loc-x", "ordering_only")], company="c-2"))
        self.applied("assign", self.assign("cust-6", [("loc-1", "ordering_only")], migrate_orders_to="loc-1"))
        self.rejected("assign", self.assign("ghost", [("loc-1", "ordering_only")]), "NOT_FOUND")
        self.applied("revoke", {"company_id": "c-1", "customer_id": "cust-2", "scope": "locations",
                                "location_ids": ["loc-1", "loc-3"]})
        self.applied("revoke", {"company_id": "c-1", "customer_id": "cust-3", "scope": "company"})
        self.applied("migrate", {"company_id": "c-1", "location_id": "loc-1", "customer_id": "cust-1"})
        self.applied("notify", {"company_id": "c-1", "customer_ids": ["cust-1", "cust-4"]})
        # the emails are sent before the old version stops, so that the new one has none to send
        wait_until(lambda: self.query("SELECT count(*) FROM notifications WHERE status <> 'sent'")[0][0] == 0
                     and self.query("SELECT count(*) FROM notifications")[0][0] == 2,
                     timeout=60, what="the emails sent")
        self.settle()

    def snapshot(self, dsn):
        return {t: (cols, rows(dsn, t, cols)) for t, cols in tables(dsn).items()}

    def upgrade_from(self, commit):
        binary = old_b2bd(commit)
        old = self.daemon()
        old.binary = binary
        old.start()
        self.feed()
        self.assertEqual(old.stop(), 0, old.log()[-5000:])
        before = self.snapshot(self.dsn)
        self.assertIn("contacts", before)

        new = self.start_daemon()
        self.assertIn("event=functions_applied", new.log())
        self.assertEqual(new.stop(), 0, new.log()[-5000:])
        after = tables(self.dsn)

        # the data: every row of every table the old version had, on its columns
        for table, (cols, old_rows) in sorted(before.items()):
            self.assertIn(table, after)
            self.assertEqual([c for c in after[table] if c in cols], cols, table)
            now = rows(self.dsn, table, cols)
            if table == "schema_migrations":
                self.assertTrue(set(old_rows) <= set(now), table)
                continue
            self.assertEqual(now, old_rows, "%s changed in the upgrade" % table)

        # the schema: as a fresh database's made by this build
        fresh_name, fresh_dsn = harness.create_database()
        try:
            d = self.start_daemon(dsn=fresh_dsn)
            self.assertEqual(d.stop(), 0)
            fresh = pg_dump_schema(fresh_dsn)
        finally:
            harness.drop_database(fresh_name)
        upgraded = pg_dump_schema(self.dsn)
        self.assertIn("CREATE FUNCTION public.b2bd_assign_bulk", fresh)
        if upgraded != fresh:
            diff = "\n".join(difflib.unified_diff(fresh.split("\n"), upgraded.split("\n"),
                                                  "fresh", "upgraded from " + commit[:7], lineterm=""))
            self.fail("the upgraded schema differs from a fresh one:\n" + diff[:20000])

    def test_upgrade_from_0007(self):
        self.upgrade_from(COMMIT_0007)

    def test_upgrade_from_0019(self):
        self.upgrade_from(COMMIT_0019)

    def test_refuses_a_newer_database(self):
        d = self.start_daemon()
        self.assertEqual(d.stop(), 0)
        v = schema_version()
        self.query("UPDATE schema_version SET version = %s", (v + 1,))
        self.query("DELETE FROM schema_functions")
        d = self.daemon().start(wait_ready=False, expect_exit=EXIT_SCHEMA_NEWER)
        self.assertEqual(d.wait(60), EXIT_SCHEMA_NEWER, d.log()[-5000:])
        log = d.log()
        self.assertIn("event=schema_newer", log)
        self.assertIn("schema version %d is newer than this b2bd's schema version %d" % (v + 1, v), log)
        # nothing was applied: the old bodies stay out
        self.assertEqual(self.query("SELECT count(*) FROM schema_functions")[0][0], 0)
        self.assertEqual(self.query("SELECT version FROM schema_version")[0][0], v + 1)
