"""The opt-in error-stream detectors ddm and hddm_a (river's DDM and HDDMA) inside a numeric
monitor: where they fire, that they stay quiet, that they refuse what is not a 0/1 stream, that
their explicit state restores mid-stream, and that the pipeline runs them on ``concept:error``."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from river.drift import binary as river_binary

from streamdrift.config import ConfigError, from_mapping
from streamdrift.detectors import MonitorSettings, NumericMonitor, decode_monitor, encode_monitor
from streamdrift.detectors.binary import DDM, HDDM_A
from streamdrift.detectors.settings import BINARY_DETECTORS
from streamdrift.events import Record
from streamdrift.pipeline import DriftPipeline

BINARY = pytest.mark.parametrize("name", BINARY_DETECTORS)
#: Most false alarms either raised on one 200,000-value stationary Bernoulli(0.1) run in
#: scripts/bench_binary.py (20 seeded runs: ddm 1 alarm in total, hddm_a 2, never 2 in one run).
MEASURED_MAX_FALSE_ALARMS = 1


def errors(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    return (rng.random(n) < rate).astype(np.float64)


def rise(seed: int = 1, switch: int = 10_000, after: int = 10_000) -> np.ndarray:
    """Error rate 0.1, then 0.3 from ``switch`` on."""
    rng = np.random.default_rng(seed)
    return np.concatenate([errors(rng, switch, 0.1), errors(rng, after, 0.3)])


def monitor(*names: str, **settings) -> NumericMonitor:
    return NumericMonitor(MonitorSettings(detectors=names, **settings))


def feed(m: NumericMonitor, stream: np.ndarray, sizes=(1000,)) -> list[dict]:
    out, i, k = [], 0, 0
    while i < stream.size:
        size = sizes[k % len(sizes)]
        out.extend(d.to_dict() for d in m.update(stream[i:i + size]))
        i, k = i + size, k + 1
    return out


# -- detection -----------------------------------------------------------------------------
@BINARY
def test_detects_an_error_rate_rise_once_and_rearms_on_the_new_rate(name):
    m = monitor(name)
    found = m.update(rise(after=3_000))
    d = found[0]
    assert d.detector == name and d.kind == "feature" and d.direction == "up" and d.p_value is None
    # scripts/bench_binary.py: 0.1 -> 0.3 at 10,000 caught within 2,525 values (ddm) and 205 (hddm_a).
    assert 10_000 <= d.index < 13_000
    assert d.statistic >= d.threshold > 0
    assert d.window["mean"] > d.reference["mean"]
    rearmed_at = d.index + m.settings.rearm_size
    assert [x.index for x in found if x.index <= rearmed_at] == [d.index], "muted until the new reference"
    assert m.calibrations == 2 and not m.muted, "re-armed on the 0.3 regime"
    again = m.update(errors(np.random.default_rng(11), 5_000, 0.6))
    assert again and again[0].detector == name and 13_000 <= again[0].index < 15_000, \
        "re-armed on the new reference: the next rise is caught again"


@BINARY
def test_monitor_reports_what_river_reports_on_the_same_values(name):
    """Primed on the reference, the wrapped detector is river's detector fed the same values:
    the monitor's first detection is river's first drift after the reference."""
    stream = rise(seed=5)
    river = river_binary.DDM() if name == "ddm" else river_binary.HDDMA()
    first = None
    for i, x in enumerate(stream.tolist()):
        river.update(x)
        if river.drift_detected and i >= 5000:
            first = i
            break
    assert monitor(name).update(stream)[0].index == first


@BINARY
def test_quiet_on_a_long_stationary_error_stream(name):
    stream = errors(np.random.default_rng(2024), 200_000, 0.1)
    assert len(monitor(name).update(stream)) <= MEASURED_MAX_FALSE_ALARMS


@BINARY
def test_batches_and_single_values_give_identical_detections(name):
    stream = rise(seed=7, switch=8_000, after=4_000)
    whole = feed(monitor(name, "adwin"), stream, sizes=(stream.size,))
    pieces = feed(monitor(name, "adwin"), stream, sizes=(1, 7, 333, 2, 1024))
    assert whole == pieces and {d["detector"] for d in whole} == {name, "adwin"}


def test_opt_in_only():
    assert not set(BINARY_DETECTORS) & set(MonitorSettings().detectors_for(True))
    assert MonitorSettings(detectors=("adwin", "ddm")).detectors_for(True) == ("adwin", "ddm")
    assert not NumericMonitor().binary


# -- what they refuse -----------------------------------------------------------------------
@BINARY
def test_a_stream_that_is_not_0_1_is_refused_naming_the_detector(name):
    m = monitor("adwin", name, reference_size=100)
    with pytest.raises(ValueError, match=rf"position 3 is 2\.5, but detector {name} watches 0/1 error streams"):
        m.update(np.array([0.0, 1.0, np.nan, 2.5]))
    assert m.seen == 0, "a refused batch leaves the monitor as it was"
    m.update(errors(np.random.default_rng(0), 150, 0.2))  # reference complete, watching
    before = encode_monitor(m)
    with pytest.raises(ValueError, match=name):
        m.update(np.array([0.0, 0.5]))
    assert encode_monitor(m) == before
    with pytest.raises(ValueError, match=name):
        monitor(name).set_reference(np.array([0.0, 1.0, 3.0]))
    # The same absolute errors are fine for the default detectors.
    assert monitor("adwin", reference_size=100).update(np.abs(np.random.default_rng(0).normal(size=200))) == []


@pytest.mark.parametrize("settings, named", [
    ({"ddm_drift_threshold": 0}, "ddm_drift_threshold must be a number > 0"),
    ({"ddm_drift_threshold": float("inf")}, "ddm_drift_threshold"),
    ({"ddm_warm_start": 2.5}, "ddm_warm_start must be an integer >= 1"),
    ({"hddm_a_drift_confidence": 0.9}, "hddm_a_drift_confidence must be a number > 0 and <= 0.5"),
    ({"detectors": ("hddm",)}, "detectors: unknown detector 'hddm'; allowed: .*ddm.*hddm_a"),
])
def test_bad_settings_are_rejected_naming_the_setting(settings, named):
    with pytest.raises(ValueError, match=named):
        MonitorSettings(**settings)


def test_bad_settings_in_a_concept_error_rule_stop_the_config():
    with pytest.raises(ConfigError, match=r"features\[0\] \(concept:error\)\] hddm_a_drift_confidence must be"):
        from_mapping({"features": [{"pattern": "concept:error", "detectors": ["hddm_a"],
                                    "hddm_a_drift_confidence": 0}]})


# -- state ----------------------------------------------------------------------------------
@BINARY
@pytest.mark.parametrize("phase", ["warm-up", "watching", "at the detection", "muted, collecting", "re-armed"])
def test_restored_mid_stream_gives_identical_detections(name, phase):
    stream = rise(seed=9)
    uninterrupted = feed(monitor(name, "adwin"), stream, sizes=(997,))
    first = min(d["index"] for d in uninterrupted if d["detector"] == name)
    cut = {"warm-up": 3_000, "watching": 9_000, "at the detection": first + 1, "muted, collecting": first + 300,
           "re-armed": first + 1_500}[phase]
    m = monitor(name, "adwin")
    before = feed(m, stream[:cut], sizes=(997,))
    assert (name in m.muted) == (phase == "muted, collecting" or phase == "at the detection")
    blob = encode_monitor(m)
    assert blob[:4] == b"SDST"  # the explicit encoding (detectors/state.py), never pickle
    restored = decode_monitor(blob)
    after = feed(restored, stream[cut:], sizes=(997,))
    assert before + after == uninterrupted


@pytest.mark.parametrize("make", [DDM, HDDM_A])
def test_state_is_river_internals_as_plain_numbers_and_restores_them(make):
    rng = np.random.default_rng(4)
    a = make()
    a.fit(errors(rng, 2000, 0.1))
    a.update(errors(rng, 777, 0.12))
    state = orjson.loads(orjson.dumps(a.get_state()))  # what the encoding can hold: JSON numbers
    b = make()
    b.set_state(state)
    for attribute in a.river_attributes:
        x, y = getattr(a.detector, attribute), getattr(b.detector, attribute)
        if hasattr(x, "n"):
            assert (x.n, x.get()) == (y.n, y.get()), attribute
        else:
            assert x == y, attribute
    tail = errors(rng, 5000, 0.3)
    assert a.update(tail) == b.update(tail)


def test_a_fresh_ddm_state_restores_unset_minimums():
    """River marks DDM's minimums as unset with None or infinity; JSON holds neither as such."""
    state = orjson.loads(orjson.dumps(DDM().get_state()))
    assert state["ps_min"] is None
    restored = DDM()
    restored.set_state(state)
    assert restored.detector._ps_min == float("inf")
    stream = rise(seed=2, switch=3_000, after=3_000)
    fresh = DDM()
    fresh.fit(np.zeros(0))  # primed on nothing: the state a new detector starts from
    assert restored.update(stream) == fresh.update(stream) != []


