#!/usr/bin/env bash
# Server CPU per query of two belfry builds on the bench zone, signed, DO=1 on every query (the
# harness mix), runs interleaved: the "no measurable change" check of a change to the query path.
# Usage: [ORDER='new old'] contrib/bench/compare_builds.sh OLD_BIN NEW_BIN [ROUNDS]
# Each server: one UDP worker pinned to CPU 0, dnsperf on CPU 1, measured once every RRset is signed.
# Loopback only (127.0.0.1:5420); stopped by PID.
set -euo pipefail
OLD=$1; NEW=$2; ROUNDS=${3:-2}
DATA=${DATA:-/tmp/bench-data}; N=${N:-1800000}
PORT=5420
WORK=$(mktemp -d /tmp/belfry-cmp.XXXXXX)
SRV=""
trap '[ -n "$SRV" ] && kill "$SRV" 2>/dev/null; rm -rf "$WORK"' EXIT
"$NEW" keygen --zone be. --role csk --dir "$WORK/keys" >/dev/null
KEY=$(ls "$WORK"/keys/*.pkcs8.pem)
# A build with RRL (on by default) needs loopback exempted, or it measures the limiter: such a build
# is given this configuration (NEW_CONFIG=0 for one without a config file format for it;
# OLD_CONFIG=1 when the old build has one too).
. "$(dirname "$0")/lib.sh"
bench_config "$WORK/new.toml" "$PORT" "$WORK/keys"
ticks() { awk '{print $14 + $15}' "/proc/$SRV/stat"; }
for r in $(seq "$ROUNDS"); do
  for b in ${ORDER:-old new}; do
    if { [ "$b" = new ] && [ "${NEW_CONFIG:-1}" = 1 ]; } || { [ "$b" = old ] && [ "${OLD_CONFIG:-0}" = 1 ]; }; then
      bin=$OLD; [ "$b" = new ] && bin=$NEW
      taskset -c 0 "$bin" serve --config "$WORK/new.toml" > "$WORK/$b.log" 2>&1 &
    else
      bin=$OLD; [ "$b" = new ] && bin=$NEW
      taskset -c 0 "$bin" serve --listen "127.0.0.1:$PORT" --threads 1 --zone "$DATA/be-$N.zone" \
        --origin be. --key "$KEY" > "$WORK/$b.log" 2>&1 &
    fi
    SRV=$!
    until grep -q 'signed [0-9]* RRsets' "$WORK/$b.log"; do sleep 1; kill -0 "$SRV"; done
    sleep 3
    c0=$(ticks)
    q=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$PORT" -d "$DATA/queries-$N.txt" -D -l 15 -c 16 -q 300 \
      2>/dev/null | awk '/Queries completed/ {print $3}')
    c1=$(ticks)
    echo "round $r, $b build: $q answers, $(echo "scale=2; ($c1 - $c0) * 1000000 / $(getconf CLK_TCK) / $q" | bc) us/q"
    kill "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=""
  done
done
