"""Page-Hinkley: a two-sided CUSUM on values standardised against the reference.

Values enter as their normal scores in the reference (see ``reference.py``), so the detector
sees N(0, 1) under no drift whatever the feature's scale or shape, and one ``shift`` setting (the
smallest mean shift worth catching, in reference standard deviations) works for every feature.
The threshold comes from the false-alarm budget and the reference's own score distribution.
"""

from __future__ import annotations

import math

import numpy as np

from . import calibration
from .cusum import QUANTUM, first_crossing, quantise
from .detection import Hit, require_fitted
from .errors import check_range
from .owed import owed_attribute
from .reference import Reference


#: A threshold no sum reaches: the detector is off.
NEVER = 1 << 62


#: What fits learned, by detector type, allowance, share and the reference's ties (bounded).
_LEARNED: dict[tuple, tuple[int, tuple]] = {}
_REMEMBERED = 4096


class PageHinkley:
    """Two-sided Page-Hinkley (CUSUM) test on normal scores.

    Parameters
    ----------
    shift
        Smallest mean shift to detect quickly, in reference standard deviations (> 0).
        The drift allowance of each side is ``shift / 2``.

    >>> rng = np.random.default_rng(7)
    >>> ph = PageHinkley(shift=0.5)
    >>> ph.fit(Reference(rng.normal(0, 1, 5000)), share=4e6)
    >>> ph.update(rng.normal(0, 1, 3000))
    []
    >>> [(hit.index, hit.direction, hit.since_change) for hit in ph.update(rng.normal(0.5, 1, 3000))]
    [(74, 'up', 143)]
    >>> ph.drift_detected
    True
    """

    name = "page_hinkley"
    #: What ``_centre`` learns from the null scores, besides the threshold (remembered with it).
    null_fields: tuple[str, ...] = ()
    # The sums, count and run starts: the cross-model path may owe them (``detectors.owed``).
    up = owed_attribute("up")
    down = owed_attribute("down")
    count = owed_attribute("count")
    up_since = owed_attribute("up_since")
    down_since = owed_attribute("down_since")

    def __init__(self, shift: float = 0.5):
        check_range("page_hinkley.shift", shift, 0, 10, low_open=True)
        self.shift = shift
        #: Each side's drift allowance, in units of ``statistic``.
        self.allowance = shift / 2.0
        self.reference: Reference | None = None
        self.threshold = 0
        self.drift_detected = False
        self._reset()

    def _reset(self) -> None:
        self.up = 0
        self.down = 0
        self.count = 0  # scores seen since the last fit
        self.up_since = 0  # where the current run of each side began (estimated change point)
        self.down_since = 0

    @property
    def fitted(self) -> bool:
        return self.reference is not None

    def fit(self, reference: Reference, share: float) -> None:
        """Calibrate the threshold so that both sides together keep ``share`` values between
        false alarms (on average), and start afresh.

        What a fit learns (the threshold, and ``null_fields``) depends on the reference only
        through its counts of tied values, so it is remembered by them (``_LEARNED``): the
        thousands of continuous features of one reference size that fit together solve once."""
        if not isinstance(reference, Reference):
            raise TypeError(f"{type(self).__name__}.fit takes a Reference, got {type(reference).__name__}")
        check_range("share", share, 1, low_open=False)
        self.reference = reference
        key = (type(self), self.allowance, float(share), reference.ties_key())
        learned = _LEARNED.get(key)
        if learned is None:
            if len(_LEARNED) >= _REMEMBERED:
                _LEARNED.clear()
            learned = _LEARNED[key] = self._learn(reference, share)
        self.threshold, fields = learned
        for name, value in zip(self.null_fields, fields):
            setattr(self, name, value)
        self.drift_detected = False
        self._reset()

    def _learn(self, reference: Reference, share: float) -> tuple[int, tuple]:
        """The threshold (quantised) and the ``null_fields`` from the reference's null scores."""
        run_length = share
        positions, weights = reference.null_positions()
        z = reference.normal_scores(positions)
        self._centre(z, weights)
        x = self.statistic(z)
        allowance = self.allowance
        mean = np.average(x, weights=weights)
        sd = float(np.sqrt(np.average((x - mean) ** 2, weights=weights)))  # weights are counts
        guard = calibration.REFERENCE_GUARD * sd / np.sqrt(reference.size)
        # Each side keeps twice the run length; the guard moves the null towards the alarm side.
        thresholds = []
        for scores in (x - allowance + guard, -x - allowance + guard):
            if np.average(scores, weights=weights) >= 0:
                # The reference is too small for this shift: its own uncertainty is as large as
                # the drift allowance, so no threshold keeps the budget. The detector stays off.
                thresholds.append(math.inf)
            else:
                thresholds.append(calibration.cusum_threshold(scores, 2 * run_length, weights))
        h = max(thresholds)
        threshold = NEVER if math.isinf(h) else int(round(h * QUANTUM))
        return threshold, tuple(getattr(self, name) for name in self.null_fields)

    def _centre(self, z: np.ndarray, weights: np.ndarray) -> None:
        """Learn what ``statistic`` needs from the null scores (nothing: normal scores are centred)."""

    def statistic(self, z: np.ndarray) -> np.ndarray:
        """What the two sides sum, from each value's normal score: the score itself (a mean shift)."""
        return z

    @property
    def threshold_value(self) -> float:
        """The threshold in score units (sum of standardised deviations)."""
        return self.threshold / QUANTUM

    def update(self, values) -> list[Hit]:
        """Feed values of the feature (finite numbers); return the hits, at most one per side.

        A side that fired holds its alarm (its sum stays above the threshold) and ignores
        later values until the detector is fit again."""
        require_fitted(self)
        x = np.asarray(values, dtype=np.float64).reshape(-1)
        if not np.isfinite(x).all():
            raise ValueError(f"value at position {int(np.flatnonzero(~np.isfinite(x))[0])} is not a finite number")
        return self.update_scores(self.reference.normal_scores(self.reference.positions(x)))

    def update_scores(self, z: np.ndarray) -> list[Hit]:
        """``update`` for values already turned into their normal scores in the reference (what a
        monitor does once for all its detectors)."""
        require_fitted(self)
        allowance = self.allowance
        x = self.statistic(z)
        before = self.count
        hits = []
        for side, sign in (("up", 1.0), ("down", -1.0)):
            start = self.up if side == "up" else self.down
            if start > self.threshold:
                continue  # in alarm since an earlier call: held until the next fit
            i, s, zero = first_crossing(quantise(sign * x - allowance), start, self.threshold)
            since = self.up_since if side == "up" else self.down_since
            if zero >= 0:
                since = before + zero + 1
            if side == "up":
                self.up, self.up_since = s, since
            else:
                self.down, self.down_since = s, since
            if i is not None:
                hits.append(Hit(index=i, direction=side, statistic=s / QUANTUM, threshold=self.threshold_value,
                                change_point=since - before))
        self.count = before + z.size
        # Both sides at once: the upward one first, as it is tested first.
        hits.sort(key=lambda hit: hit.index)
        self.drift_detected = bool(hits)
        return hits

    def get_state(self) -> dict:
        return {"up": self.up, "down": self.down, "threshold": self.threshold, "count": self.count,
                "up_since": self.up_since, "down_since": self.down_since}

    def set_state(self, state: dict) -> None:
        """Restore ``get_state`` output into a detector fitted on the same reference."""
        self.up, self.down, self.threshold = int(state["up"]), int(state["down"]), int(state["threshold"])
        self.count, self.up_since, self.down_since = (int(state["count"]), int(state["up_since"]),
                                                      int(state["down_since"]))
