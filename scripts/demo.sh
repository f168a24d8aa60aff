#!/usr/bin/env bash
# The demo: installs what is missing, builds, starts a throwaway local environment
# (PostgreSQL, the Kafka mock cluster, an SMTP server) and b2bd, sends a shop, a company
# with three locations and 300 customers (demo/customers.csv) through it, then a 5,000-row
# import on the bulk lane with an admin's command beside it, prints what happened, and
# shuts everything down.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=$root/build
envdir=$build/demo-env
work=$build/demo

bash scripts/deps.sh
cmake -S . -B "$build" >/dev/null
cmake --build "$build" -j2 --target b2bd b2bctl b2b-kafka-mock >/dev/null
echo "demo: built b2bd and b2bctl in build/"

daemon_pid=
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid"
        for _ in $(seq 1 100); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
    fi
    bash scripts/localenv.sh stop "$envdir" "$build" >/dev/null 2>&1 || true
}
trap cleanup EXIT

bash scripts/localenv.sh start "$envdir" "$build"
# shellcheck disable=SC1091
source "$envdir/env.sh"
export B2BD_KAFKA__SESSION_TIMEOUT_MS=6000
# the mock broker holds each fetch for fetch.wait.max.ms even when data is there
export B2BD_KAFKA__FETCH_WAIT_MAX_MS=10
rm -rf "$work" && mkdir -p "$work"

"$build/b2bd" > "$work/b2bd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 300); do grep -q 'event=ready' "$work/b2bd.log" && break; sleep 0.1; done
grep -q 'event=ready' "$work/b2bd.log" || { cat "$work/b2bd.log"; echo "demo: b2bd did not start"; exit 1; }
echo "demo: b2bd is running (pid $daemon_pid, log $work/b2bd.log)"

/usr/bin/python3 demo/make_commands.py demo/customers.csv "$work"
echo; echo "== 1. sync: the shop, its company and locations, 200 customer profiles"
"$build/b2bctl" send --wait --timeout 60 "$work/sync.jsonl"
echo; echo "== 2. assign: 300 customers to the company (100 of them new, found by email)"
start=$(date +%s%N)
"$build/b2bctl" send --wait --timeout 60 "$work/assign.jsonl"
end=$(date +%s%N)
echo "demo: 300 assign commands applied in $(( (end - start) / 1000000 )) ms (first produce to last result)"
echo; echo "== 3. the same import again: nothing changes, every command gets its stored result"
"$build/b2bctl" send --wait --timeout 60 "$work/assign.jsonl"

echo; echo "== 4. access events published (b2b.events.access), the first three:"
"$build/b2bctl" tail --timeout 2 events.access > "$work/access.jsonl"
head -3 "$work/access.jsonl"
echo "demo: $(wc -l < "$work/access.jsonl") access events in all"
echo; echo "== 5. a customer's access, from the database (b2bctl access):"
"$build/b2bctl" access nordic-tools cust-000
"$build/b2bctl" access nordic-tools buyer250@nordic-tools.example
echo; echo "== 6. the B2B access email, sent to the 10 customers imported with notify=true:"
for _ in $(seq 1 100); do
    [ "$(ls "$SMTP_DIR/new" 2>/dev/null | wc -l)" -ge 10 ] && break; sleep 0.2
done
echo "demo: $(ls "$SMTP_DIR/new" 2>/dev/null | wc -l) emails received by the local SMTP server ($SMTP_DIR/new); the first:"
first=$(ls "$SMTP_DIR/new" | head -1)
/usr/bin/python3 - "$SMTP_DIR/new/$first" <<'PY'
import email, email.policy, sys
m = email.message_from_bytes(open(sys.argv[1], "rb").read(), policy=email.policy.default)
for h in ("From", "To", "Subject", "Message-ID"):
    print("  %s: %s" % (h, m[h]))
print("  " + m.get_body(("plain",)).get_content().replace("\r\n", "\n").strip().replace("\n", "\n  "))
PY
echo; echo "== 7. two lanes: a 5,000-row import (b2bctl import, to commands.bulk) and, meanwhile,"
echo "   one command of the shop's admin on the assign topic"
/usr/bin/python3 - "$work/big-import.csv" <<'PY'
import sys
with open(sys.argv[1], "w", encoding="utf-8") as f:
    f.write("email,first_name,location_id\n")
    for i in range(5000):
        f.write("bulk%05d@nordic-tools.example,Bulk %d,loc-%s\n" % (i, i, ("oslo", "bergen", "trondheim")[i % 3]))
PY
printf '%s\n' '{"command_id":"5b2b0d00-0000-4000-8000-00000000ad01","type":"assign","shop_id":"nordic-tools","actor":"staff:admin","payload":{"company_id":"c-nordic-build","customer":{"id":"cust-001"},"locations":[{"location_id":"loc-bergen","role":"location_admin"}]}}' > "$work/admin.jsonl"
start=$(date +%s%N)
"$build/b2bctl" import --shop nordic-tools --company c-nordic-build --wait-timeout 120 \
    "$work/big-import.csv" > "$work/big-import.out" 2>&1 &
import_pid=$!
for _ in $(seq 1 100); do  # until the import is under way
    n=$(psql "$B2BD_PG_DSN" -X -A -t -c "SELECT count(*) FROM customers WHERE email LIKE 'bulk%'")
    [ "$n" -gt 0 ] && break; sleep 0.05
done
a0=$(date +%s%N)
"$build/b2bctl" send --wait --timeout 60 "$work/admin.jsonl"
a1=$(date +%s%N)
n=$(psql "$B2BD_PG_DSN" -X -A -t -c "SELECT count(*) FROM customers WHERE email LIKE 'bulk%'")
echo "demo: the admin's command applied in $(( (a1 - a0) / 1000000 )) ms, with $n of the 5,000 import rows applied"
wait "$import_pid" || { cat "$work/big-import.out"; echo "demo: the import failed"; exit 1; }
end=$(date +%s%N)
tail -n 4 "$work/big-import.out" | sed 's/^/  /'
echo "demo: the import took $(( (end - start) / 1000000 )) ms (b2bctl start to exit)"

echo; echo "== 8. contacts per location:"
psql "$B2BD_PG_DSN" -X -A -F ' ' -t -c \
  "SELECT l.name, r.role, count(*) FROM roles r JOIN locations l USING (shop_id, location_id)
    GROUP BY 1, 2 ORDER BY 1, 2" | sed 's/^/  /'

kill -TERM "$daemon_pid"
wait "$daemon_pid" && echo && echo "demo: b2bd stopped cleanly (exit 0)"
daemon_pid=
grep -E 'event=(progress|stopping)' "$work/b2bd.log" | tail -2
