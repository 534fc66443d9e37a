"""Windowed test of category frequencies against the reference (two-sample G-test).

Used for categorical features (cells = categories) and for numeric features binned at the
reference's quantiles (the ``histogram`` detector, which catches changes of variance and shape
that leave the mean alone). Cells expected to be sparse in a window are pooled before testing so
that the chi-square approximation holds at the small levels a false-alarm budget asks for.
PSI and the Jensen-Shannon distance are reported as effect sizes.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.stats import chi2

from . import calibration
from .detection import Hit, require_fitted
from .errors import check_range
from .window import RecentWindow

#: A cell whose expected count in one window is below this is pooled with other sparse cells.
MIN_EXPECTED = 5.0


def g_statistic(reference_counts: np.ndarray, window_counts: np.ndarray) -> float:
    """Two-sample G statistic (likelihood ratio for homogeneity) of two count vectors.

    >>> round(g_statistic(np.array([50, 50]), np.array([50, 50])), 6)
    0.0
    >>> round(g_statistic(np.array([500, 500]), np.array([70, 30])), 2)
    15.0
    """
    r = np.asarray(reference_counts, dtype=np.float64)
    w = np.asarray(window_counts, dtype=np.float64)
    n_r, n_w = r.sum(), w.sum()
    column = r + w
    total = n_r + n_w
    # sum O log(O / E) over both rows, E = row total * column total / grand total
    g = 0.0
    for row, n_row in ((r, n_r), (w, n_w)):
        nz = row > 0
        g += float(np.dot(row[nz], np.log(row[nz] * total / (n_row * column[nz]))))
    return 2.0 * g


def psi(reference_counts: np.ndarray, window_counts: np.ndarray, floor: float = 1e-4) -> float:
    """Population stability index (>= 0.25 is the usual line for a major shift).

    >>> round(psi(np.array([30, 70]), np.array([40, 60])), 3)
    0.044
    """
    p = np.maximum(reference_counts / reference_counts.sum(), floor)
    q = np.maximum(window_counts / window_counts.sum(), floor)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(reference_counts: np.ndarray, window_counts: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]).

    >>> jensen_shannon(np.array([1, 0]), np.array([0, 1]))
    1.0
    """
    p = reference_counts / reference_counts.sum()
    q = window_counts / window_counts.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return float(np.sqrt(max(0.0, 0.5 * kl(p) + 0.5 * kl(q))))


class FrequencyTest:
    """G-test of the window's cell counts against the reference's.

    Values are cell codes ``0 .. len(reference_counts) - 1`` (a category's index, a bin's).

    >>> rng = np.random.default_rng(11)
    >>> test = FrequencyTest(window=1000, evaluate_every=250)
    >>> test.fit(np.bincount(rng.choice(4, 5000, p=[0.3, 0.3, 0.2, 0.2])), share=2e6)
    >>> test.update(rng.choice(4, 3000, p=[0.3, 0.3, 0.2, 0.2]))
    []
    >>> [(hit.index, round(hit.effect["psi"], 3)) for hit in test.update(rng.choice(4, 1000, p=[0.4, 0.25, 0.2, 0.15]))]
    [(749, 0.033), (999, 0.056)]
    """

    name = "frequency"

    def __init__(self, window: int = 1000, evaluate_every: int = 250):
        check_range("window", window, 20, 1_000_000, integer=True)
        check_range("evaluate_every", evaluate_every, 1, window, integer=True)
        self.window = int(window)
        self.evaluate_every = int(evaluate_every)
        self.reference_counts = np.zeros(1)
        self.cell_of = np.zeros(1, dtype=np.int64)
        self.critical = np.inf
        self.level = 0.0
        self.fitted = False
        self.drift_detected = False
        #: The recent codes of ``update``, made on its first call (a monitor keeps its own).
        self._recent: RecentWindow | None = None

    def fit(self, reference_counts: np.ndarray, share: float) -> None:
        """Pool sparse cells and set the critical value so that tests every ``evaluate_every``
        values keep ``share`` values between false alarms; start afresh."""
        counts = np.asarray(reference_counts, dtype=np.float64).reshape(-1)
        if counts.size == 0 or not np.isfinite(counts).all() or (counts < 0).any() or counts.sum() <= 0:
            raise ValueError("reference_counts must be finite counts >= 0 with a positive total")
        check_range("share", share, 1)
        share_of = counts / counts.sum()
        sparse = share_of * self.window < MIN_EXPECTED
        # Dense cells keep their own column; all sparse cells share the last column.
        cell_of = np.cumsum(~sparse) - 1
        pooled = int((~sparse).sum())
        cell_of[sparse] = pooled
        n_cells = pooled + int(sparse.any())
        self.cell_of = cell_of.astype(np.int64)
        self.reference_counts = np.bincount(self.cell_of, weights=counts, minlength=n_cells)
        self.level = calibration.per_test_level(self.evaluate_every, share)
        df = n_cells - 1
        self.critical = chi2_critical(self.level, df) if df > 0 else np.inf
        self.fitted = True
        self.drift_detected = False
        self._recent = None

    def update(self, values) -> list[Hit]:
        """Feed cell codes; return a hit for every test over the critical value."""
        require_fitted(self)
        codes = np.asarray(values)
        if codes.dtype.kind not in "iu":
            raise ValueError(f"FrequencyTest.update takes integer cell codes, got {codes.dtype}")
        codes = codes.reshape(-1).astype(np.int64)
        bad = np.flatnonzero((codes < 0) | (codes >= self.cell_of.size))
        if bad.size:
            raise ValueError(f"value at position {int(bad[0])} is {int(codes[bad[0]])}, not a cell code in "
                             f"0..{self.cell_of.size - 1}")
        if self._recent is None:
            self._recent = RecentWindow(self.window, np.int64)
        w = self.window
        hits = self._recent.update(codes, self.evaluate_every, w, lambda upto: self.test(upto[-w:]))
        self.drift_detected = bool(hits)
        return hits

    def test(self, window_codes: np.ndarray) -> Hit | None:
        """The test of one window of cell codes; its hit sits at the window's end."""
        counts = np.bincount(self.cell_of[window_codes], minlength=self.reference_counts.size)
        g = g_statistic(self.reference_counts, counts)
        if g <= self.critical:
            return None
        p = float(chi2.sf(g, self.reference_counts.size - 1))
        effect = {"psi": psi(self.reference_counts, counts),
                  "jensen_shannon": jensen_shannon(self.reference_counts, counts)}
        return Hit(index=len(window_codes) - 1, direction=None, statistic=g, threshold=float(self.critical),
                   p_value=p, effect=effect)

    def get_state(self) -> dict:
        """The recent codes of ``update`` (empty for a test a monitor feeds window by window)."""
        if self._recent is None:
            return {}
        return self._recent.get_state()

    def set_state(self, state: dict) -> None:
        """Restore ``get_state`` output into a test fitted on the same reference counts."""
        self._recent = None
        if state.get("recent") is not None:
            self._recent = RecentWindow(self.window, np.int64)
            self._recent.set_state(state)


@lru_cache(maxsize=1024)
def chi2_critical(level: float, df: int) -> float:
    """``chi2.isf(level, df)``, remembered: scipy takes ~0.1 ms per call, and features fitting
    at once share a few (level, df) pairs.

    >>> round(chi2_critical(0.05, 1), 3)
    3.841
    """
    return float(chi2.isf(level, df))
