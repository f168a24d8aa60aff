#!/usr/bin/python3
"""Measures b2bd against the local environment (see bench/run.sh): throughput of 10,000
assign commands with batching on and off, the COPY floor, light-load latency, and peak
memory over 100,000 commands. Prints a table and writes the figures as JSON."""
import argparse
import io
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402
import psycopg2  # noqa: E402


def fresh(partitions=harness.PARTITIONS):
    """A new topic prefix (topics created) and database (b2bd's schema, from its own
    migrations: a daemon started and stopped once); the shop is "bench"."""
    prefix = harness.unique_name("b") + "."
    harness.create_topics(prefix, partitions)
    name, dsn = harness.create_database()
    d = harness.Daemon(prefix, dsn, extra_env={"B2BD_ROLE": "worker"}).start()
    d.stop()
    return prefix, name, dsn, "bench"


def world(n_companies, customers_per_company):
    """A fresh prefix and database with companies of one location each and their
    customers (not yet contacts), written straight into PostgreSQL."""
    prefix, name, dsn, shop = fresh()
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        for c in range(n_companies):
            cur.execute("INSERT INTO companies (shop_id, company_id, name) VALUES (%s, %s, %s)",
                        (shop, "c-%d" % c, "Company %d" % c))
            cur.execute("INSERT INTO locations (shop_id, location_id, company_id, name) VALUES (%s, %s, %s, %s)",
                        (shop, "l-%d" % c, "c-%d" % c, "Location %d" % c))
        buf = io.StringIO()
        for c in range(n_companies):
            for i in range(customers_per_company):
                cid = "u-%d-%d" % (c, i)
                buf.write("%s\t%s\t%s@example.com\tFirst\tLast\n" % (shop, cid, cid))
        buf.seek(0)
        cur.copy_expert("COPY customers (shop_id, customer_id, email, first_name, last_name) FROM STDIN", buf)
    return prefix, name, dsn, shop


def assigns(shop, n_companies, per_company):
    out = []
    for i in range(per_company):
        for c in range(n_companies):
            out.append(harness.command("assign", shop, {
                "company_id": "c-%d" % c, "customer": {"id": "u-%d-%d" % (c, i)},
                "locations": [{"location_id": "l-%d" % c, "role": "ordering_only"}]}))
    return out


def world_empty(n_companies, locations_per_company, partitions=harness.PARTITIONS):
    """A fresh prefix and database with companies and locations but no customer: what an
    import of new customers starts from."""
    prefix, name, dsn, shop = fresh(partitions)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        for c in range(n_companies):
            cur.execute("INSERT INTO companies (shop_id, company_id, name) VALUES (%s, %s, %s)",
                        (shop, "c-%d" % c, "Company %d" % c))
            for l in range(locations_per_company):
                cur.execute("INSERT INTO locations (shop_id, location_id, company_id, name) VALUES (%s, %s, %s, %s)",
                            (shop, "l-%d-%d" % (c, l), "c-%d" % c, "Location %d.%d" % (c, l)))
    return prefix, name, dsn, shop


def new_assigns(shop, n_companies, per_company, locations_per_company):
    """Assigns that create their customers, as an import's rows do: mixed-case emails,
    non-ASCII names, a role at each location of the company."""
    out = []
    for i in range(per_company):
        for c in range(n_companies):
            out.append(harness.command("assign", shop, {
                "company_id": "c-%d" % c,
                "customer": {"email": "New.Customer%d.%d@Example.com" % (c, i), "first_name": "Zoë %d" % i,
                             "last_name": "Öström"},
                "locations": [{"location_id": "l-%d-%d" % (c, l),
                               "role": "location_admin" if l == 0 and i % 10 == 0 else "ordering_only"}
                              for l in range(locations_per_company)]}))
    return out


def settle(d):
    """Waits until the daemon's consumer holds its partitions, so that the clock measures
    commands, not the consumer group's join (the mock takes 3 s, or a departed member's
    session timeout)."""
    if not d.wait_log("event=assigned", timeout=60):
        raise SystemExit("b2bd got no partitions within 60 s")
    time.sleep(0.5)


