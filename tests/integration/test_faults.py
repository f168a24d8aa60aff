"""Faults on the Kafka side, on a private mock cluster (the shared one serves tests that
run in parallel): every broker down for a while, and produce and offset-commit requests
failing. b2bd retries, publishes every outbox event once the cluster answers again,
applies each command once, and never commits an offset ahead of what it applied. A fatal
client error (the producer or the consumer dead for good) ends b2bd with status 3, so that
systemd starts a new one, and that one publishes what the dead one left in the outbox."""
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
        self.env = {"B2BD_KAFKA_BOOTSTRAP": self.kafka.bootstrap, "B2BD_TOPIC_PREFIX": PREFIX,
                    "B2BD_BATCH_MAX": "25"}

    def start(self, extra_env=None):
        """Starts b2bd on the private cluster (self.env, then extra_env), and the company."""
        env = dict(self.env)
        env.update(extra_env or {})
        self.d = self.start_daemon(extra_env=env)
        self.make_company("c-1", ["loc-1"])

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            self.kafka.stop()

    def stream(self, n, first=0):
        cmds = [harness.command("assign", self.shop, self.assign({"email": "f%04d.%s@example.com" % (i, self.shop)},
                                                                 [("loc-1", "ordering_only")]))
                for i in range(first, first + n)]
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
        # the outage outlasts the producer's message.timeout.ms: deliveries in flight
        # fail, and their rows must stay in the outbox and go again
        self.start({"B2BD_KAFKA__MESSAGE_TIMEOUT_MS": "1500"})
        cmds = self.stream(2000)
        # the outage starts once b2bd has applied a twentieth of the stream, judged in the
        # database: the set-based path applies 300 commands in about a second, before a
        # test that waited for results it read itself took the brokers down (seen twice)
        applied = lambda: self.query("SELECT count(*) FROM commands")[0][0]  # noqa: E731
        wait_until(lambda: applied() >= 100, timeout=60, step=0.02, what="a twentieth applied")
        for b in (1, 2, 3):
            self.kafka.control("broker-down %d" % b)
        # work is outstanding at the outage: b2bd applies what it had fetched, and its
        # results wait in the outbox, which stays full while no broker answers (not all
        # 2000 results were out before the outage)
        outbox = lambda: self.query("SELECT count(*) FROM outbox")[0][0]  # noqa: E731
        wait_until(lambda: outbox() > 0, timeout=30, what="results waiting in the outbox during the outage")
        # a delivery in flight when the brokers went down may still have been acknowledged
        # (the outbox can empty once, seen in CI); a delivery that failed must stay
        self.assertTrue(self.d.wait_log("event=delivery_failed", 30), "no delivery failed in the outage")
        waiting = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            waiting.append(outbox())
            self.assertTrue(self.d.alive())
            time.sleep(0.1)
        self.assertNotIn(0, waiting, "the outbox emptied while every broker was down")
        self.assertGreater(outbox(), 0)
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
        env = dict(self.env)
        env.update(debug)
        self.d = self.start_daemon(extra_env=env)
        self.check_once(cmds)
        # b2bd itself met the injected errors, and went on
        log = self.d.log()
        for text in ("Broker: Not leader for partition", "Broker: Request timed out",
                     "Broker: Not enough in-sync replicas", "Broker: Coordinator not available",
                     "Broker: Not coordinator"):
            self.assertIn(text, log, "b2bd's clients never received %r (log: %s)" % (text, self.d.log_path))

    def wait_fatal_exit(self, client, code, timeout=30):
        """b2bd exits on its own, with status 3, within timeout, having logged the fatal
        error of client with its cause."""
        self.d.expect_exit = 3  # the fatal error's status (judged again in tearDown)
        try:
            status = self.d.wait(timeout)
        except subprocess.TimeoutExpired:
            self.fail("b2bd still running %ss after a fatal %s error" % (timeout, client))
        self.assertEqual(status, 3)
        log = self.d.log()
        self.assertIn("level=error mod=kafka event=fatal client=%s code=%s" % (client, code), log)
        self.assertIn("event=fatal_stop client=%s" % client, log)

    def test_fatal_producer_error_exits_and_the_next_start_publishes(self):
        # the commands wait in Kafka while b2bd is stopped; the injected error then meets
        # the first Produce of the new b2bd's producer (the test's own producer is done)
        self.start()
        self.assertEqual(self.d.stop(), 0)
        cmds = self.stream(60)
        # a head-of-line Produce refused as out of order: the idempotent producer can no
        # longer know what the broker kept, a fatal error (librdkafka's rdkafka_request.c)
        self.kafka.control("push-errors Produce 1 OUT_OF_ORDER_SEQUENCE_NUMBER")
        self.d = self.start_daemon(extra_env=self.env)
        self.wait_fatal_exit("producer", "OUT_OF_ORDER_SEQUENCE_NUMBER")
        # the refused results were applied and committed in PostgreSQL, not lost
        self.assertGreater(self.query("SELECT count(*) FROM outbox")[0][0], 0)
        self.d = self.start_daemon(extra_env=self.env)
        self.check_once(cmds)

    def test_fatal_consumer_error_exits_and_the_next_start_applies(self):
        # a static member (group.instance.id): the consumer whose errors can be fatal
        self.start()
        self.assertEqual(self.d.stop(), 0)
        self.env["B2BD_KAFKA__GROUP_INSTANCE_ID"] = "b2bd-1"
        self.d = self.start_daemon(extra_env=self.env)
        first = self.stream(20)
        self.bus.wait_results([c["command_id"] for c in first], timeout=60)
        # fenced out of its group by another member of the same instance id: a fatal
        # consumer error (rdkafka_cgrp.c, on a heartbeat)
        self.kafka.control("push-errors Heartbeat 1 FENCED_INSTANCE_ID")
        self.wait_fatal_exit("consumer", "FENCED_INSTANCE_ID")
        later = self.stream(20, first=20)
        self.d = self.start_daemon(extra_env=self.env)
        self.check_once(first + later)


if __name__ == "__main__":
    unittest.main()
