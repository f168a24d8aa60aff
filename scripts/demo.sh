#!/usr/bin/env bash
# The demo: installs what is missing, builds, starts a throwaway local environment
# (PostgreSQL, the Kafka mock cluster, an SMTP server) and b2bd, sends a shop, a company
# with three locations and 300 customers (demo/customers.csv) through it, prints what
# happened, and shuts everything down.
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
echo; echo "== 7. contacts per location:"
psql "$B2BD_PG_DSN" -X -A -F ' ' -t -c \
  "SELECT l.name, r.role, count(*) FROM roles r JOIN locations l USING (shop_id, location_id)
    GROUP BY 1, 2 ORDER BY 1, 2" | sed 's/^/  /'

kill -TERM "$daemon_pid"
wait "$daemon_pid" && echo && echo "demo: b2bd stopped cleanly (exit 0)"
daemon_pid=
grep -E 'event=(progress|stopping)' "$work/b2bd.log" | tail -2
