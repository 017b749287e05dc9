#!/usr/bin/env bash
# perf-listener-pg.sh: the listener on PostgreSQL against the listener on
# SQLite (issue #10). Builds leadwatch and cbload, creates a scratch
# database on the server of $LEADWATCH_TEST_POSTGRES (e.g. from
# tools/pgtest.sh), starts one `leadwatch serve` on a fresh SQLite store
# and two on that PostgreSQL database, then per round loads, with the same
# cbload (unpaced, keep-alive connections on this box):
#   sqlite   the SQLite serve
#   pg x1    one PostgreSQL serve
#   pg x2    both PostgreSQL serves, the connections split between them
# and prints each rate and p99 and the ratios to SQLite. Budget: pg x1 >=
# 0.60 of sqlite.
#
#   LEADWATCH_TEST_POSTGRES=postgres://… tools/perf-listener-pg.sh [rounds=3] [seconds=10] [workers=32]
#
# The stores start empty, so every callback is stored unlinked. With
# FILL=N both are first filled with N leads (tools/fillstore, no
# callbacks) and cbload names those leads' CRM ids (crm-1 … crm-N), so
# most callbacks link to a lead and set its CRM status, as in a campaign.
#
# Everything listens on loopback; the servers are stopped and the scratch
# database dropped on exit. The DSN's password, if any, is never printed.
set -euo pipefail

rounds=${1:-3}
secs=${2:-10}
workers=${3:-32}
if [[ -z ${LEADWATCH_TEST_POSTGRES:-} ]]; then
	echo "set LEADWATCH_TEST_POSTGRES to a PostgreSQL URL whose user may CREATE DATABASE (tools/pgtest.sh start prints one)" >&2
	exit 2
fi
command -v psql >/dev/null || {
	echo "psql is needed to create and drop the scratch database (apt-get install postgresql-client)" >&2
	exit 2
}

dir=$(mktemp -d)
pids=()
dbname=lw_perf_$$_$RANDOM
created=
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [[ -n $created ]]; then
		psql -q -X "$LEADWATCH_TEST_POSTGRES" -c "DROP DATABASE IF EXISTS $dbname WITH (FORCE)" >/dev/null ||
			echo "could not drop the scratch database $dbname: drop it by hand" >&2
	fi
	rm -rf "$dir"
}
trap cleanup EXIT

cd "$(dirname "$0")/.."
go build -o "$dir/leadwatch" .
go build -o "$dir/cbload" ./tools/cbload
fill=${FILL:-0}
[[ $fill =~ ^[0-9]+$ ]] || { echo "FILL must be a number of leads" >&2; exit 2; }
if ((fill > 0)); then go build -o "$dir/fillstore" ./tools/fillstore; fi

# The scratch database's URL: the given one with its path replaced.
pgurl=$(python3 - "$LEADWATCH_TEST_POSTGRES" "$dbname" <<'EOF'
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))
EOF
)
psql -q -X "$LEADWATCH_TEST_POSTGRES" -c "CREATE DATABASE $dbname" >/dev/null
created=1
if ((fill > 0)); then
	"$dir/fillstore" -db "$dir/perf.db" -leads "$fill" -callbacks 0 >/dev/null
	"$dir/fillstore" -db "$pgurl" -leads "$fill" -callbacks 0 >/dev/null
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sqlite_port=$(free_port)
pg1_port=$(free_port)
pg2_port=$(free_port)
crm_port=$(free_port) # nothing listens: the senders idle, there are no leads

export CALLBACK_SECRET=perf-callback-secret
# One attempt a second at most: a filled store has a backlog of queued
# leads, whose sending (to nothing) must not compete with the listener.
printf '[crm]\nrate_limit = 1\n' >"$dir/perf.toml"
serve() { # serve PORT DB LOG (the store by environment, not argv, where ps would show a password)
	CARTELCRM_BASE_URL=http://127.0.0.1:$crm_port CARTELCRM_API_KEY=perf CARTELCRM_HMAC_SECRET=perf \
		LEADWATCH_LISTEN=127.0.0.1:$1 LEADWATCH_DB=$2 \
		"$dir/leadwatch" serve --config "$dir/perf.toml" --log-level warn 2>"$dir/$3.log" &
	pids+=($!)
}
wait_up() {
	for _ in $(seq 100); do
		if curl -s -o /dev/null "http://127.0.0.1:$1/"; then return 0; fi
		sleep 0.1
	done
	echo "nothing listens on port $1" >&2
	cat "$dir"/*.log >&2
	exit 1
}
serve "$sqlite_port" "$dir/perf.db" sqlite
serve "$pg1_port" "$pgurl" pg1
wait_up "$pg1_port" # the first migrates; the second then finds the schema current
serve "$pg2_port" "$pgurl" pg2
wait_up "$sqlite_port"
wait_up "$pg2_port"

cb() { echo "http://127.0.0.1:$1/cartelcrm/callback"; }
leads=$((fill > 0 ? fill : 1000000))
load() { "$dir/cbload" -url "$1" -rate 0 -duration "${secs}s" -workers "$workers" -leads "$leads"; }
rate() { sed -n 's/.*(\([0-9]*\)\/s).*/\1/p' <<<"$1"; }
p99() { sed -n 's/.*p99=\([^ ]*\).*/\1/p' <<<"$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
clean() { grep -q 'non2xx=0 errors=0' <<<"$2" || echo "$1: $2" >&2; }

echo "c=$workers, ${secs}s per load, $(nproc) CPUs, load tool on the same box, stores filled with $fill leads"
for r in $(seq "$rounds"); do
	sq=$(load "$(cb "$sqlite_port")")
	one=$(load "$(cb "$pg1_port")")
	two=$(load "$(cb "$pg1_port"),$(cb "$pg2_port")")
	clean sqlite "$sq"
	clean "pg x1" "$one"
	clean "pg x2" "$two"
	s=$(rate "$sq")
	o=$(rate "$one")
	t=$(rate "$two")
	printf 'round %d: sqlite %s/s (p99 %s), pg x1 %s/s (p99 %s), pg x2 %s/s (p99 %s, %s); pg x1/sqlite %s, pg x2/sqlite %s\n' \
		"$r" "$s" "$(p99 "$sq")" "$o" "$(p99 "$one")" "$t" "$(p99 "$two")" \
		"$(sed -n 's/^per target: /split /p' <<<"$two")" "$(ratio "$o" "$s")" "$(ratio "$t" "$s")"
done
stored=$(psql -X -At "$pgurl" -c "SELECT count(*) FROM callbacks")
echo "the PostgreSQL database holds $stored callbacks"
((stored > 0)) || {
	echo "nothing was stored on PostgreSQL; the instances' logs:" >&2
	cat "$dir"/pg*.log >&2
	exit 1
}
