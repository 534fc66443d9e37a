"""The feature monitors: where they fire, that they stay quiet, what they refuse, and one contract
suite run over every detector configuration (state round-trip, batch == one-by-one, random splits)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamdrift.detectors import (
    NUMERIC_DETECTORS, CategoricalMonitor, MonitorSettings, NumericMonitor, decode_monitor, encode_monitor,
)
from streamdrift.detectors.categorical import OTHER, UNSEEN

#: Stated explicitly so these tests do not move with the default: ~0.03 expected false alarms per
#: feature in a 300k stationary stream.
BUDGET = 10_000_000
#: Small monitors for the contract suite: several detections and re-arms in a few thousand values.
SMALL = dict(reference_size=400, rearm_size=200, window=100, categorical_window=200, evaluate_every=10,
             false_alarm_budget=1_000_000)


def summary(detections) -> list[tuple]:
    return [(d.detector, d.direction, d.index) for d in detections]


def full(detections) -> list[dict]:
    return [d.to_dict() for d in detections]


def summary_of(detections: list[dict]) -> list[tuple]:
    return [(d["detector"], d["direction"], d["index"]) for d in detections]


# -- streams -----------------------------------------------------------------------------------
def numeric_stream(seed: int = 0) -> np.ndarray:
    """Mean up, variance up, mean down with a missing-rate surge, a skewed tied tail; NaN = missing."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(0, 1, 1500), rng.normal(1, 1, 1000), rng.normal(1, 3, 1000),
                        rng.normal(-1, 1, 1000), np.round(rng.lognormal(0, 1, 1500), 1)])
    rate = np.full(x.size, 0.10)
    rate[3500:4500] = 0.4
    x[rng.random(x.size) < rate] = np.nan
    return x


CATEGORIES = np.array(list("abcdef"), dtype=object)


