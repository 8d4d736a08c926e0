#!/usr/bin/env python3
"""Latency percentiles from `dnsperf -v` output (one line per answer, the last field in seconds).

Usage: dnsperf ... -v | latency.py [LABEL]
       latency.py --span DUMP RATE FROM TO LABEL
       latency.py --windows DUMP RATE FROM TO LEN STEP LABEL

LAT_DUMP=FILE keeps every latency, in the order the answers came, in FILE, and the
wall-clock time dnsperf's output ended in FILE.end: now, or LAT_END when the output was
kept in a file and is read later (dnsperf -l SECONDS sends for that long, so it started
sending SECONDS before). At a fixed rate (dnsperf -Q RATE) answer
i was sent about i / RATE seconds after the start, so `--span` gives the percentiles
of the answers sent between FROM and TO seconds after it: a stretch of time inside
the window, such as a reload. `--windows` gives the spread of the p99 of every LEN-second
stretch of FROM-TO (stepping STEP seconds): how much a stretch as long as a reload moves
when nothing changes.

LAT_WINDOW=N: also the p99 of every N answers in the order they came (at a fixed
rate, a window is a stretch of time: 10,000 answers at 20,000 qps = 0.5 s).
"""
import os
import sys
import time
from array import array


def pct(ordered_lat, p):
    """Percentile p of sorted latencies, in ms."""
    return ordered_lat[min(len(ordered_lat) - 1, int(p / 100 * len(ordered_lat)))] * 1000


def report(label, lat, what):
    """Print the percentiles of `lat` (in arrival order) and, with LAT_WINDOW, of each window."""
    s = sorted(lat)
    print(f"{label}: {len(s)} answers{what}, p50 {pct(s, 50):.3f} ms, p90 {pct(s, 90):.3f} ms, "
          f"p99 {pct(s, 99):.3f} ms, max {s[-1] * 1000:.3f} ms")
    w = int(os.environ.get("LAT_WINDOW", "0"))
    if w > 0:
        parts = [f"{pct(sorted(lat[i:i + w]), 99):.2f}" for i in range(0, len(lat), w)]
        print(f"{label}: p99 (ms) of each {w} answers: " + " ".join(parts))


def load(dump):
    a = array("d")
    with open(dump, "rb") as f:
        a.frombytes(f.read())
    return a


if len(sys.argv) == 9 and sys.argv[1] == "--windows":
    # The spread of the p99 over every LEN-second stretch of FROM-TO, stepping STEP seconds:
    # how far the p99 of a stretch as long as a reload moves with nothing changing.
    _, _, dump, rate, t_from, t_to, length, step, label = sys.argv
    a, rate = load(dump), float(rate)
    t, p99s = float(t_from), []
    while t + float(length) <= float(t_to) + 1e-9:
        lo, hi = int(t * rate), min(len(a), int((t + float(length)) * rate))
        if hi > lo:
            p99s.append(pct(sorted(a[lo:hi]), 99))
        t += float(step)
    if not p99s:
        print(f"{label}: no stretch of {length} s in {t_from}-{t_to} s")
        sys.exit(1)
    whole = pct(sorted(a[int(float(t_from) * rate):int(float(t_to) * rate)]), 99)
    s = sorted(p99s)
    print(f"{label}: p99 of each {float(length):.2f} s stretch ({len(s)}, every {step} s): "
          f"min {s[0]:.3f}, median {s[len(s) // 2]:.3f}, max {s[-1]:.3f} ms; "
          f"{sum(x > 2 * whole for x in s)} above 2x the whole span's {whole:.3f} ms")
    sys.exit(0)

if len(sys.argv) == 7 and sys.argv[1] == "--span":
    _, _, dump, rate, t_from, t_to, label = sys.argv
    a, rate = load(dump), float(rate)
    lo, hi = max(0, int(float(t_from) * rate)), min(len(a), int(float(t_to) * rate))
    if lo >= hi:
        print(f"{label}: no answers in {t_from}-{t_to} s")
        sys.exit(1)
    report(label, a[lo:hi], f" sent {float(t_from):.2f}-{float(t_to):.2f} s into the window")
    sys.exit(0)

ordered = []
for ln in sys.stdin:
    f = ln.split()
    if len(f) >= 4 and f[0] == ">":
        try:
            ordered.append(float(f[-1]))
        except ValueError:
            pass
label = sys.argv[1] if len(sys.argv) > 1 else "latency"
if not ordered:
    print(f"{label}: no answers")
    sys.exit(1)
if os.environ.get("LAT_DUMP"):
    with open(os.environ["LAT_DUMP"] + ".end", "w") as f:
        print(os.environ.get("LAT_END") or f"{time.time():.3f}", file=f)
    with open(os.environ["LAT_DUMP"], "wb") as f:
        array("d", ordered).tofile(f)
report(label, ordered, "")
