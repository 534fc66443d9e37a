"""An anytime-valid comparison of two model versions' losses: roll the new one back, or promote it.

The losses are the concept error stream's (``concept.prediction_error``): 0/1 for classes, the
absolute error for numbers. The comparison keeps a confidence sequence (CS) for the mean loss
difference ``Δ = E[loss(new)] − E[loss(baseline)]``: an interval for every number of labels at
once, so it may be looked at after every label without inflating the chance of a wrong decision.

- **Shadow** (``paired``): both versions scored the same request and one label met both
  predictions; the CS is on the per-request differences ``loss(new) − loss(baseline)``. The two
  versions' errors are correlated (same inputs), so the differences vary far less than either
  loss: far fewer labels are needed than with split traffic.
- **Split traffic** (``split``): each request went to one version (a canary). One CS per version
  at ``error_rate / 2`` each; their difference ``[L_new − U_base, U_new − L_base]`` covers ``Δ``
  whenever both cover their means, so with probability ≥ 1 − ``error_rate`` by a union bound,
  whatever the dependence between the two streams.

**The confidence sequence.** Absolute errors are unbounded, so a CS that needs bounded values
(betting, Hoeffding) would need a clipping cap that changes what is compared. We use the
asymptotic confidence sequence of Waudby-Smith, Arnold, Wu, Wang & Ramdas, "Time-uniform central
limit theory and asymptotic confidence sequences" (Ann. Statist. 2024, Theorem 2.2): for i.i.d.
values with a finite 2+δ moment,

    mean_t ± sd_t · sqrt( 2 (t ρ² + 1) / (t² ρ²) · log( sqrt(t ρ² + 1) / α ) )

(the two-sided normal-mixture boundary of the standardised sum, with the running sample sd) holds
for all t at once with probability → 1 − α. ``ρ`` makes it tightest near ``TIGHTEST_AT`` labels
(their eq. for ρ*). Its guarantee is asymptotic: ``min_labels`` keeps the first, small-sample
intervals from deciding anything, and ``scripts/bench_versions.py`` measures the wrong-decision
rate it gives: 0–0.6% of 500 runs of 10⁵ labels at the default 1% (shadow and split,
classification and regression).

**The decision** (``margin`` ≥ 0, the tolerated degradation, on the loss's scale): once both
versions have ``min_labels`` labels (shadow: pairs),

- ``rollback`` when the CS lies above ``margin``: the new version is worse by more than margin;
- ``promote`` when the CS lies below ``margin``: it is worse by less than margin, or better.

Each is wrong only when the CS misses ``Δ``, so the chance of any wrong decision is at most
``error_rate``. With the default ``margin = 0`` two equal versions (``Δ = 0``) get no decision
(the CS keeps straddling 0) unless the CS misses, at most ``error_rate`` of runs; a version
between 0 and margin worse is eventually promoted, one worse by exactly margin never decided.
After its decision a comparison takes no more losses (one decision per comparison).

>>> import numpy as np
>>> rng = np.random.default_rng(7)
>>> comparison = LossComparison(min_labels=100)
>>> base = rng.random(5000) < 0.10                            # the baseline errs on 10% of requests
>>> new = base | (rng.random(5000) < 0.06)                    # the new version on those and ~5% more
>>> for i in range(5000):
...     decision = comparison.update(float(new[i]), float(base[i]))   # shadow: one label, both losses
...     if decision:
...         break
>>> decision.decision, decision.traffic, decision.labels, decision.lower > 0
('rollback', 'shadow', 221, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Where the confidence sequence is tightest (labels; pairs in shadow mode). The width grows
#: only like sqrt(log t) away from it.
TIGHTEST_AT = 1000
TRAFFIC = ("auto", "shadow", "split")
DECISIONS = ("rollback", "promote")


class MeanSequence:
    """A running mean and its asymptotic confidence sequence (see the module docstring).

    >>> sequence = MeanSequence()
    >>> for value in [0.0, 1.0] * 500:
    ...     sequence.add(value)
    >>> sequence.n, sequence.mean, [round(b, 3) for b in sequence.bounds(0.01)]
    (1000, 0.5, [0.444, 0.556])
    """

    __slots__ = ("n", "mean", "_m2")

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self._m2 = 0.0  # sum of squared deviations from the mean (Welford)

    def add(self, value: float) -> None:
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self._m2 += delta * (value - self.mean)

    @property
    def sd(self) -> float:
        return math.sqrt(self._m2 / self.n) if self.n else math.nan

    def bounds(self, alpha: float) -> tuple[float, float]:
        """The (1 − ``alpha``) confidence sequence's interval now (``(-inf, inf)`` before 2 values)."""
        if self.n < 2:
            return -math.inf, math.inf
        half = self.sd * half_width(self.n, alpha)
        return self.mean - half, self.mean + half

    def get_state(self) -> list:
        return [self.n, self.mean, self._m2]

    def set_state(self, state: list) -> None:
        self.n, self.mean, self._m2 = int(state[0]), float(state[1]), float(state[2])


