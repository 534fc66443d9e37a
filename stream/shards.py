"""One worker, several cores: the pipeline split over child processes by input partition.

Decoding JSON and updating monitors is Python-bound, so one process uses one core. With
``processes = N`` a worker keeps its Kafka consumer, publisher, web endpoints and state topic in
its own process and runs ``N`` ``DriftPipeline``s in child processes: partition ``p`` of the
``features`` and ``labels`` topics goes to child ``p % N``, so a model's monitors and its waiting
predictions live in one child, exactly as they live in one worker when workers split partitions.

The outputs of the children are merged by the input position of the events that raised them,
which is the order ``DriftPipeline.process`` emits on its own: online (sharded) and offline
(one process) alerts come out in the same order.

>>> from streamdrift.config import Config
>>> import orjson
>>> shards = ShardedPipeline(Config(), processes=2)
>>> records = [Record(orjson.dumps({"model": f"m{i % 4}", "features": {"x": float(i % 7)}}), None,
...                   "features", i % 4, i) for i in range(400)] + [Record(b"{", None, "features", 1, 400)]
>>> out = shards.process(records)
>>> out.processed, len(out.rejected), shards.model_count
(400, 1, 4)
>>> shards.close()
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import traceback

from streamdrift.config import Config
from streamdrift.events import Record
from streamdrift.pipeline import DriftPipeline, Output
from streamdrift.process_tuning import trim_memory, tune_gc


class ShardPartitions:
    """The input partitions of one child: ``p % count == index``."""

    def __init__(self, index: int, count: int):
        self.index, self.count = index, count

    def __contains__(self, partition) -> bool:
        return partition is not None and partition % self.count == self.index


def _serve(conn, inherited, config: Config, references, index: int, count: int) -> None:
    """A child's loop: requests in, replies out, until the parent closes the pipe."""
    for connection in inherited:
        # Forked copies of the parent's ends of every pipe (ours and earlier children's): holding
        # them would keep those pipes open after the parent closes them, and no child would
        # ever see the end of its input.
        connection.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the worker in order, then us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        signal.set_wakeup_fd(-1)  # an inherited event loop's wake-up pipe is the parent's
    except ValueError:
        pass
    pipeline = DriftPipeline(config, references)
    tune_gc()
    mine = ShardPartitions(index, count)
    while True:
        try:
            op, arg = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if op == "process":
                reply = pipeline.process([Record(*fields) for fields in arg])
            elif op == "checkpoint":
                reply = pipeline.checkpoint(arg)
                trim_memory()
            elif op == "restore":
                reply = pipeline.restore(arg, mine)
            elif op == "drop_partitions":
                reply = pipeline.drop_partitions(arg)
            else:
                raise ValueError(f"unknown request {op!r}")
            conn.send(("ok", reply, _stats(pipeline)))
        except Exception:  # the parent re-raises it: a bug in the pipeline stops the worker
            conn.send(("error", traceback.format_exc(), None))


def _stats(pipeline: DriftPipeline) -> tuple[int, int, int, int]:
    return (pipeline.model_count, pipeline.evicted, pipeline.monitored_pairs, pipeline.pending_count)


