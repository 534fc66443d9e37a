#!/usr/bin/env python3
"""Where a batch's time goes: ``DriftPipeline.process`` on one of ``ab_lockstep.py``'s workloads,
in one process, with a timer around each function named, printed per batch.

Each name is ``module:attribute`` (``streamdrift.detectors.across:_look_up``, or a method:
``streamdrift.pipeline:DriftPipeline._update_plain``). A function is timed wherever the package
calls it: the modules that imported it by name (``from .together import counted_on``) get the
timed one too. Times include what the function calls (nested timers overlap), and each timer
costs ~0.3 us per call, so many calls per batch add a little to the total.

Not a benchmark (no figure of it goes in the README): a profile without cProfile's distortion,
which doubles the share of small Python functions. Compare two versions with ``ab_lockstep.py``.

    python scripts/time_functions.py [--workload batches|latency|stationary|full|sample] [--size N] [--batches N] module:function ...
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def timed(name: str, spent: dict[str, list[float]]) -> None:
    """Replace ``name`` (``module:attribute.path``) with a timer around it, everywhere it was bound."""
    module_name, _, path = name.partition(":")
    if not path:
        raise SystemExit(f"{name!r}: give module:function, e.g. streamdrift.detectors.across:_look_up")
    owner = importlib.import_module(module_name)
    *parents, attribute = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    original = getattr(owner, attribute)
    spent[name] = [0.0, 0.0, 0]

    def timer(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            entry = spent[name]
            entry[0] += time.perf_counter() - wall
            entry[1] += time.process_time() - cpu
            entry[2] += 1

    setattr(owner, attribute, timer)
    if not parents:  # bound by name elsewhere too
        for module in list(sys.modules.values()):
            if getattr(module, "__name__", "").startswith("streamdrift") and getattr(module, attribute, None) is original:
                setattr(module, attribute, timer)


def main() -> int:
    import ab_lockstep

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("functions", nargs="*", help="module:function to time")
    parser.add_argument("--workload", choices=ab_lockstep.WORKLOADS, default="batches")
    parser.add_argument("--models", type=int, default=32)
    parser.add_argument("--size", type=int, default=0, help=ab_lockstep.SIZE_HELP)
    parser.add_argument("--batches", type=int, default=200, help="batches timed")
    args = parser.parse_args()
    size = args.size or ab_lockstep.default_size(args.workload)
    pipeline, batches = ab_lockstep.warmed(args.workload, args.models, size, max(1, args.batches // 10))
    batches = batches[:args.batches]
    spent: dict[str, list[float]] = {}
    for name in args.functions:
        timed(name, spent)
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        pipeline.process(batch)
    wall, cpu, n = time.perf_counter() - wall, time.process_time() - cpu, len(batches)
    print(f"{args.workload}: {n} batches of {size} events, {args.models} models")
    print(f"   {'':<56}{'wall ms':>9}{'CPU ms':>9}{'calls':>8}   per batch")
    print(f"   {'DriftPipeline.process':<56}{wall / n * 1e3:>9.3f}{cpu / n * 1e3:>9.3f}{1:>8.1f}")
    for name, (w, c, calls) in spent.items():
        print(f"   {name:<56}{w / n * 1e3:>9.3f}{c / n * 1e3:>9.3f}{calls / n:>8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
