"""Concept drift through the broker: predictions on ``features``, labels later on ``labels``."""

from __future__ import annotations

import orjson

from streamdrift.stream.topics import ensure_topics_sync
from tests.unit.test_concept import late, sea_events

from .workers import WorkerProcess, config_text, consume_all, produce

SETTINGS = """
[limits]
label_ttl_seconds = 100000.0
max_pending_predictions = 20000
"""


def test_late_labels_raise_concept_alerts_and_expired_ones_are_counted(broker, tmp_path, unique_topic):
    prefix = unique_topic("c")
    ensure_topics_sync(broker.bootstrap, {f"{prefix}.{t}": 4 for t in ("features", "labels", "alerts", "retrain", "dlq")})
    config = tmp_path / "streamdrift.toml"
    config.write_text(config_text(prefix, SETTINGS))
    stream = late(sea_events(16_000, 8_000), delay=400)
    features = [e for e in stream if "features" in e]
    labels = [e for e in stream if "features" not in e]
    # the labels of the last 100 predictions arrive far too late (after the time-to-live)
    stale = [{"model": "sea", "id": f"e{i}", "label": 1, "ts": 1e9 + 500_000} for i in range(15_900, 16_000)]
    # and 50 labels for predictions that never existed
    unknown = [{"model": "sea", "id": f"nope-{i}", "label": 0, "ts": 1e9 + 16_000} for i in range(50)]
    worker = WorkerProcess(broker.bootstrap, config, tmp_path / "worker.log")
    try:
        worker.wait_until(lambda h: h["status"] == "ok" and len(h["partitions"]) == 4 and len(h["label_partitions"]) == 4,
                          what="assignment")
        produce(broker.bootstrap, f"{prefix}.features", ((b"sea", orjson.dumps(e)) for e in features))
        worker.wait_until(lambda h: h["counts"]["in"] >= len(features), what="predictions consumed")
        produce(broker.bootstrap, f"{prefix}.labels", ((b"sea", orjson.dumps(e)) for e in labels + unknown + stale))
        total = len(features) + len(labels) + len(unknown) + len(stale)
        report = worker.wait_until(lambda h: h["counts"]["in"] >= total, what="labels consumed")
        counts = report["counts"]
        assert counts["labels_joined"] == len(labels)
        assert counts["labels_unmatched"] == len(unknown) + len(stale)
        assert counts["predictions_expired"] == 400  # the last 400 predictions waited past the TTL
        alerts = [orjson.loads(m.value) for m in consume_all(
            broker.bootstrap, f"{prefix}.alerts", until=lambda ms: any(b'"concept"' in m.value for m in ms))]
        concept = [a for a in alerts if a["kind"] == "concept"]
        assert concept and concept[0]["feature"] == "error"
        assert concept[0]["detected_at"]["topic"] == f"{prefix}.labels"
        assert not [a for a in alerts if a["kind"] == "feature"]
        requests = [orjson.loads(m.value) for m in consume_all(broker.bootstrap, f"{prefix}.retrain",
                                                               until=lambda ms: len(ms) >= 1)]
        assert requests[0]["severity"] == "critical" and requests[0]["reason"].startswith("concept drift")
        metrics = worker.metrics()
        assert f"streamdrift_labels_unmatched_total {float(len(unknown) + len(stale))}" in metrics
    finally:
        worker.stop()
