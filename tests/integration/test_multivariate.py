"""A changed correlation through the broker: the multivariate alert, and no univariate one (issue 15).

A real ``streamdrift run`` worker with ``[multivariate] models = ["fraud-*"]`` reads two models'
events. In both, four N(0, 1) features; from event CHANGE on, x1 = 0.8 x0 + 0.6 x1, so the
correlation of x0 and x1 goes from 0 to 0.8 while every marginal stays N(0, 1). Only the model the
glob names is watched jointly, so only it should get an alert, and only a multivariate one.
Each event's ``ts`` is ``T0 + its position``, and the two keys land on different partitions, so
an alert's ``detected_at.offset`` is the position of the event that triggered it.
"""

from __future__ import annotations

import warnings

import numpy as np
import orjson

from streamdrift.config import load
from streamdrift.events import Record
from streamdrift.pipeline import DriftPipeline
from streamdrift.stream.topics import ensure_topics_sync

from .workers import WorkerProcess, config_text, consume_all, produce

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.partitioner.default import murmur2

#: The univariate detectors calibrate on 1000 events, so they watch the changed part for 7000
#: events each (a "no univariate alert" that means something); the multivariate monitor as in
#: tests/unit/test_multivariate_pipeline.py.
SETTINGS = """
[detectors]
reference_size = 1000
[multivariate]
models = ["fraud-*"]
reference_size = 2000
rearm_size = 1000
block = 100
"""
#: Events per model, and the position of the first event with the changed correlation.
N, CHANGE = 8000, 4000
T0 = 1_000_000_000.0
WATCHED, NOT_WATCHED = "fraud-mv", "churn-mv"
PARTITIONS = 4


def partition_of(model: str) -> int:
    """The partition the Java client's (and librdkafka's murmur2) partitioner gives a model key."""
    return (murmur2(model.encode()) & 0x7FFFFFFF) % PARTITIONS


def correlation_events(model: str, seed: int) -> list[dict]:
    """x0..x3 independent N(0, 1); from CHANGE on, corr(x0, x1) = 0.8 with both still N(0, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, 4))
    rho = np.where(np.arange(N) < CHANGE, 0.0, 0.8)
    x[:, 1] = rho * x[:, 0] + np.sqrt(1 - rho ** 2) * x[:, 1]
    return [{"model": model, "id": f"{model}-{i}", "ts": T0 + i,
             "features": {f"x{k}": round(float(x[i, k]), 6) for k in range(4)}} for i in range(N)]


def offline_alert_ids(config_path, messages) -> set[str]:
    """What an uninterrupted pipeline with the worker's own config publishes for the same input."""
    pipeline = DriftPipeline(load(config_path, environ={}))
    records = [Record(value, key, "x", 0, i) for i, (key, value) in enumerate(messages)]
    ids = set()
    for i in range(0, len(records), 2000):
        ids |= {a["alert_id"] for a in pipeline.process(records[i:i + 2000]).alerts}
    return ids


def test_only_a_changed_correlation_reaches_drift_alerts_as_one_multivariate_alert(broker, tmp_path, unique_topic):
    assert partition_of(WATCHED) != partition_of(NOT_WATCHED), \
        "the two models should live on different partitions, so each one's offsets are its event positions"
    prefix = unique_topic("mv")
    ensure_topics_sync(broker.bootstrap, {f"{prefix}.{t}": PARTITIONS for t in ("features", "labels", "alerts", "retrain", "dlq")})
    config = tmp_path / "streamdrift.toml"
    config.write_text(config_text(prefix, SETTINGS))
    watched, not_watched = correlation_events(WATCHED, seed=71), correlation_events(NOT_WATCHED, seed=72)
    messages = [(e["model"].encode(), orjson.dumps(e)) for pair in zip(watched, not_watched) for e in pair]

    worker = WorkerProcess(broker.bootstrap, config, tmp_path / "worker.log")
    try:
        worker.wait_until(lambda h: h["status"] == "ok" and len(h["partitions"]) == PARTITIONS, what="partitions assigned")
        produced = produce(broker.bootstrap, f"{prefix}.features", messages)
        report = worker.wait_until(lambda h: h["counts"]["in"] >= produced, what="all events consumed")
        counts = report["counts"]
        assert counts["in"] == produced == 2 * N, f"the worker should consume exactly the {2 * N} events produced: {counts}"
        assert counts["processed"] == produced and counts["rejected"] == 0, \
            f"every event is well-formed, so all should be processed and none rejected: {counts}"
        alerts = [orjson.loads(m.value) for m in consume_all(
            broker.bootstrap, f"{prefix}.alerts", until=lambda ms: len(ms) >= max(counts["alerts"], 1))]
    finally:
        worker.stop()

    assert len(alerts) == counts["alerts"], \
        f"the alerts topic should hold the {counts['alerts']} alerts the worker counted, got {alerts}"
    assert [(a["model"], a["kind"], a["feature"], a["detector"]) for a in alerts] == \
        [(WATCHED, "multivariate", "*", "multivariate_covariance")], \
        f"only corr(x0, x1) of {WATCHED} changed, every marginal stayed N(0, 1) and {NOT_WATCHED} is not " \
        f"watched jointly: exactly one multivariate_covariance alert for {WATCHED} and nothing else expected, got {alerts}"
    [alert] = alerts
    at = alert["detected_at"]
    assert at["topic"] == f"{prefix}.features" and at["partition"] == partition_of(WATCHED), \
        f"detected on {WATCHED}'s partition of the features topic expected: {at}"
    assert CHANGE <= at["offset"] < CHANGE + 1500, \
        f"a correlation 0 -> 0.8 at event {CHANGE} should be caught after it and within 1500 events: {at}"
    assert at["offset"] == alert["index"] == round(at["ts"] - T0), \
        f"one model = one partition from event 0, so offset, index and ts should name the same event: {alert}"
    ranked = [e["feature"] for e in alert["explained_by"]]
    assert set(ranked[:2]) == {"x0", "x1"} and sorted(ranked) == ["x0", "x1", "x2", "x3"], \
        f"x0 and x1 carry the change, so they should rank first of the four in explained_by: {alert['explained_by']}"
    assert alert["effect"]["pairs"][0]["features"] == ["x0", "x1"], \
        f"the product of x0 and x1 moved: that pair should be named first in effect.pairs: {alert['effect']}"
    assert alert["alert_id"].startswith("a-") and alert["config_version"] == report["config_version"], alert
    assert alert["segment"] is None, f"no event had a segment: {alert}"
    assert {alert["alert_id"]} == offline_alert_ids(config, messages), \
        "the worker should publish exactly the alerts the offline pipeline finds with the same config and input"
