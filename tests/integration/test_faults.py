"""Faults against real ``streamdrift run`` processes and a real broker: a second worker joins
and leaves (rebalance), the broker freezes for 30 s, a producer sends hostile messages."""

from __future__ import annotations

import signal
import threading
import time
import urllib.error
import urllib.request
import warnings

import orjson
from confluent_kafka import Producer as ConfluentProducer

from streamdrift.stream.broker import EmbeddedBroker
from streamdrift.stream.topics import ensure_topics_sync
from streamdrift.synthetic import Drift, SyntheticStream

from .workers import WorkerProcess, config_text, consume_all, expected_alert_ids, produce

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.partitioner.default import murmur2

SETTINGS = """
[detectors]
reference_size = 1000
"""
DRIFTS = [Drift("m-00", "f00", 2500, "mean"), Drift("m-03", "country", 2500, "category"),
          Drift("m-05", "amount", 3500, "variance"), Drift("m-06", "f01", 3800, "mean")]
MODELS = [f"m-{i:02d}" for i in range(8)]
ALL_PARTITIONS = 4


def _setup(bootstrap: str, prefix: str, tmp_path, extra: str = SETTINGS):
    ensure_topics_sync(bootstrap, {f"{prefix}.{t}": ALL_PARTITIONS for t in ("features", "alerts", "retrain", "dlq", "labels")}
                       | {f"{prefix}.state": ALL_PARTITIONS}, compacted={f"{prefix}.state"})
    config = tmp_path / "streamdrift.toml"
    config.write_text(config_text(prefix, extra))
    return config


def _drifting_messages(events_per_model: int = 5000) -> list[tuple[bytes, bytes]]:
    stream = SyntheticStream(models=MODELS, events_per_model=events_per_model, drifts=DRIFTS, numeric_features=3, seed=11)
    return list(stream.messages())


def _published_alert_ids(bootstrap: str, topic: str, expected: set[str]) -> set[str]:
    messages = consume_all(bootstrap, topic, until=lambda ms: {orjson.loads(m.value)["alert_id"] for m in ms} >= expected)
    return {orjson.loads(m.value)["alert_id"] for m in messages}


def _partition_of(model: str) -> int:
    """The partition the Java client's (and librdkafka's murmur2) partitioner gives a model key."""
    return (murmur2(model.encode()) & 0x7FFFFFFF) % ALL_PARTITIONS


def _inputs(report: dict) -> list[str]:
    """The ``features`` partitions a worker holds (it also holds the ``labels`` partitions
    with the same numbers, so that a model's labels meet its predictions)."""
    return [p for p in report["partitions"] if p.rsplit("/", 1)[0].endswith(".features")]


def _models_on(partitions: list[str]) -> int:
    numbers = {int(p.rsplit("/", 1)[1]) for p in partitions}
    return sum(1 for m in MODELS if _partition_of(m) in numbers)


def _health_with_status(worker: WorkerProcess) -> tuple[int | None, dict | None]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/health", timeout=2) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())
    except OSError:
        return None, None


def _settled_total(workers: list[WorkerProcess], at_least: int, timeout_s: float = 45.0, quiet_s: float = 2.0) -> list[dict]:
    """Wait until the workers together have taken in ``at_least`` events and no count moved for
    ``quiet_s`` (a replay after a handover may count some events twice)."""
    deadline = time.monotonic() + timeout_s
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        reports = []
        for w in workers:
            if w.process.poll() is not None:
                raise AssertionError(f"worker exited with {w.process.returncode}:\n{w.log_text()}")
            reports.append(w.health())
        if all(reports):
            counts = tuple(r["counts"]["in"] for r in reports)
            if counts != last:
                last, since = counts, time.monotonic()
            elif sum(counts) >= at_least and time.monotonic() - since >= quiet_s:
                return reports
        time.sleep(0.2)
    raise AssertionError(f"timed out: {at_least} events expected, workers report {last}\n"
                         + "\n".join(w.log_text() for w in workers))


# -- 1. rebalance ----------------------------------------------------------------------------
def _remember(views: list, health: dict | None) -> dict:
    views.append(health or {"partitions": [], "label_partitions": []})
    return views[-1]


