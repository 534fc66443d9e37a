"""The multivariate monitor of one model: every feature at once, against the reference jointly.

A change in how features move together (a correlation that flips, a mixture that rotates, a
small move of many features at once) leaves every marginal in place, so no per-feature monitor
sees it. ``MultivariateMonitor`` watches the rows of a model's events (one row per event, its
numeric features as they are, categorical ones encoded by the reference share of their category)
with two e-detectors (``joint.JointShift``): ``multivariate_mean`` (the features' means move,
many a little or a few a lot) and ``multivariate_covariance`` (their squares and pairwise
products: variances and correlations). The false-alarm budget is the model's: the two share it.

Like a feature monitor it warms up on the first ``reference_size`` events (unless a reference is
supplied), watches, and after an alert collects ``rearm_size`` events as the reference of the
new regime, then watches again. Batches and single events give identical detections and state.

>>> rng = np.random.default_rng(7)
>>> monitor = MultivariateMonitor(MultivariateSettings(reference_size=2000))
>>> columns = lambda rows: {f"x{k}": rows[:, k] for k in range(rows.shape[1])}
>>> monitor.update(columns(rng.normal(size=(4000, 4))))
[]
>>> rows = rng.normal(size=(3000, 4)); rows[:, 1] = 0.8 * rows[:, 0] + 0.6 * rows[:, 1]
>>> [found] = monitor.update(columns(rows))   # x0 and x1 now correlate; every marginal as before
>>> found.detector, found.kind, sorted(e["feature"] for e in found.explained_by[:2])
('multivariate_covariance', 'multivariate', ['x0', 'x1'])
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from .categorical import as_category
from .detection import Detection
from .errors import check_range
from .joint import TERMS, JointShift
from .pca_shift import PcaShift
from .settings import settings_from_dict

#: The detectors of the multivariate monitor: the e-detectors (``terms`` of ``JointShift``), on
#: by default, and the cheaper ``PcaShift`` (Hotelling's T² and SPE), opt-in.
MULTIVARIATE_DETECTORS = tuple(f"multivariate_{t}" for t in TERMS) + (PcaShift.name,)
DEFAULT_MULTIVARIATE_DETECTORS = tuple(f"multivariate_{t}" for t in TERMS)
#: A recent move of this many reference sds (root of the summed squared standardised moves of
#: the watched coordinates) makes an alert critical.
CRITICAL_DISTANCE = 0.5
#: Features (and coordinate pairs) named in an alert's ``explained_by``.
EXPLAINED = 10


@dataclass(frozen=True)
class MultivariateSettings:
    """How the features of one model are watched together (TOML ``[multivariate]``).

    >>> MultivariateSettings(max_features=1)
    Traceback (most recent call last):
    ...
    ValueError: max_features must be an integer >= 2 and <= 256, got 1
    """

    #: Events between two false alarms of the model's multivariate monitor, its detectors together.
    false_alarm_budget: float = 10_000_000
    #: Events that form the reference when none is supplied (the warm-up).
    reference_size: int = 5000
    #: Events after an alert that form the new reference.
    rearm_size: int = 2000
    #: The domain classifier's weights change every this many events.
    block: int = 200
    #: The weights are learned from the last this many blocks of events.
    window_blocks: int = 5
    #: Most features watched together (those present most often in the reference, then by name).
    max_features: int = 32
    #: Most quadratic terms of ``multivariate_covariance``: every square and pairwise product while
    #: d(d+1)/2 fits, else this many random projections squared.
    max_quadratic: int = 256
    #: Detectors to run; empty means the two e-detectors (``multivariate_mean``,
    #: ``multivariate_covariance``); ``multivariate_pca`` (Hotelling's T² and SPE) is opt-in.
    detectors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_range("false_alarm_budget", self.false_alarm_budget, 100, 1e12)
        check_range("reference_size", self.reference_size, 400, 50_000, integer=True)
        check_range("rearm_size", self.rearm_size, 400, 50_000, integer=True)
        check_range("block", self.block, 10, 100_000, integer=True)
        check_range("window_blocks", self.window_blocks, 1, 1000, integer=True)
        check_range("block * window_blocks", self.block * self.window_blocks, 10, 100_000, integer=True)
        check_range("max_features", self.max_features, 2, 256, integer=True)
        check_range("max_quadratic", self.max_quadratic, 1, 1024, integer=True)
        for name in self.detectors:
            if name not in MULTIVARIATE_DETECTORS:
                raise ValueError(f"detectors: unknown detector {name!r}; allowed: {', '.join(MULTIVARIATE_DETECTORS)}")

    @property
    def active(self) -> tuple[str, ...]:
        if not self.detectors:
            return DEFAULT_MULTIVARIATE_DETECTORS
        return tuple(d for d in MULTIVARIATE_DETECTORS if d in self.detectors)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "MultivariateSettings":
        return settings_from_dict(cls, data, "multivariate")


class MultivariateMonitor:
    """The features of one model watched together (see the module docstring).

    ``update(columns)`` takes a run of events as columns, ``{feature: values}``, all of one
    length: numbers (NaN or ``None`` = missing) or categories (strings or booleans, ``None`` =
    missing); a feature absent from a run is missing in all its events. ``reference`` (optional,
    the same shape) is the training data to compare with from the first event on.
    """

    #: What a state record calls this monitor (``state.monitor_record``).
    kind = "multivariate"

    def __init__(self, settings: MultivariateSettings | None = None, reference: dict | None = None):
        self.settings = settings or MultivariateSettings()
        self.seen = 0  # events given to the monitor
        self.calibrations = 0
        self.kinds: dict[str, str] = {}  # feature -> numeric | categorical, fixed by its first value
        self.names: tuple[str, ...] = ()  # the features watched, fixed at each fit
        self.encoders: dict[str, dict[str, int]] = {}  # categorical feature -> reference counts
        self.reference_rows: np.ndarray | None = None  # float32, reference events x names
        self.parts: dict[str, JointShift] = {}
        #: Bumped by every change of state (as ``FeatureMonitor.version``).
        self.version = 0
        self._start_collecting(self.settings.reference_size)
        if reference:
            rows = _length(reference)
            if rows < 400:
                raise ValueError(f"a multivariate reference needs at least 400 rows, got {rows}")
            pick = np.unique(np.linspace(0, rows - 1, min(rows, self.settings.reference_size)).astype(np.int64))
            self._learn_kinds(reference)
            self._collect({name: [column[i] for i in pick] for name, column in reference.items()}, 0, pick.size)
            self._fit()

    @property
    def fitted(self) -> bool:
        return bool(self.parts)

    @property
    def collecting(self) -> bool:
        return self.collect_target is not None

    # -- watching -----------------------------------------------------------------------------
    def update(self, columns: dict, kinds: dict | None = None) -> list[Detection]:
        """Watch a run of events; a detection's ``index`` is its event's position in everything
        this monitor has been given (from 0)."""
        self.version += 1
        n = _length(columns)
        if kinds:
            for name, kind in kinds.items():
                self.kinds.setdefault(name, kind)
        if not self.kinds.keys() >= columns.keys():
            self._learn_kinds(columns)
        out: list[Detection] = []
        pos = 0
        while pos < n:
            if self.collecting:
                take = min(n - pos, self.collect_target - self.collected_rows)
                self._collect(columns, pos, pos + take)
                self.seen += take
                pos += take
                if self.collected_rows >= self.collect_target:
                    self._fit()
                continue
            rows = self._encode(columns, pos, n)
            hits = self._watch(rows) if self.parts else []
            if not hits:
                self.seen += n - pos
                pos = n
                continue
            first = min(h[0] for h in hits)
            for index, name, part, hit in sorted(hits, key=lambda h: (h[0], h[1])):
                if index == first:
                    out.append(self._detection(name, part, hit, self.seen + index))
            self.seen += first + 1
            pos += first + 1
            self._start_collecting(self.settings.rearm_size)
        return out

    def _watch(self, rows: np.ndarray) -> list[tuple]:
        """Every part's hits on ``rows`` (events x the watched features): (row, part name, part,
        hit). A ``JointShift`` reads the rows as columns in one compiled pass
        (``update_events``); the others get them standardised (every part was fitted on the same
        reference rows: one standardisation serves them all)."""
        hits, columns, z = [], None, None
        for name, part in self.parts.items():
            if type(part) is JointShift:
                if columns is None:
                    columns = np.ascontiguousarray(rows.T)  # the hot path's rows are its columns' view
                found = part.update_events(columns)
            else:
                if z is None:
                    z, missing = part.standardise(rows), bool(np.isnan(rows).any())
                found = part.update_standardised(z, missing)
            hits.extend((hit.index, name, part, hit) for hit in found)
        return hits

    def _detection(self, name: str, part: JointShift, hit, index: int) -> Detection:
        move = part.recent_move()
        distance = float(math.sqrt(float(np.sum(move ** 2))))
        weight = part.weight_of_features()
        total = float(weight.sum()) or 1.0
        feature_move = self._feature_moves(part, move)
        ranked = sorted(range(len(self.names)), key=lambda k: (-weight[k], self.names[k]))[:EXPLAINED]
        explained = [{"feature": self.names[k], "share": round(float(weight[k]) / total, 4),
                      "move": round(float(feature_move[k]), 4)} for k in ranked]
        effect = {"distance": round(distance, 4), **hit.effect}
        pairs = self._pair_moves(part, move)
        if pairs:
            effect["pairs"] = pairs
        return Detection(detector=name, kind="multivariate", index=int(index), statistic=float(hit.statistic),
                         threshold=float(hit.threshold), p_value=hit.p_value, direction=None,
                         severity="critical" if distance >= CRITICAL_DISTANCE else "warning",
                         reference={"n": int(self.reference_rows.shape[0]), "features": len(self.names)},
                         window={"n": int(min(part.blocks, part.window_blocks) * part.block)},
                         effect=effect, explained_by=explained)

    def _feature_moves(self, part: JointShift | PcaShift, move: np.ndarray) -> np.ndarray:
        """Each feature's recent move: of its mean (in reference sds) for ``multivariate_mean``
        and ``multivariate_pca``, of its square (its spread) for ``multivariate_covariance`` with
        every pair watched."""
        if part.terms in ("mean", "pca"):
            return move
        if part.pairs is not None:
            i, j = part.pairs
            return move[i == j]
        return np.zeros(len(self.names))

    def _pair_moves(self, part: JointShift, move: np.ndarray) -> list[dict]:
        """The pairs of features whose product moved most (a correlation that changed)."""
        if part.terms != "covariance" or part.pairs is None:
            return []
        i, j = part.pairs
        cross = np.flatnonzero(i != j)
        top = cross[np.argsort(-np.abs(move[cross]), kind="stable")][:3]
        return [{"features": [self.names[i[k]], self.names[j[k]]], "move": round(float(move[k]), 4)} for k in top]

    # -- the reference ------------------------------------------------------------------------
    def _learn_kinds(self, columns: dict) -> None:
        for name, column in columns.items():
            if name not in self.kinds:
                kind = _kind_of(column)
                if kind is not None:
                    self.kinds[name] = kind

    def _start_collecting(self, target: int) -> None:
        self.collect_target = target
        self.collected: dict[str, list] = {}
        self.collected_rows = 0
        self.parts = {}  # nothing watches while a reference is collected

    def _collect(self, columns: dict, start: int, stop: int) -> None:
        take = stop - start
        if take <= 0:
            return
        for name, column in columns.items():
            kind = self.kinds.get(name)
            if kind is None:
                continue  # only missing values so far
            values = self.collected.setdefault(name, [_MISSING[kind]] * self.collected_rows)
            part = column[start:stop]
            if kind == "numeric":
                values.extend(np.asarray(part, dtype=np.float64).astype(np.float32).tolist())
            else:
                values.extend(map(as_category, part))
        for name, values in self.collected.items():
            if len(values) < self.collected_rows + take:
                values.extend([_MISSING[self.kinds[name]]] * (self.collected_rows + take - len(values)))
        self.collected_rows += take

    def _fit(self) -> None:
        self.version += 1
        present = {name: _present(values, self.kinds[name]) for name, values in self.collected.items()}
        chosen = sorted((n for n, c in present.items() if c), key=lambda n: (-present[n], n))[:self.settings.max_features]
        self.names = tuple(sorted(chosen))
        self.encoders = {}
        for name in self.names:
            if self.kinds[name] == "categorical":
                self.encoders[name] = dict(Counter(v for v in self.collected[name] if v is not None))
        self.reference_rows = self._encode(self.collected, 0, self.collected_rows).astype(np.float32)
        self.collect_target = None
        self.collected = {}
        self.collected_rows = 0
        self.calibrations += 1
        self._fit_parts()

    def _fit_parts(self) -> None:
        s = self.settings
        active = s.active
        share = s.false_alarm_budget * len(active)
        self.parts = {}
        if not self.names:
            return
        for name in active:
            if name == PcaShift.name and len(self.names) < 2:
                continue  # T² and SPE need two features at least
            part = PcaShift(block=s.block, window_blocks=s.window_blocks) if name == PcaShift.name else \
                JointShift(name.removeprefix("multivariate_"), block=s.block, window_blocks=s.window_blocks,
                           max_quadratic=s.max_quadratic)
            part.fit(self.reference_rows.astype(np.float64), share)
            self.parts[name] = part

    def _encode(self, columns: dict, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of ``columns`` as numbers, one column per watched feature."""
        plain = [columns.get(name) for name in self.names]
        if all(type(c) is np.ndarray and c.dtype == np.float64 for c in plain):
            # The hot path: numeric features, every one present (a plain batch's matrix rows).
            # (features x events), transposed: a view, column-major, which the products of the
            # covariance terms read as contiguous features.
            return np.array(plain)[:, start:stop].T if plain else np.empty((stop - start, 0))
        rows = np.full((stop - start, len(self.names)), np.nan)
        for k, name in enumerate(self.names):
            column = columns.get(name)
            if column is None:
                continue
            part = column[start:stop]
            if self.kinds[name] == "numeric":
                rows[:, k] = np.asarray(part, dtype=np.float64)  # None becomes NaN
            else:
                counts = self.encoders[name]
                total = sum(counts.values()) or 1
                rows[:, k] = [np.nan if v is None else counts.get(as_category(v), 0) / total for v in part]
        return rows

    # -- state --------------------------------------------------------------------------------
    def get_state(self) -> dict:
        """Everything, in numbers, strings and arrays (never pickle); the reference rows under
        ``reference`` (a checkpoint may write them apart, see ``state.monitor_record``)."""
        collected = {name: np.array(values, dtype=np.float32) if self.kinds[name] == "numeric" else list(values)
                     for name, values in self.collected.items()}
        return {"seen": self.seen, "calibrations": self.calibrations, "kinds": dict(self.kinds),
                "names": list(self.names), "encoders": {n: dict(c) for n, c in self.encoders.items()},
                "reference": self.reference_rows, "collect_target": self.collect_target,
                "collected": collected, "collected_rows": self.collected_rows,
                "parts": {name: part.get_state() for name, part in self.parts.items()}}

    def set_state(self, state: dict) -> None:
        self.version += 1
        self.seen = int(state["seen"])
        self.calibrations = int(state["calibrations"])
        self.kinds = dict(state["kinds"])
        self.names = tuple(state["names"])
        self.encoders = {n: dict(c) for n, c in state["encoders"].items()}
        reference = state["reference"]
        self.reference_rows = None if reference is None else np.asarray(reference, dtype=np.float32)
        self.collect_target = state["collect_target"]
        self.collected = {name: (np.asarray(values, dtype=np.float32).tolist() if self.kinds[name] == "numeric"
                                 else list(values)) for name, values in state["collected"].items()}
        self.collected_rows = int(state["collected_rows"])
        self.parts = {}
        if state["parts"]:
            if self.reference_rows is None or self.reference_rows.shape[1] != len(self.names):
                raise ValueError("multivariate state has detectors but no reference rows of its features")
            self._fit_parts()
            if set(self.parts) != set(state["parts"]):
                raise ValueError(f"multivariate state has detectors {sorted(state['parts'])}, "
                                 f"its settings {sorted(self.parts)}")
            for name, part in self.parts.items():
                part.set_state(state["parts"][name])


_MISSING = {"numeric": math.nan, "categorical": None}


def _present(values: list, kind: str) -> int:
    """How many of a collected column's values are not missing.

    >>> _present([1.0, math.nan, 2.0], "numeric"), _present(["a", None], "categorical")
    (2, 1)
    """
    if kind == "numeric":
        return len(values) - int(np.isnan(np.array(values, dtype=np.float64)).sum())
    return sum(1 for v in values if v is not None)


def _kind_of(column) -> str | None:
    if type(column) is np.ndarray:
        return "numeric" if column.dtype.kind in "fiu" else None
    for value in column:
        if value is None:
            continue
        if isinstance(value, (bool, str)):
            return "categorical"
        if isinstance(value, (int, float)):
            if value != value:
                continue  # NaN: missing
            return "numeric"
    return None


def _length(columns: dict) -> int:
    lengths = {len(c) for c in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns of one run must have one length, got lengths {sorted(lengths)}")
    return lengths.pop() if lengths else 0
