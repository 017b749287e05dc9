#!/usr/bin/env bash
# perf-listener.sh: the listener's budget from outside (issue #9). Builds
# leadwatch and cbload, starts `leadwatch serve` on a fresh store and the
# no-storage ceiling (`cbload -nostore`), then loads each in turn with the
# same cbload (unpaced, 32 keep-alive connections) and prints both rates
# and their ratio, once per round. Budget: ratio >= 0.60, serve's p99 <= 10 ms.
#
#   tools/perf-listener.sh [rounds=3] [seconds=10] [workers=32]
#
# Each round also prints, per target, the CPU time per request of the
# server and of cbload, and serve's callbacks per group commit (from its
# /metrics): on a shared machine the rates move with what else runs, the
# CPU figures much less, and the ratio follows them once the cores are
# saturated.
#
# With LEADWATCH_OLD set to another leadwatch binary (built before a
# change), it serves beside the new one on its own fresh store and is
# loaded in every round too, so before and after share the run's machine.
# LEADWATCH_BIN, when set, is the binary measured instead of one built
# from the tree.
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
if [[ -n ${LEADWATCH_BIN:-} ]]; then
	cp "$LEADWATCH_BIN" "$dir/leadwatch"
else
	go build -o "$dir/leadwatch" .
fi
go build -o "$dir/cbload" ./tools/cbload

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
crm_port=$(free_port) # nothing listens: the sender idles, there are no leads
export CALLBACK_SECRET=perf-callback-secret

# serve NAME BINARY: starts BINARY's `serve` on a fresh store, with
# /metrics on a port of its own; sets port_NAME, mport_NAME and pid_NAME.
serve() {
	local port mport
	port=$(free_port)
	mport=$(free_port)
	printf '[metrics]\nlisten = "127.0.0.1:%s"\n' "$mport" >"$dir/$1.toml"
	CARTELCRM_BASE_URL=http://127.0.0.1:$crm_port CARTELCRM_API_KEY=perf CARTELCRM_HMAC_SECRET=perf \
		LEADWATCH_LISTEN=127.0.0.1:$port \
		"$2" serve --config "$dir/$1.toml" --db "$dir/$1.db" --log-level warn 2>"$dir/$1.log" &
	pids+=($!)
	printf -v "port_$1" %s "$port"
	printf -v "mport_$1" %s "$mport"
	printf -v "pid_$1" %s "$!"
}
serve new "$dir/leadwatch"
[[ -z ${LEADWATCH_OLD:-} ]] || serve old "$LEADWATCH_OLD"
port_nostore=$(free_port)
"$dir/cbload" -nostore "127.0.0.1:$port_nostore" 2>"$dir/nostore.log" &
pids+=($!)
pid_nostore=$!

wait_up() {
	for _ in $(seq 100); do
		if curl -s -o /dev/null "http://127.0.0.1:$1/"; then return 0; fi
		sleep 0.1
	done
	echo "nothing listens on port $1" >&2
	cat "$dir"/*.log >&2
	exit 1
}
wait_up "$port_new"
wait_up "$port_nostore"
[[ -z ${LEADWATCH_OLD:-} ]] || wait_up "$port_old"

# cpu PID: the process's user and system CPU time so far, in clock ticks.
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# commits NAME: serve NAME's group commits and the callbacks they carried.
commits() {
	curl -s "http://127.0.0.1:$(eval echo "\$mport_$1")/metrics" |
		awk '/^leadwatch_callback_commit_events_(count|sum) / { v[$1] = $2 }
			END { printf "%d %d\n", v["leadwatch_callback_commit_events_count"], v["leadwatch_callback_commit_events_sum"] }'
}
rate() { sed -n 's/.*(\([0-9]*\)\/s).*/\1/p' <<<"$1"; }
p99() { sed -n 's/.*p99=\([^ ]*\).*/\1/p' <<<"$1"; }
sent() { sed -n 's/^sent=\([0-9]*\).*/\1/p' <<<"$1"; }
loadcpu() { sed -n 's/^cbload cpu=\([0-9.]*\).*/\1/p' <<<"$1"; }

# measure NAME: loads NAME once; sets out_NAME (cbload's summary),
# rate_NAME and info_NAME (p99, CPU per request, callbacks per commit).
measure() {
	local name=$1 pid c0 c1 k0 k1 out srv
	pid=$(eval echo "\$pid_$name")
	c0=$(cpu "$pid")
	[[ $name == nostore ]] || k0=$(commits "$name")
	out=$("$dir/cbload" -url "http://127.0.0.1:$(eval echo "\$port_$name")/cartelcrm/callback" \
		-rate 0 -duration "${secs}s" -workers "$workers")
	c1=$(cpu "$pid")
	srv=$(awk -v a="$c0" -v b="$c1" -v t="$(getconf CLK_TCK)" -v n="$(sent "$out")" \
		'BEGIN { printf "%.0f", (b - a) / t * 1e6 / n }')
	local info="p99 $(p99 "$out"), cpu µs/req server $srv + cbload $(loadcpu "$out")"
	if [[ $name != nostore ]]; then
		k1=$(commits "$name")
		info+=$(awk -v a="$k0" -v b="$k1" 'BEGIN { split(a, x, " "); split(b, y, " ");
			if (y[1] > x[1]) printf ", %.1f callbacks/commit", (y[2] - x[2]) / (y[1] - x[1]) }')
		grep -q 'non2xx=0 errors=0' <<<"$out" || echo "$name: $out" >&2
	fi
	printf -v "rate_$name" %s "$(rate "$out")"
	printf -v "info_$name" %s "$info"
}

for r in $(seq "$rounds"); do
	measure nostore
	measure new
	printf 'round %d: serve %s/s, nostore %s/s, ratio %s\n' "$r" "$rate_new" "$rate_nostore" \
		"$(awk -v s="$rate_new" -v c="$rate_nostore" 'BEGIN { printf "%.2f", s / c }')"
	printf '         serve:   %s\n         nostore: %s\n' "$info_new" "$info_nostore"
	if [[ -n ${LEADWATCH_OLD:-} ]]; then
		measure old
		printf '         old serve %s/s, ratio %s: %s\n' "$rate_old" \
			"$(awk -v s="$rate_old" -v c="$rate_nostore" 'BEGIN { printf "%.2f", s / c }')" "$info_old"
	fi
done
