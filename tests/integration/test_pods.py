"""Pods: two independent b2bd deployments on one Kafka cluster (README, "Scaling out"):
each its own topic prefix, database, consumer group and SMTP server. The same shop,
company and customer ids, and the same import file (so the same command ids), go to
both; each pod applies its own commands only, and nothing of one (results, access and
notification events, dead letters, emails, rows, b2bctl's answers) shows in the other."""
import csv
import json
import os
import shutil
import subprocess
import tempfile

import harness

B2BCTL = os.path.join(harness.BUILD_DIR, "b2bctl")
N_ROWS = 40


class Pod:
    """One pod: a prefix, a database, an SMTP server, a b2bd, a bus."""

    def __init__(self, case, name):
        self.name = name
        self.prefix = harness.unique_name("pod%s" % name) + "."
        harness.create_topics(self.prefix)
        self.db_name, self.dsn = harness.create_database()
        case.pod_dbs.append(self.db_name)
        self.smtp = case.start_smtp()
        self.daemon = harness.Daemon(self.prefix, self.dsn, smtp_url=self.smtp.url)
        case._daemons.append(self.daemon)  # stopped (and its exit judged) in tearDown
        self.bus = harness.Bus(self.prefix)
        self.sent = set()  # command ids sent to this pod

    def send(self, cmd):
        self.sent.add(cmd["command_id"].lower())
        self.bus.send(cmd)
        self.bus.flush()
        return self.bus.wait_result(cmd["command_id"].lower(), timeout=60)

    def ctl(self, *args):
        e = dict(os.environ)
        e.update({"B2BD_KAFKA_BOOTSTRAP": harness.env()["B2BD_KAFKA_BOOTSTRAP"],
                  "B2BD_TOPIC_PREFIX": self.prefix, "B2BD_PG_DSN": self.dsn})
        return subprocess.run([B2BCTL] + list(args), env=e, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=300)

    def query(self, sql, params=None):
        return harness.db_query(self.dsn, sql, params)