def categorical_stream(seed: int = 0) -> list:
    """Share moves, a new frequent category, a missing-rate surge; None = missing."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([
        rng.choice(CATEGORIES, 1500, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.1]),
        rng.choice(CATEGORIES, 1500, p=[0.1, 0.2, 0.2, 0.2, 0.2, 0.1]),
        rng.choice(np.array(["a", "b", "z"], dtype=object), 1000, p=[0.4, 0.4, 0.2]),
        rng.choice(CATEGORIES, 1500, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.1]),
    ])
    rate = np.full(x.size, 0.10)
    rate[3600:4800] = 0.4
    x[rng.random(x.size) < rate] = None
    return x.tolist()


def supplied_numeric_reference() -> np.ndarray:
    return np.random.default_rng(99).normal(0, 1, 400)


#: id -> (factory of a fresh monitor, stream)
CONFIGS = {
    # Scale at its default 0.4 turns itself off on SMALL's 200-value re-arm references (their own
    # uncertainty is as large as its allowance): a coarser change lets it fire, re-arm and fire again.
    **{f"numeric-{name}": (lambda name=name: NumericMonitor(MonitorSettings(
        detectors=(name,), **SMALL, **({"scale_change": 0.8} if name == "scale" else {}))),
        numeric_stream) for name in NUMERIC_DETECTORS},
    "numeric-all": (lambda: NumericMonitor(MonitorSettings(**SMALL)), numeric_stream),
    "numeric-sliding-ks": (lambda: NumericMonitor(MonitorSettings(detectors=("ks",), sliding_reference=True,
                                                                  **SMALL)), numeric_stream),
    "numeric-supplied-reference": (lambda: NumericMonitor(MonitorSettings(**SMALL),
                                                          reference=supplied_numeric_reference()),
                                   numeric_stream),
    "categorical-categorical": (lambda: CategoricalMonitor(MonitorSettings(detectors=("categorical",), **SMALL)),
                                categorical_stream),
    "categorical-missing_rate": (lambda: CategoricalMonitor(MonitorSettings(detectors=("missing_rate",), **SMALL)),
                                 categorical_stream),
    "categorical-all": (lambda: CategoricalMonitor(MonitorSettings(**SMALL)), categorical_stream),
    "categorical-supplied-reference": (
        lambda: CategoricalMonitor(MonitorSettings(**SMALL), reference={"a": 120, "b": 80, "c": 80, "d": 40,
                                                                        "e": 40, "f": 40, None: 45}),
        categorical_stream),
}
STREAMS = {numeric_stream: numeric_stream(), categorical_stream: categorical_stream()}


def config(name: str):
    make, stream = CONFIGS[name]
    return make, STREAMS[stream]


def run(monitor, stream, sizes) -> list:
    """Feed ``stream`` in consecutive batches of the given sizes (the last batch takes the rest)."""
    found, pos = [], 0
    for size in sizes:
        found += monitor.update(stream[pos:pos + size])
        pos += size
    found += monitor.update(stream[pos:])
    return found


_whole_cache: dict[str, list] = {}


def whole(name: str) -> list[dict]:
    if name not in _whole_cache:
        make, stream = config(name)
        _whole_cache[name] = full(make().update(stream))
    return _whole_cache[name]


# -- the contract suite ------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
def test_contract_stream_exercises_detection_and_rearm(name):
    """The suite below is only worth something if each configuration fires, re-arms and fires again."""
    detections = whole(name)
    assert len(detections) >= 2, summary_of(detections)
    make, stream = config(name)
    monitor = make()
    monitor.update(stream)
    assert monitor.calibrations >= 2


@pytest.mark.parametrize("size", [1, 7, 1000])
@pytest.mark.parametrize("name", CONFIGS)
def test_batch_sizes_give_identical_detections(name, size):
    make, stream = config(name)
    n = len(stream)
    got = full(run(make(), stream, [size] * (n // size)))
    assert summary_of(got) == summary_of(whole(name))
    assert got == whole(name)


@pytest.mark.parametrize("name", CONFIGS)
def test_state_round_trip_mid_stream(name):
    """Encode/decode at many points (warm-up, watching, collecting a new reference): same detections."""
    make, stream = config(name)
    monitor, found = make(), []
    for start in range(0, len(stream), 331):
        monitor = decode_monitor(encode_monitor(monitor))
        found += monitor.update(stream[start:start + 331])
    assert full(found) == whole(name)


@pytest.mark.parametrize("name", CONFIGS)
def test_state_round_trip_while_a_detector_builds_up(name):
    """Save just before each detection, where the running sums and windows carry the evidence."""
    make, stream = config(name)
    indices = {d["index"] for d in whole(name)}
    cuts = sorted({i - k for i in indices for k in (1, 5, 20, 60) if i - k > 0})
    monitor, found, pos = make(), [], 0
    for cut in cuts + [len(stream)]:
        found += monitor.update(stream[pos:cut])
        pos = cut
        monitor = decode_monitor(encode_monitor(monitor))
    assert full(found) == whole(name)


@pytest.mark.parametrize("name", CONFIGS)
def test_state_round_trip_of_fresh_monitor_is_a_clone(name):
    make, stream = config(name)
    clone = decode_monitor(encode_monitor(make()))
    assert type(clone) is type(make())
    assert clone.settings == make().settings
    assert full(clone.update(stream)) == whole(name)


def test_adwin_alert_describes_the_same_values_whatever_the_batches():
    """A short calm stretch after the warm-up, then a large shift: ADWIN keeps a short window, and
    the alert's window (n, mean, effect) must not depend on how the values were batched."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, 5600), rng.normal(1, 1, 4000)])
    s = MonitorSettings(detectors=("adwin",), false_alarm_budget=BUDGET)
    at_once = NumericMonitor(s).update(x)
    one_by_one = run(NumericMonitor(s), x, [1] * (x.size - 1))
    assert summary(at_once) == summary(one_by_one) != []
    assert [(d.window["n"], d.effect["mean_shift_sd"]) for d in at_once] == \
        [(d.window["n"], d.effect["mean_shift_sd"]) for d in one_by_one]
    assert full(at_once) == full(one_by_one)


