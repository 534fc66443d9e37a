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
from .errors import check_range
from .reference import Reference


#: A threshold no sum reaches: the detector is off.
NEVER = 1 << 62


class PageHinkley:
    """Two-sided Page-Hinkley (CUSUM) test on normal scores.

    Parameters
    ----------
    shift
        Smallest mean shift to detect quickly, in reference standard deviations (> 0).
        The drift allowance of each side is ``shift / 2``.

    >>> rng = np.random.default_rng(7)
    >>> ph = PageHinkley(shift=0.5)
    >>> ph.fit(Reference(rng.normal(0, 1, 5000)), run_length=4e6)
    >>> stable = ph.update(rng.normal(0, 1, 3000))
    >>> fired = ph.update(rng.normal(0.5, 1, 3000))
    >>> stable, fired is not None and fired[1], fired is not None and 0 < fired[0] < 600
    (None, 'up', True)
    """

    name = "page_hinkley"

    def __init__(self, shift: float = 0.5):
        check_range("page_hinkley.shift", shift, 0, 10, low_open=True)
        self.shift = shift
        self.reference: Reference | None = None
        self.threshold = 0
        self._reset()

    def _reset(self) -> None:
        self.up = 0
        self.down = 0
        self.count = 0  # scores seen since the last fit
        self.up_since = 0  # where the current run of each side began (estimated change point)
        self.down_since = 0

    def fit(self, reference: Reference, run_length: float) -> None:
        """Calibrate the threshold so that both sides together keep ``run_length``."""
        self.reference = reference
        positions, weights = reference.null_positions()
        z = reference.normal_scores(positions)
        allowance = self.shift / 2.0
        mean = np.average(z, weights=weights)
        sd = float(np.sqrt(np.average((z - mean) ** 2, weights=weights)))  # weights are counts
        guard = calibration.REFERENCE_GUARD * sd / np.sqrt(reference.size)
        # Each side keeps twice the run length; the guard moves the null towards the alarm side.
        thresholds = []
        for scores in (z - allowance + guard, -z - allowance + guard):
            if np.average(scores, weights=weights) >= 0:
                # The reference is too small for this shift: its own uncertainty is as large as
                # the drift allowance, so no threshold keeps the budget. The detector stays off.
                thresholds.append(math.inf)
            else:
                thresholds.append(calibration.cusum_threshold(scores, 2 * run_length, weights))
        h = max(thresholds)
        self.threshold = NEVER if math.isinf(h) else int(round(h * QUANTUM))
        self._reset()

    @property
    def threshold_value(self) -> float:
        """The threshold in score units (sum of standardised deviations)."""
        return self.threshold / QUANTUM

    def update(self, z: np.ndarray) -> tuple[int, str, float, int] | None:
        """Feed normal scores; return ``(index, direction, statistic, run start)`` of the first
        alarm, where ``run start`` counts scores since the last fit."""
        allowance = self.shift / 2.0
        up_i, up_s, up_zero = first_crossing(quantise(z - allowance), self.up, self.threshold)
        down_i, down_s, down_zero = first_crossing(quantise(-z - allowance), self.down, self.threshold)
        self.up, self.down = up_s, down_s
        if up_zero >= 0:
            self.up_since = self.count + up_zero + 1
        if down_zero >= 0:
            self.down_since = self.count + down_zero + 1
        self.count += z.size
        if up_i is None and down_i is None:
            return None
        if down_i is None or (up_i is not None and up_i <= down_i):
            return up_i, "up", up_s / QUANTUM, self.up_since
        return down_i, "down", down_s / QUANTUM, self.down_since

    def get_state(self) -> dict:
        return {"up": self.up, "down": self.down, "threshold": self.threshold, "count": self.count,
                "up_since": self.up_since, "down_since": self.down_since}

    def set_state(self, state: dict) -> None:
        self.up, self.down, self.threshold = int(state["up"]), int(state["down"]), int(state["threshold"])
        self.count, self.up_since, self.down_since = (int(state["count"]), int(state["up_since"]),
                                                      int(state["down_since"]))