class PodsTest(harness.TestCase):

    def setUp(self):
        super().setUp()
        if not os.access(B2BCTL, os.X_OK):
            harness.missing("b2bctl is not built")
        self.pod_dbs = []
        self.tmp = tempfile.mkdtemp(prefix="pods-", dir=harness.LOCALENV_DIR)

    def tearDown(self):
        failed = self._failed()
        super().tearDown()
        for name in self.pod_dbs:
            if not failed:
                harness.drop_database(name)
        if not failed:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def test_two_pods_on_one_cluster_see_nothing_of_each_other(self):
        shop = self.shop
        pods = [Pod(self, "a"), Pod(self, "b")]
        for p in pods:
            p.daemon.start()

        # the same import file for both pods: the same deterministic command ids
        path = os.path.join(self.tmp, "customers.csv")
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["email", "first_name", "location_id", "role"])
            for i in range(N_ROWS):
                w.writerow(["pod-row-%d@example.com" % i, "Row%d" % i, "loc-1", "ordering_only"])

        for p in pods:
            r = p.send(harness.command("company.upsert", shop, {
                "company_id": "c-1", "name": "Company of pod %s" % p.name,
                "locations": [{"location_id": "loc-1", "name": "Loc of pod %s" % p.name}]}))
            self.assertEqual(r["status"], "applied", r)
            r = p.send(harness.command("customer.upsert", shop, {
                "customer_id": "cust-1", "email": "only-%s-%s@example.com" % (p.name, shop),
                "first_name": "Pod%s" % p.name.upper()}))
            self.assertEqual(r["status"], "applied", r)
            r = p.send(harness.command("assign", shop, {
                "company_id": "c-1", "customer": {"id": "cust-1"},
                "locations": [{"location_id": "loc-1", "role": "location_admin"}], "notify": True}))
            self.assertEqual(r["status"], "applied", r)
            self.assertTrue(r["result"]["contact_created"], r)
            self.assertEqual(len(r["result"]["notification_ids"]), 1, r)
            p.notification_id = r["result"]["notification_ids"][0]
            # a dead letter, in this pod only
            p.bus.send(("not json from pod %s" % p.name).encode(), topic_suffix="commands.assign",
                       key="%s/c-1" % shop)
            p.bus.flush()

        # b2bctl import with each pod's prefix and database
        ids = []
        for p in pods:
            run = p.ctl("import", "--shop", shop, "--company", "c-1", "--json", path)
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
            rep = json.loads(run.stdout)
            self.assertEqual((rep["rows"], rep["applied"], rep["rejected"]), (N_ROWS, N_ROWS, 0), rep)
            cmd_ids = {row[0] for row in p.query(
                "SELECT command_id::text FROM commands WHERE shop_id = %s AND import_id = %s",
                (shop, rep["import_id"]))}
            self.assertEqual(len(cmd_ids), N_ROWS)
            p.sent |= cmd_ids
            ids.append((rep["import_id"], cmd_ids))
        # the same file gave the same import id and command ids in both pods: each pod
        # applied them (a leak would have made the second pod's a repeat, or nothing)
        self.assertEqual(ids[0], ids[1])

        for p in pods:
            p.smtp.wait_messages(1, timeout=60)
            p.bus.wait_for("events.notifications",
                           lambda m, p=p: isinstance(m[1], dict)
                           and m[1].get("notification_id") == p.notification_id, timeout=60)
            p.bus.wait_for("dlq", lambda m: True, timeout=60)

        for p, other in (pods, pods[::-1]):
            with self.subTest(pod=p.name):
                # results: one per command sent to this pod, none of the other's
                results = [m[1] for m in p.bus.read_to_end("results") if isinstance(m[1], dict)]
                got = {r["command_id"] for r in results}
                self.assertEqual(got, p.sent)
                self.assertFalse(got & (other.sent - ids[0][1]))
                self.assertEqual(len(results), len(p.sent), "a result repeated or leaked")
                # access events: caused by this pod's commands, naming this pod's customer
                events = [m[1] for m in p.bus.read_to_end("events.access") if isinstance(m[1], dict)]
                self.assertEqual(len(events), N_ROWS + 1)
                self.assertLessEqual({e["caused_by"] for e in events}, p.sent)
                cust1 = [e for e in events if e["customer_id"] == "cust-1"]
                self.assertEqual([(e["email"], e["version"]) for e in cust1],
                                 [("only-%s-%s@example.com" % (p.name, shop), 1)])
                # notification events: this pod's email only
                notes = [m[1] for m in p.bus.read_to_end("events.notifications") if isinstance(m[1], dict)]
                self.assertEqual([(n["notification_id"], n["status"]) for n in notes],
                                 [(p.notification_id, "sent")])
                # dead letters: this pod's garbage only, from this pod's topic
                dead = p.bus.read_to_end("dlq")
                self.assertEqual([m[1] for m in dead], [("not json from pod %s" % p.name).encode()])
                self.assertEqual(dead[0][2]["source.topic"], p.prefix + "commands.assign")
                # emails: this pod's SMTP server got this pod's one email
                mails = p.smtp.messages()
                self.assertEqual(len(mails), 1)
                self.assertEqual(mails[0]["rcpt_tos"], ["only-%s-%s@example.com" % (p.name, shop)])
                self.assertEqual(other.smtp.messages(to="only-%s-%s@example.com" % (p.name, shop)), [])
                # rows: this pod's commands, company name and customer only
                self.assertEqual({r[0] for r in p.query("SELECT command_id::text FROM commands")}, p.sent)
                self.assertEqual(p.query("SELECT name FROM companies"), [("Company of pod %s" % p.name,)])
                self.assertEqual(p.query("SELECT count(*) FROM customers"), [(N_ROWS + 1,)])
                # b2bctl, with this pod's prefix and database, answers about this pod
                acc = json.loads(p.ctl("access", shop, "cust-1", "--json").stdout)
                self.assertEqual(acc["companies"][0]["name"], "Company of pod %s" % p.name)
                self.assertEqual(acc["companies"][0]["locations"][0]["name"], "Loc of pod %s" % p.name)
                tl = p.ctl("timeline", shop, "cust-1", "--json")
                self.assertEqual(tl.returncode, 0, tl.stderr)
                self.assertIn(p.notification_id, tl.stdout)
                self.assertNotIn(other.notification_id, tl.stdout)
                # each pod's consumer group is its own, on its own topics
                groups = p.query("SELECT DISTINCT group_id, topic FROM consumer_offsets")
                self.assertTrue(groups)
                self.assertEqual({g for g, _ in groups}, {p.prefix + "b2bd"})
                self.assertTrue(all(t.startswith(p.prefix) for _, t in groups), groups)


if __name__ == "__main__":
    import unittest
    unittest.main()
