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
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case "${1:-}" in
start)
  bin=$(bindir)
  dir=$(mktemp -d /tmp/leadwatch-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
  port=$(free_port)
  as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on" start >/dev/null ||
    { cat "$dir/server.log" >&2; exit 1; }
  echo "export PGTEST_DIR=$dir"
  echo "export LEADWATCH_TEST_POSTGRES=postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
  ;;
stop)
  dir=${2:?usage: pgtest.sh stop DIR}
  bin=$(bindir)
  as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: pgtest.sh start | stop DIR" >&2
  exit 2
  ;;
esac