# -- through the pipeline --------------------------------------------------------------------
def test_concept_error_rule_selects_them_in_the_pipeline():
    config = from_mapping({"features": [{"pattern": "concept:error", "detectors": ["adwin", "ddm", "hddm_a"]}]})
    pipeline = DriftPipeline(config)
    rng = np.random.default_rng(1)
    wrong = np.concatenate([rng.random(12_000) < 0.1, rng.random(6_000) < 0.3])
    events = []
    for i, w in enumerate(wrong):
        label = int(rng.random() < 0.5)
        events.append({"model": "m", "id": f"e{i}", "ts": 1e9 + i, "features": {"x": float(label)},
                       "prediction": float(label != w), "label": label})
    records = [Record(orjson.dumps(e), b"m", "features", 0, i) for i, e in enumerate(events)]
    alerts = [a for k in range(0, len(records), 2000) for a in pipeline.process(records[k:k + 2000]).alerts]
    concept = {a["detector"]: a for a in alerts if a["kind"] == "concept"}
    assert {"ddm", "hddm_a"} <= set(concept)
    for a in (concept["ddm"], concept["hddm_a"]):
        assert 12_000 <= a["index"] < 15_000 and a["direction"] == "up" and a["p_value"] is None
        assert a["effect"]["error_after"] > a["effect"]["error_before"]
