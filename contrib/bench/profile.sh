#!/usr/bin/env bash
# A perf profile of one belfry build's query path under the harness mix: the signed 1.8 M bench zone,
# DO=1 on every query, one UDP worker pinned to CPU 0, dnsperf on CPU 1, recorded once every RRset is
# signed. Read it with `perf report -i OUT --no-children --sort dso,sym`.
# Usage: [OLD=1] contrib/bench/profile.sh BIN OUT.perf [SECONDS]
#   OLD=1: a build from before the configuration file had an [rrl] section (command-line flags).
# Loopback only (127.0.0.1:5421); the server is stopped by PID.
set -euo pipefail
BIN=$1; OUT=$2; SECS=${3:-15}
DATA=${DATA:-/tmp/bench-data}; N=${N:-1800000}; PORT=5421
WORK=$(mktemp -d /tmp/belfry-prof.XXXXXX)
SRV=""; DP=""
trap '[ -n "$DP" ] && kill "$DP" 2>/dev/null; [ -n "$SRV" ] && kill "$SRV" 2>/dev/null; rm -rf "$WORK"' EXIT
"$BIN" keygen --zone be. --role csk --dir "$WORK/keys" >/dev/null
. "$(dirname "$0")/lib.sh"
bench_config "$WORK/c.toml" "$PORT" "$WORK/keys"
if [ "${OLD:-0}" = 1 ]; then
  taskset -c 0 "$BIN" serve --listen "127.0.0.1:$PORT" --threads 1 --zone "$DATA/be-$N.zone" \
    --origin be. --key "$(ls "$WORK"/keys/*.pkcs8.pem)" > "$WORK/log" 2>&1 &
else
  taskset -c 0 "$BIN" serve --config "$WORK/c.toml" > "$WORK/log" 2>&1 &
fi
SRV=$!
until grep -q 'signed [0-9]* RRsets' "$WORK/log"; do sleep 1; kill -0 "$SRV"; done
sleep 3
taskset -c 1 dnsperf -s 127.0.0.1 -p "$PORT" -d "$DATA/queries-$N.txt" -D -l $((SECS + 4)) -c 16 -q 300 \
  > /dev/null 2>&1 &
DP=$!
sleep 2
perf record -F 2000 -g -p "$SRV" -o "$OUT" -- sleep "$SECS" > /dev/null 2>&1
wait "$DP"; DP=""
kill "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=""
perf report -i "$OUT" --no-children --sort dso --stdio -g none 2>/dev/null | grep '%'
