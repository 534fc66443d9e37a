"""Settings of a feature monitor: one frozen object, validated on creation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import lru_cache

from .errors import check_range

NUMERIC_DETECTORS = ("adwin", "page_hinkley", "scale", "ks", "histogram", "missing_rate")
CATEGORICAL_DETECTORS = ("categorical", "missing_rate")
#: Opt-in detectors of 0/1 error streams (river's DDM and HDDM_A, ``detectors/binary.py``): they
#: run only when ``detectors`` names them, on numeric streams whose values are all 0 or 1.
BINARY_DETECTORS = ("ddm", "hddm_a")


@dataclass(frozen=True)
class MonitorSettings:
    """How one (model, feature) is watched.

    >>> MonitorSettings(window=10)
    Traceback (most recent call last):
    ...
    ValueError: window must be an integer >= 20 and <= 1e+06, got 10
    """

    #: Expected number of values between two false alarms of this feature, all detectors together.
    false_alarm_budget: float = 10_000_000
    #: Values that form the reference when none is supplied (the warm-up).
    reference_size: int = 5000
    #: Values after an alert that form the new reference (the detectors re-arm on the new regime).
    rearm_size: int = 1000
    #: Recent values compared with the reference by the windowed tests (ks, histogram, categorical).
    window: int = 1000
    #: Recent categories compared with the reference (category shares need more values than a
    #: numeric distribution to show a 10-point move at a strict false-alarm budget).
    categorical_window: int = 2000
    #: The windowed tests run every this many values.
    evaluate_every: int = 500
    #: Detectors to run; empty means all for the feature's type except the opt-in `ddm` and
    #: `hddm_a` (0/1 error streams only), which run only when named.
    detectors: tuple[str, ...] = ()
    #: Page-Hinkley: smallest mean shift to catch fast, in reference standard deviations.
    shift: float = 0.5
    #: Scale: smallest relative change of the variance to catch fast (0.4 = 40% more or less).
    scale_change: float = 0.4
    #: Histogram: number of equally likely reference bins.
    bins: int = 10
    #: ADWIN: values per bucket.
    adwin_block: int = 128
    #: ADWIN: buckets between two cut tests.
    adwin_clock: int = 2
    #: KS: compare with the values just before the window instead of the fixed reference.
    sliding_reference: bool = False
    #: Categorical: categories kept by name; the rest are pooled as "other".
    max_categories: int = 50
    #: Missing rate: smallest rise of the rate (absolute) worth catching fast.
    missing_min_change: float = 0.01
    #: DDM (opt-in): alarm when the error rate plus its sd exceeds the lowest such sum seen by
    #: this many sds (river's `drift_threshold`; not calibrated to the false-alarm budget).
    ddm_drift_threshold: float = 3.0
    #: DDM (opt-in): values after a reset before it may alarm (river's `warm_start`).
    ddm_warm_start: int = 30
    #: HDDM_A (opt-in): confidence of the Hoeffding bound of one drift check (river's
    #: `drift_confidence`; not calibrated to the false-alarm budget).
    hddm_a_drift_confidence: float = 0.001
    #: Smallest effect size that makes a detection an alert (``Detection.effect_size``: the mean
    #: shift in reference sds, the scale detector's |sd ratio - 1|, the categories' PSI, the missing
    #: rate's absolute change); smaller detections are counted, not published. 0 = off.
    min_effect: float = 0.0

    def __post_init__(self) -> None:
        check_range("false_alarm_budget", self.false_alarm_budget, 100, 1e12)
        check_range("reference_size", self.reference_size, 50, 1_000_000, integer=True)
        check_range("rearm_size", self.rearm_size, 50, 1_000_000, integer=True)
        check_range("window", self.window, 20, 1_000_000, integer=True)
        check_range("categorical_window", self.categorical_window, 20, 1_000_000, integer=True)
        check_range("evaluate_every", self.evaluate_every, 1, min(self.window, self.categorical_window), integer=True)
        check_range("shift", self.shift, 0, 10, low_open=True)
        check_range("scale_change", self.scale_change, 0, 10, low_open=True)
        check_range("bins", self.bins, 2, 100, integer=True)
        check_range("adwin_block", self.adwin_block, 1, 4096, integer=True)
        check_range("adwin_clock", self.adwin_clock, 1, 4096, integer=True)
        check_range("max_categories", self.max_categories, 1, 100_000, integer=True)
        check_range("missing_min_change", self.missing_min_change, 0, 0.5, low_open=True)
        check_range("ddm_drift_threshold", self.ddm_drift_threshold, 0, 100, low_open=True)
        check_range("ddm_warm_start", self.ddm_warm_start, 1, 1_000_000, integer=True)
        check_range("hddm_a_drift_confidence", self.hddm_a_drift_confidence, 0, 0.5, low_open=True)
        check_range("min_effect", self.min_effect, 0, 100)
        if not isinstance(self.sliding_reference, bool):
            raise ValueError(f"sliding_reference must be true or false, got {self.sliding_reference!r}")
        known = set(NUMERIC_DETECTORS) | set(CATEGORICAL_DETECTORS) | set(BINARY_DETECTORS)
        for name in self.detectors:
            if name not in known:
                raise ValueError(f"detectors: unknown detector {name!r}; allowed: {', '.join(sorted(known))}")

    def detectors_for(self, numeric: bool) -> tuple[str, ...]:
        allowed = NUMERIC_DETECTORS if numeric else CATEGORICAL_DETECTORS
        chosen = tuple(d for d in allowed if not self.detectors or d in self.detectors)
        if numeric:
            chosen += tuple(d for d in BINARY_DETECTORS if d in self.detectors)
        return chosen

    def to_dict(self) -> dict:
        """The settings as plain values (``detectors`` as a list). ``min_effect`` is left out while
        it is off, so the config versions and state records of earlier settings stay the same.

        >>> "min_effect" in MonitorSettings().to_dict(), MonitorSettings(min_effect=0.2).to_dict()["min_effect"]
        (False, 0.2)
        """
        return dict(_as_dict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "MonitorSettings":
        return settings_from_dict(cls, data, "monitor")


def settings_from_dict(cls, data: dict, what: str):
    """A settings dataclass from a dict of its fields (``detectors`` as a list), naming the
    unknown keys and the allowed ones."""
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {what} setting(s) {sorted(unknown)}; allowed: {sorted(names)}")
    data = dict(data)
    if "detectors" in data:
        data["detectors"] = tuple(data["detectors"])
    return cls(**data)


@lru_cache(maxsize=1024)
def _as_dict(settings: MonitorSettings) -> dict:
    """Every checkpoint writes each monitor's settings, and ``asdict`` is slow: features share a
    few settings objects, so their dicts are made once (callers copy before changing one)."""
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()}
    if not settings.min_effect:
        del data["min_effect"]
    return data
