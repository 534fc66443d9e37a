"""The multivariate monitor in the pipeline: alerts, batching, checkpoints, references, retrain."""

from __future__ import annotations

import csv

import numpy as np
import orjson
import pytest

from streamdrift.config import Config, from_mapping
from streamdrift.events import Record
from streamdrift.model_monitors import JOINT
from streamdrift.pipeline import DriftPipeline, packed
from streamdrift.references import load_references

SETTINGS = {"reference_size": 2000, "rearm_size": 1000, "block": 100}
CONFIG = from_mapping({"multivariate": {"models": ["fraud-*"], **SETTINGS}})


def feature_events(start: int, n: int, correlation: float = 0.0, model: str = "fraud-v3", seed: int = 1,
                   categorical: bool = True) -> list[dict]:
    rng = np.random.default_rng(seed + start)
    out = []
    for i in range(start, start + n):
        x = rng.normal(size=4)
        x[1] = correlation * x[0] + np.sqrt(1 - correlation ** 2) * x[1]
        features = {f"x{k}": round(float(x[k]), 6) for k in range(4)}
        if categorical:
            features["country"] = "DE" if rng.random() < 0.7 else "FR"
        out.append({"model": model, "ts": 1e9 + i, "features": features})
    return out


def as_records(events: list[dict], start: int = 0) -> list[Record]:
    return [Record(orjson.dumps(e), e["model"].encode(), "features", 0, start + i) for i, e in enumerate(events)]


STREAM = as_records(feature_events(0, 4000) + feature_events(4000, 4000, correlation=0.8))


def run(pipeline: DriftPipeline, records: list[Record], size: int) -> list[dict]:
    alerts = []
    for k in range(0, len(records), size):
        alerts.extend(pipeline.process(records[k:k + size]).alerts)
    return alerts


def test_only_a_changed_correlation_raises_one_multivariate_alert_and_no_other():
    alerts = run(DriftPipeline(CONFIG), STREAM, 1000)
    assert [(a["kind"], a["feature"], a["detector"]) for a in alerts] == [
        ("multivariate", "*", "multivariate_covariance")]
    [alert] = alerts
    assert 4000 <= alert["index"] < 5500 and alert["detected_at"]["offset"] == alert["index"]
    assert {e["feature"] for e in alert["explained_by"][:2]} == {"x0", "x1"}
    assert alert["effect"]["pairs"][0]["features"] == ["x0", "x1"]
    assert alert["alert_id"].startswith("a-") and alert["config_version"] == CONFIG.version


def test_models_not_named_are_not_watched_jointly_and_the_default_is_off():
    assert run(DriftPipeline(Config()), STREAM, 1000) == []
    pipeline = DriftPipeline(from_mapping({"multivariate": {"models": ["churn-*"], **SETTINGS}}))
    assert run(pipeline, STREAM, 1000) == [] and pipeline.models[("fraud-v3", None)].joint is None
    assert Config().version == from_mapping({"multivariate": {"models": []}}).version


PLAIN = as_records(feature_events(0, 4000, categorical=False) +
                   feature_events(4000, 4000, correlation=0.8, categorical=False))


@pytest.mark.parametrize("size", [333, 8000])
def test_batches_change_nothing(size):
    """The general path (a categorical feature) and the plain path (numbers only) alike."""
    assert run(DriftPipeline(CONFIG), STREAM, size) == run(DriftPipeline(CONFIG), STREAM, 1000) != []
    assert run(DriftPipeline(CONFIG), PLAIN, size) == run(DriftPipeline(CONFIG), PLAIN, 8000) != []


@pytest.mark.parametrize("records", [STREAM, PLAIN], ids=["general", "plain"])
def test_one_event_at_a_time_changes_nothing(records):
    """Through the alert: warmed up in one batch, then the changed part one event per batch."""
    whole, single = DriftPipeline(CONFIG), DriftPipeline(CONFIG)
    expected = run(whole, records, 8000)
    found = run(single, records[:4000], 4000) + run(single, records[4000:4600], 1)
    assert found == expected and len(found) == 1