def test_worker_joins_and_leaves_monitors_move_with_partitions(broker, unique_topic, tmp_path):
    prefix = unique_topic("rb")
    config = _setup(broker.bootstrap, prefix, tmp_path)
    messages = _drifting_messages()
    expected = expected_alert_ids(messages)
    assert len(expected) >= 4
    cut1, cut2 = len(messages) // 3, 2 * len(messages) // 3
    first = WorkerProcess(broker.bootstrap, config, tmp_path / "w1.log")
    second = None
    try:
        first.wait_until(lambda h: h["status"] == "ok" and len(_inputs(h)) == ALL_PARTITIONS, what="assignment")
        produce(broker.bootstrap, f"{prefix}.features", messages[:cut1])
        first.wait_until(lambda h: h["counts"]["in"] >= cut1, what="first third consumed")
        assert first.health()["models"] == len(MODELS)

        # A second worker joins: the partitions split, and each model's monitors go with its partition.
        second = WorkerProcess(broker.bootstrap, config, tmp_path / "w2.log")
        second.wait_until(lambda h: h["status"] == "ok" and _inputs(h), timeout_s=45, what="join")
        # Each worker's processes are group members of their own, so the group may settle in a
        # few rebalances: wait until the two workers' partitions add up, in one look at both.
        views: list[dict] = []
        one = first.wait_until(lambda h: len(_inputs(h)) + len(_inputs(_remember(views, second.health()))) ==
                               ALL_PARTITIONS, timeout_s=45, what="the first worker giving up partitions")
        joined = views[-1]
        assert not set(_inputs(one)) & set(_inputs(joined))
        joined = second.wait_until(lambda h: h["models"] == _models_on(_inputs(h)), what="restored models")
        # The first worker's own processes may have passed a partition between them in the same
        # rebalances: its models too are counted once they are restored, on the same partitions.
        kept = set(_inputs(one))
        one = first.wait_until(lambda h: set(_inputs(h)) == kept and h["models"] == _models_on(_inputs(h)),
                               what="the first worker's models restored")
        assert one["models"] == _models_on(_inputs(one))
        assert one["models"] + joined["models"] == len(MODELS)
        if joined["models"]:
            assert joined["restored_monitors"] > 0, "the joining worker re-learned its models from scratch"

        produce(broker.bootstrap, f"{prefix}.features", messages[cut1:cut2])
        one, two = _settled_total([first, second], cut2)
        assert one["counts"]["rejected"] == two["counts"]["rejected"] == 0
        restored_before = one["restored_monitors"]

        # The second worker leaves: the first gets every partition back, with the state.
        assert second.stop(signal.SIGTERM) == 0, second.log_text()
        one = first.wait_until(lambda h: len(_inputs(h)) == ALL_PARTITIONS and h["restored_monitors"] > restored_before,
                               timeout_s=45, what="partitions back after the second worker left")
        produce(broker.bootstrap, f"{prefix}.features", messages[cut2:])
        (one,) = _settled_total([first], len(messages) - two["counts"]["in"])
        assert one["counts"]["processed"] + two["counts"]["processed"] >= len(messages)
        assert one["models"] == len(MODELS), "some model was never processed after the rebalances"
        published = _published_alert_ids(broker.bootstrap, f"{prefix}.alerts", expected)
        assert published == expected, f"missing {expected - published}, unexpected {published - expected}"
    finally:
        first.stop()
        if second is not None:
            second.stop()


