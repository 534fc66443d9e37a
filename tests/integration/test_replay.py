"""``streamdrift replay`` against the real broker: a log into a topic (every good event, keyed by
model; resume with --skip; pacing with --rate and --speed), and the promise that an offline replay
writes exactly the alerts a real ``streamdrift run`` worker publishes for the same log."""

from __future__ import annotations

import gzip
import re
import time
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from streamdrift.cli import main
from streamdrift.synthetic import Drift, SyntheticStream

from .workers import WorkerProcess, config_text, consume_all

# (line, reason the processor gives): bad rows are not events and are never sent; the others
# are events, sent like any other, that the processor rejects to the dead-letter topic.
BAD_ROWS = [b"{not json", b"[1, 2, 3]", b'{"model": "fraud-v3", "features": {"f00": NaN}}']
REJECTED_EVENTS = [b'{"model": "fraud-v3", "features": {"f01": "high"}, "ts": 1732000001.0}',
                   b'{"model": "churn-v1", "features": {"f00": [1]}, "ts": 1732000002.0}',
                   b'{"features": {"f00": 1.0}}']


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    # rich wraps the summary at the terminal width; a wide one keeps each "bad row" on one line.
    monkeypatch.setenv("COLUMNS", "400")


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def write_log(path: Path, events: list[dict], bad: list[bytes], every: int) -> tuple[list[bytes], dict[int, bytes]]:
    """A gzip JSONL log of ``events`` with ``bad`` lines spread through it. Returns the lines and
    {line number: bad line}."""
    lines = [orjson.dumps(e) for e in events]
    inserted = {}
    for k, line in enumerate(bad):
        position = every * (k + 1)
        lines.insert(position, line)
        inserted[position + 1] = line
    path.write_bytes(gzip.compress(b"".join(line + b"\n" for line in lines)))
    return lines, inserted


def small_log(tmp_path: Path) -> tuple[Path, list[bytes], dict[int, bytes]]:
    stream = SyntheticStream(models=["fraud-v3", "churn-v1", "ranker-v7"], numeric_features=2, events_per_model=200,
                             seed=4)
    path = tmp_path / "small.jsonl.gz"
    lines, inserted = write_log(path, list(stream.events()), BAD_ROWS + REJECTED_EVENTS, every=80)
    good = [line for n, line in enumerate(lines, 1) if inserted.get(n) not in BAD_ROWS]
    return path, good, inserted


def model_of(value: bytes) -> bytes:
    model = orjson.loads(value).get("model")
    return b"" if model is None else model.encode()


def check_received(messages, expected: list[bytes]) -> None:
    """Every expected value exactly once, keyed by its model, in log order within each model."""
    assert sorted(m.value for m in messages) == sorted(expected)
    sent_order = defaultdict(list)
    for value in expected:
        sent_order[model_of(value)].append(value)
    received = defaultdict(list)
    partitions = defaultdict(set)
    for m in sorted(messages, key=lambda m: (m.partition, m.offset)):
        assert m.key == model_of(m.value), m
        received[m.key].append(m.value)
        partitions[m.key].add(m.partition)
    assert received == sent_order
    assert all(len(p) == 1 for p in partitions.values()), partitions  # one model, one partition


def replay_to_kafka(broker, log: Path, topic: str, *extra: str) -> float:
    """Seconds the replay took."""
    started = time.monotonic()
    code = main(["replay", str(log), "--to-kafka", "--broker", broker.bootstrap, "--topic", topic, "--quiet", *extra])
    assert code == 0
    return time.monotonic() - started


# -- into Kafka ------------------------------------------------------------------------------------
def test_to_kafka_sends_every_good_event_keyed_by_model(broker, tmp_path, unique_topic, capsys):
    log, good, inserted = small_log(tmp_path)
    topic = unique_topic("in", partitions=4)

    replay_to_kafka(broker, log, topic)

    messages = consume_all(broker.bootstrap, topic, until=lambda ms: len(ms) >= len(good))
    check_received(messages, good)
    # The events the processor will reject are sent (they are events); bad rows are not.
    values = {m.value for m in messages}
    assert all(line in values for line in REJECTED_EVENTS)
    assert not any(line in values for line in BAD_ROWS)
    err = flat(capsys.readouterr().err)
    assert f"sent {len(good):,} events to {topic}" in err, err
    assert f"{len(BAD_ROWS)} bad rows not sent" in err, err
    for number, line in inserted.items():
        if line in BAD_ROWS:
            assert f"bad row {log}:{number}:" in err, err


def test_to_kafka_skip_resumes_after_the_events_already_sent(broker, tmp_path, unique_topic, capsys):
    log, good, _ = small_log(tmp_path)
    topic = unique_topic("in", partitions=4)
    # As if an earlier run had sent the first 250 events and stopped: bad rows are not counted.
    skip = 250

    replay_to_kafka(broker, log, topic, "--skip", str(skip))

    messages = consume_all(broker.bootstrap, topic, until=lambda ms: len(ms) >= len(good) - skip)
    check_received(messages, good[skip:])
    assert f"skipped {skip:,} (--skip)" in flat(capsys.readouterr().err)


def test_to_kafka_rate_limits_the_replay(broker, tmp_path, unique_topic):
    log, good, _ = small_log(tmp_path)
    topic = unique_topic("in", partitions=4)
    rate = 250.0

    elapsed = replay_to_kafka(broker, log, topic, "--rate", str(rate))

    # The n-th event goes out no earlier than n / rate seconds after the start (no upper bound:
    # the machine may be slow).
    assert elapsed >= 0.95 * (len(good) - 1) / rate, elapsed
    messages = consume_all(broker.bootstrap, topic, until=lambda ms: len(ms) >= len(good))
    check_received(messages, good)


