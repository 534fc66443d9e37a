"""Prediction, label and covariate-only drift through the broker (GitHub issue #6).

Each test runs a real ``streamdrift run`` worker on private topics, produces one model's events
with confluent-kafka, waits until the worker's ``/health`` counts every event as consumed, then
reads the alerts topic with kafka-python. Every stream starts at event 0 and each event's ``ts``
is ``T0 + its position``, so an alert's ``index`` and ``detected_at`` say exactly which event
triggered it, and whether that was before or after the injected change.
"""

from __future__ import annotations

import numpy as np
import orjson

from streamdrift.stream.topics import ensure_topics_sync

from .workers import WorkerProcess, config_text, consume_all, expected_alert_ids, produce

SMALL_REFERENCE = """
[detectors]
reference_size = 1000
"""
#: Events per model, and the position of the first event after the injected change.
N, CHANGE = 5000, 3000
T0 = 1_000_000_000.0
#: DESIGN.md's alert schema: every alert carries these (``p_value`` and ``direction`` may be null).
REQUIRED_FIELDS = ("alert_id", "model", "segment", "feature", "kind", "detector", "statistic", "threshold",
                   "p_value", "direction", "severity", "detected_at", "reference", "window", "config_version")
DETECTORS = {"adwin", "page_hinkley", "scale", "ks", "histogram", "categorical", "missing_rate"}


def _normal_features(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0.0, 1.0, (N, 2))


def _event(model: str, i: int, x: np.ndarray, **extra) -> dict:
    return {"model": model, "id": f"{model}-{i}", "ts": T0 + i,
            "features": {"x0": float(x[i, 0]), "x1": float(x[i, 1])}, **extra}


def prediction_events(seed: int = 61) -> list[dict]:
    """Stable N(0, 1) features; a numeric prediction N(0, 1) whose mean moves +1 sd at CHANGE."""
    rng = np.random.default_rng(seed)
    x = _normal_features(rng)
    prediction = rng.normal(0.0, 1.0, N)
    prediction[CHANGE:] += 1.0
    return [_event("pred-m", i, x, prediction=float(prediction[i])) for i in range(N)]


def label_events(seed: int = 62) -> list[dict]:
    """Stable features, no prediction; the share of label "b" goes from 30% to 60% at CHANGE."""
    rng = np.random.default_rng(seed)
    x = _normal_features(rng)
    share_b = np.where(np.arange(N) < CHANGE, 0.3, 0.6)
    labels = np.where(rng.random(N) < share_b, "b", "a")
    return [_event("label-m", i, x, label=str(labels[i])) for i in range(N)]


def covariate_events(model: str, seed: int, noise: float) -> list[dict]:
    """x0 moves +1 sd at CHANGE, x1 stays. The true class is ``x0 > 0.5`` and the model predicts
    exactly that, so it stays right: its error rate is ``noise`` (label flips) before and after."""
    rng = np.random.default_rng(seed)
    x = _normal_features(rng)
    x[CHANGE:, 0] += 1.0
    truth = np.where(x[:, 0] > 0.5, "pos", "neg")
    flipped = rng.random(N) < noise
    labels = np.where(flipped, np.where(truth == "pos", "neg", "pos"), truth)
    return [_event(model, i, x, prediction=str(truth[i]), label=str(labels[i])) for i in range(N)]


def run_worker(broker, tmp_path, unique_topic, events: list[dict]) -> tuple[list[dict], dict, str, str]:
    """Produce ``events`` to a fresh worker; return (alerts, last health report, prefix, metrics)."""
    prefix = unique_topic("k")
    ensure_topics_sync(broker.bootstrap, {f"{prefix}.{t}": 4 for t in ("features", "labels", "alerts", "retrain", "dlq")})
    config = tmp_path / "streamdrift.toml"
    config.write_text(config_text(prefix, SMALL_REFERENCE))
    worker = WorkerProcess(broker.bootstrap, config, tmp_path / "worker.log")
    try:
        worker.wait_until(lambda h: h["status"] == "ok" and len(h["partitions"]) == 4, what="partitions assigned")
        messages = [(e["model"].encode(), orjson.dumps(e)) for e in events]
        produced = produce(broker.bootstrap, f"{prefix}.features", messages)
        report = worker.wait_until(lambda h: h["counts"]["in"] >= produced, what="all events consumed")
        counts = report["counts"]
        assert counts["in"] == produced, f"the worker should consume exactly the {produced} events produced: {counts}"
        assert counts["processed"] == produced and counts["rejected"] == 0, \
            f"every event is well-formed, so all should be processed and none rejected: {counts}"
        alerts = [orjson.loads(m.value) for m in consume_all(
            broker.bootstrap, f"{prefix}.alerts", until=lambda ms: len(ms) >= counts["alerts"])]
        assert len(alerts) == counts["alerts"], \
            f"the alerts topic should hold the {counts['alerts']} alerts the worker counted, got {len(alerts)}"
        assert {a["alert_id"] for a in alerts} == expected_alert_ids(messages, reference_size=1000), \
            "the worker should publish exactly the alerts the offline pipeline finds for the same input order"
        metrics = worker.metrics()
    finally:
        worker.stop()
    return alerts, report, prefix, metrics


