"""A shift in how features move together: a sequential test over many features at once.

``JointShift`` watches rows of features (one row per event) against a reference of rows. It is
a linear domain classifier learned online, whose scores are bet on:

1. Each row becomes standardised coordinates ``u``: the features themselves (``terms="mean"``),
   or their squares and pairwise products (``terms="covariance"``; random projections squared
   when the pairs would be too many), each scaled by the first half of the reference.
2. The classifier's weights are the mean of ``u`` over the last ``window_blocks`` blocks of
   events: Fisher's discriminant between "recent events" and "reference" on standardised
   coordinates. They are fixed for a block before the block arrives (predictable).
3. An event's score (weights times ``u``) is ranked among the scores of the *other* half of the
   reference, and the rank becomes a normal score ``x``. With no drift, ``x`` is standard normal
   whatever the features' shapes: the weights never saw that half, so they cannot have learned its
   sampling noise.
4. Wealth is bet on ``x`` being large: for each bet size ``lambda`` an e-CUSUM
   ``log M = max(0, log M) + lambda * x - psi(lambda)``, with ``psi`` the log-moment of ``x``
   under no drift (shifted by ``GUARD`` reference standard errors, the half-reference's own
   uncertainty). Every factor has expectation at most 1 with no drift, so alarming when ``M``
   reaches the detector's share of the false-alarm budget keeps the mean time between false
   alarms at least that share (an e-detector: Shin, Ramdas & Rinaldo 2022). No simulation.

Everything on the hot path is exact integer arithmetic (coordinates quantised to integers; their
dot products and sums, done in float64, stay below 2^53, which the limits on ``block *
window_blocks`` and ``max_quadratic`` guarantee), so a batch of a thousand rows and the same rows
one by one give identical hits and state.

>>> rng = np.random.default_rng(3)
>>> reference = rng.normal(size=(4000, 5))
>>> detector = JointShift("covariance")
>>> detector.fit(reference, share=1e7)
>>> detector.update(rng.normal(size=(3000, 5)))
[]
>>> mixed = rng.normal(size=(3000, 5)); mixed[:, 1] = 0.8 * mixed[:, 0] + 0.6 * mixed[:, 1]
>>> hits = detector.update(mixed)   # features 0 and 1 now correlate, every marginal unchanged
>>> len(hits), hits[0].index < 1500
(1, True)
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.special import ndtri

from . import joint_compiled
from .cusum import QUANTUM
from .detection import Hit, require_fitted
from .errors import check_range

#: Standardised coordinates are clipped to this many reference standard deviations.
CLIP = 8.0
#: Integer steps per unit of a standardised coordinate (the weights and scores are exact sums).
U_QUANTUM = 1 << 10
#: Bet sizes: the e-CUSUM of each is run, and the budget share split between them.
BET_SIZES = (0.25, 0.5, 1.0)
#: Reference standard errors by which "no drift" is shifted towards alarm: the half reference
#: that ranks scores estimates the no-drift distribution only to ~1/sqrt(n).
GUARD = 3.0
TERMS = ("mean", "covariance")


class JointShift:
    """One e-detector over rows of features (see the module docstring)."""

    def __init__(self, terms: str = "mean", *, block: int = 200, window_blocks: int = 5,
                 max_quadratic: int = 256):
        if terms not in TERMS:
            raise ValueError(f"terms must be one of {', '.join(TERMS)}, got {terms!r}")
        check_range("block", block, 10, 100_000, integer=True)
        check_range("window_blocks", window_blocks, 1, 1000, integer=True)
        check_range("block * window_blocks", block * window_blocks, 10, 100_000, integer=True)
        check_range("max_quadratic", max_quadratic, 1, 1024, integer=True)
        self.name = f"multivariate_{terms}"
        self.terms = terms
        self.block = int(block)
        self.window_blocks = int(window_blocks)
        self.max_quadratic = int(max_quadratic)
        self._fitted = False
        self._drift = False

    # -- the contract -------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return self._fitted

    @property
    def drift_detected(self) -> bool:
        return self._drift

    def fit(self, reference: np.ndarray, share: float) -> None:
        """Learn the coordinates from ``reference`` (rows x features, NaN = missing) and the
        alarm level from ``share`` (events between two false alarms of this detector)."""
        first, second = halves(reference, share, 1)
        self.width = first.shape[1]
        self.center, self.scale = standardisation(first)
        self._plan_terms()
        phi = self._terms(self.standardise(first))
        mean, sd = _mean_sd(phi)
        self.phi_mean = np.nan_to_num(mean, nan=0.0)
        self.phi_scale = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
        self._per_step = U_QUANTUM / self.phi_scale
        # The half that ranks scores (the weights never see it), as int16 coordinates x rows.
        self.ranked = np.ascontiguousarray(self._coordinates(second).T).astype(np.int16)
        n = self.ranked.shape[1]
        positions = np.arange(2 * n + 1) / 2.0  # half steps: an event tied with reference scores
        scores = ndtri((positions + 0.5) / (n + 1))
        null = ndtri((np.arange(n + 1) + 0.5) / (n + 1)) + GUARD / math.sqrt(n)
        self.share = float(share)
        self.threshold = math.log(self.share * len(BET_SIZES))
        self._limit = int(math.ceil(self.threshold * QUANTUM))
        steps = []
        for lam in BET_SIZES:
            top = float(np.max(lam * null))
            psi = top + math.log(float(np.mean(np.exp(lam * null - top))))
            steps.append(np.floor((lam * scores - psi) * QUANTUM).astype(np.int64))
        self._steps = np.array(steps)  # bet sizes x rank positions: each step of each wealth
        self._reset()
        self._fitted = True
        self._drift = False

    def update(self, rows) -> list[Hit]:
        """Watch events (rows x the features of ``fit``); the hit's ``index`` is its row here.
        After a hit the detector holds its alarm (ignores rows) until it is fit again."""
        require_fitted(self)
        x = np.asarray(rows, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"rows must be a 2-d array of {self.width} features")
        hits = self.update_coordinates(self._coordinates(x)) if x.shape[0] else []
        self._drift = bool(hits)
        return hits

    def standardise(self, rows: np.ndarray) -> np.ndarray:
        """Rows as this detector standardises them (NaN = missing), the same for every
        ``JointShift`` fitted on the same reference: a caller running several computes it once
        and gives it to each one's ``update_standardised``."""
        return standardised(rows, self.center, self.scale)

    def update_standardised(self, z: np.ndarray, missing: bool) -> list[Hit]:
        """``update`` of rows already standardised (``standardise``); ``missing``: whether any
        value of them is missing. ``z`` is not changed."""
        require_fitted(self)
        hits = self.update_coordinates(self._coordinates_of(z, missing)) if z.shape[0] else []
        self._drift = bool(hits)
        return hits

    def update_events(self, columns: np.ndarray) -> list[Hit]:
        """``update`` of events given as columns: a C-contiguous float64 array of (features x
        events), NaN = missing. The hot path: each event standardised, made into coordinates and
        bet on in one compiled pass (``joint_compiled.advance``), the same hits and state as
        ``update`` of ``columns.T``. ``columns`` is not changed."""
        require_fitted(self)
        if self.projections is not None:  # random projections: numpy, through the coordinates
            return self.update_standardised(self.standardise(columns.T), bool(np.isnan(columns).any()))
        hits = self._by_blocks(columns.shape[1], lambda pos, end: self._advance(columns, pos, end))
        self._drift = bool(hits)
        return hits

    # -- the hot path -------------------------------------------------------------------------
    def update_coordinates(self, u: np.ndarray) -> list[Hit]:
        """``update`` on rows already made integer-valued coordinates (``_coordinates``)."""
        u = np.asarray(u, dtype=np.float64)
        return self._by_blocks(u.shape[0], lambda pos, end: self._bet(u[pos:end], pos))

    def _by_blocks(self, n: int, bet) -> list[Hit]:
        """Events ``0:n`` a block at most at a time (``bet(pos, end)``: the chunk's hit or
        ``None``; the weights change only between blocks), up to the first hit."""
        pos = 0
        while pos < n and not self.held:
            end = min(n, pos + self.block - self.watched % self.block)
            hit = bet(pos, end)
            if hit is not None:
                end = hit.index + 1  # the rows up to the hit count, as they would one by one
                self.held = True
            self.watched += end - pos
            if self.watched % self.block == 0:
                self._close_block()
            if hit is not None:
                return [hit]
            pos = end
        return []

    def _bet(self, chunk: np.ndarray, pos: int) -> Hit | None:
        """Every bet's e-CUSUM over the chunk, row by row (``joint_compiled.bet``), and the
        block's sums, up to the first crossing: its ``Hit``, or ``None``."""
        betting = self.weights is not None
        at, k = joint_compiled.bet(chunk, self.weights_exact if betting else _NO_WEIGHTS,
                                   self.ranked_scores if betting else _NO_WEIGHTS, self._steps, self._limit,
                                   self.wealth, self.since, self.watched, self.block_sum, betting)
        return None if at < 0 else self._hit(pos, at, k)

    def _advance(self, columns: np.ndarray, pos: int, end: int) -> Hit | None:
        """``_bet`` of events ``pos:end`` of ``columns`` from their raw values
        (``joint_compiled.advance``)."""
        betting = self.weights is not None
        first, second = self.pairs if self.pairs is not None else (_NO_PAIRS, _NO_PAIRS)
        at, k = joint_compiled.advance(columns, pos, end, self.center, self.scale, CLIP, first, second,
                                       self.phi_mean, self._per_step, CLIP * U_QUANTUM,
                                       self.weights_exact if betting else _NO_WEIGHTS,
                                       self.ranked_scores if betting else _NO_WEIGHTS, self._steps, self._limit,
                                       self.wealth, self.since, self.watched, self.block_sum, betting)
        return None if at < 0 else self._hit(pos, at, k)

    def _hit(self, pos: int, at: int, k: int) -> Hit:
        """The hit of bet ``k`` crossing at row ``at`` of the chunk that starts at row ``pos``
        (``watched`` not yet moved past the chunk)."""
        began = int(self.since[k]) - self.watched  # the run's start, among this chunk's rows
        return Hit(index=pos + at, direction=None, statistic=float(self.wealth[k] / QUANTUM), threshold=self.threshold,
                   p_value=min(1.0, math.exp(-self.wealth[k] / QUANTUM)),
                   change_point=pos + began if self.since[k] > 0 else None,
                   effect={"bet_size": BET_SIZES[k], "events_in_run": at - began + 1})

    def _close_block(self) -> None:
        self.recent[self.blocks % self.window_blocks] = self.block_sum
        self.blocks += 1
        self.block_sum = np.zeros(self.block_sum.shape)
        self.weights = self.recent.sum(axis=0)
        self.weights_exact = self.weights.astype(np.float64)
        self.ranked_scores = np.sort(joint_compiled.scores(self.ranked, self.weights_exact))

    def weight_of_features(self) -> np.ndarray:
        """How much each feature weighs in the classifier now: the squared weight of each
        coordinate, shared among the features it is made of (a product: half each)."""
        w = np.zeros(self.width) if self.weights is None else (self.weights.astype(np.float64) / U_QUANTUM) ** 2
        if self.terms == "mean" or self.weights is None:
            return w
        out = np.zeros(self.width)
        if self.pairs is not None:
            i, j = self.pairs
            np.add.at(out, i, w / 2)
            np.add.at(out, j, w / 2)
        else:
            out = (self.projections.astype(np.float64) ** 2 / U_QUANTUM ** 2) @ w
        return out

    def recent_move(self) -> np.ndarray:
        """The mean standardised move of each coordinate over the classifier's recent window."""
        count = max(1, min(self.blocks, self.window_blocks) * self.block)
        if self.weights is None:
            return np.zeros(self.recent.shape[1])
        return self.weights.astype(np.float64) / U_QUANTUM / count

    # -- coordinates --------------------------------------------------------------------------
    def _plan_terms(self) -> None:
        d = self.width
        self.pairs = self.projections = None
        if self.terms == "covariance":
            if d * (d + 1) // 2 <= self.max_quadratic:
                self.pairs = np.triu_indices(d)
            else:
                v = np.random.default_rng(0).normal(size=(d, self.max_quadratic))
                v /= np.linalg.norm(v, axis=0)
                self.projections = np.rint(v * U_QUANTUM)  # integers, exact in float64 products

    def _terms(self, z: np.ndarray) -> np.ndarray:
        """The terms of each standardised row; NaN where a feature they are made of is missing
        (a projection takes a missing feature as its reference mean)."""
        if self.terms == "mean":
            return z
        if self.pairs is not None and z.shape[0] < 128:
            i, j = self.pairs  # few rows: two gathers cost less than a product per feature
            return z[:, i] * z[:, j]
        if self.pairs is not None:
            # Built as (terms x rows) and returned transposed (a view: the arithmetic downstream
            # is elementwise or exact sums).
            return pair_products(np.ascontiguousarray(z.T)).T
        # Integer projections: the same row gives the same value in a batch of any size.
        z = np.nan_to_num(z, nan=0.0)
        p = (np.rint(z * U_QUANTUM) @ self.projections) / U_QUANTUM ** 2
        return p * p

    def _coordinates(self, x: np.ndarray) -> np.ndarray:
        """Standardised terms as integers; a missing term is 0, the reference mean: it says
        nothing, so a feature that goes missing moves no coordinate (the missing-rate detector
        of that feature watches that)."""
        return self._coordinates_of(self.standardise(x), bool(np.isnan(x).any()))

    def _coordinates_of(self, z: np.ndarray, missing: bool) -> np.ndarray:
        if self.projections is None:  # the mean terms or the pairs: in one compiled pass
            first, second = self.pairs if self.pairs is not None else (_NO_PAIRS, _NO_PAIRS)
            return joint_compiled.coordinates(z, first, second, self.phi_mean, self._per_step, missing,
                                              CLIP * U_QUANTUM)
        terms = self._terms(z)
        return quantised(terms, self.phi_mean, self._per_step, missing, True)

    # -- state --------------------------------------------------------------------------------
    def _reset(self) -> None:
        dim = self.ranked.shape[0]
        self.watched = 0
        self.blocks = 0
        self.held = False
        self.block_sum = np.zeros(dim)  # integers, in float64 while the block fills
        self.recent = np.zeros((self.window_blocks, dim), dtype=np.int64)
        self.weights = self.weights_exact = None
        self.ranked_scores = None
        self.wealth = np.zeros(len(BET_SIZES), dtype=np.int64)
        #: Per bet: the row (counted from the fit) after the last one at which its wealth was 1.
        self.since = np.zeros(len(BET_SIZES), dtype=np.int64)

    def get_state(self) -> dict:
        """What the detector learned since ``fit`` (its reference is the caller's to keep)."""
        require_fitted(self)
        return {"watched": self.watched, "blocks": self.blocks, "held": int(self.held),
                "block_sum": self.block_sum.astype(np.int64), "recent": self.recent.copy(), "wealth": self.wealth.copy(),
                "since": self.since.copy()}

    def set_state(self, state: dict) -> None:
        """Put back ``get_state`` into a detector fitted on the same reference."""
        require_fitted(self)
        self.watched = int(state["watched"])
        self.blocks = int(state["blocks"])
        self.held = bool(state["held"])
        self.block_sum = np.asarray(state["block_sum"], dtype=np.float64).copy()
        self.recent = np.asarray(state["recent"], dtype=np.int64).copy()
        self.wealth = np.asarray(state["wealth"], dtype=np.int64).copy()
        self.since = np.asarray(state["since"], dtype=np.int64).copy()
        if self.recent.shape != (self.window_blocks, self.ranked.shape[0]):
            raise ValueError("state does not fit this detector's coordinates")
        self.weights = self.recent.sum(axis=0) if self.blocks else None
        self.weights_exact = self.weights.astype(np.float64) if self.blocks else None
        self.ranked_scores = np.sort(joint_compiled.scores(self.ranked, self.weights_exact)) if self.blocks else None


