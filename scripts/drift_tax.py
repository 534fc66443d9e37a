#!/usr/bin/env python3
"""What drifting costs the pipeline: the latency phase's events (``bench_stream.py`` (c), each
model drifting in two features at a staggered point) against the very same values without the
drift, batch for batch, in one process.

Two pipelines are warmed up alike (each model's reference and a margin), then take their
batches in turns, drifting, stationary, drifting, ..., so that a slow spell of the machine falls
on both; the CPU per batch is printed by quarter of the stream (by the last quarter every model
has drifted, alarmed and re-armed), with the ratio. ``--split`` also times the functions that
make up the difference (``time_functions.py``'s timers: ~0.3 us per call added to both sides).

Not a benchmark of the README: a measurement for whoever works on the hot path (issue 18). The
drifting side's extra cost has two parts: the alerts themselves (a model that might detect goes
to the per-model path, ``update_together``, each detection summarised), and what a feature keeps
after its alarm (its re-armed group is a plan of its own across models: its schedule and its
ADWIN differ from its model's other features').

    python scripts/drift_tax.py [--models 32] [--size 2500] [--per-model 17000] [--split]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: The functions ``--split`` times (module:attribute, as ``time_functions.py`` takes them).
SPLIT = ("streamdrift.detectors.across:update_groups_together", "streamdrift.detectors.together:update_together",
         "streamdrift.detectors.across:_plans", "streamdrift.detectors.across:_advance_across",
         "streamdrift.detectors.across:_look_up", "streamdrift.detectors.across:_model_steps",
         "streamdrift.detectors.together:_adwin", "streamdrift.detectors.together:_windowed",
         "streamdrift.detectors.across:_finish", "streamdrift.detectors.across:_Cusums.__init__",
         "streamdrift.detectors.across:_MissingRates.__init__", "streamdrift.events:plain_batch")


def pipeline_and_batches(models: int, per_model: int, size: int, drift: bool):
    """A pipeline warmed up on the latency phase's warm-up, and the measured events in batches
    of ``size``; ``drift=False``: the same values, their drift left out."""
    import bench_stream
    from streamdrift.config import Config
    from streamdrift.detectors import MonitorSettings
    from streamdrift.events import Record
    from streamdrift.pipeline import DriftPipeline

    live = bench_stream.LiveModels(models, per_model)
    if not drift:  # LiveModels' values before their drift: the same generator and seed
        rng = np.random.default_rng(7)
        names = bench_stream.feature_names()
        values = np.round(rng.normal(0.0, 1.0, (models, max(live.warm_up) + per_model, bench_stream.FEATURES)), 6)
        live.tails = [[b',"features":' + orjson.dumps(dict(zip(names, row))) + b"}" for row in values[m].tolist()]
                      for m in range(models)]

    def made(order):
        return [Record(live.heads[m] + repr(1.7e9 + j * 1e-4).encode() + live.tails[m][i], live.keys[m], "features",
                       0, j, None) for j, (m, i) in enumerate(order)]

    warm = made([(m, i) for i in range(max(live.warm_up)) for m in range(models) if i < live.warm_up[m]])
    measured = made([(m, live.warm_up[m] + i) for i in range(per_model) for m in range(models)])
    pipeline = DriftPipeline(Config(detectors=MonitorSettings(reference_size=1000)))
    for i in range(0, len(warm), 20_000):
        pipeline.process(warm[i:i + 20_000])
    return pipeline, [measured[i:i + size] for i in range(0, len(measured), size)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=32, help="models (one worker process of (c) has ~32)")
    parser.add_argument("--size", type=int, default=2500, help="events per batch ((c)'s are 2,000-4,000)")
    parser.add_argument("--per-model", type=int, default=17_000, help="measured events per model")
    parser.add_argument("--split", action="store_true", help="also time the functions that make up the difference")
    args = parser.parse_args()
    from streamdrift.process_tuning import limit_blas_threads, tune_gc

    tune_gc()
    limit_blas_threads()
    drifting, drifting_batches = pipeline_and_batches(args.models, args.per_model, args.size, True)
    stationary, stationary_batches = pipeline_and_batches(args.models, args.per_model, args.size, False)
    spent: dict[str, list[float]] = {}
    plans = [0]  # plans taken across models (``across._advance_across``'s), this batch
    if args.split:
        import time_functions
        from streamdrift.detectors import across

        for name in SPLIT:
            time_functions.timed(name, spent)
        advance = across._advance_across

        def counted(members, pools=None):
            plans[0] += len(members)
            return advance(members, pools)

        across._advance_across = counted
    print(f"DriftPipeline.process, {args.models} models x 20 numeric features, batches of {args.size:,} events, "
          f"the latency phase's values with their drift and without, in turns; CPU ms per batch")
    quarter = len(drifting_batches) // 4
    for q in range(4):
        cpu, alerts, planned = [0.0, 0.0], 0, [0, 0]
        functions = [dict.fromkeys(spent, 0.0), dict.fromkeys(spent, 0.0)]
        for j in range(q * quarter, (q + 1) * quarter):
            for side, (pipeline, batches) in enumerate(((drifting, drifting_batches),
                                                         (stationary, stationary_batches))):
                for entry in spent.values():
                    entry[:] = [0.0, 0.0, 0]
                plans[0] = 0
                started = time.process_time()
                out = pipeline.process(batches[j])
                cpu[side] += time.process_time() - started
                if side == 0:
                    alerts += len(out.alerts)
                planned[side] += plans[0]
                for name, entry in spent.items():
                    functions[side][name] += entry[1]
        print(f"   quarter {q + 1}: drifting {cpu[0] / quarter * 1e3:.1f} ms ({alerts} alerts), stationary "
              f"{cpu[1] / quarter * 1e3:.1f} ms, ratio {cpu[0] / cpu[1]:.2f}")
        if args.split:
            print(f"      {'plans across models':<28}{planned[0] / quarter:>8.1f}{planned[1] / quarter:>8.1f}   a batch")
        for name in spent:
            a, b = functions[0][name] / quarter * 1e3, functions[1][name] / quarter * 1e3
            print(f"      {name.split(':')[1]:<28}{a:>8.2f}{b:>8.2f}   {a - b:+.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
