"""A numeric monitor's reference goes to the state topic once per fit, in a record of its own;
restores put it back, and replaced references are deleted once their successors are written."""

from __future__ import annotations

import copy

import numpy as np
import orjson

from streamdrift.config import from_mapping
from streamdrift.detectors import encode_monitor
from streamdrift.events import Record
from streamdrift.pipeline import REFERENCE_KEY, DriftPipeline, packed
from streamdrift.stream.checkpoint import write_order

CONFIG = from_mapping({"detectors": {"reference_size": 300, "rearm_size": 200, "window": 200, "evaluate_every": 100}})


def records(start: int, n: int, shift_from: int | None = None, seed: int = 1) -> list[Record]:
    rng = np.random.default_rng(seed + start)
    out = []
    for i in range(start, start + n):
        x = rng.normal(0, 1, 2)
        if shift_from is not None and i >= shift_from:
            x[0] += 3.0
        event = {"model": "m", "ts": 1e9 + i, "features": {"a": float(x[0]), "b": float(x[1])}}
        out.append(Record(orjson.dumps(event), b"m", "features", 0, i))
    return out


def reference_keys(batch: list[tuple[str, bytes | None]]) -> list[str]:
    return sorted(key for key, value in batch if value is not None and f"\x1f{REFERENCE_KEY}\x1f" in key)


def deleted(batch: list[tuple[str, bytes | None]]) -> list[str]:
    return sorted(key for key, value in batch if value is None)


def compact(topic: dict, batch: list[tuple[str, bytes | None]]) -> None:
    for key, value in batch:
        if value is None:
            topic.pop(key, None)
        else:
            topic[key] = value


def test_a_reference_is_written_once_per_fit():
    pipeline = DriftPipeline(CONFIG)
    pipeline.process(records(0, 400))
    first = pipeline.checkpoint()
    assert len(reference_keys(first)) == 2  # features a and b
    pipeline.process(records(400, 400))
    second = pipeline.checkpoint()
    assert reference_keys(second) == [] and deleted(second) == []
    (record,) = [v for k, v in second if k.endswith("\x1ffeature\x1fa")]
    whole = encode_monitor(pipeline.models[("m", None)].monitors[("feature", "a")])
    assert len(record) < len(whole) - 300 * 8 + 200, "the monitor record still carries its reference values"


def test_a_new_fit_writes_a_new_reference_and_deletes_the_old_one_a_checkpoint_later():
    pipeline = DriftPipeline(CONFIG)
    pipeline.process(records(0, 400))
    old = reference_keys(pipeline.checkpoint())
    out = pipeline.process(records(400, 1200, shift_from=500))  # feature a drifts, alerts, re-arms
    assert any(a["feature"] == "a" for a in out.alerts)
    refit = pipeline.checkpoint()
    new = [k for k in reference_keys(refit) if k not in old]
    assert len(new) == 1 and "\x1ffeature\x1fa\x1f" in new[0]
    assert deleted(refit) == []  # the old one stays until the new one is surely written
    pipeline.process(records(1600, 10))
    assert deleted(pipeline.checkpoint()) == [k for k in old if "\x1ffeature\x1fa\x1f" in k]


def test_restored_pipeline_continues_exactly_like_the_one_that_kept_running():
    running = DriftPipeline(CONFIG)
    topic: dict[str, bytes] = {}
    for start in range(0, 1600, 400):
        running.process(records(start, 400, shift_from=900))
        compact(topic, running.checkpoint())
    restored = DriftPipeline(CONFIG)
    assert restored.restore(list(topic.items())) == 2
    later = records(1600, 2000, shift_from=900, seed=5)
    expected = running.process(later)
    got = restored.process(later)
    assert [a["alert_id"] for a in got.alerts] == [a["alert_id"] for a in expected.alerts]
    assert dict(restored.checkpoint()) == dict(running.checkpoint())


def test_a_monitor_whose_reference_record_is_lost_starts_afresh_and_the_others_are_restored():
    pipeline = DriftPipeline(CONFIG)
    pipeline.process(records(0, 400))
    topic = dict(pipeline.checkpoint())
    lost = [k for k in reference_keys(list(topic.items())) if "\x1ffeature\x1fa\x1f" in k]
    del topic[lost[0]]
    restored = DriftPipeline(CONFIG)
    assert restored.restore(list(topic.items())) == 1
    assert list(restored.models[("m", None)].monitors) == [("feature", "b")]


