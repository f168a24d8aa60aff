"""SIGHUP: b2bd reads its configuration file again and takes log_level, batch_max,
batch_linger_ms and the notifier's rate and retry settings without a restart, telling
systemd RELOADING=1 then READY=1; other changed keys are logged as needing a restart;
a file that fails to load keeps the old settings and says why. Each setting taken is
proved by its effect: the batches a burst is taken in, the time the emails take, the
times of the retries, when a notification is given up."""
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time

import harness
from b2btest import B2bTestCase, wait_until
from harness import scrape


class ReloadTest(B2bTestCase):
    START_DAEMON = False
    PRIVATE_SMTP = True  # the retries' and the pace's emails, timed by a server of its own

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

    def batches(self, port, at_least=None):
        """(batches, messages) of b2bd_batch_size_messages; at_least: first waits until
        the messages reach it (a batch is counted once done, which can be a moment
        after its results are out)."""
        def read():
            m = scrape(port)
            return m.get("b2bd_batch_size_messages_count"), m.get("b2bd_batch_size_messages_sum")
        if at_least is None:
            return read()
        return wait_until(lambda: (lambda r: r if r[1] >= at_least else None)(read()), timeout=10,
                          what="%d messages counted in b2bd_batch_size_messages" % at_least)

    def burst(self, port, n=20):
        """n company.upsert commands of one company (one partition), produced at once
        and so fetched together; waits for their results and returns (batches,
        messages) the daemon took them in."""
        count0, sum0 = self.batches(port)
        company = "c-burst-%d" % time.monotonic_ns()
        cmds = [harness.command("company.upsert", self.shop, {"company_id": company, "name": "C%d" % i,
                                                              "locations": []}) for i in range(n)]
        for c in cmds:
            self.bus.send(c)
        self.bus.flush()
        results = self.bus.wait_results([c["command_id"] for c in cmds], timeout=60)
        self.assertTrue(all(r["status"] == "applied" for r in results), results)
        count1, sum1 = self.batches(port, at_least=sum0 + n)
        return count1 - count0, sum1 - sum0

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

    def contacts(self, emails):
        """Makes each of emails ({customer_id: email}) a contact of company c-1 with a
        role at loc-1; returns emails."""
        for cmds in ([harness.command("customer.upsert", self.shop, {"customer_id": k, "email": e})
                      for k, e in emails.items()],  # before the assigns: another topic
                     [harness.command("assign", self.shop, self.assign(k, [("loc-1", "ordering_only")]))
                      for k in emails]):
            results = self.run_cmds(cmds, timeout=120)
            self.assertTrue(all(r["status"] == "applied" for r in results), results)
        return emails

    def check_rate(self, emails, rate):
        """Notifies every contact of emails at once: the server accepts the emails at
        most rate a second (notifier_rate_per_s), so the last comes (n - 1) / rate
        seconds after the first; without a rate all would come within a fraction of it."""
        r = self.applied("notify", {"company_id": "c-1", "customer_ids": sorted(emails)})
        self.assertEqual(len(r["queued"]), len(emails), r)
        times = []
        for e in emails.values():
            times += [m["received_at"] for m in self.smtp.wait_messages(1, to=e, timeout=60)]
        span = max(times) - min(times)
        want = (len(emails) - 1) / rate
        sys.stderr.write("\n%d emails at notifier_rate_per_s = %d: %.3f s from the first to the last"
                         " (paced: %.3f s)\n" % (len(emails), rate, span, want))
        # the first send may be slower than the last (a new connection): 0.5 s of slack
        self.assertGreaterEqual(span, want - 0.5, "emails not paced at %d a second: %s" % (rate, sorted(times)))

    def check_retries(self, email, initial_ms, max_ms, refusals=6):
        """The server refuses the DATA of the next `refusals` messages (4xx: a transient
        failure); the times of the attempts (as the server saw them) show the retry
        delays: after the first failure between half and all of initial_ms, doubling,
        never past max_ms (jittered between half and all of it)."""
        self.smtp.control("reset-stats")
        self.smtp.control("fail-next %d 451 try again later" % refusals)
        self.applied("notify", {"company_id": "c-1", "customer_ids": [email[0]]})
        times, seen = [], 0
        deadline = time.monotonic() + 60
        while len(times) < refusals and time.monotonic() < deadline:
            refused = int(re.search(r"refused=(\d+)", self.smtp.control("stats")).group(1))
            times += [time.time()] * (refused - seen)
            seen = refused
            time.sleep(0.01)
        self.assertEqual(len(times), refusals, "the attempts refused within 60 s")

        def check(times):
            gaps = [round((b - a) * 1000) for a, b in zip(times, times[1:])]
            # 0.5 s of slack for the notifier's wake-up, its database round trips and the pace
            for i, g in enumerate(gaps):
                d = min(initial_ms * 2 ** i, max_ms)
                self.assertTrue(d / 2 - 50 <= g <= d + 500, "attempt %d came %d ms after the one before,"
                                " not within [%d, %d] ms: %s" % (i + 2, g, d / 2, d, gaps))
            return gaps
        check(times)  # the refused attempts first: a wrong delay fails here, not as a give-up
        times.append(self.smtp.wait_messages(1, to=email[1], timeout=60)[0]["received_at"])
        sys.stderr.write("\nretry delays at notifier_retry_initial_ms = %d, notifier_retry_max_ms = %d: %s ms\n"
                         % (initial_ms, max_ms, check(times)))

    def test_sighup_reloads(self):
        self.write_conf("batch_max = 1\nlog_level = info\n")
        d = self.daemon(extra_env={"NOTIFY_SOCKET": self.sock_path}, args=["--config", self.conf],
                        smtp_url=self.smtp.url)
        d.start()
        port = d.http_port()  # the harness lets it bind port 0
        self.assertTrue(self.notes_until(lambda: any("READY=1" in n for n in self.notes)))
        self.smtp.control("clear")
        self.applied("shop.upsert", {"name": "Reload Shop", "from_email": "hello@reload.example"})
        self.make_company("c-1", ["loc-1"])
        emails = {"k-%02d" % i: "k%02d.%s@example.com" % (i, self.shop) for i in range(15)}
        retry = ("k-retry", "retry.%s@example.com" % self.shop)
        give_up = ("k-give-up", "give-up.%s@example.com" % self.shop)
        self.contacts(dict(emails, **dict([retry, give_up])))

        # batch_max = 1: a burst fetched at once is taken one command per batch
        self.assertEqual(self.burst(port), (20, 20))
        self.assertNotIn("level=debug mod=apply", d.log())

        # reloaded: batches of up to 5 gathered for 1.5 s, debug lines, notifier settings
        self.write_conf("batch_max = 5\nbatch_linger_ms = 1500\nlog_level = debug\n"
                        "notifier_rate_per_s = 7\nnotifier_retry_initial_ms = 200\n"
                        "notifier_retry_max_ms = 1600\nnotifier_give_up_s = 9\n"
                        "apply_workers = 3\n")
        mark = len(d.log())
        self.reload(d)
        self.assertTrue(d.wait_log("event=reload_done taken=7 restart_needed=1", 10, mark), d.log()[mark:])
        log = d.log()[mark:]
        for line in ("key=batch_max old=1 new=5", "key=batch_linger_ms old=0 new=1500",
                     "key=log_level old=info new=debug", "key=notifier_rate_per_s old=0 new=7",
                     "key=notifier_retry_initial_ms old=60000 new=200",
                     "key=notifier_retry_max_ms old=3600000 new=1600",
                     "key=notifier_give_up_s old=432000 new=9"):
            self.assertIn("event=reloaded " + line, log)
        self.assertIn("event=restart_needed key=apply_workers ", log)
        # each taken setting by its effect: batch_max (the burst in batches of 5) ...
        self.assertEqual(self.burst(port), (4, 20))
        # ... batch_linger_ms (commands 0.1 s apart gathered) ...
        count1, sum1 = self.batches(port)
        self.send_spaced(4, 0.1)
        count2, sum2 = self.batches(port, at_least=sum1 + 4)
        self.assertEqual(sum2 - sum1, 4)
        self.assertLess(count2 - count1, 4, "commands 0.1 s apart not gathered in one batch")
        # ... log_level ...
        self.assertIn("level=debug mod=apply", d.log()[mark:])
        # ... notifier_rate_per_s (15 emails take 2 s) ...
        self.check_rate(emails, 7)
        # ... the retry delays (200 ms, doubling, at most 1.6 s: with the old initial
        # delay, 60 s capped at 1.6 s, the first would be 0.8-1.6 s; without the cap
        # the sixth would be 3.2-6.4 s) ...
        self.check_retries(retry, 200, 1600)
        # ... and notifier_give_up_s: an address refused for good (4xx) fails once the
        # notification is about 9 s old (not after 5 days)
        self.smtp.control("fail-rcpt %s 451 mailbox busy" % give_up[1])
        t0 = time.monotonic()
        nid = self.applied("notify", {"company_id": "c-1", "customer_ids": [give_up[0]]})["queued"][0]["notification_id"]
        ev = self.bus.wait_for("events.notifications", lambda m: m[1].get("notification_id") == nid
                               and m[1].get("status") == "failed", timeout=30)[1]
        took = time.monotonic() - t0
        self.assertIn("451", ev["error"])
        self.assertGreater(ev["attempts"], 3)
        sys.stderr.write("\ngiven up after %.1f s at notifier_give_up_s = 9\n" % took)
        self.assertTrue(7.0 <= took <= 15.0, "given up after %.1f s, notifier_give_up_s = 9" % took)
        self.smtp.control("clear")

        # a file that does not load: the old settings stay, and the log says why
        self.write_conf("batch_max = lots\nlog_level = info\n")
        mark = len(d.log())
        self.reload(d)
        self.assertTrue(d.wait_log("event=reload_failed field=batch_max", 10, mark), d.log()[mark:])
        self.assertIn("not a whole number", d.log()[mark:])
        self.assertNotIn("event=reloaded", d.log()[mark:])
        self.assertEqual(self.burst(port), (4, 20))  # batch_max 5 kept
        count2, sum2 = self.batches(port)
        self.send_spaced(3, 0.1)
        count3, sum3 = self.batches(port, at_least=sum2 + 3)
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