@st.composite
def splits(draw, n: int):
    """Sorted batch boundaries in (0, n), and which of them are state save points."""
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=40)))
    saves = draw(st.sets(st.sampled_from(cuts), max_size=8)) if cuts else set()
    return cuts, saves


@pytest.mark.parametrize("name", CONFIGS)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_batches_and_save_points_give_identical_detections(name, data):
    make, stream = config(name)
    cuts, saves = data.draw(splits(len(stream)))
    monitor, found, pos = make(), [], 0
    for cut in cuts + [len(stream)]:
        found += monitor.update(stream[pos:cut])
        pos = cut
        if cut in saves:
            monitor = decode_monitor(encode_monitor(monitor))
    assert full(found) == whole(name)


@pytest.mark.parametrize("name", CONFIGS)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_collected_count_is_the_values_held_whatever_the_batches(name, data):
    """``_collected_count`` reads the count off the totals (every value collected but the missing
    ones); it must equal what the reference being collected holds, at every cut and save point."""
    make, stream = config(name)
    cuts, saves = data.draw(splits(len(stream)))
    monitor, pos = make(), 0
    for cut in cuts + [len(stream)]:
        monitor.update(stream[pos:cut])
        pos = cut
        if cut in saves:
            monitor = decode_monitor(encode_monitor(monitor))
        assert monitor._collected_count() == sum(len(chunk) for chunk in monitor.collected)


# -- numeric monitor: detection per detector ---------------------------------------------------
def shifted(rng, change, before=10_000, after=5_000, missing=(0.0, 0.0)) -> np.ndarray:
    x = np.concatenate([rng.normal(0, 1, before), change(rng, after)])
    rate = np.where(np.arange(x.size) < before, missing[0], missing[1])
    x[rng.random(x.size) < rate] = np.nan
    return x


MEAN_UP = lambda rng, n: rng.normal(0.5, 1, n)  # noqa: E731
MEAN_DOWN = lambda rng, n: rng.normal(-0.5, 1, n)  # noqa: E731
WIDER = lambda rng, n: rng.normal(0, 2, n)  # noqa: E731
SAME = lambda rng, n: rng.normal(0, 1, n)  # noqa: E731


@pytest.mark.parametrize("detector, change, missing, direction, within", [
    ("page_hinkley", MEAN_UP, (0, 0), "up", 300),
    ("page_hinkley", MEAN_DOWN, (0, 0), "down", 300),
    ("adwin", MEAN_UP, (0, 0), "up", 1000),
    ("adwin", MEAN_DOWN, (0, 0), "down", 1000),
    ("ks", MEAN_UP, (0, 0), "up", 1000),
    ("ks", MEAN_DOWN, (0, 0), "down", 1000),
    ("ks", WIDER, (0, 0), "wider", 1000),
    ("histogram", WIDER, (0, 0), None, 1000),
    ("missing_rate", SAME, (0.01, 0.10), "up", 500),
    ("missing_rate", SAME, (0.10, 0.01), "down", 1000),
])
def test_numeric_monitor_detects_change(detector, change, missing, direction, within):
    rng = np.random.default_rng(20)
    stream = shifted(rng, change, missing=missing)
    monitor = NumericMonitor(MonitorSettings(detectors=(detector,), false_alarm_budget=BUDGET))
    found = monitor.update(stream)
    assert found, "no detection"
    first = found[0]
    assert (first.detector, first.direction) == (detector, direction)
    assert 10_000 <= first.index < 10_000 + within
    assert first.statistic > first.threshold


