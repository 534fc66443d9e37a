"""Thresholds from a false-alarm budget.

The user states a budget: the expected number of values between two false alarms of one feature
(an average run length, like alibi-detect's ERT). The budget is shared by the detectors of a
feature, not multiplied: with ``m`` detectors each gets ``m * budget``, so their false-alarm rates
add up to ``1 / budget``. Each detector then turns its share into a threshold:

- CUSUM-type detectors (Page-Hinkley, missing rate) solve for the adjustment coefficient
  ``theta`` of their null increments (``E[exp(theta * X)] = 1``, Wald / Cramer-Lundberg) on the
  reference itself and use Siegmund's approximation of the run length. This is exact enough for
  any bounded score distribution (heavy tails and ties included, because the scores are ranks)
  and costs microseconds instead of a bootstrap.
- Windowed tests (KS, frequency tests) evaluated every ``k`` values get a per-test level of
  ``k / share`` (Bonferroni over evaluations; conservative because windows overlap).
- ADWIN gets ``delta = clock / share``, its own per-check bound.
"""

from __future__ import annotations

import hashlib
import math
import struct

import numpy as np

#: Siegmund's overshoot correction, in standard deviations of the increments.
OVERSHOOT = 1.166

#: How many standard errors of the reference estimate the CUSUM null is shifted towards alarm.
#: A reference of n values estimates the in-control mean only to ~1/sqrt(n); without this guard
#: the real false-alarm rate of a CUSUM grows several-fold for small references.
REFERENCE_GUARD = 2.0


def detector_share(budget: float, n_detectors: int) -> float:
    """The run length each of ``n_detectors`` must keep so that the feature keeps ``budget``.

    >>> detector_share(1_000_000, 4)
    4000000.0
    """
    return float(budget) * max(1, n_detectors)


def adjustment_coefficient(increments: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The positive root ``theta`` of ``log E[exp(theta * X)] = 0`` for a drift-down walk ``X``.

    Returns ``inf`` when no increment is positive (the walk can never rise).

    >>> x = np.random.default_rng(1).normal(-0.25, 1.0, 200_000)
    >>> round(adjustment_coefficient(x), 1)   # 2 * 0.25 / 1**2 for a normal walk
    0.5
    """
    x = np.asarray(increments, dtype=float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    w = w / w.sum()
    if np.dot(w, x) >= 0:
        raise ValueError("the in-control increments must drift downwards (mean < 0)")
    if not np.any(x > 0):
        return math.inf
    logw = np.log(w)

    def log_mgf(theta: float) -> tuple[float, float]:
        """log E[exp(theta X)] and its derivative (the mean of X tilted by theta)."""
        a = logw + theta * x
        top = a.max()
        e = np.exp(a - top)
        total = e.sum()
        return float(top) + math.log(total), float(np.dot(e, x)) / float(total)

    hi = 1.0
    while log_mgf(hi)[0] < 0:
        hi *= 2.0
        if hi > 1e6:
            return math.inf
    # The log-MGF is convex with log_mgf(0) = 0 and a negative slope there, so Newton's method
    # started right of the root moves down to it monotonically: ~6 steps instead of a bisection's 50.
    theta = hi
    for _ in range(100):
        value, slope = log_mgf(theta)
        step = value / slope
        theta -= step
        if step <= 1e-14 * theta:
            break
    return theta


def cusum_threshold(increments: np.ndarray, run_length: float,
                    weights: np.ndarray | None = None) -> float:
    """Threshold ``h`` of a one-sided CUSUM ``S = max(0, S + X)`` with in-control run length
    ``run_length`` (Siegmund: ``ARL = (exp(theta b) - theta b - 1) / (theta |mu|)`` with
    ``b = h + 1.166 sd(X)``, the correction for the sum overshooting the threshold).

    Remembered by the exact bytes of its inputs: Page-Hinkley's increments depend only on the
    ranks of a reference, so every continuous reference of one size gives the same ones, and
    thousands of features fitting at once would otherwise solve the same equation each.

    >>> x = np.random.default_rng(2).normal(-0.25, 1.0, 200_000)
    >>> round(cusum_threshold(x, 1e6), 0)
    22.0
    """
    x = np.ascontiguousarray(increments, dtype=float)
    w = np.ones_like(x) if weights is None else np.ascontiguousarray(weights, dtype=float)
    digest = hashlib.blake2b(struct.pack("<qqd", x.size, w.size, float(run_length)), digest_size=16)
    digest.update(x.tobytes())
    digest.update(w.tobytes())
    key = digest.digest()
    found = _THRESHOLDS.get(key)
    if found is None:
        if len(_THRESHOLDS) >= _REMEMBERED:
            _THRESHOLDS.clear()
        found = _THRESHOLDS[key] = _cusum_threshold(x, run_length, w)
    return found


#: Thresholds already solved, by a digest of their inputs (a bounded memory).
_THRESHOLDS: dict[bytes, float] = {}
_REMEMBERED = 4096


def _cusum_threshold(x: np.ndarray, run_length: float, w: np.ndarray) -> float:
    mu = abs(float(np.dot(w / w.sum(), x)))
    theta = adjustment_coefficient(x, w)
    if math.isinf(theta):
        # No increment can push the sum up: any positive threshold is never crossed in control.
        return float(np.max(np.abs(x))) if x.size else 1.0
    target = run_length * theta * mu
    th = math.log(target + 1.0)
    for _ in range(50):  # fixed point of exp(th) = target + th + 1
        th = math.log(target + th + 1.0)
    sd = math.sqrt(max(0.0, float(np.dot(w / w.sum(), (x - np.dot(w / w.sum(), x)) ** 2))))
    return max(th / theta - OVERSHOOT * sd, 0.5 * th / theta)


def per_test_level(evaluate_every: int, run_length: float) -> float:
    """Significance level of one windowed test evaluated every ``evaluate_every`` values.

    >>> per_test_level(100, 4e6)
    2.5e-05
    """
    return min(0.5, evaluate_every / float(run_length))
