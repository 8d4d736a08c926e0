#!/usr/bin/env python3
"""Write a copy of a generated zone that differs in a set number of delegations.

Usage: mkchange.py ZONE OUT [--add 400] [--remove 300] [--change 300] [--seed 1]

Removed delegations lose their NS, DS and glue; changed ones get a new NS set
and a new DS (added when they had none); added ones get two out-of-zone NS and,
one in three, a DS. The SOA serial is raised by one. Deterministic per seed.
"""
import argparse
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("zone")
    ap.add_argument("out")
    ap.add_argument("--add", type=int, default=400)
    ap.add_argument("--remove", type=int, default=300)
    ap.add_argument("--change", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    lines = open(a.zone).read().splitlines()
    owners = []
    seen = set()
    for ln in lines:
        f = ln.split()
        if len(f) >= 4 and f[3] == "NS" and f[0] != "be." and f[0] not in seen:
            seen.add(f[0])
            owners.append(f[0])
    picked = rng.sample(owners, a.remove + a.change)
    removed = set(picked[: a.remove])
    changed = set(picked[a.remove :])
    out = []
    done_change = set()
    for ln in lines:
        f = ln.split()
        if len(f) >= 7 and f[3] == "SOA":
            f[6] = str(int(f[6]) + 1)
            out.append(" ".join(f))
            continue
        if len(f) < 4:
            out.append(ln)
            continue
        owner = f[0]
        # Glue below a removed delegation goes with it.
        parent = owner.split(".", 1)[1] if owner.count(".") > 2 else owner
        if owner in removed or parent in removed:
            continue
        if owner in changed and f[3] in ("NS", "DS"):
            if owner not in done_change:
                done_change.add(owner)
                out.append(f"{owner} 3600 IN NS ns1.changed{a.seed}.net.")
                out.append(f"{owner} 3600 IN NS ns2.changed{a.seed}.net.")
                digest = "%064X" % rng.getrandbits(256)
                out.append(f"{owner} 3600 IN DS {rng.randrange(65536)} 13 2 {digest}")
            continue
        out.append(ln)
    for i in range(a.add):
        owner = f"added{a.seed}x{i}.be."
        out.append(f"{owner} 3600 IN NS ns1.added{a.seed}.org.")
        out.append(f"{owner} 3600 IN NS ns2.added{a.seed}.org.")
        if i % 3 == 0:
            digest = "%064X" % rng.getrandbits(256)
            out.append(f"{owner} 3600 IN DS {rng.randrange(65536)} 13 2 {digest}")
    with open(a.out, "w") as fh:
        fh.write("\n".join(out) + "\n")
    print(f"{a.out}: {a.remove} removed, {a.change} changed, {a.add} added")


if __name__ == "__main__":
    main()