def test_numeric_monitor_all_detectors_on_mean_shift():
    rng = np.random.default_rng(0)
    stream = np.concatenate([rng.normal(0, 1, 20_000), rng.normal(0.5, 1, 5_000)])
    found = NumericMonitor(MonitorSettings(false_alarm_budget=BUDGET)).update(stream)
    by_detector = {d.detector: d for d in found}
    assert set(by_detector) == {"page_hinkley", "adwin", "ks", "histogram"}
    assert found[0].detector == "page_hinkley" and found[0].index < 20_300
    assert all(d.direction == "up" for d in found if d.detector != "histogram")
    assert all(20_000 <= d.index < 21_000 for d in found)
    assert len(found) == 4  # one change, one alert per detector


STATIONARY = {
    "gaussian": lambda rng, n: rng.normal(0, 1, n),
    "log-normal": lambda rng, n: rng.lognormal(0, 1, n),
    "integer-ties": lambda rng, n: rng.poisson(3, n).astype(np.float64),
    "bimodal": lambda rng, n: np.where(rng.random(n) < 0.5, rng.normal(-2, 1, n), rng.normal(2, 1, n)),
}


@pytest.mark.parametrize("shape", STATIONARY)
def test_numeric_monitor_quiet_on_long_stationary_stream(shape):
    rng = np.random.default_rng(1)
    x = STATIONARY[shape](rng, 300_000)
    x[rng.random(x.size) < 0.05] = np.nan
    monitor = NumericMonitor(MonitorSettings(false_alarm_budget=BUDGET))
    assert summary(monitor.update(x)) == []
    assert monitor.calibrations == 1


@pytest.mark.parametrize("field, value", [
    ("window", 5), ("window", 2.5), ("reference_size", 10), ("rearm_size", 0), ("evaluate_every", 0),
    ("evaluate_every", 5000), ("false_alarm_budget", 10), ("false_alarm_budget", float("inf")), ("shift", 0),
    ("bins", 1), ("adwin_block", 0), ("adwin_clock", 0), ("max_categories", 0), ("missing_min_change", 0),
    ("categorical_window", 10), ("sliding_reference", "yes"), ("detectors", ("bogus",)),
])
def test_bad_settings_rejected_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^{re.escape(field)}"):
        MonitorSettings(**{field: value})


def test_settings_from_dict_names_unknown_fields():
    with pytest.raises(ValueError, match="windw"):
        MonitorSettings.from_dict({"windw": 100})
    custom = MonitorSettings(window=600, detectors=("ks", "adwin"), sliding_reference=True)
    assert MonitorSettings.from_dict(custom.to_dict()) == custom


def test_bad_references_and_values_rejected():
    with pytest.raises(ValueError, match="infinite"):
        NumericMonitor(reference=np.array([0.0, np.inf]))
    with pytest.raises(ValueError, match="no non-missing"):
        NumericMonitor(reference=np.array([np.nan, np.nan]))
    with pytest.raises(ValueError, match="positive count"):
        CategoricalMonitor(reference={"a": 0, None: 10})
    with pytest.raises(ValueError, match="string or a boolean, got int"):
        CategoricalMonitor().update(["a", 3])


# -- NaN is missing, infinity is refused --------------------------------------------------------
def test_nan_is_missing_and_never_reaches_the_numeric_detectors():
    rng = np.random.default_rng(5)
    clean = np.concatenate([rng.normal(0, 1, 8000), rng.normal(0.6, 1, 3000), rng.normal(0, 2, 4000)])
    holey = np.full(2 * clean.size, np.nan)
    kept = np.sort(rng.choice(holey.size, clean.size, replace=False))  # 50% NaN, at random places
    holey[kept] = clean
    s = MonitorSettings(detectors=("adwin", "page_hinkley", "ks", "histogram"), false_alarm_budget=BUDGET)
    a, b = NumericMonitor(s), NumericMonitor(s)
    expected = [(d.detector, d.direction, int(kept[d.index])) for d in a.update(clean)]
    got = summary(b.update(holey))
    assert len(expected) >= 3
    assert got == expected
    assert not np.isnan(b.reference.values).any()
    assert not np.isnan(b.recent_values.items()).any()
    assert b.reference_missing > 0


