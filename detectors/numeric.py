"""The monitor of one numeric feature: ADWIN, Page-Hinkley, scale, windowed KS, histogram G-test
and missing rate, sharing one reference, one budget and one recent window."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.special import ndtri

from .adwin import ADWIN
from .binary import BinaryDetector, binary_detector, check_binary
from .detection import Detection, Hit
from .frequency import FrequencyTest, psi
from .ks import WindowedKS
from .missing_rate import MissingRate
from .monitor import FeatureMonitor, evaluation_points
from .page_hinkley import PageHinkley
from .reference import Reference, summarize
from .scale import Scale
from .settings import BINARY_DETECTORS, MonitorSettings
from .window import Ring

#: PSI at or above this marks a detection as critical (the customary "major shift" line).
CRITICAL_PSI = 0.25
#: Page-Hinkley / ADWIN: a mean shift of this many reference sds in the new regime is critical.
CRITICAL_SHIFT_SD = 1.0
#: Scale: a spread this many times the reference's (or this many times narrower) is critical.
CRITICAL_SD_RATIO = 1.5


class NumericMonitor(FeatureMonitor):
    """Watches one numeric feature. ``NaN`` means missing; infinities are rejected.

    >>> rng = np.random.default_rng(0)
    >>> monitor = NumericMonitor()
    >>> stream = np.concatenate([rng.normal(0, 1, 20_000), rng.normal(0.5, 1, 5_000)])
    >>> for d in monitor.update(stream):
    ...     print(d.detector, d.direction, d.index)
    page_hinkley up 20073
    adwin up 20359
    histogram None 20499
    ks up 20499
    """

    numeric = True
    #: What a state record calls this monitor (``state.monitor_record``).
    kind = "numeric"

    def __init__(self, settings: MonitorSettings | None = None, reference: np.ndarray | None = None):
        super().__init__(settings)
        s = self.settings
        self.page_hinkley = PageHinkley(shift=s.shift)
        self.scale = Scale(change=s.scale_change)
        self.adwin = self._new_adwin()
        self.ks = WindowedKS(window=s.window, evaluate_every=s.evaluate_every,
                             sliding_reference=s.sliding_reference)
        self.histogram = FrequencyTest(window=s.window, evaluate_every=s.evaluate_every)
        self.missing_rate = MissingRate(min_change=s.missing_min_change)
        self.reference: Reference | None = None
        self.reference_missing = 0
        self.reference_total = 0
        self.edges = np.zeros(0)
        self.reference_bins = np.zeros(1)
        #: (edges, reference, bin of every reference position), made when first needed.
        self._position_bins: tuple | None = None
        extra = s.reference_size if s.sliding_reference else 0
        self.recent_values = Ring(s.window + extra, np.float64)
        self.recent_positions = Ring(s.window, np.int64)
        self.recent_missing = Ring(s.window, np.bool_)
        #: Opt-in detectors of 0/1 error streams (``ddm``, ``hddm_a``), by name; usually empty.
        self.binary: dict[str, BinaryDetector] = {
            name: binary_detector(name, s) for name in self.active if name in BINARY_DETECTORS}
        if reference is not None:
            self.set_reference(reference)

    def _new_adwin(self) -> ADWIN:
        s = self.settings
        return ADWIN(block=s.adwin_block, clock=s.adwin_clock)

    def set_reference(self, values: np.ndarray) -> None:
        """Use ``values`` (training data; ``NaN`` = missing) as the reference instead of a warm-up."""
        values = np.asarray(values, dtype=np.float64)
        if np.isinf(values).any():
            raise ValueError("reference values must not be infinite")
        missing = np.isnan(values)
        if missing.all():
            raise ValueError("reference has no non-missing value")
        for name in self.binary:
            check_binary(values, name)
        self._calibrate(values[~missing], int(missing.sum()), int(values.size))

    def update(self, values) -> list[Detection]:
        """Feed a batch of values (``NaN`` = missing); return the detections it caused."""
        x = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
        bad = np.flatnonzero(np.isinf(x))
        if bad.size:
            raise ValueError(f"value at position {int(bad[0])} is infinite; send null for a missing value")
        for name in self.binary:
            check_binary(x, name)  # before any state changes: a refused batch leaves the monitor as it was
        return self._update(x, np.isnan(x))

    def _fit(self, values: np.ndarray, missing: int, total: int) -> None:
        ref = Reference(values)
        self.reference = ref
        self.reference_missing, self.reference_total = missing, total
        share = self._share()
        self.page_hinkley.fit(ref, share)
        self.scale.fit(ref, share)
        # ADWIN is fed the uniform scores the monitor makes once for all its detectors. Its
        # delta bounds the false-alarm probability of one cut test, run every block * clock
        # values: fit sets it from the share.
        self.adwin = self._new_adwin()
        self.adwin.fit(None, share)
        self.ks.fit(ref, share)
        self.edges = ref.quantile_edges(self.settings.bins)
        self.reference_bins = np.bincount(np.searchsorted(self.edges, ref.values, side="right"),
                                          minlength=self.edges.size + 1).astype(np.float64)
        self.histogram.fit(self.reference_bins, share)
        self.missing_rate.fit_counts(missing, total, share)
        self.recent_values.clear()
        self.recent_positions.clear()
        self.recent_missing.clear()
        if self.settings.sliding_reference:
            self.recent_values.extend(values[-self.settings.reference_size:])
        for detector in self.binary.values():
            detector.fit(values, share)

    def _watch(self, x: np.ndarray, missing: np.ndarray) -> list[Detection]:
        base = self.seen
        ref = self.reference
        found: list[Detection] = []
        present = np.flatnonzero(~missing)
        values = x[present]
        if self._armed("missing_rate"):
            hits = self.missing_rate.update(missing)
            if hits:
                found.append(self._missing_detection(base, hits[0], missing))
        if values.size:
            positions = ref.positions(values)
            cusums = [d for d in (self.page_hinkley, self.scale) if self._armed(d.name)]
            u = ref.uniform_scores(positions) if cusums or self._armed("adwin") else None
            z = ndtri(u) if cusums else None
            for detector in cusums:
                hits = detector.update_scores(z)
                if hits:
                    # Describe the values since the CUSUM's own change-point estimate.
                    found.append(self._detection(detector.name, hits[0], present, base, values,
                                                 recent=hits[0].since_change))
            if self._armed("adwin"):
                hits = self.adwin.update_scores(u)
                if hits:
                    found.append(self._detection("adwin", hits[0], present, base, values,
                                                 recent=hits[0].since_change))
            for name, detector in self.binary.items():
                if self._armed(name):
                    hits = detector.update(values)
                    if hits:
                        found.append(self._detection(name, hits[0], present, base, values,
                                                     recent=hits[0].since_change))
            found.extend(self._windowed(values, positions, present, base))
            self.recent_values.extend(values)
            self.recent_positions.extend(positions)
        self.recent_missing.extend(missing)
        self.watched += values.size
        return found

    def position_bins(self) -> np.ndarray:
        """Histogram bin of every reference position (``searchsorted(edges, value, "right")``).

        Edges are reference values, so no edge lies strictly inside a gap between two distinct
        reference values: a gap's bin is the bin of the value below it. So the bins of the recent
        window follow from its positions, and need no ring of their own. Cached on the reference
        (2 bytes per position).

        >>> m = NumericMonitor(MonitorSettings(bins=2), reference=np.array([1.0, 2.0, 3.0, 4.0]))
        >>> values = np.array([0.5, 1.0, 2.5, 3.0, 9.0])
        >>> m.position_bins()[m.reference.positions(values)].tolist()
        [0, 0, 1, 1, 1]
        >>> np.searchsorted(m.edges, values, side="right").tolist()
        [0, 0, 1, 1, 1]
        """
        ref = self.reference
        cached = self._position_bins
        if cached is None or cached[0] is not self.edges or cached[1] is not ref:
            at = np.searchsorted(self.edges, ref.distinct, side="right").astype(np.int16)
            table = np.zeros(ref.n_positions, dtype=np.int16)
            table[1::2] = at
            table[2::2] = at
            cached = self._position_bins = (self.edges, ref, table)
        return cached[2]

    def _windowed(self, values, positions, present, base) -> list[Detection]:
        s = self.settings
        run_ks, run_hist = self._armed("ks"), self._armed("histogram")
        if not (run_ks or run_hist):
            return []
        points = evaluation_points(self.watched, values.size, s.evaluate_every, s.window)
        if not points:
            return []
        old_positions = self.recent_positions.items()
        ext_positions = np.concatenate((old_positions, positions))
        old_values = self.recent_values.items()
        ext_values = np.concatenate((old_values, values))
        ext_bins = self.position_bins()[ext_positions] if run_hist else None
        offset_p, offset_v = old_positions.size, old_values.size
        w = s.window
        found = []
        for t in points:
            if not (run_ks or run_hist):
                break
            if run_ks:
                if s.sliding_reference:
                    start = offset_v + t + 1 - w - s.reference_size
                    hit = self.ks.test_values(ext_values[max(0, start): offset_v + t + 1 - w],
                                              ext_values[offset_v + t + 1 - w: offset_v + t + 1])
                else:
                    hit = self.ks.test_positions(ext_positions[offset_p + t + 1 - w: offset_p + t + 1])
                if hit is not None:
                    found.append(self._detection("ks", replace(hit, index=t), present, base, values))
                    run_ks = False
            if run_hist:
                hit = self.histogram.test(ext_bins[offset_p + t + 1 - w: offset_p + t + 1])
                if hit is not None:
                    found.append(self._detection("histogram", replace(hit, index=t, direction=None), present,
                                                 base, values, effect=hit.effect))
                    run_hist = False
        return found

    def _window_at(self, values: np.ndarray, t: int, size: int) -> np.ndarray:
        """The last ``size`` (at most ``window``) non-missing values up to and including ``values[t]``."""
        w = min(max(1, size), self.settings.window)
        recent = self.recent_values.items()[-w:]
        return np.concatenate((recent, values[:t + 1]))[-w:]

    def _detection(self, detector: str, hit: Hit, present, base, values, effect=None,
                   recent: int | None = None) -> Detection:
        """The detection of ``hit`` (``hit.index``: among this stretch's non-missing values)."""
        t = hit.index
        # The windowed tests describe their window; Page-Hinkley and ADWIN the stretch they
        # judge to be the new regime (capped at the window size).
        window = self._window_at(values, t, recent or self.settings.window)
        codes = np.searchsorted(self.edges, window, side="right")
        window_bins = np.bincount(codes, minlength=self.reference_bins.size).astype(np.float64)
        effect = dict(effect or {})
        effect.setdefault("psi", psi(self.reference_bins, window_bins))
        ref_summary = self.reference.summary()
        win_summary = summarize(window)
        shift = 0.0
        if ref_summary.get("std"):
            shift = effect["mean_shift_sd"] = (win_summary["mean"] - ref_summary["mean"]) / ref_summary["std"]
            effect["sd_ratio"] = win_summary["std"] / ref_summary["std"]
        if detector == "scale":
            ratio = effect.get("sd_ratio")
            wide = ratio is not None and (ratio >= CRITICAL_SD_RATIO or ratio * CRITICAL_SD_RATIO <= 1.0)
            severity = "critical" if wide else "warning"
        elif recent is None:
            severity = "critical" if effect["psi"] >= CRITICAL_PSI else "warning"
        else:
            severity = "critical" if abs(shift) >= CRITICAL_SHIFT_SD else "warning"
        return Detection(detector=detector, kind="feature", index=base + int(present[t]),
                         statistic=float(hit.statistic), threshold=float(hit.threshold),
                         p_value=None if hit.p_value is None else float(hit.p_value), direction=hit.direction,
                         severity=severity, reference=ref_summary, window=win_summary, effect=effect)

    # -- state ------------------------------------------------------------------------------
    def get_state(self) -> dict:
        state = self._base_state()
        state["reference"] = self.reference.values if self.reference is not None else None
        state["reference_missing"] = self.reference_missing
        state["reference_total"] = self.reference_total
        state["page_hinkley"] = self.page_hinkley.get_state()
        state["scale"] = self.scale.get_state()
        state["adwin"] = self.adwin.get_state()
        state["missing_rate"] = self.missing_rate.get_state()
        for name, detector in self.binary.items():
            state[name] = detector.get_state()
        # Positions and bins of the recent values follow from the values and the reference.
        state["recent"] = {"values": self.recent_values.get_state(), "missing": self.recent_missing.get_state()}
        return state

    def set_state(self, state: dict) -> None:
        if state["reference"] is not None:
            self._fit(np.asarray(state["reference"], dtype=np.float64), int(state["reference_missing"]),
                      int(state["reference_total"]))
            self.page_hinkley.set_state(state["page_hinkley"])
            if "scale" in state:  # a checkpoint from before the scale detector: it starts afresh
                self.scale.set_state(state["scale"])
            self.adwin.set_state(state["adwin"])
            self.missing_rate.set_state(state["missing_rate"])
            for name, detector in self.binary.items():
                detector.set_state(state[name])
            self.recent_values.set_state(state["recent"]["values"])
            self.recent_missing.set_state(state["recent"]["missing"])
            recent = self.recent_values.items()[-self.settings.window:]
            watched = int(state["watched"])
            recent = recent[max(0, recent.size - watched):]  # a sliding reference's seed is not the window
            self.recent_positions.set_state({"items": self.reference.positions(recent), "count": watched})
        self._set_base_state(state)
