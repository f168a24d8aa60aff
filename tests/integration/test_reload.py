"""SIGHUP: b2bd reads its configuration file again and takes log_level, batch_max,
batch_linger_ms and the notifier's rate and retry settings without a restart, telling
systemd RELOADING=1 then READY=1; other changed keys are logged as needing a restart;
a file that fails to load keeps the old settings and says why."""
import os
import shutil
import signal
import socket
import tempfile
import time

import harness
from b2btest import B2bTestCase
from harness import scrape


class ReloadTest(B2bTestCase):
    START_DAEMON = False

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="b2bd-reload.", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.conf = os.path.join(self.tmp, "b2bd.conf")
        self.sock_path = os.path.join(self.tmp, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(self.sock.close)
        self.sock.bind(self.sock_path)
        self.sock.settimeout(0.2)
        self.notes = []

    def write_conf(self, text):
        # the harness's environment sets Kafka, PostgreSQL, prefix, group and SMTP
        # (and wins over the file): the file holds the keys under test
        with open(self.conf + ".new", "w") as f:
            f.write(text)
        os.replace(self.conf + ".new", self.conf)

    def notes_until(self, pred, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.notes.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
            if pred():
                return True
        return False

    def reload(self, d):
        """SIGHUP; waits for RELOADING=1 and then READY=1 from the daemon."""
        start = len(self.notes)
        d.signal(signal.SIGHUP)
        self.assertTrue(self.notes_until(
            lambda: any("READY=1" in n for n in self.notes[start:])), self.notes[start:])
        mine = [n for n in self.notes[start:] if "WATCHDOG" not in n]
        reloading = next(i for i, n in enumerate(mine) if "RELOADING=1" in n)
        self.assertIn("MONOTONIC_USEC=", mine[reloading])
        ready = next(i for i, n in enumerate(mine) if "READY=1" in n)
        self.assertLess(reloading, ready, mine)

    def batches(self, port):
        m = scrape(port)
        return m.get("b2bd_batch_size_messages_count"), m.get("b2bd_batch_size_messages_sum")

    def send_spaced(self, n, gap):
        """n company.upsert commands, one every gap seconds; waits for their results."""
        cmds = []
        for i in range(n):
            cmd = harness.command("company.upsert", self.shop,
                                  {"company_id": "c-%d-%s" % (i, time.monotonic_ns()),
                                   "name": "C", "locations": []})
            cmds.append(cmd)
            self.bus.send(cmd)
            self.bus.flush()
            time.sleep(gap)
        results = self.bus.wait_results([c["command_id"] for c in cmds], timeout=60)
        self.assertTrue(all(r["status"] == "applied" for r in results), results)

    def test_sighup_reloads(self):
        self.write_conf("batch_max = 1\nlog_level = info\n")
        d = self.daemon(extra_env={"NOTIFY_SOCKET": self.sock_path}, args=["--config", self.conf])
        d.start()
        port = d.http_port()  # the harness lets it bind port 0
        self.assertTrue(self.notes_until(lambda: any("READY=1" in n for n in self.notes)))

        # batch_max = 1: one command per batch, however close they come
        count0, _ = self.batches(port)
        self.send_spaced(4, 0.05)
        count1, _ = self.batches(port)
        self.assertEqual(count1 - count0, 4)
        self.assertNotIn("level=debug mod=apply", d.log())

        # reloaded: batches of up to 500 gathered for 1.5 s, debug lines, notifier settings
        self.write_conf("batch_max = 500\nbatch_linger_ms = 1500\nlog_level = debug\n"
                        "notifier_rate_per_s = 7\nnotifier_retry_initial_ms = 1234\n"
                        "notifier_retry_max_ms = 5678\nnotifier_give_up_s = 99\n"
                        "apply_workers = 3\n")
        mark = len(d.log())
        self.reload(d)
        self.assertTrue(d.wait_log("event=reload_done taken=7 restart_needed=1", 10, mark), d.log()[mark:])
        log = d.log()[mark:]
        for line in ("key=batch_max old=1 new=500", "key=batch_linger_ms old=0 new=1500",
                     "key=log_level old=info new=debug", "key=notifier_rate_per_s old=0 new=7",
                     "key=notifier_retry_initial_ms old=60000 new=1234",
                     "key=notifier_retry_max_ms old=3600000 new=5678",
                     "key=notifier_give_up_s old=432000 new=99"):
            self.assertIn("event=reloaded " + line, log)
        self.assertIn("event=restart_needed key=apply_workers ", log)
        count1, sum1 = self.batches(port)
        self.send_spaced(4, 0.1)
        count2, sum2 = self.batches(port)
        self.assertEqual(sum2 - sum1, 4)
        self.assertLess(count2 - count1, 4, "commands 0.1 s apart not gathered in one batch")
        self.assertIn("level=debug mod=apply", d.log()[mark:])

        # a file that does not load: the old settings stay, and the log says why
        self.write_conf("batch_max = lots\nlog_level = info\n")
        mark = len(d.log())
        self.reload(d)
        self.assertTrue(d.wait_log("event=reload_failed field=batch_max", 10, mark), d.log()[mark:])
        self.assertIn("not a whole number", d.log()[mark:])
        self.assertNotIn("event=reloaded", d.log()[mark:])
        count2, sum2 = self.batches(port)
        self.send_spaced(3, 0.1)
        count3, sum3 = self.batches(port)
        self.assertEqual(sum3 - sum2, 3)
        self.assertLess(count3 - count2, 3)  # still lingering: batch_linger_ms kept
        self.assertTrue(d.alive())
        self.assertEqual(d.stop(), 0)

    def test_notifier_role_reloads(self):
        """The notifier-only loop answers SIGHUP too."""
        self.write_conf("notifier_rate_per_s = 0\n")
        d = self.daemon(extra_env={"NOTIFY_SOCKET": self.sock_path},
                        args=["--config", self.conf, "--role", "notifier"])
        d.start()
        self.assertTrue(self.notes_until(lambda: any("READY=1" in n for n in self.notes)))
        self.write_conf("notifier_rate_per_s = 20\nrole = worker\n")
        mark = len(d.log())
        self.reload(d)
        self.assertTrue(d.wait_log("event=reloaded key=notifier_rate_per_s old=0 new=20", 10, mark),
                        d.log()[mark:])
        # --role notifier still wins over the file's role: not a change
        self.assertNotIn("event=restart_needed", d.log()[mark:])
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    import unittest
    unittest.main()
