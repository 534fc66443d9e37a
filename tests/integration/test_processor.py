"""The processor end to end: real broker, real ``streamdrift run`` processes, other clients."""

from __future__ import annotations

import orjson

from streamdrift.stream.topics import ensure_topics_sync
from streamdrift.synthetic import Drift, SyntheticStream

from .workers import WorkerProcess, config_text, consume_all, produce

DRIFTS = [Drift("fraud-v3", "f01", 3000, "mean"), Drift("fraud-v3", "country", 3000, "category"),
          Drift("churn-v1", "amount", 3000, "variance")]
SMALL_REFERENCE = """
[detectors]
reference_size = 1000
[retrain]
min_features = 2
"""
MALFORMED = [b"{not json", b"[1, 2, 3]", b'{"features": {"x": 1}}', b'{"model": "fraud-v3", "features": {"f01": [1]}}',
             b'{"model": "fraud-v3", "features": {"f01": "text"}}', b'{"model": "fraud-v3", "features": {"f01": 1}, "ts": "yesterday"}']


def _topics(broker, prefix: str) -> None:
    ensure_topics_sync(broker.bootstrap, {f"{prefix}.{t}": 4 for t in ("features", "alerts", "retrain", "dlq", "labels")})


def test_drift_alerts_retrain_and_dead_letters(broker, tmp_path, unique_topic):
    prefix = unique_topic("p")
    _topics(broker, prefix)
    config = tmp_path / "streamdrift.toml"
    config.write_text(config_text(prefix, SMALL_REFERENCE))
    worker = WorkerProcess(broker.bootstrap, config, tmp_path / "worker.log")
    try:
        worker.wait_until(lambda h: h["status"] == "ok" and len(h["partitions"]) == 4, what="partitions assigned")
        stream = SyntheticStream(models=["fraud-v3", "churn-v1", "ranker-v7"], events_per_model=5000, drifts=DRIFTS,
                                 numeric_features=4, seed=3)
        messages = list(stream.messages())
        # malformed events in the middle of good ones
        messages[4000:4000] = [(b"fraud-v3", bad) for bad in MALFORMED]
        produced = produce(broker.bootstrap, f"{prefix}.features", messages)
        report = worker.wait_until(lambda h: h["counts"]["in"] >= produced, what="all events consumed")
        counts = report["counts"]
        assert counts["in"] == produced
        assert counts["processed"] + counts["rejected"] == counts["in"]
        assert counts["rejected"] == len(MALFORMED)

        alerts = [orjson.loads(m.value) for m in consume_all(broker.bootstrap, f"{prefix}.alerts",
                                                             until=lambda ms: len(ms) >= counts["alerts"])]
        drifted = {(a["model"], a["feature"]) for a in alerts}
        assert drifted == {(d.model, d.feature) for d in DRIFTS}, f"alerts on {drifted}"
        for a in alerts:
            assert a["index"] >= 3000 and a["index"] < 4500, a
            for field in ("alert_id", "model", "segment", "feature", "kind", "detector", "statistic", "threshold",
                          "p_value", "direction", "severity", "detected_at", "reference", "window", "config_version"):
                assert field in a, field
            assert set(a["detected_at"]) == {"ts", "topic", "partition", "offset"}
            assert a["detected_at"]["topic"] == f"{prefix}.features"
        assert len({a["alert_id"] for a in alerts}) == len(alerts)

        requests = [orjson.loads(m.value) for m in consume_all(broker.bootstrap, f"{prefix}.retrain",
                                                               until=lambda ms: len(ms) >= 1)]
        assert [r["model"] for r in requests] == ["fraud-v3"]  # churn-v1 has one drifted feature: below policy
        request = requests[0]
        assert {d["feature"] for d in request["drifted"]} == {"f01", "country"}
        ids = {a["alert_id"] for a in alerts}
        assert all(set(d["alert_ids"]) <= ids for d in request["drifted"])
        assert request["since"]["offset"] is not None

        dead = consume_all(broker.bootstrap, f"{prefix}.dlq", until=lambda ms: len(ms) >= len(MALFORMED))
        assert sorted(m.value for m in dead) == sorted(MALFORMED)
        for m in dead:
            headers = dict(m.headers)
            assert headers["streamdrift.reason"]
            assert headers["streamdrift.source.topic"] == f"{prefix}.features".encode()
            assert int(headers["streamdrift.source.offset"]) >= 0
        reasons = " | ".join(dict(m.headers)["streamdrift.reason"].decode() for m in dead)
        assert "not valid JSON" in reasons and "has always been numeric" in reasons and "is a list" in reasons

        metrics = worker.metrics()
        assert f"streamdrift_events_in_total {float(produced)}" in metrics
        assert 'streamdrift_alerts_total{detector="page_hinkley",feature="f01"' in metrics
    finally:
        worker.stop()


def test_two_workers_split_partitions_and_process_every_event_once(broker, tmp_path, unique_topic):
    prefix = unique_topic("p")
    _topics(broker, prefix)
    config = tmp_path / "streamdrift.toml"
    config.write_text(config_text(prefix, SMALL_REFERENCE))
    first = WorkerProcess(broker.bootstrap, config, tmp_path / "w1.log")
    second = WorkerProcess(broker.bootstrap, config, tmp_path / "w2.log")
    try:
        def split(h):
            return h["status"] == "ok" and 0 < len(h["partitions"]) < 4
        one = first.wait_until(split, what="a share of the partitions")
        two = second.wait_until(split, what="a share of the partitions")
        one = first.wait_until(lambda h: len(h["partitions"]) + len(second.health()["partitions"]) == 4,
                               what="stable assignment")
        two = second.health()
        assert set(one["partitions"]).isdisjoint(two["partitions"])
        assert len(set(one["partitions"]) | set(two["partitions"])) == 4
        models = [f"model-{i:02d}" for i in range(16)]
        stream = SyntheticStream(models=models, events_per_model=500, numeric_features=2, seed=5)
        produced = produce(broker.bootstrap, f"{prefix}.features", stream.messages())
        first.wait_until(lambda h: h["counts"]["in"] + second.health()["counts"]["in"] >= produced,
                         what="all events consumed by the pair")
        a, b = first.health()["counts"], second.health()["counts"]
        assert a["in"] + b["in"] == produced
        assert a["processed"] + b["processed"] == produced
        assert a["in"] > 0 and b["in"] > 0
        # a model's monitors live where its partition is: no model on both workers
        assert first.health()["models"] + second.health()["models"] == len(models)
    finally:
        first.stop()
        second.stop()


def test_demo_runs_to_completion():
    from streamdrift.demo import run_demo

    assert run_demo(events_per_model=7000, timeout_s=50) == 0
