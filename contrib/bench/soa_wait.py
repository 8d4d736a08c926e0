#!/usr/bin/env python3
"""Wait until a server's SOA serial differs from BEFORE; print the wall-clock time it was seen.

Usage: soa_wait.py PORT ORIGIN BEFORE [INTERVAL] [TIMEOUT]

BEFORE may be empty (the serial could not be read): then any serial ends the wait. After
TIMEOUT seconds (300 by default) without a change it gives up and exits 1.

One process that polls over one UDP socket (every INTERVAL seconds, 0.005 by default), where a
shell loop would fork a `dig` a hundred times a second: on two cores that loop delays the very
answers whose latency the reload benchmark measures.
"""
import socket
import struct
import sys
import time


def qname(origin):
    out = b""
    for label in origin.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def skip_name(msg, i):
    while True:
        n = msg[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += 1 + n


def serial(msg):
    """The serial of the first SOA record in the answer section, or None."""
    qd, an = struct.unpack("!HH", msg[4:8])
    i = 12
    for _ in range(qd):
        i = skip_name(msg, i) + 4
    for _ in range(an):
        i = skip_name(msg, i)
        rtype, _, _, rdlen = struct.unpack("!HHIH", msg[i:i + 10])
        i += 10
        if rtype == 6:
            j = skip_name(msg, skip_name(msg, i))
            return struct.unpack("!I", msg[j:j + 4])[0]
        i += rdlen
    return None


def main():
    port, origin = int(sys.argv[1]), sys.argv[2]
    before = int(sys.argv[3]) if sys.argv[3].isdigit() else None
    interval = float(sys.argv[4]) if len(sys.argv) > 4 else 0.005
    deadline = time.time() + (float(sys.argv[5]) if len(sys.argv) > 5 else 300)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    qid = 0
    while True:
        if time.time() > deadline:
            print(f"no new serial after {sys.argv[5] if len(sys.argv) > 5 else 300} s", file=sys.stderr)
            sys.exit(1)
        qid = (qid + 1) & 0xFFFF
        s.sendto(struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + qname(origin) + struct.pack("!HH", 6, 1),
                 ("127.0.0.1", port))
        try:
            while True:
                msg = s.recv(4096)
                if struct.unpack("!H", msg[:2])[0] == qid:
                    break
        except socket.timeout:
            continue
        try:
            got = serial(msg)
        except (IndexError, struct.error):
            got = None
        if got is not None and got != before:
            print(f"{time.time():.6f}")
            return
        time.sleep(interval)


main()