def test_to_kafka_speed_follows_the_event_time_spacing(broker, tmp_path, unique_topic):
    # 200 events per model, 10 ms of event time apart: a 2 s log, played at 2x in >= 1 s.
    log, good, _ = small_log(tmp_path)
    times = [orjson.loads(v)["ts"] for v in good if "ts" in orjson.loads(v)]
    span = max(times) - min(times)
    topic = unique_topic("in", partitions=4)

    elapsed = replay_to_kafka(broker, log, topic, "--speed", "2")

    assert elapsed >= 0.95 * span / 2, (elapsed, span)
    messages = consume_all(broker.bootstrap, topic, until=lambda ms: len(ms) >= len(good))
    check_received(messages, good)


# -- offline == the processor ------------------------------------------------------------------------
DRIFTS = [Drift("fraud-v3", "f01", 2000, "mean"), Drift("fraud-v3", "country", 2200, "category"),
          Drift("churn-v1", "amount", 2000, "variance"), Drift("churn-v1", "f02", 2500, "missing"),
          Drift("ranker-v7", "f00", 3000, "mean")]
SMALL_REFERENCE = """
[detectors]
reference_size = 1000
[retrain]
min_features = 2
"""


def without_position(alert: dict) -> dict:
    """Everything but where the input came from: the processor names a topic, partition and
    offset, the offline replay the file and line. The event time stays."""
    return {**alert, "detected_at": {"ts": alert["detected_at"]["ts"]}}


def request_without_position(request: dict) -> dict:
    return {**request, "since": {"ts": request["since"]["ts"]}}


def per_model(items: list[dict]) -> dict[str, list[dict]]:
    grouped = defaultdict(list)
    for item in items:
        grouped[item["model"]].append(item)
    return dict(grouped)


def read_jsonl(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def test_offline_replay_writes_exactly_the_alerts_the_processor_publishes(broker, tmp_path, unique_topic):
    prefix = unique_topic("p")
    config = tmp_path / "streamdrift.toml"
    config.write_text(config_text(prefix, SMALL_REFERENCE))
    stream = SyntheticStream(models=["fraud-v3", "churn-v1", "ranker-v7"], numeric_features=3, events_per_model=4500,
                             drifts=DRIFTS, seed=21)
    log = tmp_path / "history.jsonl.gz"
    lines, _ = write_log(log, list(stream.events()), BAD_ROWS + REJECTED_EVENTS, every=1999)
    sent = len(lines) - len(BAD_ROWS)

    worker = WorkerProcess(broker.bootstrap, config, tmp_path / "worker.log")
    try:
        # Offline first, while the worker starts.
        alerts_path = tmp_path / "offline-alerts.jsonl"
        assert main(["replay", str(log), "--offline", "--config", str(config), "--alerts", str(alerts_path),
                     "--quiet"]) == 0
        offline = read_jsonl(alerts_path)
        offline_requests = read_jsonl(alerts_path.with_suffix(".retrain.jsonl"))
        assert {(a["model"], a["feature"]) for a in offline} == {(d.model, d.feature) for d in DRIFTS}
        assert offline_requests

        worker.wait_until(lambda h: h["status"] == "ok" and len(h["partitions"]) == 4, what="partitions assigned")
        assert main(["replay", str(log), "--to-kafka", "--broker", broker.bootstrap, "--config", str(config),
                     "--quiet"]) == 0
        report = worker.wait_until(lambda h: h["counts"]["in"] >= sent, what="every replayed event consumed")
        assert report["counts"]["in"] == sent
        assert report["counts"]["rejected"] == len(REJECTED_EVENTS)
        assert report["counts"]["alerts"] == len(offline)
        assert report["counts"]["retrain_requests"] == len(offline_requests)

        published = consume_all(broker.bootstrap, f"{prefix}.alerts", until=lambda ms: len(ms) >= len(offline))
        online = [orjson.loads(m.value) for m in sorted(published, key=lambda m: (m.partition, m.offset))]
        assert all(m.key == orjson.loads(m.value)["model"].encode() for m in published)
        requests = [orjson.loads(m.value) for m in consume_all(
            broker.bootstrap, f"{prefix}.retrain", until=lambda ms: len(ms) >= len(offline_requests))]
    finally:
        worker.stop()

    # The same alerts: ids, per-model order (Kafka orders a model's alerts, not different
    # models'), every field, the event time of detected_at included.
    assert sorted(a["alert_id"] for a in online) == sorted(a["alert_id"] for a in offline)
    online_by_model = {m: [without_position(a) for a in items] for m, items in per_model(online).items()}
    offline_by_model = {m: [without_position(a) for a in items] for m, items in per_model(offline).items()}
    assert online_by_model == offline_by_model
    # ... and where they differ, each names its own input: the topic (partition, offset) or the file (line).
    by_id = {a["alert_id"]: a for a in online}
    for alert in offline:
        there, here = by_id[alert["alert_id"]]["detected_at"], alert["detected_at"]
        assert there["topic"] == f"{prefix}.features" and there["offset"] >= 0
        assert here["topic"] == str(log) and here["partition"] == 0
        assert orjson.loads(lines[here["offset"] - 1])["model"] == alert["model"]
    assert len({(a["model"], a["detected_at"]["partition"]) for a in online}) == len({a["model"] for a in online})
    # The retrain requests too.
    assert ({m: [request_without_position(r) for r in rs] for m, rs in per_model(requests).items()}
            == {m: [request_without_position(r) for r in rs] for m, rs in per_model(offline_requests).items()})
