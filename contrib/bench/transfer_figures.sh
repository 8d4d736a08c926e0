#!/usr/bin/env bash
# Figures for zone transfers out (README "Performance"), on loopback, modest load.
#
#   contrib/bench/transfer_figures.sh latency [CYCLES] [PAUSE_MS]   # suppress -> NXDOMAIN on a Knot secondary
#   contrib/bench/transfer_figures.sh axfr [N]           # AXFR of a generated zone: belfry->Knot vs Knot->Knot
#   contrib/bench/transfer_figures.sh axfr-load [ROUNDS]  # UDP worker CPU per query, idle vs while an AXFR streams
#
# Needs a release build (cargo build --release --examples) and knotd/kdig/dig.
# Every daemon started here is stopped by its PID; scratch files go to $WORK.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BELFRY=$ROOT/target/release/belfry
WORK=${WORK:-/tmp/belfry-xfr-figures}
MODE=${1:-latency}
rm -rf "$WORK"; mkdir -p "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# belfry on $ZONE with fresh keys; transfers from loopback; a Knot secondary to notify.
start_belfry() { # zone-file knot-port
  local d=$WORK/belfry; mkdir -p "$d"
  cp "$1" "$d/be.zone"
  "$BELFRY" keygen --zone be. --role ksk --dir "$d/keys" >/dev/null
  "$BELFRY" keygen --zone be. --role zsk --dir "$d/keys" >/dev/null
  printf 'figures-token-0123456789abcdef' > "$d/admin.token"; chmod 600 "$d/admin.token"
  BPORT=$(port); APORT=$(port)
  cat > "$d/belfry.toml" <<CONF
[server]
listen = ["127.0.0.1:$BPORT"]
workers = 1
[zone]
origin = "be."
file = "be.zone"
[dnssec]
enabled = true
key_dir = "keys"
[suppress]
file = "suppressions.toml"
audit_log = "audit.log"
admin_listen = "127.0.0.1:$APORT"
admin_token_file = "admin.token"
[state]
dir = "state"
[rrl]
exempt = ["127.0.0.0/8"]
[[acl.transfer]]
from = ["127.0.0.0/8"]
[transfer]
[[transfer.secondary]]
name = "knot"
address = "127.0.0.1:$2"
source = "127.0.0.2"
CONF
  "$BELFRY" serve --config "$d/belfry.toml" 2> "$d/belfry.log" &
  PIDS+=($!)
  for _ in $(seq 600); do
    curl -sf -H "Authorization: Bearer $(cat "$d/admin.token")" "http://127.0.0.1:$APORT/v1/status" 2>/dev/null \
      | grep -q '"fully_signed":true' && return 0
    sleep 0.5
  done
  echo "belfry did not finish signing" >&2; exit 1
}

# A Knot secondary of be. from 127.0.0.1@$2 (transfers from source $3), listening on $1.
start_knot_secondary() { # port primary-port source name
  local d=$WORK/$4; mkdir -p "$d/db"
  cat > "$d/knot.conf" <<CONF
server:
    rundir: "$d"
    listen: 127.0.0.1@$1
database:
    storage: "$d/db"
log:
  - target: stderr
    any: info
remote:
  - id: primary
    address: 127.0.0.1@$2
    via: $3
acl:
  - id: notify
    address: 127.0.0.1
    action: notify
template:
  - id: default
    storage: "$d"
    zonefile-sync: -1
    journal-content: changes
zone:
  - domain: be.
    master: primary
    acl: notify
CONF
  knotd -c "$d/knot.conf" 2> "$d/knot.log" &
  PIDS+=($!)
}

wait_serial() { # port serial
  for _ in $(seq 6000); do
    [ "$(dig @127.0.0.1 -p "$1" +short +time=1 +tries=1 be. SOA 2>/dev/null | awk '{print $3}')" = "$2" ] && return 0
    sleep 0.05
  done
  echo "no serial $2 on port $1" >&2; exit 1
}

case "$MODE" in
latency)
  CYCLES=${2:-100}
  KPORT=$(port)
  start_belfry "$ROOT/zones/be.zone" "$KPORT"
  start_knot_secondary "$KPORT" "$BPORT" 127.0.0.2 knot
  wait_serial "$KPORT" "$(dig @127.0.0.1 -p "$BPORT" +short be. SOA | awk '{print $3}')"
  # Delegations of the sample zone (names with NS below the apex, not registry names).
  awk '$4=="NS" && $1 ~ /^[a-z0-9-]+\.be\.$/ {print $1}' "$ROOT/zones/be.zone" \
    | sort -u | head -200 > "$WORK/domains.txt"
  "$ROOT/target/release/examples/secondary_latency" "127.0.0.1:$KPORT" "127.0.0.1:$APORT" \
    "$WORK/belfry/admin.token" "$WORK/domains.txt" "$CYCLES" "${3:-0}"
  echo "IXFR of one suppression (belfry's log):"
  grep 'IXFR to' "$WORK/belfry/belfry.log" | sed -n '2p;4p;6p'
  "$BELFRY" status --config "$WORK/belfry/belfry.toml"
  ;;
