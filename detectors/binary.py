"""DDM and HDDM_A on a 0/1 error stream: river's detectors behind our protocol, with explicit state.

Opt-in (``detectors = ["ddm"]`` or ``["hddm_a"]``, e.g. in a ``[[features]]`` rule with
``pattern = "concept:error"``) for a classifier's error stream (1 = wrong, 0 = right). They are
**not calibrated to the false-alarm budget**: each uses its own drift level (DDM: the error rate
plus its sd above the lowest such sum seen by ``ddm_drift_threshold`` sds; HDDM_A: a Hoeffding
bound at ``hddm_a_drift_confidence``), so their false-alarm rate depends on the error rate and on
how long the stream runs between re-arms (``scripts/bench_binary.py`` measures it). River's
warning levels are not reported.

They are fed by the numeric monitor after its other detectors, primed on the monitor's reference
(so the error rate they start from is the reference's) and re-created on every re-calibration.
A stream with a value other than 0 or 1 is refused with a ``ValueError`` naming the detector:
they would otherwise treat an absolute error of 2.5 as 2.5 "errors" and report nonsense.
River keeps their state in Python objects with no export, so ``get_state`` reads the attributes
river's ``update`` uses (``_p``, ``_p_min``, ``_s_min``, ``_ps_min`` of DDM; ``_z``, ``_x_min``,
``_x_max`` of HDDMA; checked against river 0.26) and ``set_state`` writes them back: numbers only,
never pickle.
"""

from __future__ import annotations

import math

import numpy as np
from river import stats
from river.drift import binary as river_binary

from .detection import Hit, require_fitted
from .errors import check_range


def check_binary(values: np.ndarray, detector: str) -> None:
    """Raise ``ValueError`` unless every non-missing value is 0 or 1, naming ``detector``.

    >>> check_binary(np.array([0.0, 1.0, np.nan]), "ddm")
    >>> check_binary(np.array([0.0, 2.5]), "ddm")
    Traceback (most recent call last):
    ...
    ValueError: value at position 1 is 2.5, but detector ddm watches 0/1 error streams only; remove it from `detectors` for this stream
    """
    bad = np.flatnonzero((values != 0.0) & (values != 1.0) & ~np.isnan(values))
    if bad.size:
        raise ValueError(f"value at position {int(bad[0])} is {float(values[bad[0]]):g}, but detector {detector} "
                         "watches 0/1 error streams only; remove it from `detectors` for this stream")


def _number(value) -> float | None:
    """A float the state encoding keeps exactly; ``None`` for "not set" (river uses ``None`` or
    infinity, which JSON cannot hold)."""
    return None if value is None or math.isinf(value) else float(value)


def _mean_state(mean: stats.Mean) -> list[float]:
    return [float(mean.n), float(mean.get())]


def _mean_from(state) -> stats.Mean:
    mean = stats.Mean()
    mean.n, mean._mean = float(state[0]), float(state[1])
    return mean


