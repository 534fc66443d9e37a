"""Thresholds from the false-alarm budget: the CUSUM run-length solution, the adjustment
coefficient, per-test levels, and one budget shared by the detectors of a feature."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import ndtri

from streamdrift.detectors import CategoricalMonitor, MissingRate, MonitorSettings, NumericMonitor, PageHinkley, Scale
from streamdrift.detectors import calibration


def normal_increments(k: float, n: int = 200_000) -> np.ndarray:
    """N(-k, 1) by its quantiles: a deterministic sample whose moments are those of the law."""
    return -k + ndtri((np.arange(n) + 0.5) / n)


def cusum_run_lengths(k: float, h: float, walks: int, rng: np.random.Generator, chunk: int = 2000) -> np.ndarray:
    """Run lengths of ``S = max(0, S + X)``, ``X ~ N(-k, 1)``, to the first ``S > h``, for many walks at once."""
    s = np.zeros(walks)
    lengths = np.zeros(walks, dtype=np.int64)
    alive = np.arange(walks)
    t0 = 0
    while alive.size:
        c = np.cumsum(rng.normal(-k, 1, (alive.size, chunk)), axis=1)
        path = c - np.minimum(np.minimum.accumulate(c, axis=1), -s[alive][:, None])
        over = path > h
        hit = over.any(axis=1)
        lengths[alive[hit]] = t0 + over[hit].argmax(axis=1) + 1
        s[alive[~hit]] = path[~hit, -1]
        alive = alive[~hit]
        t0 += chunk
    return lengths


@pytest.mark.parametrize("k", [0.1, 0.25, 0.5])
def test_cusum_threshold_keeps_the_target_run_length(k):
    """k = shift / 2: 0.25 is Page-Hinkley at the default shift of 0.5, 0.5 at shift = 1."""
    target = 2000
    h = calibration.cusum_threshold(normal_increments(k), target)
    mean = cusum_run_lengths(k, h, walks=2000, rng=np.random.default_rng(1)).mean()
    assert target / 2 <= mean <= 2 * target, f"mean run length {mean:.0f} for a target of {target}"


@pytest.mark.parametrize("k", [0.1, 0.25, 0.5, 1.0])
def test_adjustment_coefficient_of_a_normal_walk_is_2k(k):
    assert calibration.adjustment_coefficient(normal_increments(k)) == pytest.approx(2 * k, rel=2e-3)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.45])
def test_adjustment_coefficient_of_a_plus_minus_one_walk(p):
    """X = +1 with probability p, -1 otherwise: E[exp(theta X)] = 1 at exp(theta) = (1 - p) / p."""
    theta = calibration.adjustment_coefficient(np.array([1.0, -1.0]), weights=np.array([p, 1 - p]))
    assert theta == pytest.approx(math.log((1 - p) / p), rel=1e-9)


def test_adjustment_coefficient_edge_cases():
    with pytest.raises(ValueError, match="drift downwards"):
        calibration.adjustment_coefficient(np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="drift downwards"):
        calibration.adjustment_coefficient(normal_increments(-0.1))
    assert calibration.adjustment_coefficient(np.array([-1.0, -0.5, 0.0])) == math.inf
    # A walk that can never rise needs no real threshold, but still a finite positive one.
    h = calibration.cusum_threshold(np.array([-1.0, -0.5]), 1e6)
    assert 0 < h < math.inf


def test_threshold_grows_with_the_run_length():
    x = normal_increments(0.25)
    thresholds = [calibration.cusum_threshold(x, r) for r in (1e3, 1e4, 1e5, 1e6, 1e7)]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == 5
    # Siegmund: the threshold grows like log(run length) / theta.
    assert thresholds[-1] - thresholds[-2] == pytest.approx(math.log(10) / 0.5, rel=0.05)


def test_per_test_level_and_detector_share():
    assert calibration.per_test_level(500, 5e7) == pytest.approx(1e-5)
    assert calibration.per_test_level(10, 15) == 0.5
    assert calibration.detector_share(1_000_000, 5) == 5_000_000
    assert calibration.detector_share(1_000_000, 0) == 1_000_000


# -- one budget, shared by the detectors of a feature ------------------------------------------
def fitted_numeric(**kw) -> NumericMonitor:
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, 5000)
    x[::50] = np.nan
    return NumericMonitor(MonitorSettings(false_alarm_budget=2_000_000, **kw), reference=x)


def test_numeric_monitor_with_six_detectors_gives_each_six_budgets():
    monitor = fitted_numeric()
    s = monitor.settings
    assert len(monitor.active) == 6
    share = 6 * s.false_alarm_budget
    assert monitor.ks.level == pytest.approx(s.evaluate_every / share)
    assert monitor.histogram.level == pytest.approx(s.evaluate_every / share)
    assert monitor.adwin.delta == pytest.approx(s.adwin_block * s.adwin_clock / share)
    ph = PageHinkley(shift=s.shift)
    ph.fit(monitor.reference, share)
    assert monitor.page_hinkley.threshold == ph.threshold
    scale = Scale(change=s.scale_change)
    scale.fit(monitor.reference, share)
    assert monitor.scale.threshold == scale.threshold
    mr = MissingRate(min_change=s.missing_min_change)
    mr.fit_counts(monitor.reference_missing, monitor.reference_total, share)
    assert monitor.missing_rate.threshold.tolist() == mr.threshold.tolist()


def test_share_follows_the_number_of_active_detectors():
    two = fitted_numeric(detectors=("ks", "adwin"))
    six = fitted_numeric()
    assert two.ks.level == pytest.approx(3 * six.ks.level)
    assert two.adwin.delta == pytest.approx(3 * six.adwin.delta)
    # Fewer detectors, each with a smaller share, hence a lower KS critical value.
    assert two.ks.critical < six.ks.critical


def test_categorical_monitor_shares_its_budget_between_two_detectors():
    monitor = CategoricalMonitor(MonitorSettings(false_alarm_budget=2_000_000),
                                 reference={"a": 600, "b": 400, None: 50})
    s = monitor.settings
    assert monitor.test.level == pytest.approx(s.evaluate_every / (2 * s.false_alarm_budget))


def test_share_is_kept_after_a_rearm():
    rng = np.random.default_rng(4)
    monitor = NumericMonitor(MonitorSettings(false_alarm_budget=2_000_000))
    monitor.update(np.concatenate([rng.normal(0, 1, 8000), rng.normal(2, 1, 4000)]))
    assert monitor.calibrations >= 2
    s = monitor.settings
    assert monitor.adwin.delta == pytest.approx(s.adwin_block * s.adwin_clock / (6 * s.false_alarm_budget))
    assert monitor.ks.level == pytest.approx(s.evaluate_every / (6 * s.false_alarm_budget))
