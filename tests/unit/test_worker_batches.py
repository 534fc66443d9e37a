"""A batch never spans a rebalance: records fetched under one assignment are not processed
under the next (``Worker._next_batch`` and ``Worker.handle``). The consumer here is a list of
prepared ``getmany`` results: what is tested is the worker's bookkeeping, not Kafka (the
rebalance itself runs against the real broker in tests/integration)."""

from __future__ import annotations

import asyncio

import orjson

from streamdrift.config import from_mapping
from streamdrift.events import Record
from streamdrift.stream.worker import Worker


def records(start: int, n: int) -> list[Record]:
    return [Record(orjson.dumps({"model": "m", "ts": 1e9 + i, "features": {"x": float(i % 7)}}), b"m", "features", 0, i, 1_700_000_000_000 + i)
            for i in range(start, start + n)]


class PreparedFetches:
    """``getmany`` hands out ``chunks`` in turn; during call number ``rebalance_at`` the worker's
    partitions change, as when aiokafka runs the revoke and assign callbacks inside ``getmany``."""

    def __init__(self, worker: Worker, chunks: list[list[Record]], rebalance_at: int | None = None):
        self.worker, self.chunks, self.rebalance_at, self.calls = worker, chunks, rebalance_at, 0

    async def getmany(self, timeout_ms: int | None = None, max_records: int | None = None) -> list[Record]:
        self.calls += 1
        if self.calls == self.rebalance_at:
            self.worker._assignments += 2  # revoked, then assigned again
        return self.chunks.pop(0) if self.chunks else []


def worker() -> Worker:
    return Worker(from_mapping({"linger_ms": 1000, "batch_size": 1000}))


def test_a_batch_is_topped_up_within_one_assignment():
    w = worker()
    w.consumer = PreparedFetches(w, [records(0, 10), records(10, 10), records(20, 5)])
    batch, assignments = asyncio.run(w._next_batch())
    assert [r.offset for r in batch] == list(range(25)) and assignments == w._assignments == 0


def test_records_fetched_before_a_rebalance_are_dropped_not_processed_after_it():
    for rebalance_at in (2, 3):  # during the first top-up, or the second
        w = worker()
        w.consumer = PreparedFetches(w, [records(0, 10), records(10, 10), records(20, 5)], rebalance_at)
        batch, assignments = asyncio.run(w._next_batch())
        assert batch == [] and assignments == w._assignments == 2


def test_a_batch_handled_after_a_rebalance_is_dropped():
    w = worker()
    batch = records(0, 50)
    w._assignments = 3  # the batch was fetched at 1: a rebalance came between
    out = asyncio.run(w.handle(batch, 1))
    assert out.processed == 0 and w.counts["in"] == 0 and w.pipeline.model_count == 0 and not w._uncommitted
    assert asyncio.run(w.handle(batch, 3)).processed == 50 and w.counts["in"] == 50  # fetched under the current one
