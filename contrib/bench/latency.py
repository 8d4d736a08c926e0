#!/usr/bin/env python3
"""Latency percentiles from `dnsperf -v` output (one line per answer, the last field in seconds).

Usage: dnsperf ... -v | latency.py [LABEL]
"""
import sys

lat = []
ordered = []
for ln in sys.stdin:
    f = ln.split()
    if len(f) >= 4 and f[0] == ">":
        try:
            lat.append(float(f[-1]))
            ordered.append(lat[-1])
        except ValueError:
            pass
lat.sort()
label = sys.argv[1] if len(sys.argv) > 1 else "latency"
if not lat:
    print(f"{label}: no answers")
    sys.exit(1)


def pct(p):
    return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000


print(f"{label}: {len(lat)} answers, p50 {pct(50):.3f} ms, p90 {pct(90):.3f} ms, "
      f"p99 {pct(99):.3f} ms, max {lat[-1] * 1000:.3f} ms")

# LAT_WINDOW=N: also the p99 of every N answers in the order they came (at a
# fixed rate, a window is a stretch of time: 10,000 answers at 20,000 qps = 0.5 s).
import os

w = int(os.environ.get("LAT_WINDOW", "0"))
if w > 0 and ordered:
    parts = []
    for i in range(0, len(ordered), w):
        win = sorted(ordered[i:i + w])
        parts.append(f"{win[min(len(win) - 1, int(0.99 * len(win)))] * 1000:.2f}")
    print(f"{label}: p99 (ms) of each {w} answers: " + " ".join(parts))
