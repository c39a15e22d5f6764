#!/usr/bin/env python3
"""Prints the median and its 95 % interval of every warm benchmark from criterion's estimates
(target/criterion/<group>/<benchmark>/new/estimates.json), only those newer than the stamp
file given as the first argument if any, group by group, in the order they ran.

`make bench-warm` sends the benchmark's stdout, where the functions' metric lines go, to a file
and prints this instead: a log line written to a pipe that another process reads costs about
39 µs more per request on this 2-core VM (the reader's wake-up), which is the sink's price,
not the handler's (BENCHMARKS.md, "Where stdout goes").
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GROUPS = ["warm", "fresh-client", "sdk-alone", "password"]


def main() -> int:
    # With a stamp file, only the estimates written since it (this run's).
    since = os.path.getmtime(sys.argv[1]) if len(sys.argv) > 1 else 0
    base = os.path.join(ROOT, "target", "criterion")
    rows = []
    for group in GROUPS:
        directory = os.path.join(base, group)
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name, "new", "estimates.json")
            if not os.path.exists(path) or os.path.getmtime(path) < since:
                continue
            median = json.load(open(path))["median"]
            rows.append(((GROUPS.index(group), os.path.getmtime(path)), f"{group}/{name}", median))
    if not rows:
        print("no criterion estimates: run `make bench-warm`", file=sys.stderr)
        return 1
    print(f"{'benchmark':<48} {'median µs':>10} {'95 % interval':>22}")
    for _, name, median in sorted(rows):
        low = median["confidence_interval"]["lower_bound"] / 1000
        high = median["confidence_interval"]["upper_bound"] / 1000
        print(f"{name:<48} {median['point_estimate'] / 1000:>10.1f} {low:>10.1f} - {high:<10.1f}")
        # A `...-batch-of-N` scenario times N messages in one invocation: show one's share.
        size = name.rsplit("-batch-of-", 1)[1] if "-batch-of-" in name else None
        if size and size.isdigit():
            n = int(size)
            print(f"{'  per message (/' + size + ')':<48} {median['point_estimate'] / 1000 / n:>10.1f} "
                  f"{low / n:>10.1f} - {high / n:<10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