# -- 2. broker outage ------------------------------------------------------------------------
def _produce_paced(bootstrap: str, topic: str, messages, seconds: float, outcome: dict) -> None:
    """Produce over ``seconds`` (so events keep arriving while the broker is frozen), then wait
    for every delivery."""
    producer = ConfluentProducer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5,
                                  "message.timeout.ms": 120_000})
    errors = []
    step = max(1, len(messages) // 20)
    for i in range(0, len(messages), step):
        for key, value in messages[i:i + step]:
            producer.produce(topic, value=value, key=key, on_delivery=lambda err, _: err and errors.append(err))
        producer.poll(0)
        time.sleep(seconds / 20)
    outcome["remaining"] = producer.flush(90)
    outcome["errors"] = errors


def test_broker_paused_for_30_s_worker_degrades_then_recovers_without_loss(tmp_path):
    # A broker of its own: freezing the session broker would stall every other test.
    with EmbeddedBroker() as own:
        prefix = "outage"
        config = _setup(own.bootstrap, prefix, tmp_path)
        messages = _drifting_messages(events_per_model=4000)
        expected = expected_alert_ids(messages)
        half = len(messages) // 2
        worker = WorkerProcess(own.bootstrap, config, tmp_path / "w.log")
        try:
            worker.wait_until(lambda h: h["status"] == "ok" and len(_inputs(h)) == ALL_PARTITIONS, what="assignment")
            produce(own.bootstrap, f"{prefix}.features", messages[:half])
            worker.wait_until(lambda h: h["counts"]["in"] >= half, what="first half consumed")

            outcome: dict = {}
            producer = threading.Thread(target=_produce_paced, daemon=True,
                                        args=(own.bootstrap, f"{prefix}.features", messages[half:], 20.0, outcome))
            producer.start()
            time.sleep(2.0)
            own.pause()
            seen = []
            try:
                paused_at = time.monotonic()
                while time.monotonic() - paused_at < 30.0:
                    assert worker.process.poll() is None, f"worker died while the broker was paused:\n{worker.log_text()}"
                    code, report = _health_with_status(worker)
                    seen.append((round(time.monotonic() - paused_at, 1), code, report and report["status"]))
                    time.sleep(0.5)
            finally:
                own.resume()
            assert (503, "degraded") in {(code, status) for _, code, status in seen}, f"health during the pause: {seen}"
            assert worker.process.poll() is None, worker.log_text()

            worker.wait_until(lambda h: h["status"] == "ok", timeout_s=30, what="ok after the broker came back")
            producer.join(timeout=60)
            assert outcome.get("remaining") == 0 and not outcome.get("errors"), outcome
            report = worker.wait_until(lambda h: h["counts"]["in"] >= len(messages), timeout_s=30,
                                       what="every event after the pause")
            assert report["counts"]["processed"] >= len(messages) and report["counts"]["rejected"] == 0
            code, report = _health_with_status(worker)
            assert (code, report["status"]) == (200, "ok")
            published = _published_alert_ids(own.bootstrap, f"{prefix}.alerts", expected)
            assert published == expected, f"missing {expected - published}, unexpected {published - expected}"
        finally:
            worker.stop()


# -- 3. hostile producer -----------------------------------------------------------------------
def _hostile_messages() -> list[tuple[bytes | None, bytes | None]]:
    nested = {"x": 1.0}
    for _ in range(50):
        nested = {"x": nested}
    return [
        (None, b"not json at all"),
        (None, b"\xff\xfe\xfd\x00 binary"),
        (b"tombstone", None),
        (None, b"[1, 2, 3]"),
        (None, b'"just a string"'),
        (b"h1", b'{"model": "h1"}'),
        (None, b'{"features": {"x": 1}}'),
        (b"m-00", b'{"model": "m-00", "features": {"f00": NaN}}'),
        (b"m-00", b'{"model": "m-00", "features": {"f00": Infinity}}'),
        (b"m-01", b'{"model": "m-01", "features": {"f00": 1e400}}'),
        (None, b"[" * 100_000 + b"]" * 100_000),
        (b"m-02", orjson.dumps({"model": "m-02", "features": nested})),
        (b"m-01", orjson.dumps({"model": "m-01", "features": {f"w{i:05d}": float(i) for i in range(10_000)}})),
        (b"m-00", orjson.dumps({"model": "m-00", "features": {"country": "x" * 5000}})),
        # A string where the feature has always been numeric (after that model's good events).
        (b"m-00", b'{"model": "m-00", "features": {"f00": "twelve"}}'),
        (b"m-02", b'{"model": "m-02", "features": {"f01": [1, 2]}}'),
        (b"m-02", b'{"model": "m-02", "features": {"f01": {"$numberDecimal": "1.5"}}}'),
        (b"m-01", b'{"model": "m-01", "ts": "yesterday", "features": {"f00": 1.0}}'),
    ]


def _produce_in_order(bootstrap: str, topic: str, messages) -> list[tuple[bytes | None, bytes | None, int, int]]:
    """Produce one at a time (the order of good and hostile events stays exact); returns
    ``(key, value, partition, offset)`` of every message the broker took."""
    producer = ConfluentProducer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 0,
                                  "message.max.bytes": 10_000_000})
    delivered, refused = [], []

    def report(err, message, key, value):
        if err:
            refused.append((key, (value or b"")[:60], err))
        else:
            delivered.append((key, value, message.partition(), message.offset()))

    for key, value in messages:
        producer.produce(topic, value=value, key=key, on_delivery=lambda err, m, k=key, v=value: report(err, m, k, v))
        assert producer.flush(30) == 0
    assert not refused, f"the broker refused: {refused}"
    return delivered


