"""Helpers for the integration tests (Debian's python3, confluent_kafka, psycopg2).

The environment comes from scripts/localenv.sh (a ctest fixture): ctest sets
B2BD_BUILD_DIR, B2BD_LOCALENV_DIR (holding env.json) and B2BD_SOURCE_DIR. Run by
hand: `scripts/localenv.sh start build/localenv build`, then
`cd tests/integration && /usr/bin/python3 -m unittest -v test_x` (the defaults
below find build/ and build/localenv/).

Isolation: every TestCase test gets its own topic prefix (topics created with 4
partitions) and its own database owned by role b2bd, so test files may run in
parallel. The Kafka mock and the shared SMTP server are common to all tests: a
test that scripts SMTP refusals should use unique recipient addresses with
`fail-rcpt`, or start its own server with TestCase.start_smtp(). Fault injection
through kafka_control (broker-down, push-errors) affects every test running at
that moment: such tests should run in a file of their own and say so.

Main API:
    env() -> dict (env.json)
    command(type, shop_id, payload, command_id=None, **envelope) -> dict
    key_for(cmd) -> str;  topic_for(type) -> topic suffix
    result_keys(bus, cmds) -> (got, want): the results' Kafka keys, and the contract's
    db_query(dsn, sql, params=None) -> [tuple]
    kafka_control(line, check=True) -> reply;  smtp_control(line, check=True) -> reply
    smtp_messages(to=None) -> [SmtpMessage];  wait_smtp_messages(count, to=None, timeout=30)
    Daemon(prefix, dsn, extra_env=None, args=None, group_id=None)
    Bus(prefix)
    SmtpServer() (a private SMTP server)
    TestCase(unittest.TestCase)
"""

import email
import email.policy
import json
import os
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import re
import unittest
import urllib.error
import urllib.request
import uuid

