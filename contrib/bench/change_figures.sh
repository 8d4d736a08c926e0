#!/usr/bin/env bash
# Zone change figures on the bench zone (README "Performance", zone changes):
#   belfry: start, full signing, a 1,000-delegation reload (time to the new serial, signatures made,
#           dnsperf latency idle vs during, RSS), then dynamic update latency (NS + DS per update);
#   knot:   the same reload with Knot auto-signing (zonefile-load: difference), same zone files.
# Usage (from the project root, after `cargo build --release --bins --examples` and
# ../shared/bench/setup.sh --no-hickory --sizes 1800000):
#   contrib/bench/change_figures.sh [belfry|suppress|knot|resign|listab|all]
# resign (not in all): UDP worker CPU per query idle vs during a ZSK rollover's re-signing, with the
#   DNSSEC clock 600 times faster (BELFRY_TEST_CLOCK) so the pre-publish wait is seconds; one worker,
#   the server pinned to CPU 0, dnsperf on CPU 1.
# PERF=FILE (suppress): a perf profile of the server over the single takedowns with 100,000 listed.
# PERF_SCHED=FILE (belfry): the scheduler's events over reload K in FILE.K (`perf sched latency -i FILE.1`).
# BELFRY_LOG="info,belfry::publish=debug" (belfry): the reload's phases (compare, build and sign, journal).
# RELOADS=N (belfry, default 3): reloads measured under dnsperf, each against the idle window
#   (IDLE seconds, default 30), whose stretches as long as a reload give the p99's own spread.
# listab (not in all): server CPU per query with 100,000 listed vs an empty list, two servers
#   measured in turns (ROUNDS=6 rounds of A B B A, 5 s each); LISTED_FIRST=1 starts the listed one first.
# Loopback only (127.0.0.1:5400-5411); every process started here is stopped by its PID.
set -euo pipefail
WHAT=${1:-all}
DATA=${DATA:-/tmp/bench-data}
N=${N:-1800000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/target/release/belfry}
UPD=${UPD:-$ROOT/target/release/examples/update_latency}
SUP=${SUP:-$ROOT/target/release/examples/suppress_latency}
UPDATES=${UPDATES:-300}
PORT=5400
WORK=$(mktemp -d /tmp/belfry-change.XXXXXX)
ZONE=$DATA/be-$N.zone
QUERIES=$DATA/queries-$N.txt
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

[ -f "$ZONE" ] || { echo "no $ZONE: run ../shared/bench/setup.sh first" >&2; exit 1; }
python3 "$ROOT/contrib/bench/mkchange.py" "$ZONE" "$WORK/changed.zone" --seed 1 >/dev/null