def test_nan_goes_to_the_missing_rate():
    rng = np.random.default_rng(6)
    x = rng.normal(0, 1, 15_000)
    x[10_000:][rng.random(5000) < 0.3] = np.nan
    found = NumericMonitor(MonitorSettings(false_alarm_budget=BUDGET)).update(x)
    assert summary(found)[:1] == [("missing_rate", "up", found[0].index)]
    assert 10_000 <= found[0].index < 10_100
    assert found[0].kind == "missing_rate"


@pytest.mark.parametrize("stage", [100, 6000])  # during the warm-up, and while watching
@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_infinity_rejected_naming_position_and_state_unchanged(stage, bad):
    rng = np.random.default_rng(7)
    monitor = NumericMonitor(MonitorSettings(false_alarm_budget=BUDGET))
    monitor.update(rng.normal(0, 1, stage))
    before = encode_monitor(monitor)
    with pytest.raises(ValueError, match=r"position 3\b"):
        monitor.update([0.1, np.nan, 2.0, bad, 1.0])
    assert encode_monitor(monitor) == before
    assert monitor.seen == stage


def test_bad_categorical_value_leaves_state_unchanged():
    monitor = CategoricalMonitor(MonitorSettings(reference_size=50))
    monitor.update(["a", "b"] * 40)
    before = encode_monitor(monitor)
    with pytest.raises(ValueError):
        monitor.update(["a", None, 1.5])
    assert encode_monitor(monitor) == before


# -- supplied references ------------------------------------------------------------------------
def test_numeric_supplied_reference_catches_a_shift_from_the_first_values():
    rng = np.random.default_rng(8)
    monitor = NumericMonitor(MonitorSettings(false_alarm_budget=BUDGET), reference=rng.normal(0, 1, 5000))
    assert monitor.fitted and not monitor.collecting
    found = monitor.update(rng.normal(0.5, 1, 5000))
    assert found and found[0].detector == "page_hinkley" and found[0].direction == "up"
    assert found[0].index < 300


def test_numeric_supplied_reference_with_missing_values_sets_the_missing_rate():
    rng = np.random.default_rng(9)
    ref = rng.normal(0, 1, 5000)
    ref[rng.random(5000) < 0.2] = np.nan
    monitor = NumericMonitor(MonitorSettings(false_alarm_budget=BUDGET), reference=ref)
    assert monitor.reference.size == int((~np.isnan(ref)).sum())
    x = rng.normal(0, 1, 20_000)
    x[rng.random(x.size) < 0.2] = np.nan
    assert summary(monitor.update(x)) == []


# -- categorical monitor -----------------------------------------------------------------------
SHARES = [0.3, 0.25, 0.2, 0.15, 0.1]
FIVE = np.array(list("abcde"), dtype=object)


def test_categorical_monitor_detects_share_change():
    rng = np.random.default_rng(4)
    before = rng.choice(FIVE, 20_000, p=SHARES)
    after = rng.choice(FIVE, 5_000, p=[0.4, 0.2, 0.15, 0.15, 0.1])
    monitor = CategoricalMonitor(MonitorSettings(false_alarm_budget=BUDGET))
    found = monitor.update(np.concatenate([before, after]).tolist())
    assert [(d.detector, d.direction) for d in found] == [("categorical", None)]
    assert 20_000 <= found[0].index < 22_500
    assert found[0].effect["most_changed"]["category"] == "a"


def test_categorical_monitor_detects_missing_rate_rise():
    rng = np.random.default_rng(5)
    x = rng.choice(FIVE, 15_000, p=SHARES)
    x[10_000:][rng.random(5000) < 0.3] = None
    found = CategoricalMonitor(MonitorSettings(false_alarm_budget=BUDGET)).update(x.tolist())
    assert found and (found[0].detector, found[0].direction) == ("missing_rate", "up")
    assert 10_000 <= found[0].index < 10_100


