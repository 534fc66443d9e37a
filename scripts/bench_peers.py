#!/usr/bin/env python3
"""streamdrift's numeric monitor beside river's ADWIN, PageHinkley and KSWIN at EQUAL false alarms.

1. streamdrift (default settings except ``false_alarm_budget``) is run on stationary Gaussian
   streams (``bench_quality.stationary("gaussian")``, the regime before every change scenario):
   its measured false-alarm rate is the target.
2. Each river detector's threshold parameter is tuned by bisection over a grid, on one seeded
   stationary stream, until its false-alarm rate on that stream is closest to the target:
   ADWIN ``delta`` (clock 32, other arguments at river's defaults); PageHinkley ``threshold``
   (min_instances 30, mode "both"; once at river's delta 0.005 and alpha 1 - 1e-4, once as
   "CUSUM": delta 0.25, half the 0.5 sd shift streamdrift's Page-Hinkley aims at, and alpha 1,
   since a fading factor 1 - 1e-4 cancels a 0.25 allowance once the sum nears -delta / (1 -
   alpha) = -2,500); KSWIN ``alpha``
   (window_size 100, stat_size 30, seed 1: its p-values are discrete, so the grid is the
   p-value of each possible statistic h / stat_size).
3. The tuned rates are verified on fresh seeds: the same streams streamdrift was measured on
   (KSWIN, at ~55 us per value, on a prefix of them).
4. The change scenarios of ``bench_quality.SCENARIOS`` (whatever it holds at run time) are run
   with every detector on the same seeded streams: share detected within the scenario's bound,
   median and p90 delay, false alarms in the calm stretch before the change.

False alarms are counted the same way for all: alarms per value seen, on values after the first
``REFERENCE`` (5,000) of a stream (streamdrift's warm-up reference; river detectors see those
values too, their alarms there are not counted). After an alarm every detector goes on in its own
way: river's detectors reset themselves, streamdrift's monitor re-arms (collects ``rearm_size``
values as the new reference, muted meanwhile); those values still count as values seen.

KSWIN runs river's own code; only its call to scipy's ``ks_2samp`` is memoised by the (integer)
statistic, which determines scipy's exact p-value: the run first checks that p-values and alarms
are identical to unpatched river on a few thousand values (``--exact-kswin`` turns it off).

    python scripts/bench_peers.py [--budget 1e4] [--runs 200] [--kswin-runs 100]
        [--streams 10] [--stationary 2000000] [--tune-values 5000000]
        [--kswin-tune-values 400000] [--kswin-verify-values 1000000] [--exact-kswin]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import types
from pathlib import Path

import numpy as np
import river.drift.kswin as river_kswin
from river import drift
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_quality as bq  # noqa: E402  (stream generators and SCENARIOS, shared)

from streamdrift.detectors import MonitorSettings  # noqa: E402

REFERENCE = bq.REFERENCE
KSWIN_WINDOW, KSWIN_STAT = 100, 30


# -- KSWIN: river's code, scipy's ks_2samp memoised by its statistic -----------------------
_ks_cache: dict[tuple[int, int, int], tuple] = {}


def memo_ks_2samp(a, b, method="auto"):
    """scipy's (statistic, p-value) for two small samples without ties of size n1, n2: both are
    functions of the integer h = D * lcm(n1, n2) in scipy's exact mode, so each h is asked once."""
    a, b = np.sort(a), np.sort(b)
    n1, n2 = len(a), len(b)
    both = np.concatenate([a, b])
    diffs = np.searchsorted(a, both, side="right") / n1 - np.searchsorted(b, both, side="right") / n2
    d = max(min(max(-diffs.min(), 0.0), 1.0), diffs.max())
    lcm = n1 // math.gcd(n1, n2) * n2
    key = (n1, n2, round(d * lcm))
    hit = _ks_cache.get(key)
    if hit is None:
        result = stats.ks_2samp(a, b, method=method)
        assert round(float(result.statistic) * lcm) == key[2], "memoised KS statistic differs from scipy's"
        hit = _ks_cache[key] = (result.statistic, result.pvalue)
    return hit


