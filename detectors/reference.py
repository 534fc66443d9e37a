"""The reference a numeric feature is compared with: sorted values and rank transforms.

Every numeric detector looks at values through the reference's empirical distribution: a value
becomes its mid-rank ``u`` in the reference (in (0, 1)) and its normal score ``z = Phi^-1(u)``.
Under no drift, ``u`` is uniform and ``z`` standard normal whatever the feature's scale, skew,
tails or ties, which is what lets one setting and one calibration work for every feature.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np
from scipy.special import ndtri

SUMMARY_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


class Reference:
    """Sorted reference values with their rank transform.

    Positions code where a value falls among the distinct reference values ``v_0 < ... < v_m-1``:
    ``2j`` is the gap below ``v_j`` (``2m`` above the largest), ``2j + 1`` is equal to ``v_j``.

    >>> ref = Reference(np.array([1.0, 2.0, 2.0, 3.0]))
    >>> ref.positions(np.array([0.5, 2.0, 2.5, 9.0])).tolist()
    [0, 3, 4, 6]
    >>> ref.uniform_scores(ref.positions(np.array([0.5, 2.0, 9.0]))).round(2).tolist()
    [0.1, 0.5, 0.9]
    """

    def __init__(self, values: np.ndarray):
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1 or values.size == 0:
            raise ValueError("reference must be a non-empty 1-d array of values")
        if not np.all(np.isfinite(values)):
            raise ValueError("reference values must be finite (missing values are not part of it)")
        self.values = np.sort(values)
        self.size = int(self.values.size)
        # The distinct values and their counts, from the sorted values (np.unique would sort again).
        first = np.empty(self.size, dtype=bool)
        first[0] = True
        np.not_equal(self.values[1:], self.values[:-1], out=first[1:])
        self.distinct = self.values[first]
        self.at_or_below = np.append(np.flatnonzero(first[1:]) + 1, self.size)
        counts = np.diff(self.at_or_below, prepend=0)
        below = self.at_or_below - counts
        # Reference count strictly below / at-or-below each position, as int64 arrays of 2m+1.
        m = self.distinct.size
        self.position_below = np.empty(2 * m + 1, dtype=np.int64)
        self.position_at_or_below = np.empty(2 * m + 1, dtype=np.int64)
        self.position_below[0:2 * m:2] = below
        self.position_below[1:2 * m:2] = below
        self.position_below[2 * m] = self.size
        self.position_at_or_below[0:2 * m:2] = below
        self.position_at_or_below[1:2 * m:2] = self.at_or_below
        self.position_at_or_below[2 * m] = self.size
        self._ties: tuple | None = None

    def ties_key(self) -> tuple:
        """What the null scores (``null_positions``, ``uniform_scores``) depend on: the size and
        the counts of tied values, only the size when no two values tie (the common case for a
        continuous feature). Fits remember what they learn by it.

        >>> Reference(np.array([3.0, 1.0, 2.0])).ties_key()
        (3,)
        >>> Reference(np.array([1.0, 1.0, 2.0])).ties_key() == Reference(np.array([5.0, 5.0, 9.0])).ties_key()
        True
        """
        if self._ties is None:
            self._ties = (self.size,) if self.distinct.size == self.size else \
                (self.size, hashlib.blake2b(self.at_or_below.tobytes(), digest_size=16).digest())
        return self._ties

    @property
    def n_positions(self) -> int:
        return 2 * self.distinct.size + 1

    def positions(self, x: np.ndarray) -> np.ndarray:
        """Position code of each finite value (see the class docstring)."""
        j = np.searchsorted(self.distinct, x, side="left")
        equal = np.zeros(x.shape, dtype=bool)
        inside = j < self.distinct.size
        equal[inside] = self.distinct[j[inside]] == x[inside]
        return 2 * j + equal

    def uniform_scores(self, positions: np.ndarray) -> np.ndarray:
        """Mid-rank of each position among the reference, mapped into (0, 1)."""
        below = self.position_below[positions]
        at = self.position_at_or_below[positions]
        return (below + at + 1) / (2.0 * (self.size + 1))

    def normal_scores(self, positions: np.ndarray) -> np.ndarray:
        """``Phi^-1`` of the mid-rank: standard normal under no drift, bounded by the reference size."""
        return ndtri(self.uniform_scores(positions))

    def null_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions a new value takes under no drift, with weights: every reference value, plus
        one pseudo-value below and one above it (a new value can fall outside the reference)."""
        m = self.distinct.size
        positions = np.concatenate(([0], 2 * np.arange(m) + 1, [2 * m]))
        counts = np.diff(np.concatenate(([0], self.at_or_below)))
        weights = np.concatenate(([1.0], counts.astype(float), [1.0]))
        return positions, weights

    def quantile_edges(self, bins: int) -> np.ndarray:
        """Distinct inner edges that split the reference into about ``bins`` equally likely bins."""
        return np.unique(self.values[_quantile_ranks(self.size, bins)])

    def summary(self) -> dict:
        """``summarize`` of the reference values: made once (every alert of the reference
        carries it), a fresh copy each time."""
        made = self.__dict__.get("_summary")
        if made is None:
            made = self._summary = summarize(self.values)
        return {**made, "quantiles": dict(made["quantiles"])} if "quantiles" in made else dict(made)


@functools.lru_cache(maxsize=256)
def _quantile_ranks(size: int, bins: int) -> np.ndarray:
    """Which of ``size`` sorted values are the ``inverted_cdf`` quantiles at ``1/bins, ...,
    (bins-1)/bins``: that method picks a value by rank, and the rank depends on the size alone.

    >>> values = np.sort(np.random.default_rng(3).integers(0, 9, 101).astype(float))
    >>> q = np.quantile(values, np.arange(1, 10) / 10, method="inverted_cdf")
    >>> bool((values[_quantile_ranks(101, 10)] == q).all())
    True
    """
    ranks = np.quantile(np.arange(size), np.arange(1, bins) / bins, method="inverted_cdf").astype(np.int64)
    ranks.setflags(write=False)
    return ranks


def summarize(values: np.ndarray) -> dict:
    """n, mean, std and quantiles of a sample of numbers, as plain floats for an alert.

    >>> summarize(np.array([1.0, 2.0, 3.0]))["mean"]
    2.0
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"n": 0}
    qs = np.quantile(values, SUMMARY_QUANTILES)
    return {
        "n": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "quantiles": {f"p{int(q * 100):02d}": float(v) for q, v in zip(SUMMARY_QUANTILES, qs)},
    }
