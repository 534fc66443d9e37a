"""Benchmark of the model-version comparison (issue 16): wrong decisions on equal versions, how
often and how fast a worse version is rolled back and a better one promoted, shadow against split
traffic, classification (0/1 loss) and regression (absolute error).

Each run draws one deployment's losses (seeded); the decision is that of
``detectors.comparison.LossComparison`` at the default policy (margin 0, error rate 0.01, 200
labels at least). The many runs use a vectorised copy of its confidence sequence (numpy over a
whole run); the first ``--check`` runs of every scenario also go through ``LossComparison``
itself, label by label, and must give the same decision at the same label, or the script stops.
The baseline, measured in the same run: a fixed-sample 99% z-interval looked at after every label
(what a dashboard does), to show what peeking without a confidence sequence costs.

Scenarios (``labels``: shadow = labels met by both versions; split = both versions' labels):
- classification: baseline error 10%; the new version 10% (equal), 15% (5 points worse), 5%
  (5 points better);
- regression: baseline prediction error N(0, 10) (mean absolute error 8.0); the new version the
  same, 10% more absolute error, 10% less.
Shadow: the new version's error on a request follows the baseline's with probability 0.8 (the
same inputs), else independent. Split: each request goes to either version with probability 1/2.

    .venv/bin/python scripts/bench_versions.py                  # ~2-3 minutes on one core
    .venv/bin/python scripts/bench_versions.py --runs 1000 --equal-runs 2000
"""

from __future__ import annotations

import argparse
import math
import time
import zlib

import numpy as np
from scipy.special import ndtri

from streamdrift.config import VersionPolicy
from streamdrift.detectors.comparison import LossComparison, half_width

COUPLING = 0.8
Z99 = 2.5758293035489004


