"""The processor's hot path: batches from the ``features`` topic through the pipeline to the
alert, retrain-request and dead-letter topics, then the input offsets are committed.

The loop only decodes, routes, publishes and commits; everything else is ``DriftPipeline``.
Offsets are committed after the outputs of a batch are acknowledged, so a crash replays the
batch (at-least-once) and the replay republishes alerts under the same deterministic ids.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import orjson
from aiokafka.errors import KafkaError

from streamdrift.config import Config
from streamdrift.pipeline import DriftPipeline, Output
from .batch_consumer import BatchConsumer, Publisher, Record, TopicPartition, next_offsets
from .metrics import Metrics, reason_code
from .topics import ensure_topics

log = logging.getLogger("streamdrift.worker")

#: Seconds without a successful broker round trip after which the worker reports "degraded".
DEGRADED_AFTER_S = 10.0


def dead_letter(record: Record, reason: str) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """The dead-letter message: the original bytes and key, the reason and the source in headers."""
    headers = [
        ("streamdrift.reason", reason.encode()),
        ("streamdrift.source.topic", record.topic.encode()),
        ("streamdrift.source.partition", str(record.partition).encode()),
        ("streamdrift.source.offset", str(record.offset).encode()),
    ]
    return record.key, record.value if record.value is not None else b"", headers


class Worker:
    """One ``streamdrift run`` process's processing loop."""

    def __init__(self, config: Config, references: dict | None = None, metrics: Metrics | None = None,
                 on_output: Callable[[Output], None] | None = None):
        self.config = config
        self.pipeline = DriftPipeline(config, references)
        self.metrics = metrics or Metrics()
        self.on_output = on_output
        self.consumer: BatchConsumer | None = None
        self.publisher: Publisher | None = None
        self.started = False
        self.last_ok = time.monotonic()
        self.error: str | None = None
        self.counts = {"in": 0, "processed": 0, "rejected": 0, "alerts": 0, "retrain_requests": 0}
        self._stop = asyncio.Event()
        self._partitions: frozenset[TopicPartition] = frozenset()

    # -- health -----------------------------------------------------------------------------
    def health(self) -> dict:
        stale = time.monotonic() - self.last_ok
        status = "starting" if not self.started else "degraded" if stale > DEGRADED_AFTER_S else "ok"
        return {"status": status, "seconds_since_broker_ok": round(stale, 3), "error": self.error,
                "partitions": sorted(f"{tp.topic}/{tp.partition}" for tp in self._partitions),
                "models": len(self.pipeline.models), "counts": dict(self.counts),
                "config_version": self.pipeline.version}

    def stop(self) -> None:
        self._stop.set()

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self) -> None:
        c = self.config
        security = c.security_options()
        t = c.topics
        await ensure_topics(c.broker, {name: t.partitions for name in
                                       (t.features, t.labels, t.alerts, t.retrain_requests, t.dead_letter)},
                            security=security)
        self.publisher = Publisher(c.broker, security=security)
        self.consumer = BatchConsumer(c.broker, [t.features], group_id=c.group_id, max_records=c.batch_size,
                                      on_assigned=self._assigned, on_revoked=self._revoked, security=security)
        await self.publisher.start()
        await self.consumer.start()
        self.started = True
        self.last_ok = time.monotonic()
        log.info("worker started: broker %s, group %s, input %s", c.broker, c.group_id, t.features)
        lag_every, last_lag = 2.0, 0.0
        try:
            while not self._stop.is_set():
                try:
                    batch = await self.consumer.getmany()
                    self.last_ok = time.monotonic()
                    if batch:
                        await self.handle(batch)
                    if time.monotonic() - last_lag > lag_every:
                        last_lag = time.monotonic()
                        await self._record_lag()
                    self.error = None
                except KafkaError as exc:
                    # The broker is away: keep the batch's offsets uncommitted and retry.
                    self.error = f"{type(exc).__name__}: {exc}"
                    self.metrics.degraded.set(1)
                    log.warning("broker error, retrying: %s", self.error)
                    await asyncio.sleep(1.0)
                self.metrics.degraded.set(1 if self.health()["status"] == "degraded" else 0)
        finally:
            await self.consumer.stop()
            await self.publisher.stop()
            log.info("worker stopped: %s", self.counts)

    async def handle(self, batch: list[Record]) -> Output:
        """Process one batch: pipeline, publish outputs (awaiting acks), commit offsets."""
        started = time.perf_counter()
        out = self.pipeline.process(batch)
        await self._publish(out)
        await self.consumer.commit(next_offsets(batch))
        now = time.time()
        self._count(batch, out, started, now)
        if self.on_output is not None:
            self.on_output(out)
        return out

    async def _publish(self, out: Output) -> None:
        t = self.config.topics
        sends = []
        if out.alerts:
            sends.append(self.publisher.send_batch(
                t.alerts, [(a["model"].encode(), orjson.dumps(a), None) for a in out.alerts]))
        if out.retrain_requests:
            sends.append(self.publisher.send_batch(
                t.retrain_requests, [(r["model"].encode(), orjson.dumps(r), None) for r in out.retrain_requests]))
        if out.rejected:
            sends.append(self.publisher.send_batch(
                t.dead_letter, [dead_letter(r.record, r.reason) for r in out.rejected]))
        if sends:
            await asyncio.gather(*sends)
        for alert in out.alerts:
            log.info("alert %s model=%s feature=%s detector=%s severity=%s", alert["alert_id"], alert["model"],
                     alert["feature"], alert["detector"], alert["severity"],
                     extra={"alert_id": alert["alert_id"], "model": alert["model"]})
        for request in out.retrain_requests:
            log.info("retrain request %s model=%s: %s", request["request_id"], request["model"], request["reason"],
                     extra={"request_id": request["request_id"], "model": request["model"]})

    def _count(self, batch: list[Record], out: Output, started: float, now: float) -> None:
        m = self.metrics
        self.counts["in"] += len(batch)
        self.counts["processed"] += out.processed
        self.counts["rejected"] += len(out.rejected)
        self.counts["alerts"] += len(out.alerts)
        self.counts["retrain_requests"] += len(out.retrain_requests)
        m.events_in.inc(len(batch))
        m.events_processed.inc(out.processed)
        for rejected in out.rejected:
            m.events_rejected.labels(reason_code(rejected.reason)).inc()
        for a in out.alerts:
            m.alerts.labels(a["model"], a["feature"], a["kind"], a["detector"], a["severity"]).inc()
        for r in out.retrain_requests:
            m.retrain_requests.labels(r["model"]).inc()
        m.batch_seconds.observe(time.perf_counter() - started)
        oldest = min((r.timestamp_ms for r in batch if r.timestamp_ms), default=None)
        if oldest:
            m.latency.observe(max(0.0, now - oldest / 1000.0))
        m.models.set(len(self.pipeline.models))
        m.monitored.set(self.pipeline.monitored_pairs)

    async def _record_lag(self) -> None:
        for tp, lag in (await self.consumer.lag()).items():
            self.metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)

    # -- partitions -------------------------------------------------------------------------
    async def _assigned(self, partitions: frozenset[TopicPartition]) -> None:
        self._partitions = self._partitions | partitions
        log.info("assigned %s", sorted(f"{tp.topic}/{tp.partition}" for tp in partitions))

    async def _revoked(self, partitions: frozenset[TopicPartition]) -> None:
        self._partitions = self._partitions - partitions
        log.info("revoked %s", sorted(f"{tp.topic}/{tp.partition}" for tp in partitions))