serial() { dig +short +norec +tries=1 -p "$PORT" @127.0.0.1 be. SOA 2>/dev/null | awk 'NF == 7 && $3 ~ /^[0-9]+$/ {print $3}'; }
rss_mb() { awk '/VmRSS/ {printf "%d", $2/1024}' "/proc/$1/status"; }
heap() { # the server's heap as jemalloc sees it (GET /v1/status)
  curl -s -H "Authorization: Bearer $(cat "$D/admin.token")" "http://127.0.0.1:$((PORT + 1))/v1/status" |
    python3 -c 'import json,sys; h=json.load(sys.stdin).get("heap") or {}; print("heap held %d MB, resident %d MB" % (h.get("allocated",0)>>20, h.get("resident",0)>>20))'
}
lazy_mb() { awk '/LazyFree/ {printf "%d", $2/1024}' "/proc/$1/smaps_rollup"; }
hwm_mb() { awk '/VmHWM/ {printf "%d", $2/1024}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
cpu() { # label seconds [queries]: unthrottled dnsperf, server CPU (user + system) per answered query
  local c0 c1 q
  c0=$(cpu_ticks "$SRV")
  q=$(dnsperf -s 127.0.0.1 -p "$PORT" -d "${3:-$QUERIES}" -l "$2" -c 16 -q 300 2>/dev/null |
    awk '/Queries completed/ {print $3}')
  c1=$(cpu_ticks "$SRV")
  echo "$1: $q answers, $(echo "scale=2; ($c1 - $c0) * 1000000 / $(getconf CLK_TCK) / $q" | bc) us/q server CPU"
}
RATE=20000 # queries per second of the latency runs
IDLE=${IDLE:-30} # seconds of the idle latency window
RELOADS=${RELOADS:-3} # reloads measured under dnsperf, one after the other (at least 1)
[ "$RELOADS" -ge 1 ] || { echo "RELOADS must be at least 1" >&2; exit 1; }
lat() { # label seconds: dnsperf at $RATE qps in the background, percentiles to $WORK/lat-LABEL
  # dnsperf's line per answer goes to a file and is read once dnsperf is done: a reader running
  # alongside took a sixth of a core, on the two cores the server and dnsperf share.
  { dnsperf -s 127.0.0.1 -p "$PORT" -d "$QUERIES" -Q "$RATE" -l "$2" -c 8 -q 200 -v > "$WORK/raw-$1" 2>/dev/null
    LAT_END=$(date +%s.%N) LAT_DUMP="$WORK/lat-$1.dump" python3 "$ROOT/contrib/bench/latency.py" "$1" \
      < "$WORK/raw-$1" > "$WORK/lat-$1"
    rm -f "$WORK/raw-$1"; } &
}
# label seconds from to name: after `lat LABEL SECONDS` ended, the percentiles of the answers
# sent between the wall-clock times FROM and TO (a reload inside the window)
lat_span() {
  local start
  start=$(echo "$(cat "$WORK/lat-$1.dump.end") - $2" | bc)
  LAT_WINDOW=${LAT_WINDOW:-5000} python3 "$ROOT/contrib/bench/latency.py" --span "$WORK/lat-$1.dump" "$RATE" \
    "$(echo "$3 - $start" | bc)" "$(echo "$4 - $start" | bc)" "$5"
}

reload_under_load() { # K: one reload of $D/be.zone (already replaced) with dnsperf alongside
  local k=$1 before t0 t1 t2 LP PS SW idle99 during99
  before=$(serial)
  lat "reload$k" 20; LP=$!
  # The RSS sampler and the serial watcher start now, not at the reload: starting a Python
  # process takes tens of ms of a core, which on two cores delays answers being measured.
  # One sampling process, not an awk and a sleep forked ten times a second: on two cores,
  # a query worker that woke behind them waited for them (p99 0.5-1 ms after the reload).
  python3 - "$SRV" "$LP" > "$WORK/rss$k" <<'PY' &
import os, sys, time
srv, lp = sys.argv[1], int(sys.argv[2])
while True:
    try:
        os.kill(lp, 0)
    except OSError:
        break
    with open(f"/proc/{srv}/status") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                print(int(ln.split()[1]) // 1024, flush=True)
    time.sleep(0.1)
PY
  python3 "$ROOT/contrib/bench/soa_wait.py" "$PORT" be. "$before" > "$WORK/t2-$k" & SW=$!; PIDS+=("$SW")
  sleep 3
  if [ -n "${PERF_SCHED:-}" ]; then # scheduler events of the server over the reload, for `perf sched`
    perf sched record -o "$PERF_SCHED.$k" -- sleep 9 >/dev/null 2>&1 & PS=$!
    sleep 0.5
  fi
  t0=$(date +%s.%N)
  "$BIN" reload --config "$D/belfry.toml" --by bench > "$WORK/reload.out"
  t1=$(date +%s.%N)
  wait "$SW"
  t2=$(cat "$WORK/t2-$k")
  wait "$LP"
  if [ -n "${PERF_SCHED:-}" ]; then wait "$PS" || true; fi
  echo "belfry reload $k: command returned after $(echo "$t1 - $t0" | bc) s, new serial answering after $(echo "$t2 - $t0" | bc) s"
  cat "$WORK/reload.out"
  cat "$WORK/lat-reload$k"
  # The reload is 4 s of the 20 s window: its own stretch, and the seconds after it (the
  # replaced version freed, the allocator giving pages back), against the idle window.
  lat_span "reload$k" 20 "$t0" "$t2" "answers sent while the reload ran" | tee "$WORK/during$k"
  lat_span "reload$k" 20 "$t2" "$(echo "$t2 + 3" | bc)" "answers sent in the 3 s after it"
  echo "belfry: RSS during reload $k, max sampled $(sort -n "$WORK/rss$k" | tail -1) MB"
  echo "belfry: RSS every 0.5 s from the reload command on (MB): $(awk 'NF && NR % 5 == 1' "$WORK/rss$k" | tr '\n' ' ')"
  grep -i 'reload' "$D/log" | tail -3
  # The phases, when the server logs the publisher's debug lines (BELFRY_LOG="info,belfry::publish=debug").
  grep -E 'names differ|shards built' "$D/log" | tail -2 || true
  idle99=$(python3 "$ROOT/contrib/bench/latency.py" --span "$WORK/lat-idle.dump" "$RATE" 1 "$IDLE" x | grep -o 'p99 [0-9.]*' | head -1 | cut -d' ' -f2)
  during99=$(head -1 "$WORK/during$k" | grep -o 'p99 [0-9.]*' | cut -d' ' -f2)
  durations+=("$(echo "$t2 - $t0" | bc)")
  ratios+=("$(awk -v d="$during99" -v i="$idle99" 'BEGIN {if (i > 0) printf "%.1fx", d / i; else print "?"}')")
}

start_belfry() { # directory name: a fresh server on the bench zone, returns when fully signed
  D=$WORK/$1; mkdir -p "$D/keys"
  cp "$ZONE" "$D/be.zone"
  "$BIN" keygen --zone be. --role ksk --dir "$D/keys" >/dev/null
  "$BIN" keygen --zone be. --role zsk --dir "$D/keys" >/dev/null
  head -c 32 /dev/urandom | base64 > "$D/admin.token"; chmod 600 "$D/admin.token"
  cat > "$D/belfry.toml" <<CONF
[server]
listen = ["127.0.0.1:$PORT"]
workers = ${WORKERS:-2}
[rrl]
exempt = ["127.0.0.0/8"]
[zone]
origin = "be."
file = "be.zone"
[dnssec]
enabled = true
key_dir = "keys"
[suppress]
file = "suppressions.toml"
audit_log = "audit.log"
admin_listen = "127.0.0.1:$((PORT + 1))"
admin_token_file = "admin.token"
[state]
dir = "state"
[[acl.update]]
from = ["127.0.0.1"]
CONF
  t0=$(date +%s.%N)
  "$BIN" serve --config "$D/belfry.toml" > "$D/log" 2>&1 &
  SRV=$!; PIDS+=("$SRV")
  until [ -n "$(serial)" ]; do sleep 0.2; kill -0 "$SRV"; done
  grep -o "serving on .*" "$D/log"
  until grep -q 'signed [0-9]* RRsets' "$D/log"; do sleep 1; kill -0 "$SRV"; done
  grep -o 'signed [0-9]* RRsets.*' "$D/log" | head -1
  until grep -q 'checkpoint of serial' "$D/log"; do sleep 1; done
  sleep 5
}

if [ "$WHAT" = belfry ] || [ "$WHAT" = all ]; then
  start_belfry belfry
  echo "belfry: RSS fully signed $(rss_mb "$SRV") MB"
  lat idle "$IDLE"; wait $!; cat "$WORK/lat-idle"
  python3 "$ROOT/contrib/bench/latency.py" --span "$WORK/lat-idle.dump" "$RATE" 1 "$IDLE" "idle, after its first second"
  # RELOADS reloads of 1,000 delegations each under dnsperf, one 20 s window each: the first to
  # changed.zone, the next ones to a fresh change of the file being served.
  durations=()
  ratios=()
  for k in $(seq "$RELOADS"); do
    if [ "$k" -gt 1 ]; then
      python3 "$ROOT/contrib/bench/mkchange.py" "$D/be.zone" "$WORK/next.zone" --seed "$((10 + k))" >/dev/null
      sleep 5
      cp "$WORK/next.zone" "$D/be.zone"
    else
      cp "$WORK/changed.zone" "$D/be.zone"
    fi
    reload_under_load "$k"
  done
  echo "belfry: p99 while reloading / idle, each reload: ${ratios[*]}"
  # How much the p99 of a stretch as long as a reload moves in the idle window, nothing changing.
  len=$(printf '%s\n' "${durations[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
  python3 "$ROOT/contrib/bench/latency.py" --windows "$WORK/lat-idle.dump" "$RATE" 1 "$IDLE" "$len" 0.25 \
    "idle window"
  # The same size of change again, with nothing else running on the machine.
  python3 "$ROOT/contrib/bench/mkchange.py" "$D/be.zone" "$WORK/changed3.zone" --seed 3 >/dev/null
  sleep 5
  cp "$WORK/changed3.zone" "$D/be.zone"
  t0=$(date +%s.%N)
  "$BIN" reload --config "$D/belfry.toml" --by bench
  echo "belfry reload without load: $(echo "$(date +%s.%N) - $t0" | bc) s"
  grep -o 'reload of .*' "$D/log" | tail -1
  grep -E 'names differ|shards built' "$D/log" | tail -2 || true
  sleep 5
  "$UPD" "127.0.0.1:$PORT" be "$UPDATES"
  # The hot path after 10,000 changed delegations (new shards, no overlay) vs before.
  python3 "$ROOT/contrib/bench/mkchange.py" "$D/be.zone" "$WORK/changed10k.zone" --seed 2 \
    --add 4000 --remove 3000 --change 3000 >/dev/null
  cpu "cpu before the 10,000-delegation reload" 10
  cp "$WORK/changed10k.zone" "$D/be.zone"
  "$BIN" reload --config "$D/belfry.toml" --by bench --force
  sleep 20
  cpu "cpu after the 10,000-delegation reload" 10
  kill "$SRV"; wait "$SRV" || true
fi

if [ "$WHAT" = suppress ] || [ "$WHAT" = all ]; then
  start_belfry suppress
  echo "RSS fully signed: $(rss_mb "$SRV") MB; $(heap)"
  tail -n 100000 "$DATA/domains-$N.txt" > "$WORK/bulk.txt"
  # The same queries without the 3.9 % that ask for a listed name or below one
  # (those get a signed NXDOMAIN instead of a referral): what the list costs the
  # look-up of every other name.
  awk 'NR == FNR {b[$1] = 1; next} {n = $1; sub(/^[^.]*\./, "", n); if (!b[$1] && !b[n]) print}' \
    "$WORK/bulk.txt" "$QUERIES" > "$WORK/unlisted.txt"
  cpu "cpu, empty suppression list" 10
  cpu "cpu, empty suppression list, queries for unlisted names only" 10 "$WORK/unlisted.txt"
  # One takedown and its lift, with the list empty (the same cycles again below with 100,000 listed).
  awk '$4 == "NS" && $1 != "be." && !seen[$1]++ {print $1; if (++n == 20000) exit}' "$D/be.zone" > "$WORK/few.txt"
  echo "with the list empty:"
  "$SUP" "127.0.0.1:$PORT" "127.0.0.1:$((PORT + 1))" "$D/admin.token" "$WORK/few.txt" 200
  # Suppressions: 100,000 added in one request, then lifted in one request.
  t0=$(date +%s.%N)
  "$BIN" suppress --config "$D/belfry.toml" add --from-file "$WORK/bulk.txt" --reason bench --case BENCH-1 --by bench | tail -1
  echo "bulk add of 100,000: $(echo "$(date +%s.%N) - $t0" | bc) s, RSS $(rss_mb "$SRV") MB"
  sleep 30; echo "RSS 30 s later: $(rss_mb "$SRV") MB ($(lazy_mb "$SRV") MB of it freed, for the kernel to take back); $(heap)"
  # The background pass signs the NSEC3 records the change made before the hot path is measured.
  signed=$(grep -c 'signed [0-9]* RRsets' "$D/log")
  for _ in $(seq 30); do [ "$(grep -c 'signed [0-9]* RRsets' "$D/log")" -gt "$signed" ] && break; sleep 1; done
  grep -o 'signed [0-9]* RRsets.*' "$D/log" | tail -1
  cpu "cpu, 100,000 suppressions listed" 10
  cpu "cpu, 100,000 suppressions listed, queries for unlisted names only" 10 "$WORK/unlisted.txt"
  # Delegated names that are not on the list (the latency example suppresses and lifts each).
  echo "with 100,000 listed:"
  # PERF=FILE records the server's profile (perf, DWARF call graphs) over these cycles.
  [ -n "${PERF:-}" ] && { perf record -q -F 999 --call-graph dwarf,16384 -p "$SRV" -o "$PERF" 2>/dev/null & PERF_PID=$!; sleep 1; }
  "$SUP" "127.0.0.1:$PORT" "127.0.0.1:$((PORT + 1))" "$D/admin.token" "$WORK/few.txt" 200
  [ -n "${PERF:-}" ] && { kill -INT "$PERF_PID"; wait "$PERF_PID" || true; }
  python3 - "$WORK/bulk.txt" > "$WORK/remove.json" <<'PY'
import json, sys
print(json.dumps({"actor": "bench", "reason": "bench",
                  "domains": [l.strip() for l in open(sys.argv[1]) if l.strip()]}))
PY
  t0=$(date +%s.%N)
  curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $(cat "$D/admin.token")" \
    --data-binary @"$WORK/remove.json" "http://127.0.0.1:$((PORT + 1))/v1/suppressions/remove"
  echo "bulk lift of 100,000: $(echo "$(date +%s.%N) - $t0" | bc) s, RSS $(rss_mb "$SRV") MB, peak $(hwm_mb "$SRV") MB"
  sleep 30; echo "RSS 30 s later: $(rss_mb "$SRV") MB ($(lazy_mb "$SRV") MB of it freed, for the kernel to take back); $(heap)"
  kill "$SRV"; wait "$SRV" || true
fi

if [ "$WHAT" = knot ] || [ "$WHAT" = all ]; then
  D=$WORK/knot; mkdir -p "$D/db"
  cp "$ZONE" "$D/be.zone"
  cat > "$D/knot.conf" <<CONF
server:
    rundir: "$D"
    listen: 127.0.0.1@$PORT
    udp-workers: 2
    tcp-workers: 1
    background-workers: 2
database:
    storage: "$D/db"
log:
  - target: stderr
    any: info
policy:
  - id: bench
    algorithm: ecdsap256sha256
    ksk-lifetime: 0
    zsk-lifetime: 0
    nsec3: on
    nsec3-opt-out: on
    nsec3-iterations: 0
    nsec3-salt-length: 0
    signing-threads: 2
template:
  - id: default
    storage: "$D"
    semantic-checks: off
    zonefile-sync: -1
    zonefile-load: difference
    journal-content: changes
    journal-max-usage: 4G
zone:
  - domain: be.
    file: "$D/be.zone"
    dnssec-signing: on
    dnssec-policy: bench
CONF
  t0=$(date +%s.%N)
  knotd -c "$D/knot.conf" > "$D/log" 2>&1 &
  SRV=$!; PIDS+=("$SRV")
  until dig +dnssec +norec -p "$PORT" @127.0.0.1 be. SOA 2>/dev/null | grep -q RRSIG; do sleep 0.5; kill -0 "$SRV"; done
  echo "knot: signed and serving $(echo "$(date +%s.%N) - $t0" | bc) s after start, RSS $(rss_mb "$SRV") MB"
  sleep 5
  lat idle-knot 15; wait $!; cat "$WORK/lat-idle-knot"
  before=$(serial)
  cp "$WORK/changed.zone" "$D/be.zone"
  lat reload-knot 30; LP=$!
  python3 "$ROOT/contrib/bench/soa_wait.py" "$PORT" be. "$before" > "$WORK/t2-knot" & SW=$!; PIDS+=("$SW")
  sleep 3
  t0=$(date +%s.%N)
  knotc -c "$D/knot.conf" zone-reload be. >/dev/null
  wait "$SW"
  t2=$(cat "$WORK/t2-knot")
  wait "$LP"
  echo "knot reload: new serial answering after $(echo "$t2 - $t0" | bc) s; RSS max $(hwm_mb "$SRV") MB"
  cat "$WORK/lat-reload-knot"
  python3 "$ROOT/contrib/bench/latency.py" --span "$WORK/lat-idle-knot.dump" "$RATE" 1 15 "knot idle, after its first second"
  lat_span reload-knot 30 "$t0" "$t2" "knot: answers sent while the reload ran (to the window's end at most)"
  grep -i 'signing\|loaded\|zone file' "$D/log" | tail -4
  kill "$SRV"; wait "$SRV" || true
fi
if [ "$WHAT" = resign ]; then
  export BELFRY_TEST_CLOCK=speed=600
  WORKERS=1 start_belfry resign
  unset BELFRY_TEST_CLOCK
  taskset -apc 0 "$SRV" >/dev/null
  TID=$(grep -l '^belfry-udp-0$' /proc/"$SRV"/task/*/comm | head -1 | cut -d/ -f5)
  wcpu() { # label: unthrottled dnsperf on CPU 1 for 15 s; the UDP worker's and the whole server's CPU per query
    local t0 t1 p0 p1 q hz
    hz=$(getconf CLK_TCK)
    t0=$(awk '{print $14 + $15}' "/proc/$SRV/task/$TID/stat"); p0=$(cpu_ticks "$SRV")
    q=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$PORT" -d "$QUERIES" -D -l 15 -c 16 -q 300 2>/dev/null |
      awk '/Queries completed/ {print $3}')
    t1=$(awk '{print $14 + $15}' "/proc/$SRV/task/$TID/stat"); p1=$(cpu_ticks "$SRV")
    echo "$1: $q answers, UDP worker $(echo "scale=2; ($t1 - $t0) * 1000000 / $hz / $q" | bc) us/q," \
      "whole server $(echo "scale=2; ($p1 - $p0) * 1000000 / $hz / $q" | bc) us/q"
  }
  left() { "$BIN" key status --config "$D/belfry.toml" | grep -o 're-signing for the key set: [0-9]* RRsets left' || echo 'nothing left to re-sign'; }
  wcpu "idle, round 1"
  "$BIN" key roll zsk --config "$D/belfry.toml" --by bench >/dev/null
  # The count appears when the new key is published; the re-sign starts once it is ready.
  until left | grep -q 'RRsets left'; do sleep 1; kill -0 "$SRV"; done
  n0=$(left | grep -o '[0-9]* RRsets' | cut -d' ' -f1)
  until n=$(left | grep -o '[0-9]* RRsets' | cut -d' ' -f1) && [ "${n:-$n0}" -lt "$n0" ]; do
    sleep 1; kill -0 "$SRV"
  done
  for r in 1 2 3; do
    left; wcpu "during the re-sign, round $r"
  done
  left
fi
if [ "$WHAT" = listab ]; then
  # Issue 9's per-query figure as an interleaved A/B: two servers on the same zone and keys'
  # kind, A with an empty list (port 5400), B with 100,000 listed (port 5410), measured in
  # turns (A B B A per round, ROUNDS rounds of 5 s each) so drift of a shared machine falls
  # on both; medians per server and their ratio.
  ROUNDS=${ROUNDS:-6}
  # LISTED_FIRST=1 starts the server that gets the list first (the start order, reversed).
  if [ "${LISTED_FIRST:-0}" = 1 ]; then
    PORT=5410 start_belfry list-b; SRV_B=$SRV; D_B=$D
    start_belfry list-a; SRV_A=$SRV; D_A=$D
  else
    start_belfry list-a; SRV_A=$SRV; D_A=$D
    PORT=5410 start_belfry list-b; SRV_B=$SRV; D_B=$D
  fi
  tail -n 100000 "$DATA/domains-$N.txt" > "$WORK/bulk.txt"
  awk 'NR == FNR {b[$1] = 1; next} {n = $1; sub(/^[^.]*\./, "", n); if (!b[$1] && !b[n]) print}' \
    "$WORK/bulk.txt" "$QUERIES" > "$WORK/unlisted.txt"
  signed=$(grep -c 'signed [0-9]* RRsets' "$D_B/log")
  "$BIN" suppress --config "$D_B/belfry.toml" add --from-file "$WORK/bulk.txt" --reason bench --case BENCH-1 --by bench | tail -1
  for _ in $(seq 60); do [ "$(grep -c 'signed [0-9]* RRsets' "$D_B/log")" -gt "$signed" ] && break; sleep 1; done
  sleep 20
  one() { # server (a|b) file label
    if [ "$1" = a ]; then SRV=$SRV_A PORT=5400; else SRV=$SRV_B PORT=5410; fi
    cpu "$1 $3" 5 "$2"
  }
  for r in $(seq "$ROUNDS"); do
    one a "$QUERIES" all; one b "$QUERIES" all; one b "$WORK/unlisted.txt" unlisted; one a "$WORK/unlisted.txt" unlisted
  done | tee "$WORK/ab"
  python3 - "$WORK/ab" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\w) (\w+): \d+ answers, ([0-9.]+) us/q", line)
    if m:
        runs.setdefault((m[1], m[2]), []).append(float(m[3]))
for q in ("all", "unlisted"):
    a, b = statistics.median(runs[("a", q)]), statistics.median(runs[("b", q)])
    pairs = [y / x for x, y in zip(runs[("a", q)], runs[("b", q)])]
    print(f"{q} queries: median {a:.2f} us/q with the list empty, {b:.2f} with 100,000 listed "
          f"({100 * (b / a - 1):+.1f} %); per-round ratios {' '.join(f'{p:.3f}' for p in pairs)}, "
          f"median {statistics.median(pairs):.3f}")
PY
  kill "$SRV_A" "$SRV_B"; wait "$SRV_A" "$SRV_B" || true
fi
rm -rf "$WORK"
