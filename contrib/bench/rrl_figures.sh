#!/usr/bin/env bash
# RRL and cookie figures on the bench zone (README "Performance", RRL):
#   1. server CPU per query on the harness mix with RRL on (a rate nothing reaches) and cookies on,
#      against RRL and cookies off, runs interleaved (ROUNDS each);
#   2. a 100 % spoofed-source flood from one /24 (127.0.0.10-41, random NXDOMAIN names, DO set) against
#      the default RRL: server CPU per query of the flood and the amplification factor (bytes out / in).
# Unsigned zone: the cost measured is RRL's and the cookies', not the signer's.
# Usage (from the project root, after `cargo build --release --bins --examples` and
# ../shared/bench/setup.sh): contrib/bench/rrl_figures.sh
# Loopback only (127.0.0.1:5410, flood sources 127.0.0.10-41); stopped by PID.
set -euo pipefail
DATA=${DATA:-/tmp/bench-data}
N=${N:-1800000}
ROUNDS=${ROUNDS:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/target/release/belfry}
FLOOD=${FLOOD:-$ROOT/target/release/examples/udp_flood}
PORT=5410
WORK=$(mktemp -d /tmp/belfry-rrl.XXXXXX)
QUERIES=$DATA/queries-$N.txt
SRV=""
trap '[ -n "$SRV" ] && kill "$SRV" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT

conf() { # name rrl-section cookies-enabled
  cat > "$WORK/$1.toml" <<CONF
[server]
listen = ["127.0.0.1:$PORT"]
workers = 1
[rrl]
$2
[cookies]
enabled = $3
[zone]
origin = "be."
file = "$DATA/be-$N.zone"
CONF
}
conf on 'rate = 500000' true
conf off 'enabled = false' false
conf default '' true
start() {
  "$BIN" serve --config "$WORK/$1.toml" > "$WORK/$1.log" 2>&1 &
  SRV=$!
  until dig +short +norec -p "$PORT" @127.0.0.1 be. SOA >/dev/null 2>&1 && \
        [ -n "$(dig +short +norec -p "$PORT" @127.0.0.1 be. SOA)" ]; do sleep 0.2; kill -0 "$SRV"; done
  taskset -pc 0 "$SRV" >/dev/null
}
stop() { kill "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=""; }
ticks() { awk '{print $14 + $15}' "/proc/$SRV/stat"; }
cpu() { # label
  local c0 c1 q
  c0=$(ticks)
  q=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$PORT" -d "$QUERIES" -l 15 -c 16 -q 300 2>/dev/null |
    awk '/Queries completed/ {print $3}')
  c1=$(ticks)
  echo "$1: $q answers, $(echo "scale=2; ($c1 - $c0) * 1000000 / $(getconf CLK_TCK) / $q" | bc) us/q"
}
for r in $(seq "$ROUNDS"); do
  for c in off on; do
    start "$c"; cpu "round $r, RRL and cookies $c"; stop
  done
done
start default
c0=$(ticks)
out=$(taskset -c 1 "$FLOOD" "127.0.0.1:$PORT" 127.0.0.10-127.0.0.41 10 random do)
c1=$(ticks)
echo "flood, default RRL: $out"
sent=$(echo "$out" | grep -o 'sent [0-9]*' | grep -o '[0-9]*' || true)
[ -n "$sent" ] && echo "flood: $(echo "scale=2; ($c1 - $c0) * 1000000 / $(getconf CLK_TCK) / $sent" | bc) us per query sent (server CPU during the flood)"
stop
