#!/usr/bin/env python3
"""Soak run of the pure core: millions of events with rotating models through ``DriftPipeline``,
printing the process's resident memory over time. Not a test: run it for as long as you like
and read the table; memory should level off once the first idle window has passed.

Traffic: half the events come from a fixed set of steady models, half from cohorts of models
that are replaced every ``--rotate-every`` events (old cohorts fall silent and must be evicted
after ``--idle-seconds`` of event time). Every event also carries a categorical feature with a
new value each time (a session id), the worst case for categorical state. The pipeline is
checkpointed every ``--checkpoint-every`` batches, as the worker does.

The baseline is the first report after one idle window (warm-up done); the last column is the
resident memory as a ratio of that baseline, measured in the same run.

    python scripts/soak.py [--events 5000000] [--idle-seconds 600] [--max-growth 1.5]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import zlib

import numpy as np
import orjson

from streamdrift.config import Config, Limits
from streamdrift.detectors import MonitorSettings
from streamdrift.events import Record
from streamdrift.pipeline import DriftPipeline

COUNTRIES = ("DE", "FR", "US", "GB", "NL", "IT", "ES", "PL")
START_TS = 1_732_000_000.0
PARTITIONS = 4


def rss_mb() -> float:
    """Resident memory now (Linux), or the peak where /proc is not available."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def batches(args, rng: np.random.Generator):
    """Batches of input records, model ids rotating, event time advancing ``--spacing`` per event."""
    for start in range(0, args.events, args.batch):
        n = min(args.batch, args.events - start)
        positions = np.arange(start, start + n)
        steady = rng.random(n) < 0.5
        amounts = rng.lognormal(3, 1, n).round(4)
        scores = rng.normal(0, 1, n).round(4)
        countries = rng.integers(0, len(COUNTRIES), n)
        records = []
        for k, i in enumerate(positions.tolist()):
            if steady[k]:
                model = f"steady-{i % args.steady_models}"
            else:
                model = f"cohort-{i // args.rotate_every}-{i % args.cohort_size}"
            body = {"model": model, "ts": START_TS + i * args.spacing,
                    "features": {"amount": float(amounts[k]), "score": float(scores[k]),
                                 "country": COUNTRIES[countries[k]], "session": f"s-{i:010d}"}}
            records.append(Record(orjson.dumps(body), model.encode(), "features", zlib.crc32(model.encode()) % PARTITIONS, i, None))
        yield records


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=5_000_000, help="events in total")
    p.add_argument("--batch", type=int, default=5000, help="events per pipeline batch (the worker's batch_size)")
    p.add_argument("--steady-models", type=int, default=100, help="models that send events all the time")
    p.add_argument("--cohort-size", type=int, default=200, help="models per rotating cohort")
    p.add_argument("--rotate-every", type=int, default=30_000, help="events after which a new cohort takes over")
    p.add_argument("--spacing", type=float, default=0.05, help="event-time seconds between two events")
    p.add_argument("--idle-seconds", type=float, default=600.0, help="limits.idle_seconds")
    p.add_argument("--reference-size", type=int, default=1000, help="detectors.reference_size")
    p.add_argument("--checkpoint-every", type=int, default=10, help="batches between two checkpoints")
    p.add_argument("--report-every", type=int, default=250_000, help="events between two report lines")
    p.add_argument("--max-growth", type=float, default=None,
                   help="exit 1 if the final RSS exceeds the baseline by more than this ratio")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    config = Config(detectors=MonitorSettings(reference_size=args.reference_size, rearm_size=min(1000, args.reference_size)),
                    limits=Limits(idle_seconds=args.idle_seconds, max_models=1_000_000))
    pipeline = DriftPipeline(config)
    rng = np.random.default_rng(args.seed)
    idle_events = int(args.idle_seconds / args.spacing)
    print(f"soak: {args.events:,} events, {args.steady_models} steady models, cohorts of {args.cohort_size} "
          f"rotating every {args.rotate_every:,} events, idle after {args.idle_seconds:g} s "
          f"(= {idle_events:,} events); baseline after {idle_events + args.rotate_every:,} events", flush=True)
    header = (f"{'events':>11} {'s':>7} {'ev/s':>9} {'RSS MB':>8} {'models':>7} {'evicted':>8} {'monitors':>9} "
              f"{'pending':>8} {'ckpt MB':>8} {'alerts':>7} {'rejected':>8} {'x base':>7}")
    print(header)
    started = time.perf_counter()
    seen = alerts = rejected = 0
    checkpoint_bytes = 0
    baseline = None
    last_report = 0
    rss = rss_mb()
    for number, records in enumerate(batches(args, rng), 1):
        out = pipeline.process(records)
        seen += len(records)
        alerts += len(out.alerts)
        rejected += len(out.rejected)
        if number % args.checkpoint_every == 0:
            checkpoint_bytes += sum(len(value) for _, value in pipeline.checkpoint())
        if seen - last_report >= args.report_every or seen == args.events:
            last_report = seen
            rss = rss_mb()
            if baseline is None and seen >= idle_events + args.rotate_every:
                baseline = rss
            elapsed = time.perf_counter() - started
            ratio = f"{rss / baseline:7.2f}" if baseline else f"{'-':>7}"
            print(f"{seen:>11,} {elapsed:>7.1f} {seen / elapsed:>9,.0f} {rss:>8.1f} {len(pipeline.models):>7,} "
                  f"{pipeline.evicted:>8,} {pipeline.monitored_pairs:>9,} {len(pipeline.dirty):>8,} "
                  f"{checkpoint_bytes / 1e6:>8.1f} {alerts:>7,} {rejected:>8,} {ratio}", flush=True)
    if baseline is None:
        print("the run was shorter than one idle window plus one rotation: no baseline, no verdict")
        return 0
    growth = rss / baseline
    print(f"final RSS {rss:.1f} MB = {growth:.2f} x the baseline of {baseline:.1f} MB")
    if args.max_growth is not None and growth > args.max_growth:
        print(f"memory grew more than --max-growth {args.max_growth:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
