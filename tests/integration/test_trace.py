"""Trace context (CONTRACT "Trace context and dry runs"): a command's W3C traceparent and
tracestate headers are continued on every message it causes (result, a repeat's result,
access events, the notification event of an email it queued, also after a retry and a
restart, the privacy export, the shop event, its dead letter), with the same trace id and
flags, a parent id of b2bd's own (the same on every message of that delivery) and the
tracestate as it came; an invalid traceparent is ignored with its tracestate; no other
header is copied; the log lines about the command carry its trace_id; b2bctl send and
import start one trace per run and print it."""
import json
import os
import re
import shutil
import subprocess
import tempfile

import harness
from b2btest import B2bTestCase, wait_until

B2BCTL = os.path.join(harness.BUILD_DIR, "b2bctl")
TID = "4bf92f3577b34da6a3ce929d0e0e4736"
PID = "00f067aa0ba902b7"
TP = "00-%s-%s-01" % (TID, PID)
TS = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def tp(trace_id=TID, parent=PID, flags="01", version="00"):
    return "%s-%s-%s-%s" % (version, trace_id, parent, flags)


class TraceChecks:
    """Reading the trace headers of b2bd's messages."""

    def send_traced(self, cmd, headers, topic_suffix=None, key=None):
        self.bus.send(cmd, headers=headers, topic_suffix=topic_suffix, key=key)
        self.bus.flush()

    def result_msg(self, cid, nth=1, timeout=30):
        """The nth result message (key, value, headers, ...) of a command."""
        self.bus.wait_result(cid, timeout=timeout, nth=nth)
        return [m for m in self.bus.messages("results")
                if isinstance(m[1], dict) and m[1].get("command_id") == cid][nth - 1]

    def continued(self, headers, trace_id=TID, flags="01", tracestate=TS):
        """Checks one output message's headers continue the trace; returns b2bd's parent id."""
        self.assertIn("traceparent", headers, headers)
        m = TRACEPARENT.match(headers["traceparent"])
        self.assertTrue(m, headers)
        self.assertEqual((m.group(1), m.group(3)), (trace_id, flags))
        self.assertNotEqual(m.group(2), "0" * 16)
        self.assertNotEqual(m.group(2), PID, "b2bd's own parent id, not the producer's")
        if tracestate is None:
            self.assertNotIn("tracestate", headers)
        else:
            self.assertEqual(headers.get("tracestate"), tracestate)
        return m.group(2)

    def untraced(self, headers):
        self.assertNotIn("traceparent", headers, headers)
        self.assertNotIn("tracestate", headers, headers)


