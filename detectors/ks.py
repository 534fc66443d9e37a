"""Windowed two-sample Kolmogorov-Smirnov test: the recent window against the reference.

The statistic is exact (ties included). With a fixed reference each value is coded once, on
arrival, by its position among the distinct reference values; a test then costs one sort of the
window's integer positions, independent of the reference size, which is what makes it ~1000x
cheaper per value than re-running scipy on every update (river's KSWIN). Tests run every
``evaluate_every`` values at a level that keeps the detector's share of the false-alarm budget.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import kolmogi, kolmogorov

from . import calibration
from .detection import Hit, require_fitted
from .errors import check_range
from .reference import Reference
from .window import RecentWindow


def effective_size(n: int, m: int) -> float:
    """Stephens' corrected sqrt of the effective sample size of a two-sample KS test."""
    ne = n * m / (n + m)
    return math.sqrt(ne) + 0.12 + 0.11 / math.sqrt(ne)


def ks_statistic_positions(reference: Reference, window_positions: np.ndarray) -> tuple[int, int]:
    """Exact ``D * n * m`` split by sign for a window coded as reference positions.

    Returns ``(up, down)``: ``up`` is the largest excess of the reference ECDF over the window's
    (window values larger), ``down`` the reverse. Both are integers, so decisions are exact.

    >>> ref = Reference(np.arange(10.0))
    >>> ks_statistic_positions(ref, ref.positions(np.arange(10.0) + 5))
    (50, 0)
    """
    n, m = reference.size, window_positions.size
    s = np.sort(window_positions)
    last = np.empty(s.size, dtype=bool)
    last[:-1] = s[1:] != s[:-1]
    last[-1] = True
    distinct = s[last]
    window_cdf = (np.flatnonzero(last) + 1).astype(np.int64)  # window count at or below each distinct
    ref_cdf = reference.position_at_or_below
    # F_ref rises between window positions while F_win stays: its largest excess sits just
    # before the next window position (or at the very top), its smallest at the position itself.
    before_next = np.empty(distinct.size + 1, dtype=np.int64)
    before_next[0] = distinct[0] - 1
    before_next[1:] = np.append(distinct[1:] - 1, reference.n_positions - 1)
    win_before = np.empty(distinct.size + 1, dtype=np.int64)
    win_before[0] = 0
    win_before[1:] = window_cdf
    valid = before_next >= 0
    up = ref_cdf[before_next[valid]] * m - win_before[valid] * n
    down = window_cdf * n - ref_cdf[distinct] * m
    return int(max(up.max(initial=0), 0)), int(max(down.max(initial=0), 0))


def ks_statistic_values(reference: np.ndarray, window: np.ndarray) -> tuple[float, float]:
    """Exact ``(up, down)`` KS statistics of two samples of values (for a sliding reference).

    >>> ks_statistic_values(np.arange(10.0), np.arange(10.0) + 5)
    (0.5, 0.0)
    """
    a, b = np.sort(reference), np.sort(window)
    points = np.concatenate((a, b))
    fa = np.searchsorted(a, points, side="right") / a.size
    fb = np.searchsorted(b, points, side="right") / b.size
    return float(max((fa - fb).max(), 0.0)), float(max((fb - fa).max(), 0.0))


def _spread_direction(u: np.ndarray) -> str:
    """'wider' when more than half the window lies outside the reference's quartiles."""
    return "wider" if np.mean((u < 0.25) | (u > 0.75)) > 0.5 else "narrower"


