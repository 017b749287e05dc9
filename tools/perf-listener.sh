#!/usr/bin/env bash
# perf-listener.sh: the listener's budget from outside (issue #9). Builds
# leadwatch and cbload, starts `leadwatch serve` on a fresh store and the
# no-storage ceiling (`cbload -nostore`), then loads each in turn with the
# same cbload (unpaced, 32 keep-alive connections) and prints both rates
# and their ratio, once per round. Budget: ratio >= 0.60, serve's p99 <= 10 ms.
#
#   tools/perf-listener.sh [rounds=3] [seconds=10] [workers=32]
#
# Everything listens on loopback and is stopped on exit.
set -euo pipefail

rounds=${1:-3}
secs=${2:-10}
workers=${3:-32}
dir=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

cd "$(dirname "$0")/.."
go build -o "$dir/leadwatch" .
go build -o "$dir/cbload" ./tools/cbload

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
serve_port=$(free_port)
ceiling_port=$(free_port)
crm_port=$(free_port) # nothing listens: the sender idles, there are no leads

export CALLBACK_SECRET=perf-callback-secret
CARTELCRM_BASE_URL=http://127.0.0.1:$crm_port CARTELCRM_API_KEY=perf CARTELCRM_HMAC_SECRET=perf \
	LEADWATCH_LISTEN=127.0.0.1:$serve_port \
	"$dir/leadwatch" serve --db "$dir/perf.db" --log-level warn 2>"$dir/serve.log" &
pids+=($!)
"$dir/cbload" -nostore "127.0.0.1:$ceiling_port" 2>"$dir/ceiling.log" &
pids+=($!)

wait_up() {
	for _ in $(seq 100); do
		if curl -s -o /dev/null "http://127.0.0.1:$1/"; then return 0; fi
		sleep 0.1
	done
	echo "nothing listens on port $1" >&2
	cat "$dir"/*.log >&2
	exit 1
}
wait_up "$serve_port"
wait_up "$ceiling_port"

load() {
	"$dir/cbload" -url "http://127.0.0.1:$1/cartelcrm/callback" -rate 0 -duration "${secs}s" -workers "$workers"
}
rate() { sed -n 's/.*(\([0-9]*\)\/s).*/\1/p' <<<"$1"; }
p99() { sed -n 's/.*p99=\([^ ]*\).*/\1/p' <<<"$1"; }

for r in $(seq "$rounds"); do
	ceiling=$(load "$ceiling_port")
	stored=$(load "$serve_port")
	c=$(rate "$ceiling")
	s=$(rate "$stored")
	printf 'round %d: serve %s/s (p99 %s), nostore %s/s (p99 %s), ratio %s\n' "$r" "$s" "$(p99 "$stored")" \
		"$c" "$(p99 "$ceiling")" "$(awk -v s="$s" -v c="$c" 'BEGIN { printf "%.2f", s / c }')"
	grep -q 'non2xx=0 errors=0' <<<"$stored" || { echo "serve: $stored" >&2; }
done
