"""The Kafka I/O layer against the real embedded broker, cross-checked with other clients.

confluent-kafka produces and kafka-python consumes, because on Tansu librdkafka consumers
receive nothing (see DESIGN.md). Consumers use a 2 s session: Tansu holds each group join for
half the session timeout, and this keeps the file well under a minute.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Producer as ConfluentProducer

from streamdrift.stream.batch_consumer import (
    BatchConsumer,
    Publisher,
    Record,
    TopicPartition,
    next_offsets,
)
from streamdrift.stream.broker import EmbeddedBroker
from streamdrift.stream.topics import ensure_topics_sync

with warnings.catch_warnings():
    # kafka-python 3.0 reads its protocol schemas with a deprecated importlib API at import.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaConsumer as KafkaPythonConsumer

MODELS = [f"model-{n}".encode() for n in range(20)]


def batch_consumer(
    broker: EmbeddedBroker, topic: str, group: str, **callbacks: Any
) -> BatchConsumer:
    return BatchConsumer(
        broker.bootstrap,
        [topic],
        group_id=group,
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
        **callbacks,
    )


async def consume(consumer: BatchConsumer, count: int, deadline_s: float = 20.0) -> list[Record]:
    """Read until ``count`` records arrived, committing each batch like the processor does."""
    received: list[Record] = []
    deadline = time.monotonic() + deadline_s
    while len(received) < count and time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=200)
        received.extend(batch)
        await consumer.commit(next_offsets(batch))
    return received


def test_ensure_topics_creates_partitions_and_is_idempotent(
    broker: EmbeddedBroker, unique_topic: Callable[..., str]
) -> None:
    events, state = unique_topic("events"), unique_topic("state")
    wanted = {events: 4, state: 2}

    assert sorted(ensure_topics_sync(broker.bootstrap, wanted, compacted={state})) == sorted(wanted)
    assert ensure_topics_sync(broker.bootstrap, wanted, compacted={state}) == []

    async def describe() -> tuple[dict[str, int], dict[str, str]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            topics = await admin.describe_topics([events, state])
            [response] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, state)]
            )
        finally:
            await admin.close()
        partitions = {t["topic"]: len(t["partitions"]) for t in topics}
        configs = {entry[0]: entry[1] for entry in response.resources[0][4]}
        return partitions, configs

    partitions, state_config = asyncio.run(describe())
    assert partitions == wanted
    assert state_config.get("cleanup.policy") == "compact"


def test_confluent_produced_events_arrive_once_and_commits_stick(
    broker: EmbeddedBroker, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic("features", partitions=4)
    group = f"{topic}.group"
    sent = {f"e-{n}".encode(): MODELS[n % len(MODELS)] for n in range(1000)}

    # murmur2 is what aiokafka and the Java client use; librdkafka's default (CRC32) would send
    # a model's events to a different partition than our own producers do.
    producer = ConfluentProducer(
        {"bootstrap.servers": broker.bootstrap, "partitioner": "murmur2_random", "linger.ms": 5}
    )
    delivery_errors: list[object] = []

    def on_delivery(error: object, _message: object) -> None:
        if error is not None:
            delivery_errors.append(error)

    for event_id, model in sent.items():
        value = orjson.dumps({"model": model.decode(), "id": event_id.decode()})
        producer.produce(topic, key=model, value=value, on_delivery=on_delivery)
    assert producer.flush(15) == 0
    assert delivery_errors == []

    assigned: list[frozenset[TopicPartition]] = []
    revoked: list[frozenset[TopicPartition]] = []

    async def first_member() -> tuple[list[Record], list[int], dict[TopicPartition, int | None]]:
        async with batch_consumer(
            broker, topic, group, on_assigned=assigned.append, on_revoked=revoked.append
        ) as consumer:
            first = await consume(consumer, 1)
            lag_after_first = sum((await consumer.lag()).values())
            rest = await consume(consumer, 1000 - len(first))
            lag_at_end = sum((await consumer.lag()).values())
            committed = {tp: await consumer.committed(tp) for tp in consumer.assignment()}
        return first + rest, [len(first), lag_after_first, lag_at_end], committed

    received, (first_count, lag_after_first, lag_at_end), committed = asyncio.run(first_member())

    all_partitions = frozenset(TopicPartition(topic, p) for p in range(4))
    assert assigned == [all_partitions]
    assert revoked == [all_partitions]  # stop() hands the partitions back through the hook
    assert len(received) == 1000
    assert len({(r.partition, r.offset) for r in received}) == 1000
    assert {orjson.loads(r.value)["id"].encode() for r in received} == set(sent)
    assert lag_after_first == 1000 - first_count
    assert lag_at_end == 0
    # Every model's events share one partition, the one aiokafka's partitioner picks.
    partitioner = DefaultPartitioner()
    for record in received:
        assert record.partition == partitioner(record.key, [0, 1, 2, 3], [0, 1, 2, 3])
    per_partition = {p: sum(1 for r in received if r.partition == p) for p in range(4)}
    assert committed == {TopicPartition(topic, p): n for p, n in per_partition.items()}

    async def second_member() -> list[Record]:
        async with batch_consumer(broker, topic, group) as consumer:
            while not consumer.assignment():
                assert await consumer.getmany(timeout_ms=100) == []
            # A fresh event proves the member is fetching, so "nothing old" is not just "not yet".
            producer.produce(topic, key=MODELS[0], value=b'{"marker": true}')
            assert producer.flush(5) == 0
            return await consume(consumer, 1, deadline_s=10)

    assert [r.value for r in asyncio.run(second_member())] == [b'{"marker": true}']


def test_publisher_output_is_read_by_kafka_python_in_a_group(
    broker: EmbeddedBroker, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic("alerts", partitions=4)
    messages = [
        (MODELS[n % 5], f"alert-{n}".encode(), [("source-offset", str(n).encode())])
        for n in range(300)
    ]

    async def publish() -> list[int]:
        async with Publisher(broker.bootstrap) as publisher:
            return [meta.partition for meta in await publisher.send_batch(topic, messages)]

    partitions = asyncio.run(publish())
    assert len(partitions) == 300

    consumer = KafkaPythonConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=f"{topic}.kafka-python",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    try:
        received = []
        deadline = time.monotonic() + 20
        while len(received) < 300 and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                received.extend(batch)
        consumer.commit()
    finally:
        consumer.close()

    assert sorted(m.value for m in received) == sorted(value for _, value, _ in messages)
    by_value = {m.value: m for m in received}
    for (key, value, headers), partition in zip(messages, partitions, strict=True):
        message = by_value[value]
        assert (message.key, message.partition) == (key, partition)
        assert list(message.headers) == headers


def test_pausing_the_broker_for_3s_loses_nothing(
    broker: EmbeddedBroker, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic("features", partitions=4)
    before = [(MODELS[n % 7], b"before-%d" % n, None) for n in range(200)]
    during = [(MODELS[n % 7], b"during-%d" % n, None) for n in range(200)]

    async def scenario() -> tuple[list[Record], bool, int]:
        async with (
            Publisher(broker.bootstrap) as publisher,
            batch_consumer(broker, topic, f"{topic}.group") as consumer,
        ):
            await publisher.send_batch(topic, before)
            received = await consume(consumer, len(before))

            broker.pause()
            try:
                # Both sides keep working against the frozen broker, as the processor would.
                sending = asyncio.create_task(publisher.send_batch(topic, during))
                reading = asyncio.create_task(consume(consumer, len(during), deadline_s=30))
                await asyncio.sleep(3)
                delivered_while_paused = sending.done()
            finally:
                broker.resume()
            delivered = await asyncio.wait_for(sending, 30)
            received += await reading
        return received, delivered_while_paused, len(delivered)

    received, delivered_while_paused, delivered = asyncio.run(scenario())
    assert not delivered_while_paused  # the pause really froze the broker
    assert delivered == len(during)
    assert sorted(r.value for r in received) == sorted(value for _, value, _ in before + during)


def test_records_are_made_straight_from_fetched_batches_a_few_at_a_time(
    broker: EmbeddedBroker, unique_topic: Callable[..., str]
) -> None:
    """The hot path's consumer gets ``Record`` s made from aiokafka's unpacked batches
    (``_PartitionRecords``): every message once, in offset order, with its key, null value
    (a tombstone) and timestamp, also when ``max_records`` stops in the middle of a batch; any
    other aiokafka consumer in the same process still gets aiokafka's own ``ConsumerRecord`` s."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import ConsumerRecord

    topic = unique_topic("records", partitions=1)
    producer = ConfluentProducer({"bootstrap.servers": broker.bootstrap, "linger.ms": 50})
    sent = [(None if n % 7 == 0 else f"k{n}".encode(), None if n % 10 == 3 else f"v{n}".encode(), 1_700_000_000_000 + n)
            for n in range(95)]
    for key, value, ts in sent:  # one linger: a few large record batches
        producer.produce(topic, key=key, value=value, timestamp=ts)
    assert producer.flush(15) == 0
    del producer  # a producer left behind keeps calling the broker after the session stops it

    async def read() -> tuple[list[Record], list[int], list[object]]:
        sizes = []
        async with batch_consumer(broker, topic, f"{topic}.group") as consumer:
            got: list[Record] = []
            deadline = time.monotonic() + 20
            while len(got) < len(sent) and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200, max_records=8)  # stops mid-batch
                sizes.append(len(batch))
                got.extend(batch)
                if got:  # the position follows what was handed out, even within a batch
                    assert sum((await consumer.lag()).values()) == len(sent) - len(got)
        plain = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest")
        await plain.start()
        try:
            other = []
            while len(other) < 3:
                for messages in (await plain.getmany(timeout_ms=500, max_records=3)).values():
                    other.extend(messages)
        finally:
            await plain.stop()
        return got, sizes, other

    got, sizes, other = asyncio.run(read())
    assert max(sizes) == 8
    assert all(type(r) is Record for r in got)
    assert [r.offset for r in got] == list(range(len(sent)))
    assert [(r.key, r.value, r.timestamp_ms) for r in got] == sent
    assert {(r.topic, r.partition) for r in got} == {(topic, 0)}
    assert all(type(m) is ConsumerRecord for m in other) and [m.value for m in other[:3]] == [b"v0", b"v1", b"v2"]
