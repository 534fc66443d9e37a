"""The monitor of one categorical feature (strings or booleans): a G-test of category shares in
the recent window against the reference, and the missing rate.

Categories are coded against the reference: the ``max_categories`` most frequent keep their own
cell, rarer reference categories share "other", and categories seen once or never share
"unseen" (Good-Turing: the share of singletons in the reference estimates the chance that the
next value is new), so a long-tailed feature does not alarm on the new rare values it will
always produce, while a genuinely new frequent category still does.
"""

from __future__ import annotations

from collections import Counter
from itertools import repeat
from operator import is_

import numpy as np

from .detection import Detection, Hit
from .frequency import FrequencyTest, jensen_shannon, psi
from .missing_rate import MissingRate
from .monitor import FeatureMonitor, evaluation_points
from .numeric import CRITICAL_PSI
from .settings import MonitorSettings
from .window import Ring

OTHER = "__other__"
UNSEEN = "__unseen__"
TOP_CATEGORIES = 5


_STR_OR_NONE = frozenset((str, type(None)))


def as_category(value) -> str | None:
    """The category a raw value stands for (booleans become "true"/"false"; None is missing).

    >>> as_category(True), as_category("DE"), as_category(None)
    ('true', 'DE', None)
    """
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    raise ValueError(f"a categorical value must be a string or a boolean, got {type(value).__name__}")


