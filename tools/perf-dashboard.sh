#!/usr/bin/env bash
# perf-dashboard.sh — measures the dashboard's budget (issues #5 and #11) on the real
# binary in a real terminal (tmux, 160x48) against a 1,000,000-lead,
# 1,000,000-callback store:
#   - time from launch to the first frame showing data, on the big store
#     and for `leadwatch --demo` (a fresh store)
#   - VmRSS / VmHWM while idle and while 1,000 callbacks/s arrive
#   - how long tab, j, enter, esc, 6 (Sources) and 5 (All leads) take to
#     show on screen under that load
#   - that new rows keep appearing under load
#
# Usage: tools/perf-dashboard.sh [SOURCE_DB]
#   SOURCE_DB defaults to $LEADWATCH_BIG_DB, then the store benchmark's cache
#   /tmp/leadwatch-bench-v3-1000000.db; when none exists it is built with
#   tools/fillstore (about 70 s). The run works on a copy, so the source is
#   never changed. A postgres:// URL is a Filled PostgreSQL database
#   instead (store/postgres's benchmarks keep one, lw_bench_filled_*):
#   it is used as it is, so the load's callbacks stay in it, and the URL is
#   never printed. Env: RATE (1000), LOAD_SECS (30), ROUNDS (5 key rounds),
#   LEADWATCH_BIN (a leadwatch binary to measure instead of building this
#   checkout: the way to compare two builds in one sitting).
#
# Not run by CI: it needs tmux, ~1.5 GB in $TMPDIR and both cores for a
# minute. Only loopback addresses are used; the CRM base URL points at a
# closed loopback port and sending is rate-limited to 5/s so the sender
# does not compete with the callback load (sending is not measured here).
# Secrets are random per run and never printed.
set -euo pipefail

cd "$(dirname "$0")/.."
RATE=${RATE:-1000}
LOAD_SECS=${LOAD_SECS:-30}
ROUNDS=${ROUNDS:-5}
SRC=${1:-${LEADWATCH_BIG_DB:-/tmp/leadwatch-bench-v3-1000000.db}}
PORT=${PORT:-18088}
W=160
H=48

WORK=$(mktemp -d "${TMPDIR:-/tmp}/leadwatch-perf.XXXXXX")
SOCK=lwperf-$$ # a private tmux server: other tmux sessions are not touched
CBLOAD_PID=
cleanup() {
	[[ -n $CBLOAD_PID ]] && kill "$CBLOAD_PID" 2>/dev/null || true
	tmux -L "$SOCK" kill-server 2>/dev/null || true
	rm -f "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$SOCK"
	rm -rf "$WORK"
}
trap cleanup EXIT

now_ms() { echo $(($(date +%s%N) / 1000000)); }
cap() { tmux -L "$SOCK" capture-pane -p -t lw; }
say() { printf '%s\n' "$*"; }

