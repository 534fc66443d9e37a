"""The hot path's Kafka I/O: batches in through a consumer group, batches out with delivery.

faust reads one event at a time; the detectors want arrays, so the input side uses aiokafka's
``getmany`` directly and commits only the offsets the caller says it has processed.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from bisect import bisect_left
from itertools import chain, repeat
from operator import attrgetter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.consumer import fetcher as _aiokafka_fetcher
from aiokafka.errors import CorruptRecordException
from aiokafka.structs import RecordMetadata, TopicPartition

from streamdrift.events import Record

__all__ = [
    "Batch",
    "BatchConsumer",
    "Header",
    "OutgoingMessage",
    "Publisher",
    "Record",
    "TopicPartition",
    "UnsupportedAiokafkaError",
    "check_aiokafka",
    "next_offsets",
]

DEFAULT_GROUP_ID = "streamdrift"

Header = tuple[str, bytes]
# (key, value, headers) as given to Publisher.send_batch.
OutgoingMessage = tuple[bytes | None, bytes, Sequence[Header] | None]
# Called with the partitions gained or lost (never with none); may be sync or async. The consumer
# waits for it, so on_revoked is the place to commit and dump per-partition state before another
# worker takes over. on_revoked also runs in stop().
PartitionsCallback = Callable[[frozenset[TopicPartition]], Awaitable[None] | None]




def next_offsets(records: Iterable[Record]) -> dict[TopicPartition, int]:
    """The offsets to commit after processing ``records``: last offset + 1 per partition.

    Records of a partition come in offset order (as ``getmany`` hands them out), so the last
    one seen is the highest.

    >>> next_offsets([Record(b"", None, "t", 0, 5), Record(b"", None, "t", 1, 9), Record(b"", None, "t", 0, 6)])
    {TopicPartition(topic='t', partition=0): 7, TopicPartition(topic='t', partition=1): 10}
    """
    last = dict(zip(map(_PARTITION_OF, records), map(_OFFSET_OF, records)))  # C-level passes
    return {TopicPartition(topic, partition): offset + 1 for (topic, partition), offset in last.items()}


_PARTITION_OF, _OFFSET_OF = attrgetter("topic", "partition"), attrgetter("offset")
_TIMESTAMP_OF = attrgetter("timestamp_ms")


class Batch(list):
    """A batch as :meth:`BatchConsumer.getmany` hands it out: its records, and what the fetch
    knew of them without reading them again: per partition the offset after its last record
    (``ends``, what :func:`next_offsets` finds) and the oldest Kafka timestamp (``oldest_ms``,
    ``None`` for no record; -1 if a message has none). Read after the batch is processed, the
    records are cold: :func:`next_offsets` over 2,800 of them cost ~0.8 ms, 2% of a worker
    process's time under load, against a lookup per partition here.

    >>> batch = Batch.of({"p0": [Record(b"", None, "t", 0, 5, 70), Record(b"", None, "t", 0, 6, 60)],
    ...                   "p1": [Record(b"", None, "t", 1, 9, 80)]})
    >>> list(batch) == [Record(b"", None, "t", 0, 5, 70), Record(b"", None, "t", 0, 6, 60), Record(b"", None, "t", 1, 9, 80)]
    True
    >>> batch.ends == next_offsets(batch), batch.oldest_ms
    (True, 60)
    >>> batch.extend_with(Batch.of({"p0": [Record(b"", None, "t", 0, 7, 50)]}))
    >>> batch.ends[TopicPartition("t", 0)], len(batch), batch.oldest_ms
    (8, 4, 50)
    """

    __slots__ = ("ends", "oldest_ms")

    @classmethod
    def of(cls, fetched: Mapping[Any, list[Record]]) -> Batch:
        """The records of a ``getmany`` answer (partition -> its records, in offset order)."""
        batch = cls(chain.from_iterable(fetched.values()))
        batch.ends = {TopicPartition(r.topic, r.partition): r.offset + 1
                      for r in (records[-1] for records in fetched.values() if records)}
        batch.oldest_ms = min(map(_TIMESTAMP_OF, batch), default=None)
        return batch

    def extend_with(self, more: Batch) -> None:
        """Add the records of a later fetch (its ends are past this batch's)."""
        self.extend(more)
        self.ends.update(more.ends)
        if more.oldest_ms is not None:
            self.oldest_ms = more.oldest_ms if self.oldest_ms is None else min(self.oldest_ms, more.oldest_ms)


def offsets_after(records: list[Record]) -> dict[TopicPartition, int]:
    """:func:`next_offsets` of a processed batch: a :class:`Batch` knows them from its fetch."""
    return records.ends if type(records) is Batch else next_offsets(records)


def oldest_timestamp_ms(records: list[Record]) -> int | None:
    """The oldest Kafka timestamp of a batch's records (``None`` for none): a :class:`Batch`
    knows it from its fetch."""
    return records.oldest_ms if type(records) is Batch else min(map(_TIMESTAMP_OF, records), default=None)


class BatchConsumer:
    """A consumer-group member that hands out lists of :class:`Record`.

    Offsets are committed only by :meth:`commit` (auto-commit is off), so a crash replays what
    was not processed instead of skipping it.

    ``session_timeout_ms`` also sets how long a join takes on Tansu: its coordinator holds every
    JoinGroup for half the session timeout (measured: 10 s -> 5 s, 6 s -> 3 s, 2 s -> 1 s).
    6 s is Apache Kafka's smallest allowed value (``group.min.session.timeout.ms``).
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        *,
        group_id: str = DEFAULT_GROUP_ID,
        on_assigned: PartitionsCallback | None = None,
        on_revoked: PartitionsCallback | None = None,
        max_records: int = 2000,
        timeout_ms: int = 500,
        auto_offset_reset: str = "earliest",
        session_timeout_ms: int = 6000,
        heartbeat_interval_ms: int = 2000,
        max_partition_fetch_bytes: int = 1 << 20,
        security: Mapping[str, Any] | None = None,
        client_id: str = "streamdrift",
        **consumer_options: Any,
    ) -> None:
        if not topics:
            raise ValueError("topics must name at least one topic")
        if max_records < 1:
            raise ValueError(f"max_records must be >= 1, got {max_records}")
        self.bootstrap = bootstrap
        self.topics = tuple(topics)
        self.group_id = group_id
        self.on_assigned = on_assigned
        self.on_revoked = on_revoked
        self.max_records = max_records
        self.timeout_ms = timeout_ms
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,
            value_deserializer=AS_RECORDS,  # fetched messages become Records directly, see below
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            max_partition_fetch_bytes=max_partition_fetch_bytes,
            **(security or {}),
            **consumer_options,
        )
        self._started = False

    async def start(self) -> None:
        """Connect and subscribe; partitions arrive with the first :meth:`getmany` calls."""
        await self._consumer.start()
        self._consumer.subscribe(list(self.topics), listener=_CallbackListener(self))
        self._started = True

    async def stop(self) -> None:
        """Hand back the partitions and close: ``on_revoked`` runs first, then we leave the group.

        aiokafka does not call the revoke hook when a consumer closes; calling it here gives the
        owner the same last chance to commit and dump state as in a rebalance (like the Java
        client's close()). Leaving the group moves the partitions to other workers at once.
        """
        try:
            if self._started and self._consumer.assignment():
                await _call(self.on_revoked, self._consumer.assignment())
        finally:
            await self._consumer.stop()
            self._started = False

    async def __aenter__(self) -> BatchConsumer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def getmany(
        self, timeout_ms: int | None = None, max_records: int | None = None
    ) -> Batch:
        """The next batch: up to ``max_records`` records, in offset order within a partition.

        Returns an empty batch when nothing arrived within ``timeout_ms``.
        """
        fetched = await self._consumer.getmany(
            timeout_ms=self.timeout_ms if timeout_ms is None else timeout_ms,
            max_records=max_records or self.max_records,
        )
        return Batch.of(fetched)

    async def batches(
        self, timeout_ms: int | None = None, max_records: int | None = None
    ) -> AsyncIterator[list[Record]]:
        """Non-empty batches, forever; stop by breaking out or cancelling the task."""
        while True:
            batch = await self.getmany(timeout_ms, max_records)
            if batch:
                yield batch

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit ``offsets`` (partition -> next offset to read, see :func:`next_offsets`)."""
        if offsets:
            await self._consumer.commit(dict(offsets))

    async def committed(self, partition: TopicPartition) -> int | None:
        """The group's committed offset for ``partition`` as the broker has it."""
        return await self._consumer.committed(partition)

    def assignment(self) -> frozenset[TopicPartition]:
        return frozenset(self._consumer.assignment())

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Continue ``partition`` from ``offset`` (e.g. where a loaded state checkpoint ends)."""
        self._consumer.seek(partition, offset)

    async def end_offsets(self) -> dict[TopicPartition, int]:
        """Ask the broker for the end of every assigned partition (a real round trip, unlike the
        highwater marks cached from fetches: this is what proves the broker is there)."""
        assigned = list(self._consumer.assignment())
        return await self._consumer.end_offsets(assigned) if assigned else {}

    async def lag(self) -> dict[TopicPartition, int]:
        """Messages not yet handed out by getmany, per assigned partition: highwater - position."""
        assigned = self._consumer.assignment()
        highwaters = {tp: self._consumer.highwater(tp) for tp in assigned}
        # The highwater comes with fetch responses; before the first one, ask the broker.
        unknown = [tp for tp, hw in highwaters.items() if hw is None]
        if unknown:
            highwaters.update(await self._consumer.end_offsets(unknown))
        lags: dict[TopicPartition, int] = {}
        for tp, highwater in highwaters.items():
            position = await self._consumer.position(tp)
            lags[tp] = max(0, highwater - position)
        return lags


class _CallbackListener(ConsumerRebalanceListener):
    """Adapts the two plain callables to aiokafka's listener interface."""

    def __init__(self, owner: BatchConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await _call(self._owner.on_revoked, revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await _call(self._owner.on_assigned, assigned)


async def _call(callback: PartitionsCallback | None, partitions: Iterable[TopicPartition]) -> None:
    changed = frozenset(partitions)
    # aiokafka reports an empty revocation before every first join; only real changes matter.
    if callback is None or not changed:
        return
    result = callback(changed)
    if inspect.isawaitable(result):
        await result


class _AsRecords:
    """The ``value_deserializer`` that marks a consumer whose fetched messages become
    :class:`Record` s as they are unpacked (see ``_PartitionRecords``); values stay bytes."""

    def __call__(self, value: bytes | None) -> bytes | None:
        return value

    def __repr__(self) -> str:
        return "AS_RECORDS"


AS_RECORDS = _AsRecords()
_VALUE, _KEY, _OFFSET, _TIMESTAMP = attrgetter("value"), attrgetter("key"), attrgetter("offset"), attrgetter("timestamp")
#: A consumed message's fields in ``Record``'s order (the ``read_committed`` path).
_RECORD_FIELDS = attrgetter("value", "key", "topic", "partition", "offset", "timestamp")

#: The aiokafka releases whose private ``PartitionRecords`` ``_PartitionRecords`` is written
#: against: 0.10.0 to 0.14.0 unpack records alike (compared release by release). pyproject.toml
#: pins the same range; widen both only after comparing the new release's ``fetcher.py``.
SUPPORTED_AIOKAFKA = ">=0.10,<0.15"
_SUPPORTED_MINORS = ((0, 10), (0, 15))  # [first, end) as (major, minor)
# What _PartitionRecords reads of aiokafka's class: attributes its __init__ sets, and the calls
# aiokafka's own _unpack_records makes on record batches, which ours repeats.
_SET_IN_INIT = ("_tp", "_records", "_check_crcs", "_isolation_level", "_value_deserializer",
                "_records_iterator", "next_fetch_offset")
_USED_IN_UNPACK = ("has_next", "next_batch", "validate_crc", "is_control_batch", "next_offset",
                   "offset", "next_fetch_offset", "READ_COMMITTED")
_INIT_PARAMETERS = ("self", "tp", "records", "aborted_transactions", "fetch_offset",
                    "key_deserializer", "value_deserializer", "check_crcs", "isolation_level")


class UnsupportedAiokafkaError(RuntimeError):
    """The installed aiokafka is not a release the batch consumer's record unpacking was written for."""


def check_aiokafka(version: str, partition_records: type, fetcher: Any) -> None:
    """Raise :class:`UnsupportedAiokafkaError` unless aiokafka ``version``, its
    ``PartitionRecords`` class and its ``fetcher`` module are what ``_PartitionRecords`` was
    written for. Runs at import: on another release, stopping with a clear message is better than
    a consumer that skips or repeats messages because a private detail changed.

    >>> from aiokafka.consumer import fetcher
    >>> try:
    ...     check_aiokafka("0.15.0", fetcher.PartitionRecords, fetcher)
    ... except UnsupportedAiokafkaError as error:
    ...     print(error)
    streamdrift's batch consumer supports aiokafka >=0.10,<0.15, but aiokafka 0.15.0 is installed. ...
    """
    def unsupported(problem: str) -> UnsupportedAiokafkaError:
        return UnsupportedAiokafkaError(
            f"streamdrift's batch consumer supports aiokafka {SUPPORTED_AIOKAFKA}, but {problem}. "
            "It replaces aiokafka's private PartitionRecords (records without a ConsumerRecord "
            "each, for speed), which other releases may change. Install a supported release: "
            f"pip install 'aiokafka{SUPPORTED_AIOKAFKA}' (or keep that pin in your constraints); "
            "a newer aiokafka needs stream/batch_consumer.py checked against its fetcher.py first."
        )

    found = re.match(r"(\d+)\.(\d+)", version)
    first, end = _SUPPORTED_MINORS
    if not found or not first <= (int(found[1]), int(found[2])) < end:
        raise unsupported(f"aiokafka {version} is installed")
    where = f"the installed aiokafka {version} ({getattr(fetcher, '__file__', fetcher)})"
    if not isinstance(partition_records, type):
        raise unsupported(f"{where} has no fetcher.PartitionRecords class")
    if getattr(fetcher, "READ_COMMITTED", None) != 1:
        raise unsupported(f"{where} has no fetcher.READ_COMMITTED = 1")
    fetcher_class = getattr(fetcher, "Fetcher", None)
    if not any("PartitionRecords" in getattr(getattr(method, "__code__", None), "co_names", ())
               for method in vars(fetcher_class or object).values()):
        raise unsupported(f"{where}: its Fetcher does not make PartitionRecords by the module's name")
    # The Fetcher passes these positionally.
    parameters, expected = str(inspect.signature(partition_records.__init__)), f"({', '.join(_INIT_PARAMETERS)})"
    if parameters != expected:
        raise unsupported(f"{where}: PartitionRecords takes {parameters}, not {expected}")
    for method, wanted in (("__init__", _SET_IN_INIT), ("__next__", ("_records_iterator",)),
                           ("_unpack_records", _USED_IN_UNPACK)):
        code = getattr(getattr(partition_records, method, None), "__code__", None)
        missing = [name for name in wanted if code is None or name not in code.co_names]
        if missing:
            raise unsupported(f"{where}: PartitionRecords.{method} does not use {', '.join(missing)}")
    if not inspect.isgeneratorfunction(partition_records._unpack_records):
        raise unsupported(f"{where}: PartitionRecords._unpack_records is not a generator")


check_aiokafka(aiokafka.__version__, getattr(_aiokafka_fetcher, "PartitionRecords", None), _aiokafka_fetcher)


class _PartitionRecords(_aiokafka_fetcher.PartitionRecords):
    """aiokafka's iterator over one partition's fetched record batches, which for a consumer
    marked ``AS_RECORDS`` makes our ``Record`` s straight from the unpacked messages, a batch at a
    time in C-level passes, instead of an 11-field ``ConsumerRecord`` per message in Python
    (a sixth of the hot path's time, measured) that ``getmany`` then copied into a ``Record``.

    Every other consumer (and a ``read_committed`` one, whose aborted transactions aiokafka
    filters) gets aiokafka's own behaviour. Offsets, positions and control batches are handled as
    in ``PartitionRecords._unpack_records``; a tombstone's null value stays ``None``, which the
    error policy sends to the dead-letter topic like any other message that is not a JSON object.
    It relies on aiokafka's private details, which :func:`check_aiokafka` verifies at import.
    """

    def __iter__(self):
        # ``getall`` loops over this object: hand it the generator itself, which spares a Python
        # ``__next__`` call per message (aiokafka's own ``__next__`` only forwards to it).
        if self._value_deserializer is AS_RECORDS and self._records_iterator is not None:
            return self._records_iterator
        return self

    def _unpack_records(self):
        if self._value_deserializer is not AS_RECORDS:
            yield from super()._unpack_records()
            return
        if self._isolation_level == _aiokafka_fetcher.READ_COMMITTED:
            for message in super()._unpack_records():
                yield Record(*_RECORD_FIELDS(message))
            return
        tp = self._tp
        records = self._records
        while records.has_next():
            batch = records.next_batch()
            if self._check_crcs and not batch.validate_crc():
                raise CorruptRecordException(f"Invalid CRC - {tp}")
            if batch.is_control_batch:
                self.next_fetch_offset = batch.next_offset
                continue
            messages = list(batch)
            offsets = list(map(_OFFSET, messages))
            if offsets and offsets[0] < self.next_fetch_offset:  # the head of a batch seen before
                start = bisect_left(offsets, self.next_fetch_offset)
                messages, offsets = messages[start:], offsets[start:]
            made = list(map(Record, map(_VALUE, messages), map(_KEY, messages), repeat(tp.topic),
                            repeat(tp.partition), offsets, map(_TIMESTAMP, messages)))
            for record in made:
                self.next_fetch_offset = record.offset + 1  # getall may stop after any of them
                yield record
            # As aiokafka: the batch's own next offset, past records compaction removed.
            self.next_fetch_offset = batch.next_offset


# aiokafka makes its iterators by this module-level name; only consumers marked AS_RECORDS differ.
_aiokafka_fetcher.PartitionRecords = _PartitionRecords


class Publisher:
    """Sends batches of messages and returns once the broker has acknowledged all of them.

    ``linger_ms`` and ``max_batch_size`` trade a few milliseconds of latency for far fewer
    produce requests. ``idempotent`` stays off by default: Tansu 0.6 with its in-memory store
    answers InitProducerId with an error, so an idempotent producer cannot start there; turn it
    on against Apache Kafka. Without it, aiokafka still keeps per-partition order (one in-flight
    batch per partition), but a retried request can write a duplicate.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        linger_ms: int = 5,
        max_batch_size: int = 256 * 1024,
        compression_type: str | None = None,
        acks: int | str = "all",
        idempotent: bool = False,
        security: Mapping[str, Any] | None = None,
        client_id: str = "streamdrift",
        **producer_options: Any,
    ) -> None:
        self.bootstrap = bootstrap
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            linger_ms=linger_ms,
            max_batch_size=max_batch_size,
            compression_type=compression_type,
            acks=acks,
            enable_idempotence=idempotent,
            # Dead letters carry the original bytes, which may be larger than a usual request.
            max_request_size=producer_options.pop("max_request_size", 16 * 1024 * 1024),
            **(security or {}),
            **producer_options,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        """Flush what is buffered, then close."""
        await self._producer.stop()

    async def __aenter__(self) -> Publisher:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def send_batch(
        self, topic: str, messages: Iterable[OutgoingMessage]
    ) -> list[RecordMetadata]:
        """Send ``(key, value, headers)`` messages to ``topic``; wait for every acknowledgement.

        Messages with the same key go to the same partition (the Java client's murmur2
        partitioner), in the order given. Raises the first delivery error.
        """
        deliveries = []
        for key, value, headers in messages:
            # send() only waits when the client's buffer is full; the deliveries are awaited
            # together so the whole batch shares a few produce requests.
            deliveries.append(
                await self._producer.send(
                    topic, value=value, key=key, headers=list(headers) if headers else None
                )
            )
        # gather also retrieves the errors after the first, so none is reported as unhandled.
        return list(await asyncio.gather(*deliveries))
