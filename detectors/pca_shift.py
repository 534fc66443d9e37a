"""Hotelling's T² and the PCA residual (SPE) of each event: the multivariate monitor's cheaper
companion (``multivariate_pca``, opt-in).

The classic statistics of multivariate process control, on the standardised features:

1. A PCA of the first half of the reference (every other row) keeps the components that explain
   ``VARIANCE`` (90%) of its variance, at most all but one.
2. Each event gets two numbers: T² (its distance from the centre *within* those components, each
   in units of its own spread: the features moved together along directions the reference
   knew) and SPE (its squared distance *from* them: the features broke the reference's
   correlations).
3. Each is mapped to its normal score among the same numbers of the *other* half of the
   reference, and watched by a Page-Hinkley CUSUM (``page_hinkley.PageHinkley``, both sides),
   calibrated by its Siegmund approximation from the detector's share of the false-alarm budget
   like every univariate CUSUM: no simulation.

It costs O(features x components) per event, a few times less than ``multivariate_covariance``'s
products, and sees less: a correlation between features the reference had independent changes
T²'s spread, not its mean (see the README's measurements). The arithmetic is on integers (the
standardised features quantised as ``joint`` does, the components quantised to 2^-12), so every
event's T² and SPE, and so every alarm, are the same in a batch of any size.

>>> rng = np.random.default_rng(11)
>>> mixing = np.linalg.cholesky([[1.0, 0.8, 0.0], [0.8, 1.0, 0.0], [0.0, 0.0, 1.0]])
>>> detector = PcaShift()
>>> detector.fit(rng.normal(size=(4000, 3)) @ mixing.T, share=1e7)
>>> detector.update_standardised(detector.standardise(rng.normal(size=(3000, 3)) @ mixing.T), False)
[]
>>> broken = rng.normal(size=(3000, 3))              # the correlation of features 0 and 1 is gone
>>> [hit] = detector.update_standardised(detector.standardise(broken), False)
>>> hit.effect["statistic"], hit.index < 1000, sorted(np.argsort(-detector.weight_of_features())[:2].tolist())
('spe', True, [0, 1])
"""

from __future__ import annotations

import numpy as np

from .detection import Hit, require_fitted
from .errors import check_range
from .joint import U_QUANTUM, halves, standardisation, standardised
from .page_hinkley import PageHinkley
from .reference import Reference

#: Share of the reference's (standardised) variance the kept components explain.
VARIANCE = 0.9
#: The components are quantised to this many steps per unit (exact integer products).
P_QUANTUM = 1 << 12
#: Squared residuals are summed in steps of 1/this (per feature, for the explanation).
R_QUANTUM = 64
STATISTICS = ("t2", "spe")