def test_rejected_events_are_not_watched():
    events = feature_events(0, 4000) + feature_events(4000, 4000, correlation=0.8)
    for i in range(50, 8000, 97):
        events[i]["features"]["x2"] = "twelve"  # rejected: x2 is numeric
    records = as_records(events)
    clean = [r for i, r in enumerate(records) if i < 50 or (i - 50) % 97]
    found = run(DriftPipeline(CONFIG), records, 700)
    assert [a["alert_id"] for a in found] != [] and \
        [a["index"] for a in found] == [a["index"] for a in run(DriftPipeline(CONFIG), clean, 700)]


@pytest.mark.parametrize("cut", [1500, 4100, 6000])
def test_a_restore_from_a_checkpoint_continues_exactly(cut):
    """Checkpoint at ``cut``, restore, and replay from an earlier offset (a crash before the
    offset commit): the alerts are those of a run that never stopped."""
    expected = run(DriftPipeline(CONFIG), STREAM, 500)
    first = DriftPipeline(CONFIG)
    before = run(first, STREAM[:cut], 500)
    topic = {key: packed(value) for key, value in first.checkpoint(deferred=True)}
    assert any(key.endswith("\x1fmultivariate\x1f*") for key in topic)
    assert any("\x1fmultivariate\x1f*\x1f__reference__" in key for key in topic) == (cut >= 2000)
    second = DriftPipeline(CONFIG)
    assert second.restore(list(topic.items())) >= 1
    after = run(second, STREAM[cut - 300:], 500)
    assert before + after == expected


def test_the_reference_file_feeds_it(tmp_path):
    path = tmp_path / "train.csv"
    rows = feature_events(0, 3000, seed=9)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["x0", "x1", "x2", "x3", "country"])
        writer.writeheader()
        writer.writerows(r["features"] for r in rows)
    references = load_references(str(path))
    pipeline = DriftPipeline(CONFIG, references)
    group_rows = references["*"]["multivariate:rows"]
    assert sorted(group_rows) == ["country", "x0", "x1", "x2", "x3"] and len(group_rows["x0"]) == 3000
    alerts = run(pipeline, as_records(feature_events(0, 3000, correlation=0.8, seed=10)), 1000)
    assert [a["detector"] for a in alerts] == ["multivariate_covariance"] and alerts[0]["index"] < 1500
    assert pipeline.models[("fraud-v3", None)].joint.calibrations >= 1


def test_retrain_requests_rank_multivariate_evidence_with_the_rest():
    config = from_mapping({"multivariate": {"models": ["*"], **SETTINGS}, "retrain": {"min_features": 1}})
    pipeline = DriftPipeline(config)
    requests = []
    for k in range(0, len(STREAM), 1000):
        requests.extend(pipeline.process(STREAM[k:k + 1000]).retrain_requests)
    [request] = requests
    assert request["drifted"][0]["feature"] == "*" and request["drifted"][0]["kind"] == "multivariate"


def test_the_monitor_is_counted_in_state_keys_and_resaved_after_a_failed_checkpoint():
    pipeline = DriftPipeline(CONFIG)
    run(pipeline, STREAM[:2500], 2500)
    group = pipeline.models[("fraud-v3", None)]
    assert any(key.endswith("\x1fmultivariate\x1f*") for key in group.state_keys())
    assert any(key.endswith("\x1fmultivariate\x1f*") for key, _ in pipeline.checkpoint())
    assert not any("multivariate" in key for key, _ in pipeline.checkpoint())  # nothing changed
    pipeline.resave_all()
    assert JOINT in group.dirty
    keys = [key for key, _ in pipeline.checkpoint()]
    assert sum("multivariate" in key for key in keys) == 2  # the monitor and its reference
