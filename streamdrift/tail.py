"""``streamdrift tail``: what the system says, as it says it (drift alerts, retrain requests and
model-version decisions)."""

from __future__ import annotations

import asyncio
import time

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Console

from .config import Config


def describe(topic_kind: str, message: dict) -> str:
    """One readable line for an alert, a retrain request or a model-version decision.

    >>> describe("alert", {"severity": "warning", "model": "m", "segment": None, "feature": "x", "kind": "feature",
    ...                    "detector": "ks", "direction": "up", "index": 12, "alert_id": "a-1",
    ...                    "window": {"mean": 1.0}, "reference": {"mean": 0.0}})
    '[yellow]WARNING [/] m x (feature) ks up at value 12  window mean 1 vs reference 0  a-1'
    >>> describe("decision", {"decision": "rollback", "model": "m", "version": "v2", "baseline": "v1", "labels": 380,
    ...                       "traffic": "shadow", "decision_id": "d-1",
    ...                       "loss_difference": {"estimate": 0.05, "lower": 0.01, "upper": 0.09}})
    '[bold red]ROLLBACK[/] m v2 (baseline v1, shadow): loss +0.05 [+0.01, +0.09] after 380 labels  d-1'
    """
    if topic_kind == "decision":
        color = "red" if message["decision"] == "rollback" else "green"
        diff = message["loss_difference"]
        return (f"[bold {color}]{message['decision'].upper():<8}[/] {message['model']} {message['version']} "
                f"(baseline {message['baseline']}, {message['traffic']}): loss {diff['estimate']:+.3g} "
                f"[{diff['lower']:+.3g}, {diff['upper']:+.3g}] after {message['labels']} labels  "
                f"{message['decision_id']}")
    if topic_kind == "alert":
        color = "red" if message["severity"] == "critical" else "yellow"
        where = message["model"] + (f"/{message['segment']}" if message.get("segment") else "")
        ref, win = message.get("reference") or {}, message.get("window") or {}
        detail = ""
        if "mean" in win and "mean" in ref:
            detail = f"  window mean {win['mean']:.3g} vs reference {ref['mean']:.3g}"
        elif "missing_rate" in win:
            detail = f"  missing {win['missing_rate']:.1%} vs reference {ref.get('missing_rate', 0):.1%}"
        elif "top" in win:
            detail = "  window " + ", ".join(f"{k} {v:.0%}" for k, v in list(win["top"].items())[:3])
        return (f"[{color}]{message['severity'].upper():<8}[/] {where} {message['feature']} ({message['kind']}) "
                f"{message['detector']} {message.get('direction') or ''} at value {message['index']}{detail}  "
                f"{message['alert_id']}").replace("  at", " at")
    color = "red" if message.get("severity") == "critical" else "magenta"
    return f"[bold {color}]RETRAIN [/] {message['model']}: {message['reason']}  {message['request_id']}"


async def _tail(config: Config, from_beginning: bool, as_json: bool, max_messages: int | None,
                seconds: float | None, console: Console) -> int:
    topics = {config.topics.alerts: "alert", config.topics.retrain_requests: "retrain",
              config.topics.model_decisions: "decision"}
    consumer = AIOKafkaConsumer(bootstrap_servers=config.broker, enable_auto_commit=False,
                                **config.security_options())
    await consumer.start()
    seen = 0
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or
                                                                   await _partitions(consumer, t))]
        consumer.assign(partitions)
        if from_beginning:
            await consumer.seek_to_beginning(*partitions)
        else:
            await consumer.seek_to_end(*partitions)
        deadline = None if seconds is None else time.monotonic() + seconds
        while deadline is None or time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, messages in batches.items():
                for m in messages:
                    if as_json:
                        print(m.value.decode(), flush=True)
                    else:
                        console.print(describe(topics[tp.topic], orjson.loads(m.value)), highlight=False)
                    seen += 1
                    if max_messages is not None and seen >= max_messages:
                        return 0
    finally:
        await consumer.stop()
    return 0


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or {0}


def tail(config: Config, from_beginning: bool = False, as_json: bool = False, max_messages: int | None = None,
         seconds: float | None = None) -> int:
    console = Console()
    try:
        return asyncio.run(_tail(config, from_beginning, as_json, max_messages, seconds, console))
    except KeyboardInterrupt:
        return 0
