#!/usr/bin/env python3
"""CPU per batch of ``DriftPipeline.process`` alone (one process, no Kafka) over
``bench_stream.py``'s backlog, batch by batch: where a backlog's time goes, from the batch that
makes every monitor, through the warm-up and the batch in which the references complete, to the
watched values after them.

Printed: each batch's CPU with the events per model seen by its end, the medians of the warm-up
batches and of those after the references, and the total. At 512 models the batch in which all
512 x 20 references complete is the largest part of the whole (see docs/benchmarks.md).
``--time module:function ...`` (as ``time_functions.py`` takes them) also prints the CPU each named
function took in that batch (times include what a function calls; nested timers overlap).

    python scripts/backlog_batches.py [--models 512] [--events 1200000] [--batch 20000] [--time module:function ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_stream  # noqa: E402
import time_functions  # noqa: E402

REFERENCE_SIZE = 1000  # as bench_stream.py's worker


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=512)
    parser.add_argument("--events", type=int, default=1_200_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--time", nargs="+", default=[], metavar="MODULE:FUNCTION",
                        help="functions whose CPU in the batch in which the references complete is printed")
    args = parser.parse_args()
    messages = bench_stream.backlog(args.events, args.models)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "streamdrift.toml"
        config.write_text(f"[detectors]\nreference_size = {REFERENCE_SIZE}\n")
        pipeline, records = bench_stream.pipeline_on(messages, config)
    spent: dict[str, list[float]] = {}
    for name in args.time:
        time_functions.timed(name, spent)
    costs = []  # (events per model by the batch's end, ms of CPU)
    in_batch = []  # per batch: CPU seconds of each timed function in it
    for start in range(0, len(records), args.batch):
        before = {name: entry[1] for name, entry in spent.items()}
        began = time.process_time()
        pipeline.process(records[start:start + args.batch])
        costs.append((min(start + args.batch, len(records)) / args.models, (time.process_time() - began) * 1e3))
        in_batch.append({name: entry[1] - before[name] for name, entry in spent.items()})
    print(f"DriftPipeline.process alone, {args.events:,} events of {args.models} models x {bench_stream.FEATURES} "
          f"numeric features, batches of {args.batch:,}, reference_size {REFERENCE_SIZE}")
    print("   ms of CPU per batch (events per model by its end: ms):")
    print("   " + " ".join(f"{seen:.0f}:{ms:.0f}" for seen, ms in costs))
    per_batch = args.batch / args.models
    warm_up = [ms for seen, ms in costs[1:] if seen <= REFERENCE_SIZE]
    after = [ms for seen, ms in costs if seen > REFERENCE_SIZE + per_batch]
    fitting = [ms for seen, ms in costs if REFERENCE_SIZE < seen <= REFERENCE_SIZE + per_batch]
    total = sum(ms for _, ms in costs)
    print(f"   the first batch (makes every monitor): {costs[0][1]:,.0f} ms; the warm-up's other batches: median "
          + (f"{statistics.median(warm_up):,.0f} ms" if warm_up else "-"))
    print("   the batch in which the references complete: "
          + (f"{fitting[0]:,.0f} ms ({fitting[0] / total:.0%} of the total)" if fitting else "- (none)"))
    at = next((i for i, (seen, _) in enumerate(costs) if REFERENCE_SIZE < seen <= REFERENCE_SIZE + per_batch), None)
    if at is not None:
        for name, seconds in in_batch[at].items():
            print(f"      {name}: {seconds * 1e3:,.0f} ms")
    print("   batches after the references: median " + (f"{statistics.median(after):,.0f} ms" if after else "-"))
    print(f"   total {total / 1e3:.2f} s: {args.events / (total / 1e3):,.0f} events/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
