#!/usr/bin/env bash
# A throwaway local environment for the integration tests and the demo:
# PostgreSQL (Debian's server binaries, a temporary cluster), the Kafka mock
# cluster (BUILD_DIR/b2b-kafka-mock) and a scriptable SMTP server
# (tools/smtp_server.py).
#
#   scripts/localenv.sh start DIR BUILD_DIR   (stops a previous one in DIR first)
#   scripts/localenv.sh stop  DIR [BUILD_DIR]
#
# start writes DIR/env.json and DIR/env.sh (export lines) with
#   B2BD_KAFKA_BOOTSTRAP KAFKA_CONTROL B2BD_PG_DSN PG_ADMIN_DSN PG_PORT PG_BIN
#   PG_DATA PG_SOCKET_DIR SMTP_PORT SMTP_DIR SMTP_CONTROL B2BD_SMTP_URL
# and the services' logs: DIR/postgres.log, DIR/kafka-mock.log, DIR/smtp.log.
#
# The PostgreSQL data and socket directories live in a mktemp -d /tmp/b2bd-pg.XXXXXX
# owned by the postgres user (DIR may sit in a folder that user cannot enter);
# its path is kept in DIR/pg_root. Environment: PG_BIN overrides the server's
# bin directory (default: the newest /usr/lib/postgresql/*/bin);
# B2BD_LOCALENV_DURABLE=1 keeps fsync and synchronous commit on (the benchmark's);
# B2BD_LOCALENV_PG_CONF holds lines added to postgresql.conf (the benchmark's
# track_commit_timestamp).
set -euo pipefail

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3

log() { echo "localenv: $*" >&2; }
fail() { log "error: $*"; exit 1; }

usage() {
  echo "usage: $0 start DIR BUILD_DIR | stop DIR [BUILD_DIR]" >&2
  exit 2
}

abspath() { mkdir -p "$1" && (cd "$1" && pwd); }

# Runs a command as the user owning the PostgreSQL cluster, from /.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

free_port() {
  "$PY" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# pid_alive PID: the process exists and is not a zombie.
pid_alive() {
  local st
  [ -n "$1" ] || return 1
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "${st:0:1}" != "Z" ]
}

# stop_pidfile FILE PATTERN: SIGTERM the recorded process (if its command line
# still contains PATTERN), wait up to 10 s, then SIGKILL.
stop_pidfile() {
  local file=$1 pattern=$2 pid i
  [ -f "$file" ] || return 0
  pid=$(cat "$file" 2>/dev/null || true)
  if [[ "$pid" =~ ^[0-9]+$ ]] && pid_alive "$pid" &&
     tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      pid_alive "$pid" || break
      sleep 0.1
    done
    if pid_alive "$pid"; then
      log "$pattern (pid $pid) did not stop, killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$file"
}

# wait_line FILE PREFIX SECONDS PID: prints the value of the first line of FILE
# starting with PREFIX, waiting at most SECONDS, failing early if PID dies.
wait_line() {
  local file=$1 prefix=$2 secs=$3 pid=$4 i line
  for i in $(seq 1 $((secs * 10))); do
    line=$(grep -m1 "^$prefix" "$file" 2>/dev/null || true)
    if [ -n "$line" ]; then
      echo "${line#"$prefix"}"
      return 0
    fi
    pid_alive "$pid" || return 1
    sleep 0.1
  done
  return 1
}

