"""A periodic checkpoint captured a slice of models at a time, batches processed in between
(``Worker._checkpoint_in_background``, ``CAPTURE_SLICE_S``): each model's state is its own
consistent cut, and a worker restored from it that replays from the offsets the checkpoint
committed ends exactly where a worker that never stopped is, monitor for monitor."""

from __future__ import annotations

import asyncio

import numpy as np
import orjson

import streamdrift.stream.worker as worker_module
from streamdrift.config import from_mapping
from streamdrift.detectors import encode_monitor
from streamdrift.events import Record
from streamdrift.pipeline import DriftPipeline
from streamdrift.stream.batch_consumer import Publisher, TopicPartition
from streamdrift.stream.checkpoint import read_state

MODELS = 10


def events(start: int, n: int, rng: np.random.Generator) -> list[Record]:
    out = []
    for offset in range(start, start + n):
        model = f"m-{offset % MODELS}"
        value = {"model": model, "ts": 1.7e9 + offset,
                 "features": {f"x{j}": round(float(rng.normal()), 4) for j in range(3)}}
        out.append(Record(orjson.dumps(value), model.encode(), "features", 0, offset, 1_700_000_000_000 + offset))
    return out


def test_a_checkpoint_taken_a_slice_at_a_time_restores_as_an_uninterrupted_run(broker, unique_topic, monkeypatch):
    monkeypatch.setattr(worker_module, "CAPTURE_SLICE_S", 0.0)  # one step of models per slice
    state = unique_topic("state", partitions=4, compacted=True)
    config = from_mapping({"topics": {"state": state, "alerts": unique_topic("alerts", partitions=1),
                                      "dead_letter": unique_topic("dlq", partitions=1)},
                           "detectors": {"reference_size": 200, "window": 100, "evaluate_every": 50}})
    rng = np.random.default_rng(4)
    stream = events(0, 8_000, rng)
    batches = [stream[i:i + 400] for i in range(0, len(stream), 400)]

    async def run() -> tuple[dict, list[tuple[str, bytes]], int]:
        worker = worker_module.Worker(config)
        worker.publisher = Publisher(broker.bootstrap)
        await worker.publisher.start()
        try:
            for batch in batches[:10]:
                await worker.handle(batch)
            await worker._checkpoint_in_background()
            slices = 1
            assert worker._round is not None, "the checkpoint was captured in one slice: nothing tested"
            for batch in batches[10:14]:  # every model moves on between the slices
                await worker.handle(batch)
                if worker._round is not None:
                    await worker._capture_slice()
                    slices += 1
            assert worker._round is None
            commit = await worker._state_written()
            for batch in batches[14:]:
                await worker.handle(batch)
        finally:
            await worker.publisher.stop()
        return commit, await read_state(broker.bootstrap, state, {0}), slices

    commit, records, slices = asyncio.run(run())
    assert slices >= 3
    resume = commit[TopicPartition("features", 0)]
    assert resume == 10 * 400  # the offsets of the batches before the checkpoint began
    restored = DriftPipeline(config)
    assert restored.restore(records) == MODELS * 3
    # Models captured in later slices had seen later batches: the replay skips, stream by
    # stream, what each one's state already holds.
    for i in range(resume, len(stream), 400):
        restored.process(stream[i:i + 400])
    uninterrupted = DriftPipeline(config)
    for batch in batches:
        uninterrupted.process(batch)
    assert set(restored.models) == set(uninterrupted.models)
    for key, group in uninterrupted.models.items():
        other = restored.models[key]
        assert set(other.monitors) == set(group.monitors)
        for stream_key, monitor in group.monitors.items():
            assert encode_monitor(other.monitors[stream_key]) == encode_monitor(monitor), (key, stream_key)


def test_a_hand_over_during_a_sliced_checkpoint_captures_the_rest_at_once(broker, unique_topic, monkeypatch):
    """What a hand-over (or ``Worker.checkpoint``) waits for: the periodic checkpoint's models not
    captured yet are captured at once, between the same two batches, and the whole is stored."""
    monkeypatch.setattr(worker_module, "CAPTURE_SLICE_S", 0.0)
    state = unique_topic("state", partitions=4, compacted=True)
    config = from_mapping({"topics": {"state": state}, "detectors": {"reference_size": 200}})
    stream = events(0, 4_000, np.random.default_rng(5))

    async def run():
        worker = worker_module.Worker(config)
        worker.publisher = Publisher(broker.bootstrap)
        await worker.publisher.start()
        try:
            await worker.handle(stream)
            await worker._checkpoint_in_background()
            assert worker._round is not None and worker._round.models
            commit = await worker._state_written()  # as a hand-over does, the lock free
            assert worker._round is None and not worker.pipeline.dirty
            return commit, worker.pipeline, await read_state(broker.bootstrap, state, {0})
        finally:
            await worker.publisher.stop()

    commit, pipeline, records = asyncio.run(run())
    assert commit == {TopicPartition("features", 0): 4_000}
    restored = DriftPipeline(config)
    assert restored.restore(records) == MODELS * 3
    for key, group in pipeline.models.items():
        for stream_key, monitor in group.monitors.items():
            assert encode_monitor(restored.models[key].monitors[stream_key]) == encode_monitor(monitor)


def test_a_periodic_checkpoint_is_sent_paced_unless_a_hand_over_waits(broker, unique_topic, monkeypatch):
    """A periodic checkpoint's state goes to the broker at most ``STATE_BYTES_PER_S`` (so that the
    broker storing it does not take the cores from the hot path at once); a hand-over or a stop
    waiting for it has the rest sent at once."""
    monkeypatch.setattr(worker_module, "STATE_BYTES_PER_S", 20_000)
    monkeypatch.setattr(worker_module, "STATE_SLICE", 1)  # a pause after every record
    state = unique_topic("state", partitions=4, compacted=True)
    config = from_mapping({"topics": {"state": state}, "detectors": {"reference_size": 200}})
    stream = events(0, 4_000, np.random.default_rng(6))

    async def run() -> tuple[float, float, int]:
        worker = worker_module.Worker(config)
        worker.publisher = Publisher(broker.bootstrap)
        await worker.publisher.start()
        sent = []
        original = worker.publisher.send_batch

        async def counted(topic, messages):
            sent.extend(len(value) for _, value, _ in messages if value is not None)
            return await original(topic, messages)

        worker.publisher.send_batch = counted
        try:
            for i in range(0, len(stream), 400):
                await worker.handle(stream[i:i + 400])
            loop = asyncio.get_running_loop()
            began = loop.time()
            await worker._checkpoint_in_background()
            while worker._round is not None:
                await worker._capture_slice()
            await asyncio.sleep(1.0)
            paced = sum(sent) / (loop.time() - began)
            assert not worker._state_write.done()
            hurried = loop.time()
            await worker._state_written()
            return paced, loop.time() - hurried, sum(sent)
        finally:
            await worker.publisher.stop()

    paced, hurried, total = asyncio.run(run())
    assert total > 60_000  # three seconds' worth at the paced rate
    assert paced <= 1.5 * 20_000  # (a record is sent before the pause it earns)
    assert hurried < total / 20_000 / 2
