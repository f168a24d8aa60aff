"""Commands the broker deleted before b2bd applied them (CONTRACT.md, "Limits and
failures", "Commands the broker deleted first"): one COMMANDS_LOST dead letter per gap
(empty value, null key, the range in headers), an error line, a metric, then b2bd goes
on from the oldest offset held. Offsets the broker holds but does not deliver
(transaction markers) are no gap.

librdkafka 2.0.2's mock cluster keeps about 5 MB a partition and deletes the oldest
message sets past that by itself, as a real broker does when retention.bytes runs out."""
import json
import os
import socket
import subprocess
import struct
import time

from confluent_kafka import Consumer, Producer, TopicPartition

import harness
from b2btest import B2bTestCase, wait_until

ASSIGN = "commands.assign"


def padded_assign(shop, i, company="c-1"):
    """An assign of about 770 bytes that creates its customer (as an import sends)."""
    return harness.command("assign", shop, {
        "company_id": company,
        "customer": {"email": "lost-%05d@example.com" % i, "first_name": "F" * 250,
                     "last_name": "L" * 250},
        "locations": [{"location_id": "l-" + company, "role": "ordering_only"}]})


def watermarks(topic, partition):
    c = Consumer({"bootstrap.servers": harness.env()["B2BD_KAFKA_BOOTSTRAP"],
                  "group.id": harness.unique_name("wm-")})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


# -- a transaction marker, written as a broker writes it at a transaction's end ---------
# librdkafka 2.0.2's mock cluster answers EndTxn but writes no marker into the partitions,
# so the test appends the COMMIT control batch itself (a Produce request of one control
# record, Kafka's record batch v2) to the partition's leader.

def _crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _varint(n):
    n = (n << 1) ^ (n >> 63)  # zigzag
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _control_batch(producer_id, epoch):
    key = struct.pack(">hh", 0, 1)     # control record version 0, type COMMIT
    value = struct.pack(">hi", 0, 0)   # version 0, coordinator epoch 0
    body = (b"\x00" + _varint(0) + _varint(0) + _varint(len(key)) + key
            + _varint(len(value)) + value + _varint(0))
    record = _varint(len(body)) + body
    now = int(time.time() * 1000)
    # attributes 0x30: transactional and control
    after_crc = struct.pack(">hiqqqhii", 0x30, 0, now, now, producer_id, epoch, -1, 1) + record
    head = struct.pack(">ib", -1, 2) + struct.pack(">I", _crc32c(after_crc))
    batch_rest = head + after_crc
    return struct.pack(">qi", 0, len(batch_rest)) + batch_rest


def append_commit_marker(topic, partition, producer_id=-1, epoch=-1):
    """Writes one COMMIT marker to a partition (Produce v3, acks=all); returns its offset."""
    md = Consumer({"bootstrap.servers": harness.env()["B2BD_KAFKA_BOOTSTRAP"],
                   "group.id": harness.unique_name("md-")})
    try:
        t = md.list_topics(topic, timeout=10)
        leader = t.topics[topic].partitions[partition].leader
        host, port = t.brokers[leader].host, t.brokers[leader].port
    finally:
        md.close()
    batch = _control_batch(producer_id, epoch)
    tname = topic.encode()
    body = (struct.pack(">hhi", -1, -1, 10000)                 # no txn id, acks all, timeout
            + struct.pack(">i", 1) + struct.pack(">h", len(tname)) + tname
            + struct.pack(">i", 1) + struct.pack(">i", partition)
            + struct.pack(">i", len(batch)) + batch)
    client = b"b2bd-test"
    header = struct.pack(">hhih", 0, 3, 1, len(client)) + client
    req = header + body
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(req)) + req)
        size = struct.unpack(">i", _recv(s, 4))[0]
        resp = _recv(s, size)
    # correlation id, [topic: name, [partition, error, base offset, ...]]
    pos = 4 + 4
    (nlen,) = struct.unpack_from(">h", resp, pos)
    pos += 2 + nlen + 4
    _, err, base = struct.unpack_from(">ihq", resp, pos)
    if err:
        raise AssertionError("the marker was refused: error %d" % err)
    return base