class CategoricalMonitor(FeatureMonitor):
    """Watches one categorical feature. ``None`` means missing.

    >>> rng = np.random.default_rng(4)
    >>> monitor = CategoricalMonitor()
    >>> before = rng.choice(["a", "b", "c"], 20_000, p=[0.3, 0.4, 0.3]).tolist()
    >>> after = rng.choice(["a", "b", "c"], 5_000, p=[0.4, 0.35, 0.25]).tolist()
    >>> [(d.detector, d.index) for d in monitor.update(before + after)]
    [('categorical', 21499)]
    """

    numeric = False
    #: What a state record calls this monitor (``state.monitor_record``).
    kind = "categorical"

    def __init__(self, settings: MonitorSettings | None = None, reference: dict | None = None):
        super().__init__(settings)
        s = self.settings
        self.test = FrequencyTest(window=s.categorical_window, evaluate_every=s.evaluate_every)
        self.missing_rate = MissingRate(min_change=s.missing_min_change)
        self.codebook: dict[str, int] = {}
        self.names: list[str] = []  # cell names by code
        self.reference_counts = np.zeros(0)
        self.reference_pseudo = 0.0
        self.reference_missing = 0
        self.reference_total = 0
        self.recent_codes = Ring(s.categorical_window, np.int32)
        self.recent_missing = Ring(s.window, np.bool_)
        if reference is not None:
            self.set_reference(reference)

    def set_reference(self, frequencies: dict) -> None:
        """Use a frequency table ``{category: count}`` (``None`` key = missing) as the reference."""
        missing = int(frequencies.get(None, 0))
        counts = {as_category(k): int(v) for k, v in frequencies.items() if k is not None and v > 0}
        if not counts:
            raise ValueError("reference frequency table has no category with a positive count")
        values = np.array([k for k, v in counts.items() for _ in range(v)], dtype=object)
        self._from_table = True  # a table is the truth, not a sample: no winner's curse to avoid
        try:
            self._calibrate(values, missing, missing + values.size)
        finally:
            self._from_table = False

    def update(self, values) -> list[Detection]:
        """Feed a batch of categories (str/bool; ``None`` = missing); return the detections."""
        x = np.empty(len(values), dtype=object)
        # Strings and nulls, the usual batch, are their own categories: no call per value.
        x[:] = values if set(map(type, values)) <= _STR_OR_NONE else [as_category(v) for v in values]
        missing = np.fromiter(map(is_, x, repeat(None)), dtype=bool, count=x.size)
        return self._update(x, missing)

    def _fit(self, values: np.ndarray, missing: int, total: int) -> None:
        values = values.tolist()
        counts = Counter(values)
        # Categories seen once are the long tail: they share the "unseen" cell with categories
        # never seen, whose chance Good-Turing estimates by the number of singletons.
        tail = {c for c, n in counts.items() if n == 1}
        common = [c for c in counts if c not in tail]
        if len(common) > self.settings.max_categories and not getattr(self, "_from_table", False):
            # Choosing the top categories and estimating their shares on the same values
            # overstates those shares (the winner's curse): choose on one half, count on the other.
            half = len(values) // 2
            chooser = Counter(v for v in values[:half] if v not in tail)
            top = [c for c, _ in chooser.most_common(self.settings.max_categories)]
            counted = Counter(values[half:])
        else:
            top = sorted(common, key=lambda c: (-counts[c], c))
            counted = counts
        self.names = top + [OTHER, UNSEEN]
        other, unseen = len(top), len(top) + 1
        self.codebook = {c: other for c in common}
        self.codebook.update({c: i for i, c in enumerate(top)})
        self.codebook.update({c: unseen for c in tail})
        ref = np.zeros(len(self.names))
        for c, n in counted.items():
            ref[self.codebook[c]] += n
        #: The "unseen" cell gets one pseudo-value when the reference saw no rare category, so
        #: that its test stays finite; summaries in alerts leave it out.
        self.reference_pseudo = 1.0 if ref[unseen] < 1.0 else 0.0
        ref[unseen] += self.reference_pseudo
        self.reference_counts = ref
        self.reference_missing, self.reference_total = missing, total
        share = self._share()
        self.test.fit(ref, share)
        self.missing_rate.fit_counts(missing, total, share)
        self.recent_codes.clear()
        self.recent_missing.clear()

    def _codes(self, values: np.ndarray) -> np.ndarray:
        unseen = len(self.names) - 1
        return np.fromiter(map(self.codebook.get, values, repeat(unseen)), dtype=np.int32, count=values.size)

    def _watch(self, x: np.ndarray, missing: np.ndarray) -> list[Detection]:
        base = self.seen
        found: list[Detection] = []
        present = np.flatnonzero(~missing)
        if self._armed("missing_rate"):
            hits = self.missing_rate.update(missing)
            if hits:
                found.append(self._missing_detection(base, hits[0], missing))
        codes = self._codes(x[present]) if present.size else np.zeros(0, dtype=np.int32)
        if self._armed("categorical") and codes.size:
            s = self.settings
            points = evaluation_points(self.watched, codes.size, s.evaluate_every, s.categorical_window)
            if points:
                ext = np.concatenate((self.recent_codes.items(), codes))
                offset = ext.size - codes.size
                for t in points:
                    window = ext[offset + t + 1 - s.categorical_window: offset + t + 1]
                    hit = self.test.test(window)
                    if hit is not None:
                        found.append(self._detection(base + int(present[t]), window, hit))
                        break
        self.recent_codes.extend(codes)
        self.recent_missing.extend(missing)
        self.watched += codes.size
        return found

    def _summary(self, counts: np.ndarray) -> dict:
        total = float(counts.sum())
        order = np.argsort(-counts, kind="stable")[:TOP_CATEGORIES]
        return {"n": int(total), "top": {self.names[i]: float(counts[i] / total) for i in order if counts[i] > 0}}

    def _detection(self, index: int, window: np.ndarray, hit: Hit) -> Detection:
        window_counts = np.bincount(window, minlength=len(self.names)).astype(np.float64)
        ref_counts = self.reference_counts.copy()
        observed = ref_counts.copy()
        observed[-1] -= self.reference_pseudo  # the unseen cell is last

        effect = {"psi": psi(ref_counts, window_counts), "jensen_shannon": jensen_shannon(ref_counts, window_counts)}
        shares_ref = observed / observed.sum()
        shares_win = window_counts / window_counts.sum()
        moved = int(np.argmax(np.abs(shares_win - shares_ref)))
        effect["most_changed"] = {"category": self.names[moved], "reference_share": float(shares_ref[moved]),
                                  "window_share": float(shares_win[moved])}
        return Detection(detector="categorical", kind="feature", index=index, statistic=hit.statistic,
                         threshold=self.test.critical, p_value=hit.p_value, direction=None,
                         severity="critical" if effect["psi"] >= CRITICAL_PSI else "warning",
                         reference=self._summary(observed), window=self._summary(window_counts),
                         effect=effect)

    # -- state ------------------------------------------------------------------------------
    def get_state(self) -> dict:
        state = self._base_state()
        state["names"] = list(self.names)
        state["codebook"] = {"categories": list(self.codebook), "codes": np.fromiter(self.codebook.values(), np.int32)}
        state["reference_counts"] = self.reference_counts
        state["reference_pseudo"] = self.reference_pseudo
        state["reference_missing"] = self.reference_missing
        state["reference_total"] = self.reference_total
        state["missing_rate"] = self.missing_rate.get_state()
        state["recent"] = {"codes": self.recent_codes.get_state(), "missing": self.recent_missing.get_state()}
        return state

    def set_state(self, state: dict) -> None:
        if state["names"]:
            self.names = list(state["names"])
            self.codebook = dict(zip(state["codebook"]["categories"], state["codebook"]["codes"].tolist()))
            self.reference_counts = np.asarray(state["reference_counts"], dtype=np.float64)
            self.reference_pseudo = float(state.get("reference_pseudo", 0.0))
            self.reference_missing = int(state["reference_missing"])
            self.reference_total = int(state["reference_total"])
            self.test.fit(self.reference_counts, self._share())
            self.missing_rate.set_state(state["missing_rate"])
            self.recent_codes.set_state(state["recent"]["codes"])
            self.recent_missing.set_state(state["recent"]["missing"])
        self._set_base_state(state)
        if len(state["collected"]):
            self.collected = [np.asarray(state["collected"], dtype=object)]
