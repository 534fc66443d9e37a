#!/usr/bin/env python3
"""What drifting costs the pipeline: the latency phase's events (``bench_stream.py`` (c), each
model drifting in two features at a staggered point) against the very same values without the
drift, batch for batch, in one process.

Two pipelines are warmed up alike (each model's reference and a margin; ``ab_lockstep.py``'s
``latency`` and ``stationary`` workloads, 17,000 measured events per model), then take their
batches in turns, drifting, stationary, drifting, ..., so that a slow spell of the machine falls
on both (which side goes first changes every batch); the CPU per batch is printed by quarter
of the stream (by the last quarter most models have drifted, alarmed and re-armed), with the ratio. ``--split`` also times the functions that
make up the difference (``time_functions.py``'s timers: ~0.3 us per call added to both sides).

A measurement for whoever works on the hot path (issue 18), without targets of its own. The
drifting side's extra cost has two parts: the alerts themselves (a model that might detect goes
to the per-model path, ``update_together``, each detection summarised), and what a feature keeps
after its alarm (its re-armed group is a plan of its own across models: its schedule and its
ADWIN differ from its model's other features').

    python scripts/drift_tax.py [--models 32] [--size 2500] [--split]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: The functions ``--split`` times (module:attribute, as ``time_functions.py`` takes them).
SPLIT = ("streamdrift.detectors.across:update_groups_together", "streamdrift.detectors.together:update_together",
         "streamdrift.detectors.across:_plans", "streamdrift.detectors.across:_advance_across",
         "streamdrift.detectors.across:_look_up", "streamdrift.detectors.across:_model_steps",
         "streamdrift.detectors.together:_adwin", "streamdrift.detectors.together:_windowed",
         "streamdrift.detectors.across:_finish", "streamdrift.detectors.across:_Cusums.__init__",
         "streamdrift.detectors.across:_MissingRates.__init__", "streamdrift.events:plain_batch")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=32, help="models (one worker process of (c) has ~32)")
    parser.add_argument("--size", type=int, default=2500, help="events per batch ((c)'s are 2,000-4,000)")
    parser.add_argument("--split", action="store_true", help="also time the functions that make up the difference")
    args = parser.parse_args()
    import ab_lockstep

    drifting, drifting_batches = ab_lockstep.warmed("latency", args.models, args.size, 1)
    stationary, stationary_batches = ab_lockstep.warmed("stationary", args.models, args.size, 1)
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
    if quarter == 0:
        raise SystemExit(f"--size {args.size:,} leaves fewer than 4 batches: give a smaller one")
    for q in range(4):
        cpu, alerts, planned = [0.0, 0.0], 0, [0, 0]
        functions = [dict.fromkeys(spent, 0.0), dict.fromkeys(spent, 0.0)]
        for j in range(q * quarter, (q + 1) * quarter):
            sides = ((0, drifting, drifting_batches), (1, stationary, stationary_batches))
            for side, pipeline, batches in sides if j % 2 == 0 else sides[::-1]:
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
