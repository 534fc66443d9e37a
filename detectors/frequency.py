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
from .errors import check_range

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

    >>> rng = np.random.default_rng(11)
    >>> test = FrequencyTest(window=1000, evaluate_every=250)
    >>> test.fit(np.bincount(rng.choice(4, 5000, p=[0.3, 0.3, 0.2, 0.2])), run_length=2e6)
    >>> test.test(rng.choice(4, 1000, p=[0.3, 0.3, 0.2, 0.2]))[0] is None
    True
    >>> test.test(rng.choice(4, 1000, p=[0.4, 0.25, 0.2, 0.15]))[0] is None
    False
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

    def fit(self, reference_counts: np.ndarray, run_length: float) -> None:
        """Pool sparse cells and set the critical value for this detector's budget share."""
        counts = np.asarray(reference_counts, dtype=np.float64)
        share = counts / counts.sum()
        sparse = share * self.window < MIN_EXPECTED
        # Dense cells keep their own column; all sparse cells share the last column.
        cell_of = np.cumsum(~sparse) - 1
        pooled = int((~sparse).sum())
        cell_of[sparse] = pooled
        n_cells = pooled + int(sparse.any())
        self.cell_of = cell_of.astype(np.int64)
        self.reference_counts = np.bincount(self.cell_of, weights=counts, minlength=n_cells)
        self.level = calibration.per_test_level(self.evaluate_every, run_length)
        df = n_cells - 1
        self.critical = chi2_critical(self.level, df) if df > 0 else np.inf

    def test(self, window_codes: np.ndarray) -> tuple[float | None, float, float, dict]:
        """``(statistic or None, statistic, p_value, effect sizes)`` for a window of cell codes."""
        counts = np.bincount(self.cell_of[window_codes], minlength=self.reference_counts.size)
        g = g_statistic(self.reference_counts, counts)
        if g <= self.critical:
            return None, g, 1.0, {}
        p = float(chi2.sf(g, self.reference_counts.size - 1))
        effect = {"psi": psi(self.reference_counts, counts),
                  "jensen_shannon": jensen_shannon(self.reference_counts, counts)}
        return g, g, p, effect


@lru_cache(maxsize=1024)
def chi2_critical(level: float, df: int) -> float:
    """``chi2.isf(level, df)``, remembered: scipy takes ~0.1 ms per call, and features fitting
    at once share a few (level, df) pairs.

    >>> round(chi2_critical(0.05, 1), 3)
    3.841
    """
    return float(chi2.isf(level, df))