class PcaShift:
    """T² and SPE of each row against a PCA of the reference (see the module docstring)."""

    terms = "pca"
    name = "multivariate_pca"

    def __init__(self, *, block: int = 200, window_blocks: int = 5, shift: float = 0.5):
        check_range("block", block, 10, 100_000, integer=True)
        check_range("window_blocks", window_blocks, 1, 1000, integer=True)
        self.block, self.window_blocks = int(block), int(window_blocks)
        self.shift = shift
        self._fitted = False

    @property
    def fitted(self) -> bool:
        return self._fitted

    def fit(self, reference: np.ndarray, share: float) -> None:
        """Learn the components from half of ``reference`` (rows x features, NaN = missing), the
        no-drift T² and SPE from the other half, and the alarm levels from ``share``."""
        first, second = halves(reference, share, 2)
        self.width = first.shape[1]
        self.center, self.scale = standardisation(first)
        z = np.nan_to_num(self.standardise(first), nan=0.0)
        values, vectors = np.linalg.eigh(z.T @ z / z.shape[0])
        values, vectors = values[::-1], vectors[:, ::-1]
        explained = np.cumsum(values) / max(float(values.sum()), 1e-12)
        k = min(int(np.searchsorted(explained, VARIANCE)) + 1, self.width - 1)
        self.components = np.rint(vectors[:, :k] * P_QUANTUM)  # integers: exact products
        self.spread = np.maximum(values[:k], 1e-6 * max(float(values[0]), 1e-12))
        t2, spe, _, _ = self._statistics(self.standardise(second), True)
        self.detectors = {}
        for name, values_of_half in zip(STATISTICS, (t2, spe)):
            detector = PageHinkley(shift=self.shift)
            detector.fit(Reference(values_of_half), 2.0 * share)  # the part's share, split in two
            self.detectors[name] = detector
        self._reset()
        self._fitted = True

    def standardise(self, rows: np.ndarray) -> np.ndarray:
        """Rows as every part of a multivariate monitor standardises them (``joint.standardised``)."""
        return standardised(rows, self.center, self.scale)

    def _statistics(self, z: np.ndarray, missing: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """T² and SPE of standardised rows, with the rows quantised (``U_QUANTUM`` steps) and
        their residuals (in sds); a missing feature is its mean."""
        q = np.rint((np.nan_to_num(z, nan=0.0) if missing else z) * U_QUANTUM)
        t = q @ self.components  # exact: integers whose partial sums stay below 2^53
        scale = float(U_QUANTUM * P_QUANTUM)
        scores = t / scale
        t2 = (scores * scores / self.spread).sum(axis=1)
        fitted = (t @ self.components.T) / (scale * P_QUANTUM)  # the row's projection, in sds
        residual = q / U_QUANTUM - fitted
        return t2, (residual * residual).sum(axis=1), q, residual

    # -- watching -----------------------------------------------------------------------------
    def update_standardised(self, z: np.ndarray, missing: bool) -> list[Hit]:
        """Watch standardised rows (``standardise``); the hit's ``index`` is its row here. After a
        hit the detector holds its alarm (ignores rows) until it is fit again."""
        require_fitted(self)
        n = z.shape[0]
        if n == 0 or self.held:
            return []
        t2, spe, q, residual = self._statistics(z, missing)
        hits = []
        for name, values in zip(STATISTICS, (t2, spe)):
            hits += [(hit.index, name, hit) for hit in self.detectors[name].update(values)]
        end = n if not hits else min(h[0] for h in hits) + 1
        # The explanation's terms, integers: z and z² in U_QUANTUM steps, the squared residual
        # in R_QUANTUM steps.
        terms = np.concatenate((q, q * q, np.rint(residual * residual * R_QUANTUM)), axis=1)
        pos = 0
        while pos < end:  # the explanation's block sums, of the rows up to the hit
            stop = min(end, pos + self.block - self.watched % self.block)
            self.block_sum += terms[pos:stop].sum(axis=0).astype(np.int64)
            self.watched += stop - pos
            if self.watched % self.block == 0:
                self.recent[self.blocks % self.window_blocks] = self.block_sum
                self.blocks += 1
                self.block_sum = np.zeros_like(self.block_sum)
            pos = stop
        if not hits:
            return []
        index, name, hit = min(hits, key=lambda h: (h[0], h[1]))
        self.held = True
        self.last = name
        return [Hit(index=index, direction=hit.direction, statistic=hit.statistic, threshold=hit.threshold,
                    p_value=hit.p_value, change_point=hit.change_point,
                    effect={"statistic": name, "side": hit.direction, **hit.effect})]

    # -- the explanation ----------------------------------------------------------------------
    def _window(self) -> tuple[np.ndarray, int]:
        count = min(self.blocks, self.window_blocks) * self.block + self.watched % self.block
        sums = self.recent.sum(axis=0) + self.block_sum
        return sums.astype(np.float64) / max(count, 1), count

    def recent_move(self) -> np.ndarray:
        """Each feature's mean over the recent window, in reference sds."""
        means, _ = self._window()
        return means[:self.width] / U_QUANTUM

    def weight_of_features(self) -> np.ndarray:
        """How much each feature explains the last alarm: its share of the recent squared
        residual (SPE), or of its recent squared move (T²)."""
        means, _ = self._window()
        d = self.width
        if self.last == "spe":
            return means[2 * d:] / R_QUANTUM
        move = means[:d] / U_QUANTUM
        spread = means[d:2 * d] / U_QUANTUM / U_QUANTUM
        return move * move + (spread - 1.0) ** 2

    # -- state --------------------------------------------------------------------------------
    def _reset(self) -> None:
        self.watched = 0
        self.blocks = 0
        self.held = False
        self.last = "spe"
        self.block_sum = np.zeros(3 * self.width, dtype=np.int64)
        self.recent = np.zeros((self.window_blocks, 3 * self.width), dtype=np.int64)

    def get_state(self) -> dict:
        """What the detector learned since ``fit`` (its reference is the caller's to keep)."""
        require_fitted(self)
        return {"watched": self.watched, "blocks": self.blocks, "held": int(self.held), "last": self.last,
                "block_sum": self.block_sum.copy(), "recent": self.recent.copy(),
                "cusums": {name: d.get_state() for name, d in self.detectors.items()}}

    def set_state(self, state: dict) -> None:
        """Put back ``get_state`` into a detector fitted on the same reference."""
        require_fitted(self)
        self.watched = int(state["watched"])
        self.blocks = int(state["blocks"])
        self.held = bool(state["held"])
        self.last = str(state["last"])
        self.block_sum = np.asarray(state["block_sum"], dtype=np.int64).copy()
        self.recent = np.asarray(state["recent"], dtype=np.int64).copy()
        if self.recent.shape != (self.window_blocks, 3 * self.width):
            raise ValueError("state does not fit this detector's features")
        for name, detector in self.detectors.items():
            detector.set_state(state["cusums"][name])

