"""Faults on the Kafka side, on a private mock cluster (the shared one serves tests that
run in parallel): every broker down for a while, and produce and offset-commit requests
failing. b2bd retries, publishes every outbox event once the cluster answers again,
applies each command once, and never commits an offset ahead of what it applied."""
import os
import subprocess
import time
import unittest

from confluent_kafka import Consumer, TopicPartition

import harness
from b2btest import B2bTestCase, wait_until

PREFIX = "b2b."


class PrivateKafka:
    """build/b2b-kafka-mock with the default prefix's topics."""

    def __init__(self):
        self.proc = subprocess.Popen([os.path.join(harness.BUILD_DIR, "b2b-kafka-mock"), "--brokers", "3",
                                      "--partitions", "4", "--prefix", PREFIX],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        found = harness._read_lines_until(self.proc, ["bootstrap=", "control="], 30)
        self.bootstrap = found["bootstrap="]
        self.control_addr = found["control="]

    def control(self, line):
        return harness._control(self.control_addr, line, True, "kafka")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(15)
        self.proc.stdout.close()


class KafkaFaultTest(B2bTestCase):
    START_DAEMON = False
    # a database per test: each test's private cluster starts its offsets at 0 again,
    # and b2bd would (rightly) skip what the database says it applied
    SHARED = False

    def setUp(self):
        super().setUp()
        self.kafka = PrivateKafka()
        self.prefix = PREFIX
        self._bus = harness.Bus(PREFIX, bootstrap=self.kafka.bootstrap)

    def start(self, extra_env=None):
        env = {"B2BD_KAFKA_BOOTSTRAP": self.kafka.bootstrap, "B2BD_TOPIC_PREFIX": PREFIX, "B2BD_BATCH_MAX": "25"}
        env.update(extra_env or {})
        self.d = self.start_daemon(extra_env=env)
        self.make_company("c-1", ["loc-1"])

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            self.kafka.stop()

    def stream(self, n):
        cmds = [harness.command("assign", self.shop, self.assign({"email": "f%04d.%s@example.com" % (i, self.shop)},
                                                                 [("loc-1", "ordering_only")]))
                for i in range(n)]
        for c in cmds:
            self.bus.send(c)
        self.bus.flush(60)
        return cmds

    def check_once(self, cmds):
        results = self.bus.wait_results([c["command_id"] for c in cmds], timeout=120)
        self.assertTrue(all(r["status"] == "applied" for r in results))
        self.settle()
        events = {}
        for m in self.bus.read_to_end("results"):
            events.setdefault(m[1]["command_id"], set()).add(m[1]["event_id"])
        self.assertTrue(all(len(events[c["command_id"]]) == 1 for c in cmds), "one result per command")
        self.assertEqual(self.query("SELECT contact_count FROM companies WHERE shop_id = %s", (self.shop,)),
                         [(len(cmds),)])
        wait_until(lambda: self.query("SELECT count(*) FROM outbox")[0][0] == 0, what="the outbox drained")
        # offsets committed to Kafka never run ahead of those applied in the database
        applied = {(t, p): o for t, p, o in self.query(
            "SELECT topic, partition, next_offset FROM consumer_offsets")}
        c = Consumer({"bootstrap.servers": self.kafka.bootstrap, "group.id": self.d.env["B2BD_GROUP_ID"],
                      "enable.auto.commit": False})
        try:
            parts = [TopicPartition(PREFIX + "commands.assign", p) for p in range(4)]
            committed = []

            def read_committed():
                committed[:] = [tp for tp in c.committed(parts, timeout=30) if tp.offset >= 0]
                return committed
            # offsets are committed to Kafka asynchronously, after the transaction
            wait_until(read_committed, timeout=30, what="an offset of commands.assign committed to Kafka")
        finally:
            c.close()
        # the check below must not pass vacuously: offsets were committed
        self.assertTrue(committed, "no offset of commands.assign committed to Kafka")
        for tp in committed:
            self.assertIn((tp.topic, tp.partition), applied, tp)
            self.assertLessEqual(tp.offset, applied[(tp.topic, tp.partition)], tp)

    def test_all_brokers_down_then_back(self):
        self.start()
        cmds = self.stream(300)
        def results_read():
            self.bus.poll("results", 0.2)
            return len(self.bus.messages("results"))
        wait_until(lambda: results_read() >= 60, what="a fifth of the results")
        for b in (1, 2, 3):
            self.kafka.control("broker-down %d" % b)
        time.sleep(5)
        self.assertTrue(self.d.alive())
        for b in (1, 2, 3):
            self.kafka.control("broker-up %d" % b)
        self.check_once(cmds)

    def test_produce_and_commit_errors(self):
        # The mock's error stack serves whichever client sends the next such request:
        # the commands are produced while no b2bd runs, and only then are the errors
        # pushed, so that b2bd's own producer (results, events) and consumer (offset
        # commits) are the ones that meet them. librdkafka's protocol log (debug) shows
        # what they received.
        debug = {"B2BD_LOG_LEVEL": "debug", "B2BD_KAFKA__DEBUG": "protocol,msg,cgrp"}
        self.start(debug)
        self.assertEqual(self.d.stop(), 0)
        cmds = self.stream(200)
        self.kafka.control("push-errors Produce 6 NOT_LEADER_FOR_PARTITION NOT_LEADER_FOR_PARTITION "
                           "REQUEST_TIMED_OUT REQUEST_TIMED_OUT NOT_ENOUGH_REPLICAS NOT_ENOUGH_REPLICAS")
        self.kafka.control("push-errors OffsetCommit 4 REQUEST_TIMED_OUT COORDINATOR_NOT_AVAILABLE "
                           "NOT_COORDINATOR REQUEST_TIMED_OUT")
        env = {"B2BD_KAFKA_BOOTSTRAP": self.kafka.bootstrap, "B2BD_TOPIC_PREFIX": PREFIX, "B2BD_BATCH_MAX": "25"}
        env.update(debug)
        self.d = self.start_daemon(extra_env=env)
        self.check_once(cmds)
        # b2bd itself met the injected errors, and went on
        log = self.d.log()
        for text in ("Broker: Not leader for partition", "Broker: Request timed out",
                     "Broker: Not enough in-sync replicas", "Broker: Coordinator not available",
                     "Broker: Not coordinator"):
            self.assertIn(text, log, "b2bd's clients never received %r (log: %s)" % (text, self.d.log_path))


if __name__ == "__main__":
    unittest.main()