_NO_WEIGHTS = np.zeros(1)
_NO_PAIRS = np.zeros(0, dtype=np.int64)


def halves(reference, share: float, features: int) -> tuple[np.ndarray, np.ndarray]:
    """A multivariate detector's reference (rows x features, NaN = missing), checked, as its two
    halves (every other row): one to learn from, one to rank against."""
    x = np.asarray(reference, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 100 or x.shape[1] < features:
        raise ValueError(f"reference must be a 2-d array of at least 100 rows and {features} "
                         f"feature{'s' if features > 1 else ''}")
    check_range("share", share, 1, low_open=True)
    return x[0::2], x[1::2]


def standardisation(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each feature's centre and scale in ``rows`` (NaN = missing): its mean and sd, 0 and 1
    where it has none."""
    center, scale = _mean_sd(np.where(np.isfinite(rows), rows, np.nan))
    return np.nan_to_num(center, nan=0.0), np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)


def _mean_sd(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and sd over its present (not NaN) values; NaN for a column with none.
    (np.nanmean/np.nanstd, at twice the speed when nothing is missing: the same sums then.)"""
    if not np.isnan(rows).any():
        return rows.mean(axis=0), rows.std(axis=0)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column missing in every row
        return np.nanmean(rows, axis=0), np.nanstd(rows, axis=0)


def standardised(rows: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``rows`` standardised by ``center`` and ``scale`` and clipped to +-``CLIP`` (a new array)."""
    z = rows - center
    z /= scale
    return np.clip(z, -CLIP, CLIP, out=z)


def pair_products(columns: np.ndarray) -> np.ndarray:
    """Every square and pairwise product of the features (``columns``: features x rows), in the
    order of ``triu_indices``, as terms x rows: z_i times z_j for j >= i, one product per feature
    into its slice of the output instead of two gathers of every pair."""
    d = columns.shape[0]
    out = np.empty((d * (d + 1) // 2, columns.shape[1]))
    at = 0
    for i in range(d):
        np.multiply(columns[i], columns[i:], out=out[at:at + d - i])
        at += d - i
    return out


def quantised(terms: np.ndarray, mean, step, missing: bool, in_place: bool) -> np.ndarray:
    """Terms made integer-valued coordinates: less their reference ``mean``, in ``step`` units,
    a missing one 0, clipped to +-``CLIP`` x ``U_QUANTUM`` and rounded. ``in_place``: ``terms``
    may be overwritten (else, e.g. the standardised rows another detector also reads, a new
    array is made)."""
    u = np.subtract(terms, mean, out=terms if in_place else None)
    u *= step
    if missing:
        u[np.isnan(u)] = 0.0
    np.clip(u, -CLIP * U_QUANTUM, CLIP * U_QUANTUM, out=u)  # one pass (min then max were two)
    return np.rint(u, out=u)

