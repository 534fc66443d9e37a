"""``streamdrift demo``: the whole system in one command, stopping by itself.

Starts the embedded Tansu broker and a ``streamdrift run`` worker, produces synthetic events for
three models with drift injected at known points (plus a few malformed events), prints alerts
and retrain requests as they arrive, and ends with what was injected against what was caught.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from rich.console import Console
from rich.table import Table

from .config import Topics
from .stream.broker import EmbeddedBroker
from .stream.topics import ensure_topics
from .synthetic import Drift, SyntheticStream
from .tail import describe

DRIFT_AT = 5_000
DRIFTS = [
    Drift("fraud-v3", "f01", DRIFT_AT, "mean"),
    Drift("fraud-v3", "country", DRIFT_AT, "category"),
    Drift("churn-v1", "amount", DRIFT_AT, "variance"),
    Drift("churn-v1", "f03", DRIFT_AT, "missing"),
]
MODELS = ["fraud-v3", "churn-v1", "ranker-v7"]
MALFORMED = [b"not json at all", b'{"model": "fraud-v3"}', b'{"model": "fraud-v3", "features": {"f01": [1, 2]}}',
             b'{"model": "fraud-v3", "features": {"f01": "a string"}}']
DEMO_CONFIG = """
[detectors]
reference_size = 2000
[retrain]
min_features = 2
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _produce(bootstrap: str, stream: SyntheticStream, topic: str) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        count = 0
        for i, (key, value) in enumerate(stream.messages()):
            await producer.send(topic, value=value, key=key)
            count += 1
            if i == 3_000:
                for bad in MALFORMED:
                    await producer.send(topic, value=bad, key=b"fraud-v3")
                    count += 1
        await producer.flush()
        return count
    finally:
        await producer.stop()


async def _watch(bootstrap: str, topics: Topics, console: Console, timeout_s: float, want_requests: int):
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    alerts, requests, dead = [], [], []
    kinds = {topics.alerts: "alert", topics.retrain_requests: "retrain", topics.dead_letter: "dlq"}
    try:
        partitions = [TopicPartition(t, p) for t in kinds for p in range(topics.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout_s
        done_at = None
        while time.monotonic() < deadline and (done_at is None or time.monotonic() < done_at):
            for tp, messages in (await consumer.getmany(timeout_ms=300)).items():
                for m in messages:
                    kind = kinds[tp.topic]
                    if kind == "dlq":
                        reason = dict(m.headers).get("streamdrift.reason", b"").decode()
                        dead.append(reason)
                        console.print(f"[dim]DLQ      {reason}[/]", highlight=False)
                        continue
                    data = orjson.loads(m.value)
                    (alerts if kind == "alert" else requests).append(data)
                    console.print(describe(kind, data), highlight=False)
            caught = {(d.model, d.feature) for d in DRIFTS} <= {(a["model"], a["feature"]) for a in alerts}
            if done_at is None and caught and len(requests) >= want_requests and len(dead) >= len(MALFORMED):
                done_at = time.monotonic() + 2.0  # let the other detectors of the same changes report
    finally:
        await consumer.stop()
    return alerts, requests, dead


def _summary(console: Console, alerts: list[dict], requests: list[dict], dead: list[str], produced: int,
             elapsed: float) -> bool:
    table = Table(title="What was injected, and what streamdrift caught")
    for column in ("model", "feature", "injected", "at event", "caught by", "first after (events)"):
        table.add_column(column)
    ok = True
    for d in DRIFTS:
        hits = sorted((a for a in alerts if a["model"] == d.model and a["feature"] == d.feature),
                      key=lambda a: a["index"])
        ok &= bool(hits)
        table.add_row(d.model, d.feature, d.kind, str(d.at), ", ".join(a["detector"] for a in hits) or "[red]missed[/]",
                      str(hits[0]["index"] - d.at) if hits else "-")
    console.print(table)
    injected = {(d.model, d.feature) for d in DRIFTS}
    false = [a for a in alerts if (a["model"], a["feature"]) not in injected]
    models_with_requests = sorted({r["model"] for r in requests})
    console.print(f"events produced: {produced:,} ({len(MALFORMED)} malformed) in {elapsed:.1f} s")
    console.print(f"alerts on stable features (false alarms): {len(false)}")
    console.print(f"retrain requests: {len(requests)} for {', '.join(models_with_requests) or 'none'} "
                  f"(expected one each for fraud-v3 and churn-v1; ranker-v7 has no drift)")
    console.print(f"dead-letter events: {len(dead)} of {len(MALFORMED)} malformed")
    ok &= not false and models_with_requests == ["churn-v1", "fraud-v3"] and len(dead) == len(MALFORMED)
    console.print("[bold green]demo OK[/]" if ok else "[bold red]demo: something was missed[/]")
    return ok


def run_demo(events_per_model: int = 9_000, timeout_s: float = 50.0) -> int:
    console = Console()
    started = time.monotonic()
    topics = Topics()
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory(prefix="streamdrift-demo-") as tmp:
        console.print(f"[bold]streamdrift demo[/]: embedded broker at {broker.bootstrap}")
        config = Path(tmp) / "demo.toml"
        config.write_text(DEMO_CONFIG)
        asyncio.run(ensure_topics(broker.bootstrap, {t: topics.partitions for t in
                                                    (topics.features, topics.labels, topics.alerts,
                                                     topics.retrain_requests, topics.dead_letter)}))
        port = _free_port()
        env = {**os.environ, "STREAMDRIFT_BROKER": broker.bootstrap}
        worker = subprocess.Popen([sys.executable, "-m", "streamdrift.cli", "run", "--config", str(config),
                                   "--web-port", str(port), "--log-level", "warning"], env=env)
        try:
            stream = SyntheticStream(models=MODELS, events_per_model=events_per_model, drifts=DRIFTS,
                                     numeric_features=8, seed=7)
            console.print(f"worker started (pid {worker.pid}, /health on port {port}); producing "
                          f"{events_per_model:,} events for each of {', '.join(MODELS)}; drift injected at event "
                          f"{DRIFT_AT:,} into " + ", ".join(f"{d.model}/{d.feature} ({d.kind})" for d in DRIFTS))
            produced = asyncio.run(_produce(broker.bootstrap, stream, topics.features))
            remaining = max(5.0, timeout_s - (time.monotonic() - started))
            alerts, requests, dead = asyncio.run(_watch(broker.bootstrap, topics, console, remaining, 2))
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
        ok = _summary(console, alerts, requests, dead, produced, time.monotonic() - started)
    return 0 if ok else 1