def _recv(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise AssertionError("connection closed by the broker")
        buf += chunk
    return buf


class LostCommandsTest(B2bTestCase):
    START_DAEMON = False
    SHARED = False  # each test its own topics: the gaps are per partition

    def lost_letters(self):
        self.settle()
        return [m for m in self.bus.read_to_end("dlq")
                if m[2].get("error.code") == "COMMANDS_LOST"]

    def stored_position(self, topic, partition, group):
        rows = self.query("SELECT next_offset FROM consumer_offsets WHERE group_id = %s"
                          " AND topic = %s AND partition = %s", (group, topic, partition))
        return rows[0][0] if rows else None

    def produce_padded(self, start, count, partition, company="c-1"):
        last = None
        for i in range(start, start + count):
            last = padded_assign(self.shop, i, company)
            self.bus.send(last, partition=partition)
        self.bus.flush(120)
        return last

    def test_commands_deleted_while_b2bd_was_stopped(self):
        """The issue's case: b2bd stopped, 40,000 assigns produced to one partition, the
        broker deletes the oldest; b2bd started again reports the gap to the offset and
        applies the rest."""
        topic = self.prefix + ASSIGN
        d = self.start_daemon()
        group = d.env["B2BD_GROUP_ID"]
        for c in range(1, 6):
            self.make_company("c-%d" % c, ["l-c-%d" % c])
        # a position on partition 0: three commands applied there
        for i in range(3):
            cmd = padded_assign(self.shop, 90000 + i)
            self.bus.send(cmd, partition=0)
        self.bus.flush()
        self.assertEqual(self.bus.wait_result(cmd["command_id"])["status"], "applied")
        wait_until(lambda: self.stored_position(topic, 0, group) == 3, what="position 3 stored")
        self.assertEqual(d.stop(), 0)

        # 40,000 assigns (about 770 bytes each) over five companies (10,000 seats each)
        for i in range(40000):
            self.bus.send(padded_assign(self.shop, i, "c-%d" % (1 + i % 5)), partition=0)
        self.bus.flush(180)
        low, high = watermarks(topic, 0)
        self.assertEqual(high, 40003)
        self.assertGreater(low, 10000, "the mock broker deleted nothing: no gap to test")

        d2 = self.start_daemon()
        start = time.monotonic()
        wait_until(lambda: self.stored_position(topic, 0, group) == high, timeout=300,
                   step=1, what="b2bd at the partition's end")
        took = time.monotonic() - start
        lost = self.lost_letters()
        self.assertEqual(len(lost), 1, [m[2] for m in lost])
        key, value, headers, _, _ = lost[0]
        self.assertIsNone(key)
        self.assertEqual(value, b"")
        self.assertEqual(headers["source.topic"], topic)
        self.assertEqual(headers["source.partition"], "0")
        self.assertEqual(headers["lost.from_offset"], "3")
        self.assertEqual(headers["lost.to_offset"], str(low - 1))
        self.assertNotIn("source.offset", headers)
        self.assertIn(str(low - 3), headers["error.message"])
        # the error line with the same facts, the metrics
        log = d2.log()
        self.assertIn("level=error mod=apply event=commands_lost topic=%s partition=0 "
                      "from_offset=3 to_offset=%d count=%d" % (topic, low - 1, low - 3), log)
        m = d2.metrics()
        self.assertEqual(m.get("b2bd_commands_lost_total"), low - 3)
        self.assertEqual(m.get("b2bd_dead_letters_total", code="COMMANDS_LOST"), 1)
        # b2bctl dlq replay leaves it alone: it holds no command
        e = dict(os.environ, B2BD_KAFKA_BOOTSTRAP=harness.env()["B2BD_KAFKA_BOOTSTRAP"],
                 B2BD_TOPIC_PREFIX=self.prefix, B2BD_PG_DSN=self.dsn)
        p = subprocess.run([os.path.join(harness.BUILD_DIR, "b2bctl"), "dlq", "replay", "--all",
                            "--timeout", "2", "--json"], env=e, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)  # 1: something skipped
        r = json.loads(p.stdout)
        self.assertEqual((r["replayed"], r["skipped"]), (0, 1), r)
        self.assertIn("COMMANDS_LOST", r["dead_letters"][0]["skipped"])
        # everything the broker still held was applied: one customer per command
        n = self.query("SELECT count(*) FROM contacts WHERE shop_id = %s", (self.shop,))[0][0]
        self.assertEqual(n, 3 + (high - low))
        print("applied %d commands after the gap in %.1fs" % (high - low, took))

    def test_two_instances_report_each_gap_once(self):
        """A group of two: each partition's gap is reported once, by whichever
        instance holds the partition, with its own range."""
        topic = self.prefix + ASSIGN
        d1, d2 = self.start_two_daemons()
        group = d1.env["B2BD_GROUP_ID"]
        self.make_company("c-1", ["l-c-1"])
        self.make_company("c-2", ["l-c-2"])
        # positions on partitions 0 (first daemon's) and 2 (second's)
        for p in (0, 2):
            cmd = padded_assign(self.shop, 80000 + p)
            self.bus.send(cmd, partition=p)
            self.bus.flush()
            self.bus.wait_result(cmd["command_id"])
            wait_until(lambda: self.stored_position(topic, p, group) == 1, what="position stored")
        self.assertEqual(d1.stop(), 0)
        self.assertEqual(d2.stop(), 0)
        # 9,000 per partition: about 6.9 MB, over the mock's 5 MB
        self.produce_padded(0, 9000, 0, "c-1")
        self.produce_padded(10000, 9000, 2, "c-2")
        lows = {p: watermarks(topic, p)[0] for p in (0, 2)}
        for p in (0, 2):
            self.assertGreater(lows[p], 1, "nothing deleted on partition %d" % p)
        e1, e2 = self.start_two_daemons()
        for p in (0, 2):
            wait_until(lambda: self.stored_position(topic, p, group) == 9001, timeout=300,
                       step=1, what="partition %d applied to its end" % p)
        lost = self.lost_letters()
        got = sorted((m[2]["source.partition"], m[2]["lost.from_offset"], m[2]["lost.to_offset"])
                     for m in lost)
        self.assertEqual(got, [("0", "1", str(lows[0] - 1)), ("2", "1", str(lows[2] - 1))])
        total = sum(e.metrics().get("b2bd_commands_lost_total") for e in (e1, e2))
        self.assertEqual(total, lows[0] - 1 + lows[2] - 1)
        lines = sum(e.log().count("event=commands_lost") for e in (e1, e2))
        self.assertEqual(lines, 2)

    def test_transaction_markers_are_no_gap(self):
        """A transactional producer's commands: the offsets of its markers are held by
        the broker and never delivered; b2bd goes over them without a dead letter."""
        topic = self.prefix + ASSIGN
        d = self.start_daemon()
        group = d.env["B2BD_GROUP_ID"]
        self.make_company("c-1", ["l-c-1"])
        p = Producer({"bootstrap.servers": harness.env()["B2BD_KAFKA_BOOTSTRAP"],
                      "transactional.id": "tx-" + self.prefix})
        p.init_transactions(30)
        ids = []
        for k in range(4):
            p.begin_transaction()
            for j in range(2):
                cmd = padded_assign(self.shop, 70000 + 10 * k + j)
                ids.append(cmd["command_id"])
                p.produce(topic, json.dumps(cmd).encode(), key=self.shop.encode(), partition=0)
            p.commit_transaction(30)
            append_commit_marker(topic, 0)
            if k == 1:
                # the first two transactions applied before the next come (markers
                # between batches), the last two in one go (markers within a batch)
                self.bus.wait_result(ids[-1])
        results = self.bus.wait_results(ids)
        self.assertEqual([r["status"] for r in results], ["applied"] * 8)
        low, high = watermarks(topic, 0)
        self.assertEqual((low, high), (0, 12), "8 commands and 4 markers")
        wait_until(lambda: self.stored_position(topic, 0, group) == 11, what="position 11")
        self.assertEqual(self.lost_letters(), [])
        self.assertNotIn("event=commands_lost", d.log())
        self.assertEqual(d.metrics().get("b2bd_commands_lost_total"), 0)
