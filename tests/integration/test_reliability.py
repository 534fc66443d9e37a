"""Faults: a worker killed with SIGKILL mid-stream, a rebalance, a paused broker."""

from __future__ import annotations

import signal
import time

import orjson

from streamdrift.stream.topics import ensure_topics_sync
from streamdrift.synthetic import Drift, SyntheticStream

from .workers import WorkerProcess, config_text, consume_all, expected_alert_ids, produce

SETTINGS = """
[detectors]
reference_size = 1000
"""
DRIFTS = [Drift("m-00", "f00", 2500, "mean"), Drift("m-03", "country", 2500, "category"),
          Drift("m-05", "amount", 3500, "variance"), Drift("m-06", "f01", 3800, "mean")]


def _setup(broker, unique_topic, tmp_path):
    prefix = unique_topic("r")
    ensure_topics_sync(broker.bootstrap, {f"{prefix}.{t}": 4 for t in ("features", "alerts", "retrain", "dlq", "labels")}
                       | {f"{prefix}.state": 4}, compacted={f"{prefix}.state"})
    config = tmp_path / "streamdrift.toml"
    config.write_text(config_text(prefix, SETTINGS))
    stream = SyntheticStream(models=[f"m-{i:02d}" for i in range(8)], events_per_model=5000, drifts=DRIFTS,
                             numeric_features=3, seed=11)
    return prefix, config, list(stream.messages())


def test_kill_9_and_restart_loses_nothing_and_keeps_alert_ids(broker, unique_topic, tmp_path):
    prefix, config, messages = _setup(broker, unique_topic, tmp_path)
    expected = expected_alert_ids(messages)
    assert len(expected) >= 4
    half = len(messages) // 2
    first = WorkerProcess(broker.bootstrap, config, tmp_path / "w1.log")
    try:
        first.wait_until(lambda h: h["status"] == "ok" and len(h["partitions"]) == 4, what="assignment")
        produce(broker.bootstrap, f"{prefix}.features", messages[:half])
        first.wait_until(lambda h: h["counts"]["in"] >= half, what="first half consumed")
        time.sleep(2.5)  # at least one checkpoint (every 1 s) covers most of it
        assert "streamdrift_checkpoints_total" in first.metrics()
    finally:
        first.stop(signal.SIGKILL)
    produce(broker.bootstrap, f"{prefix}.features", messages[half:])
    second = WorkerProcess(broker.bootstrap, config, tmp_path / "w2.log")
    try:
        report = second.wait_until(lambda h: h["status"] == "ok" and len(h["partitions"]) == 4, what="assignment")
        assert report["restored_monitors"] > 0, "the restarted worker re-learned from scratch"
        second.wait_until(lambda h: h["counts"]["in"] > 0 and h["counts"]["in"] + half >= len(messages),
                          what="the rest consumed")
        alerts = [orjson.loads(m.value) for m in consume_all(broker.bootstrap, f"{prefix}.alerts",
                                                             until=lambda ms: {orjson.loads(m.value)["alert_id"]
                                                                               for m in ms} >= expected)]
        published = {a["alert_id"] for a in alerts}
        assert published == expected, f"missing {expected - published}, unexpected {published - expected}"
    finally:
        second.stop()
