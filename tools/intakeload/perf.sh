#!/usr/bin/env bash
# perf.sh: the intake's budget from outside (issue 12: >= 5,000 leads/s
# at c=32, each answered 202 once committed). Builds leadwatch and
# intakeload from this tree, then per round starts `leadwatch serve` with
# the intake on, on a fresh store (SQLite, synchronous=FULL), loads it
# with intakeload and prints the rate, the latency and the CPU serve used
# per lead (less disturbed than the rate by other jobs on the machine).
# With LEADWATCH_OLD=path/to/binary each round also loads that binary the
# same way, for a before/after in one run.
#
#   tools/intakeload/perf.sh [rounds=3] [leads=20000] [connections=32]
#
# The sender is kept idle (crm.rate_limit tiny, a CRM address nothing
# listens on), so the figure is the intake's own. Everything listens on
# loopback and is stopped on exit.
set -euo pipefail

rounds=${1:-3}
leads=${2:-20000}
conns=${3:-32}
dir=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

cd "$(dirname "$0")/../.."
CGO_ENABLED=0 go build -o "$dir/leadwatch" .
go build -o "$dir/intakeload" ./tools/intakeload

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export LEADWATCH_INTAKE_TOKEN=perf-intake-token CARTELCRM_API_KEY=perf CARTELCRM_HMAC_SECRET=perf \
	CALLBACK_SECRET=perf-callback-secret CARTELCRM_BASE_URL=http://127.0.0.1:$(free_port)
printf '[crm]\nrate_limit = 0.001\n[callbacks]\ndrain = "0s"\n' >"$dir/leadwatch.toml"
tick=$(getconf CLK_TCK)

# cpu is the user and system CPU time of process $1, in clock ticks.
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# measure loads binary $2 for round $1 and prints one line.
measure() {
	local port pid t0 t1 out
	port=$(free_port)
	rm -f "$dir"/perf.db*
	LEADWATCH_LISTEN=127.0.0.1:$port "$2" serve --config "$dir/leadwatch.toml" --db "$dir/perf.db" \
		--log-level warn 2>"$dir/serve.log" &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 100); do
		if curl -s -o /dev/null "http://127.0.0.1:$port/"; then break; fi
		sleep 0.1
	done
	t0=$(cpu "$pid")
	out=$("$dir/intakeload" -url "http://127.0.0.1:$port/v1/leads" -c "$conns" -n "$leads" -prefix "r$1")
	t1=$(cpu "$pid")
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	grep -q "202: $leads; transport errors 0" <<<"$out" || echo "not every lead answered 202: $out" >&2
	printf 'round %d %-9s %6s leads/s, serve %4d µs CPU a lead, %s\n' "$1" "$3" \
		"$(sed -n 's/.*: \([0-9]*\) leads\/s.*/\1/p' <<<"$out")" \
		$(((t1 - t0) * 1000000 / tick / leads)) "$(sed -n 's/latency per request: //p' <<<"$out")"
}

# With an old binary the two take turns going first, so a load that other
# jobs put on the machine for a while weighs on both alike.
for r in $(seq "$rounds"); do
	if [[ -n ${LEADWATCH_OLD:-} && $((r % 2)) -eq 0 ]]; then
		measure "$r" "$LEADWATCH_OLD" old
		measure "$r" "$dir/leadwatch" this
		continue
	fi
	measure "$r" "$dir/leadwatch" this
	if [[ -n ${LEADWATCH_OLD:-} ]]; then
		measure "$r" "$LEADWATCH_OLD" old
	fi
done