def half_width(n: int, alpha: float, tightest_at: int = TIGHTEST_AT) -> float:
    """The confidence sequence's half-width at ``n`` values, in standard deviations.

    >>> round(half_width(1000, 0.01), 4), round(half_width(100_000, 0.01), 4)
    (0.1129, 0.0128)
    """
    log_alpha = -2.0 * math.log(alpha)
    rho2 = (log_alpha + math.log(log_alpha + 1.0)) / tightest_at
    spread = n * rho2 + 1.0
    return math.sqrt(2.0 * spread / (n * n * rho2) * math.log(math.sqrt(spread) / alpha))


@dataclass(frozen=True)
class Decision:
    """What a comparison decided, and the evidence: ``estimate`` and ``[lower, upper]`` of the
    mean loss difference new − baseline, ``labels`` used (shadow: pairs; split: both versions'),
    the mean loss of each version over them."""

    decision: str
    traffic: str
    estimate: float
    lower: float
    upper: float
    labels: int
    labels_version: int
    labels_baseline: int
    loss_version: float
    loss_baseline: float


class LossComparison:
    """The sequential comparison of a new version's losses with its baseline's.

    ``update(new, baseline)`` takes one label's losses: both (shadow: the same request scored by
    both versions), or one of them (``None`` for the other: split traffic). ``traffic = "auto"``
    reads the deployment from the first label with a loss of the new version: with the
    baseline's too, shadow; alone, split. Before that label, the baseline's losses are not
    compared with anything (the new version was not serving yet). In shadow mode a label with
    only one version's loss is counted in ``unpaired`` and not used; in split mode a label with
    both feeds both versions' sequences (the union bound needs no independence).

    >>> comparison = LossComparison(traffic="split", min_labels=50)
    >>> [comparison.update(new=0.0, baseline=None) for _ in range(3)], comparison.decision
    ([None, None, None], None)
    >>> LossComparison(error_rate=0.7)
    Traceback (most recent call last):
    ...
    ValueError: error_rate must be > 0 and < 0.5, got 0.7
    """

    def __init__(self, margin: float = 0.0, error_rate: float = 0.01, min_labels: int = 200,
                 traffic: str = "auto"):
        if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin must be a finite number >= 0 (on the loss's scale), got {margin!r}")
        if not (isinstance(error_rate, (int, float)) and 0 < error_rate < 0.5):
            raise ValueError(f"error_rate must be > 0 and < 0.5, got {error_rate!r}")
        if isinstance(min_labels, bool) or not isinstance(min_labels, int) or min_labels < 2:
            raise ValueError(f"min_labels must be an integer >= 2, got {min_labels!r}")
        if traffic not in TRAFFIC:
            raise ValueError(f"traffic must be one of {list(TRAFFIC)}, got {traffic!r}")
        self.margin = float(margin)
        self.error_rate = float(error_rate)
        self.min_labels = min_labels
        self.traffic = traffic
        self._reset()

    def _reset(self) -> None:
        #: ``shadow`` or ``split`` once known.
        self.mode: str | None = None if self.traffic == "auto" else self.traffic
        self.paired = MeanSequence()
        self.new = MeanSequence()
        self.baseline = MeanSequence()
        #: Labels handed to ``update`` since the new version's first loss (the decision's position).
        self.observations = 0
        self.unpaired = 0
        self.decision: Decision | None = None

    def update(self, new: float | None, baseline: float | None) -> Decision | None:
        """One label's losses (``None``: that version made no prediction for it); the decision
        when this label makes it, else ``None``."""
        if self.decision is not None or (new is None and baseline is None):
            return None
        new, baseline = _loss(new), _loss(baseline)
        if self.mode is None:
            if new is None:
                return None  # the new version has no labelled prediction yet: nothing to compare
            self.mode = "shadow" if baseline is not None else "split"
        if self.mode == "shadow":
            if new is None or baseline is None:
                if self.observations:
                    self.unpaired += 1
                return None
            self.paired.add(new - baseline)
            self.new.add(new)
            self.baseline.add(baseline)
        else:
            if new is None and not self.new.n:
                return None  # the canary has no labelled prediction yet: nothing to compare
            if new is not None:
                self.new.add(new)
            if baseline is not None:
                self.baseline.add(baseline)
        self.observations += 1
        return self._decide()

    def interval(self) -> tuple[float, float, float]:
        """The estimate of the mean loss difference new − baseline and its confidence-sequence
        interval now."""
        if self.mode == "shadow":
            lower, upper = self.paired.bounds(self.error_rate)
            return self.paired.mean, lower, upper
        new_lower, new_upper = self.new.bounds(self.error_rate / 2)
        base_lower, base_upper = self.baseline.bounds(self.error_rate / 2)
        return self.new.mean - self.baseline.mean, new_lower - base_upper, new_upper - base_lower

    def _decide(self) -> Decision | None:
        enough = self.paired.n >= self.min_labels if self.mode == "shadow" else \
            min(self.new.n, self.baseline.n) >= self.min_labels
        if not enough:
            return None
        estimate, lower, upper = self.interval()
        if lower > self.margin:
            verdict = "rollback"
        elif upper < self.margin:
            verdict = "promote"
        else:
            return None
        labels = self.paired.n if self.mode == "shadow" else self.new.n + self.baseline.n
        self.decision = Decision(verdict, self.mode, estimate, lower, upper, labels, self.new.n, self.baseline.n,
                                 self.new.mean, self.baseline.mean)
        return self.decision

    # -- state: numbers only (``detectors.state.pack`` encodes it) ---------------------------
    def get_state(self) -> dict:
        d = self.decision
        return {"mode": self.mode, "paired": self.paired.get_state(), "new": self.new.get_state(),
                "baseline": self.baseline.get_state(), "observations": self.observations,
                "unpaired": self.unpaired,
                "decision": None if d is None else [d.decision, d.traffic, d.estimate, d.lower, d.upper, d.labels,
                                                    d.labels_version, d.labels_baseline, d.loss_version,
                                                    d.loss_baseline]}

    def set_state(self, state: dict) -> None:
        self._reset()
        self.mode = state["mode"]
        if self.mode not in (None, "shadow", "split"):
            raise ValueError(f"a comparison's mode must be shadow or split, got {self.mode!r}")
        self.paired.set_state(state["paired"])
        self.new.set_state(state["new"])
        self.baseline.set_state(state["baseline"])
        self.observations = int(state["observations"])
        self.unpaired = int(state["unpaired"])
        self.decision = None if state["decision"] is None else Decision(*state["decision"])


def _loss(value) -> float | None:
    """A loss as a float (``None`` stays ``None``), checked: finite and >= 0."""
    if value is None:
        return None
    loss = float(value)
    if not (math.isfinite(loss) and loss >= 0):
        raise ValueError(f"a loss must be a finite number >= 0, got {value!r}")
    return loss