class ShardedPipeline:
    """``DriftPipeline``'s interface over ``processes`` child processes."""

    def __init__(self, config: Config, references: dict | None = None, processes: int = 2):
        if processes < 2:
            raise ValueError("a sharded pipeline needs at least 2 processes; use DriftPipeline for one")
        self.config = config
        self.version = config.version
        # fork: the children start at once with everything imported, and run only pure code
        # (no event loop, no sockets of their own); they are made before the worker connects.
        context = multiprocessing.get_context("fork")
        self.connections = []
        self.children = []
        for index in range(processes):
            parent, child = context.Pipe()
            process = context.Process(target=_serve, args=(child, [*self.connections, parent], config, references,
                                                           index, processes),
                                      name=f"streamdrift-shard-{index}", daemon=True)
            process.start()
            child.close()
            self.connections.append(parent)
            self.children.append(process)
        self.stats = [(0, 0, 0, 0)] * processes

    # -- what the worker reads --------------------------------------------------------------
    @property
    def model_count(self) -> int:
        return sum(s[0] for s in self.stats)

    @property
    def evicted(self) -> int:
        return sum(s[1] for s in self.stats)

    @property
    def monitored_pairs(self) -> int:
        return sum(s[2] for s in self.stats)

    @property
    def pending_count(self) -> int:
        return sum(s[3] for s in self.stats)

    # -- requests ---------------------------------------------------------------------------
    def _reply(self, shard: int):
        status, reply, stats = self.connections[shard].recv()
        if status != "ok":
            raise RuntimeError(f"pipeline process {shard} failed:\n{reply}")
        self.stats[shard] = stats
        return reply

    def _all(self, op: str, arg) -> list:
        for connection in self.connections:
            connection.send((op, arg))
        return [self._reply(shard) for shard in range(len(self.connections))]

    def _send(self, records: list[Record]) -> tuple[list[int], list[list[int]]]:
        """Hand each child the records of its partitions; returns the children that got some
        and, per child, the input positions of its records."""
        count = len(self.connections)
        parts: list[list[tuple]] = [[] for _ in range(count)]
        positions: list[list[int]] = [[] for _ in range(count)]
        for i, r in enumerate(records):
            shard = r.partition % count
            parts[shard].append((r.value, r.key, r.topic, r.partition, r.offset, r.timestamp_ms))
            positions[shard].append(i)
        used = [shard for shard, part in enumerate(parts) if part]
        for shard in used:
            self.connections[shard].send(("process", parts[shard]))
        return used, positions

    def process(self, records: list[Record]) -> Output:
        """``DriftPipeline.process``, each child working on its partitions at the same time."""
        used, positions = self._send(records)
        return merge({shard: self._reply(shard) for shard in used}, positions)

    async def process_async(self, records: list[Record]) -> Output:
        """``process`` that leaves the event loop free while the children work (web endpoints,
        the consumer's prefetch and heartbeats keep running)."""
        used, positions = self._send(records)
        loop = asyncio.get_running_loop()
        replies = {}
        for shard in used:
            await _readable(loop, self.connections[shard])
            replies[shard] = self._reply(shard)
        return merge(replies, positions)

    def checkpoint(self, partitions=None) -> list[tuple[str, bytes]]:
        return [record for records in self._all("checkpoint", partitions) for record in records]

    def restore(self, records: list[tuple[str, bytes]]) -> int:
        return sum(self._all("restore", records))

    def drop_partitions(self, partitions: set[int]) -> int:
        """Forget the models of ``partitions`` (handed over to another worker)."""
        return sum(self._all("drop_partitions", set(partitions)))

    def close(self) -> None:
        for connection in self.connections:
            connection.close()
        for process in self.children:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()


async def _readable(loop: asyncio.AbstractEventLoop, connection) -> None:
    if connection.poll():
        return
    ready = loop.create_future()
    fd = connection.fileno()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(fd)


def merge(replies: dict[int, Output], positions: list[list[int]]) -> Output:
    """One ``Output`` from the children's, in the order one pipeline would have emitted."""
    out = Output()
    alerts, requests = [], []
    for shard, part in replies.items():
        where = positions[shard]
        for key, alert in zip(part.alert_keys, part.alerts):
            alerts.append(((where[key[0]], *key[1:]), alert))
        for key, request in zip(part.request_keys, part.retrain_requests):
            requests.append(((where[key[0]], *key[1:]), request))
        out.rejected.extend(part.rejected)
        out.processed += part.processed
        out.labels_joined += part.labels_joined
        out.labels_unmatched += part.labels_unmatched
        out.predictions_expired += part.predictions_expired
        out.notices.extend(part.notices)
    alerts.sort(key=lambda item: item[0])
    requests.sort(key=lambda item: item[0])
    out.alert_keys = [key for key, _ in alerts]
    out.alerts = [alert for _, alert in alerts]
    out.request_keys = [key for key, _ in requests]
    out.retrain_requests = [request for _, request in requests]
    out.rejected.sort(key=lambda r: (r.record.topic, r.record.partition, r.record.offset))
    return out
