"""Scale: a two-sided CUSUM on squared normal scores, for a spread that widens or narrows.

A mean detector misses a feature whose centre stays put while its spread changes: a variance
that doubles, or a faulty sensor that sends 5% of its values from a five times wider
distribution. Both raise the mean of the *squared* normal scores (in the reference, N(0, 1)
scores have squares of mean 1); a narrowing lowers it. ``Scale`` runs Page-Hinkley's CUSUM on
``z**2 - c``, where ``c`` is the squares' mean under no drift on this very reference, so the same
calibration from the false-alarm budget holds: the null increments are the reference's own
scores, their adjustment coefficient gives the threshold (``calibration.cusum_threshold``).

The scores are ranks, so a value far outside the reference counts as the reference's extreme
(|z| near 3.7 for 5,000 values): one wild value cannot fire it, a run of them does.
"""

from __future__ import annotations

import numpy as np

from .errors import check_range
from .page_hinkley import PageHinkley
from .reference import Reference


class Scale(PageHinkley):
    """Two-sided CUSUM on squared normal scores: ``up`` = wider than the reference, ``down`` =
    narrower.

    Parameters
    ----------
    change
        Smallest change of the variance worth catching fast, relative (0.4: 40% more or less
        variance, in squared-score units). The drift allowance of each side is ``change / 2``.

    >>> rng = np.random.default_rng(7)
    >>> scale = Scale()
    >>> scale.fit(Reference(rng.normal(0, 1, 5000)), share=6e7)
    >>> scale.update(rng.normal(0, 1, 5000))
    []
    >>> [(hit.index, hit.direction) for hit in scale.update(rng.normal(0, 2 ** 0.5, 3000))]
    [(130, 'up')]
    """

    name = "scale"
    null_fields = ("centre",)

    def __init__(self, change: float = 0.4):
        check_range("scale_change", change, 0, 10, low_open=True)
        super().__init__(shift=change)
        self.change = change
        #: The mean of the squared scores under no drift (1 for an unbounded N(0, 1)).
        self.centre = 1.0

    def _centre(self, z: np.ndarray, weights: np.ndarray) -> None:
        self.centre = float(np.average(z * z, weights=weights))

    def statistic(self, z: np.ndarray) -> np.ndarray:
        """Each value's squared normal score less its null mean."""
        return z * z - self.centre
