"""The effect-size floor (``min_effect``): detections too small to matter are counted, not published."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from streamdrift.config import Config, ConfigError, from_mapping
from streamdrift.detectors import Detection
from streamdrift.detectors.settings import MonitorSettings
from streamdrift.events import Record
from streamdrift.pipeline import DriftPipeline

#: The warm-up reference, a quiet stretch (so that ADWIN's own window sees the change), the shift.
REFERENCE, QUIET, DRIFTED = 5000, 10_000, 30_000


def shifted_events(shift_sd: float, features=("amount",), seed: int = 3) -> list[dict]:
    """N(0, 1) values: a 5,000-value reference and 10,000 more, then 30,000 whose mean moved by
    ``shift_sd`` (in the reference's sd)."""
    rng = np.random.default_rng(seed)
    n = REFERENCE + QUIET + DRIFTED
    step = np.r_[np.zeros(REFERENCE + QUIET), np.full(DRIFTED, shift_sd)]
    columns = {name: rng.normal(0.0, 1.0, n) + step for name in features}
    return [{"model": "m", "ts": 1e9 + i, "features": {name: float(columns[name][i]) for name in features}}
            for i in range(n)]


def run(events: list[dict], config: Config, batch: int = 10_000):
    pipeline = DriftPipeline(config)
    records = [Record(orjson.dumps(e), b"m", "features", 0, i) for i, e in enumerate(events)]
    outs = [pipeline.process(records[i:i + batch]) for i in range(0, len(records), batch)]
    alerts = [a for out in outs for a in out.alerts]
    below = [a for out in outs for a in out.below_effect_floor]
    requests = [r for out in outs for r in out.retrain_requests]
    return alerts, below, requests


def floor(value: float, **rule) -> Config:
    data = {"detectors": {"min_effect": value}}
    if rule:
        data = {"features": [rule]}
    return from_mapping(data)


@pytest.fixture(scope="module")
def small_shift():
    return shifted_events(0.1)


def test_a_small_shift_is_alerted_without_a_floor(small_shift):
    alerts, below, _ = run(small_shift, Config())
    assert alerts, "a +0.1 sd shift over 30,000 values should be caught with the default settings"
    assert all(a["feature"] == "amount" and a["index"] >= REFERENCE + QUIET for a in alerts), alerts
    assert below == []


def test_a_small_shift_is_silent_but_counted_with_a_floor(small_shift):
    alerts, below, requests = run(small_shift, floor(0.2))
    assert alerts == [] and requests == []
    assert below, "the detections below the floor should be counted"
    assert all(a["min_effect"] == 0.2 and a["effect_size"] < 0.2 for a in below), below
    assert {a["detector"] for a in below} <= {"adwin", "page_hinkley", "ks", "histogram"}


def test_a_large_shift_is_still_alerted_with_the_floor():
    alerts, below, _ = run(shifted_events(0.5), floor(0.2))
    assert alerts, "a +0.5 sd shift is above a 0.2 floor"
    assert all(abs(a["effect"]["mean_shift_sd"]) >= 0.2 for a in alerts), alerts


def test_a_features_rule_sets_the_floor_of_its_features_only():
    events = shifted_events(0.1, features=("amount", "age"))
    alerts, below, _ = run(events, floor(0.2, pattern="amount*", min_effect=0.2))
    assert {a["feature"] for a in alerts} == {"age"}
    assert below and {a["feature"] for a in below} == {"amount"}


def test_the_floor_is_validated_by_name():
    with pytest.raises(ConfigError, match="min_effect must be a number >= 0 and <= 100, got -0.1"):
        from_mapping({"detectors": {"min_effect": -0.1}})
    with pytest.raises(ConfigError, match=r"\[features.*min_effect"):
        from_mapping({"features": [{"pattern": "x", "min_effect": "big"}]})


def test_off_by_default_leaves_versions_and_state_settings_as_before():
    assert "min_effect" not in MonitorSettings().to_dict()
    assert Config().version == from_mapping({"detectors": {"min_effect": 0}}).version
    assert Config().version != floor(0.2).version
    assert MonitorSettings.from_dict(MonitorSettings(min_effect=0.3).to_dict()).min_effect == 0.3


@pytest.mark.parametrize("detection, size", [
    (Detection("missing_rate", "missing_rate", 0, 1.0, 1.0, None, "up", "warning",
               reference={"missing_rate": 0.01}, window={"missing_rate": 0.04}), 0.03),
    (Detection("categorical", "feature", 0, 1.0, 1.0, 0.0, None, "warning",
               effect={"psi": 0.15, "jensen_shannon": 0.2}), 0.15),
    (Detection("ks", "feature", 0, 1.0, 1.0, 0.0, "down", "warning", effect={"psi": 0.3, "mean_shift_sd": -0.4}), 0.4),
    (Detection("ks", "feature", 0, 1.0, 1.0, 0.0, "up", "warning", effect={"psi": 0.3}), float("inf")),
    (Detection("multivariate_mean", "multivariate", 0, 1.0, 1.0, None, None, "warning"), None),
])
def test_effect_size_per_kind(detection, size):
    got = detection.effect_size()
    assert got == size if size is None or size == float("inf") else got == pytest.approx(size)


def test_the_report_counts_and_lists_what_the_floor_held_back(tmp_path, small_shift):
    from streamdrift.report import ReplayCounts, render_report

    _, below, _ = run(small_shift, floor(0.2))
    path = tmp_path / "report.html"
    render_report(path, [], [], [], "floor", ReplayCounts(len(small_shift), len(small_shift), 0),
                  below_effect_floor=below)
    text = path.read_text()
    assert "below effect floor" in text and "<code>min_effect</code>" in text
    assert text.count("<td>amount</td>") == len(below)
