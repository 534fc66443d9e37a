"""A batch never spans a revocation: records handed out before one are not processed after it
(``Worker._next_batch`` and ``Worker.handle``); they are read again from the committed offsets.
The consumer here is a list of prepared ``getmany`` results: what is tested is the worker's
bookkeeping, not Kafka (rebalances run against the real broker in tests/integration). Last, the
setting that caps a batch from the consumer's side: how much one fetch takes from a partition."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from streamdrift.config import ConfigError, from_mapping
from streamdrift.events import Record
from streamdrift.stream.batch_consumer import Batch, TopicPartition, next_offsets
from streamdrift.stream.worker import Worker


def records(start: int, n: int) -> list[Record]:
    return [Record(orjson.dumps({"model": "m", "ts": 1e9 + i, "features": {"x": float(i % 7)}}), b"m", "features", 0, i, 1_700_000_000_000 + i)
            for i in range(start, start + n)]


class PreparedFetches:
    """``getmany`` hands out ``chunks`` in turn; during call number ``rebalance_at`` the worker's
    partitions are revoked (aiokafka runs the callback while ``getmany`` waits, and that call then
    hands out what the new assignment fetched)."""

    def __init__(self, worker: Worker, chunks: list[list[Record]], rebalance_at: int | None = None):
        self.worker, self.chunks, self.rebalance_at, self.calls = worker, chunks, rebalance_at, 0

    async def getmany(self, timeout_ms: int | None = None, max_records: int | None = None) -> Batch:
        self.calls += 1
        if self.calls == self.rebalance_at:
            self.worker._revocations += 1
        chunk = self.chunks.pop(0) if self.chunks else []
        by_partition: dict[int, list[Record]] = {}
        for record in chunk:  # as aiokafka answers: partition -> its records
            by_partition.setdefault(record.partition, []).append(record)
        return Batch.of(by_partition)


def worker() -> Worker:
    return Worker(from_mapping({"linger_ms": 1000, "batch_size": 1000}))


def test_a_batch_is_topped_up_while_no_partition_is_revoked():
    w = worker()
    w.consumer = PreparedFetches(w, [records(0, 10), records(10, 10), records(20, 5)])
    batch, revocations = asyncio.run(w._next_batch())
    assert [r.offset for r in batch] == list(range(25)) and revocations == w._revocations == 0


def test_records_handed_out_before_a_revocation_are_dropped_and_what_follows_is_kept():
    for rebalance_at, kept in ((2, range(10, 25)), (3, range(20, 25))):  # during the first top-up, or the second
        w = worker()
        w.consumer = PreparedFetches(w, [records(0, 10), records(10, 10), records(20, 5)], rebalance_at)
        batch, revocations = asyncio.run(w._next_batch())
        assert [r.offset for r in batch] == list(kept) and revocations == w._revocations == 1


def test_a_topped_up_batch_commits_past_its_last_record_of_each_partition():
    """The offsets a batch commits and its oldest time come from its fetches (``Batch``), not
    from reading the processed records again: the same as ``next_offsets`` and the minimum."""
    w = worker()
    chunks = [records(0, 10), records(10, 10), records(20, 5)]
    for i, r in enumerate(chunks[1]):  # a second partition in the first top-up, stamped earlier
        chunks[1][i] = Record(r.value, r.key, r.topic, 1, 100 + i, 1_600_000_000_000 + i)
    w.consumer = PreparedFetches(w, [list(c) for c in chunks])
    batch, _ = asyncio.run(w._next_batch())
    assert batch.ends == next_offsets(batch) == {TopicPartition("features", 0): 25, TopicPartition("features", 1): 110}
    assert batch.oldest_ms == min(r.timestamp_ms for r in batch) == 1_600_000_000_000
    asyncio.run(w.handle(batch, 0))
    assert w._uncommitted == batch.ends


def test_a_batch_handled_after_a_rebalance_is_dropped():
    w = worker()
    batch = records(0, 50)
    w._revocations = 3  # the batch was handed out at 1: revocations came since
    out = asyncio.run(w.handle(batch, 1))
    assert out.processed == 0 and w.counts["in"] == 0 and w.pipeline.model_count == 0 and not w._uncommitted
    assert asyncio.run(w.handle(batch, 3)).processed == 50 and w.counts["in"] == 50  # fetched under the current one


def test_the_batch_consumer_fetches_as_much_per_partition_as_configured(monkeypatch):
    from tests.unit.test_security import worker_clients

    config = from_mapping({"broker": "kafka.invalid:9093", "max_partition_fetch_bytes": 3 << 20})
    consumer = worker_clients(monkeypatch, config)["batch consumer (Worker.run)"]
    assert consumer._max_partition_fetch_bytes == 3 << 20


@pytest.mark.parametrize("value", [0, 1000, 2 << 30, "8MiB"])
def test_a_wrong_max_partition_fetch_bytes_stops_start_up_naming_it(value):
    with pytest.raises(ConfigError, match="max_partition_fetch_bytes"):
        from_mapping({"max_partition_fetch_bytes": value})


def test_raising_max_message_bytes_alone_past_the_fetch_size_names_both_settings():
    with pytest.raises(ConfigError, match=r"max_partition_fetch_bytes must be at least limits.max_message_bytes"):
        from_mapping({"limits": {"max_message_bytes": 16 << 20}})
    config = from_mapping({"limits": {"max_message_bytes": 16 << 20}, "max_partition_fetch_bytes": 16 << 20})
    assert config.max_partition_fetch_bytes == config.limits.max_message_bytes


class SlowPublisher:
    """Acknowledges each ``send_batch`` when the test says so (``ack``), recording what it got."""

    def __init__(self):
        self.sent: list[tuple[str, int]] = []
        self.waiting: list[asyncio.Future] = []

    async def send_batch(self, topic, messages):
        self.sent.append((topic, len(messages)))
        acked = asyncio.get_running_loop().create_future()
        self.waiting.append(acked)
        await acked

    def ack(self):
        for acked in self.waiting:
            if not acked.done():
                acked.set_result(None)


def bad_records(start: int, n: int) -> list[Record]:
    """Messages the pipeline rejects: each batch of them has outputs to publish (dead letters)."""
    return [Record(b"not json", b"m", "features", 0, i, 1_700_000_000_000 + i) for i in range(start, start + n)]


def test_the_run_loop_publishes_a_batch_while_it_processes_the_next():
    """``handle(wait=False)``: a batch's outputs go out while the next batch is processed; the
    next ``handle`` waits for them (at most one batch's outputs in flight), the batch's offsets
    are taken and it is counted once they are acknowledged, and a capture of state waits for
    them first, so that no checkpoint holds a batch whose outputs the broker has not taken."""

    async def run():
        w = worker()
        w.publisher = publisher = SlowPublisher()
        await w.handle(bad_records(0, 5), wait=False)  # returns with its dead letters in flight
        await asyncio.sleep(0.01)
        assert publisher.sent and not w._uncommitted and w.counts["in"] == 0
        second = asyncio.ensure_future(w.handle(bad_records(5, 5), wait=False))
        await asyncio.sleep(0.01)
        assert not second.done()  # processed, but waiting for the first batch's acknowledgement
        assert w.counts["in"] == 0
        publisher.ack()
        await asyncio.sleep(0.01)
        assert second.done() and w.counts["in"] == 5 and next(iter(w._uncommitted.values())) == 5
        capture = asyncio.ensure_future(w._outputs_acknowledged())
        await asyncio.sleep(0.01)
        assert not capture.done()  # the second batch's dead letters are not acknowledged yet
        publisher.ack()
        await capture
        assert w.counts["in"] == 10 and next(iter(w._uncommitted.values())) == 10 and w._publishing is None
        # A batch that waits (as outside the run loop) still publishes after the one before it.
        await w.handle(bad_records(10, 5), wait=False)
        await asyncio.sleep(0.01)
        fourth = asyncio.ensure_future(w.handle(bad_records(15, 5)))
        await asyncio.sleep(0.01)
        assert len(publisher.sent) == 3 and not fourth.done()
        publisher.ack()
        await asyncio.sleep(0.01)
        publisher.ack()
        await fourth
        assert len(publisher.sent) == 4 and w.counts["in"] == 20

    asyncio.run(run())
