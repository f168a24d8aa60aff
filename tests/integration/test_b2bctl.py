"""b2bctl's operator commands against the local environment: access, timeline, resend,
dlq list/replay, import status, topics apply, send; --help of each; --json output parses."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest
import uuid

import harness
from b2btest import B2bTestCase, wait_until

B2BCTL = os.path.join(harness.BUILD_DIR, "b2bctl")


class B2bctlTest(B2bTestCase):

    def setUp(self):
        super().setUp()
        if not os.access(B2BCTL, os.X_OK):
            harness.missing("b2bctl is not built")
        self.tmp = tempfile.mkdtemp(prefix="ctl-", dir=harness.LOCALENV_DIR)

    def tearDown(self):
        if not self._failed():
            shutil.rmtree(self.tmp, ignore_errors=True)
        super().tearDown()

    def ctl(self, *args, prefix=None, timeout=120):
        e = dict(os.environ)
        e.update({"B2BD_KAFKA_BOOTSTRAP": harness.env()["B2BD_KAFKA_BOOTSTRAP"],
                  "B2BD_TOPIC_PREFIX": prefix or self.prefix, "B2BD_PG_DSN": self.dsn})
        return subprocess.run([B2BCTL] + list(args), env=e, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)

    def ok(self, *args, **kw):
        p = self.ctl(*args, **kw)
        self.assertEqual(p.returncode, 0, "b2bctl %s: %s%s" % (" ".join(args), p.stdout, p.stderr))
        return p

    def ok_json(self, *args, **kw):
        return json.loads(self.ok(*args, "--json", **kw).stdout)

    # -- help ------------------------------------------------------------------
    def test_help_of_each_command(self):
        for cmd in (["import"], ["import", "status"], ["send"], ["tail"], ["access"], ["timeline"],
                    ["resend"], ["dlq"], ["topics"]):
            p = self.ok(*cmd, "--help")
            self.assertIn("usage: b2bctl " + cmd[0], p.stdout)
        p = self.ok("--help")
        for name in ("import", "send", "tail", "access", "timeline", "resend", "dlq", "topics"):
            self.assertIn("  " + name, p.stdout)
        self.assertEqual(self.ctl("nope").returncode, 2)
        self.assertEqual(self.ctl("access", "only-one").returncode, 2)

    # -- access ----------------------------------------------------------------
    def test_access_human_and_json(self):
        self.make_company()
        self.make_customer("cust-1")
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only"), ("loc-2", "location_admin")]))
        self.make_company("c-2", locations=("loc-9",))
        self.applied("assign", self.assign("cust-1", [], company="c-2"))
        p = self.ok("access", self.shop, "cust-1")
        self.assertIn("company c-1 (Company c-1): location loc-2 (Location loc-2): location_admin", p.stdout)
        self.assertIn("company c-2 (Company c-2): No access", p.stdout)
        j = self.ok_json("access", self.shop, "cust-1")
        self.assertEqual(j, {"shop_id": self.shop, "customer_id": "cust-1", "companies": [
            {"company_id": "c-1", "name": "Company c-1", "access": "locations", "locations": [
                {"location_id": "loc-1", "name": "Location loc-1", "role": "ordering_only"},
                {"location_id": "loc-2", "name": "Location loc-2", "role": "location_admin"}],
             "company_suspended": False, "contact_suspended": False},
            {"company_id": "c-2", "name": "Company c-2", "access": "no_access", "locations": [],
             "company_suspended": False, "contact_suspended": False}]})
        self.assertEqual(self.ok_json("access", self.shop, "nobody")["companies"], [])
        self.assertIn("no company (D2C)", self.ok("access", self.shop, "nobody").stdout)
        # a suspended company, and a contact suspended on its own (CONTRACT.md, "Suspension")
        self.applied("suspend", {"company_id": "c-1"})
        self.applied("suspend", {"company_id": "c-2", "customer_id": "cust-1"})
        p = self.ok("access", self.shop, "cust-1")
        self.assertIn("company c-1 (Company c-1) [suspended: the company; roles kept, no access]: location loc-2"
                      " (Location loc-2): location_admin", p.stdout)
        self.assertIn("company c-2 (Company c-2) [suspended: the contact; roles kept, no access]: No access", p.stdout)
        j = self.ok_json("access", self.shop, "cust-1")
        self.assertEqual([(c["access"], c["company_suspended"], c["contact_suspended"], len(c["locations"]))
                          for c in j["companies"]], [("suspended", True, False, 2), ("suspended", False, True, 0)])

    # -- timeline and resend -------------------------------------------------------
    def test_timeline_and_resend(self):
        self.make_company()
        email = "tl-%s@example.com" % self.shop
        self.make_customer("cust-t", email=email, first_name="Tia")
        r = self.applied("assign", self.assign("cust-t", [("loc-1", "ordering_only")], notify=True))
        nid = r["notification_ids"][0]

        def sent():
            items = self.ok_json("timeline", self.shop, "cust-t")["notifications"]
            return items if items and all(i["status"] == "sent" for i in items) else None
        items = wait_until(sent, timeout=60, what="the email sent")
        self.assertEqual(len(items), 1)
        n = items[0]
        self.assertEqual((n["notification_id"], n["to_address"], n["recipient"], n["company_id"]),
                         (nid, email, "customer", "c-1"))
        self.assertEqual(n["attempts"], 1)
        self.assertIsNone(n["resend_of"])
        self.assertIsNone(n["last_error"])
        self.assertTrue(n["created_at"].endswith("Z") and n["sent_at"])
        human = self.ok("timeline", self.shop, "cust-t").stdout
        self.assertIn(nid, human)
        self.assertIn("sent", human)

        res = self.ok_json("resend", self.shop, nid)
        self.assertEqual(res["status"], "applied", res)
        new_id = res["result"]["queued"][0]["notification_id"]
        self.assertNotEqual(new_id, nid)
        staff = self.ok("resend", "--staff", "--staff-email", "staff-%s@example.com" % self.shop,
                        self.shop, nid)
        self.assertIn("queued notification", staff.stdout)
        items = wait_until(lambda: (lambda i: i if len(i) == 3 else None)(
            self.ok_json("timeline", self.shop, "cust-t")["notifications"]), what="3 notifications")
        resends = [i for i in items if i["resend_of"] == nid]
        self.assertEqual(len(resends), 2)
        self.assertEqual(sorted(i["recipient"] for i in resends), ["customer", "staff"])
        self.assertIn("staff-%s@example.com" % self.shop, [i["to_address"] for i in resends])
        # an unknown notification, a bad id
        p = self.ctl("resend", self.shop, "00000000-0000-4000-8000-000000000000")
        self.assertEqual(p.returncode, 1)
        self.assertIn("no notification", p.stderr)
        self.assertEqual(self.ctl("resend", self.shop, "not-a-uuid").returncode, 2)
        self.assertEqual(self.ok_json("timeline", self.shop, "nobody")["notifications"], [])

    # -- dead letters ------------------------------------------------------------
    def test_dlq_list_and_replay(self):
        before = len(self.ok_json("dlq", "list", "--timeout", "2")["dead_letters"])
        tag = "not json %s" % self.shop
        self.send(tag, topic_suffix="commands.assign", key="%s/c-1" % self.shop)
        self.bus.wait_for("dlq", lambda m: m[1] == tag.encode(), timeout=30)
        letters = self.ok_json("dlq", "list", "--timeout", "2")["dead_letters"]
        mine = [d for d in letters if d.get("value") == tag]
        self.assertEqual(len(mine), 1)
        d = mine[0]
        self.assertEqual(d["key"], "%s/c-1" % self.shop)
        self.assertEqual(d["headers"]["error.code"], "NOT_JSON")
        self.assertEqual(d["headers"]["source.topic"], self.prefix + "commands.assign")
        self.assertEqual(len(letters), before + 1)
        self.assertIn("error.code: NOT_JSON", self.ok("dlq", "list", "--timeout", "2").stdout)
        self.assertEqual(len(self.ok_json("dlq", "list", "--max", "1", "--timeout", "2")["dead_letters"]), 1)

        r = self.ok_json("dlq", "replay", "--partition", str(d["partition"]), "--offset", str(d["offset"]))
        self.assertEqual((r["replayed"], r["skipped"]), (1, 0), r)
        self.assertEqual(r["dead_letters"][0]["replayed_to"], self.prefix + "commands.assign")
        # still not a command: b2bd dead-letters its replayed copy again (same key and value,
        # from the same source topic, at a later source offset)
        wait_until(lambda: len([m for m in self.bus.messages("dlq") if m[1] == tag.encode()]) == 2,
                   what="the replayed copy dead-lettered again")
        copies = [m for m in self.bus.messages("dlq") if m[1] == tag.encode()]
        self.assertEqual([m[0] for m in copies], ["%s/c-1" % self.shop] * 2)
        self.assertEqual({m[2]["source.topic"] for m in copies}, {self.prefix + "commands.assign"})
        p = self.ctl("dlq", "replay", "--partition", str(d["partition"]), "--offset", "999999", "--timeout", "2")
        self.assertEqual(p.returncode, 1)
        self.assertEqual(self.ctl("dlq", "replay").returncode, 2)
        r = self.ok_json("dlq", "replay", "--all", "--timeout", "2")
        self.assertEqual(r["replayed"], before + 2)

    # -- import status -----------------------------------------------------------
    def test_import_status(self):
        self.make_company()
        path = os.path.join(self.tmp, "st.csv")
        with open(path, "w") as f:
            f.write("email\nst1@example.com\nst2@example.com\n")
        iid = "status-" + self.shop
        self.ok("import", "--shop", self.shop, "--company", "c-1", "--location", "loc-1",
                "--import-id", iid, path)
        j = self.ok_json("import", "status", iid)
        self.assertEqual((j["import_id"], j["applied"], j["by_type"]), (iid, 2, {"assign": 2}))
        self.assertLessEqual(j["first_processed_at"], j["last_processed_at"])
        self.assertIn("2 applied", self.ok("import", "status", iid).stdout)
        p = self.ctl("import", "status", "no-such-import")
        self.assertEqual(p.returncode, 1)
        self.assertIn("no applied command", p.stdout)

    # -- topics ------------------------------------------------------------------
    def test_topics_apply_existing_twice(self):
        """The harness created this prefix's topics (4 partitions) on the mock: apply
        reports each as existing, twice, and exits 0."""
        for _ in range(2):
            j = self.ok_json("topics", "apply", "--manifest",
                             os.path.join(harness.SOURCE_DIR, "topics", "manifest.json"))
            self.assertEqual((j["exists"], j["created"], j["failed"]), (12, 0, 0), j)
            self.assertEqual(j["brokers"], 3)
            names = sorted(t["name"] for t in j["topics"])
            self.assertIn(self.prefix + "events.access", names)
            self.assertTrue(all(t["state"] == "exists" and t["actual_partitions"] == 4 for t in j["topics"]))
        p = self.ok("topics", "apply")
        self.assertIn("12 exist, 0 created, 0 failed", p.stdout)

    def test_topics_apply_new_prefix_on_the_mock(self):
        """librdkafka 2.0.2's mock cluster has no CreateTopics (nor DescribeConfigs): the
        creation of a new prefix's topics fails, each topic is reported with the error,
        within the timeout, and the exit code is 1. (Against a real cluster they are
        created; that is not tested here.)"""
        prefix = harness.unique_name("tnew") + "."
        p = self.ctl("topics", "apply", "--timeout", "3", "--json", prefix=prefix)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        j = json.loads(p.stdout)
        self.assertEqual(j["failed"], 12)
        t = {t["name"]: t for t in j["topics"]}[prefix + "events.access"]
        self.assertEqual((t["state"], t["partitions"], t["replication_factor"]), ("failed", 12, 3))
        self.assertEqual(t["config"]["cleanup.policy"], "compact")
        self.assertTrue(t["error"])

    # -- send ------------------------------------------------------------------
    def test_send_wait(self):
        self.make_company()
        cmds = [harness.command("assign", self.shop, self.assign({"email": "s%d@example.com" % i},
                                                                 [("loc-1", "ordering_only")]))
                for i in range(3)]
        cmds.append(harness.command("assign", self.shop, self.assign("nobody", [])))
        path = os.path.join(self.tmp, "send.jsonl")
        with open(path, "w") as f:
            f.write("".join(json.dumps(c) + "\n" for c in cmds))
        p = self.ctl("send", "--wait", path)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("results: applied=3 rejected=1 missing=0", p.stdout)
        self.assertIn("rejected NOT_FOUND: 1", p.stdout)

    def test_send_wait_upper_case_command_ids(self):
        """b2bd reports a command_id in canonical lower case: send --wait still finds the
        result of each command of a file written with upper-case ids."""
        self.make_company()
        cmds = [harness.command("assign", self.shop, self.assign({"email": "u%d.%s@example.com" % (i, self.shop)},
                                                                 [("loc-1", "ordering_only")]),
                                command_id=str(uuid.uuid4()).upper())
                for i in range(3)]
        path = os.path.join(self.tmp, "upper.jsonl")
        with open(path, "w") as f:
            f.write("".join(json.dumps(c) + "\n" for c in cmds))
        p = self.ctl("send", "--wait", "--timeout", "30", path)
        self.assertIn("results: applied=3 rejected=0 missing=0", p.stdout, p.stdout + p.stderr)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


if __name__ == "__main__":
    unittest.main()
