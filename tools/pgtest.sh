#!/usr/bin/env bash
# pgtest.sh starts or stops a throwaway PostgreSQL cluster for the tests:
# initdb into a new temporary directory (trust auth, 127.0.0.1 only, a
# free port), run as the postgres user when started as root (initdb
# refuses root).
#
#   eval "$(tools/pgtest.sh start)"   # exports LEADWATCH_TEST_POSTGRES and PGTEST_DIR
#   go test ./...
#   tools/pgtest.sh stop "$PGTEST_DIR"
#
# PGTEST_PASSWORD=pw tools/pgtest.sh start makes a cluster whose TCP
# connections need that password (scram-sha-256) for the postgres user;
# the printed URL does not carry it. The tests of a stopped server use
#   tools/pgtest.sh kill DIR     # pg_ctl stop -m immediate, the data kept
#   tools/pgtest.sh resume DIR   # start it again on the same port
#
# It needs PostgreSQL's server binaries (Debian: apt-get install postgresql,
# which puts them in /usr/lib/postgresql/<version>/bin).
set -euo pipefail

bindir() {
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1; then
    dirname "$(command -v postgres)"
    return
  fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
    echo "pgtest: no PostgreSQL server binaries (install the postgresql package)" >&2
    exit 1
  fi
  echo "$d"
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    return
  fi
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  echo "pgtest: no free port found" >&2
  exit 1
}

# start_server BIN DIR PORT starts the cluster in DIR/data on PORT.
start_server() {
  as_owner "$1/pg_ctl" -D "$2/data" -l "$2/server.log" -w \
    -o "-p $3 -k $2 -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on" start >/dev/null ||
    { cat "$2/server.log" >&2; exit 1; }
}

case "${1:-}" in
start)
  bin=$(bindir)
  dir=$(mktemp -d /tmp/leadwatch-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
  port=$(free_port)
  echo "$port" >"$dir/port"
  auth=(-A trust)
  if [ -n "${PGTEST_PASSWORD:-}" ]; then
    (umask 077; printf '%s\n' "$PGTEST_PASSWORD" >"$dir/pwfile")
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir/pwfile"; fi
    auth=(--auth-local=trust --auth-host=scram-sha-256 --pwfile="$dir/pwfile")
  fi
  as_owner "$bin/initdb" -D "$dir/data" -U postgres "${auth[@]}" -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  rm -f "$dir/pwfile"
  start_server "$bin" "$dir" "$port"
  echo "export PGTEST_DIR=$dir"
  echo "export LEADWATCH_TEST_POSTGRES=postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
  ;;
stop)
  dir=${2:?usage: pgtest.sh stop DIR}
  bin=$(bindir)
  as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  ;;
kill)
  dir=${2:?usage: pgtest.sh kill DIR}
  as_owner "$(bindir)/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
  ;;
resume)
  dir=${2:?usage: pgtest.sh resume DIR}
  start_server "$(bindir)" "$dir" "$(cat "$dir/port")"
  ;;
*)
  echo "usage: pgtest.sh start | stop DIR | kill DIR | resume DIR" >&2
  exit 2
  ;;
esac
