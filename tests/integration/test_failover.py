"""Database failover (README, "Scaling out" > "High availability of the database"): a
PostgreSQL primary with a synchronous standby (streaming replication,
synchronous_standby_names), b2bd given both hosts in pg_dsn with
target_session_attrs=read-write. Mid-stream the primary is killed with SIGKILL (the
postmaster and every backend) and the standby promoted; b2bd goes on against it and,
as in test_crash.py, afterwards the database equals the reference model, every command
has one result, access versions have no gap and every email was sent (twice only around
the failover).

Clusters of the test's own (private_pg.PrivatePostgres for the primary, a pg_basebackup
of it for the standby), durable as in production."""
import os
import random
import shutil
import sys
import tempfile
import time

import harness
from b2btest import wait_until
from private_pg import PrivatePostgres
from test_crash import CrashBase, Model, flatten

STANDBY_NAME = "b2bd_standby"


class Standby:
    """A streaming replica of primary (pg_basebackup -R), on a port of its own."""

    def __init__(self, primary):
        self.bin = primary.bin
        self.root = tempfile.mkdtemp(prefix="b2bd-pg.", dir="/tmp")
        self.marker = os.path.join(harness.LOCALENV_DIR, "private-pg", os.path.basename(self.root))
        self.data = os.path.join(self.root, "data")
        self.log_path = os.path.join(self.root, "postgres.log")
        with open(self.marker, "w") as f:
            f.write(self.root + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        os.chmod(self.root, 0o700)
        primary._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                     "-D", self.data, "-X", "stream", "-R", "-c", "fast")
        with open(os.path.join(self.data, "postgresql.auto.conf"), "a") as f:
            # the walreceiver's application_name is cluster_name: the name the primary's
            # synchronous_standby_names waits for
            f.write("cluster_name = '%s'\nunix_socket_directories = '%s'\nhot_standby = on\n"
                    % (STANDBY_NAME, self.root))
        self.port = harness.free_port()
        primary._run("pg_ctl", "-D", self.data, "-l", self.log_path, "-w", "-t", "60",
                     "-o", "-p %d" % self.port, "start")
        self._primary = primary

    def promote(self):
        self._primary._run("pg_ctl", "-D", self.data, "-w", "-t", "60", "promote")

    def log(self):
        return harness.read_log(self.log_path)

    def destroy(self):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._primary._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "-t", "30", "stop",
                               check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        try:
            os.unlink(self.marker)
        except OSError:
            pass


class FailoverTest(CrashBase):

    @classmethod
    def _make_world(cls, target):
        target.prefix = harness.unique_name("t") + "."
        harness.create_topics(target.prefix)
        target.pg = PrivatePostgres(durable=True, dbname="b2bd_ha")
        target.standby = None
        try:
            target.standby = Standby(target.pg)
            admin = "host=127.0.0.1 port=%d user=postgres dbname=postgres" % target.pg.port
            harness.db_query(admin, "ALTER SYSTEM SET synchronous_standby_names = '%s'" % STANDBY_NAME)
            harness.db_query(admin, "SELECT pg_reload_conf()")
            wait_until(lambda: harness.db_query(
                admin, "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s",
                (STANDBY_NAME,)) == [("sync",)], timeout=60, what="the standby streaming, synchronous")
        except BaseException:
            if target.standby:
                target.standby.destroy()
            target.pg.destroy()
            raise
        # libpq's multi-host form: the first host that takes writes
        target.dsn = ("host=127.0.0.1,127.0.0.1 port=%d,%d user=b2bd dbname=b2bd_ha "
                      "target_session_attrs=read-write connect_timeout=2"
                      % (target.pg.port, target.standby.port))
        target.db_name = None  # the databases go with the clusters

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            if cls.standby:
                cls.standby.destroy()
            cls.pg.destroy()

    def tearDown(self):
        if self._failed():
            for name, pg in (("primary", self.pg), ("standby", self.standby)):
                sys.stderr.write("\n----- %s postgres.log (tail) -----\n%s\n" % (name, pg.log()[-20000:]))
        super().tearDown()

    def test_primary_killed_standby_promoted_mid_stream(self):
        d = self.daemon_()
        rnd = random.Random(21)
        customers = ["k-%02d" % i for i in range(30)]
        model = Model(customers)
        sync = self.world(customers, model)
        self.apply_sync(sync)
        rounds = self.rounds(rnd, model, customers, 320, hostile=0.5)
        items = flatten(rounds)
        t = self.start_stream(rounds)
        wait_until(lambda: self.sent >= 0.4 * len(items) or not t.is_alive(), timeout=300,
                   what="40% of the stream")
        time.sleep(rnd.random() * 0.2)
        d_log_at = len(d.log())
        # the primary dies with b2bd's batches in flight; the synchronous standby has every
        # commit b2bd was told about
        self.crash_times.append(time.time())
        self.assertGreater(self.pg.kill(), 3)
        sent_at_failover = self.sent
        try:
            time.sleep(0.5)
            self.standby.promote()
            standby = "host=127.0.0.1 port=%d user=b2bd dbname=b2bd_ha" % self.standby.port
            wait_until(lambda: harness.db_query(standby, "SELECT pg_is_in_recovery()") == [(False,)],
                       timeout=60, what="the standby promoted")
        finally:
            self.wait_stream(t)  # the stream's thread never outlives the test
        self.assertLess(sent_at_failover, len(items), "the failover came after the stream's end")
        self.assertTrue(d.alive(), "b2bd went on against the promoted standby")
        log = d.log()[d_log_at:]
        self.assertIn("event=batch_failed", log, "b2bd did not see the primary go")
        # the daemon's connections are now on the standby's port
        port = harness.db_query(self.dsn, "SELECT inet_server_port()")[0][0]
        self.assertEqual(port, self.standby.port)
        self.assertEqual(harness.db_query(self.dsn, "SELECT pg_is_in_recovery()"), [(False,)])
        self.check(sync, items, model)
        self.assertTrue(d.alive())
        sys.stderr.write("failover with %d of %d stream items' rounds done\n" % (sent_at_failover, len(items)))


if __name__ == "__main__":
    import unittest
    unittest.main()
