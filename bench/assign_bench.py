#!/usr/bin/python3
"""Measures b2bd against the local environment (see bench/run.sh): throughput of 10,000
assign commands with batching on and off, the COPY floor, light-load latency, and peak
memory over 100,000 commands. Prints a table and writes the figures as JSON."""
import argparse
import io
import json
import os
import statistics
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402
import psycopg2  # noqa: E402


def world(n_companies, customers_per_company):
    """A fresh prefix and database with companies of one location each and their
    customers (not yet contacts), written straight into PostgreSQL."""
    prefix = harness.unique_name("b") + "."
    harness.create_topics(prefix)
    name, dsn = harness.create_database()
    # the schema comes from b2bd's own migrations: start and stop a daemon once
    d = harness.Daemon(prefix, dsn, extra_env={"B2BD_ROLE": "worker"}).start()
    d.stop()
    shop = "bench"
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
    d.stop()
    bus.close()
    if applied < len(cmds):
        raise SystemExit("only %d of %d applied" % (applied, len(cmds)))
    return t1 - t0, hwm


def copy_floor(dsn, shop, n):
    """The same contacts and roles written with COPY: the floor no command processor beats."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO companies (shop_id, company_id, name) VALUES (%s, 'c-copy', 'Copy')", (shop,))
        cur.execute("INSERT INTO locations (shop_id, location_id, company_id, name) VALUES (%s, 'l-copy', 'c-copy', 'L')",
                    (shop,))
        conn.commit()
        contacts, roles = io.StringIO(), io.StringIO()
        for i in range(n):
            contacts.write("%s\tc-copy\tu-0-%d\n" % (shop, i))
            roles.write("%s\tc-copy\tl-copy\tu-0-%d\tordering_only\n" % (shop, i))
        contacts.seek(0)
        roles.seek(0)
        t0 = time.monotonic()
        cur.copy_expert("COPY contacts (shop_id, company_id, customer_id) FROM STDIN", contacts)
        cur.copy_expert("COPY roles (shop_id, company_id, location_id, customer_id, role) FROM STDIN", roles)
        conn.commit()
        return time.monotonic() - t0


def latency(prefix, dsn, shop, n, rate):
    """Produce to result read, one command at a time. librdkafka 2.0.2's mock broker
    holds every fetch for fetch.wait.max.ms even when data is there, where a real broker
    answers at once: both readers (b2bd's and ours) ask for 1 ms, so that the figure is
    b2bd's and not the mock's (up to 10 ms per reader with the tests' setting)."""
    d = harness.Daemon(prefix, dsn, extra_env={"B2BD_KAFKA__FETCH_WAIT_MAX_MS": "1"}).start()
    bus = harness.Bus(prefix, fetch_wait_ms=1)
    bus.poll("results", 0)
    settle(d)
    cmds = assigns(shop, 1, n)
    lat = []
    for c in cmds:
        t0 = time.monotonic()
        bus.send(c)
        bus.flush(10)
        bus.wait_result(c["command_id"], timeout=30)
        lat.append((time.monotonic() - t0) * 1000)
        time.sleep(max(0, 1.0 / rate - (time.monotonic() - t0)))
    d.stop()
    bus.close()
    lat.sort()
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    n = 2000 if a.quick else 10000
    big_companies, big_per = (10, 500) if a.quick else (10, 10000)
    r = {"commands": n}

    prefix, _, dsn, shop = world(1, n)
    secs, hwm = run_stream(prefix, dsn, assigns(shop, 1, n), {})
    r["batched_seconds"], r["batched_per_s"] = secs, n / secs
    r["copy_seconds"] = copy_floor(dsn, shop, n)
    r["copy_per_s"] = n / r["copy_seconds"]

    prefix, _, dsn, shop = world(1, n)
    secs, _ = run_stream(prefix, dsn, assigns(shop, 1, n), {"B2BD_BATCH_MAX": "1"})
    r["unbatched_seconds"], r["unbatched_per_s"] = secs, n / secs

    prefix, _, dsn, shop = world(1, 200)
    r["latency_p50_ms"], r["latency_p99_ms"] = latency(prefix, dsn, shop, 100 if a.quick else 200, 20)

    prefix, _, dsn, shop = world(1, 500)
    r["emails_per_s"] = emails(prefix, dsn, shop, 500)

    prefix, _, dsn, shop = world(big_companies, big_per)
    secs, hwm = run_stream(prefix, dsn, assigns(shop, big_companies, big_per), {})
    r["big_commands"] = big_companies * big_per
    r["big_seconds"], r["big_per_s"] = secs, r["big_commands"] / secs
    r["peak_rss_mib"] = hwm / 1024.0

    r["batched_vs_unbatched"] = r["batched_per_s"] / r["unbatched_per_s"]
    r["fraction_of_copy"] = r["batched_per_s"] / r["copy_per_s"]
    rows = [
        ("assign, batching on", "%.0f commands/s" % r["batched_per_s"], "%.2f s for %d" % (r["batched_seconds"], n)),
        ("assign, batching off", "%.0f commands/s" % r["unbatched_per_s"], "%.2f s for %d" % (r["unbatched_seconds"], n)),
        ("batching speed-up", "%.1fx" % r["batched_vs_unbatched"], ""),
        ("COPY floor (contacts+roles)", "%.0f rows/s" % r["copy_per_s"], "%.3f s for %d" % (r["copy_seconds"], n)),
        ("b2bd as a fraction of COPY", "%.1f%%" % (100 * r["fraction_of_copy"]), ""),
        ("emails (assign + notify, 4 workers)", "%.0f emails/s" % r["emails_per_s"], "to the local SMTP server"),
        ("latency at 20 commands/s", "p50 %.1f ms, p99 %.1f ms" % (r["latency_p50_ms"], r["latency_p99_ms"]), ""),
        ("peak RSS, %d commands" % r["big_commands"], "%.1f MiB" % r["peak_rss_mib"],
         "%.0f commands/s" % r["big_per_s"]),
    ]
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
