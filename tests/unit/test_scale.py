"""The scale detector: a spread that widens, narrows or is contaminated is caught; a stationary
stream of any shape is not; its effect size is the sd ratio."""

from __future__ import annotations

import numpy as np
import pytest

from streamdrift.detectors import Detection, MonitorSettings, NumericMonitor, Reference, Scale


def fitted(seed: int = 1, share: float = 6e7, reference=None) -> tuple[Scale, np.random.Generator]:
    rng = np.random.default_rng(seed)
    scale = Scale()
    scale.fit(Reference(rng.normal(0, 1, 5000) if reference is None else reference(rng)), share)
    return scale, rng


@pytest.mark.parametrize("sd, direction, within", [(2 ** 0.5, "up", 400), (0.5 ** 0.5, "down", 1000)])
def test_a_variance_change_is_caught_in_its_direction(sd, direction, within):
    scale, rng = fitted()
    assert scale.update(rng.normal(0, 1, 2000)) == []
    hits = scale.update(rng.normal(0, sd, 3000))
    assert [h.direction for h in hits] == [direction]
    assert hits[0].index < within
    assert -100 < hits[0].change_point <= hits[0].index  # its estimate of the change: near 0


def test_five_percent_from_a_five_times_wider_distribution_is_caught():
    caught = []
    for seed in range(10):
        scale, rng = fitted(seed)
        n = 5000
        x = np.where(rng.random(n) < 0.05, rng.normal(0, 5, n), rng.normal(0, 1, n))
        hits = scale.update(x)
        caught.append(bool(hits) and hits[0].direction == "up")
    assert sum(caught) >= 9


@pytest.mark.parametrize("shape", ["normal", "log-normal", "integer ties", "bimodal"])
def test_quiet_on_a_long_stationary_stream_of_any_shape(shape):
    draw = {"normal": lambda r, n: r.normal(0, 1, n), "log-normal": lambda r, n: r.lognormal(0, 1, n),
            "integer ties": lambda r, n: r.poisson(3, n).astype(float),
            "bimodal": lambda r, n: np.where(r.random(n) < 0.5, r.normal(-2, 1, n), r.normal(2, 1, n))}[shape]
    scale, rng = fitted(reference=lambda r: draw(r, 5000))
    assert scale.update(draw(rng, 300_000)) == []
    # Nowhere near the threshold: a stationary stream keeps the sums small.
    assert max(scale.up, scale.down) < scale.threshold / 2


def test_the_centre_is_the_null_mean_of_the_squared_scores():
    scale, _ = fitted()
    positions, weights = scale.reference.null_positions()
    z = scale.reference.normal_scores(positions)
    assert scale.centre == pytest.approx(np.average(z * z, weights=weights))
    assert 0.95 < scale.centre < 1.05


def test_batches_change_nothing():
    one, rng = fitted(3)
    many, _ = fitted(3)
    x = np.concatenate([rng.normal(0, 1, 3000), rng.normal(0, 1.5, 2000)])
    hits_one = one.update(x)
    hits_many, pos = [], 0
    for size in (1, 7, 500, 1, 999, 3492):
        hits_many += [(pos + h.index, h.direction, h.statistic) for h in many.update(x[pos:pos + size])]
        pos += size
    assert [(h.index, h.direction, h.statistic) for h in hits_one] == hits_many
    assert one.get_state() == many.get_state()


def test_too_small_a_reference_turns_it_off():
    """Its own uncertainty (two standard errors of the squared scores) is as large as the allowance."""
    scale, _ = fitted(reference=lambda r: r.normal(0, 1, 150))
    assert scale.threshold_value > 1e12
    assert Scale(change=1.0).threshold == 0  # unfitted
    wide = Scale(change=1.0)
    wide.fit(scale.reference, 6e7)
    assert wide.threshold < 1 << 40


def test_the_monitor_reports_the_sd_ratio_and_it_is_the_effect_size():
    rng = np.random.default_rng(5)
    monitor = NumericMonitor(MonitorSettings(detectors=("scale",)))
    found = monitor.update(np.concatenate([rng.normal(0, 1, 6000), rng.normal(0, 2, 2000)]))
    assert [d.detector for d in found] == ["scale"]
    d = found[0]
    assert d.direction == "up" and d.severity == "critical"
    assert 1.5 < d.effect["sd_ratio"] < 2.6
    assert d.effect_size() == pytest.approx(abs(d.effect["sd_ratio"] - 1))
    assert d.statistic > d.threshold > 0


def test_effect_size_of_a_scale_detection():
    make = lambda ratio: Detection("scale", "feature", 0, 1.0, 1.0, None, "up", "warning",
                                   effect={"sd_ratio": ratio, "mean_shift_sd": 0.0})
    assert make(1.3).effect_size() == pytest.approx(0.3)
    assert make(0.8).effect_size() == pytest.approx(0.2)


@pytest.mark.parametrize("variance, floor, published", [(2.0, 0.0, True), (2.0, 0.2, True), (1.2, 0.0, True),
                                                        (1.2, 0.2, False)])
def test_min_effect_applies_to_the_sd_ratio(variance, floor, published):
    """A variance x1.2 (sd ratio ~1.1) is caught, and held back by a 0.2 floor; x2 (~1.41) passes it."""
    rng = np.random.default_rng(11)
    monitor = NumericMonitor(MonitorSettings(detectors=("scale",), min_effect=floor))
    found = monitor.update(np.concatenate([rng.normal(0, 1, 5000), rng.normal(0, variance ** 0.5, 20_000)]))
    assert found and found[0].detector == "scale"
    passes = found[0].effect_size() >= floor
    assert passes == published, found[0].effect
