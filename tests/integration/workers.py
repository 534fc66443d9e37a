"""Helpers for tests that run real ``streamdrift run`` processes against the test broker, and
talk to the broker with other clients (confluent-kafka produces, kafka-python consumes)."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import orjson
from confluent_kafka import Producer as ConfluentProducer

from streamdrift.config import Config
from streamdrift.detectors import MonitorSettings
from streamdrift.events import Record
from streamdrift.pipeline import DriftPipeline

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaConsumer as KafkaPythonConsumer
    from kafka import TopicPartition as KafkaPythonPartition


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, so no worker outlives a killed run."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_text(prefix: str, extra: str = "") -> str:
    """A TOML config whose topics and group are private to one test."""
    return f"""
group_id = "{prefix}.group"
checkpoint_seconds = 1.0
[topics]
features = "{prefix}.features"
labels = "{prefix}.labels"
alerts = "{prefix}.alerts"
retrain_requests = "{prefix}.retrain"
model_decisions = "{prefix}.decisions"
dead_letter = "{prefix}.dlq"
state = "{prefix}.state"
partitions = 4
{extra}
"""


class WorkerProcess:
    """A ``streamdrift run`` child process with its own web port."""

    def __init__(self, bootstrap: str, config_path: Path, log_path: Path, extra_args: tuple[str, ...] = ()):
        self.port = free_port()
        self.log_path = log_path
        self.log = open(log_path, "ab")
        env = {**os.environ, "STREAMDRIFT_BROKER": bootstrap}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamdrift.cli", "run", "--config", str(config_path),
             "--web-port", str(self.port), *extra_args],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

    def health(self) -> dict | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                return orjson.loads(r.read())
        except urllib.error.HTTPError as exc:  # 503 while starting or degraded still has a body
            return orjson.loads(exc.read())
        except OSError:
            return None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
            return r.read().decode()

    def wait_until(self, predicate, timeout_s: float = 30.0, what: str = "condition") -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log_text()}")
            report = self.health()
            if report is not None and predicate(report):
                return report
            time.sleep(0.2)
        raise AssertionError(f"worker: timed out waiting for {what}; last health {self.health()}\n{self.log_text()}")

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


def produce(bootstrap: str, topic: str, messages) -> int:
    """Produce (key, value) pairs with librdkafka, partitioned like the Java client (murmur2)."""
    producer = ConfluentProducer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random",
                                  "linger.ms": 5, "queue.buffering.max.messages": 1_000_000})
    count = 0
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
        if count % 10_000 == 0:
            producer.poll(0)
    remaining = producer.flush(30)
    assert remaining == 0, f"{remaining} messages not delivered"
    return count


def consume_all(bootstrap: str, topic: str, *, until=None, timeout_s: float = 30.0, partitions: int = 4,
                settle_s: float = 1.0) -> list:
    """Every message on ``topic`` (kafka-python, assigned partitions, from the beginning) until
    ``until(messages)`` holds and nothing new came for ``settle_s``, or the timeout."""
    consumer = KafkaPythonConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                   consumer_timeout_ms=200)
    tps = [KafkaPythonPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    messages = []
    deadline = time.monotonic() + timeout_s
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline:
            got = False
            for message in consumer:
                messages.append(message)
                got = True
            if got:
                last_new = time.monotonic()
            done = until is None or until(messages)
            if done and time.monotonic() - last_new >= settle_s:
                break
    finally:
        consumer.close()
    return messages


def expected_alert_ids(messages, reference_size: int = 1000) -> set[str]:
    """What an uninterrupted processor publishes for the same per-model input order."""
    pipeline = DriftPipeline(Config(detectors=MonitorSettings(reference_size=reference_size)))
    records = [Record(value, key, "x", 0, i) for i, (key, value) in enumerate(messages)]
    ids = set()
    for i in range(0, len(records), 5000):
        ids |= {a["alert_id"] for a in pipeline.process(records[i:i + 5000]).alerts}
    return ids