# wait_for MAX_MS CMD... polls CMD (a predicate over the screen in $SCREEN)
# until it holds; prints the elapsed ms since $T0, or fails.
wait_for() {
	local max=$1
	shift
	while :; do
		SCREEN=$(cap)
		if "$@"; then
			echo $(($(now_ms) - T0))
			return 0
		fi
		if (($(now_ms) - T0 > max)); then
			echo "timeout"
			[[ -n ${DEBUG:-} ]] && printf '%s\n' "$SCREEN" >&2
			return 0
		fi
		sleep 0.002
	done
}
has() { grep -qF -- "$1" <<<"$SCREEN"; }
lacks() { ! grep -qF -- "$1" <<<"$SCREEN"; }
cursor_line() { grep -n '▸' <<<"$SCREEN" | head -1 | cut -d: -f1 || true; }
cursor_moved() { [[ $(cursor_line) != "$1" ]]; }
# events_total prints N of "Status events (N)".
events_total() { grep -o 'Status events ([0-9]*)' <<<"$(cap)" | grep -o '[0-9]*' | head -1 || true; }
mem() { grep -E '^(VmRSS|VmHWM)' "/proc/$1/status" | awk '{printf "%s %d MiB  ", $1, $2/1024}'; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# key_rounds presses tab (to Duplicates), j, enter (lead detail) and esc
# ROUNDS times and prints, per key, the ms until the screen shows it. The
# markers are the key's own: the heavy border of the focused pane, the
# row marker ▸ moving, the detail box's title. Under load the panes' rows
# move by themselves (callbacks touch leads), so j starts from the top
# row (g) each round.
key_rounds() {
	local r line
	declare -A lat=([tab]="" [j]="" [enter]="" [esc]="" [6]="" [5]="")
	for ((r = 1; r <= ROUNDS; r++)); do
		T0=$(now_ms)
		tmux -L "$SOCK" send-keys -t lw Tab
		lat[tab]+="$(wait_for 3000 has "┏━ Duplicates") "
		tmux -L "$SOCK" send-keys -t lw g
		sleep 0.2
		SCREEN=$(cap)
		line=$(cursor_line)
		T0=$(now_ms)
		tmux -L "$SOCK" send-keys -t lw j
		lat[j]+="$(wait_for 3000 cursor_moved "$line") "
		T0=$(now_ms)
		tmux -L "$SOCK" send-keys -t lw Enter
		lat[enter]+="$(wait_for 3000 has "┏━ Lead fill-") "
		T0=$(now_ms)
		tmux -L "$SOCK" send-keys -t lw Escape
		lat[esc]+="$(wait_for 3000 has "┏━ Duplicates") "
		T0=$(now_ms)
		tmux -L "$SOCK" send-keys -t lw 6
		lat[6]+="$(wait_for 3000 has "┏━ Sources") "
		T0=$(now_ms)
		tmux -L "$SOCK" send-keys -t lw 5
		lat[5]+="$(wait_for 3000 has "┏━ All leads") "
		tmux -L "$SOCK" send-keys -t lw 1 # back to the first pane for the next round
		sleep 0.3
	done
	for k in tab j enter esc 6 5; do
		say "$(printf '%-6s' "$k") ${lat[$k]}"
	done
}

say "== build"
if [[ -n ${LEADWATCH_BIN:-} ]]; then cp "$LEADWATCH_BIN" "$WORK/leadwatch"; else go build -o "$WORK/leadwatch" .; fi
go build -o "$WORK/cbload" ./tools/cbload
go build -o "$WORK/fillstore" ./tools/fillstore

say "== store"
if [[ $SRC == postgres://* || $SRC == postgresql://* ]]; then
	DB=$SRC
	say "PostgreSQL database ${SRC##*/}" | sed 's/?.*//'
else
	if [[ ! -f $SRC ]]; then
		say "building $SRC (1,000,000 leads + 1,000,000 callbacks)"
		"$WORK/fillstore" -db "$SRC" -leads 1000000 -callbacks 1000000
	fi
	cp "$SRC" "$WORK/big.db"
	DB=$WORK/big.db
	say "$SRC → $DB ($(du -h "$DB" | cut -f1))"
fi

CALLBACK_SECRET=$(head -c 24 /dev/urandom | base64)
API_KEY=$(head -c 24 /dev/urandom | base64)
HMAC_SECRET=$(head -c 24 /dev/urandom | base64)
cat >"$WORK/leadwatch.toml" <<'EOF'
[crm]
concurrency = 1
rate_limit = 5
EOF
ENVS=(-e "CARTELCRM_BASE_URL=http://127.0.0.1:9" -e "CARTELCRM_API_KEY=$API_KEY"
	-e "CARTELCRM_HMAC_SECRET=$HMAC_SECRET" -e "CALLBACK_SECRET=$CALLBACK_SECRET"
	-e "TERM=xterm-256color")

say "== overhead: tmux + polling, a shell that prints at once"
T0=$(now_ms)
tmux -L "$SOCK" new-session -d -s base -x $W -y $H "echo ready; sleep 60"
SCREEN=
while ! tmux -L "$SOCK" capture-pane -p -t base | grep -q ready; do sleep 0.002; done
say "tmux launch + first capture: $(($(now_ms) - T0)) ms"
T0=$(now_ms)
"$WORK/leadwatch" --help >/dev/null 2>&1 || true
say "leadwatch process start (--help): $(($(now_ms) - T0)) ms"
tmux -L "$SOCK" kill-session -t base

say "== first frame: leadwatch --demo (fresh store, embedded sandbox)"
T0=$(now_ms)
tmux -L "$SOCK" new-session -d -s lw -x $W -y $H -e TERM=xterm-256color -c "$WORK" \
	"exec '$WORK/leadwatch' --demo --db '$WORK/demo.db' --log '$WORK/demo.log'"
say "first frame (header drawn): $(wait_for 10000 has "Pending retries") ms after launch"
say "first lead on screen:       $(wait_for 10000 has "lp-") ms"
tmux -L "$SOCK" send-keys -t lw q
while tmux -L "$SOCK" has-session -t lw 2>/dev/null; do sleep 0.05; done

say "== first frame"
sync
T0=$(now_ms)
tmux -L "$SOCK" new-session -d -s lw -x $W -y $H "${ENVS[@]}" -c "$WORK" \
	"exec '$WORK/leadwatch' --config '$WORK/leadwatch.toml' --db '$DB' --listen 127.0.0.1:$PORT"
FRAME=$(wait_for 10000 has "fill-")
PID=$(tmux -L "$SOCK" display -p -t lw '#{pane_pid}')
say "first frame with data: $FRAME ms after launch (pid $PID; includes tmux start and polling, see overhead)"
EVENTS_FRAME=$(wait_for 10000 has "Status events (")
say "events pane titled:    $EVENTS_FRAME ms"

sleep 5
say "== idle (5 s after first frame)"
say "$(mem "$PID")"
IDLE_CPU0=$(cpu_ticks "$PID")
sleep 5
say "idle CPU: $(((($(cpu_ticks "$PID") - IDLE_CPU0)) * 100 / $(getconf CLK_TCK) / 5))% of a core over 5 s"
say "== keys idle (ms from send-keys until the screen shows the change)"
key_rounds

say "== load: $RATE callbacks/s for ${LOAD_SECS}s to 127.0.0.1:$PORT"
E0=$(events_total)
CALLBACK_SECRET=$CALLBACK_SECRET "$WORK/cbload" -url "http://127.0.0.1:$PORT/cartelcrm/callback" \
	-rate "$RATE" -duration "${LOAD_SECS}s" >"$WORK/cbload.out" 2>&1 &
CBLOAD_PID=$!
LOAD_CPU0=$(cpu_ticks "$PID")
LOAD_T0=$(now_ms)
(
	while kill -0 "$CBLOAD_PID" 2>/dev/null; do
		rss_kb "$PID"
		sleep 0.5
	done
) >"$WORK/rss.log" &
SAMPLER=$!
sleep 3

say "== keys under load (ms from send-keys until the screen shows the change)"
key_rounds
wait "$CBLOAD_PID" || true
CBLOAD_PID=
LOAD_MS=$(($(now_ms) - LOAD_T0))
LOAD_CPU=$(((($(cpu_ticks "$PID") - LOAD_CPU0)) * 100000 / $(getconf CLK_TCK) / LOAD_MS))
wait "$SAMPLER" || true
MAXRSS=$(sort -n "$WORK/rss.log" | tail -1)
sleep 1.5 # the last refresh lands
E1=$(events_total)
say "== after load"
cat "$WORK/cbload.out"
say "dashboard CPU during load: ${LOAD_CPU}% of a core"
say "VmRSS max sampled during load: $((MAXRSS / 1024)) MiB; now: $(mem "$PID")"
say "Status events on screen: $E0 → $E1 (+$((E1 - E0)))"
say "newest events row now:"
cap | grep -m1 -A2 'Status events' | tail -2 | cut -c$((W / 2 + 1))- || true

tmux -L "$SOCK" send-keys -t lw q
sleep 0.5
