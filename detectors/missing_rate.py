"""Missing-rate detector: a two-sided Bernoulli CUSUM on "is this value missing?".

The in-control rate comes from the reference (with a Laplace prior, so a feature never missing
in the reference still has a finite, calibrated test), moved by two standard errors towards each
side's alarm: the upward side tests against the upper end of what the reference allows, the
downward side against the lower end. The upward side is designed for that rate doubling (or
rising by ``min_change``, whichever is larger), the downward side for it falling to a third.
"""

from __future__ import annotations

import math

import numpy as np

from . import calibration
from .cusum import QUANTUM, first_crossing
from .detection import Hit, require_fitted
from .errors import check_range

#: Fewer missing values than this in the reference and a drop of the rate is not testable.
MIN_MISSING_FOR_DOWN = 10


class MissingRate:
    """Two-sided CUSUM on the missing indicator.

    >>> rng = np.random.default_rng(2)
    >>> mr = MissingRate()
    >>> mr.fit(rng.random(5000) < 0.01, share=4e6)      # the reference's missing flags
    >>> mr.update(rng.random(20000) < 0.01)
    []
    >>> [(hit.index, hit.direction) for hit in mr.update(rng.random(2000) < 0.10)]
    [(167, 'up')]

    A monitor, which counts missing values as it collects its reference, fits on the counts:

    >>> mr.fit_counts(missing=50, total=5000, share=4e6)
    """

    name = "missing_rate"

    def __init__(self, min_change: float = 0.01):
        check_range("missing_rate.min_change", min_change, 0, 0.5, low_open=True)
        self.min_change = min_change
        self.rate = 0.0
        self.steps = np.zeros((2, 2), dtype=np.int64)  # [side][present, missing]
        self.threshold = np.array([0, 0], dtype=np.int64)
        self.enabled = np.array([False, False])
        self.fitted = False
        self.drift_detected = False
        self._reset()

    def _reset(self) -> None:
        self.sums = [0, 0]

    def fit(self, reference, share: float) -> None:
        """Calibrate on the reference's missing flags (``True`` = missing) so that both sides
        together keep ``share`` values between false alarms; start afresh."""
        flags = np.asarray(reference)
        if flags.dtype != np.bool_ or flags.ndim != 1 or flags.size == 0:
            raise ValueError("MissingRate.fit takes a non-empty 1-d array of booleans (True = missing)")
        self.fit_counts(int(flags.sum()), int(flags.size), share)

    def fit_counts(self, missing: int, total: int, share: float) -> None:
        """``fit`` from the reference's counts: ``missing`` of ``total`` values were missing."""
        check_range("share", share, 1)
        if not 0 <= missing <= total:
            raise ValueError(f"missing must be between 0 and total ({total}), got {missing}")
        run_length = share
        p0 = (missing + 1.0) / (total + 2.0)
        se = math.sqrt(p0 * (1 - p0) / (total + 2.0))
        self.rate = missing / total if total else 0.0
        guards = [min(0.5, p0 + calibration.REFERENCE_GUARD * se),
                  max(1e-9, p0 - calibration.REFERENCE_GUARD * se)]
        designs = [min(0.99, guards[0] + max(guards[0], self.min_change)), guards[1] / 3.0]
        for side, (p1, pg) in enumerate(zip(designs, guards)):
            # Log-likelihood ratio of "rate p1" against "rate pg": it drifts down whenever the
            # true rate is on the safe side of pg, which the reference makes likely.
            llr = np.array([math.log((1 - p1) / (1 - pg)), math.log(p1 / pg)])
            self.steps[side] = np.rint(llr * QUANTUM).astype(np.int64)
            self.enabled[side] = side == 0 or missing >= MIN_MISSING_FOR_DOWN
            if not self.enabled[side]:
                continue
            h = calibration.cusum_threshold(llr, 2 * run_length, weights=np.array([1 - pg, pg]))
            self.threshold[side] = int(round(h * QUANTUM))
        self.fitted = True
        self.drift_detected = False
        self._reset()

    def threshold_value(self, direction: str) -> float:
        """The threshold of one side, in log-likelihood-ratio units."""
        return float(self.threshold[0 if direction == "up" else 1]) / QUANTUM

    def update(self, values) -> list[Hit]:
        """Feed missing flags (``True`` = missing); return the hits, at most one per side. A
        side that fired holds its alarm and ignores later values until the next fit."""
        require_fitted(self)
        flags = np.asarray(values)
        if flags.dtype != np.bool_:
            raise ValueError(f"MissingRate.update takes booleans (True = missing), got {flags.dtype}")
        flags = flags.reshape(-1).astype(np.int64)
        hits = []
        for side, direction in ((0, "up"), (1, "down")):
            if not self.enabled[side] or self.sums[side] > self.threshold[side]:
                continue  # off, or in alarm since an earlier call
            i, s, _ = first_crossing(self.steps[side][flags], self.sums[side], int(self.threshold[side]))
            self.sums[side] = s
            if i is not None:
                hits.append(Hit(index=i, direction=direction, statistic=s / QUANTUM,
                                threshold=self.threshold_value(direction)))
        hits.sort(key=lambda hit: (hit.index, hit.direction))  # a tie: "down" first, as it always was
        self.drift_detected = bool(hits)
        return hits

    def get_state(self) -> dict:
        return {"sums": np.asarray(self.sums, dtype=np.int64), "steps": self.steps,
                "threshold": self.threshold, "enabled": self.enabled.astype(np.int8), "rate": self.rate}

    def set_state(self, state: dict) -> None:
        """Restore ``get_state`` output (the whole calibration: no fit is needed first)."""
        self.sums = [int(v) for v in state["sums"]]
        self.steps = np.asarray(state["steps"], dtype=np.int64).reshape(2, 2)
        self.threshold = np.asarray(state["threshold"], dtype=np.int64)
        self.enabled = np.asarray(state["enabled"]).astype(bool)
        self.rate = float(state["rate"])
        self.fitted = True
