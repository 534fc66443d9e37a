"""What detectors and monitors report: a detector's ``Hit``, a monitor's ``Detection``, and the
``Detector`` contract every detector of this package keeps."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class NotFittedError(RuntimeError):
    """A detector was used before ``fit`` gave it a reference and a false-alarm share."""


def require_fitted(detector) -> None:
    """Raise ``NotFittedError`` naming the detector unless it has been fitted.

    >>> from streamdrift.detectors import PageHinkley
    >>> require_fitted(PageHinkley())
    Traceback (most recent call last):
    ...
    streamdrift.detectors.detection.NotFittedError: PageHinkley is not fitted: call fit(reference, share) before update
    """
    if not detector.fitted:
        raise NotFittedError(f"{type(detector).__name__} is not fitted: call fit(reference, share) before update")


@dataclass(frozen=True)
class Hit:
    """One detection of one detector.

    ``index`` is the position, among the values given to the ``update`` call that returned it,
    of the value that revealed the change (for a test of one window: the window's last value).
    ``change_point`` is the detector's own estimate of where the change began, on the same
    scale (negative: before this call's values), or ``None`` where the detector has none.
    ``effect`` holds effect sizes where the detector computes them (PSI, Jensen-Shannon).
    """

    index: int
    direction: str | None
    statistic: float
    threshold: float
    p_value: float | None = None
    change_point: int | None = None
    effect: dict = field(default_factory=dict)

    @property
    def since_change(self) -> int | None:
        """Values from the estimated change point to the hit, both included."""
        return None if self.change_point is None else self.index - self.change_point + 1


@runtime_checkable
class Detector(Protocol):
    """The contract of every detector in ``streamdrift.detectors``.

    - ``fit(reference, share)`` calibrates on a reference (what "no drift" looks like) so that
      the detector keeps ``share`` values, on average, between two false alarms, and starts
      afresh. ``update`` before ``fit`` raises ``NotFittedError``.
    - ``update(values)`` feeds a batch and returns its hits, in order. Batches change nothing:
      one call with a thousand values gives the hits (and the state) of a thousand calls of one.
      A CUSUM (Page-Hinkley, missing rate, DDM, HDDM_A) holds its alarm after a hit and ignores
      later values until it is fit again; ADWIN and the window tests keep watching.
    - ``drift_detected`` is whether the last ``update`` returned a hit (as river's detectors).
    - ``get_state()`` is what the detector learned since ``fit``, in numbers and arrays (never
      pickle); ``set_state`` puts it back into a detector fitted on the same reference.
    - Bad constructor arguments raise ``ValueError`` naming the parameter and the allowed range.
    """

    name: str

    @property
    def fitted(self) -> bool: ...

    @property
    def drift_detected(self) -> bool: ...

    def fit(self, reference: Any, share: float) -> None: ...

    def update(self, values) -> list[Hit]: ...

    def get_state(self) -> dict: ...

    def set_state(self, state: dict) -> None: ...


@dataclass(frozen=True)
class Detection:
    """One detector firing on one feature (what a monitor reports: everything an alert needs).

    ``index`` is the position, in the feature's stream as given to the monitor (missing values
    included, starting at 0), of the value that triggered it.
    """

    detector: str
    kind: str  # "feature", "missing_rate" or "multivariate"
    index: int
    statistic: float
    threshold: float
    p_value: float | None
    direction: str | None
    severity: str  # "warning" or "critical"
    reference: dict = field(default_factory=dict)
    window: dict = field(default_factory=dict)
    effect: dict = field(default_factory=dict)
    #: For a multivariate detection: the features that explain it, ranked (``feature``, its
    #: ``share`` of the detector's weight, its ``move``).
    explained_by: list = field(default_factory=list)

    def effect_size(self) -> float | None:
        """How big the change is, in one number: what ``MonitorSettings.min_effect`` is compared with.

        - missing rate: the absolute change of the rate (0.03 = 3 points);
        - categorical: the PSI of the window against the reference (0.1 is commonly read as a
          moderate shift, 0.25 as a large one; PSI rather than the Jensen-Shannon distance
          because it is what ``severity`` uses too);
        - scale: how far the window's sd is from the reference's, relative: ``|sd ratio - 1|``
          (0.2 = 20% wider or narrower, as 0.2 is a fifth of an sd for a mean);
        - other numeric (and prediction, label, concept-error streams): the absolute mean shift in
          reference standard deviations; a reference without spread has no sd, so its
          detections count as infinitely large;
        - multivariate: ``None``, no floor applies.

        >>> Detection("page_hinkley", "feature", 10, 5.0, 4.0, None, "up", "warning",
        ...           effect={"psi": 0.02, "mean_shift_sd": -0.12}).effect_size()
        0.12
        """
        if self.kind == "multivariate":
            return None
        if self.kind == "missing_rate":
            return abs(self.window["missing_rate"] - self.reference["missing_rate"])
        if self.detector == "categorical":
            return self.effect["psi"]
        if self.detector == "scale":
            ratio = self.effect.get("sd_ratio")
            return math.inf if ratio is None else abs(ratio - 1.0)
        shift = self.effect.get("mean_shift_sd")
        return math.inf if shift is None else abs(shift)

    def to_dict(self) -> dict:
        return {
            "detector": self.detector, "kind": self.kind, "index": self.index,
            "statistic": self.statistic, "threshold": self.threshold, "p_value": self.p_value,
            "direction": self.direction, "severity": self.severity,
            "reference": self.reference, "window": self.window, "effect": self.effect,
            **({"explained_by": self.explained_by} if self.explained_by else {}),
        }
