"""b2bctl import of a CSV of new customers (issue 13's workload, 1,000 rows), end to end,
into two worlds that differ only in bulk_assign: the same summary, the same results,
the same access events and the same rows, whether the daemon settles the assigns
set-based (b2bd_assign_bulk) or one by one."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import harness
from b2btest import B2bTestCase

B2BCTL = os.path.join(harness.BUILD_DIR, "b2bctl")
ROWS = 1000
NAMES = ("Zoë", "Łukasz", "Søren", "名前", "José", "Ana")


def strip(msg, *keys):
    return {k: v for k, v in msg.items() if k not in keys}


def csv_text():
    """1,000 rows: new customers with mixed-case emails and non-ASCII names over two
    locations, one email twice in another case (found, not created), one unknown
    location (NOT_FOUND) and one malformed email (refused by b2bctl)."""
    rows = ["email,first_name,last_name,location_id,role"]
    for i in range(ROWS - 3):
        email = ("Neu.Kunde%04d@Example.COM" if i % 2 else "kunde%04d@example.com") % i
        loc, role = ("loc-2", "location_admin") if i % 5 == 0 else ("", "")
        rows.append("%s,%s,Nr %d,%s,%s" % (email, NAMES[i % len(NAMES)], i, loc, role))
    rows.append("NEU.KUNDE0001@example.com,Again,One,loc-2,ordering_only")
    rows.append("lost@example.com,Lost,Row,loc-404,ordering_only")
    rows.append("not-an-email,Bad,Row,,")
    return "\n".join(rows) + "\n"


class ImportSameWithBulkOnAndOff(B2bTestCase):
    SHARED = False
    START_DAEMON = False
    maxDiff = None

    def setUp(self):
        super().setUp()
        if not os.access(B2BCTL, os.X_OK):
            harness.missing("b2bctl is not built")
        self.tmp = tempfile.mkdtemp(prefix="import-bulk-", dir=harness.LOCALENV_DIR)
        self.path = os.path.join(self.tmp, "new.csv")
        with open(self.path, "w", newline="", encoding="utf-8") as f:
            f.write(csv_text())

    def tearDown(self):
        if not self._failed():
            shutil.rmtree(self.tmp, ignore_errors=True)
        super().tearDown()

    def run_world(self, bulk):
        prefix = harness.unique_name("t") + "."
        harness.create_topics(prefix)
        name, dsn = harness.create_database()
        bus = harness.Bus(prefix)
        try:
            d = harness.Daemon(prefix, dsn, extra_env={"B2BD_BULK_ASSIGN": bulk}).start()
            company = harness.command("company.upsert", self.shop, {
                "company_id": "c-1", "name": "One",
                "locations": [{"location_id": l, "name": l} for l in ("loc-1", "loc-2")]})
            bus.send(company)
            bus.flush()
            self.assertEqual(bus.wait_result(company["command_id"], timeout=60)["status"], "applied")
            env = dict(os.environ, B2BD_KAFKA_BOOTSTRAP=harness.env()["B2BD_KAFKA_BOOTSTRAP"],
                       B2BD_TOPIC_PREFIX=prefix, B2BD_PG_DSN=dsn)
            p = subprocess.run([B2BCTL, "import", "--shop", self.shop, "--company", "c-1", "--location", "loc-1",
                                "--import-id", "imp-bulk", "--json", self.path], env=env,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)  # the two bad rows
            summary = json.loads(p.stdout)
            self.assertEqual(d.stop(), 0)  # SIGTERM flushes the outbox: all is on the broker
            stopping = [l for l in d.log().splitlines() if "event=stopping" in l][-1]
            bulk_n = int(re.search(r" bulk=(\d+)", stopping).group(1))

            def mine(topic):
                return [m[1] for m in bus.read_to_end(topic)
                        if isinstance(m[1], dict) and m[1].get("shop_id") == self.shop]
            results = sorted((strip(r, "event_id", "processed_at") for r in mine("results")
                              if r.get("type") == "assign"), key=lambda r: (r["command_id"], r["status"]))
            access = sorted((strip(e, "event_id", "occurred_at") for e in mine("events.access")),
                            key=lambda e: (e["customer_id"], e["version"]))
            q = lambda sql: harness.db_query(dsn, sql, (self.shop,))  # noqa: E731
            rows = {
                "customers": q("SELECT customer_id, email, first_name, last_name, phone, access_version"
                               " FROM customers WHERE shop_id = %s ORDER BY 1"),
                "contacts": q("SELECT company_id, customer_id FROM contacts WHERE shop_id = %s ORDER BY 1, 2"),
                "roles": q("SELECT company_id, customer_id, location_id, role FROM roles"
                           " WHERE shop_id = %s ORDER BY 1, 2, 3"),
                "seats": q("SELECT company_id, contact_count FROM companies WHERE shop_id = %s ORDER BY 1"),
                "inbox": q("SELECT command_id::text, type, import_id, encode(payload_hash, 'hex'),"
                           " result::jsonb - 'event_id' - 'processed_at' FROM commands"
                           " WHERE shop_id = %s AND type = 'assign' ORDER BY 1"),
            }
            del summary["seconds"]
            # a trace per run (b2bctl's own): each run has its own, by design
            self.assertRegex(summary.pop("trace_id"), r"^[0-9a-f]{32}$")
            return summary, results, access, rows, bulk_n
        finally:
            bus.close()
            harness.drop_database(name)

    def test_same_summary_results_events_and_rows(self):
        on = self.run_world("on")
        off = self.run_world("off")
        self.assertGreater(on[4], ROWS // 2, "bulk_assign=on hardly used the set-based path")
        self.assertEqual(off[4], 0, "bulk_assign=off used the set-based path")
        self.assertEqual(on[0], off[0])
        self.assertEqual(on[1], off[1])
        self.assertEqual(on[2], off[2])
        self.assertEqual(on[3], off[3])

        # and what they are, so that two wrong worlds cannot agree
        summary, results, access, rows, _ = on
        self.assertEqual((summary["rows"], summary["applied"], summary["rejected"], summary["unparseable"]),
                         (ROWS, ROWS - 2, 1, 1), summary)
        self.assertEqual(len(rows["customers"]), ROWS - 3)
        self.assertEqual(rows["seats"], [("c-1", ROWS - 3)])
        by_id = {c[0]: c for c in rows["customers"]}
        self.assertEqual(by_id["neu.kunde0001@example.com"][1:4], ("Neu.Kunde0001@Example.COM", "Łukasz", "Nr 1"))
        self.assertEqual(by_id["neu.kunde0003@example.com"][2], "名前")
        # the second row of customer 1 found it by email and added a role: version 2
        self.assertEqual(by_id["neu.kunde0001@example.com"][5], 2)
        self.assertEqual(len(access), ROWS - 2)
        self.assertEqual(sum(1 for r in results if r["status"] == "applied" and r["result"]["customer_created"]),
                         ROWS - 3)
        self.assertIn(("c-1", "neu.kunde0005@example.com", "loc-2", "location_admin"), rows["roles"])
        self.assertIn(("c-1", "neu.kunde0001@example.com", "loc-2", "ordering_only"), rows["roles"])


if __name__ == "__main__":
    unittest.main()