class WindowedKS:
    """KS test of the last ``window`` values against the reference, every ``evaluate_every`` values.

    >>> rng = np.random.default_rng(5)
    >>> ks = WindowedKS(window=1000, evaluate_every=250)
    >>> ref = Reference(rng.normal(0, 1, 5000))
    >>> ks.fit(ref, share=4e6)
    >>> round(ks.critical, 3)
    0.079
    >>> ks.update(rng.normal(0, 1, 3000))
    []
    >>> [(hit.index, hit.direction, round(hit.statistic, 3)) for hit in ks.update(rng.normal(0, 2, 1000))]
    [(499, 'wider', 0.083), (749, 'wider', 0.116), (999, 'wider', 0.164)]

    A monitor keeps the window itself (shared by its detectors) and asks for one test at a time:

    >>> ks.test_positions(ref.positions(rng.normal(0, 1, 1000))) is None
    True
    """

    name = "ks"

    def __init__(self, window: int = 1000, evaluate_every: int = 250, sliding_reference: bool = False):
        check_range("ks.window", window, 20, 1_000_000, integer=True)
        check_range("ks.evaluate_every", evaluate_every, 1, window, integer=True)
        self.window = int(window)
        self.evaluate_every = int(evaluate_every)
        self.sliding_reference = bool(sliding_reference)
        self.level = 0.0
        self.critical = 1.0
        self.reference: Reference | None = None
        self.drift_detected = False
        #: The recent values of ``update`` (positions; values with a sliding reference), made
        #: on its first call: a monitor keeps its own window and never calls it.
        self._recent: RecentWindow | None = None

    @property
    def fitted(self) -> bool:
        return self.reference is not None

    def fit(self, reference: Reference, share: float) -> None:
        """Set the critical value so that tests every ``evaluate_every`` values keep ``share``
        values between false alarms, and start afresh."""
        if not isinstance(reference, Reference):
            raise TypeError(f"WindowedKS.fit takes a Reference, got {type(reference).__name__}")
        check_range("share", share, 1)
        self.reference = reference
        self.level = calibration.per_test_level(self.evaluate_every, share)
        self.critical = float(kolmogi(self.level)) / effective_size(reference.size, self.window)
        self.drift_detected = False
        self._recent = None

    def _recent_window(self) -> RecentWindow:
        if self._recent is None:
            if self.sliding_reference:
                # The values just before the window are its reference: at first the fitted
                # reference, in a fixed shuffled order (the Reference keeps its values sorted,
                # and a sorted tail would be a biased sample of it).
                self._recent = RecentWindow(self.window + self.reference.size, np.float64,
                                            before=np.random.default_rng(0).permutation(self.reference.values))
            else:
                self._recent = RecentWindow(self.window, np.int64)
        return self._recent

    def update(self, values) -> list[Hit]:
        """Feed values (finite numbers); return a hit for every test over the critical value."""
        require_fitted(self)
        x = np.asarray(values, dtype=np.float64).reshape(-1)
        if not np.isfinite(x).all():
            raise ValueError(f"value at position {int(np.flatnonzero(~np.isfinite(x))[0])} is not a finite number")
        recent = self._recent_window()
        w = self.window
        if self.sliding_reference:
            def test(upto: np.ndarray) -> Hit | None:
                end = upto.size
                return self.test_values(upto[max(0, end - w - self.reference.size):end - w], upto[end - w:])
            hits = recent.update(x, self.evaluate_every, w, test)
        else:
            hits = recent.update(self.reference.positions(x), self.evaluate_every, w,
                                 lambda upto: self.test_positions(upto[-w:]))
        self.drift_detected = bool(hits)
        return hits

    def _verdict(self, up: float, down: float) -> tuple[float, str, float] | None:
        d = max(up, down)
        if d <= self.critical:
            return None
        # Both signs large means the spread changed rather than the location.
        direction = "spread" if min(up, down) > 0.5 * d else ("up" if up >= down else "down")
        p = float(kolmogorov(d * effective_size(self.reference.size, self.window)))
        return d, direction, p

    def _hit(self, verdict, m: int, uniform) -> Hit | None:
        if verdict is None:
            return None
        d, direction, p = verdict
        if direction == "spread":
            direction = _spread_direction(uniform())
        return Hit(index=m - 1, direction=direction, statistic=d, threshold=self.critical, p_value=p)

    def test_positions(self, window_positions: np.ndarray) -> Hit | None:
        """The test of one window, given as reference positions; its hit sits at the window's end."""
        up, down = ks_statistic_positions(self.reference, window_positions)
        m = window_positions.size
        scale = self.reference.size * m
        return self._hit(self._verdict(up / scale, down / scale), m,
                         lambda: self.reference.uniform_scores(window_positions))

    def test_values(self, reference: np.ndarray, window: np.ndarray) -> Hit | None:
        """The same test for a sliding reference given as values."""
        up, down = ks_statistic_values(reference, window)
        return self._hit(self._verdict(up, down), window.size,
                         lambda: np.searchsorted(np.sort(reference), window) / reference.size)

    def get_state(self) -> dict:
        """The recent values of ``update`` (empty for a detector a monitor feeds window by window)."""
        if self._recent is None:
            return {}
        return self._recent.get_state()

    def set_state(self, state: dict) -> None:
        """Restore ``get_state`` output into a detector fitted on the same reference."""
        self._recent = None
        if state.get("recent") is not None:
            self._recent_window().set_state(state)
