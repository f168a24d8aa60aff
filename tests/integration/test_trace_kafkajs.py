"""Trace context (CONTRACT "Trace context and dry runs") with a producer written in
another Kafka client: kafkajs (tests/clients/kafkajs, the version its package-lock.json
pins, installed by scripts/deps.sh) sends an assign with W3C traceparent and tracestate
headers as a kafkajs user does (producer.send with headers {traceparent, tracestate});
the result and the access event b2bd publishes for it continue that trace: same trace
id and flags, one parent id of b2bd's own on both, the tracestate as it came.
Under CI a missing node or kafkajs fails the test; by hand it is skipped."""
import json
import os
import subprocess

import harness
from b2btest import B2bTestCase
from test_trace import TS, TP, TraceChecks

CLIENT_DIR = os.path.join(harness.SOURCE_DIR, "tests", "clients", "kafkajs")
PRODUCE = os.path.join(CLIENT_DIR, "produce_traced.js")


class KafkajsTraceTest(TraceChecks, B2bTestCase):

    @classmethod
    def setUpClass(cls):
        # before a daemon is started for nothing
        cls.node = harness.need_tool("node")
        if not os.path.isfile(os.path.join(CLIENT_DIR, "node_modules", "kafkajs", "package.json")):
            harness.missing("kafkajs is not installed in %s (scripts/deps.sh runs npm ci there)" % CLIENT_DIR)
        super().setUpClass()

    def setUp(self):
        super().setUp()
        self.make_company()
        self.make_customer("cust-js")

    def kafkajs_send(self, cmd, traceparent, tracestate):
        """Produces cmd with kafkajs to its topic, under the key the contract gives it."""
        args = [self.node, PRODUCE, "--bootstrap", harness.env()["B2BD_KAFKA_BOOTSTRAP"],
                "--topic", self.prefix + harness.topic_for(cmd["type"]),
                "--key", harness.key_for(cmd), "--timeout-ms", "30000",
                "--traceparent", traceparent, "--tracestate", tracestate, json.dumps(cmd)]
        p = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, "produce_traced.js: %s%s" % (p.stdout, p.stderr))
        ack = json.loads(p.stdout.strip().splitlines()[-1])
        self.assertEqual([(a["topicName"], a["errorCode"]) for a in ack],
                         [(self.prefix + "commands.assign", 0)], ack)

    def test_a_kafkajs_producers_trace_continues(self):
        cmd = self.command("assign", self.assign("cust-js", [("loc-1", "ordering_only")]))
        self.kafkajs_send(cmd, TP, TS)
        res = self.result_msg(cmd["command_id"])
        self.assertEqual(res[1]["status"], "applied", res)
        # same trace id and flags, a parent id of b2bd's own (16 lower-case hex, not all
        # zero, not the producer's), the tracestate unchanged
        parent = self.continued(res[2])
        ev = self.bus.wait_for("events.access", lambda m: isinstance(m[1], dict)
                               and m[1].get("caused_by") == cmd["command_id"])
        self.assertEqual(ev[1]["customer_id"], "cust-js", ev[1])
        self.assertEqual(self.continued(ev[2]), parent, "one parent id for the delivery")


if __name__ == "__main__":
    import unittest
    unittest.main()