class BinaryDetector:
    """What the monitor needs from a river binary detector: prime, update, state."""

    name = ""
    #: Attributes of the river detector that its ``update`` reads, encoded by ``get_state``.
    river_attributes: tuple[str, ...] = ()

    def _new(self):
        raise NotImplementedError

    def _reset(self) -> None:
        self.detector = self._new()
        missing = [a for a in self.river_attributes if not hasattr(self.detector, a)]
        if missing:  # a river release renamed its internals: state could not be encoded faithfully
            raise RuntimeError(f"river's {type(self.detector).__name__} has no {', '.join(missing)}; "
                               f"the {self.name} state encoding in detectors/binary.py must follow river's source")
        self.since = 0  # values since the detector's own estimate of where the current regime began
        self._fitted = False
        self._held = False  # a drift was reported: values are ignored until the next fit
        self.drift_detected = False

    @property
    def fitted(self) -> bool:
        return self._fitted

    def fit(self, reference, share: float | None = None) -> None:
        """Start afresh on the reference (0/1 values): its values set the error rate the
        detector starts from (a drift river sees inside the reference only resets it, as river
        does). ``share`` is accepted for the common contract and unused: these detectors keep
        their own drift levels, not a false-alarm budget."""
        values = np.asarray(reference, dtype=np.float64).reshape(-1)
        check_binary(values, self.name)
        self._reset()
        self._feed(values)
        self._fitted = True

    def update(self, values) -> list[Hit]:
        """Feed 0/1 values until the first drift; return its hit (``change_point``: where the
        detector's own estimate of the new regime begins). The detector then holds its alarm
        and ignores values until it is fit again."""
        require_fitted(self)
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        check_binary(values, self.name)
        self.drift_detected = False
        if self._held:
            return []
        t = self._feed(values, stop_at_drift=True)
        if t is None:
            return []
        statistic, threshold = self._levels()
        self._held = self.drift_detected = True
        return [Hit(index=t, direction="up", statistic=statistic, threshold=threshold,
                    change_point=t - max(1, self.since) + 1)]

    def _feed(self, values: np.ndarray, stop_at_drift: bool = False) -> int | None:
        raise NotImplementedError

    def _levels(self) -> tuple[float, float]:
        """The statistic and the level it crossed, after the update that drifted."""
        raise NotImplementedError

    def get_state(self) -> dict:
        raise NotImplementedError

    def set_state(self, state: dict) -> None:
        raise NotImplementedError


class DDM(BinaryDetector):
    """DDM (Gama et al. 2004), river's ``drift.binary.DDM``: alarms when the running error rate
    ``p`` plus its sd ``s = sqrt(p(1-p)/n)`` exceeds ``p_min + drift_threshold * s_min``, where
    ``(p_min, s_min)`` is where ``p + s`` was lowest since the last reset.

    >>> rng = np.random.default_rng(1)
    >>> ddm = DDM()
    >>> ddm.fit((rng.random(5000) < 0.1).astype(float))
    >>> ddm.update((rng.random(5000) < 0.1).astype(float))
    []
    >>> [hit] = ddm.update((rng.random(5000) < 0.3).astype(float))
    >>> hit.index, hit.direction, round(hit.statistic, 4), hit.statistic > hit.threshold
    (482, 'up', 0.1131, True)
    >>> ddm.update(np.array([0.5]))
    Traceback (most recent call last):
    ...
    ValueError: value at position 0 is 0.5, but detector ddm watches 0/1 error streams only; remove it from `detectors` for this stream
    """

    name = "ddm"
    river_attributes = ("_p", "_p_min", "_s_min", "_ps_min", "_drift_detected", "_warning_detected")

    def __init__(self, drift_threshold: float = 3.0, warm_start: int = 30):
        check_range("ddm_drift_threshold", drift_threshold, 0, 100, low_open=True)
        check_range("ddm_warm_start", warm_start, 1, 1_000_000, integer=True)
        self.drift_threshold = drift_threshold
        self.warm_start = int(warm_start)
        self._reset()

    def _new(self):
        # River's warning level is unused; keep it below the drift level as river expects.
        return river_binary.DDM(warm_start=self.warm_start, warning_threshold=min(2.0, self.drift_threshold),
                                drift_threshold=self.drift_threshold)

    def _feed(self, values: np.ndarray, stop_at_drift: bool = False) -> int | None:
        detector = self.detector
        since = self.since
        for t, x in enumerate(values.tolist()):
            before = detector._ps_min
            detector.update(x)
            # A new minimum of p + s, or a reset, is where DDM's current regime begins.
            since = 0 if detector._ps_min != before else since + 1
            if stop_at_drift and detector.drift_detected:
                self.since = since
                return t
        self.since = since
        return None

    def _levels(self) -> tuple[float, float]:
        d = self.detector
        p, n = d._p.get(), d._p.n
        return p + math.sqrt(p * (1 - p) / n), d._p_min + self.drift_threshold * d._s_min

    def get_state(self) -> dict:
        d = self.detector
        return {"p": _mean_state(d._p), "p_min": _number(d._p_min), "s_min": _number(d._s_min),
                "ps_min": _number(d._ps_min), "drift": int(d._drift_detected), "warning": int(d._warning_detected),
                "since": self.since}

    def set_state(self, state: dict) -> None:
        self._reset()
        d = self.detector
        d._p = _mean_from(state["p"])
        # "Not set" restores to what a fresh detector of the installed river holds (None or inf).
        for attribute, key in (("_p_min", "p_min"), ("_s_min", "s_min"), ("_ps_min", "ps_min")):
            if state[key] is not None:
                setattr(d, attribute, float(state[key]))
        d._drift_detected = bool(state["drift"])
        d._warning_detected = bool(state["warning"])
        self.since = int(state["since"])
        self._fitted, self._held = True, d._drift_detected