def test_a_state_write_cut_short_after_any_part_loses_no_monitor_and_continues_exactly():
    """A checkpoint that refits a reference fails after some of its parts (``write_order``), the
    next one (which drops the old reference) after some of its own: whatever was stored, the
    state restored from it, replayed from the last committed offset, continues like the pipeline
    that kept running."""
    first_run, refit, after = records(0, 400), records(400, 1200, shift_from=500), records(1600, 10)
    later = records(1610, 2000, seed=5)  # feature a back where it was: drift from its new reference

    def stored(parts, cut: int, topic: dict) -> None:
        for part in parts[:cut]:
            compact(topic, part)

    cuts = len(write_order(_refitted(first_run, refit)[0].checkpoint()))
    assert cuts == 2  # the new reference, then models and monitors
    for cut1 in range(cuts + 1):
        running, topic = _refitted(first_run, refit)
        committed = 400
        first = write_order(running.checkpoint())
        stored(first, cut1, topic)
        if cut1 < len(first):
            running.resave_all([r for part in first for r in part])
        else:
            committed = 1600
        running.process(after)
        second = write_order(running.checkpoint())
        assert any(value is None for key, value in second[-1])  # the old reference goes last
        for cut2 in range(len(second) + 1):
            kept = dict(topic)
            stored(second, cut2, kept)
            restored = DriftPipeline(CONFIG)
            assert restored.restore(list(kept.items())) == 2, (cut1, cut2)
            restored.process([r for r in first_run + refit + after if r.offset >= (1610 if cut2 == len(second)
                                                                                     else committed)])
            twin = copy.deepcopy(running)
            expected = [a["alert_id"] for a in twin.process(later).alerts]
            assert expected and [a["alert_id"] for a in restored.process(later).alerts] == expected, (cut1, cut2)


def _refitted(first_run, refit) -> tuple[DriftPipeline, dict]:
    """A pipeline checkpointed once (that checkpoint stored), then through a drift that refits
    feature a's reference."""
    pipeline, topic = DriftPipeline(CONFIG), {}
    pipeline.process(first_run)
    compact(topic, pipeline.checkpoint())
    out = pipeline.process(refit)
    assert any(a["feature"] == "a" for a in out.alerts)
    return pipeline, topic


def test_a_failed_write_drops_its_replaced_references_with_the_next_checkpoint():
    pipeline, _ = _refitted(records(0, 400), records(400, 1200, shift_from=500))
    pipeline.checkpoint()  # writes the new reference; the old one is dropped a checkpoint later
    pipeline.process(records(1600, 10))
    failed = pipeline.checkpoint()
    dropped = deleted(failed)
    assert len(dropped) == 1 and f"\x1f{REFERENCE_KEY}\x1f" in dropped[0]
    pipeline.resave_all(failed)  # the broker did not take it
    again = pipeline.checkpoint()
    assert deleted(again) == dropped
    assert len(reference_keys(again)) == 2  # and every reference is written again


def test_a_deferred_checkpoint_packs_the_state_of_its_cut_whatever_happens_after():
    """The worker captures a periodic checkpoint between two batches and packs it while the next
    ones run (``checkpoint(deferred=True)``): its bytes must be those of the cut, even when the
    batches in between detect drift, re-arm and refit the monitors (fits write into some of the
    detectors' arrays in place), and a restore from them must continue like the uncut pipeline."""
    running, twin = DriftPipeline(CONFIG), DriftPipeline(CONFIG)
    topic: dict = {}
    for p in (running, twin):
        p.process(records(0, 300))
        compact(topic, p.checkpoint())  # the references: written with the first checkpoint
        p.process(records(300, 200))
    later, now = running.checkpoint(deferred=True), twin.checkpoint()
    assert any(callable(value) for _, value in later)
    monitor = running.models[("m", None)].monitors[("feature", "a")]
    reference = monitor.reference
    after = records(500, 800, shift_from=520)
    found = running.process(after)  # detections, re-arming, a new fit of feature a
    assert found.alerts and monitor.reference is not reference, "the monitors must change before packing"
    written = [(key, packed(value)) for key, value in later]
    assert written == now
    restored = DriftPipeline(CONFIG)
    compact(topic, written)
    restored.restore(list(topic.items()))
    assert [a["alert_id"] for a in restored.process(after).alerts] == [a["alert_id"] for a in found.alerts]
