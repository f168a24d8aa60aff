"""A PostgreSQL cluster of one test's own, for the tests that stop or kill the database
(the localenv server serves tests that run in parallel, and stopping it would break them).

initdb as the postgres user into a /tmp directory, like scripts/localenv.sh; its own
port; a database owned by role b2bd (self.dsn). A file in LOCALENV_DIR/private-pg names
the cluster, so that `scripts/localenv.sh stop` removes it if the test is killed first."""

import os
import shutil
import signal
import subprocess
import tempfile

import harness
from b2btest import wait_until


class PrivatePostgres:
    """durable: fsync and synchronous commit on, as in production (a commit b2bd was told
    about survives a kill); else off, as in the localenv server."""

    def __init__(self, durable=False, dbname="b2bd"):
        self.bin = harness.env()["PG_BIN"]
        self.root = tempfile.mkdtemp(prefix="b2bd-pgcrash.", dir="/tmp")
        self.marker = os.path.join(harness.LOCALENV_DIR, "private-pg", os.path.basename(self.root))
        self.data = os.path.join(self.root, "data")
        self.log_path = os.path.join(self.root, "postgres.log")
        try:
            self._setup(durable, dbname)
        except BaseException:
            self.destroy()
            raise

    def _setup(self, durable, dbname):
        os.makedirs(os.path.dirname(self.marker), exist_ok=True)
        with open(self.marker, "w") as f:
            f.write(self.root + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        os.chmod(self.root, 0o700)
        self._run("initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-locale", "-N")
        sync = "on" if durable else "off"
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("listen_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n"
                    "fsync = %s\nsynchronous_commit = %s\nfull_page_writes = %s\n"
                    "max_connections = 50\nshared_buffers = 32MB\nlog_min_messages = warning\n"
                    "log_line_prefix = '%%m [%%p] %%u@%%d '\n" % (self.root, sync, sync, sync))
        # a port picked free may be taken before the server binds it: pick again
        for attempt in range(5):
            self.port = harness.free_port()
            try:
                self.start()
                break
            except AssertionError:
                if attempt == 4 or "could not bind" not in self.log()[-4000:]:
                    raise
        admin = "host=127.0.0.1 port=%d user=postgres dbname=postgres" % self.port
        harness.db_query(admin, "CREATE ROLE b2bd LOGIN")
        harness.db_query(admin, "CREATE DATABASE %s OWNER b2bd" % dbname)
        self.dsn = "host=127.0.0.1 port=%d user=b2bd dbname=%s" % (self.port, dbname)

    def _run(self, tool, *args, check=True):
        cmd = [os.path.join(self.bin, tool)] + list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        r = subprocess.run(cmd, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError("%s failed (%s): %s" % (tool, r.returncode,
                                                         r.stdout.decode(errors="replace")[-3000:]))
        return r.returncode

    def start(self):
        self._run("pg_ctl", "-D", self.data, "-l", self.log_path, "-w", "-t", "60",
                  "-o", "-p %d" % self.port, "start")

    def stop(self, mode="fast"):
        """Stops the server; its data stays for start()."""
        return self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop",
                         check=mode != "immediate")

    def log(self):
        return harness.read_log(self.log_path)

    @staticmethod
    def _state(pid):
        """The process's state letter, None once it is gone (and reaped)."""
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return None

    @staticmethod
    def _children(pid):
        kids = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open("/proc/%s/stat" % name) as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                            kids.append(int(name))
                except (OSError, ValueError, IndexError):
                    pass
        return kids

    def kill(self):
        """SIGKILL to the postmaster and all its processes (it is stopped for the moment
        its children are listed, so that it forks none unseen); waits until all are gone.
        Returns how many processes were killed. start() then runs crash recovery."""
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            pm = int(f.readline())
        os.kill(pm, signal.SIGSTOP)
        pids = [pm] + self._children(pm)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_until(lambda: all(self._state(p) in (None, "Z") for p in pids), timeout=30, step=0.05,
                   what="the PostgreSQL processes to die")
        # A zombie postmaster (orphans are reaped by PID 1, which may be slow to) would make
        # the next one take postmaster.pid for a running server's: wait for the reaping.
        try:
            wait_until(lambda: self._state(pm) is None, timeout=10, step=0.05, what="the postmaster reaped")
        except AssertionError:
            os.unlink(os.path.join(self.data, "postmaster.pid"))  # dead for sure: SIGKILLed, a zombie
        return len(pids)

    def destroy(self):
        """Stops the server at once (killing it if it will not stop) and removes it all."""
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            if self.stop("immediate") != 0:
                try:
                    self.kill()
                except (OSError, ValueError, AssertionError):
                    pass
        shutil.rmtree(self.root, ignore_errors=True)
        try:
            os.unlink(self.marker)
        except FileNotFoundError:
            pass
