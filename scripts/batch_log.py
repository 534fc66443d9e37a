#!/usr/bin/env python3
"""Where a worker's batches spend their time, from its debug log: the distributions of what
``streamdrift run --log-level debug`` writes per batch (``stream/worker.py``: ``batch of N events
(the oldest produced W ms before): pipeline P ms, publishing U ms, A alerts; C ms of CPU in all``).

``W`` is how long before the batch started its oldest event was produced (by its Kafka
timestamp): the time it spent in the producer, the broker and the fetch, and waiting for the
batches before it. With ``scripts/bench_stream.py --keep DIR --log-level debug`` the worker's log
is ``DIR/worker.log``; ``--last 21`` keeps the batches of its last 21 seconds (the latency phase
(c) at its default length, which ends the log but for the stop). Each line of the output is one
quantity's 10th, 50th, 90th and 99th percentile, maximum and mean.

    python scripts/batch_log.py DIR/worker.log [--last SECONDS]

>>> rows = read(["2026-12-07 14:35:27,854 DEBUG streamdrift.worker: batch of 4931 events (the oldest "
...              "produced 320 ms before): pipeline 54.6 ms, publishing 1.3 ms, 0 alerts; 48.6 ms of CPU in all"])
>>> rows[0][1:]
(4931, 320.0, 54.6, 1.3, 0, 48.6)
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime

import numpy as np

_LINE = re.compile(r"^(\S+ \S+) DEBUG streamdrift\.worker: batch of (\d+) events \(the oldest produced (-?[\d.]+) ms "
                   r"before\): pipeline ([\d.]+) ms, publishing ([\d.]+) ms, (\d+) alerts; ([\d.]+) ms of CPU in all")
_COLUMNS = ("events", "oldest event's age at the start, ms", "pipeline, ms (wall)", "publishing, ms (wall)",
            "alerts", "CPU, ms")


def read(lines) -> list[tuple]:
    """Each batch line's (time in seconds, events, oldest's age ms, pipeline ms, publishing ms,
    alerts, CPU ms); other lines are skipped."""
    rows = []
    for line in lines:
        found = _LINE.search(line)
        if found:
            at = datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            rows.append((at, int(found[2]), float(found[3]), float(found[4]), float(found[5]), int(found[6]),
                         float(found[7])))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", help="a worker log written at --log-level debug")
    parser.add_argument("--last", type=float, help="only the batches of the log's last SECONDS")
    args = parser.parse_args()
    with open(args.log, encoding="utf-8", errors="replace") as f:
        rows = read(f)
    if args.last and rows:
        rows = [row for row in rows if row[0] > rows[-1][0] - args.last]
    if not rows:
        print(f"{args.log}: no batch lines (is the worker's --log-level debug?)", file=sys.stderr)
        return 1
    table = np.array([row[1:] for row in rows], dtype=float)
    span = rows[-1][0] - rows[0][0]
    print(f"{len(rows)} batches over {span:.1f} s, {int(table[:, 0].sum()):,} events; "
          f"CPU per event {table[:, 5].sum() / table[:, 0].sum() * 1e3:.1f} us; "
          f"pipeline wall / CPU {table[:, 2].sum() / table[:, 5].sum():.2f}")
    print(f"   {'':<38}{'p10':>9}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}{'mean':>9}")
    for column, name in enumerate(_COLUMNS):
        values = table[:, column]
        p10, p50, p90, p99 = np.percentile(values, [10, 50, 90, 99])
        print(f"   {name:<38}{p10:>9.1f}{p50:>9.1f}{p90:>9.1f}{p99:>9.1f}{values.max():>9.1f}{values.mean():>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
