"""ADWIN (adaptive windowing, Bifet & Gavalda 2007) with explicit, restorable state.

The algorithm is river's ADWIN: an exponential histogram of buckets over an adaptive window,
cut where two sub-windows differ by more than a Bernstein bound. Two changes make it fit a
high-rate stream processor: values arrive in blocks (``block`` values form one level-0 bucket,
and the cut test runs once per ``clock`` blocks, as river's ``clock``), and the cut test over all
bucket boundaries is vectorised with numpy. River 0.26's ADWIN is Rust with no access to its
buckets, so its state could not be checkpointed; this one's state is a few arrays.

ADWIN's bound holds for values in [0, 1] only. Fitted on a ``Reference``, it watches any
numeric feature through the values' mid-ranks in the reference (uniform scores, in (0, 1));
fitted on ``None``, it takes values already in [0, 1] and refuses any other. Fitting also sets
``delta`` from the detector's share of the false-alarm budget: one cut test runs every
``block * clock`` values, so ``delta = block * clock / share`` keeps that share.
"""

from __future__ import annotations

import math

import numpy as np

from .detection import Hit, require_fitted
from .errors import check_range
from .owed import owed_attribute, owed_state
from .reference import Reference


# Squares are written d * d, not d ** 2: Python's ** calls the C library's pow, which can differ
# from d * d (numpy's square) in the last bit, and detectors/together.py must match this exactly.


