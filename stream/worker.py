"""The processor's hot path: batches from the ``features`` topic through the pipeline to the
alert, retrain-request, model-decision and dead-letter topics; state checkpoints; offset commits.

The loop only decodes, routes, publishes and commits; everything else is ``DriftPipeline``.
Every ``checkpoint_seconds`` the state of the models changed since the last checkpoint goes to
the compacted state topic, and only once it is acknowledged are the input offsets it covers
committed. After a crash the next owner of a partition restores the state and resumes from the
committed offset; events the state already holds are skipped per stream, and alerts the
replay re-derives carry the ids they had (at-least-once, de-duplicable by ``alert_id``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from collections.abc import Callable

import orjson
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, KafkaError, MessageSizeTooLargeError

from streamdrift.config import Config
from streamdrift.kernels import compile_all
from streamdrift.pipeline import DriftPipeline, Output, packed
from streamdrift.process_tuning import limit_blas_threads, trim_memory, tune_gc

from .batch_consumer import Batch, BatchConsumer, Publisher, Record, TopicPartition, offsets_after, oldest_timestamp_ms
from .checkpoint import read_state, write_order
from .metrics import Metrics, reason_code
from .topics import ensure_topics

log = logging.getLogger("streamdrift.worker")
#: How long a fetch may wait for data. One fetch covers the features and the labels partitions,
#: and a broker may hold it this long when some of them (usually labels) have nothing new, even
#: when others have: measured on Tansu, aiokafka's default of 500 ms took 600 ms per 20,000 events.
FETCH_MAX_WAIT_MS = 50

#: What ``/health`` counts: events in (= processed + rejected), alerts, retrain requests, late labels,
#: detections below their effect floor (``min_effect``).
COUNTS = ("in", "processed", "rejected", "alerts", "retrain_requests", "labels_joined", "labels_unmatched",
          "predictions_expired", "below_effect_floor", "model_decisions")

#: State records packed at a time by a periodic checkpoint on its way to the broker: between
#: two such slices the hot path runs (one slice of numeric monitors packs in ~1 ms).
STATE_SLICE = 24

#: A periodic checkpoint is captured a slice of models at a time, each slice between two batches
#: and this long at most (at least one model): alerts wait that long for it, not the time it
#: takes to capture every changed model (at 256 models, one to two seconds).
CAPTURE_SLICE_S = 0.015
#: Models captured between two looks at the clock.
CAPTURE_STEP = 4
#: A periodic checkpoint is spread over time, so that it never takes the cores from the hot path
#: at once (the broker storing a round of state shares them with the worker): a slice is captured
#: at most every ``CAPTURE_EVERY_S``, and the state is sent at most ``STATE_BYTES_PER_S`` per worker
#: process. Measured (``bench_stream.py``): a round of 64 new models, their references with it,
#: sent at once, held batches up by up to half a second as the broker stored it.
CAPTURE_EVERY_S = 0.1
STATE_BYTES_PER_S = 4 << 20

#: Seconds without a successful broker round trip after which the worker reports "degraded".
DEGRADED_AFTER_S = 10.0
#: How long one health probe of the broker may take.
PROBE_TIMEOUT_S = 5.0


def truncated(rejected, limit: int):
    """A rejected event whose bytes are too large even for the dead-letter topic keeps its first
    ``limit`` bytes, and says so in its reason."""
    record = rejected.record
    if record.value is None or len(record.value) <= limit:
        return rejected
    shorter = replace(record, value=record.value[:limit])
    return type(rejected)(shorter, f"{rejected.reason} [dead letter truncated from {len(record.value)} "
                                   f"to {limit} bytes]")




def _later(*offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """Per partition, the furthest of several sets of offsets to commit.

    >>> tp = TopicPartition("t", 0)
    >>> _later({tp: 5}, {tp: 9}, {})
    {TopicPartition(topic='t', partition=0): 9}
    """
    out: dict[TopicPartition, int] = {}
    for each in offsets:
        for tp, offset in each.items():
            out[tp] = max(out.get(tp, offset), offset)
    return out


async def create_topics(config: Config) -> None:
    """The topics a worker reads and writes, those that do not exist yet (state: compacted)."""
    t = config.topics
    await ensure_topics(config.broker, {name: t.partitions for name in
                                        (t.features, t.labels, t.alerts, t.retrain_requests, t.model_decisions,
                                         t.dead_letter, t.state)},
                        compacted={t.state}, security=config.security_options())


def _waited_ms(batch: list[Record], now: float) -> float:
    """How long before ``now`` (wall seconds) the batch's oldest event was produced, by its Kafka
    timestamp (0 when none carries one): the time it spent in producer, broker and fetch.

    >>> _waited_ms([Record(b"{}", timestamp_ms=1_000), Record(b"{}", timestamp_ms=1_500)], 2.0)
    1000.0
    """
    stamps = [r.timestamp_ms for r in batch if r.timestamp_ms is not None]
    return now * 1e3 - min(stamps) if stamps else 0.0


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
    """The processing loop of one consumer-group member, in this process (``processes = N``
    runs N of them, see ``worker_processes.py``)."""

    def __init__(self, config: Config, references: dict | None = None, metrics: Metrics | None = None,
                 on_output: Callable[[Output], None] | None = None):
        self.config = config
        tune_gc()
        limit_blas_threads()
        self.processes = 1
        self.pipeline = DriftPipeline(config, references)
        # The compiled kernels, loaded from numba's cache now (a few tenths of a second) rather
        # than inside the first batch, whose alerts would wait for them.
        compile_all()
        self.metrics = metrics or Metrics()
        self.on_output = on_output
        self.consumer: BatchConsumer | None = None
        self.publisher: Publisher | None = None
        self.started = False
        self.last_ok = time.monotonic()
        self.error: str | None = None
        self.counts = dict.fromkeys(COUNTS, 0)
        self._stop = asyncio.Event()
        self._partitions: frozenset[TopicPartition] = frozenset()
        self._uncommitted: dict[TopicPartition, int] = {}
        #: Held while a batch is processed and published, while state is saved, and during a
        #: rebalance, so that a handover never splits a batch from the state that holds it.
        self._lock = asyncio.Lock()
        self._last_checkpoint = time.monotonic()
        #: The periodic checkpoint on its way to the broker while the next batches are processed;
        #: its result is the input offsets it covers, committed once it is acknowledged.
        self._state_write: asyncio.Task | None = None
        #: The periodic checkpoint being captured, a slice between two batches (``_capture``).
        self._round: _Round | None = None
        #: Whether a hand-over or a stop waits for the periodic checkpoint: its sends unpaced.
        self._hurry = False
        #: The last batch's outputs on their way to the broker (``handle(wait=False)``).
        self._publishing: asyncio.Future | None = None
        #: Revocations so far: records handed out before one are stale after it (``_next_batch``).
        self._revocations = 0
        self._evicted_seen = 0
        self.restored_monitors = 0

    # -- health -----------------------------------------------------------------------------
    def health(self) -> dict:
        stale = time.monotonic() - self.last_ok
        status = "starting" if not self.started else "degraded" if stale > DEGRADED_AFTER_S else "ok"
        return {"status": status, "seconds_since_broker_ok": round(stale, 3), "error": self.error,
                "partitions": sorted(f"{tp.topic}/{tp.partition}" for tp in self._partitions
                                     if tp.topic == self.config.topics.features),
                "label_partitions": sorted(f"{tp.topic}/{tp.partition}" for tp in self._partitions
                                           if tp.topic == self.config.topics.labels),
                "models": self.pipeline.model_count, "processes": self.processes, "counts": dict(self.counts),
                "restored_monitors": self.restored_monitors,
                "config_version": self.pipeline.version}

    def stop(self) -> None:
        self._stop.set()

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self) -> None:
        c = self.config
        security = c.security_options()
        t = c.topics
        await create_topics(c)
        self.publisher = Publisher(c.broker, security=security)
        # Labels are keyed by model like features: with the range assignor, partition p of both
        # topics goes to the same worker, where the model's predictions wait for their labels.
        self.consumer = BatchConsumer(c.broker, [t.features, t.labels], group_id=c.group_id,
                                      max_records=c.batch_size, on_assigned=self._assigned,
                                      on_revoked=self._revoked, security=security,
                                      partition_assignment_strategy=(RangePartitionAssignor,),
                                      fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
                                      max_partition_fetch_bytes=c.max_partition_fetch_bytes)
        await self.publisher.start()
        await self.consumer.start()
        self.started = True
        self.last_ok = time.monotonic()
        log.info("worker started: broker %s, group %s, inputs %s and %s", c.broker, c.group_id, t.features, t.labels)
        lag_every, last_lag = 2.0, 0.0
        try:
            while not self._stop.is_set():
                try:
                    waited = time.perf_counter()
                    batch, revocations = await self._next_batch()
                    self.metrics.fetch_wait.inc(time.perf_counter() - waited)
                    if batch:
                        self.last_ok = time.monotonic()
                        await self.handle(batch, revocations, wait=False)
                    if self._state_write is not None and self._state_write.done():
                        await self._commit(await self._state_written())
                    if self._round is not None:
                        if time.perf_counter() - self._round.captured >= CAPTURE_EVERY_S:
                            await self._capture_slice()
                    elif self._state_write is None and time.monotonic() - self._last_checkpoint >= c.checkpoint_seconds:
                        await self._checkpoint_in_background()
                    if time.monotonic() - last_lag > lag_every:
                        last_lag = time.monotonic()
                        await self._probe()
                except KafkaError as exc:
                    # The broker is away: keep the batch's offsets uncommitted and retry.
                    self.error = f"{type(exc).__name__}: {exc}"
                    self.metrics.degraded.set(1)
                    log.warning("broker error, retrying: %s", self.error)
                    await asyncio.sleep(1.0)
                self.metrics.degraded.set(1 if self.health()["status"] == "degraded" else 0)
        finally:
            try:
                await self.consumer.stop()  # hands the partitions over: state written, offsets committed
            finally:
                if self._state_write is not None or self._round is not None:  # no hand-over waited for it
                    try:
                        await self._commit(await self._state_written())
                    except KafkaError as exc:
                        log.warning("last state checkpoint not written: %s", exc)
                await self._outputs_acknowledged()  # (no hand-over waited for them either)
                await self.publisher.stop()
            log.info("worker stopped: %s", self.counts)

    async def _next_batch(self) -> tuple[Batch, int]:
        """Up to ``batch_size`` records: what has arrived, topped up for at most ``linger_ms``.
        Monitors cost a fixed amount per update, so a few large batches beat many small ones;
        the linger bounds what that adds to alert latency.

        With the count of revocations the records are valid under. A rebalance can run while a
        top-up waits: records handed out before its revocation were not in the state handed over,
        and the commits did not pass them, so they are read again from the committed offset -
        processed as well, they would be counted twice by a worker that gets the partition back
        (seen after a broker outage). aiokafka marks a reassignment before it calls the revoke
        callback and hands out nothing while one is in progress, so what a ``getmany`` returns is
        valid unless a revocation comes after it returned: then what came before is dropped."""
        batch = await self.consumer.getmany()
        revocations = self._revocations
        deadline = time.monotonic() + self.config.linger_ms / 1000.0
        while batch and len(batch) < self.config.batch_size and time.monotonic() < deadline:
            more = await self.consumer.getmany(timeout_ms=max(1, int((deadline - time.monotonic()) * 1000)),
                                               max_records=self.config.batch_size - len(batch))
            if revocations != self._revocations:
                self._log_dropped(batch)
                batch, revocations = more, self._revocations
                continue
            if not more:
                break
            batch.extend_with(more)
        return batch, revocations

    def _log_dropped(self, batch: list[Record]) -> None:
        log.info("dropped %d events handed out before a rebalance: they are read again from the committed offsets",
                 len(batch))

    async def handle(self, batch: list[Record], revocations: int | None = None, wait: bool = True) -> Output:
        """Process one batch: pipeline, publish outputs (awaiting acks). Its offsets are committed
        with the next checkpoint. ``revocations``: the count the batch is valid under (see
        ``_next_batch``); a batch handed out before a later revocation is dropped.

        ``wait=False`` (the run loop): the outputs go to the broker while the next batch is fetched
        and processed, instead of the worker idling until they are acknowledged (a batch with
        alerts waited 14 ms on average for them, under load). At most one batch's outputs are on
        their way when this returns (it waits for the batch before), in batch order; the batch is
        counted and its offsets taken for a commit once they are acknowledged, and every capture of
        state waits for them first (``_outputs_acknowledged``): no checkpoint holds a batch whose
        alerts the broker has not taken."""
        started, began, cpu = time.perf_counter(), time.time(), time.process_time()
        async with self._lock:
            if revocations is not None and revocations != self._revocations:
                self._log_dropped(batch)
                return Output()
            out = self.pipeline.process(batch)
            for notice in out.notices:
                log.warning(notice)
            if wait:  # (after the outputs still on their way, if a batch before did not wait)
                await self._published(batch, out, started, began, cpu, self._publishing)
                return out
        before = self._publishing
        self._publishing = asyncio.ensure_future(self._published(batch, out, started, began, cpu, before))
        if before is not None:
            await before
        return out

    async def _published(self, batch: list[Record], out: Output, started: float, began: float, cpu: float,
                         before: asyncio.Future | None = None) -> None:
        """Publish a processed batch's outputs (after those of the batch ``before``), then take its
        offsets for the next commit and count it."""
        processed = time.perf_counter()
        if before is not None:
            await before
        await self._publish(out)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("batch of %d events (the oldest produced %.0f ms before): pipeline %.1f ms, "
                      "publishing %.1f ms, %d alerts; %.1f ms of CPU in all", len(batch), _waited_ms(batch, began),
                      (processed - started) * 1e3, (time.perf_counter() - processed) * 1e3, len(out.alerts),
                      (time.process_time() - cpu) * 1e3)
        self._uncommitted.update(offsets_after(batch))
        self._count(batch, out, started, time.time())
        if self.on_output is not None:
            self.on_output(out)

    async def _outputs_acknowledged(self) -> None:
        """Wait until the outputs of every batch processed so far are acknowledged (``handle``)."""
        while self._publishing is not None and not self._publishing.done():
            await self._publishing
        if self._publishing is not None:
            publishing, self._publishing = self._publishing, None
            publishing.result()  # its error, if it failed

    async def _publish(self, out: Output) -> None:
        """Publish a batch's outputs, retrying until the broker takes them: the pipeline has
        already counted the batch, so giving up would lose its alerts and dead letters."""
        while True:
            try:
                await self._send_outputs(out)
                return
            except MessageSizeTooLargeError:
                out.rejected = [truncated(r, self.config.limits.max_message_bytes) for r in out.rejected]
            except KafkaError as exc:
                self.error = f"publishing failed, retrying: {type(exc).__name__}: {exc}"
                log.warning(self.error)
                await asyncio.sleep(1.0)

    async def _send_outputs(self, out: Output) -> None:
        t = self.config.topics
        sends = []
        if out.alerts:
            sends.append(self.publisher.send_batch(
                t.alerts, [(a["model"].encode(), orjson.dumps(a), None) for a in out.alerts]))
        if out.retrain_requests:
            sends.append(self.publisher.send_batch(
                t.retrain_requests, [(r["model"].encode(), orjson.dumps(r), None) for r in out.retrain_requests]))
        if out.decisions:
            sends.append(self.publisher.send_batch(
                t.model_decisions, [(d["model"].encode(), orjson.dumps(d), None) for d in out.decisions]))
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
        for d in out.decisions:
            log.info("model decision %s model=%s: %s version %s (baseline %s), loss difference %+.4f [%+.4f, %+.4f] "
                     "after %d labels", d["decision_id"], d["model"], d["decision"], d["version"], d["baseline"],
                     d["loss_difference"]["estimate"], d["loss_difference"]["lower"], d["loss_difference"]["upper"],
                     d["labels"], extra={"decision_id": d["decision_id"], "model": d["model"]})

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
        self.counts["model_decisions"] += len(out.decisions)
        for d in out.decisions:
            m.model_decisions.labels(d["model"], d["version"], d["baseline"], d["decision"]).inc()
        if out.version_losses:
            self._version_losses(out)
        for a in out.below_effect_floor:
            m.below_effect_floor.labels(a["model"], a["feature"], a["kind"], a["detector"]).inc()
        self.counts["below_effect_floor"] += len(out.below_effect_floor)
        m.labels_joined.inc(out.labels_joined)
        m.labels_unmatched.inc(out.labels_unmatched)
        m.predictions_expired.inc(out.predictions_expired)
        m.pending_predictions.set(self.pipeline.pending_count)
        self.counts["labels_joined"] += out.labels_joined
        self.counts["labels_unmatched"] += out.labels_unmatched
        self.counts["predictions_expired"] += out.predictions_expired
        m.batch_seconds.observe(time.perf_counter() - started)
        oldest = oldest_timestamp_ms(batch)  # Kafka timestamps: never None, -1 if unknown
        if oldest is not None and oldest > 0:
            m.latency.observe(max(0.0, now - oldest / 1000.0))
        m.models.set(self.pipeline.model_count)
        if self.pipeline.evicted > self._evicted_seen:
            m.evicted.inc(self.pipeline.evicted - self._evicted_seen)
            self._evicted_seen = self.pipeline.evicted
        m.monitored.set(self.pipeline.monitored_pairs)

    def _version_losses(self, out: Output) -> None:
        """Each version's mean loss and labels so far, of the models whose versions met labels."""
        m = self.metrics
        for model in {model for model, *_ in out.version_losses}:
            versions = self.pipeline.versions.get(model)
            if versions is None:
                continue
            for version in versions.seen:
                n, total = versions.losses[version]
                if n:
                    m.version_loss.labels(model, version).set(total / n)
                    m.version_labels.labels(model, version).set(n)

    async def _probe(self) -> None:
        """One round trip to the broker: proves it is there (health) and measures the lag."""
        try:
            await asyncio.wait_for(self.consumer.end_offsets(), PROBE_TIMEOUT_S)
        except (KafkaError, asyncio.TimeoutError) as exc:
            self.error = f"broker unreachable: {type(exc).__name__} {exc}".strip()
            return
        self.last_ok = time.monotonic()
        self.error = None
        for tp, lag in (await self.consumer.lag()).items():
            self.metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)

    # -- state ----------------------------------------------------------------------------
    async def checkpoint(self, partitions: frozenset[TopicPartition] | None = None) -> int:
        """Write the changed state (of ``partitions``, or all), then commit the offsets it covers
        (and those of a periodic checkpoint still on its way, which is waited for first)."""
        earlier = await self._state_written()
        async with self._lock:
            count, commit = await self._save_state(partitions)
        # Committing outside the lock: a commit may wait for a rebalance that waits for the lock.
        await self._commit(_later(earlier, commit))
        return count

    async def _checkpoint_in_background(self) -> None:
        """The periodic checkpoint. Its offsets are those of the batches processed so far, and
        the models changed by then are captured a slice at a time (``CAPTURE_SLICE_S``), each
        slice between two batches: each model's state is a consistent cut of its own (the state
        of a model captured later covers these offsets and more, and a replay after a crash
        skips, stream by stream, what the saved state already holds). A slice is copied now
        (``DriftPipeline.checkpoint(deferred=True)``, a fraction of what encoding costs), then
        packed a part at a time and sent, one slice after the other, while the next batches are
        processed, so that alerts wait neither for the encoding nor for the broker to store it.
        Its offsets are committed once every slice is acknowledged; the next checkpoint starts
        only after that, and a hand-over finishes the capture at once and waits for it."""
        await self._outputs_acknowledged()
        async with self._lock:
            commit = self._take_offsets(None)
            self._round = _Round(self.pipeline.changed_models(), commit)
        await self._capture_slice()

    async def _capture_slice(self) -> None:
        await self._outputs_acknowledged()
        async with self._lock:
            if self._round is not None:  # (a hand-over may have finished it meanwhile)
                self._capture(CAPTURE_SLICE_S)

    def _capture(self, budget: float | None) -> None:
        """Capture the periodic checkpoint's next slice (all that is left if ``budget`` is
        ``None``), send it after the slices before it, and when no model is left, make
        ``_state_write`` the task that commits the offsets once all are stored. Between two
        batches: the caller holds the lock."""
        round_ = self._round
        started = time.perf_counter()
        records: list[tuple[str, object]] = []
        while True:
            step = round_.models[:CAPTURE_STEP if budget is not None else len(round_.models)]
            del round_.models[:len(step)]
            self._log_checkpointing(step)
            records += self.pipeline.checkpoint(deferred=True, models=step, others=round_.first)
            round_.first = False
            if not round_.models or (budget is not None and time.perf_counter() - started >= budget):
                break
        round_.captured = time.perf_counter()
        self.metrics.checkpoint_capture.inc(round_.captured - started)
        round_.records += len(records)
        round_.sent = asyncio.ensure_future(self._write_slice(round_.sent, records))
        if not round_.models:
            self._round = None
            self._state_write = asyncio.ensure_future(self._round_written(round_))

    async def _write_slice(self, before: asyncio.Future | None, records) -> None:
        """Send a slice once the slices before it are stored (a later slice may hold a record
        for a key an earlier one dropped); its failure is the round's (``_round_written``)."""
        if before is not None:
            await before
        await self._write_state(records, {}, counted=False, paced=True)

    async def _round_written(self, round_: "_Round") -> dict[TopicPartition, int]:
        """The offsets a periodic checkpoint covers, once every slice of it is stored; if one is
        not, they wait for the next checkpoint (which writes everything again) and the error is
        raised."""
        try:
            await round_.sent
        except KafkaError:
            self._uncommitted = _later(round_.commit, self._uncommitted)
            raise
        if round_.records:
            self.metrics.checkpoints.inc()
        return round_.commit

    async def _state_written(self, locked: bool = False) -> dict[TopicPartition, int]:
        """Wait for the periodic checkpoint on its way, if any (capturing what it has left
        first: ``locked`` if the caller holds the lock): the offsets it made safe to commit.
        Raises the broker's error if it was not written (its state will be written again by
        the next checkpoint, see ``_write_state``)."""
        self._hurry = True  # the rest unpaced: a hand-over or a stop waits for it
        try:
            await self._outputs_acknowledged()
            if self._round is not None:
                if locked:
                    self._capture(None)
                else:
                    async with self._lock:
                        if self._round is not None:
                            self._capture(None)
            task, self._state_write = self._state_write, None
            return {} if task is None else await task
        finally:
            self._hurry = False

    async def _save_state(self, partitions) -> tuple[int, dict[TopicPartition, int]]:
        await self._outputs_acknowledged()  # (the caller holds the lock: no batch starts meanwhile)
        records, commit = self._state_records(partitions)
        return len(records), await self._write_state(records, commit)

    def _state_records(self, partitions) -> tuple[list[tuple[str, object]], dict[TopicPartition, int]]:
        """The changed state (of ``partitions``, or all) and the input offsets it covers."""
        numbers = None if partitions is None else {tp.partition for tp in partitions}
        self._log_checkpointing(self.pipeline.dirty)
        records = self.pipeline.checkpoint(numbers)
        return records, self._take_offsets(partitions)

    def _take_offsets(self, partitions) -> dict[TopicPartition, int]:
        """The input offsets processed and not yet committed (of ``partitions``, or all), which a
        checkpoint taken now covers: taken out, to be committed once it is stored."""
        commit = {tp: o for tp, o in self._uncommitted.items() if partitions is None or tp in partitions}
        for tp in commit:
            self._uncommitted.pop(tp, None)
        self._last_checkpoint = time.monotonic()
        return commit

    def _log_checkpointing(self, keys) -> None:
        if log.isEnabledFor(logging.DEBUG):
            for key in keys:
                group = self.pipeline.models.get(key)
                if group is not None:
                    log.debug("checkpointing %s offset %s seen %s", key, group.next_offset,
                              {k[1]: m.seen for k, m in group.monitors.items()})

    async def _write_state(self, records, commit: dict[TopicPartition, int],
                           counted: bool = True, paced: bool = False) -> dict[TopicPartition, int]:
        """Send state records part by part (see ``write_order``), each part acknowledged before
        the next; return ``commit``, the offsets they cover, to be committed now that they are
        stored. Values are packed ``STATE_SLICE`` at a time, letting other tasks (the hot path)
        run in between; ``paced`` (a periodic checkpoint): at most ``STATE_BYTES_PER_S``, unless
        a hand-over or a stop is waiting for them. If the broker does not take them, the next
        checkpoint writes every model again and the offsets wait for it."""
        topic = self.config.topics.state
        try:
            for part in write_order(records):
                sends = []
                for start in range(0, len(part), STATE_SLICE):
                    messages = [(key.encode(), packed(value), None) for key, value in part[start:start + STATE_SLICE]]
                    sends.append(asyncio.ensure_future(self.publisher.send_batch(topic, messages)))
                    size = sum(len(value) for _, value, _ in messages if value is not None)
                    await asyncio.sleep(size / STATE_BYTES_PER_S if paced and not self._hurry else 0)
                await asyncio.gather(*sends)
        except KafkaError:
            self.pipeline.resave_all(records)
            self._uncommitted = _later(commit, self._uncommitted)
            raise
        trim_memory()  # now that the packed records are sent and acknowledged, and freed
        if records and counted:
            self.metrics.checkpoints.inc()
        return commit

    async def _commit(self, commit: dict[TopicPartition, int]) -> None:
        if not commit:
            return
        log.debug("committing %s", {f"{tp.partition}": o for tp, o in commit.items()})
        try:
            await self.consumer.commit(commit)
        except CommitFailedError as exc:
            # A rebalance took the partitions meanwhile; their new owner replays from the last
            # commit and skips, stream by stream, what the saved state already holds.
            log.warning("offset commit failed (rebalance): %s", exc)

    # -- partitions -------------------------------------------------------------------------
    async def _assigned(self, partitions: frozenset[TopicPartition]) -> None:
        async with self._lock:
            await self._restore(partitions)

    async def _restore(self, partitions: frozenset[TopicPartition]) -> None:
        self._partitions = self._partitions | partitions
        records = await read_state(self.config.broker, self.config.topics.state,
                                   {tp.partition for tp in partitions}, self.config.security_options())
        restored = self.pipeline.restore(records)
        if log.isEnabledFor(logging.DEBUG):
            for key, group in self.pipeline.models.items():
                log.debug("restored %s partition %s next offset %s covered %s seen %s", key, group.partition,
                          group.next_offset, sorted(set(group.covered.values())),
                          {k[1]: m.seen for k, m in group.monitors.items()})
            for tp in partitions:
                log.debug("committed %s/%s = %s", tp.topic, tp.partition, await self.consumer.committed(tp))
        self.restored_monitors += restored
        log.info("assigned %s; restored %d monitors from %d state records",
                 sorted(f"{tp.topic}/{tp.partition}" for tp in partitions), restored, len(records))

    async def _revoked(self, partitions: frozenset[TopicPartition]) -> None:
        self._revocations += 1  # first, before any wait: see _next_batch
        async with self._lock:
            await self._hand_over(partitions)

    async def _hand_over(self, partitions: frozenset[TopicPartition]) -> None:
        # The next owner starts from this state and these offsets.
        try:
            earlier = await self._state_written(locked=True)
        except KafkaError as exc:  # its state is marked to be written again, just below
            log.warning("periodic state checkpoint not written: %s", exc)
            earlier = {}
        try:
            _, commit = await self._save_state(partitions)
            await self._commit(_later(earlier, commit))
        except KafkaError as exc:
            log.warning("could not checkpoint revoked partitions: %s", exc)
        numbers = {tp.partition for tp in partitions}
        dropped = self.pipeline.drop_partitions(numbers)
        self._partitions = self._partitions - partitions
        for tp in partitions:  # their lag is their next owner's to report
            try:
                self.metrics.lag.remove(tp.topic, str(tp.partition))
            except KeyError:
                pass  # not measured yet
        log.info("revoked %s; handed over %d models", sorted(f"{tp.topic}/{tp.partition}" for tp in partitions),
                 dropped)


class _Round:
    """A periodic checkpoint being captured: the models still to capture (in checkpoint order),
    whether the rest of the state is still to come (with the first slice), the offsets it
    covers, and the send of its latest slice."""

    __slots__ = ("models", "first", "commit", "sent", "records", "captured")

    def __init__(self, models: list[tuple], commit: dict[TopicPartition, int]):
        self.models, self.first, self.commit = models, True, commit
        self.sent: asyncio.Future | None = None
        self.records = 0  # captured so far
        self.captured = 0.0  # when its last slice was captured (``time.perf_counter``)