def check_schema(alert: dict, prefix: str, config_version: str) -> None:
    """DESIGN.md's alert schema, and that ``detected_at`` points at the event that triggered it."""
    missing = [f for f in REQUIRED_FIELDS if f not in alert]
    assert not missing, f"DESIGN.md requires every alert to carry {missing}: {alert}"
    assert alert["alert_id"].startswith("a-") and len(alert["alert_id"]) > 10, f"alert_id looks wrong: {alert}"
    assert alert["segment"] is None, f"no event had a segment, so segment should be null: {alert}"
    assert alert["detector"] in DETECTORS, f"unknown detector {alert['detector']!r}: {alert}"
    assert alert["severity"] in ("warning", "critical"), f"severity should be warning|critical: {alert}"
    assert isinstance(alert["statistic"], float) and isinstance(alert["threshold"], float), \
        f"statistic and threshold should be numbers: {alert}"
    assert alert["p_value"] is None or 0.0 <= alert["p_value"] <= 1.0, f"p_value should be null or in [0, 1]: {alert}"
    assert alert["direction"] in (None, "up", "down"), f"direction should be null, up or down: {alert}"
    assert alert["config_version"] == config_version, \
        f"config_version should be the worker's ({config_version}): {alert}"
    at = alert["detected_at"]
    assert set(at) == {"ts", "topic", "partition", "offset"}, f"detected_at should be {{ts, topic, partition, offset}}: {at}"
    assert at["topic"] == f"{prefix}.features", f"detected on the features topic expected: {at}"
    assert 0 <= at["partition"] < 4, f"detected_at.partition should be one of the 4 input partitions: {at}"
    position = round(at["ts"] - T0)
    assert alert["index"] == position, \
        f"the stream starts at event 0, so index should be the triggering event's position {position}: {alert}"
    assert at["offset"] == position, \
        f"one model = one partition in produce order, so detected_at.offset should be {position}: {at}"
    for summary in ("reference", "window"):
        assert isinstance(alert[summary], dict) and alert[summary].get("n", 0) > 0, \
            f"{summary} should summarise the values compared (n > 0): {alert}"


def test_prediction_drift_end_to_end(broker, tmp_path, unique_topic):
    alerts, report, prefix, metrics = run_worker(broker, tmp_path, unique_topic, prediction_events())
    for a in alerts:
        check_schema(a, prefix, report["config_version"])
    prediction = [a for a in alerts if a["kind"] == "prediction"]
    assert prediction, f"the prediction mean moved +1 sd at event {CHANGE}: prediction alerts expected, got {alerts}"
    assert {a["feature"] for a in prediction} == {"prediction"}, \
        f"a prediction alert names its stream feature='prediction': {prediction}"
    assert {a["model"] for a in prediction} == {"pred-m"}, prediction
    early = [a for a in prediction if a["index"] < CHANGE]
    assert not early, f"no prediction alert expected before the change at event {CHANGE}: {early}"
    assert min(a["index"] for a in prediction) < CHANGE + 1000, \
        f"a +1 sd shift should be caught within 1000 events of {CHANGE}: {prediction}"
    assert {a["direction"] for a in prediction} - {None} == {"up"}, \
        f"the prediction mean went up: every directional alert should say 'up': {prediction}"
    for a in prediction:
        if "mean" in a["window"]:
            assert a["window"]["mean"] > a["reference"]["mean"], f"window mean should exceed the reference's: {a}"
    others = [a for a in alerts if a["kind"] != "prediction"]
    assert not others, f"x0 and x1 are stable N(0, 1) and no label was sent: only prediction alerts expected, got {others}"
    assert len({a["alert_id"] for a in alerts}) == len(alerts), "alert ids should be unique"
    assert report["counts"]["predictions_expired"] == 0, \
        f"5000 predictions fit the pending limit (10,000) and TTL: none should expire: {report['counts']}"
    assert "streamdrift_monitored_features 3.0" in metrics, \
        "x0, x1 and the prediction are monitored; no label ever came, so no concept stream (3 monitors)"


