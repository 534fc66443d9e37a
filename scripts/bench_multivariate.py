"""The multivariate monitor's quality: false alarms on stationary streams, delays on joint changes.

Streams of 20 numeric features after a 5,000-event reference (the monitor's warm-up), default
settings (``MultivariateSettings()``: false-alarm budget 1e7 events per model). Rows:

- stationary shapes (independent, strongly correlated, heavy-tailed correlated, a mixture): false
  alarms per 1,000,000 events (target: at most 1); and at a budget of 10^4, where false alarms
  are frequent enough to count, whether they stay within 1 per 10^4 (the calibration itself);
- the correlation of two features 0 -> 0.7, every marginal unchanged: share caught within 5,000
  events (target >= 99%) and the median delay;
- a 2-D mixture (two features) rotated by 45 degrees: share within 5,000 (target >= 95%);
- every feature moved by +0.1 sd at once: share within 5,000 (target >= 95%), beside what one
  feature's univariate monitor catches of it;
- the correlation of two features 0.9 -> 0 (a correlation that breaks: the home case of the
  opt-in ``multivariate_pca``'s SPE): share within 5,000 (no target);
- the cost per event (both detectors, vectorised over batches of 1,000).

Run: ``.venv/bin/python scripts/bench_multivariate.py [--runs 100] [--events 1000000]``;
``--detectors multivariate_pca`` measures the opt-in T²/SPE detector instead of the default two
(the targets are the default detectors').
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from streamdrift.detectors import MultivariateMonitor, MultivariateSettings, NumericMonitor

D = 20
REFERENCE = 5000
HORIZON = 5000
BATCH = 1000


def stationary(shape: str, rng: np.random.Generator, n: int) -> np.ndarray:
    if shape == "independent normal":
        return rng.normal(size=(n, D))
    if shape == "correlated 0.9 (one factor)":
        return 0.9 * rng.normal(size=(n, 1)) + np.sqrt(1 - 0.81) * rng.normal(size=(n, D))
    if shape == "heavy-tailed correlated (t3)":
        z = 0.7 * rng.normal(size=(n, 1)) + np.sqrt(1 - 0.49) * rng.normal(size=(n, D))
        return z / np.sqrt(rng.chisquare(3, size=(n, 1)) / 3)
    if shape == "mixture of two clusters":
        centre = np.where(rng.random((n, 1)) < 0.3, 2.0, -1.0)
        return centre * np.linspace(-1, 1, D) + rng.normal(size=(n, D))
    raise ValueError(shape)


def mixture(rng: np.random.Generator, n: int, angle: float) -> np.ndarray:
    """Features 0 and 1: two clusters at (+-2, 0), sd (0.5, 1.5), rotated by ``angle``; the rest normal."""
    x = rng.normal(size=(n, D))
    side = np.where(rng.random(n) < 0.5, 2.0, -2.0)
    a, b = side + 0.5 * rng.normal(size=n), 1.5 * rng.normal(size=n)
    c, s = np.cos(angle), np.sin(angle)
    x[:, 0], x[:, 1] = c * a - s * b, s * a + c * b
    return x


def correlated(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    x = rng.normal(size=(n, D))
    x[:, 1] = rho * x[:, 0] + np.sqrt(1 - rho ** 2) * x[:, 1]
    return x


def columns(rows: np.ndarray) -> dict:
    return {f"f{k:02d}": rows[:, k] for k in range(rows.shape[1])}


def feed(monitor: MultivariateMonitor, rows: np.ndarray) -> list:
    found = []
    for start in range(0, rows.shape[0], BATCH):
        found.extend(monitor.update(columns(rows[start:start + BATCH])))
    return found


def false_alarms(shape: str, runs: int, events: int, detectors: tuple[str, ...],
                 budget: float = 1e7) -> tuple[int, int, float]:
    alarms, total, spent = 0, 0, 0.0
    for seed in range(runs):
        rng = np.random.default_rng(1000 + seed)
        monitor = MultivariateMonitor(MultivariateSettings(false_alarm_budget=budget, detectors=detectors))
        feed(monitor, stationary(shape, rng, REFERENCE))
        done = 0
        while done < events:
            rows = stationary(shape, rng, min(100_000, events - done))
            t = time.perf_counter()
            alarms += len(feed(monitor, rows))
            spent += time.perf_counter() - t
            done += rows.shape[0]
        total += events
    return alarms, total, spent / total * 1e6


def delays(make_before, make_after, runs: int, detectors: tuple[str, ...]) -> tuple[float, float | None, dict]:
    caught, delay, by_detector = 0, [], {}
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        monitor = MultivariateMonitor(MultivariateSettings(detectors=detectors))
        feed(monitor, make_before(rng, REFERENCE))
        found = feed(monitor, make_after(rng, HORIZON))
        if found:
            caught += 1
            delay.append(found[0].index - REFERENCE + 1)
            by_detector[found[0].detector] = by_detector.get(found[0].detector, 0) + 1
    return caught / runs, (float(np.median(delay)) if delay else None), by_detector


def univariate_share(runs: int, shift: float) -> float:
    """What a per-feature monitor (all its detectors, default settings) catches of a +shift sd
    move of its feature within the same 5,000 events."""
    caught = 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        monitor = NumericMonitor()
        monitor.update(rng.normal(size=REFERENCE))
        caught += bool(monitor.update(rng.normal(shift, 1, HORIZON)))
    return caught / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="seeded runs per drift row (default 100)")
    parser.add_argument("--stationary-runs", type=int, default=2, help="seeded runs per stationary shape")
    parser.add_argument("--events", type=int, default=1_000_000, help="events per stationary run")
    parser.add_argument("--detectors", nargs="+", default=[], help="multivariate detectors (default: the defaults)")
    args = parser.parse_args()
    detectors = tuple(args.detectors)  # empty: the defaults
    which = ", ".join(MultivariateSettings(detectors=detectors).active)
    print(f"# bench_multivariate: {D} features, reference {REFERENCE}, default settings, detectors {which}, "
          f"{args.runs} runs per drift row\n")
    print("| stream | result | target |")
    print("|---|---|---|")
    for shape in ("independent normal", "correlated 0.9 (one factor)", "heavy-tailed correlated (t3)",
                  "mixture of two clusters"):
        alarms, total, cost = false_alarms(shape, args.stationary_runs, args.events, detectors)
        print(f"| stationary, {shape} | {alarms} false alarms in {total:,} events "
              f"({alarms / total * 1e6:.2f} per 10^6; {cost:.1f} us/event) | <= 1 per 10^6 |", flush=True)
    # The calibration itself, where alarms are frequent enough to count: at a budget of 10^4 a
    # valid detector raises at most ~1 false alarm per 10^4 events (re-arming after each).
    for shape in ("independent normal", "correlated 0.9 (one factor)", "heavy-tailed correlated (t3)"):
        alarms, total, _ = false_alarms(shape, 1, args.events // 2, detectors, budget=1e4)
        print(f"| stationary, {shape}, budget 10^4 | {alarms} false alarms in {total:,} events "
              f"({alarms / total * 1e4:.2f} per 10^4) | <= 1 per 10^4 |", flush=True)
    rows = [
        ("correlation of f00, f01: 0 -> 0.7", lambda r, n: correlated(r, n, 0.0), lambda r, n: correlated(r, n, 0.7), 0.99),
        ("2-D mixture (f00, f01) rotated 45 degrees", lambda r, n: mixture(r, n, 0.0),
         lambda r, n: mixture(r, n, np.pi / 4), 0.95),
        ("all 20 features +0.1 sd", lambda r, n: r.normal(size=(n, D)), lambda r, n: r.normal(0.1, 1, size=(n, D)), 0.95),
        ("correlation of f00, f01: 0.9 -> 0 (a correlation that breaks)", lambda r, n: correlated(r, n, 0.9),
         lambda r, n: correlated(r, n, 0.0), None),
    ]
    for name, before, after, target in rows:
        share, median, which = delays(before, after, args.runs, detectors)
        by = ", ".join(f"{k} {v}" for k, v in sorted(which.items()))
        print(f"| {name} | {share:.0%} within {HORIZON:,}, median delay {median} ({by}) | "
              f"{f'>= {target:.0%}' if target else '(context)'} |", flush=True)
    print(f"| one feature +0.1 sd, its univariate monitor | {univariate_share(args.runs, 0.1):.0%} within "
          f"{HORIZON:,} | (context) |")


if __name__ == "__main__":
    main()