class ADWIN:
    """ADWIN change detector.

    >>> rng = np.random.default_rng(3)
    >>> adwin = ADWIN(block=32)
    >>> adwin.fit(None, share=1e8)                     # values in [0, 1]; delta from the share
    >>> adwin.delta
    3.2e-07
    >>> adwin.update(rng.uniform(0.0, 1.0, 5000))
    []
    >>> hits = adwin.update(rng.uniform(0.2, 1.0, 5000))   # a cut, then more as the window shrinks
    >>> hits[0].index, hits[0].direction, hits[0].since_change
    (599, 'up', 736)
    >>> adwin.update(np.array([1.5]))
    Traceback (most recent call last):
    ...
    ValueError: value at position 0 is 1.5: ADWIN fitted without a reference watches values in [0, 1]; fit it on a Reference to watch any numbers

    ``delta`` given to the constructor is kept by ``fit(reference)`` without a share.
    """

    name = "adwin"
    #: The state the cross-model path may owe (``detectors.owed``): its buckets, width, sums,
    #: blocks seen, and the values of the block being filled.
    levels = owed_attribute("levels")
    width = owed_attribute("width")
    total = owed_attribute("total")
    variance = owed_attribute("variance")
    blocks_seen = owed_attribute("blocks_seen")
    pending = owed_attribute("pending")

    def __init__(self, delta: float = 0.002, block: int = 32, clock: int = 1, max_buckets: int = 5,
                 min_window_length: int = 5):
        check_range("adwin.delta", delta, 0, 1, low_open=True)
        check_range("adwin.block", block, 1, 4096, integer=True)
        check_range("adwin.clock", clock, 1, 4096, integer=True)
        check_range("adwin.max_buckets", max_buckets, 2, 100, integer=True)
        check_range("adwin.min_window_length", min_window_length, 1, 10_000, integer=True)
        self.delta = delta
        self.block = int(block)
        self.clock = int(clock)
        self.max_buckets = int(max_buckets)
        self.min_window_length = int(min_window_length)
        self.fitted = False
        self.reference: Reference | None = None
        self.drift_detected = False
        self._reset()

    def _reset(self) -> None:
        # levels[i] holds the buckets of size block * 2**i, oldest first, as [total, variance].
        self.levels: list[list[list[float]]] = [[]]
        self.width = 0
        self.total = 0.0
        self.variance = 0.0
        self.blocks_seen = 0
        #: Values of the block being filled (an array, replaced, never changed in place).
        self.pending: np.ndarray = np.zeros(0)
        self.detections = 0

    def fit(self, reference: Reference | None, share: float | None = None) -> None:
        """Start afresh. ``reference``: watch values through their mid-ranks in it (``None``:
        values are in [0, 1] already). ``share``: expected values between two false alarms
        that this detector may use; sets ``delta`` (``None`` keeps the constructor's)."""
        if reference is not None and not isinstance(reference, Reference):
            raise TypeError(f"ADWIN.fit takes a Reference or None, got {type(reference).__name__}")
        if share is not None:
            check_range("share", share, 1)
            self.delta = min(0.5, self.block * self.clock / share)
        self.reference = reference
        self.fitted = True
        self.drift_detected = False
        self._reset()

    @property
    def mean(self) -> float:
        return self.total / self.width if self.width else 0.0

    def update(self, values) -> list[Hit]:
        """Feed values; return a hit for each cut (``index``: the last value of the block that
        revealed it; ``change_point``: where the newer sub-window of the cut begins)."""
        require_fitted(self)
        x = np.asarray(values, dtype=np.float64).reshape(-1)
        if self.reference is not None:
            if not np.isfinite(x).all():
                raise ValueError(f"value at position {int(np.flatnonzero(~np.isfinite(x))[0])} is not a finite number")
            return self.update_scores(self.reference.uniform_scores(self.reference.positions(x)))
        outside = np.flatnonzero(~((x >= 0.0) & (x <= 1.0)))  # NaN too
        if outside.size:
            raise ValueError(f"value at position {int(outside[0])} is {x[outside[0]]:g}: ADWIN fitted without a "
                             "reference watches values in [0, 1]; fit it on a Reference to watch any numbers")
        return self.update_scores(x)

    def update_scores(self, values: np.ndarray) -> list[Hit]:
        """``update`` for values known to be in [0, 1] (a monitor's uniform scores)."""
        require_fitted(self)
        values = np.asarray(values, dtype=np.float64)
        hits: list[Hit] = []

        def found(index: int, cut) -> None:
            direction, difference, bound, recent = cut
            hits.append(Hit(index=index, direction=direction, statistic=difference, threshold=bound,
                            change_point=index - recent + 1))

        i = 0
        n = values.size
        if len(self.pending):
            need = self.block - len(self.pending)
            take = values[:need]
            self.pending = np.concatenate((self.pending, take))
            i = take.size
            if len(self.pending) == self.block:
                cut = self._add_block(self.pending)
                self.pending = np.zeros(0)
                if cut is not None:
                    found(i - 1, cut)
        full = (n - i) // self.block
        if full:
            blocks = values[i:i + full * self.block].reshape(full, self.block)
            totals = blocks.sum(axis=1)
            variances = ((blocks - (totals / self.block)[:, None]) ** 2).sum(axis=1)
            for b in range(full):
                cut = self._add_summary(float(totals[b]), float(variances[b]))
                if cut is not None:
                    found(i + (b + 1) * self.block - 1, cut)
            i += full * self.block
        if i < n:
            self.pending = np.concatenate((self.pending, values[i:]))
        self.drift_detected = bool(hits)
        return hits

    def _add_block(self, block: np.ndarray) -> tuple[str, float, float, int] | None:
        total = float(block.sum())
        return self._add_summary(total, float(((block - total / block.size) ** 2).sum()))

    def _add_summary(self, total: float, variance: float) -> tuple[str, float, float, int] | None:
        n = self.block
        if self.width:
            d = self.total / self.width - total / n
            self.variance += variance + self.width * n * (d * d) / (self.width + n)
        else:
            self.variance += variance
        self.width += n
        self.total += total
        self.levels[0].append([total, variance])
        self._compress()
        self.blocks_seen += 1
        if self.blocks_seen % self.clock:
            return None
        return self._detect_change()

    def _compress(self) -> None:
        level = 0
        while len(self.levels[level]) > self.max_buckets:
            (t1, v1), (t2, v2) = self.levels[level][0], self.levels[level][1]
            size = self.block << level
            d = t1 / size - t2 / size
            merged = [t1 + t2, v1 + v2 + size * size * (d * d) / (2 * size)]
            del self.levels[level][:2]
            if level + 1 == len(self.levels):
                self.levels.append([])
            self.levels[level + 1].append(merged)
            level += 1

    def _buckets_oldest_first(self) -> tuple[np.ndarray, np.ndarray]:
        counts = [len(level) for level in reversed(self.levels)]
        sizes = np.repeat((self.block << np.arange(len(counts) - 1, -1, -1)).astype(np.float64), counts)
        totals = np.array([bucket[0] for level in reversed(self.levels) for bucket in level])
        return sizes, totals

    def _detect_change(self) -> tuple[str, float, float, int] | None:
        found = None
        while self.width > 2 * self.min_window_length:
            sizes, totals = self._buckets_oldest_first()
            n0 = np.cumsum(sizes[:-1])
            u0 = np.cumsum(totals[:-1])
            n1 = self.width - n0
            u1 = self.total - u0
            if self.min_window_length > self.block:
                ok = (n0 >= self.min_window_length) & (n1 >= self.min_window_length)
                if not ok.any():
                    break
                n0, n1, u0, u1 = n0[ok], n1[ok], u0[ok], u1[ok]
            if not n0.size:
                break
            delta_mean = u0 / n0 - u1 / n1
            dd = math.log(2.0 * math.log(self.width) / self.delta)
            m = 1.0 / (n0 - self.min_window_length + 1) + 1.0 / (n1 - self.min_window_length + 1)
            epsilon = np.sqrt(2.0 * m * (self.variance / self.width) * dd) + 2.0 / 3.0 * dd * m
            cut = np.abs(delta_mean) >= epsilon
            if not cut.any():
                break
            if found is None:
                k = int(np.argmax(np.abs(delta_mean) - epsilon))
                found = ("down" if delta_mean[k] > 0 else "up", float(abs(delta_mean[k])), float(epsilon[k]),
                         int(n1[k]))
            self._delete_oldest()
        if found is not None:
            self.detections += 1
        return found

    def _delete_oldest(self) -> None:
        level = len(self.levels) - 1
        while not self.levels[level]:
            level -= 1
        total, variance = self.levels[level].pop(0)
        size = self.block << level
        self.width -= size
        self.total -= total
        if self.width:
            d = total / size - self.total / self.width
            self.variance -= variance + size * self.width * (d * d) / (size + self.width)
            self.variance = max(self.variance, 0.0)
        else:
            self.variance = 0.0
        while len(self.levels) > 1 and not self.levels[-1]:
            self.levels.pop()

    def get_state(self) -> dict:
        owed = owed_state(self)  # the cross-model path's vectors, read without writing the lists
        if owed is not None:
            return owed
        sizes, totals = [], []
        variances = []
        for level, buckets in enumerate(self.levels):
            for total, variance in buckets:
                sizes.append(level)
                totals.append(total)
                variances.append(variance)
        return {
            "bucket_level": np.asarray(sizes, dtype=np.int8),
            "bucket_total": np.asarray(totals, dtype=np.float64),
            "bucket_variance": np.asarray(variances, dtype=np.float64),
            "width": self.width, "total": self.total, "variance": self.variance,
            "blocks_seen": self.blocks_seen, "pending": np.asarray(self.pending, dtype=np.float64),
            "detections": self.detections,
        }

    def set_state(self, state: dict) -> None:
        levels: list[list[list[float]]] = [[]]
        for level, total, variance in zip(state["bucket_level"].tolist(), state["bucket_total"].tolist(),
                                          state["bucket_variance"].tolist()):
            while len(levels) <= level:
                levels.append([])
            levels[level].append([total, variance])
        self.levels = levels
        self.width = int(state["width"])
        self.total = float(state["total"])
        self.variance = float(state["variance"])
        self.blocks_seen = int(state["blocks_seen"])
        self.pending = np.array(state["pending"], dtype=np.float64).reshape(-1)
        self.detections = int(state["detections"])
