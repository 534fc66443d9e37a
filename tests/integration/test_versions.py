"""Model versions through the broker: a shadow deployment of a worse version is rolled back, an
equal one is left alone, a better canary is promoted, a label for an unknown version goes to the
dead-letter topic, and a decision survives kill -9 (neither lost nor published under another id).

One worker run serves all of it: the features first, then half of the labels, kill -9, the rest
of the labels to a new worker."""

from __future__ import annotations

import signal
import time

import orjson

from streamdrift.config import Config
from streamdrift.events import Record
from streamdrift.pipeline import DriftPipeline
from streamdrift.stream.topics import ensure_topics_sync
from streamdrift.synthetic_versions import VersionedDeployment

from .workers import KafkaPythonConsumer, KafkaPythonPartition, WorkerProcess, config_text, consume_all, produce

DEPLOYMENTS = {
    "shadow-worse": VersionedDeployment(model="shadow-worse", requests=2500, start=300, version_error=0.16, seed=21),
    "shadow-equal": VersionedDeployment(model="shadow-equal", requests=2500, start=300, seed=22),
    "canary-better": VersionedDeployment(model="canary-better", requests=4000, start=300, traffic="split",
                                         version_error=0.04, labels_name_version=True, seed=23),
}
UNKNOWN = {"model": "shadow-equal", "model_version": "v9", "id": "r5", "label": 1}


def _split(deployment):
    messages = list(deployment.messages_in_order())
    return [m for m in messages if "features" in m], [m for m in messages if "features" not in m]