class TraceTest(TraceChecks, B2bTestCase):
    DAEMON_ENV = {"B2BD_NOTIFIER_RETRY_INITIAL_MS": "200", "B2BD_NOTIFIER_RETRY_MAX_MS": "400"}

    def setUp(self):
        super().setUp()
        self.make_company()

    def test_result_and_access_event_continue_the_trace(self):
        self.make_customer("cust-1")
        cmd = self.command("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.send_traced(cmd, [("traceparent", TP), ("tracestate", TS), ("x-other", "no")])
        res = self.result_msg(cmd["command_id"])
        self.assertEqual(res[1]["status"], "applied", res)
        parent = self.continued(res[2])
        self.assertNotIn("x-other", res[2], "no other header is copied")
        ev = self.bus.wait_for("events.access", lambda m: isinstance(m[1], dict)
                               and m[1].get("caused_by") == cmd["command_id"])
        self.assertEqual(self.continued(ev[2]), parent, "one parent id for the delivery")
        self.assertNotIn("x-other", ev[2])

        # the same command again, with another trace: the stored result, same event,
        # on the repeat's trace with a parent id of its own
        t2 = tp(trace_id="a" * 32, parent="b" * 16, flags="00")
        self.send_traced(cmd, [("traceparent", t2)])
        again = self.result_msg(cmd["command_id"], nth=2)
        self.assertEqual(again[1], res[1])
        parent2 = self.continued(again[2], trace_id="a" * 32, flags="00", tracestate=None)
        self.assertNotEqual(parent2, parent)

        # a command without trace: no trace headers at all
        plain = self.command("assign", self.assign("cust-1", [("loc-2", "ordering_only")]))
        self.send_traced(plain, None)
        self.untraced(self.result_msg(plain["command_id"])[2])
        ev = self.bus.wait_for("events.access", lambda m: isinstance(m[1], dict)
                               and m[1].get("caused_by") == plain["command_id"])
        self.untraced(ev[2])

    def test_invalid_traceparents_are_ignored_with_their_tracestate(self):
        self.make_customer("cust-2")
        bad = [tp(version="ff"), tp(trace_id="0" * 32), tp(parent="0" * 16), TP.upper(),
               TP + "-x", TP[:-1], "not a traceparent"]
        cids = []
        for i, value in enumerate(bad):
            cmd = self.command("assign", self.assign("cust-2", [("loc-1", "ordering_only" if i % 2 else "location_admin")]))
            self.send_traced(cmd, [("traceparent", value), ("tracestate", TS)])
            cids.append(cmd["command_id"])
        # a traceparent given twice is no trace either
        cmd = self.command("assign", self.assign("cust-2", [("loc-3", "ordering_only")]))
        self.send_traced(cmd, [("traceparent", TP), ("traceparent", tp(trace_id="c" * 32))])
        cids.append(cmd["command_id"])
        for cid in cids:
            r = self.result_msg(cid)
            self.assertEqual(r[1]["status"], "applied", r)
            self.untraced(r[2])
        # a later version is read by its first four fields, and continued as version 00
        cmd = self.command("assign", self.assign("cust-2", [("loc-2", "ordering_only")]))
        self.send_traced(cmd, [("traceparent", tp(version="01", flags="00") + "-future")])
        self.continued(self.result_msg(cmd["command_id"])[2], flags="00", tracestate=None)

    def test_rejection_dead_letter_and_log_lines(self):
        cmd = self.command("assign", self.assign("nobody", [("loc-1", "ordering_only")]))
        self.send_traced(cmd, [("traceparent", TP)])
        r = self.result_msg(cmd["command_id"])
        self.assertEqual((r[1]["status"], r[1]["error"]["code"]), ("rejected", "NOT_FOUND"))
        self.continued(r[2], tracestate=None)
        # an invalid command (rejected while decoding) too
        bad = self.command("assign", {"company_id": "c-1"})
        self.send_traced(bad, [("traceparent", TP), ("tracestate", TS)])
        r = self.result_msg(bad["command_id"])
        self.assertEqual(r[1]["error"]["code"], "INVALID", r)
        self.continued(r[2])
        # a dead letter: the reason's headers and the trace
        self.send_traced(b"not json at all", [("traceparent", TP), ("tracestate", TS)],
                         topic_suffix="commands.assign", key="%s/c-1" % self.shop)
        dead = self.bus.wait_for("dlq", lambda m: m[1] == b"not json at all")
        self.assertEqual(dead[2]["error.code"], "NOT_JSON")
        self.continued(dead[2])
        # the log lines about these commands carry the trace id
        log = self.d.log()
        for cid in (cmd["command_id"], bad["command_id"]):
            line = [l for l in log.splitlines() if "cmd_id=%s" % cid in l and "event=rejected" in l]
            self.assertTrue(line, cid)
            self.assertIn("trace_id=%s" % TID, line[0])
        self.assertTrue([l for l in log.splitlines() if "event=dead_lettered" in l and "trace_id=%s" % TID in l])

    def test_privacy_export_and_shop_event(self):
        self.make_customer("cust-3")
        cmd = self.command("customer.data_request", {"customer_id": "cust-3"})
        self.send_traced(cmd, [("traceparent", TP), ("tracestate", TS)])
        res = self.result_msg(cmd["command_id"])
        self.assertEqual(res[1]["status"], "applied", res)
        parent = self.continued(res[2])
        export = self.bus.wait_for("events.privacy", lambda m: isinstance(m[1], dict)
                                   and m[1].get("request_command_id") == cmd["command_id"])
        self.assertEqual(self.continued(export[2]), parent)
        shop = self.command("shop.upsert", {"name": "Traced shop"})
        self.send_traced(shop, [("traceparent", TP)])
        res = self.result_msg(shop["command_id"])
        parent = self.continued(res[2], tracestate=None)
        ev = self.bus.wait_for("events.shops", lambda m: isinstance(m[1], dict)
                               and m[1].get("shop_id") == self.shop and m[1].get("name") == "Traced shop")
        self.assertEqual(self.continued(ev[2], tracestate=None), parent)


class RunTraceTest(TraceChecks, B2bTestCase):
    START_DAEMON = False

    def test_a_set_based_run_keeps_each_commands_trace(self):
        """Assigns that arrive together are applied in set-based runs; each result and
        access event carries its own command's trace (one trace for the first 20, none
        for the next 10, another for the last 10)."""
        first = self.start_daemon()
        self.make_company()
        self.assertEqual(first.stop(), 0)
        cmds, traces = [], []
        for i in range(40):
            cmd = self.command("assign", {"company_id": "c-1", "customer": {"email": "run-%d-%s@example.com" % (i, self.shop)},
                                          "locations": [{"location_id": "loc-1", "role": "ordering_only"}]})
            trace = TP if i < 20 else None if i < 30 else tp(trace_id="d" * 32)
            self.bus.send(cmd, headers=[("traceparent", trace)] if trace else None)
            cmds.append(cmd)
            traces.append(trace)
        self.bus.flush()
        # started once all 40 wait on the topic: one batch (a lingering first poll)
        d = self.start_daemon(extra_env={"B2BD_BATCH_LINGER_MS": "300"})
        self.bus.wait_results([c["command_id"] for c in cmds], timeout=60)
        self.settle()
        events = {m[1]["caused_by"]: m for m in self.bus.read_to_end("events.access")
                  if isinstance(m[1], dict)}
        for cmd, trace in zip(cmds, traces):
            r = self.result_msg(cmd["command_id"])
            self.assertEqual(r[1]["status"], "applied", r)
            if trace is None:
                self.untraced(r[2])
                self.untraced(events[cmd["command_id"]][2])
            else:
                want = TRACEPARENT.match(trace).group(1)
                parent = self.continued(r[2], trace_id=want, tracestate=None)
                self.assertEqual(self.continued(events[cmd["command_id"]][2], trace_id=want,
                                                tracestate=None), parent)
        # three runs (a run holds one trace), each set-based
        self.assertEqual(d.metrics().get("b2bd_apply_bulk_commands_total"), 40.0)



class NotificationTraceTest(B2bTestCase):
    """The notification event of an email carries the trace of the command that queued
    it, after a transient refusal, a retry and a restart of b2bd in between."""
    START_DAEMON = False
    PRIVATE_SMTP = True
    ENV = {"B2BD_NOTIFIER_RETRY_INITIAL_MS": "2000", "B2BD_NOTIFIER_RETRY_MAX_MS": "2000"}

    def test_email_event_keeps_the_trace_across_a_retry_and_a_restart(self):
        d = self.start_daemon(extra_env=self.ENV, smtp_url=self.smtp.url)
        self.make_company()
        email = "traced-%s@example.com" % self.shop
        self.make_customer("cust-n", email=email)
        self.smtp.control("fail-rcpt %s 451 try later" % email)
        cmd = self.command("assign", self.assign("cust-n", [("loc-1", "ordering_only")], notify=True))
        self.bus.send(cmd, headers=[("traceparent", TP), ("tracestate", TS)])
        self.bus.flush()
        res = self.bus.wait_result(cmd["command_id"])
        self.assertEqual(len(res["result"]["notification_ids"]), 1, res)
        nid = res["result"]["notification_ids"][0]
        result_headers = [m for m in self.bus.messages("results") if isinstance(m[1], dict)
                          and m[1].get("command_id") == cmd["command_id"]][0][2]
        wait_until(lambda: self.query("SELECT attempts FROM notifications WHERE notification_id = %s",
                                      (nid,))[0][0] >= 1, timeout=30, what="a first, refused attempt")
        self.assertEqual(d.stop(), 0)
        self.smtp.control("clear")
        self.start_daemon(extra_env=self.ENV, smtp_url=self.smtp.url)
        ev = self.bus.wait_for("events.notifications", lambda m: isinstance(m[1], dict)
                               and m[1].get("notification_id") == nid, timeout=60)
        self.assertEqual((ev[1]["status"], ev[1]["attempts"]), ("sent", 2), ev[1])
        self.assertEqual(ev[2].get("traceparent"), result_headers["traceparent"],
                         "the delivery's parent id, kept with the email")
        self.assertEqual(ev[2].get("tracestate"), TS)
        self.assertTrue(ev[2]["traceparent"].startswith("00-%s-" % TID))


class CtlTraceTest(B2bTestCase):
    """b2bctl send and import start one trace per run, print it, and every command of
    the run (so every result) carries it."""

    def setUp(self):
        super().setUp()
        if not os.access(B2BCTL, os.X_OK):
            harness.missing("b2bctl is not built")
        self.tmp = tempfile.mkdtemp(prefix="trace-", dir=harness.LOCALENV_DIR)
        self.make_company()

    def tearDown(self):
        if not self._failed():
            shutil.rmtree(self.tmp, ignore_errors=True)
        super().tearDown()

    def ctl(self, *args):
        e = dict(os.environ)
        e.update({"B2BD_KAFKA_BOOTSTRAP": harness.env()["B2BD_KAFKA_BOOTSTRAP"],
                  "B2BD_TOPIC_PREFIX": self.prefix, "B2BD_PG_DSN": self.dsn})
        p = subprocess.run([B2BCTL] + list(args), env=e, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p.stdout

    def traced_results(self, cids, trace_id):
        for cid in cids:
            self.bus.wait_result(cid)
        parents = set()
        for m in self.bus.messages("results"):
            if isinstance(m[1], dict) and m[1].get("command_id") in cids:
                got = TRACEPARENT.match(m[2].get("traceparent", ""))
                self.assertTrue(got, m[2])
                self.assertEqual(got.group(1), trace_id)
                parents.add(got.group(2))
        return parents

    def test_send_and_import_print_their_trace(self):
        cmds = [self.command("customer.upsert", {"customer_id": "ctl-%d" % i, "email": "ctl-%d-%s@example.com" % (i, self.shop)})
                for i in range(3)]
        path = os.path.join(self.tmp, "cmds.jsonl")
        with open(path, "w") as f:
            for c in cmds:
                f.write(json.dumps(c) + "\n")
        out = self.ctl("send", "--wait", path)
        m = re.search(r"^trace_id=([0-9a-f]{32})$", out, re.M)
        self.assertTrue(m, out)
        parents = self.traced_results({c["command_id"] for c in cmds}, m.group(1))
        self.assertEqual(len(parents), 3, "a parent id of b2bd's own for each delivery")

        csv_path = os.path.join(self.tmp, "people.csv")
        with open(csv_path, "w") as f:
            f.write("email,location_id,role\n")
            for i in range(5):
                f.write("imp-%d-%s@example.com,loc-1,ordering_only\n" % (i, self.shop))
        rep = json.loads(self.ctl("import", "--shop", self.shop, "--company", "c-1", "--json", csv_path))
        self.assertEqual(rep["applied"], 5, rep)
        self.assertRegex(rep["trace_id"], r"^[0-9a-f]{32}$")
        self.assertNotEqual(rep["trace_id"], m.group(1), "a trace per run")
        cids = {r[0] for r in self.query("SELECT command_id::text FROM commands WHERE import_id = %s",
                                         (rep["import_id"],))}
        self.assertEqual(len(cids), 5)
        self.traced_results(cids, rep["trace_id"])
        human = self.ctl("import", "--shop", self.shop, "--company", "c-1", csv_path)
        self.assertRegex(human, r"(?m)^  trace_id: [0-9a-f]{32}$")


if __name__ == "__main__":
    import unittest
    unittest.main()