class HDDM_A(BinaryDetector):
    """HDDM_A (Frías-Blanco et al. 2014), river's ``drift.binary.HDDMA``, one-sided: alarms when
    the mean since a cut point exceeds the mean before it by more than a Hoeffding bound at
    ``drift_confidence``.

    >>> rng = np.random.default_rng(1)
    >>> hddm = HDDM_A()
    >>> hddm.fit((rng.random(5000) < 0.1).astype(float))
    >>> hddm.update((rng.random(5000) < 0.1).astype(float))
    []
    >>> [hit] = hddm.update((rng.random(5000) < 0.3).astype(float))
    >>> hit.index, hit.direction, round(hit.statistic, 4), hit.statistic >= hit.threshold
    (300, 'up', 0.0073, True)
    """

    name = "hddm_a"
    river_attributes = ("_z", "_x_min", "_x_max", "_drift_detected", "_warning_detected")

    def __init__(self, drift_confidence: float = 0.001):
        check_range("hddm_a_drift_confidence", drift_confidence, 0, 0.5, low_open=True)
        self.drift_confidence = drift_confidence
        self._reset()

    def _new(self):
        # River's warning level is unused; keep it no stricter than the drift level.
        return river_binary.HDDMA(drift_confidence=self.drift_confidence,
                                  warning_confidence=max(0.005, self.drift_confidence), two_sided_test=False)

    def _feed(self, values: np.ndarray, stop_at_drift: bool = False) -> int | None:
        detector = self.detector
        for t, x in enumerate(values.tolist()):
            detector.update(x)
            if stop_at_drift and detector.drift_detected:
                self.since = int(detector._z.n - detector._x_min.n)
                return t
        return None

    def _levels(self) -> tuple[float, float]:
        d = self.detector
        z, cut = d._z, d._x_min
        m = (z.n - cut.n) / cut.n / z.n
        return z.get() - cut.get(), math.sqrt(m / 2 * math.log(2.0 / self.drift_confidence))

    def get_state(self) -> dict:
        d = self.detector
        return {"z": _mean_state(d._z), "x_min": _mean_state(d._x_min), "x_max": _mean_state(d._x_max),
                "drift": int(d._drift_detected), "warning": int(d._warning_detected), "since": self.since}

    def set_state(self, state: dict) -> None:
        self._reset()
        d = self.detector
        d._z, d._x_min, d._x_max = _mean_from(state["z"]), _mean_from(state["x_min"]), _mean_from(state["x_max"])
        d._drift_detected = bool(state["drift"])
        d._warning_detected = bool(state["warning"])
        self.since = int(state["since"])
        self._fitted, self._held = True, d._drift_detected


def binary_detector(name: str, settings) -> BinaryDetector:
    """The binary detector ``name`` (one of ``BINARY_DETECTORS``) with the monitor's settings."""
    if name == "ddm":
        return DDM(drift_threshold=settings.ddm_drift_threshold, warm_start=settings.ddm_warm_start)
    if name == "hddm_a":
        return HDDM_A(drift_confidence=settings.hddm_a_drift_confidence)
    raise ValueError(f"detectors: {name!r} is not a binary detector; allowed: ddm, hddm_a")