# stop_private_pg DIR PGBIN: clusters a test started for itself (test_crash.py) and could
# not stop (killed on a timeout); each is named by a file in DIR/private-pg holding its root.
stop_private_pg() {
  local dir=$1 pgbin=$2 f root
  for f in "$dir"/private-pg/*; do
    [ -f "$f" ] || continue
    root=$(cat "$f")
    case "$root" in
      /tmp/b2bd-pgcrash.*)
        if [ -n "$pgbin" ] && [ -f "$root/data/postmaster.pid" ]; then
          as_pg "$pgbin/pg_ctl" -D "$root/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
        fi
        rm -rf "$root" ;;
    esac
    rm -f "$f"
  done
}

do_stop() {
  local dir=$1 root pgbin=""
  [ -d "$dir" ] || return 0
  stop_pidfile "$dir/kafka-mock.pid" b2b-kafka-mock
  stop_pidfile "$dir/smtp.pid" smtp_server.py
  [ -f "$dir/pg_bin" ] && stop_private_pg "$dir" "$(cat "$dir/pg_bin")"
  if [ -f "$dir/pg_root" ]; then
    root=$(cat "$dir/pg_root")
    [ -f "$dir/pg_bin" ] && pgbin=$(cat "$dir/pg_bin")
    if [ -f "$root/data/postmaster.pid" ]; then
      if [ -n "$pgbin" ] && [ -x "$pgbin/pg_ctl" ] &&
         as_pg "$pgbin/pg_ctl" -D "$root/data" -m fast -w -t 30 stop >/dev/null 2>&1; then
        :
      else
        local ppid
        ppid=$(head -1 "$root/data/postmaster.pid" 2>/dev/null || true)
        if [[ "$ppid" =~ ^[0-9]+$ ]] && pid_alive "$ppid"; then
          log "pg_ctl stop failed, killing postmaster $ppid"
          kill -KILL "$ppid" 2>/dev/null || true
          sleep 0.5
        fi
      fi
    fi
    if [ -f "$root/postgres.log" ]; then
      rm -f "$dir/postgres.log"
      cp "$root/postgres.log" "$dir/postgres.log" 2>/dev/null || true
    fi
    case "$root" in
      /tmp/b2bd-pg.*) rm -rf "$root" ;;
      *) log "not removing unexpected PostgreSQL directory $root" ;;
    esac
    rm -f "$dir/pg_root" "$dir/pg_bin"
  fi
  rm -f "$dir/env.json" "$dir/env.sh"
}

find_pg_bin() {
  if [ -n "${PG_BIN:-}" ]; then
    [ -x "$PG_BIN/initdb" ] || fail "PG_BIN=$PG_BIN has no initdb"
    echo "$PG_BIN"
    return
  fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$d" ] && [ -x "$d/initdb" ] || fail "no PostgreSQL server binaries in /usr/lib/postgresql (run scripts/deps.sh)"
  echo "$d"
}

start_pg() {
  local dir=$1 pgbin root port try psql
  pgbin=$(find_pg_bin)
  root=$(mktemp -d /tmp/b2bd-pg.XXXXXX)
  echo "$root" > "$dir/pg_root"
  echo "$pgbin" > "$dir/pg_bin"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || fail "no postgres user (run scripts/deps.sh)"
    chown postgres: "$root"
  fi
  chmod 700 "$root"
  ln -sfn "$root/postgres.log" "$dir/postgres.log"

  as_pg "$pgbin/initdb" -D "$root/data" -U postgres -A trust -E UTF8 --no-locale -N \
    > "$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; fail "initdb failed"; }
  # Tests trade durability for speed; the benchmark (B2BD_LOCALENV_DURABLE=1) does not,
  # so that a commit costs what it costs in production.
  local durable=off
  [ "${B2BD_LOCALENV_DURABLE:-0}" = 1 ] && durable=on
  cat >> "$root/data/postgresql.conf" <<EOF
# b2bd localenv (throwaway cluster)
listen_addresses = '127.0.0.1'
unix_socket_directories = '$root'
fsync = $durable
synchronous_commit = $durable
full_page_writes = $durable
max_connections = 200
shared_buffers = 64MB
log_min_messages = warning
log_line_prefix = '%m [%p] %u@%d '
EOF
  if [ -n "${B2BD_LOCALENV_PG_CONF:-}" ]; then
    printf '%s\n' "$B2BD_LOCALENV_PG_CONF" >> "$root/data/postgresql.conf"
  fi

  for try in 1 2 3 4 5; do
    port=$(free_port)
    if as_pg "$pgbin/pg_ctl" -D "$root/data" -l "$root/postgres.log" -w -t 60 \
         -o "-p $port" start > "$dir/pg_ctl.log" 2>&1; then
      break
    fi
    port=""
    log "PostgreSQL did not start (attempt $try)"
    tail -5 "$root/postgres.log" >&2 2>/dev/null || true
  done
  [ -n "$port" ] || fail "PostgreSQL did not start, see $dir/postgres.log"

  psql=("$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres)
  "${psql[@]}" -c "CREATE ROLE b2bd LOGIN CREATEDB" \
    || fail "could not create role b2bd"
  "${psql[@]}" -c "CREATE DATABASE b2bd OWNER b2bd" \
    || fail "could not create database b2bd"
  PG_BIN_DIR=$pgbin PG_ROOT=$root PG_PORT=$port
}

start_kafka() {
  local dir=$1 build=$2 mock pid
  mock="$build/b2b-kafka-mock"
  [ -x "$mock" ] || fail "$mock not built (cmake --build $build --target b2b-kafka-mock)"
  : > "$dir/kafka-mock.out"
  setsid "$mock" --brokers 3 --partitions 4 --prefix b2b. \
    < /dev/null > "$dir/kafka-mock.out" 2> "$dir/kafka-mock.log" &
  pid=$!
  echo "$pid" > "$dir/kafka-mock.pid"
  KAFKA_BOOTSTRAP=$(wait_line "$dir/kafka-mock.out" bootstrap= 30 "$pid") ||
    { cat "$dir/kafka-mock.log" >&2; fail "the Kafka mock did not start"; }
  KAFKA_CONTROL=$(wait_line "$dir/kafka-mock.out" control= 10 "$pid") ||
    fail "the Kafka mock printed no control address"
}

start_smtp() {
  local dir=$1 pid
  rm -rf "$dir/mail"
  mkdir -p "$dir/mail"
  : > "$dir/smtp.out"
  setsid "$PY" "$SRC_DIR/tools/smtp_server.py" --host 127.0.0.1 --port 0 --dir "$dir/mail" \
    < /dev/null > "$dir/smtp.out" 2> "$dir/smtp.log" &
  pid=$!
  echo "$pid" > "$dir/smtp.pid"
  SMTP_ADDR=$(wait_line "$dir/smtp.out" smtp= 30 "$pid") ||
    { cat "$dir/smtp.log" >&2; fail "the SMTP server did not start"; }
  SMTP_CONTROL=$(wait_line "$dir/smtp.out" control= 10 "$pid") ||
    fail "the SMTP server printed no control address"
}

write_env() {
  local dir=$1
  B2BD_KAFKA_BOOTSTRAP=$KAFKA_BOOTSTRAP \
  KAFKA_CONTROL=$KAFKA_CONTROL \
  B2BD_PG_DSN="host=127.0.0.1 port=$PG_PORT user=b2bd dbname=b2bd" \
  PG_ADMIN_DSN="host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres" \
  PG_PORT=$PG_PORT \
  PG_BIN=$PG_BIN_DIR \
  PG_DATA="$PG_ROOT/data" \
  PG_SOCKET_DIR=$PG_ROOT \
  SMTP_PORT=${SMTP_ADDR##*:} \
  SMTP_DIR="$dir/mail" \
  SMTP_CONTROL=$SMTP_CONTROL \
  B2BD_SMTP_URL="smtp://$SMTP_ADDR" \
  "$PY" - "$dir" <<'EOF'
import json, os, shlex, sys
keys = ["B2BD_KAFKA_BOOTSTRAP", "KAFKA_CONTROL", "B2BD_PG_DSN", "PG_ADMIN_DSN",
        "PG_PORT", "PG_BIN", "PG_DATA", "PG_SOCKET_DIR", "SMTP_PORT", "SMTP_DIR",
        "SMTP_CONTROL", "B2BD_SMTP_URL"]
env = {k: os.environ[k] for k in keys}
d = sys.argv[1]
with open(os.path.join(d, "env.json.tmp"), "w") as f:
    json.dump(env, f, indent=2)
    f.write("\n")
with open(os.path.join(d, "env.sh.tmp"), "w") as f:
    for k in keys:
        f.write("export %s=%s\n" % (k, shlex.quote(env[k])))
os.rename(os.path.join(d, "env.sh.tmp"), os.path.join(d, "env.sh"))
os.rename(os.path.join(d, "env.json.tmp"), os.path.join(d, "env.json"))
EOF
}

do_start() {
  local dir=$1 build=$2
  [ -x "$build/b2b-kafka-mock" ] ||
    fail "$build/b2b-kafka-mock not built (cmake --build $build --target b2b-kafka-mock)"
  do_stop "$dir"
  # On failure, leave nothing running.
  trap 'rc=$?; if [ $rc -ne 0 ]; then log "start failed, stopping"; do_stop "$DIR"; fi' EXIT
  start_pg "$dir"
  start_kafka "$dir" "$build"
  start_smtp "$dir"
  write_env "$dir"
  trap - EXIT
  log "ready: PostgreSQL on 127.0.0.1:$PG_PORT, Kafka $KAFKA_BOOTSTRAP (control $KAFKA_CONTROL)," \
      "SMTP $SMTP_ADDR (control $SMTP_CONTROL); environment in $dir/env.sh"
}

[ $# -ge 2 ] || usage
cmd=$1
case "$cmd" in
  start)
    [ $# -eq 3 ] || usage
    DIR=$(abspath "$2")
    BUILD=$(cd "$3" && pwd) || fail "no build directory $3"
    do_start "$DIR" "$BUILD"
    ;;
  stop)
    [ $# -le 3 ] || usage
    if [ -d "$2" ]; then
      do_stop "$(cd "$2" && pwd)" || true
    fi
    exit 0
    ;;
  *) usage ;;
esac
