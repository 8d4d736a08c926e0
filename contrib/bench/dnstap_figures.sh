#!/usr/bin/env bash
# dnstap cost per query (README "Performance"): belfry with one UDP worker pinned to CPU 0
# on a generated 10,000-delegation zone (../shared/bench/gen_zone.py, gen_queries.py: the
# harness's mix), dnsperf pinned to CPU 1 with the harness's settings (-T 1 -c 16 -q 300),
# dnstap off, on at 1:1 and on at 1:100 to fstrm_capture (pinned to CPU 1, writing to
# /dev/null), rounds interleaved. Prints, per run, qps and the server's CPU time per
# answered query (user + system of the whole process, writer thread included).
#
#   contrib/bench/dnstap_figures.sh [ROUNDS] [SECONDS]
#
# Needs a release build, dnsperf, dig, fstrm_capture and taskset. Every process started
# here is stopped by its PID; scratch files go to $WORK.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BELFRY=${BELFRY:-${CARGO_TARGET_DIR:-$ROOT/target}/release/belfry}
BENCH=${BENCH:-$ROOT/../shared/bench}
WORK=${WORK:-/tmp/belfry-dnstap-figures}
ROUNDS=${1:-3}
DUR=${2:-10}
PORT=${PORT:-5399}
mkdir -p "$WORK"
[ -f "$WORK/be-10000.zone" ] || python3 "$BENCH/gen_zone.py" -n 10000 --out "$WORK" >/dev/null
[ -f "$WORK/queries-10000.txt" ] || python3 "$BENCH/gen_queries.py" --domains "$WORK/domains-10000.txt" \
  --out "$WORK/queries-10000.txt" -q 200000 >/dev/null
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

one() {
  local mode=$1 cfg=$WORK/belfry-$1.toml cap="" srv
  {
    printf '[server]\nlisten = ["127.0.0.1:%s"]\nworkers = 1\n[zone]\norigin = "be."\nfile = "%s/be-10000.zone"\n' "$PORT" "$WORK"
    printf '[rrl]\nenabled = false\n[cookies]\nenabled = false\n'
    if [ "$mode" != off ]; then
      printf '[dnstap]\nenabled = true\nsocket = "%s/tap.sock"\nsample = %s\nqueue = 8192\n' "$WORK" "$mode"
    fi
  } >"$cfg"
  if [ "$mode" != off ]; then
    rm -f "$WORK/tap.sock"
    taskset -c 1 fstrm_capture -t protobuf:dnstap.Dnstap -u "$WORK/tap.sock" -w /dev/null >"$WORK/capture.log" 2>&1 &
    cap=$!; PIDS+=("$cap")
    for _ in $(seq 50); do [ -S "$WORK/tap.sock" ] && break; sleep 0.1; done
  fi
  taskset -c 0 "$BELFRY" serve --config "$cfg" >"$WORK/server-$mode.log" 2>&1 &
  srv=$!; PIDS+=("$srv")
  for _ in $(seq 100); do dig +short +time=1 +tries=1 @127.0.0.1 -p "$PORT" be. SOA >/dev/null 2>&1 && break; sleep 0.1; done
  sleep 1
  local c0 c1 out qps done_ us tap
  c0=$(awk '{print $14+$15}' /proc/$srv/stat)
  out=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$PORT" -d "$WORK/queries-10000.txt" -l "$DUR" -T 1 -c 16 -q 300 2>&1)
  c1=$(awk '{print $14+$15}' /proc/$srv/stat)
  qps=$(echo "$out" | awk '/Queries per second/ {print $4}')
  done_=$(echo "$out" | awk '/Queries completed/ {print $3}')
  kill -TERM "$srv"; wait "$srv" || true
  if [ -n "$cap" ]; then kill -INT "$cap"; wait "$cap" || true; fi
  us=$(awk -v c=$((c1 - c0)) -v t="$(getconf CLK_TCK)" -v n="$done_" 'BEGIN{printf "%.3f", c/t*1e6/n}')
  tap=$(grep -o 'dnstap: [0-9]* messages sent, [0-9]* dropped' "$WORK/server-$mode.log" || true)
  echo "dnstap=$mode qps=$qps completed=$done_ server_us_per_query=$us [$tap] load=$(cut -d' ' -f1 /proc/loadavg)"
}

for _ in $(seq "$ROUNDS"); do
  for m in off 1 100; do one "$m"; done
done