def losses(task: str, effect: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` requests' losses of the new version and the baseline (both scored every request)."""
    u = rng.random(n)
    u_new = np.where(rng.random(n) < COUPLING, u, rng.random(n))
    if task == "classification":
        rate = {"equal": 0.10, "worse": 0.15, "better": 0.05}[effect]
        return (u_new < rate).astype(np.float64), (u < 0.10).astype(np.float64)
    sd = {"equal": 10.0, "worse": 11.0, "better": 9.0}[effect]
    z, z_new = ndtri(np.clip(u, 1e-12, 1 - 1e-12)), ndtri(np.clip(u_new, 1e-12, 1 - 1e-12))
    return np.abs(sd * z_new), np.abs(10.0 * z)


def _widths(n: int, alpha: float) -> np.ndarray:
    """``half_width(t, alpha)`` for t = 1..n (index t - 1)."""
    t = np.arange(1, n + 1, dtype=np.float64)
    log_alpha = -2.0 * math.log(alpha)
    rho2 = (log_alpha + math.log(log_alpha + 1.0)) / 1000
    spread = t * rho2 + 1.0
    widths = np.sqrt(2.0 * spread / (t * t * rho2) * np.log(np.sqrt(spread) / alpha))
    assert abs(widths[999] - half_width(1000, alpha)) < 1e-12
    return widths


def _running(values: np.ndarray, widths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Running mean and its confidence-sequence bounds after each value (like ``MeanSequence``)."""
    t = np.arange(1, len(values) + 1, dtype=np.float64)
    mean = np.cumsum(values) / t
    var = np.maximum(np.cumsum(values * values) / t - mean * mean, 0.0)
    half = np.sqrt(var) * widths[:len(values)]
    half[0] = np.inf
    return mean, mean - half, mean + half


def decide(new: np.ndarray, base: np.ndarray, traffic: str, policy: VersionPolicy, widths: dict,
           rng: np.random.Generator) -> tuple[str | None, int]:
    """The decision and the labels it took (``None``, labels seen: no decision)."""
    if traffic == "shadow":
        _, lower, upper = _running(new - base, widths["shadow"])
        labels = np.arange(1, len(new) + 1)
    else:
        to_new = rng.random(len(new)) < 0.5
        # As LossComparison: the baseline's losses count from the new version's first one on.
        after_first = np.arange(len(new)) > np.argmax(to_new)
        arms = {}
        for name, values, mask in (("new", new, to_new), ("base", base, ~to_new & after_first)):
            _, lo, hi = _running(values[mask], widths["split"])
            count = np.cumsum(mask)  # that arm's values after each label
            at = np.maximum(count - 1, 0)
            lo, hi = lo[at] if len(lo) else np.full(len(mask), -np.inf), hi[at] if len(hi) else np.full(len(mask), np.inf)
            arms[name] = (np.where(count > 0, lo, -np.inf), np.where(count > 0, hi, np.inf), count)
        (new_lo, new_hi, n_new), (base_lo, base_hi, n_base) = arms["new"], arms["base"]
        lower, upper = new_lo - base_hi, new_hi - base_lo
        labels = n_new + n_base
        enough = np.minimum(n_new, n_base) >= policy.min_labels
        lower, upper = np.where(enough, lower, -np.inf), np.where(enough, upper, np.inf)
        return _first(lower, upper, policy, labels, None)
    return _first(lower, upper, policy, labels, policy.min_labels)


def _first(lower, upper, policy, labels, min_labels):
    valid = np.ones(len(lower), dtype=bool) if min_labels is None else np.arange(1, len(lower) + 1) >= min_labels
    rollback = np.flatnonzero(valid & (lower > policy.margin))
    promote = np.flatnonzero(valid & (upper < policy.margin))
    first_r = rollback[0] if rollback.size else len(lower)
    first_p = promote[0] if promote.size else len(lower)
    if first_r == first_p == len(lower):
        return None, int(labels[-1])
    at = min(first_r, first_p)
    return ("rollback" if first_r < first_p else "promote"), int(labels[at])


def checked(new, base, traffic, policy, seed) -> tuple[str | None, int]:
    """The same run through ``LossComparison`` itself, label by label."""
    comparison = LossComparison(policy.margin, policy.error_rate, policy.min_labels, policy.traffic)
    if traffic == "shadow":
        for i in range(len(new)):
            decision = comparison.update(new[i], base[i])
            if decision:
                return decision.decision, decision.labels
        return None, comparison.paired.n
    to_new = np.random.default_rng(seed).random(len(new)) < 0.5
    for i in range(len(new)):
        decision = comparison.update(new[i], None) if to_new[i] else comparison.update(None, base[i])
        if decision:
            return decision.decision, decision.labels
    return None, comparison.new.n + comparison.baseline.n


def naive_peeking(new, base, traffic, policy, rng) -> str | None:
    """A fixed-sample 99% z-interval of the difference, looked at after every label."""
    if traffic == "shadow":
        d = new - base
        t = np.arange(1, len(d) + 1)
        mean = np.cumsum(d) / t
        sd = np.sqrt(np.maximum(np.cumsum(d * d) / t - mean * mean, 0))
        half = Z99 * sd / np.sqrt(t)
        ok = t >= policy.min_labels
        lower, upper = mean - half, mean + half
    else:
        to_new = rng.random(len(new)) < 0.5
        stats = []
        for values, mask in ((new, to_new), (base, ~to_new)):
            count = np.cumsum(mask)
            total = np.cumsum(np.where(mask, values, 0.0))
            squares = np.cumsum(np.where(mask, values * values, 0.0))
            c = np.maximum(count, 1)
            mean = total / c
            stats.append((mean, np.maximum(squares / c - mean * mean, 0) / c, count))
        (m1, v1, n1), (m0, v0, n0) = stats
        half = Z99 * np.sqrt(v1 + v0)
        lower, upper = m1 - m0 - half, m1 - m0 + half
        ok = np.minimum(n1, n0) >= policy.min_labels
    if np.any(ok & ((lower > policy.margin) | (upper < policy.margin))):
        return "wrong"
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=200, help="seeded runs per scenario with a worse or better version")
    p.add_argument("--equal-runs", type=int, default=500, help="seeded runs per scenario with equal versions")
    p.add_argument("--labels", type=int, default=100_000, help="labels per run at most")
    p.add_argument("--check", type=int, default=10, help="runs per scenario also through LossComparison itself")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    policy = VersionPolicy()
    widths = {"shadow": _widths(args.labels, policy.error_rate), "split": _widths(args.labels, policy.error_rate / 2)}
    started = time.perf_counter()
    print(f"policy: margin {policy.margin}, error_rate {policy.error_rate}, min_labels {policy.min_labels}; "
          f"up to {args.labels:,} labels per run; {args.runs} runs (worse/better), {args.equal_runs} (equal)\n")
    print(f"{'task':<15}{'traffic':<8}{'new version':<22}{'runs':>6}{'rollback':>10}{'promote':>9}{'none':>7}"
          f"{'median labels':>15}{'p90':>9}{'peeking z':>11}")
    medians = {}
    for task in ("classification", "regression"):
        for traffic in ("shadow", "split"):
            for effect in ("equal", "worse", "better"):
                runs = args.equal_runs if effect == "equal" else args.runs
                counts = {"rollback": 0, "promote": 0, None: 0}
                taken, naive_wrong = [], 0
                for run in range(runs):
                    seed = zlib.crc32(f"{args.seed}/{task}/{traffic}/{effect}/{run}".encode())
                    rng = np.random.default_rng(seed)
                    new, base = losses(task, effect, args.labels, rng)
                    decision, labels = decide(new, base, traffic, policy, widths, np.random.default_rng(seed + 1))
                    if run < args.check:
                        again = checked(new, base, traffic, policy, seed + 1)
                        assert again == (decision, labels), \
                            f"{task} {traffic} {effect} run {run}: LossComparison {again}, vectorised {(decision, labels)}"
                    counts[decision] += 1
                    if decision is not None:
                        taken.append(labels)
                    if effect == "equal":
                        naive_wrong += naive_peeking(new, base, traffic, policy, np.random.default_rng(seed + 1)) is not None
                what = {"equal": "equal", "worse": "worse (5 pts / +10%)", "better": "better (5 pts / -10%)"}[effect]
                median = f"{np.median(taken):,.0f}" if taken else "-"
                p90 = f"{np.percentile(taken, 90):,.0f}" if taken else "-"
                naive = f"{naive_wrong / runs:.1%}" if effect == "equal" else ""
                print(f"{task:<15}{traffic:<8}{what:<22}{runs:>6}{counts['rollback'] / runs:>10.1%}"
                      f"{counts['promote'] / runs:>9.1%}{counts[None] / runs:>7.1%}{median:>15}{p90:>9}{naive:>11}",
                      flush=True)
                if taken and effect == "worse":
                    medians[(task, traffic)] = float(np.median(taken))
    print()
    for task in ("classification", "regression"):
        shadow, split = medians.get((task, "shadow")), medians.get((task, "split"))
        if shadow and split:
            print(f"{task}: a worse version is rolled back after a median {shadow:,.0f} labels in shadow mode, "
                  f"{split:,.0f} on split traffic ({split / shadow:.1f}x as many)")
    print(f"\n'peeking z': equal versions wrongly decided by a fixed-sample 99% z-interval looked at after every label"
          f" (same runs). Checked against LossComparison label by label: {args.check} runs per scenario."
          f" {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