import psycopg2
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, "..", "schema"))
SOURCE_DIR = os.environ.get("B2BD_SOURCE_DIR") or os.path.dirname(os.path.dirname(_HERE))
BUILD_DIR = os.environ.get("B2BD_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
LOCALENV_DIR = os.environ.get("B2BD_LOCALENV_DIR") or os.path.join(BUILD_DIR, "localenv")
PYTHON = "/usr/bin/python3"

PARTITIONS = 4
OUTPUT_TOPICS = ("results", "events.access", "events.notifications", "dlq")
COMMAND_TOPICS = {
    "assign": "commands.assign",
    "revoke": "commands.revoke",
    "suspend": "commands.revoke",
    "resume": "commands.revoke",
    "migrate": "commands.migrate",
    "notify": "commands.notify",
    "shop.upsert": "commands.sync",
    "company.upsert": "commands.sync",
    "customer.upsert": "commands.sync",
    "order.upsert": "commands.sync",
    "template.update": "commands.sync",
    "customer.merge": "commands.sync",
    "customer.data_request": "commands.sync",
    "customer.redact": "commands.sync",
    "shop.redact": "commands.sync",
}
# the bulk lane: takes every type (CONTRACT.md, "Bulk lane")
BULK_TOPIC = "commands.bulk"
COMMAND_TOPIC_SUFFIXES = sorted(set(COMMAND_TOPICS.values()) | {BULK_TOPIC})

_env_cache = None
_lock = threading.Lock()


def env():
    """The local environment (DIR/env.json written by scripts/localenv.sh)."""
    global _env_cache
    if _env_cache is None:
        path = os.path.join(LOCALENV_DIR, "env.json")
        try:
            with open(path) as f:
                _env_cache = json.load(f)
        except OSError as e:
            raise RuntimeError(
                "no local environment (%s): run scripts/localenv.sh start %s %s"
                % (e, LOCALENV_DIR, BUILD_DIR)) from None
    return _env_cache


def unique_name(prefix="t"):
    return "%s%s" % (prefix, secrets.token_hex(5))


# --------------------------------------------------------------------------
# Commands

def command(type, shop_id, payload, command_id=None, **envelope):
    """A command envelope with a fresh uuid4 command_id (unless given).
    Extra keyword arguments (issued_at, actor, import_id, ...) go into the
    envelope; a value of None is kept as JSON null."""
    cmd = {
        "command_id": command_id or str(uuid.uuid4()),
        "type": type,
        "shop_id": shop_id,
        "payload": payload,
    }
    cmd.update(envelope)
    return cmd


def key_for(cmd):
    """The message key the contract gives a command (tolerates missing fields)."""
    shop = cmd.get("shop_id")
    shop = shop if isinstance(shop, str) else ""
    payload = cmd.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    t = cmd.get("type")

    def part(name):
        v = payload.get(name)
        return v if isinstance(v, str) else ""

    if t in ("assign", "revoke", "suspend", "resume", "migrate", "notify", "company.upsert"):
        return "%s/%s" % (shop, part("company_id"))
    if t in ("customer.upsert", "order.upsert", "customer.merge"):
        return "%s/%s" % (shop, part("customer_id"))
    if t in ("customer.data_request", "customer.redact"):
        return "%s/%s" % (shop, part("customer_id") or part("email").lower())
    return shop


def result_keys(bus, cmds):
    """(got, want): the set of (command_id, key) of every result the bus has read for
    cmds, and that set as the contract has it: each result keyed by its command's
    key (CONTRACT.md, Topics). Equal sets: no result of cmds has another key."""
    ids = {c["command_id"].lower() for c in cmds}
    got = {(m[1]["command_id"], m[0]) for m in bus.messages("results")
           if isinstance(m[1], dict) and m[1].get("command_id") in ids}
    want = {(c["command_id"].lower(), key_for(c)) for c in cmds}
    return got, want


def topic_for(type):
    """The topic suffix (without prefix) a command type belongs on."""
    try:
        return COMMAND_TOPICS[type]
    except KeyError:
        raise ValueError("no topic for command type %r: pass topic_suffix" % (type,)) from None


# --------------------------------------------------------------------------
# PostgreSQL

def db_query(dsn, sql, params=None):
    """Runs one statement (autocommit) and returns its rows as a list of tuples
    ([] for a statement without result rows)."""
    conn = psycopg2.connect(dsn, connect_timeout=10)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []
    finally:
        conn.close()


def dsn_for(dbname, user="b2bd"):
    e = env()
    return "host=127.0.0.1 port=%s user=%s dbname=%s" % (e["PG_PORT"], user, dbname)


def create_database(name=None):
    """Creates a fresh database owned by role b2bd; returns (name, dsn)."""
    name = name or unique_name("b2bd_t")
    db_query(env()["PG_ADMIN_DSN"], 'CREATE DATABASE "%s" OWNER b2bd' % name)
    return name, dsn_for(name)


def drop_database(name):
    db_query(env()["PG_ADMIN_DSN"], 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


# --------------------------------------------------------------------------
# Control channels (line protocols, see tools/b2b-kafka-mock.c, tools/smtp_server.py)

def _control(addr, line, check, what):
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(line.strip().encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    reply = buf.decode("utf-8", "replace").strip()
    if check and not reply.startswith("ok"):
        raise RuntimeError("%s control %r: %s" % (what, line, reply or "no reply"))
    return reply


def kafka_control(line, check=True):
    """Sends one command to the Kafka mock's control port, returns the reply
    ("ok ..." or "error ..."; with check=True an error raises RuntimeError).
    Commands: create-topic NAME [PARTITIONS [RF]], create-prefix PREFIX
    [PARTITIONS], broker-down ID, broker-up ID, set-rtt ID MS, push-errors APIKEY
    CNT ERR..., broker-errors ID APIKEY RTT_MS ERR..., clear-errors APIKEY,
    topic-error TOPIC ERR, set-leader TOPIC PARTITION ID, coordinator TYPE KEY ID."""
    return _control(env()["KAFKA_CONTROL"], line, check, "kafka")


def create_topics(prefix, partitions=PARTITIONS):
    """Creates the contract's topics for prefix on the mock cluster."""
    kafka_control("create-prefix %s %d" % (prefix, partitions))


def smtp_control(line, check=True, addr=None):
    """Sends one command to the shared SMTP server's control port (or to addr).
    Commands: fail-next N CODE [TEXT], fail-rcpt ADDR CODE [TEXT],
    drop-next N [connect|data], delay MS, clear, stats, reset-stats, count."""
    return _control(addr or env()["SMTP_CONTROL"], line, check, "smtp")


class SmtpMessage(dict):
    """One stored mail: keys name, mail_from, rcpt_tos, raw (bytes), message
    (email.message.EmailMessage, policy default)."""

    @property
    def message(self):
        return self["message"]


def smtp_messages(to=None, directory=None):
    """The mails the SMTP server accepted, oldest first; to= keeps those with that
    recipient (case-insensitive)."""
    directory = directory or env()["SMTP_DIR"]
    new = os.path.join(directory, "new")
    out = []
    try:
        names = sorted(os.listdir(new))
    except FileNotFoundError:
        return out
    for name in names:
        try:
            with open(os.path.join(directory, "meta", name + ".json")) as f:
                meta = json.load(f)
            with open(os.path.join(new, name), "rb") as f:
                raw = f.read()
        except (OSError, ValueError):
            continue
        if to is not None and to.lower() not in [r.lower() for r in meta.get("rcpt_tos", [])]:
            continue
        msg = SmtpMessage(meta)
        msg["raw"] = raw
        msg["message"] = email.message_from_bytes(raw, policy=email.policy.default)
        out.append(msg)
    return out


def wait_smtp_messages(count, to=None, timeout=30, directory=None):
    """Waits until at least count mails (for recipient to) are stored; returns them."""
    deadline = time.monotonic() + timeout
    while True:
        msgs = smtp_messages(to=to, directory=directory)
        if len(msgs) >= count:
            return msgs
        if time.monotonic() > deadline:
            raise AssertionError("expected %d mail(s)%s within %ss, got %d"
                                 % (count, " to " + to if to else "", timeout, len(msgs)))
        time.sleep(0.1)


def _read_lines_until(proc, prefixes, timeout):
    """Reads proc.stdout lines until one starting with each prefix was seen."""
    found = {}
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        while len(found) < len(prefixes):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(timeout=left):
                raise RuntimeError("timed out waiting for %s" % ", ".join(prefixes))
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError("process exited (%s) before printing %s"
                                   % (proc.poll(), ", ".join(prefixes)))
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode("utf-8", "replace").strip()
                for p in prefixes:
                    if text.startswith(p):
                        found[p] = text[len(p):]
    finally:
        sel.close()
    return found


class SmtpServer:
    """A private instance of tools/smtp_server.py (for tests that script refusals
    without disturbing others). Attributes: url, port, dir, control_addr."""

    def __init__(self, directory=None, args=()):
        self._tmp = None
        if directory is None:
            self._tmp = tempfile.mkdtemp(prefix="smtp-", dir=LOCALENV_DIR if os.path.isdir(LOCALENV_DIR) else None)
            directory = self._tmp
        self.dir = directory
        self._log = open(os.path.join(directory, "smtp.log"), "ab")
        self.proc = subprocess.Popen(
            [PYTHON, os.path.join(SOURCE_DIR, "tools", "smtp_server.py"),
             "--host", "127.0.0.1", "--port", "0", "--dir", directory] + list(args),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log)
        try:
            found = _read_lines_until(self.proc, ["smtp=", "control="], 30)
        except Exception:
            self.stop()
            raise
        self.addr = found["smtp="]
        self.port = int(self.addr.rsplit(":", 1)[1])
        self.url = "smtp://" + self.addr
        self.control_addr = found["control="]

    def control(self, line, check=True):
        return smtp_control(line, check=check, addr=self.control_addr)

    def messages(self, to=None):
        return smtp_messages(to=to, directory=self.dir)

    def wait_messages(self, count, to=None, timeout=30):
        return wait_smtp_messages(count, to=to, timeout=timeout, directory=self.dir)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()


# --------------------------------------------------------------------------
# The daemon

def missing(what):
    """A tool or build product the test needs is missing: under CI (CI set, as .ci/run
    runs) that is a failure, because scripts/deps.sh and the build must provide it;
    run by hand, the test is skipped (and ctest shows a file whose tests all skipped as
    skipped: tests/run_unittest.py exits 77)."""
    if os.environ.get("CI"):
        raise AssertionError(what + " (CI: scripts/deps.sh and the build must provide it)")
    raise unittest.SkipTest(what)


def need_tool(name):
    """The path of a program on PATH, or missing()."""
    import shutil
    path = shutil.which(name)
    if path is None:
        missing("%s is not installed" % name)
    return path


def free_port():
    """A port free at this moment. Only for a server that cannot bind port 0 and report
    it (PostgreSQL): whoever binds it must retry on a clash."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def http_get(port, path, method="GET", timeout=10):
    """(status, content type, body text) of one HTTP request to 127.0.0.1:port."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode("utf-8")


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Metrics:
    """A parsed /metrics text: samples by (name, labels) and HELP/TYPE per family."""

    def __init__(self, text):
        self.text = text
        self.samples = {}
        self.help = {}
        self.type = {}
        for line in text.splitlines():
            if line.startswith("# HELP "):
                name, _, help_text = line[7:].partition(" ")
                self.help[name] = help_text
            elif line.startswith("# TYPE "):
                name, _, t = line[7:].partition(" ")
                self.type[name] = t
            elif line and not line.startswith("#"):
                m = _SAMPLE.match(line)
                if not m:
                    raise AssertionError("not a sample line: %r" % line)
                labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
                self.samples[(m.group(1), labels)] = float(m.group(3))

    def get(self, name, **labels):
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def total(self, name):
        """The sum of every series of a family."""
        return sum(v for k, v in self.samples.items() if k[0] == name)

    def series(self, name):
        return {dict(k[1]).get("partition", "") + "@" + dict(k[1]).get("topic", ""): v
                for k, v in self.samples.items() if k[0] == name}


def scrape(port):
    status, ctype, body = http_get(port, "/metrics")
    if status != 200:
        raise AssertionError("/metrics answered %s: %s" % (status, body))
    return Metrics(body)


_HTTP_LISTENING = re.compile(r"event=http_listening addr=\S+ port=(\d+)")


class Daemon:
    """BUILD_DIR/b2bd configured from the environment only (no --config).

    Every process a Daemon starts is judged when the test ends (judge(), called by
    TestCase.tearDown and B2bTestCase.tearDownClass): it must have exited with the
    status the test expects (expect_exit: 0 after SIGTERM; -SIGKILL after kill()),
    and its log must hold no sanitizer report (SANITIZER_REPORTS)."""

    _count = 0
    started = []  # every Daemon started, in order (tests judge those they started)

    def __init__(self, prefix, dsn, extra_env=None, args=None, group_id=None,
                 smtp_url=None, log_path=None, binary=None):
        e = env()
        Daemon._count += 1
        self.prefix = prefix
        self.dsn = dsn
        self.binary = binary or os.path.join(BUILD_DIR, "b2bd")
        self.args = list(args or [])
        logdir = os.path.join(LOCALENV_DIR, "logs")
        os.makedirs(logdir, exist_ok=True)
        self.log_path = log_path or os.path.join(
            logdir, "%sb2bd-%d-%d.log" % (prefix, os.getpid(), Daemon._count))
        self.env = dict(os.environ)
        self.env.update({
            "B2BD_KAFKA_BOOTSTRAP": e["B2BD_KAFKA_BOOTSTRAP"],
            "B2BD_PG_DSN": dsn,
            "B2BD_TOPIC_PREFIX": prefix,
            "B2BD_GROUP_ID": group_id or prefix + "b2bd",
            "B2BD_SMTP_URL": smtp_url or e["B2BD_SMTP_URL"],
            "B2BD_SMTP_FROM": "b2bd-test@example.com",
            "B2BD_KAFKA__SESSION_TIMEOUT_MS": "6000",
            # librdkafka 2.0.2's mock broker holds every fetch for fetch.wait.max.ms
            # even when data is there (a real broker answers at once): keep it short
            "B2BD_KAFKA__FETCH_WAIT_MAX_MS": "10",
            # tests run in parallel: each daemon's metrics endpoint on a free port
            "B2BD_HTTP_LISTEN": "127.0.0.1:0",
        })
        if extra_env:
            for k, v in extra_env.items():
                if v is None:
                    self.env.pop(k, None)
                else:
                    self.env[k] = str(v)
        self.proc = None
        self.returncode = None
        # The exit status the running process must end with: 0 (a SIGTERM'd daemon
        # exits 0) unless the test says otherwise (a refusal: set it, or pass
        # expect_exit to start(); kill() sets -SIGKILL itself). None: any status.
        self.expect_exit = 0
        self.ends = []  # (status, expected) of every process of this Daemon that ended
        self._ended = False

    def start(self, wait_ready=True, timeout=30, expect_exit=0):
        if not os.access(self.binary, os.X_OK):
            missing("%s is not built" % self.binary)
        self._record_end()  # a restart: the last process's end is judged too
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [self.binary] + self.args, env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        Daemon.started.append(self)
        self.returncode = None
        self.expect_exit = expect_exit
        self._ended = False
        if wait_ready:
            self.wait_ready(timeout)
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def wait_log(self, text, timeout=30, start=0):
        """Waits until the log (from character start) contains text; returns True,
        or False on timeout or when the daemon exited without writing it."""
        deadline = time.monotonic() + timeout
        while True:
            if text in self.log()[start:]:
                return True
            if not self.alive():
                return text in self.log()[start:]
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def wait_ready(self, timeout=30):
        if not self.wait_log("event=ready", timeout):
            state = "exited with %s" % self.proc.poll() if not self.alive() else "still running"
            raise AssertionError("b2bd not ready within %ss (%s); log:\n%s"
                                 % (timeout, state, self.log()[-20000:]))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def stop(self, timeout=30):
        """SIGTERM, then waits for the exit code; past timeout: SIGKILL and fail."""
        if self.proc is None:
            return None
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stacks = self._stacks()
            self.proc.kill()
            self.proc.wait(10)
            self.returncode = self.proc.returncode
            raise AssertionError("b2bd did not exit within %ss of SIGTERM; log:\n%s\nthreads:\n%s"
                                 % (timeout, self.log()[-20000:], stacks))
        return self.returncode

    def _stacks(self):
        """Every thread's stack of the running daemon (gdb), to tell where a stop hangs."""
        gdb = shutil.which("gdb")
        if not gdb:
            return "(gdb missing: run scripts/deps.sh)"
        try:
            r = subprocess.run([gdb, "-p", str(self.proc.pid), "-batch", "-nx", "-ex", "thread apply all bt"],
                               stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
            return r.stdout[-30000:] + r.stderr[-2000:]
        except (OSError, subprocess.SubprocessError) as e:
            return "(gdb failed: %s)" % e

    def kill(self):
        """SIGKILL (the test means it: this process's end is expected to be -SIGKILL)."""
        if self.proc is None:
            return None
        if self.alive():
            self.expect_exit = -signal.SIGKILL
            self.proc.kill()
        self.returncode = self.proc.wait(10)
        return self.returncode

    def wait(self, timeout=30):
        """Waits for the daemon to exit on its own; returns the exit code."""
        self.returncode = self.proc.wait(timeout)
        return self.returncode

    def _record_end(self):
        if self.proc is not None and not self._ended and self.proc.poll() is not None:
            self.ends.append((self.proc.returncode, self.expect_exit))
            self._ended = True

    def judge(self):
        """Stops the daemon if it still runs (SIGTERM) and returns the problems of its
        end, readable ([] when every process it started exited as expected and its
        log holds no sanitizer report): which daemon, its status, its log's tail."""
        problems = []
        try:
            if self.alive():
                self.stop()
        except AssertionError as e:
            problems.append(str(e)[:20000])
        self._record_end()
        for status, expected in self.ends:
            if expected is not None and status != expected:
                problems.append("b2bd (log %s) exited with status %s, expected %s"
                                % (self.log_path, status, expected))
        log = self.log()
        found = [r for r in SANITIZER_REPORTS if r in log]
        if found:
            problems.append("b2bd (log %s): sanitizer report in its log (%s)"
                            % (self.log_path, ", ".join(found)))
        if found:
            at = min(log.find(r) for r in found)
            problems.append("log from its first sanitizer report:\n%s" % log[max(0, at - 2000):at + 16000])
        elif problems:
            problems.append("log tail:\n%s" % log[-16000:])
        return problems

    def http_port(self, timeout=30):
        """The port of the daemon's HTTP endpoint, as it logged it (the tests let it
        bind port 0, so no other process can take the port in between)."""
        deadline = time.monotonic() + timeout
        while True:
            m = _HTTP_LISTENING.search(self.log())
            if m:
                return int(m.group(1))
            if not self.alive() or time.monotonic() > deadline:
                raise AssertionError("b2bd logged no http_listening; log:\n%s" % self.log()[-5000:])
            time.sleep(0.05)

    def metrics(self):
        """The daemon's /metrics, parsed."""
        return scrape(self.http_port())

    def log(self):
        return read_log(self.log_path)


# what AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer write when they
# find something (the tests run b2bd built with them, see scripts/test.sh)
SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def read_log(path):
    """A log file's text so far ("" before it exists), undecodable bytes replaced."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------
# Kafka

def _decode_value(v):
    if v is None:
        return None
    try:
        d = json.loads(v)
    except (ValueError, UnicodeDecodeError):
        return v
    return d if isinstance(d, dict) else v


def _decode_key(k):
    if k is None:
        return None
    try:
        return k.decode("utf-8")
    except UnicodeDecodeError:
        return k


def _decode_headers(hs):
    out = {}
    for name, value in hs or []:
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                pass
        out[name] = value
    return out


class Bus:
    """Producer of commands and reader of the output topics for one prefix.

    Readers assign every partition of an output topic from the beginning (no
    consumer group) and keep everything read. messages() entries are tuples
    (key, value, headers, partition, offset): key str (bytes if not UTF-8),
    value a dict if the payload is a JSON object else the raw bytes, headers a
    dict of str (bytes if not UTF-8)."""

    # every Bus made, so that TestCase.tearDown can check what each one read
    opened = []

    def __init__(self, prefix, bootstrap=None, fetch_wait_ms=10):
        Bus.opened.append(self)
        self.prefix = prefix
        self.bootstrap = bootstrap or env()["B2BD_KAFKA_BOOTSTRAP"]
        self.fetch_wait_ms = fetch_wait_ms
        self._producer = None
        self._delivery_errors = []
        self._consumers = {}
        self._read = {}

    # -- producing
    def _prod(self):
        if self._producer is None:
            self._producer = Producer({
                "bootstrap.servers": self.bootstrap,
                "linger.ms": 5,
                "acks": "all",
                "message.timeout.ms": 30000,
            })
        return self._producer

    def _on_delivery(self, err, msg):
        if err is not None:
            self._delivery_errors.append((err, msg.topic(), msg.key()))

    def send(self, cmd_or_bytes, topic_suffix=None, key=None, headers=None, partition=None):
        """Produces a command (dict -> JSON) or raw bytes/str. Topic suffix and key
        are derived from a command when not given. Returns the command_id of a
        dict with one (else None)."""
        if isinstance(cmd_or_bytes, dict):
            value = json.dumps(cmd_or_bytes).encode("utf-8")
            if topic_suffix is None:
                topic_suffix = topic_for(cmd_or_bytes.get("type"))
            if key is None:
                key = key_for(cmd_or_bytes)
            cid = cmd_or_bytes.get("command_id")
        else:
            value = cmd_or_bytes.encode("utf-8") if isinstance(cmd_or_bytes, str) else cmd_or_bytes
            cid = None
            if topic_suffix is None:
                raise ValueError("topic_suffix is required for raw messages")
        if isinstance(key, str):
            key = key.encode("utf-8")
        kw = {"key": key, "value": value, "on_delivery": self._on_delivery}
        if headers:
            kw["headers"] = list(headers.items()) if isinstance(headers, dict) else headers
        if partition is not None:
            kw["partition"] = partition
        p = self._prod()
        while True:
            try:
                p.produce(self.prefix + topic_suffix, **kw)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
        return cid if isinstance(cid, str) else None

    def flush(self, timeout=30):
        """Waits for every message sent to be delivered; raises on failure."""
        if self._producer is None:
            return
        left = self._producer.flush(timeout)
        if left:
            raise AssertionError("%d message(s) not delivered within %ss" % (left, timeout))
        if self._delivery_errors:
            errs, self._delivery_errors = self._delivery_errors, []
            raise AssertionError("delivery failed: %r" % (errs,))

    # -- reading
    def _consumer(self, suffix):
        c = self._consumers.get(suffix)
        if c is None:
            topic = self.prefix + suffix
            c = Consumer({
                "bootstrap.servers": self.bootstrap,
                "group.id": "harness-" + unique_name(""),
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                "auto.offset.reset": "earliest",
                "topic.metadata.refresh.interval.ms": 5000,
                "fetch.wait.max.ms": self.fetch_wait_ms,  # see Daemon: the mock holds fetches this long
            })
            md = c.list_topics(topic, timeout=30)
            t = md.topics.get(topic)
            if t is None or t.error is not None or not t.partitions:
                c.close()
                raise RuntimeError("topic %s unavailable: %s" % (topic, t and t.error))
            c.assign([TopicPartition(topic, p, -2) for p in sorted(t.partitions)])
            self._consumers[suffix] = c
            self._read[suffix] = []
        return c

    def poll(self, topic_suffix, timeout=0.0):
        """Reads what is available on an output topic (waiting at most timeout
        for the first message); returns the number of new messages."""
        c = self._consumer(topic_suffix)
        got = 0
        wait = timeout
        while True:
            # poll() returns as soon as one message is there (consume() would wait for
            # 1000 or the whole timeout); then take what else is ready
            first = c.poll(wait)
            if first is None:
                return got
            msgs = [first] + c.consume(num_messages=1000, timeout=0)
            for m in msgs:
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError("consuming %s: %s" % (m.topic(), m.error()))
                self._read[topic_suffix].append((
                    _decode_key(m.key()), _decode_value(m.value()),
                    _decode_headers(m.headers()), m.partition(), m.offset()))
                got += 1
            wait = 0

    def messages(self, topic_suffix):
        """Everything read so far from an output topic (reads what is available first)."""
        self.poll(topic_suffix, 0)
        return list(self._read[topic_suffix])

    def values(self, topic_suffix):
        return [m[1] for m in self.messages(topic_suffix)]

    def wait_for(self, topic_suffix, predicate, timeout=30):
        """The first message (tuple) of the topic for which predicate(message) is
        true, among those read and those arriving within timeout seconds."""
        self._consumer(topic_suffix)
        seen = 0
        deadline = time.monotonic() + timeout
        while True:
            msgs = self._read[topic_suffix]
            for m in msgs[seen:]:
                if predicate(m):
                    return m
            seen = len(msgs)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no matching message on %s%s within %ss (%d read)"
                                     % (self.prefix, topic_suffix, timeout, seen))
            self.poll(topic_suffix, min(left, 0.5))

    def results_for(self, command_id):
        """All results read so far for command_id."""
        return [m[1] for m in self.messages("results")
                if isinstance(m[1], dict) and m[1].get("command_id") == command_id]

    def wait_result(self, command_id, timeout=30, nth=1):
        """The nth (1-based) result for command_id, waiting at most timeout."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.results_for(command_id)
            if len(found) >= nth:
                return found[nth - 1]
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no result #%d for command %s within %ss (%d results read)"
                                     % (nth, command_id, timeout, len(self._read["results"])))
            self.poll("results", min(left, 0.5))

    def wait_results(self, command_ids, timeout=30):
        """The first result of each command, in the order of command_ids."""
        deadline = time.monotonic() + timeout
        ids = list(command_ids)
        while True:
            first = {}
            for m in self.messages("results"):
                v = m[1]
                if isinstance(v, dict) and v.get("command_id") not in first:
                    first[v.get("command_id")] = v
            missing = [c for c in ids if c not in first]
            if not missing:
                return [first[c] for c in ids]
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no result within %ss for %d of %d commands (e.g. %s)"
                                     % (timeout, len(missing), len(ids), missing[0]))
            self.poll("results", min(left, 0.5))

    def read_to_end(self, topic_suffix, timeout=30):
        """Reads every partition of an output topic up to its high watermark as of now;
        returns everything read from the topic. What the broker acknowledged before
        the call is all there: call it once b2bd has published what the test waits for
        (B2bTestCase.settle(), or after b2bd exited, since SIGTERM flushes the outbox)."""
        c = self._consumer(topic_suffix)
        topic = self.prefix + topic_suffix
        ends = {}
        for tp in c.assignment():
            low, high = c.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            if high > low:
                ends[tp.partition] = high
        deadline = time.monotonic() + timeout
        while True:
            upto = {}
            for m in self._read[topic_suffix]:
                upto[m[3]] = max(upto.get(m[3], -1), m[4] + 1)
            behind = {p: h for p, h in ends.items() if upto.get(p, 0) < h}
            if not behind:
                return list(self._read[topic_suffix])
            if time.monotonic() > deadline:
                raise AssertionError("%s: partitions %s not read to their end within %ss"
                                     % (topic, sorted(behind), timeout))
            self.poll(topic_suffix, 0.2)

    def drain(self, topic_suffix, quiet=1.0, timeout=60):
        """Reads until nothing new arrives for quiet seconds (at most timeout);
        returns everything read from the topic."""
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while True:
            now = time.monotonic()
            if now - last >= quiet or now > deadline:
                return list(self._read[topic_suffix]) if topic_suffix in self._read else self.messages(topic_suffix)
            if self.poll(topic_suffix, min(0.2, quiet)):
                last = time.monotonic()

    def schema_problems(self):
        """Every message this bus read from b2bd's output topics checked against its
        schema in topics/schemas: results, access and notification events, and the
        headers of dead letters. Returns readable problems (empty when all match)."""
        import schemas  # tests/schema, on sys.path (see the top of this module)
        problems = []
        for suffix, kind, part in (("results", "result", 1), ("events.access", "access", 1),
                                   ("events.notifications", "notification", 1), ("dlq", "dead-letter", 2),
                                   ("events.shops", "shop.settings", 1),
                                   ("events.privacy", "customer.data_export", 1)):
            for m in self._read.get(suffix, []):
                value = m[part]
                if suffix in ("events.access", "events.shops") and value is None:
                    continue  # a tombstone (null value) on a compacted topic
                errs = schemas.errors(kind, value) if isinstance(value, dict) else ["not a JSON object"]
                if errs:
                    problems.append("%s message does not match its schema (%s): %r"
                                    % (kind, "; ".join(errs), value))
        return problems

    def close(self):
        for c in self._consumers.values():
            try:
                c.close()
            except Exception:
                pass
        self._consumers.clear()
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None


# --------------------------------------------------------------------------
# Test case

class TestCase(unittest.TestCase):
    """Per test: self.prefix (topics created), self.db_name / self.dsn (a fresh
    database owned by b2bd), self.bus (Bus, created on first use), daemons
    started with self.start_daemon() (stopped in tearDown, their logs printed
    when the test failed), self.shop (a unique shop id).

    Set SHARED = True in a subclass to create prefix and database once per class
    (setUpClass) instead of once per test. KEEP_FAILED_DB = True keeps the
    database of a failed test for inspection."""

    # tearDown checks every message the test read from b2bd's output topics against
    # topics/schemas; only a test of the harness itself, which writes those topics
    # by hand, turns it off
    CHECK_SCHEMAS = True

    SHARED = False
    KEEP_FAILED_DB = True

    @classmethod
    def _make_world(cls, target):
        target.prefix = unique_name("t") + "."
        create_topics(target.prefix)
        target.db_name, target.dsn = create_database()

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env()
        if cls.SHARED:
            cls._make_world(cls)

    @classmethod
    def tearDownClass(cls):
        if cls.SHARED and getattr(cls, "db_name", None):
            try:
                drop_database(cls.db_name)
            except Exception as e:  # noqa: BLE001
                print("could not drop %s: %s" % (cls.db_name, e), file=sys.stderr)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        if not self.SHARED:
            self._make_world(self)
        self.shop = unique_name("shop-")
        self._bus = None
        self._buses_from = len(Bus.opened)
        self._daemons = []
        self._daemons_from = len(Daemon.started)
        self._smtp_servers = []

    @property
    def bus(self):
        if self._bus is None:
            self._bus = Bus(self.prefix)
        return self._bus

    def _failed(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        if hasattr(outcome, "success"):  # Python 3.11+: False once a part failed
            if not outcome.success:
                return True
        result = getattr(outcome, "result", None)
        for lst in (getattr(result, "errors", []), getattr(result, "failures", [])):
            if any(t is self for t, _ in lst):
                return True
        return False

    def tearDown(self):
        failed = self._failed()
        problems = []
        # every daemon this test started (through self.daemon() or harness.Daemon
        # directly; not the class's shared one) ends as the test expects: stopped by
        # SIGTERM with status 0 unless the test said otherwise, no sanitizer report
        shared = getattr(self, "shared_daemon", None)
        mine = []
        for d in self._daemons + Daemon.started[self._daemons_from:]:
            if d is not shared and d.proc is not None and all(d is not m for m in mine):
                mine.append(d)
        del Daemon.started[self._daemons_from:]
        for d in mine:
            ended = d.judge()
            problems.extend(ended)
            if failed and not ended:
                sys.stderr.write("\n----- b2bd log %s (exit %s) -----\n%s\n----- end of log -----\n"
                                 % (d.log_path, d.returncode, d.log()[-100000:]))
        for s in self._smtp_servers:
            s.stop()
        # every result, event and dead letter this test read (through self.bus or a bus
        # of its own) matches its schema
        buses = Bus.opened[self._buses_from:]
        del Bus.opened[self._buses_from:]
        if not failed and self.CHECK_SCHEMAS:
            for b in buses:
                problems.extend(p[:3000] for p in b.schema_problems())
        for b in buses:
            b.close()
        if not self.SHARED and not (failed and self.KEEP_FAILED_DB):
            try:
                drop_database(self.db_name)
            except Exception as e:  # noqa: BLE001
                sys.stderr.write("could not drop %s: %s\n" % (self.db_name, e))
        elif failed:
            sys.stderr.write("database kept: %s\n" % self.dsn)
        super().tearDown()
        if problems:
            raise AssertionError("; ".join(problems))

    # -- helpers
    def daemon(self, extra_env=None, args=None, group_id=None, smtp_url=None, dsn=None):
        """A Daemon for this test's prefix and database (not started)."""
        d = Daemon(self.prefix, dsn or self.dsn, extra_env=extra_env, args=args,
                   group_id=group_id, smtp_url=smtp_url)
        self._daemons.append(d)
        return d

    def start_daemon(self, extra_env=None, args=None, wait_ready=True, **kw):
        """Starts a daemon (skips the test if b2bd is not built) and waits for ready."""
        return self.daemon(extra_env=extra_env, args=args, **kw).start(wait_ready=wait_ready)

    def start_smtp(self, args=()):
        """A private SMTP server, stopped in tearDown; pass its .url as smtp_url. args:
        more options of tools/smtp_server.py (--tls-cert, --auth, ...)."""
        s = SmtpServer(args=args)
        self._smtp_servers.append(s)
        return s

    def query(self, sql, params=None):
        return db_query(self.dsn, sql, params)

    def command(self, type, payload, command_id=None, shop_id=None, **envelope):
        """A command for self.shop (unless shop_id is given)."""
        return command(type, shop_id or self.shop, payload, command_id=command_id, **envelope)

    def send(self, cmd, **kw):
        cid = self.bus.send(cmd, **kw)
        self.bus.flush()
        return cid

    def send_and_wait(self, cmd, timeout=30, **kw):
        """Sends a command and returns its (first) result."""
        self.send(cmd, **kw)
        return self.bus.wait_result(cmd["command_id"], timeout)

    def assertApplied(self, result, msg=None):
        self.assertEqual(result.get("status"), "applied",
                         msg or "expected applied, got %s" % json.dumps(result))

    def assertRejected(self, result, code=None, field=None, msg=None):
        self.assertEqual(result.get("status"), "rejected",
                         msg or "expected rejected, got %s" % json.dumps(result))
        err = result.get("error") or {}
        if code is not None:
            self.assertEqual(err.get("code"), code, msg or json.dumps(result))
        if field is not None:
            self.assertEqual(err.get("field"), field, msg or json.dumps(result))