def test_categorical_monitor_quiet_on_long_stationary_stream():
    rng = np.random.default_rng(1)
    x = rng.choice(FIVE, 200_000, p=SHARES)
    x[rng.random(x.size) < 0.05] = None
    monitor = CategoricalMonitor(MonitorSettings(false_alarm_budget=BUDGET))
    assert summary(monitor.update(x.tolist())) == []


def test_new_frequent_category_is_detected_as_unseen():
    rng = np.random.default_rng(6)
    before = rng.choice(FIVE, 10_000, p=SHARES)
    after = rng.choice(np.append(FIVE, "new"), 5_000, p=[0.25, 0.2, 0.2, 0.15, 0.1, 0.1])
    monitor = CategoricalMonitor(MonitorSettings(false_alarm_budget=BUDGET))
    found = monitor.update(np.concatenate([before, after]).tolist())
    assert found and found[0].detector == "categorical"
    assert 10_000 <= found[0].index < 12_500
    assert found[0].effect["most_changed"]["category"] == UNSEEN


def test_rare_new_values_are_not_an_alarm():
    """5% of the values are ids never seen before (request ids, free text): stationary, no alarm.
    The module docstring promises exactly this for the Good-Turing unseen cell."""
    rng = np.random.default_rng(7)
    x = rng.choice(FIVE, 60_000, p=SHARES)
    fresh = rng.random(x.size) < 0.05
    x[fresh] = [f"id-{i}" for i in range(int(fresh.sum()))]
    found = CategoricalMonitor(MonitorSettings(false_alarm_budget=BUDGET)).update(x.tolist())
    assert [(d.index, d.effect["most_changed"]["category"]) for d in found] == []


def test_more_categories_than_max_categories_are_pooled_as_other():
    rng = np.random.default_rng(8)
    names = np.array([f"c{i:03d}" for i in range(30)], dtype=object)
    monitor = CategoricalMonitor(MonitorSettings(max_categories=10, reference_size=5000, false_alarm_budget=BUDGET))
    monitor.update(rng.choice(names, 5000).tolist())
    assert len(monitor.names) == 12 and monitor.names[-2:] == [OTHER, UNSEEN]
    kept = set(monitor.names[:10])
    pooled = [c for c in names if c not in kept]
    assert {monitor.codebook[c] for c in pooled} == {10}
    # Mass moving from the named categories into the pooled ones is a change of the "other" share.
    p = np.array([0.5 / 10 if c in kept else 0.5 / 20 for c in names])
    found = monitor.update(rng.choice(names, 5000, p=p).tolist())
    assert found and found[0].effect["most_changed"]["category"] == OTHER
    assert 5000 <= found[0].index < 7500


def test_stationary_feature_with_more_categories_than_max_categories_is_quiet():
    """200 equally likely categories, 50 kept by name: nothing changes, nothing may fire."""
    rng = np.random.default_rng(0)
    names = np.array([f"u{i:03d}" for i in range(200)], dtype=object)
    found = CategoricalMonitor(MonitorSettings(false_alarm_budget=BUDGET)).update(rng.choice(names, 200_000).tolist())
    assert [(d.index, d.effect["most_changed"]["category"]) for d in found] == []


def test_booleans_are_categories():
    rng = np.random.default_rng(10)
    x = np.concatenate([rng.random(10_000) < 0.5, rng.random(5_000) < 0.6])
    monitor = CategoricalMonitor(MonitorSettings(false_alarm_budget=BUDGET))
    found = monitor.update(x.tolist())  # Python bools
    assert set(monitor.names[:2]) == {"true", "false"}
    assert found and found[0].detector == "categorical" and 10_000 <= found[0].index < 13_000
    assert found[0].effect["most_changed"]["category"] in {"true", "false"}


