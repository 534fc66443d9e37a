"""Monitor state on a compacted Kafka topic: written before offsets are committed, read back when
partitions are assigned.

Keys are ``model␟segment`` (the model's incident and value types) and ``model␟segment␟kind␟name``
(one monitor); values are the core's explicit state encoding (never pickle) with the input
partition and the next offset the state covers. Reading keeps the latest value per key, as
compaction will.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from aiokafka import AIOKafkaConsumer, TopicPartition

from streamdrift.detectors.state import StateError, unpack
from streamdrift.state_keys import is_reference_record

log = logging.getLogger("streamdrift.checkpoint")


async def read_state(bootstrap: str, topic: str, input_partitions: Collection[int],
                     security: dict | None = None) -> list[tuple[str, bytes]]:
    """The latest state record of every key whose input partition is in ``input_partitions``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **(security or {}))
    await consumer.start()
    latest: dict[str, tuple[int, bytes | None]] = {}
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, messages in batches.items():
                for m in messages:
                    if m.key is None:
                        continue
                    # The newest state of a key is the one covering the furthest input offset;
                    # read order across state partitions is not a reliable clock.
                    covered = _covered_offset(m.value)
                    key = m.key.decode()
                    if key not in latest or covered >= latest[key][0]:
                        latest[key] = (covered, m.value)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    wanted = set(input_partitions)
    records = []
    for key, (_, value) in latest.items():
        if value is None:  # a tombstone: the model was evicted
            continue
        try:
            partition = unpack(value)["partition"]
        except (StateError, KeyError) as exc:
            log.warning("skipping unreadable state record %r: %s", key, exc)
            continue
        if partition in wanted:
            records.append((key, value))
    return records


def write_order(records: list[tuple[str, bytes | None]]) -> list[list[tuple[str, bytes | None]]]:
    """A checkpoint's records in the parts they must be stored in, each part acknowledged
    before the next is sent: records of different keys land on different state partitions, in no
    guaranteed order, and a write can stop half-way (a crash, the broker gone).

    1. new references, so that no stored monitor record ever names a reference that is not stored;
    2. models and monitors;
    3. tombstones of references no monitor names any more, so that the monitor records naming
       them are replaced before they go (a tombstone is final: nothing older wins over it).

    >>> order = write_order([("m\x1f\x1ff\x1fx", b"monitor"), ("m\x1f\x1ff\x1fx\x1f__reference__\x1fold", None),
    ...                      ("m\x1f\x1ff\x1fx\x1f__reference__\x1fnew", b"values"), ("m\x1f", b"model")])
    >>> [[key.split("\x1f")[-1] for key, _ in part] for part in order]
    [['new'], ['x', ''], ['old']]
    """
    references, rest, dropped = [], [], []
    for record in records:
        if not is_reference_record(record[0]):
            rest.append(record)
        elif record[1] is None:
            dropped.append(record)
        else:
            references.append(record)
    return [part for part in (references, rest, dropped) if part]


def _covered_offset(value: bytes | None) -> int:
    if value is None:
        return 1 << 62  # a tombstone supersedes everything before it
    try:
        offset = unpack(value).get("offset")
    except StateError:
        return -1
    return -1 if offset is None else int(offset)