def _labels_checkpointed(bootstrap: str, prefix: str, timeout_s: float = 40.0) -> bool:
    """Whether the group's committed offsets reach the end of every labels partition within the
    timeout: offsets are committed only once the checkpoint that covers them is acknowledged, so
    then the state of every label read so far is on the state topic (each worker process
    checkpoints its own partitions: counting checkpoints from outside cannot tell which)."""
    ends: dict[int, int] = {}
    for message in consume_all(bootstrap, f"{prefix}.labels", settle_s=0.5, timeout_s=10):
        ends[message.partition] = max(ends.get(message.partition, 0), message.offset + 1)
    consumer = KafkaPythonConsumer(bootstrap_servers=bootstrap, group_id=f"{prefix}.group", enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            committed = {p: consumer.committed(KafkaPythonPartition(f"{prefix}.labels", p)) or 0 for p in ends}
            if all(committed[p] >= end for p, end in ends.items()):
                return True
            time.sleep(0.2)
        return False
    finally:
        consumer.close()


def _offline(features, labels):
    """The decisions an uninterrupted processor makes for the same per-model input order, and at
    which label each was made."""
    pipeline = DriftPipeline(Config())
    records = [Record(orjson.dumps(m), None, "features", 0, i) for i, m in enumerate(features)] + \
              [Record(orjson.dumps(m), None, "labels", 0, i) for i, m in enumerate(labels)]
    decisions = []
    for i in range(0, len(records), 4000):
        decisions += pipeline.process(records[i:i + 4000]).decisions
    return decisions


def test_versions_are_rolled_back_promoted_or_left_alone_and_decisions_survive_kill_9(broker, tmp_path, unique_topic):
    prefix = unique_topic("v")
    ensure_topics_sync(broker.bootstrap, {f"{prefix}.{t}": 4 for t in ("features", "labels", "alerts", "retrain",
                                                                      "decisions", "dlq")}
                       | {f"{prefix}.state": 4}, compacted={f"{prefix}.state"})
    config = tmp_path / "streamdrift.toml"
    config.write_text(config_text(prefix))
    features, labels = [], {}
    for model, deployment in DEPLOYMENTS.items():
        f, labels[model] = _split(deployment)
        features += f
    every_label = [m for model in DEPLOYMENTS for m in labels[model]]
    expected = _offline(features, every_label)
    by_model = {d["model"]: d for d in expected}
    assert sorted((d["model"], d["decision"]) for d in expected) == [("canary-better", "promote"),
                                                                     ("shadow-worse", "rollback")]
    # Labels up to the shadow rollback go to the first worker, the rest (the canary's promotion) to the second.
    canary_at = by_model["canary-better"]["detected_at"]["offset"] - len(labels["shadow-worse"]) - \
        len(labels["shadow-equal"])
    cut = {"shadow-worse": by_model["shadow-worse"]["detected_at"]["offset"] + 1,
           "shadow-equal": len(labels["shadow-equal"]) // 2, "canary-better": canary_at // 2}
    first_labels = [m for model in DEPLOYMENTS for m in labels[model][:cut[model]]] + [UNKNOWN]
    later_labels = [m for model in DEPLOYMENTS for m in labels[model][cut[model]:]]

    first = WorkerProcess(broker.bootstrap, config, tmp_path / "w1.log")
    try:
        first.wait_until(lambda h: h["status"] == "ok" and len(h["partitions"]) == 4 and len(h["label_partitions"]) == 4,
                         what="assignment")
        produce(broker.bootstrap, f"{prefix}.features", ((m["model"].encode(), orjson.dumps(m)) for m in features))
        first.wait_until(lambda h: h["counts"]["in"] >= len(features), what="predictions consumed")
        produce(broker.bootstrap, f"{prefix}.labels", ((m["model"].encode(), orjson.dumps(m)) for m in first_labels))
        report = first.wait_until(lambda h: h["counts"]["in"] >= len(features) + len(first_labels),
                                  what="first labels consumed")
        assert report["counts"]["model_decisions"] == 1
        # Normally ~1 s (checkpoint_seconds = 1); a checkpoint writing every monitor's state can
        # take several seconds on a loaded machine (it did in a full run).
        assert _labels_checkpointed(broker.bootstrap, prefix), "no state checkpoint after the labels"
    finally:
        first.stop(signal.SIGKILL)
    produce(broker.bootstrap, f"{prefix}.labels", ((m["model"].encode(), orjson.dumps(m)) for m in later_labels))
    second = WorkerProcess(broker.bootstrap, config, tmp_path / "w2.log")
    try:
        second.wait_until(lambda h: h["counts"]["model_decisions"] >= 1 and h["counts"]["labels_joined"] > 0,
                          what="the canary's decision", timeout_s=40)
        published = [orjson.loads(m.value) for m in consume_all(
            broker.bootstrap, f"{prefix}.decisions",
            until=lambda ms: {orjson.loads(m.value)["decision_id"] for m in ms} >= {d["decision_id"] for d in expected})]
        # Exactly one decision per (model, version, baseline): the same id even if republished.
        distinct = {d["decision_id"]: d for d in published}
        assert sorted(distinct) == sorted(d["decision_id"] for d in expected)
        assert sorted((d["model"], d["decision"], d["version"], d["baseline"], d["traffic"]) for d in distinct.values()) == \
            [("canary-better", "promote", "v2", "v1", "split"), ("shadow-worse", "rollback", "v2", "v1", "shadow")]
        rollback = distinct[by_model["shadow-worse"]["decision_id"]]
        assert rollback["loss_difference"]["lower"] > 0 and rollback["labels"] == by_model["shadow-worse"]["labels"]
        assert rollback["detected_at"]["topic"] == f"{prefix}.labels"
        assert not [d for d in published if d["model"] == "shadow-equal"], "equal versions: no decision"

        dead = consume_all(broker.bootstrap, f"{prefix}.dlq", until=lambda ms: len(ms) >= 1)
        # At least once: the restarted worker may read it again from the last committed offset.
        reasons = {dict(m.headers)["streamdrift.reason"].decode() for m in dead}
        assert reasons == {"model_version 'v9' of model 'shadow-equal' is unknown: no feature event carried it "
                           "(known: v1, v2)"}
        metrics = second.metrics()
        assert 'streamdrift_model_decisions_total{baseline="v1",decision="promote",model="canary-better",version="v2"} 1.0' \
            in metrics
        assert 'streamdrift_model_version_loss{model="canary-better",version="v2"}' in metrics
    finally:
        second.stop()
