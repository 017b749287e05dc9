#!/bin/sh
# run.sh: HAProxy in the foreground over leadwatch instances, from
# haproxy.cfg.tmpl.
#
#   tools/haproxy/run.sh BIND INSTANCE...
#   tools/haproxy/run.sh 127.0.0.1:8080 127.0.0.1:8081 127.0.0.1:8082
#
# Environment: INTER (health-check interval, default 1s), FALL (default 2),
# RISE (default 2), CFG (where to write the filled-in config; default a
# temporary file). Needs haproxy (Debian: apt-get install haproxy).
set -eu
if [ $# -lt 2 ]; then
	echo "usage: $0 BIND INSTANCE..." >&2
	exit 2
fi
command -v haproxy >/dev/null || { echo "$0: haproxy not found (apt-get install haproxy)" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
bind=$1
shift
servers=""
n=0
for addr in "$@"; do
	n=$((n + 1))
	servers="${servers}    server leadwatch$n $addr
"
done
cfg=${CFG:-$(mktemp "${TMPDIR:-/tmp}/leadwatch-haproxy.XXXXXX")}
# The servers go in with awk: sed cannot insert a multi-line value.
awk -v bind="$bind" -v inter="${INTER:-1s}" -v fall="${FALL:-2}" -v rise="${RISE:-2}" -v servers="$servers" '
	/^@SERVERS@$/ { printf "%s", servers; next }
	{ gsub(/@BIND@/, bind); gsub(/@INTER@/, inter); gsub(/@FALL@/, fall); gsub(/@RISE@/, rise); print }
' "$here/haproxy.cfg.tmpl" >"$cfg"
haproxy -c -q -f "$cfg"
echo "haproxy on $bind over $n instance(s); config $cfg" >&2
exec haproxy -db -f "$cfg"