def test_numpy_booleans_are_the_same_categories_as_python_booleans():
    rng = np.random.default_rng(10)
    x = np.concatenate([rng.random(10_000) < 0.5, rng.random(5_000) < 0.6])
    expected = summary(CategoricalMonitor(MonitorSettings(false_alarm_budget=BUDGET)).update(x.tolist()))
    assert summary(CategoricalMonitor(MonitorSettings(false_alarm_budget=BUDGET)).update(x)) == expected


def test_frequency_table_reference():
    table = {"a": 3000, "b": 4000, "c": 3000, None: 500}
    monitor = CategoricalMonitor(MonitorSettings(false_alarm_budget=BUDGET), reference=table)
    assert monitor.fitted and monitor.calibrations == 1
    assert monitor.reference_missing == 500 and monitor.reference_total == 10_500
    rng = np.random.default_rng(11)
    same = rng.choice(np.array(["a", "b", "c"], dtype=object), 20_000, p=[0.3, 0.4, 0.3])
    same[rng.random(same.size) < 500 / 10_500] = None
    assert summary(monitor.update(same.tolist())) == []
    # A shift from the very first value is caught as soon as the first window is full.
    fresh = CategoricalMonitor(MonitorSettings(false_alarm_budget=BUDGET), reference=table)
    moved = rng.choice(np.array(["a", "b", "c"], dtype=object), 5000, p=[0.45, 0.3, 0.25])
    moved[rng.random(moved.size) < 500 / 10_500] = None
    found = fresh.update(moved.tolist())
    assert found and found[0].detector == "categorical"
    assert found[0].index < fresh.settings.categorical_window + 1000


def test_boolean_frequency_table_reference():
    monitor = CategoricalMonitor(MonitorSettings(false_alarm_budget=BUDGET), reference={True: 500, False: 500})
    assert set(monitor.names[:2]) == {"true", "false"}
    found = monitor.update((np.random.default_rng(12).random(6000) < 0.6).tolist())
    assert found and found[0].effect["most_changed"]["category"] in {"true", "false"}


# -- missing rate after a re-arm ----------------------------------------------------------------
@pytest.mark.parametrize("settings_", [
    MonitorSettings(false_alarm_budget=BUDGET),
    MonitorSettings(false_alarm_budget=BUDGET, reference_size=1000),
], ids=["after-rearm", "reference-1000"])
def test_missing_rate_rise_caught_at_a_low_base_rate(settings_):
    """A 1.5% missing rate jumping to 20% must alarm, also when the current reference is 1000 values
    (a re-arm at the default rearm_size, or a reference_size of 1000)."""
    rng = np.random.default_rng(3)
    if settings_.reference_size == 1000:
        x = rng.normal(0, 1, 30_000)
    else:  # a mean shift at 10k re-arms every detector on a 1000-value reference
        x = np.concatenate([rng.normal(0, 1, 10_000), rng.normal(1, 1, 20_000)])
    rate = np.where(np.arange(x.size) < 20_000, 0.015, 0.20)
    x[rng.random(x.size) < rate] = np.nan
    found = NumericMonitor(settings_).update(x)
    missing = [d for d in found if d.detector == "missing_rate"]
    assert missing and missing[0].direction == "up" and 20_000 <= missing[0].index < 20_500


def test_categorical_alert_reference_summary_counts_only_what_was_seen():
    rng = np.random.default_rng(0)
    monitor = CategoricalMonitor(MonitorSettings(reference_size=1000))
    share_b = np.where(np.arange(6000) < 3000, 0.3, 0.6)
    values = np.where(rng.random(6000) < share_b, "b", "a").astype(object)
    detection = monitor.update(values)[0]
    assert detection.reference["n"] == 1000, detection.reference
    assert set(detection.reference["top"]) == {"a", "b"}, detection.reference
    assert abs(sum(detection.reference["top"].values()) - 1.0) < 1e-9