axfr)
  N=${2:-200000}
  "$BELFRY" generate -n "$N" --seed 7 > "$WORK/gen.zone" 2>/dev/null
  KPORT=$(port)
  start_belfry "$WORK/gen.zone" "$KPORT"
  # Not while the first checkpoint is being written: wait for it, then for the machine to settle.
  until grep -q 'checkpoint of serial' "$WORK/belfry/belfry.log"; do sleep 1; done
  sleep 5
  echo "belfry -> a client that only reads:"
  "$ROOT/target/release/examples/axfr_reader" "127.0.0.1:$BPORT" be. 2
  SERIAL=$(dig @127.0.0.1 -p "$BPORT" +short be. SOA | awk '{print $3}')
  start_knot_secondary "$KPORT" "$BPORT" 127.0.0.2 knot
  wait_serial "$KPORT" "$SERIAL"
  echo "belfry -> Knot:"
  grep 'AXFR to' "$WORK/belfry/belfry.log" | tail -1
  grep 'AXFR, incoming' "$WORK/knot/knot.log" | grep finished | tail -1
  # The same signed zone, served by a Knot primary to a second Knot secondary.
  dig @127.0.0.1 -p "$BPORT" be. AXFR +nocmd +nostats +nocomments > "$WORK/signed.zone"
  sed -i '$d' "$WORK/signed.zone"
  PPORT=$(port); K2PORT=$(port)
  mkdir -p "$WORK/kprim/db"
  cat > "$WORK/kprim/knot.conf" <<CONF
server:
    rundir: "$WORK/kprim"
    listen: 127.0.0.1@$PPORT
database:
    storage: "$WORK/kprim/db"
log:
  - target: stderr
    any: info
acl:
  - id: out
    address: 127.0.0.0/8
    action: transfer
template:
  - id: default
    storage: "$WORK"
    zonefile-sync: -1
zone:
  - domain: be.
    file: signed.zone
    acl: out
CONF
  knotd -c "$WORK/kprim/knot.conf" 2> "$WORK/kprim/knot.log" &
  PIDS+=($!)
  wait_serial "$PPORT" "$SERIAL"
  start_knot_secondary "$K2PORT" "$PPORT" 127.0.0.5 knot2
  wait_serial "$K2PORT" "$SERIAL"
  echo "Knot -> Knot:"
  grep 'AXFR, outgoing' "$WORK/kprim/knot.log" | grep finished | tail -1
  grep 'AXFR, incoming' "$WORK/knot2/knot.log" | grep finished | tail -1
  echo "records: $(wc -l < "$WORK/signed.zone") (+1 closing SOA)"
  ;;
axfr-load)
  # The harness mix (signed bench zone, DO=1 on every query) against one UDP worker, with the whole
  # server pinned to CPU 0 and the load on CPU 1: the worker thread's CPU per answered query with
  # nothing else running, and while a reading client AXFRs the zone back to back. Rounds interleave.
  # PIN=worker: only the UDP worker on CPU 0, the server's other threads (the transfer's) on CPU 1.
  DATA=${DATA:-/tmp/bench-data}; N=${N:-1800000}; ROUNDS=${2:-3}
  start_belfry "$DATA/be-$N.zone" "$(port)"
  SRV=${PIDS[-1]}
  TID=$(grep -l '^belfry-udp-0$' /proc/"$SRV"/task/*/comm | head -1 | cut -d/ -f5)
  if [ "${PIN:-all}" = worker ]; then
    taskset -apc 1 "$SRV" >/dev/null; taskset -pc 0 "$TID" >/dev/null
  else
    taskset -apc 0 "$SRV" >/dev/null
  fi
  tticks() { awk '{print $14 + $15}' "/proc/$SRV/task/$TID/stat"; }
  pticks() { awk '{print $14 + $15}' "/proc/$SRV/stat"; }
  for r in $(seq "$ROUNDS"); do
    for m in idle axfr; do
      READER=""
      if [ "$m" = axfr ]; then
        taskset -c 1 "$ROOT/target/release/examples/axfr_reader" "127.0.0.1:$BPORT" be. 1000 \
          > "$WORK/reader-$r.txt" 2>&1 &
        READER=$!; sleep 1
      fi
      t0=$(tticks); p0=$(pticks)
      q=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$BPORT" -d "$DATA/queries-$N.txt" -D -l 15 -c 16 -q 300 \
        2>/dev/null | awk '/Queries completed/ {print $3}')
      t1=$(tticks); p1=$(pticks)
      [ -n "$READER" ] && { kill "$READER" 2>/dev/null; wait "$READER" 2>/dev/null || true; }
      hz=$(getconf CLK_TCK)
      echo "round $r, $m: $q answers, UDP worker $(echo "scale=2; ($t1 - $t0) * 1000000 / $hz / $q" | bc) us/q," \
        "whole server $(echo "scale=2; ($p1 - $p0) * 1000000 / $hz / $q" | bc) us/q"
      [ "$m" = axfr ] && { echo "  transfers during it: $(grep -c records "$WORK/reader-$r.txt")"; tail -1 "$WORK/reader-$r.txt"; }
    done
  done
  ;;
*) sed -n 2,9p "$0"; exit 2;;
esac
