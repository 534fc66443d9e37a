"""What a monitor reports when a detector fires: everything an alert needs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Detection:
    """One detector firing on one feature.

    ``index`` is the position, in the feature's stream as given to the monitor (missing values
    included, starting at 0), of the value that triggered it.
    """

    detector: str
    kind: str  # "feature" or "missing_rate"
    index: int
    statistic: float
    threshold: float
    p_value: float | None
    direction: str | None
    severity: str  # "warning" or "critical"
    reference: dict = field(default_factory=dict)
    window: dict = field(default_factory=dict)
    effect: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "detector": self.detector, "kind": self.kind, "index": self.index,
            "statistic": self.statistic, "threshold": self.threshold, "p_value": self.p_value,
            "direction": self.direction, "severity": self.severity,
            "reference": self.reference, "window": self.window, "effect": self.effect,
        }
