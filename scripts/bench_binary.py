#!/usr/bin/env python3
"""The opt-in error-stream detectors DDM and HDDM_A beside the default concept detectors.

On 0/1 error streams (1 = wrong prediction): false alarms on stationary Bernoulli(0.1) streams,
and detection rate and delay when the error rate switches 0.1 -> 0.3 at a given position (a
5,000-value reference first). Each detector runs alone in a numeric monitor with default settings
(so with the monitor's mute and re-arm: at most one alarm per change); the default concept
detectors (ADWIN, Page-Hinkley, histogram, calibrated to the budget of 10^7) run together, and
river's DDM / HDDMA fed the raw stream (reset after each drift, as river does; no monitor) are
the baselines. Everything is measured in this run, seeded; at the defaults it takes ~2 minutes.

    python scripts/bench_binary.py [--runs 20] [--stationary 200000] [--switch 10000 100000]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from river.drift import binary as river_binary

from streamdrift.detectors import MonitorSettings, NumericMonitor
from streamdrift.pipeline import CONCEPT_DETECTORS

BEFORE, AFTER = 0.1, 0.3
#: Values fed after the switch before a run counts as a miss.
HORIZON = 20_000
CHUNK = 1_000
REARM = MonitorSettings().rearm_size

CANDIDATES = {
    "ddm (monitor)": ("monitor", ("ddm",)),
    "hddm_a (monitor)": ("monitor", ("hddm_a",)),
    "adwin+page_hinkley+histogram (default concept detectors)": ("monitor", CONCEPT_DETECTORS),
    "river DDM (raw stream)": ("river", river_binary.DDM),
    "river HDDMA (raw stream)": ("river", river_binary.HDDMA),
}


def errors(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    return (rng.random(n) < rate).astype(np.float64)


def alarms(kind: str, what, stream: np.ndarray) -> list[int]:
    """Indices at which the detector fires on ``stream``."""
    found: list[int] = []
    if kind == "monitor":
        monitor = NumericMonitor(MonitorSettings(detectors=what))
        for start in range(0, stream.size, CHUNK):
            # Several detectors of one monitor count as one alarm per value position.
            found.extend(sorted({d.index for d in monitor.update(stream[start:start + CHUNK])}))
        return found
    detector = what()
    for i, x in enumerate(stream.tolist()):
        detector.update(x)
        if detector.drift_detected:
            found.append(i)
    return found


def stationary_table(runs: int, n: int, seed: int) -> None:
    print(f"\nFalse alarms on stationary Bernoulli({BEFORE}) error streams: {runs} runs x {n:,} values "
          f"(monitors: the first 5,000 are the reference)")
    print(f"{'detector':58} {'total':>6} {'per run':>8} {'max/run':>8} {'runs with any':>14} {'per 10^6':>9} {'s':>6}")
    for name, (kind, what) in CANDIDATES.items():
        t0 = time.perf_counter()
        counts = [len(alarms(kind, what, errors(np.random.default_rng(seed + r), n, BEFORE))) for r in range(runs)]
        total = sum(counts)
        print(f"{name:58} {total:6d} {total / runs:8.2f} {max(counts):8d} {sum(c > 0 for c in counts):>8d} of {runs:<3d}"
              f" {total / (runs * n) * 1e6:9.1f} {time.perf_counter() - t0:6.1f}")


def delay_table(runs: int, switch: int, seed: int) -> None:
    print(f"\nError rate {BEFORE} -> {AFTER} at value {switch:,} ({runs} runs of {switch + HORIZON:,} values; a miss = "
          f"nothing within {HORIZON:,}; false alarms: before the switch, and after the re-arm that follows the first "
          f"detection ({REARM:,} values; river: right after it) while the rate stays {AFTER})")
    print(f"{'detector':58} {'detected':>9} {'median':>7} {'p90':>6} {'max':>6} {'false before':>13} {'false after':>12}")
    for name, (kind, what) in CANDIDATES.items():
        delays, early, late = [], 0, 0
        for r in range(runs):
            rng = np.random.default_rng(seed + 10_000 + r)
            stream = np.concatenate([errors(rng, switch, BEFORE), errors(rng, HORIZON, AFTER)])
            hits = alarms(kind, what, stream)
            early += sum(i < switch for i in hits)
            after = [i - switch for i in hits if i >= switch]
            if after:
                delays.append(after[0])
                # Until the new reference is complete the monitor's other detectors still watch the
                # old one and may report the same change: only alarms after the re-arm are false.
                late += sum(i > after[0] + (REARM if kind == "monitor" else 0) for i in after)
        d = np.array(delays or [0])
        cells = (f"{np.median(d):7.0f} {np.percentile(d, 90):6.0f} {d.max():6d}" if delays
                 else f"{'-':>7} {'-':>6} {'-':>6}")
        print(f"{name:58} {len(delays) / runs:9.0%} {cells} {early:13d} {late:12d}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--stationary", type=int, default=200_000, help="values per stationary run")
    parser.add_argument("--switch", type=int, nargs="+", default=[10_000, 100_000],
                        help="positions of the 0.1 -> 0.3 switch")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    stationary_table(args.runs, args.stationary, args.seed)
    for switch in args.switch:
        delay_table(args.runs, switch, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