def test_label_drift_end_to_end(broker, tmp_path, unique_topic):
    alerts, report, prefix, metrics = run_worker(broker, tmp_path, unique_topic, label_events())
    for a in alerts:
        check_schema(a, prefix, report["config_version"])
    label = [a for a in alerts if a["kind"] == "label"]
    assert label, f"the share of label 'b' went from 30% to 60% at event {CHANGE}: label alerts expected, got {alerts}"
    assert {a["feature"] for a in label} == {"label"}, f"a label alert names its stream feature='label': {label}"
    early = [a for a in label if a["index"] < CHANGE]
    assert not early, f"no label alert expected before the change at event {CHANGE}: {early}"
    for a in label:
        assert a["detector"] == "categorical", f"string labels are a categorical stream: {a}"
        before, after = a["reference"]["top"].get("b", 0.0), a["window"]["top"].get("b", 0.0)
        assert 0.25 < before < 0.35 and after > before + 0.05, \
            f"the reference should show ~30% 'b' and the window clearly more: {a}"
    others = [a for a in alerts if a["kind"] != "label"]
    assert not others, \
        f"features are stable and no prediction was sent (so no concept stream): only label alerts expected, got {others}"
    assert "streamdrift_monitored_features 3.0" in metrics, \
        "x0, x1 and the label are monitored; without predictions there is no concept stream (3 monitors)"


def test_covariate_shift_with_a_model_that_stays_right_raises_no_concept_alert(broker, tmp_path, unique_topic):
    # "exact": prediction == label in every event (error stream all zeros);
    # "noisy": 5% label noise, so the error stream has a real rate (~5%) to calibrate on, and keeps it.
    exact = covariate_events("cov-exact", seed=63, noise=0.0)
    noisy = covariate_events("cov-noisy", seed=64, noise=0.05)
    # Interleaved; the two keys hash (murmur2) to partitions 0 and 2, so each model's offsets are
    # still its own event positions (check_schema relies on it).
    events = [e for pair in zip(exact, noisy) for e in pair]
    alerts, report, prefix, metrics = run_worker(broker, tmp_path, unique_topic, events)
    for a in alerts:
        check_schema(a, prefix, report["config_version"])
    early = [a for a in alerts if a["index"] < CHANGE]
    assert not early, f"nothing changed before event {CHANGE}: no alert of any kind expected there: {early}"
    concept = [a for a in alerts if a["kind"] == "concept"]
    assert not concept, f"the model stays right (same error rate before and after): no concept alert expected: {concept}"
    for model in ("cov-exact", "cov-noisy"):
        feature = {a["feature"] for a in alerts if a["model"] == model and a["kind"] == "feature"}
        assert feature == {"x0"}, f"{model}: x0 moved +1 sd and x1 did not: feature alerts on x0 only expected, got {feature}"
        kinds = {a["kind"] for a in alerts if a["model"] == model}
        # The class mix follows x0 (P(x0 > 0.5) goes from ~31% to ~69%), so the predicted and the
        # true class shares really moved: those streams should say so.
        assert {"prediction", "label"} <= kinds, f"{model}: the class mix moved with x0: prediction and label alerts expected, got {kinds}"
        assert kinds <= {"feature", "prediction", "label"}, f"{model}: unexpected alert kinds {kinds}"
    partitions = {model: {a["detected_at"]["partition"] for a in alerts if a["model"] == model}
                  for model in ("cov-exact", "cov-noisy")}
    assert all(len(p) == 1 for p in partitions.values()), f"a model's events all live on one partition: {partitions}"
    assert "streamdrift_monitored_features 10.0" in metrics, \
        "per model x0, x1, prediction, label and the concept error stream should be monitored (2 x 5 monitors): " \
        "otherwise 'no concept alert' would prove nothing"
