#!/usr/bin/env python3
"""What a batch costs the pipeline: ``DriftPipeline.process`` on batches of several sizes, over
models whose monitors are all fitted (the processor's steady state), no Kafka, one process.

Each model has 20 numeric standard-normal features; events go to the models round-robin, so a
batch of B events gives each of M models about B / M values. The figures split into a fixed cost
per (model, batch) and a cost per event: the processor pays the first once per batch, so small
batches (a lightly loaded worker) cost more per event.

The fixed cost is read where it is, at the smallest batches: the whole cost of a batch of one
event per model (32 events for 32 models; the smallest size of at least one event per model)
bounds it from above, without extrapolating, and a line through the sizes of at most eight
events per model meets zero where the fixed cost is. The line through the sizes 250 to 20,000
is printed too, for comparison with the runs that had only those sizes (docs/benchmarks.md):
the cost per event falls with the batch (caches, ADWIN's blocks and the windowed tests due every
batch at a few dozen values per model), so that line bends, and its intercept, lifted by the
bend, is not a fixed cost (it came out above the whole cost of a 250-event batch).

The sizes are measured in rounds (``--rounds``, 3 by default), each round every size in turn, so
that a slow spell of the machine falls on all sizes alike rather than on one; each size's cost is
the median of its rounds, and the lines are fitted to the medians. Each round's own line through
250-20,000 events is printed too: their spread is what one pass (the script before 2026-12-07's ninth
session) could not show.

    python scripts/bench_batches.py [--models 32] [--sizes 32 64 128 250 ...] [--rounds 3] [--model-by-model]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import orjson

from streamdrift.config import Config
from streamdrift.detectors import MonitorSettings
from streamdrift.events import Record
from streamdrift.pipeline import DriftPipeline
from streamdrift.process_tuning import limit_blas_threads, tune_gc

FEATURES = 20
#: The sizes of the runs before the small ones were measured, and the line through them.
EARLIER_SIZES = (250, 500, 1000, 2000, 4000, 20000)


def events(rng: np.random.Generator, models: int, n: int, start: int, decimals: int | None = 6) -> list[Record]:
    """``n`` events of ``models`` models round-robin, their values rounded to ``decimals``
    (``None``: printed in full, up to 17 significant digits, as ``repr`` and ``orjson`` write a float)."""
    names = [f"f{j:02d}" for j in range(FEATURES)]
    values = rng.normal(0.0, 1.0, (n, FEATURES))
    rows = (values if decimals is None else np.round(values, decimals)).tolist()
    out = []
    for i, row in enumerate(rows, start):
        model = f"m-{i % models:03d}"
        value = orjson.dumps({"model": model, "ts": 1.7e9 + i * 0.001, "features": dict(zip(names, row))})
        out.append(Record(value, model.encode(), "features", 0, i, None))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=32)
    parser.add_argument("--sizes", type=int, nargs="+",
                        help="batch sizes in events (default: one, two and four events per model, then 250, 500, "
                             "1,000, 2,000, 4,000 and 20,000)")
    parser.add_argument("--rounds", type=int, default=3, help="passes over all sizes; each size's cost is the median")
    parser.add_argument("--model-by-model", action="store_true",
                        help="update each model's numeric features on its own (update_together per model), "
                             "as before update_groups_together: for before/after comparisons")
    args = parser.parse_args()
    sizes = sorted(set(args.sizes or [args.models, 2 * args.models, 4 * args.models, *EARLIER_SIZES]))
    if args.model_by_model:
        import streamdrift.pipeline as pipeline_module
        from streamdrift.detectors.together import update_together
        pipeline_module.update_groups_together = lambda groups: [update_together(*group) for group in groups]
    tune_gc()
    limit_blas_threads()
    config = Config(detectors=MonitorSettings(reference_size=1000))
    pipeline = DriftPipeline(config)
    rng = np.random.default_rng(0)
    position = 0
    warm = events(rng, args.models, args.models * 1300, position)  # past the reference and a margin
    position += len(warm)
    for i in range(0, len(warm), 20_000):
        pipeline.process(warm[i:i + 20_000])
    print(f"DriftPipeline.process, {args.models} fitted models x {FEATURES} numeric features, one process, "
          f"{args.rounds} round(s)")
    costs = np.empty((args.rounds, len(sizes)))
    for r in range(args.rounds):
        for j, size in enumerate(sizes):
            total = max(size * 20, 40_000)
            records = events(rng, args.models, total, position)
            position += total
            started = time.perf_counter()
            for i in range(0, total, size):
                pipeline.process(records[i:i + size])
            costs[r, j] = (time.perf_counter() - started) / (total / size)
    print(f"   {'batch':>8}{'per model':>11}{'us/event':>10}{'ms/batch':>10}   rounds, ms/batch")
    median = np.median(costs, axis=0)
    for j, size in enumerate(sizes):
        each = " ".join(f"{c * 1e3:.2f}" for c in costs[:, j])
        print(f"   {size:>8,}{size / args.models:>11.1f}{median[j] / size * 1e6:>10.1f}{median[j] * 1e3:>10.2f}   {each}")
    measured = np.array(sizes, dtype=float)
    wide = np.isin(measured, EARLIER_SIZES)
    if wide.sum() >= 2:
        for r in range(args.rounds):
            per_event, fixed = np.polyfit(measured[wide], costs[r, wide], 1)
            print(f"   round {r + 1}, least squares on the sizes 250-20,000: {fixed * 1e3:.1f} ms per batch + "
                  f"{per_event * 1e6:.1f} us per event")
        per_event, fixed = np.polyfit(measured[wide], median[wide], 1)
        print(f"   least squares on the medians of the sizes 250-20,000: {fixed * 1e3:.1f} ms per batch + "
              f"{per_event * 1e6:.1f} us per event (the line bends: its intercept is not the fixed cost)")
    small = measured <= 8 * args.models
    if small.sum() >= 2:
        per_event, fixed = np.polyfit(measured[small], median[small], 1)
        print(f"   least squares on the medians of the sizes of at most 8 events per model ({sizes[0]:,}-"
              f"{int(measured[small].max()):,} events): {fixed * 1e3:.2f} ms per batch + {per_event * 1e6:.1f} us per event")
    else:
        print("   (fewer than two sizes of at most 8 events per model: no line through the small batches)")
    whole = [j for j, size in enumerate(sizes) if size >= args.models]
    if whole:
        j = whole[0]
        print(f"fixed cost per batch for {args.models} models: at most {median[j] * 1e3:.2f} ms, the whole cost of a "
              f"batch of {sizes[j]:,} events ({sizes[j] / args.models:g} per model)")
    else:
        print(f"(no batch of at least one event per model: no bound on the fixed cost for {args.models} models)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