def _burst_through_a_worker(broker, prefix: str, tmp_path, hostile) -> tuple[WorkerProcess, list, dict]:
    """Good events, a hostile burst, more good events; returns the running worker, the hostile
    messages as delivered, and the dead letters by source (partition, offset)."""
    config = _setup(broker.bootstrap, prefix, tmp_path, "")
    good = list(SyntheticStream(models=MODELS[:3], events_per_model=1500, numeric_features=2, seed=3).messages())
    worker = WorkerProcess(broker.bootstrap, config, tmp_path / "w.log")
    worker.wait_until(lambda h: h["status"] == "ok" and len(_inputs(h)) == ALL_PARTITIONS, what="assignment")
    produce(broker.bootstrap, f"{prefix}.features", good[:2000])
    sent = _produce_in_order(broker.bootstrap, f"{prefix}.features", hostile)
    produce(broker.bootstrap, f"{prefix}.features", good[2000:])
    total = len(good) + len(sent)
    worker.wait_until(lambda h: h["counts"]["in"] >= total, timeout_s=30, what=f"all {total} messages")
    time.sleep(1.0)
    report = worker.health()
    assert worker.process.poll() is None, worker.log_text()
    counts = report["counts"]
    assert counts["in"] == counts["processed"] + counts["rejected"] == total, counts
    assert counts["processed"] == len(good), counts
    assert counts["rejected"] == len(sent), counts
    assert report["status"] == "ok", report
    letters = consume_all(broker.bootstrap, f"{prefix}.dlq", until=lambda ms: len(ms) >= len(sent), timeout_s=20)
    by_source = {}
    for m in letters:
        headers = dict(m.headers)
        by_source[(int(headers["streamdrift.source.partition"]), int(headers["streamdrift.source.offset"]))] = (m, headers)
    assert len(letters) == len(sent), f"{len(letters)} dead letters for {len(sent)} hostile messages"
    return worker, sent, by_source


def test_hostile_burst_goes_to_the_dead_letter_topic_and_the_worker_keeps_going(broker, unique_topic, tmp_path):
    prefix = unique_topic("hostile")
    worker = None
    try:
        worker, sent, letters = _burst_through_a_worker(broker, prefix, tmp_path, _hostile_messages())
        for key, value, partition, offset in sent:
            assert (partition, offset) in letters, f"not in the dead-letter topic: {(value or b'')[:60]!r}"
            letter, headers = letters[(partition, offset)]
            assert (letter.value or b"") == (value or b""), "the dead letter does not carry the original bytes"
            assert letter.key == key
            assert headers.get("streamdrift.reason"), f"no reason for {(value or b'')[:60]!r}"
            assert headers["streamdrift.source.topic"] == f"{prefix}.features".encode()
        reasons = {value: letters[(p, o)][1]["streamdrift.reason"].decode() for _, value, p, o in sent}
        wide = next(v for _, v in _hostile_messages() if v and v.startswith(b'{"model":"m-01","features":{"w00000"'))
        assert "limits.max_features" in reasons[wide]
        assert "has always been numeric" in reasons[b'{"model": "m-00", "features": {"f00": "twelve"}}']
    finally:
        if worker is not None:
            worker.stop()


def test_message_larger_than_a_produce_request_is_dead_lettered(broker, unique_topic, tmp_path):
    """A 2 MB message (the broker takes it) exceeds limits.max_message_bytes: it belongs in the
    dead-letter topic with its reason, and the events around it are processed and counted."""
    prefix = unique_topic("oversized")
    oversized = [(b"m-00", orjson.dumps({"model": "m-00", "features": {"blob": "x" * 2_000_000}}))]
    worker = None
    try:
        worker, sent, letters = _burst_through_a_worker(broker, prefix, tmp_path, oversized)
        (_, _, partition, offset), = sent
        _, headers = letters[(partition, offset)]
        assert b"limits.max_message_bytes" in headers["streamdrift.reason"]
    finally:
        if worker is not None:
            worker.stop()
