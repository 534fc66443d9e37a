"""``streamdrift demo``: the whole system in one command, stopping by itself.

Starts the embedded Tansu broker and a ``streamdrift run`` worker, produces synthetic events for
three models with drift injected at known points (plus a few malformed events) and a canary: a
new version of a fourth model on part of its traffic, worse than the version it replaces, whose
labels arrive later. Prints alerts, retrain requests and the canary's rollback as they arrive,
and ends with what was injected against what was caught.
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
import urllib.error
import urllib.request
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from rich.console import Console
from rich.table import Table

from .config import Topics
from .stream.broker import EmbeddedBroker
from .stream.topics import ensure_topics
from .synthetic import Drift, SyntheticStream
from .synthetic_versions import VersionedDeployment
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
#: The canary: pricing-v2 gets 30% of the requests from request 1,000 on and errs on 25% of them,
#: where pricing-v1 errs on 10%.
CANARY = VersionedDeployment(model="pricing", baseline="pricing-v1", version="pricing-v2", traffic="split",
                             requests=6_000, start=1_000, share=0.3, baseline_error=0.10, version_error=0.25,
                             delay=0, labels_name_version=True, seed=7)
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


async def _produce(bootstrap: str, stream: SyntheticStream, topics: Topics, port: int) -> int:
    """The models' events with the canary's predictions among them, then, once the worker has
    read them, the canary's labels (they arrive later; a label read before the prediction it is
    for finds nothing to join)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        count = 0
        canary = [(kind, key, value) for kind, key, value in CANARY.messages()]
        predictions = iter([m for m in canary if m[0] == "features"])
        for i, (key, value) in enumerate(stream.messages()):
            await producer.send(topics.features, value=value, key=key)
            count += 1
            if i % 3 == 0:
                prediction = next(predictions, None)
                if prediction is not None:
                    await producer.send(topics.features, value=prediction[2], key=prediction[1])
                    count += 1
            if i == 3_000:
                for bad in MALFORMED:
                    await producer.send(topics.features, value=bad, key=b"fraud-v3")
                    count += 1
        for _, key, value in predictions:
            await producer.send(topics.features, value=value, key=key)
            count += 1
        await producer.flush()
        await _consumed(port, count)
        for _, key, value in (m for m in canary if m[0] == "labels"):
            await producer.send(topics.labels, value=value, key=key)
            count += 1
        await producer.flush()
        return count
    finally:
        await producer.stop()


async def _consumed(port: int, events: int, timeout_s: float = 30.0) -> None:
    """Wait until the worker's ``/health`` counts ``events`` in."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if orjson.loads(response.read())["counts"]["in"] >= events:
                    return
        except urllib.error.HTTPError as exc:  # 503 while starting still has a body
            if orjson.loads(exc.read()).get("counts", {}).get("in", 0) >= events:
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)


async def _watch(bootstrap: str, topics: Topics, console: Console, timeout_s: float, want_requests: int):
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    alerts, requests, dead, decisions = [], [], [], []
    kinds = {topics.alerts: "alert", topics.retrain_requests: "retrain", topics.dead_letter: "dlq",
             topics.model_decisions: "decision"}
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
                    {"alert": alerts, "retrain": requests, "decision": decisions}[kind].append(data)
                    console.print(describe(kind, data), highlight=False)
            caught = {(d.model, d.feature) for d in DRIFTS} <= {(a["model"], a["feature"]) for a in alerts}
            if done_at is None and caught and len(requests) >= want_requests and len(dead) >= len(MALFORMED) \
                    and decisions:
                done_at = time.monotonic() + 2.0  # let the other detectors of the same changes report
    finally:
        await consumer.stop()
    return alerts, requests, dead, decisions


def _summary(console: Console, alerts: list[dict], requests: list[dict], dead: list[str], decisions: list[dict],
             produced: int, elapsed: float) -> bool:
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
    rolled_back = [d for d in decisions if d["decision"] == "rollback" and d["version"] == CANARY.version]
    if rolled_back:
        d = rolled_back[0]
        console.print(f"canary {CANARY.model} {CANARY.version} ({CANARY.share:.0%} of requests, error "
                      f"{CANARY.version_error:.0%} vs {CANARY.baseline_error:.0%}): rolled back after {d['labels']:,} "
                      f"labels, loss {d['loss']['version']:.1%} vs {d['loss']['baseline']:.1%} "
                      f"(difference in [{d['loss_difference']['lower']:+.1%}, {d['loss_difference']['upper']:+.1%}])")
    else:
        console.print(f"canary {CANARY.model} {CANARY.version}: [red]not rolled back[/]")
    ok &= not false and models_with_requests == ["churn-v1", "fraud-v3"] and len(dead) == len(MALFORMED) \
        and len(rolled_back) == 1 == len(decisions)
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
                                                     topics.retrain_requests, topics.model_decisions,
                                                     topics.dead_letter)}))
        port = _free_port()
        env = {**os.environ, "STREAMDRIFT_BROKER": broker.bootstrap}
        worker = subprocess.Popen([sys.executable, "-m", "streamdrift.cli", "run", "--config", str(config),
                                   "--web-port", str(port), "--log-level", "warning"], env=env)
        try:
            stream = SyntheticStream(models=MODELS, events_per_model=events_per_model, drifts=DRIFTS,
                                     numeric_features=8, seed=7)
            console.print(f"worker started (pid {worker.pid}, /health on port {port}); producing "
                          f"{events_per_model:,} events for each of {', '.join(MODELS)}; drift injected at event "
                          f"{DRIFT_AT:,} into " + ", ".join(f"{d.model}/{d.feature} ({d.kind})" for d in DRIFTS)
                          + f"; canary {CANARY.version} of {CANARY.model} on {CANARY.share:.0%} of its requests")
            produced = asyncio.run(_produce(broker.bootstrap, stream, topics, port))
            remaining = max(5.0, timeout_s - (time.monotonic() - started))
            alerts, requests, dead, decisions = asyncio.run(_watch(broker.bootstrap, topics, console, remaining, 2))
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
        ok = _summary(console, alerts, requests, dead, decisions, produced, time.monotonic() - started)
    return 0 if ok else 1