def run_stream(prefix, dsn, cmds, extra_env, timeout=600):
    """Starts a daemon, produces cmds, waits for every result; returns (seconds, peak RSS kB)."""
    d = harness.Daemon(prefix, dsn, extra_env=extra_env)
    d.start()
    bus = harness.Bus(prefix)
    bus.poll("results", 0)  # the reader is assigned before the clock starts
    settle(d)
    t0 = time.monotonic()
    for c in cmds:
        bus.send(c)
    bus.flush(120)
    want = {c["command_id"] for c in cmds}
    seen = set()
    deadline = time.monotonic() + timeout
    while seen != want:
        if time.monotonic() > deadline:
            raise SystemExit("timed out: %d of %d results" % (len(seen), len(want)))
        bus.poll("results", 0.2)
        seen = {m[1]["command_id"] for m in bus._read["results"]} & want
    t1 = time.monotonic()
    applied = sum(1 for m in bus._read["results"] if m[1]["status"] == "applied")
    hwm = 0
    with open("/proc/%d/status" % d.pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    run_stream.metrics = d.metrics()
    d.stop()
    bus.close()
    if applied < len(cmds):
        raise SystemExit("only %d of %d applied" % (applied, len(cmds)))
    return t1 - t0, hwm


def copy_floor(dsn, n, tries=3):
    """What one assign that creates its customer must write, written with COPY: the
    customer (with its lower(email) index), contact, role, inbox row and two outbox rows
    (result and access event) and the access event's access_history row. The floor no
    command processor beats; best of tries. The history row is copied too, with 0011's
    row trigger standing aside as it does for b2bd's set-based runs (b2bd.history, 0016):
    the floor is what must be written, not the cost of a trigger."""
    best = None
    for t in range(tries):
        shop = "floor-%d" % t
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO companies (shop_id, company_id, name) VALUES (%s, 'c-copy', 'Copy')", (shop,))
            cur.execute("INSERT INTO locations (shop_id, location_id, company_id, name)"
                        " VALUES (%s, 'l-copy', 'c-copy', 'L')", (shop,))
            conn.commit()
            bufs = {k: io.StringIO() for k in ("customers", "contacts", "roles", "commands", "outbox", "history")}
            for i in range(n):
                cid = "new.customer%d@example.com" % i
                bufs["customers"].write("%s\t%s\tNew.Customer%d@Example.com\tZo\u00eb\t\u00d6str\u00f6m\n" % (shop, cid, i))
                bufs["contacts"].write("%s\tc-copy\t%s\n" % (shop, cid))
                bufs["roles"].write("%s\tc-copy\tl-copy\t%s\tordering_only\n" % (shop, cid))
                result = '{"event_id":"%s","command_id":"%s","status":"applied","result":{"customer_id":"%s"}}' % (
                    uuid.uuid4(), uuid.uuid4(), cid)
                bufs["commands"].write("%s\t%s\tassign\t\\\\x%s\t\\N\t%s\n" % (
                    uuid.uuid4(), shop, os.urandom(32).hex(), result.replace("\\", "\\\\")))
                # the access event as b2bd writes it, and its access_history row
                caused_by = uuid.uuid4()
                companies = ('[{"company_id":"c-copy","access":"locations","locations":'
                             '[{"location_id":"l-copy","role":"ordering_only"}]}]')
                bufs["history"].write("%s\t%s\t1\t%s\t%s\t\\N\t2026-12-01T00:00:00.000Z\n"
                                      % (shop, cid, companies, caused_by))
                access = ('{"event_id":"%s","shop_id":"%s","customer_id":"%s","email":"New.Customer%d@Example.com",'
                          '"experience":"b2b","companies":[{"company_id":"c-copy","access":"locations","locations":'
                          '[{"location_id":"l-copy","role":"ordering_only"}]}],"version":1,"caused_by":"%s",'
                          '"actor":null,"occurred_at":"2026-12-01T00:00:00.000Z"}' % (uuid.uuid4(), shop, cid, i,
                                                                                       caused_by))
                for topic, value in (("results", result), ("events.access", access)):
                    bufs["outbox"].write("%s\t\\\\x%s\t\\\\x%s\n" % (topic, ("%s/c-copy" % shop).encode().hex(),
                                                                 value.encode().hex()))
            for b in bufs.values():
                b.seek(0)
            t0 = time.monotonic()
            cur.execute("SELECT set_config('b2bd.history', 'written', true)")
            cur.copy_expert("COPY customers (shop_id, customer_id, email, first_name, last_name) FROM STDIN",
                            bufs["customers"])
            cur.copy_expert("COPY contacts (shop_id, company_id, customer_id) FROM STDIN", bufs["contacts"])
            cur.copy_expert("COPY roles (shop_id, company_id, location_id, customer_id, role) FROM STDIN", bufs["roles"])
            cur.copy_expert("COPY commands (command_id, shop_id, type, payload_hash, import_id, result) FROM STDIN",
                            bufs["commands"])
            cur.copy_expert("COPY outbox (topic, key, value) FROM STDIN", bufs["outbox"])
            cur.copy_expert("COPY access_history (shop_id, customer_id, version, companies, caused_by, actor,"
                            " occurred_at) FROM STDIN", bufs["history"])
            conn.commit()
            secs = time.monotonic() - t0
            cur.execute("DELETE FROM outbox WHERE key = %s", (("%s/c-copy" % shop).encode(),))
            conn.commit()
        best = secs if best is None else min(best, secs)
    return best


def write_import_csv(path, n):
    """A CSV of n new customers (non-ASCII names, mixed-case emails, two locations)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("email,first_name,last_name,location_id,role\n")
        for i in range(n):
            f.write("Import.Customer%d@Example.COM,Zoë %d,Öström,l-0-%d,%s\n"
                    % (i, i, i % 2, "location_admin" if i % 10 == 0 else "ordering_only"))


def run_ctl_import(prefix, dsn, shop, path, d, args=None):
    """Runs b2bctl import of path against daemon d (args: its options, by default those
    of a CSV for shop's company c-0); returns seconds, start to exit."""
    # b2bctl's result reader asks the mock for the daemon's fetch wait (see latency()):
    # the mock holds every fetch for fetch.wait.max.ms (librdkafka's default, 500 ms),
    # so the last results waited up to that long after b2bd had published them
    env = dict(os.environ, B2BD_KAFKA_BOOTSTRAP=harness.env()["B2BD_KAFKA_BOOTSTRAP"], B2BD_TOPIC_PREFIX=prefix,
               B2BD_PG_DSN=dsn, B2BD_KAFKA__FETCH_WAIT_MAX_MS=d.env["B2BD_KAFKA__FETCH_WAIT_MAX_MS"])
    t0 = time.monotonic()
    if args is None:
        args = ["--shop", shop, "--company", "c-0"]
    r = subprocess.run([os.path.join(harness.BUILD_DIR, "b2bctl"), "import", "--wait-timeout", "300"]
                       + list(args) + [path],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    secs = time.monotonic() - t0
    if r.returncode != 0:
        d.stop()
        raise SystemExit("b2bctl import failed (%d): %s" % (r.returncode, r.stdout.decode()[-2000:]))
    return secs


def ctl_import(prefix, dsn, shop, n, tmpdir):
    """b2bctl import of a generated CSV of n new customers (non-ASCII names, mixed-case
    emails, two locations named per row), end to end: from the command's start to its
    exit, with a running daemon; first its dry run (--dry-run, which changes nothing), as
    an importer tries a file before running it (after a warm-up). Returns (dry-run seconds,
    seconds, b2bd's batch seconds of the dry run, b2bd's batch seconds before the import)."""
    path = os.path.join(tmpdir, "import-%s.csv" % prefix.strip("."))
    write_import_csv(path, n)
    d = harness.Daemon(prefix, dsn).start()
    settle(d)
    # a warm-up through the bulk lane (its consumer's first fetch after a start is slow,
    # README "Two lanes"), so that neither measured run pays it
    warm = os.path.join(tmpdir, "warm-%s.csv" % prefix.strip("."))
    write_import_csv(warm, 10)
    run_ctl_import(prefix, dsn, shop, warm, d, ["--shop", shop, "--company", "c-0", "--dry-run"])
    warm_batches = d.metrics().total("b2bd_batch_duration_seconds_sum")
    dry = run_ctl_import(prefix, dsn, shop, path, d, ["--shop", shop, "--company", "c-0", "--dry-run"])
    before_real = d.metrics().total("b2bd_batch_duration_seconds_sum")
    secs = run_ctl_import(prefix, dsn, shop, path, d)
    run_stream.metrics = d.metrics()
    d.stop()
    return dry, secs, before_real - warm_batches, before_real


def lanes(n, rate, tmpdir, companies=20, partitions=12, pairs=4):
    """The bulk lane (README "How it works"): a b2bctl import of n new customers (to the
    bulk topic; JSON Lines of assigns over companies, each company's rows under its key,
    as the README says to key them; topics of 12 partitions, as in production) alone,
    then again while another shop's admin sends single assigns to the assign topic at
    rate/s; `pairs` such pairs, each run on a fresh database and topics, since one run's
    speed moves by a fifth from one run to the next on this machine; the pairs in
    alternate order (alone first, then loaded first, ...), so that a drift of the
    machine's speed over the runs weighs on both kinds alike, after an import that is
    not counted. Returns
    (the import's seconds alone, one per pair; its seconds with the interactive load, one
    per pair; the interactive commands' latencies in ms during the loaded imports, all
    pairs pooled, two ways: sent to applied, i.e. to the commit of the transaction that
    wrote their inbox row (its commit timestamp: bench/run.sh turns on
    track_commit_timestamp); and sent to seen by the admin, who looks the inbox row up at
    each of b2bd's commits (its NOTIFY after the commit), which adds the admin's own
    wake-up and query on a busy machine). (librdkafka 2.0.2's mock broker keeps about 5 MB
    a partition and drops the oldest beyond: an import on fewer partitions than this
    outruns it and loses rows.)"""
    out = []
    # first a run that is not counted: on a new cluster the first import's WAL goes to
    # new segments (PostgreSQL creates and fills each), the later ones' to recycled ones
    runs = [(True, False)] + [(False, x) for p in range(pairs)
                              for x in ((False, True) if p % 2 == 0 else (True, False))]
    for warm_up, interactive in runs:
        prefix, _, dsn, shop = world_empty(companies, 2, partitions)
        other = "bench-admin"
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO companies (shop_id, company_id, name) VALUES (%s, 'c-0', 'Other')", (other,))
            cur.execute("INSERT INTO locations (shop_id, location_id, company_id, name)"
                        " VALUES (%s, 'l-0', 'c-0', 'L')", (other,))
            buf = io.StringIO()
            for i in range(2000):
                buf.write("%s\ta-%d\ta-%d@example.com\n" % (other, i, i))
            buf.seek(0)
            cur.copy_expert("COPY customers (shop_id, customer_id, email) FROM STDIN", buf)
        path = os.path.join(tmpdir, "lanes-%s.jsonl" % prefix.strip("."))
        with open(path, "w", encoding="utf-8") as f:
            for c in new_assigns(shop, companies, n // companies, 2):
                f.write(json.dumps(c) + "\n")
        d = harness.Daemon(prefix, dsn, extra_env={"B2BD_KAFKA__FETCH_WAIT_MAX_MS": "1"}).start()
        settle(d)
        samples, stop = [], threading.Event()  # (sent, seen: monotonic; command id, sent: wall clock)

        def admin():
            bus = harness.Bus(prefix, fetch_wait_ms=1)
            conn = psycopg2.connect(dsn)
            conn.autocommit = True
            cur = conn.cursor()
            # woken by b2bd's NOTIFY at each commit (the relay's channel), not by polling,
            # which cost the import more than the admin's commands did
            cur.execute("LISTEN b2bd_outbox")
            i = 0
            while not stop.is_set() and i < 2000:
                c = harness.command("assign", other, {"company_id": "c-0", "customer": {"id": "a-%d" % i},
                                                      "locations": [{"location_id": "l-0", "role": "ordering_only"}]})
                t0, wall = time.monotonic(), time.time()
                bus.send(c)
                bus.flush(10)
                while True:
                    del conn.notifies[:]
                    cur.execute("SELECT 1 FROM commands WHERE command_id = %s", (c["command_id"],))
                    if cur.fetchone() or time.monotonic() - t0 > 60:
                        break
                    if conn.notifies:  # a commit announced while the query ran: look again
                        continue
                    select.select([conn], [], [], 0.1)
                    conn.poll()
                samples.append((t0, time.monotonic(), c["command_id"], wall))
                i += 1
                time.sleep(max(0, 1.0 / rate - (time.monotonic() - t0)))
            conn.close()
            bus.close()

        t = threading.Thread(target=admin, daemon=True)
        if interactive:
            t.start()
            time.sleep(1.0)  # the admin at work before the import starts
        t0 = time.monotonic()
        secs = run_ctl_import(prefix, dsn, shop, path, d, args=[])
        t1 = time.monotonic()
        stop.set()
        if interactive:
            t.join(60)
        lanes.metrics = d.metrics()
        d.stop()
        if warm_up:
            continue
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT command_id::text, extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8"
                        " FROM commands WHERE shop_id = %s", (other,))
            committed = dict(cur.fetchall())
        during = [s for s in samples if t0 <= s[0] <= t1]
        if any(committed.get(cid) is None for _, _, cid, _ in during):
            raise SystemExit("lanes: an interactive command without its commit timestamp")
        out.append((interactive, secs, [(seen - sent) * 1000 for sent, seen, _, _ in during],
                    [(committed[cid] - wall) * 1000 for _, _, cid, wall in during]))
    lanes.applied = sorted(ms for o in out for ms in o[3])
    return ([o[1] for o in out if not o[0]], [o[1] for o in out if o[0]],
            sorted(ms for o in out for ms in o[2]))


def contacts_by_copy(dsn, shop, tag, n, locations):
    """n contacts of company c-0 (customers tag-0 .. tag-(n-1)), each with an
    ordering_only role at one of its first `locations` locations in turn, written with
    COPY; the seat count set to match."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        bufs = {k: io.StringIO() for k in ("customers", "contacts", "roles")}
        for i in range(n):
            cid = "%s-%d" % (tag, i)
            bufs["customers"].write("%s\t%s\t%s@example.com\n" % (shop, cid, cid))
            bufs["contacts"].write("%s\tc-0\t%s\n" % (shop, cid))
            bufs["roles"].write("%s\tc-0\tl-0-%d\t%s\tordering_only\n" % (shop, i % locations, cid))
        for b in bufs.values():
            b.seek(0)
        cur.copy_expert("COPY customers (shop_id, customer_id, email) FROM STDIN", bufs["customers"])
        cur.copy_expert("COPY contacts (shop_id, company_id, customer_id) FROM STDIN", bufs["contacts"])
        cur.copy_expert("COPY roles (shop_id, company_id, location_id, customer_id, role) FROM STDIN", bufs["roles"])
        cur.execute("UPDATE companies SET contact_count = %s WHERE shop_id = %s AND company_id = 'c-0'", (n, shop))
        cur.execute("ANALYZE")


def revokes(prefix, dsn, shop, n):
    """n contacts of one location (written with COPY), then n revokes of their role
    there, one command each: removing every contact of a location."""
    contacts_by_copy(dsn, shop, "r", n, 1)
    cmds = [harness.command("revoke", shop, {"company_id": "c-0", "customer_id": "r-%d" % i, "scope": "locations",
                                             "location_ids": ["l-0-0"]}) for i in range(n)]
    secs, _ = run_stream(prefix, dsn, cmds, {})
    return secs


def suspension(prefix, dsn, shop, n):
    """A company of n contacts (written with COPY), each with a role, suspended by one
    command and resumed by another (CONTRACT.md, "Suspension"): each must publish n
    access events and write their n access_history rows, set-based. Returns (suspend
    seconds, resume seconds), each command's time as
    b2bd's batch took it (b2bd_batch_duration_seconds_sum: apply and COMMIT), not the
    relay's publishing of the events afterwards."""
    contacts_by_copy(dsn, shop, "s", n, 2)
    out = []
    for type in ("suspend", "resume"):
        cmd = harness.command(type, shop, {"company_id": "c-0"})
        run_stream(prefix, dsn, [cmd], {})
        out.append(run_stream.metrics.total("b2bd_batch_duration_seconds_sum"))
    rows = harness.db_query(dsn, "SELECT count(*) FROM access_history WHERE shop_id = %s", (shop,))
    if rows[0][0] != 2 * n:
        raise SystemExit("suspension: %d access_history rows, not %d" % (rows[0][0], 2 * n))
    return out[0], out[1]


def suspension_floor(dsn, n, tries=3):
    """What suspending a company of n contacts must write, written with COPY: n access
    events in the outbox and their n access_history rows (0011's row trigger standing
    aside, as in copy_floor). Best of tries."""
    best = None
    for t in range(tries):
        shop = "sfloor-%d" % t
        out, hist = io.StringIO(), io.StringIO()
        for i in range(n):
            cid = "s-%d" % i
            caused_by = uuid.uuid4()
            companies = ('[{"company_id":"c-0","access":"suspended","locations":'
                         '[{"location_id":"l-0-%d","role":"ordering_only"}]}]' % (i % 2))
            hist.write("%s\t%s\t2\t%s\t%s\t\\N\t2026-12-01T00:00:00.000Z\n" % (shop, cid, companies, caused_by))
            access = ('{"event_id":"%s","shop_id":"%s","customer_id":"%s","email":"%s@example.com",'
                      '"experience":"d2c","companies":%s,"version":2,"caused_by":"%s",'
                      '"actor":null,"occurred_at":"2026-12-01T00:00:00.000Z"}' % (uuid.uuid4(), shop, cid, cid,
                                                                               companies, caused_by))
            out.write("events.access\t\\\\x%s\t\\\\x%s\n" % (("%s/%s" % (shop, cid)).encode().hex(),
                                                             access.encode().hex()))
        out.seek(0)
        hist.seek(0)
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            t0 = time.monotonic()
            cur.execute("SELECT set_config('b2bd.history', 'written', true)")
            cur.copy_expert("COPY outbox (topic, key, value) FROM STDIN", out)
            cur.copy_expert("COPY access_history (shop_id, customer_id, version, companies, caused_by, actor,"
                            " occurred_at) FROM STDIN", hist)
            conn.commit()
            secs = time.monotonic() - t0
            cur.execute("DELETE FROM outbox WHERE key LIKE %s", (("%s/%%" % shop).encode(),))
            conn.commit()
        best = secs if best is None else min(best, secs)
    return best


def latency(prefix, dsn, shop, n, rate):
    """Produce to result read, one command at a time. librdkafka 2.0.2's mock broker
    holds every fetch for fetch.wait.max.ms even when data is there, where a real broker
    answers at once: both readers (b2bd's and ours) ask for 1 ms, so that the figure is
    b2bd's and not the mock's (up to 10 ms per reader with the tests' setting)."""
    d = harness.Daemon(prefix, dsn, extra_env={"B2BD_KAFKA__FETCH_WAIT_MAX_MS": "1"}).start()
    bus = harness.Bus(prefix, fetch_wait_ms=1)
    bus.poll("results", 0)
    settle(d)
    before = d.metrics()
    cmds = assigns(shop, 1, n)
    samples = []  # (sent, acked by the broker, result read), time.monotonic()
    for c in cmds:
        t0 = time.monotonic()
        bus.send(c)
        bus.flush(10)
        t1 = time.monotonic()
        bus.wait_result(c["command_id"], timeout=30)
        samples.append((t0, t1, time.monotonic()))
        time.sleep(max(0, 1.0 / rate - (time.monotonic() - t0)))
    # b2bd's own part (a batch: from its messages polled to its COMMIT), from its histogram
    after = d.metrics()
    h = "b2bd_batch_duration_seconds"
    batches = after.get(h + "_count") - before.get(h + "_count")
    latency.batches_within = {
        ms: (after.get(h + "_bucket", le=le) - before.get(h + "_bucket", le=le)) / max(batches, 1)
        for ms, le in ((5, "0.005"), (10, "0.01"))}
    d.stop()
    bus.close()
    if os.environ.get("B2BD_BENCH_TRACE"):  # for a stage breakdown against the daemon's log
        with open(os.environ["B2BD_BENCH_TRACE"], "w") as f:
            json.dump({"samples": samples, "daemon_log": d.log_path}, f)
    lat = sorted((s[2] - s[0]) * 1000 for s in samples)
    ack = sorted((s[1] - s[0]) * 1000 for s in samples)
    latency.acked_p50 = ack[len(ack) // 2]
    latency.p90 = lat[min(len(lat) - 1, int(len(lat) * 0.9))]
    latency.samples = len(lat)
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]


def emails(prefix, dsn, shop, n):
    """Emails per second to the local SMTP server: n assigns with notify, from the first
    produce to the last notification marked sent."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO shops (shop_id, name, from_email) VALUES (%s, 'Bench', 'b@example.com')", (shop,))
    d = harness.Daemon(prefix, dsn).start()
    settle(d)
    cmds = assigns(shop, 1, n)
    for c in cmds:
        c["payload"]["notify"] = True
    bus = harness.Bus(prefix)
    t0 = time.monotonic()
    for c in cmds:
        bus.send(c)
    bus.flush(60)
    deadline = time.monotonic() + 300
    while True:
        sent = harness.db_query(dsn, "SELECT count(*) FROM notifications WHERE status = 'sent'")[0][0]
        if sent >= n or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    secs = time.monotonic() - t0
    d.stop()
    bus.close()
    return sent / secs


WORKLOADS = ("batched", "new", "import", "revoke", "suspend", "unbatched", "latency", "emails", "big", "lanes")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=",".join(WORKLOADS),
                    help="comma-separated workloads to run (default: all): " + ",".join(WORKLOADS)
                    + "; the COPY floor is measured with batched, new, import or revoke")
    a = ap.parse_args()
    only = set(a.only.split(","))
    if only - set(WORKLOADS):
        ap.error("unknown workload(s): %s" % ",".join(sorted(only - set(WORKLOADS))))
    n = 2000 if a.quick else 10000
    big_companies, big_per = (10, 500) if a.quick else (10, 10000)
    r = {"commands": n}
    rows = []

    if only & {"batched", "new", "import", "revoke"}:
        prefix, _, dsn, shop = world(1, n)
        if "batched" in only:
            secs, hwm = run_stream(prefix, dsn, assigns(shop, 1, n), {})
            r["batched_seconds"], r["batched_per_s"] = secs, n / secs
        r["copy_seconds"] = copy_floor(dsn, n)
        r["copy_per_s"] = n / r["copy_seconds"]

    # the path users take: assigns that create their customers, and b2bctl import
    if "new" in only:
        prefix, _, dsn, shop = world_empty(1, 2)
        secs, _ = run_stream(prefix, dsn, new_assigns(shop, 1, n, 2), {})
        r["new_1_seconds"], r["new_1_per_s"] = secs, n / secs
        prefix, _, dsn, shop = world_empty(10, 2)
        secs, _ = run_stream(prefix, dsn, new_assigns(shop, 10, n // 10, 2), {})
        r["new_10_seconds"], r["new_10_per_s"] = secs, n / secs
        r["new_10_parallel_batches"] = run_stream.metrics.total("b2bd_apply_parallel_batches_total")
        r["new_10_batches"] = run_stream.metrics.total("b2bd_batch_size_messages_count")
    if "import" in only:
        with tempfile.TemporaryDirectory(prefix="b2bd-bench.") as tmp:
            prefix, _, dsn, shop = world_empty(1, 2)
            dry, secs, dry_batches, before_real = ctl_import(prefix, dsn, shop, n, tmp)
        r["import_seconds"], r["import_per_s"] = secs, n / secs
        r["import_dry_run_seconds"], r["import_dry_run_per_s"] = dry, n / dry
        # b2bd's batches (apply and COMMIT) against the rest: b2bctl, Kafka, the relay
        r["import_apply_seconds"] = run_stream.metrics.total("b2bd_batch_duration_seconds_sum") - before_real
        r["import_dry_run_apply_seconds"] = dry_batches
    if "revoke" in only:
        prefix, _, dsn, shop = world_empty(1, 1)
        m = n // 2
        secs = revokes(prefix, dsn, shop, m)
        r["revokes"], r["revoke_seconds"], r["revoke_per_s"] = m, secs, m / secs

    if "suspend" in only:
        # a company of 10,000 contacts (also with --quick: the contract's size)
        prefix, _, dsn, shop = world_empty(1, 2)
        r["suspend_contacts"] = 10000
        r["suspend_seconds"], r["resume_seconds"] = suspension(prefix, dsn, shop, r["suspend_contacts"])
        r["suspend_floor_seconds"] = suspension_floor(dsn, r["suspend_contacts"])
        r["suspend_fraction_of_floor"] = r["suspend_floor_seconds"] / r["suspend_seconds"]
        r["resume_fraction_of_floor"] = r["suspend_floor_seconds"] / r["resume_seconds"]

    if "unbatched" in only:
        prefix, _, dsn, shop = world(1, n)
        secs, _ = run_stream(prefix, dsn, assigns(shop, 1, n), {"B2BD_BATCH_MAX": "1"})
        r["unbatched_seconds"], r["unbatched_per_s"] = secs, n / secs

    if "latency" in only:
        # 1,000 samples (50 s): the p99 is the 10th slowest, not the 2nd of 200
        prefix, _, dsn, shop = world(1, 1000)
        r["latency_p50_ms"], r["latency_p99_ms"] = latency(prefix, dsn, shop, 100 if a.quick else 1000, 20)
        r["latency_p90_ms"], r["latency_samples"] = latency.p90, latency.samples
        r["latency_command_acked_p50_ms"] = latency.acked_p50
        r["latency_batches_within_5ms"] = latency.batches_within[5]
        r["latency_batches_within_10ms"] = latency.batches_within[10]

    if "emails" in only:
        prefix, _, dsn, shop = world(1, 500)
        r["emails_per_s"] = emails(prefix, dsn, shop, 500)

    if "lanes" in only:
        ln = 5000 if a.quick else 50000
        with tempfile.TemporaryDirectory(prefix="b2bd-bench.") as tmp:
            alone, loaded, lat = lanes(ln, 10, tmp, pairs=1 if a.quick else 4)
        r["lanes_pairs"] = len(alone)
        r["lanes_import_rows"] = ln
        r["lanes_import_alone_runs_seconds"], r["lanes_import_loaded_runs_seconds"] = alone, loaded
        # the median run of each kind; the ratio of the total times over all pairs
        r["lanes_import_alone_seconds"] = sorted(alone)[len(alone) // 2]
        r["lanes_import_loaded_seconds"] = sorted(loaded)[len(loaded) // 2]
        r["lanes_import_speed_ratio"] = sum(alone) / sum(loaded)
        r["lanes_interactive_samples"] = len(lat)
        if lat:
            # sent to seen by the admin (lanes_interactive_*), and sent to applied (its commit)
            for key, ms in (("lanes_interactive", lat), ("lanes_interactive_applied", lanes.applied)):
                r[key + "_p50_ms"] = ms[len(ms) // 2]
                r[key + "_p99_ms"] = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
                r[key + "_max_ms"] = ms[-1]

    if "big" in only:
        prefix, _, dsn, shop = world(big_companies, big_per)
        secs, hwm = run_stream(prefix, dsn, assigns(shop, big_companies, big_per), {})
        r["big_commands"] = big_companies * big_per
        r["big_seconds"], r["big_per_s"] = secs, r["big_commands"] / secs
        r["peak_rss_mib"] = hwm / 1024.0

    if "batched" in only and "unbatched" in only:
        r["batched_vs_unbatched"] = r["batched_per_s"] / r["unbatched_per_s"]
    if "batched" in only:
        r["fraction_of_copy"] = r["batched_per_s"] / r["copy_per_s"]
    for k in ("new_1", "new_10", "import", "revoke"):
        if k + "_per_s" in r:
            r[k + "_fraction_of_copy"] = r[k + "_per_s"] / r["copy_per_s"]
    if "batched" in only:
        rows.append(("assign, batching on", "%.0f commands/s" % r["batched_per_s"],
                     "%.2f s for %d" % (r["batched_seconds"], n)))
    if "unbatched" in only:
        rows.append(("assign, batching off", "%.0f commands/s" % r["unbatched_per_s"],
                     "%.2f s for %d" % (r["unbatched_seconds"], n)))
    if "batched_vs_unbatched" in r:
        rows.append(("batching speed-up", "%.1fx" % r["batched_vs_unbatched"], ""))
    if "copy_per_s" in r:
        rows.append(("COPY floor (customer, contact, role, inbox, 2 outbox, history)", "%.0f rows/s" % r["copy_per_s"],
                     "best of 3, %.3f s for %d" % (r["copy_seconds"], n)))
    if "batched" in only:
        rows.append(("existing customers, fraction of COPY", "%.1f%%" % (100 * r["fraction_of_copy"]), "target 30%"))
    if "new" in only:
        rows.append(("new customers by email, 1 company", "%.0f commands/s" % r["new_1_per_s"],
                     "%.1f%% of COPY (target 25%%)" % (100 * r["new_1_fraction_of_copy"])))
        rows.append(("new customers, 10 companies x 2 locations", "%.0f commands/s" % r["new_10_per_s"],
                     "%.1f%% of COPY; %d of %d batches on both workers" % (
                         100 * r["new_10_fraction_of_copy"], r["new_10_parallel_batches"], r["new_10_batches"])))
    if "import" in only:
        rows.append(("b2bctl import, %d-row CSV of new customers" % n, "%.0f rows/s" % r["import_per_s"],
                     "%.2f s end to end (%.2f s in b2bd's batches), %.1f%% of COPY (target 25%%)" % (
                         r["import_seconds"], r["import_apply_seconds"], 100 * r["import_fraction_of_copy"])))
        rows.append(("b2bctl import --dry-run of it, just before", "%.0f rows/s" % r["import_dry_run_per_s"],
                     "%.2f s end to end (%.2f s in b2bd's batches), %.2fx the import's time (target <= 1)" % (
                         r["import_dry_run_seconds"], r["import_dry_run_apply_seconds"],
                         r["import_dry_run_seconds"] / r["import_seconds"])))
    if "revoke" in only:
        rows.append(("revokes (one location's contacts)", "%.0f commands/s" % r["revoke_per_s"],
                     "%.2f s for %d, %.1f%% of COPY" % (r["revoke_seconds"], r["revokes"],
                                                       100 * r["revoke_fraction_of_copy"])))
    if "suspend" in only:
        rows.append(("COPY floor of a suspension (%d access events + history)" % r["suspend_contacts"],
                     "%.3f s" % r["suspend_floor_seconds"], "best of 3"))
        rows.append(("suspend a company of %d contacts (one command)" % r["suspend_contacts"],
                     "%.3f s" % r["suspend_seconds"],
                     "%.1f%% of its COPY floor (target 25%%)" % (100 * r["suspend_fraction_of_floor"])))
        rows.append(("resume it (one command)", "%.3f s" % r["resume_seconds"],
                     "%.1f%% of its COPY floor (target 25%%)" % (100 * r["resume_fraction_of_floor"])))
    if "emails" in only:
        rows.append(("emails (assign + notify, 4 workers)", "%.0f emails/s" % r["emails_per_s"],
                     "to the local SMTP server"))
    if "latency" in only:
        rows.append(("latency at 20 commands/s (%d)" % r["latency_samples"],
                     "p50 %.1f, p90 %.1f, p99 %.1f ms" % (r["latency_p50_ms"], r["latency_p90_ms"],
                                                          r["latency_p99_ms"]),
                     "of which the command's produce: p50 %.1f ms" % r["latency_command_acked_p50_ms"]))
        rows.append(("  b2bd's part: batches (poll to COMMIT) within", "%.1f%% <= 5 ms, %.1f%% <= 10 ms" % (
            100 * r["latency_batches_within_5ms"], 100 * r["latency_batches_within_10ms"]),
            "b2bd_batch_duration_seconds"))
    if "lanes" in only:
        runs = lambda k: ", ".join("%.1f" % x for x in r[k])  # noqa: E731
        rows.append(("b2bctl import of %d (bulk lane), alone (median of %d)" % (r["lanes_import_rows"],
                                                                             r["lanes_pairs"]),
                     "%.0f rows/s" % (r["lanes_import_rows"] / r["lanes_import_alone_seconds"]),
                     "%.2f s end to end (runs: %s s)" % (r["lanes_import_alone_seconds"],
                                                         runs("lanes_import_alone_runs_seconds"))))
        rows.append(("  the same, with another shop's assigns at 10/s",
                     "%.0f rows/s" % (r["lanes_import_rows"] / r["lanes_import_loaded_seconds"]),
                     "%.2f s (runs: %s s); all runs: %.1f%% of the speed alone (target 90%%)" % (
                         r["lanes_import_loaded_seconds"], runs("lanes_import_loaded_runs_seconds"),
                         100 * r["lanes_import_speed_ratio"])))
        if r["lanes_interactive_samples"]:
            rows.append(("  those assigns during the imports (%d), sent to applied" % r["lanes_interactive_samples"],
                         "p50 %.1f, p99 %.1f, max %.1f ms" % (r["lanes_interactive_applied_p50_ms"],
                                                              r["lanes_interactive_applied_p99_ms"],
                                                              r["lanes_interactive_applied_max_ms"]),
                         "to their commit (its timestamp); target p99 < 100 ms"))
            rows.append(("    the same, sent to seen by the admin",
                         "p50 %.1f, p99 %.1f, max %.1f ms" % (r["lanes_interactive_p50_ms"],
                                                              r["lanes_interactive_p99_ms"],
                                                              r["lanes_interactive_max_ms"]),
                         "its wake-up at b2bd's NOTIFY, then a query"))
    if "big" in only:
        rows.append(("peak RSS, %d commands" % r["big_commands"], "%.1f MiB" % r["peak_rss_mib"],
                     "%.0f commands/s" % r["big_per_s"]))
    w = max(len(x[0]) for x in rows)
    print("\nb2bd benchmark (%s)" % time.strftime("%Y-%m-%d %H:%M"))
    for name, val, note in rows:
        print("  %-*s  %-28s %s" % (w, name, val, note))
    r["when"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    with open(a.out, "w") as f:
        json.dump(r, f, indent=2)
    print("figures written to %s" % a.out)


if __name__ == "__main__":
    main()
