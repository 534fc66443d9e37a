"""What every feature monitor does around its detectors: warm-up, re-arming, batching.

A monitor collects a reference (the first ``reference_size`` values, unless one is supplied),
calibrates its detectors on it, and watches. When a detector fires, that detector is muted and
the monitor collects ``rearm_size`` fresh values as the reference of the new regime; the other
detectors keep watching the old reference meanwhile, so one change yields at most one alert per
detector. When the new reference is complete every detector is re-calibrated on it and re-armed.

Batches and single values give identical detections: every detector's schedule counts values
since its last calibration, never batch boundaries.
"""

from __future__ import annotations

import numpy as np

from .detection import Detection, Hit
from .owed import owed_attribute
from .settings import MonitorSettings

#: A missing rate moving by this much (absolute) is critical.
CRITICAL_MISSING_CHANGE = 0.05


class FeatureMonitor:
    """Base class; see ``NumericMonitor`` and ``CategoricalMonitor``."""

    numeric = True

    #: Owed while the cross-model path moves a quiet group on without touching its members
    #: (``together.counted_on``): written when first read (``detectors.owed``).
    seen = owed_attribute("seen")
    watched = owed_attribute("watched")

    def __init__(self, settings: MonitorSettings | None = None):
        self.settings = settings or MonitorSettings()
        self.active = self.settings.detectors_for(self.numeric)
        self.seen = 0  # values given to the monitor, missing ones included
        self.watched = 0  # non-missing values since the last calibration
        self.fitted = False
        self.collecting = True
        self.collect_target = self.settings.reference_size
        self.collected: list = []
        self.collected_missing = 0
        self.collected_total = 0
        self.muted: set[str] = set()
        self.calibrations = 0
        #: The caches of this monitor's state that trust it (the fast path's tables,
        #: ``together.py``): each one's ``intact`` is cleared by the next version bump.
        self._trusting: list | None = None
        #: Bumped by every change of the monitor's state (an update, a fit, ``set_state``).
        self.version = 0

    @property
    def version(self) -> int:
        return self._version

    @version.setter
    def version(self, value: int) -> None:
        self._version = value
        trusting = self._trusting
        if trusting:
            for cache in trusting:
                cache.intact = False
            trusting.clear()

    def trust(self, cache) -> None:
        """``cache`` (with an ``intact`` flag) holds this monitor's state as it is now: its
        ``intact`` is cleared by the next change of the monitor's state (a ``version`` bump)."""
        if self._trusting is None:
            self._trusting = [cache]
        else:
            self._trusting.append(cache)

    # -- the batching loop, shared --------------------------------------------------------
    def _update(self, x: np.ndarray, missing: np.ndarray) -> list[Detection]:
        self.version += 1
        out: list[Detection] = []
        pos, n = 0, x.shape[0]
        while pos < n:
            if not self.fitted:
                end = self._collect_end(missing, pos, n)
                self._collect(x, missing, pos, end)
                self.seen += end - pos
                pos = end
                continue
            end = self._collect_end(missing, pos, n) if self.collecting else n
            base = self.seen
            found = self._watch(x[pos:end], missing[pos:end])
            self.seen = base + (end - pos)
            # Mute before collecting: a reference completed below re-arms every detector.
            self.muted.update(d.detector for d in found)
            if found and not self.collecting:
                first = min(d.index for d in found) - base + pos
                self._start_collecting(self.settings.rearm_size)
                done = self._collect_end(missing, first + 1, end)
                if done < end:
                    # The new reference completes inside this stretch: what the old detectors saw
                    # after that point never happened; they are re-armed there.
                    found = [d for d in found if d.index < base + done - pos]
                    self.muted = {d.detector for d in found}
                    self.seen = base + (done - pos)
                    end = done
                self._collect(x, missing, first + 1, end)
            elif self.collecting:
                self._collect(x, missing, pos, end)
            out.extend(sorted(found, key=lambda d: (d.index, d.detector)))
            pos = end
        return out

    def _start_collecting(self, target: int) -> None:
        self.collecting = True
        self.collect_target = target
        self.collected = []
        self.collected_missing = 0
        self.collected_total = 0

    def _collect_end(self, missing: np.ndarray, start: int, stop: int) -> int:
        """Where (exclusive) the reference being collected becomes complete, or ``stop``."""
        need = self._still_to_collect()
        present = np.flatnonzero(~missing[start:stop])
        if present.size >= need:
            return start + int(present[need - 1]) + 1
        return stop

    def _collected_count(self) -> int:
        """Values of the reference being collected so far: every value collected but the missing
        ones (``_collect`` keeps only those present), read off the two totals instead of walking
        ``collected``, which holds a chunk per batch of the warm-up (dozens, with many models)."""
        return self.collected_total - self.collected_missing

    def _still_to_collect(self) -> int:
        """Values the reference being collected still needs (0 or less: it is complete)."""
        return self.collect_target - self._collected_count()

    def _collect(self, x: np.ndarray, missing: np.ndarray, start: int, stop: int) -> None:
        if stop <= start:
            return
        keep = x[start:stop][~missing[start:stop]]
        if keep.size:
            self.collected.append(keep)
        self.collected_missing += int(missing[start:stop].sum())
        self.collected_total += stop - start
        if self._still_to_collect() <= 0:
            values = np.concatenate(self.collected)
            self._calibrate(values, self.collected_missing, self.collected_total)

    def _calibrate(self, values: np.ndarray, missing: int, total: int) -> None:
        self.version += 1
        self._fit(values, missing, total)
        self.fitted = True
        self.collecting = False
        self.collected = []
        self.collected_missing = 0
        self.collected_total = 0
        self.muted.clear()
        self.watched = 0
        self.calibrations += 1

    def _share(self) -> float:
        return self.settings.false_alarm_budget * max(1, len(self.active))

    def _armed(self, name: str) -> bool:
        return name in self.active and name not in self.muted

    def _missing_detection(self, base: int, hit: Hit, missing: np.ndarray) -> Detection:
        """The alert of the missing-rate detector, with the rate over the last ``window`` values."""
        recent = np.concatenate((self.recent_missing.items(), missing[:hit.index + 1]))[-self.settings.window:]
        rate = float(recent.mean())
        ref_rate = self.reference_missing / max(1, self.reference_total)
        severity = "critical" if abs(rate - ref_rate) >= CRITICAL_MISSING_CHANGE else "warning"
        return Detection(detector="missing_rate", kind="missing_rate", index=int(base + hit.index),
                         statistic=float(hit.statistic), threshold=float(hit.threshold),
                         p_value=None, direction=hit.direction, severity=severity,
                         reference={"n": self.reference_total, "missing_rate": ref_rate},
                         window={"n": int(recent.size), "missing_rate": rate})

    # -- per type ---------------------------------------------------------------------------
    def _fit(self, values: np.ndarray, missing: int, total: int) -> None:
        raise NotImplementedError

    def _watch(self, x: np.ndarray, missing: np.ndarray) -> list[Detection]:
        raise NotImplementedError

    # -- state ------------------------------------------------------------------------------
    def _base_state(self) -> dict:
        collected = np.concatenate(self.collected) if self.collected else np.zeros(0)
        return {
            "seen": self.seen, "watched": self.watched, "fitted": int(self.fitted),
            "collecting": int(self.collecting), "collect_target": self.collect_target,
            "collected": collected, "collected_missing": self.collected_missing,
            "collected_total": self.collected_total, "muted": sorted(self.muted),
            "calibrations": self.calibrations,
        }

    def _set_base_state(self, state: dict) -> None:
        self.version += 1
        self.seen = int(state["seen"])
        self.watched = int(state["watched"])
        self.fitted = bool(state["fitted"])
        self.collecting = bool(state["collecting"])
        self.collect_target = int(state["collect_target"])
        collected = state["collected"]
        self.collected = [collected] if len(collected) else []
        self.collected_missing = int(state["collected_missing"])
        self.collected_total = int(state["collected_total"])
        self.muted = set(state["muted"])
        self.calibrations = int(state["calibrations"])


def evaluation_points(watched: int, count: int, every: int, first_at: int) -> tuple[int, ...]:
    """Offsets ``t`` in a stretch of ``count`` values at which a windowed test runs: when the
    running count ``watched + t + 1`` is a multiple of ``every`` and at least ``first_at``.
    (Plain Python: a few points per call, on the hot path.)

    >>> evaluation_points(0, 10, 3, 6)
    (5, 8)
    """
    return tuple(t for t in range((-(watched + 1)) % every, count, every) if watched + t + 1 >= first_at)