def check_memo_kswin(n: int = 4000) -> str:
    """Run river's KSWIN with scipy and with the memo on one stream with a change: identical?"""
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.normal(0, 1, n // 2), rng.normal(0.7, 1, n // 2)]).tolist()

    def trace():
        k = drift.KSWIN(seed=1)
        out = []
        for v in values:
            k.update(v)
            out.append((k.p_value, k.drift_detected))
        return out

    river_kswin.stats = stats
    exact = trace()
    river_kswin.stats = types.SimpleNamespace(ks_2samp=memo_ks_2samp)
    memo = trace()
    if exact != memo:
        raise SystemExit("memoised KSWIN differs from river's: run with --exact-kswin")
    alarms = sum(d for _, d in exact)
    return f"memoised KSWIN identical to river's on {n:,} values ({alarms} alarms, every p-value equal)"


def kswin_alpha(h: int) -> float:
    """The p-value of KS statistic h / KSWIN_STAT for two samples of KSWIN_STAT (KSWIN alarms
    when p <= alpha, so this alpha alarms exactly from that statistic on)."""
    a = np.arange(KSWIN_STAT, dtype=float)
    return float(stats.ks_2samp(a, a + h - 0.5).pvalue)


# -- detectors ------------------------------------------------------------------------------
def settings(budget: float) -> MonitorSettings:
    return MonitorSettings(false_alarm_budget=budget)


def ours(stream, numeric: bool, budget: float, batch: int = 1000) -> list[int]:
    """``bench_quality.ours`` at ``budget``."""
    return bq.ours(stream, numeric, batch, settings(budget))


# name -> (make(parameter), parameter name, grid from loosest to strictest)
PEERS = {
    "river ADWIN": (lambda p: drift.ADWIN(delta=p), "delta",
                    [10 ** (-k / 20) for k in range(1, 401)]),                     # 0.89 .. 1e-20
    "river PageHinkley": (lambda p: drift.PageHinkley(threshold=p), "threshold",
                          [10 ** (k / 50) for k in range(0, 251)]),                  # 1 .. 1e5
    "river PageHinkley CUSUM": (lambda p: drift.PageHinkley(threshold=p, delta=0.25, alpha=1.0), "threshold",
                                 [10 ** (k / 50) for k in range(0, 201)]),           # 1 .. 1e4
    "river KSWIN": (lambda p: drift.KSWIN(alpha=p, window_size=KSWIN_WINDOW, stat_size=KSWIN_STAT, seed=1),
                    "alpha", [kswin_alpha(h) for h in range(4, KSWIN_STAT + 1)]),
}


def river_alarms(detector, values: np.ndarray, offset: int = 0, stop_after: int | None = None) -> list[int]:
    """Indexes (offset + position) of the detector's alarms; stops at the first alarm at or after
    ``stop_after`` when given."""
    update = detector.update
    found = []
    for i, v in enumerate(values.tolist(), offset):
        update(v)
        if detector.drift_detected:
            found.append(i)
            if stop_after is not None and i >= stop_after:
                break
    return found


def counted(alarms: list[int]) -> int:
    return sum(1 for a in alarms if a >= REFERENCE)


# -- stationary: target, tuning, verification ----------------------------------------------
def gaussian(seed: int, n: int) -> np.ndarray:
    return bq.stationary("gaussian", np.random.default_rng(seed), n)


def tune(make, grid, stream, target_rate: float) -> tuple[float, int, int]:
    """Bisection over ``grid`` (alarms decrease along it) for the rate closest to the target on
    ``stream``; returns (parameter, alarms, evaluations)."""
    seen = len(stream) - REFERENCE
    target = target_rate * seen
    cache: dict[int, int] = {}

    def alarms(i: int) -> int:
        if i not in cache:
            cache[i] = counted(river_alarms(make(grid[i]), stream))
        return cache[i]

    lo, hi = 0, len(grid) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if alarms(mid) > target:
            lo = mid
        else:
            hi = mid
    best = min((lo, hi), key=lambda i: abs(math.log((alarms(i) + 0.5) / (target + 0.5))))
    return grid[best], alarms(best), len(cache)


# -- change scenarios ---------------------------------------------------------------------
def first_delay(alarms: list[int], start: int, within: int) -> int | None:
    later = [a - start for a in alarms if a >= start]
    return later[0] if later and later[0] < within else None


def summary(delays: list[int | None]) -> tuple[float, float, float]:
    caught = [d for d in delays if d is not None]
    if not caught:
        return 0.0, float("nan"), float("nan")
    return len(caught) / len(delays), float(np.median(caught)), float(np.percentile(caught, 90))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=1e4, help="streamdrift's false_alarm_budget")
    parser.add_argument("--streams", type=int, default=10, help="stationary verification streams")
    parser.add_argument("--stationary", type=int, default=2_000_000, help="values per verification stream")
    parser.add_argument("--tune-values", type=int, default=5_000_000, help="tuning stream (ADWIN, PageHinkley)")
    parser.add_argument("--kswin-tune-values", type=int, default=400_000, help="tuning stream (KSWIN)")
    parser.add_argument("--kswin-verify-values", type=int, default=1_000_000,
                        help="KSWIN's verification values (a prefix of the verification streams)")
    parser.add_argument("--runs", type=int, default=200, help="seeded runs per change scenario")
    parser.add_argument("--kswin-runs", type=int, default=100, help="of those, runs given to KSWIN")
    parser.add_argument("--exact-kswin", action="store_true", help="call scipy's ks_2samp unmemoised (~9x slower)")
    args = parser.parse_args()
    started = time.perf_counter()

    if args.exact_kswin:
        print("KSWIN: river's code with scipy's ks_2samp on every value")
    else:
        print("KSWIN: " + check_memo_kswin())

    # 1. streamdrift's rate on the verification streams: the target.
    verify_seeds = [1_000 + s for s in range(args.streams)]
    seen = args.streams * (args.stationary - REFERENCE)
    ours_alarms = sum(counted(ours(gaussian(seed, args.stationary), True, args.budget)) for seed in verify_seeds)
    target = ours_alarms / seen
    print(f"\nstreamdrift, false_alarm_budget {args.budget:g} (other settings default): {ours_alarms} false alarms "
          f"in {seen:,} stationary Gaussian values = {target * 1e6:.1f} per 10^6 "
          f"(the budget allows {1e6 / args.budget:.0f}); the target rate  [{time.perf_counter() - started:.0f} s]")

    # 2.-3. tune each peer on one seeded stream, verify on the streams above.
    print(f"\nFalse alarms per 10^6 values, stationary Gaussian (tuning stream seed 1; verification seeds "
          f"{verify_seeds[0]}-{verify_seeds[-1]}, values after the first {REFERENCE:,} of each stream)")
    header = (f"{'detector':<26} {'parameter':>22} {'evals':>5} {'tuning':>16} "
              f"{'verified on':>12} {'alarms':>6} {'per 10^6':>9} {'/ streamdrift':>13}")
    print(header)
    print("-" * len(header))
    print(f"{'streamdrift':<26} {f'budget {args.budget:g}':>22} {'':>5} {'':>16} {seen:>12,} {ours_alarms:>6} "
          f"{target * 1e6:>9.1f} {1:>13.2f}")
    tuned = {}
    for label, (make, pname, grid) in PEERS.items():
        is_ks = "KSWIN" in label
        tune_stream = gaussian(1, args.kswin_tune_values if is_ks else args.tune_values)
        param, tune_count, evals = tune(make, grid, tune_stream, target)
        tuned[label] = param
        alarms = values = 0
        budget_left = args.kswin_verify_values if is_ks else args.streams * args.stationary
        for seed in verify_seeds:
            n = min(args.stationary, budget_left)
            if n <= REFERENCE:
                break
            alarms += counted(river_alarms(make(param), gaussian(seed, args.stationary)[:n]))
            values += n - REFERENCE
            budget_left -= n
        tune_rate = tune_count / (len(tune_stream) - REFERENCE) * 1e6
        rate = alarms / values
        print(f"{label:<26} {f'{pname} {param:.3g}':>22} {evals:>5} {f'{tune_count} = {tune_rate:.1f}':>16} "
              f"{values:>12,} {alarms:>6} {rate * 1e6:>9.1f} {rate / target if target else float('nan'):>13.2f}  "
              f"[{time.perf_counter() - started:.0f} s]", flush=True)

    # 4. change scenarios.
    print(f"\nChanges after a {REFERENCE:,}-value reference and a calm stretch ({args.runs} seeded runs each, "
          f"KSWIN the first {args.kswin_runs}; same streams for every detector)")
    header = (f"{'change':<30} {'detector':<26} {'runs':>5} {'detected':>9} {'median':>7} {'p90':>6} "
              f"{'false before':>12}   bound")
    print(header)
    print("-" * len(header))
    notes = set()
    for scenario in bq.SCENARIOS:
        name, after, _share, within = scenario[:4]
        delays = {"streamdrift": []}
        false = {"streamdrift": 0}
        river_ok = True
        for run in range(args.runs):
            stream, start, numeric = bq.change(name, np.random.default_rng(10_000 + run), after)
            alarms = ours(stream, numeric, args.budget)
            delays["streamdrift"].append(first_delay(alarms, start, within))
            false["streamdrift"] += sum(1 for a in alarms if REFERENCE <= a < start)
            river_ok = numeric and not np.isnan(stream).any()
            if not river_ok:
                notes.add(f"{name}: river n/a ({'categories' if not numeric else 'missing values'}; "
                          "river's detectors take numbers only)")
                continue
            for label, (make, _, _) in PEERS.items():
                if "KSWIN" in label:
                    if run >= args.kswin_runs:
                        continue
                    # KSWIN's state is its last window_size values: fed from REFERENCE - window on,
                    # it tests from REFERENCE on, as it would have after the whole stretch before.
                    first = REFERENCE - KSWIN_WINDOW
                else:
                    first = 0
                found = river_alarms(make(tuned[label]), stream[first:start + within], first, stop_after=start)
                delays.setdefault(label, []).append(first_delay(found, start, within))
                false[label] = false.get(label, 0) + sum(1 for a in found if REFERENCE <= a < start)
        for label, ds in delays.items():
            share, median, p90 = summary(ds)
            print(f"{name:<30} {label:<26} {len(ds):>5} {share:>9.1%} {median:>7.0f} {p90:>6.0f} "
                  f"{false[label]:>12}   within {within:,}")
        print(f"{'':<30} [{time.perf_counter() - started:.0f} s]", flush=True)
    for note in sorted(notes):
        print(f"note: {note}")
    print("\nfalse before = alarms in the calm stretch between the reference and the change, all runs together")
    print(f"total time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
