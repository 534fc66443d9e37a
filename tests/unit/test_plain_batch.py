"""The plain-batch fast path of ``DriftPipeline.process`` (``events.plain_batch``, ``PlainRun``):
it only decides that a batch is the common case, so its outputs and state must be exactly those of
the per-event path, on clean streams and on streams salted with every kind of exception."""

from __future__ import annotations

import random

import numpy as np
import orjson
import pytest

from streamdrift import intake
from streamdrift.config import Config, Limits
from streamdrift.detectors import MonitorSettings, MultivariateSettings
from streamdrift.events import Record, plain_batch
from streamdrift.pipeline import DriftPipeline

#: Small monitors: several detections within a few thousand events.
SMALL = MonitorSettings(reference_size=100, rearm_size=100, window=50, categorical_window=100, evaluate_every=10,
                        false_alarm_budget=1_000_000)
MODELS = 6
FEATURES = ("a", "b", "c")


def plain_event(i: int, rng: random.Random) -> dict:
    """Models round-robin; model 0's feature ``a`` shifts half-way through a 6,000-event stream."""
    model = i % MODELS
    shift = 3.0 if model == 0 and i > 3_000 else 0.0
    return {"model": f"m{model}", "id": f"e-{i}", "ts": 1_000.0 + i,
            "features": {name: round(rng.gauss(shift if name == "a" else 0.0, 1.0), 4) for name in FEATURES}}


#: One exception to the plain shape each: every one must leave the fast path (for its batch or
#: its model) and still give the per-event path's results.
def _salt(event: dict, kind: str, i: int) -> dict | bytes:
    features = event["features"]
    if kind == "bool":
        features["b"] = True
    elif kind == "string":
        features["b"] = "DE"
    elif kind == "null":
        features["c"] = None
    elif kind == "int value":
        features["a"] = 2
    elif kind == "list value":
        features["a"] = [1]
    elif kind == "int ts":
        event["ts"] = int(event["ts"])
    elif kind == "iso ts":
        event["ts"] = "2024-11-24T17:40:00Z"
    elif kind == "no ts":
        del event["ts"]
    elif kind == "int id":
        event["id"] = i
    elif kind == "bool id":
        event["id"] = True
    elif kind == "new feature":
        features["d"] = 1.0
    elif kind == "missing feature":
        del features["c"]
    elif kind == "reordered":
        event["features"] = dict(reversed(features.items()))
    elif kind == "keys reordered":
        event = dict(reversed(event.items()))
    elif kind == "prediction":
        event["prediction"], event["label"] = 0.5, 1
    elif kind == "segment":
        event["segment"] = "eu"
    elif kind == "idle gap":
        event["ts"] += 10_000.0
    elif kind == "new model":
        event["model"] = f"new-{i}"
    elif kind == "bad model":
        event["model"] = "x\x1fy"
    elif kind == "not json":
        return b"{"
    elif kind == "not an object":
        return b"[1]"
    return orjson.dumps(event)


SALTS = ("bool", "string", "null", "int value", "list value", "int ts", "iso ts", "no ts", "int id", "bool id",
         "new feature", "missing feature", "reordered", "keys reordered", "prediction", "segment", "idle gap",
         "new model", "bad model", "not json", "not an object")


def stream(n: int, salts: tuple[str, ...] = (), rate: float = 0.0, seed: int = 0) -> list[Record]:
    rng = random.Random(seed)
    records = []
    for i in range(n):
        event = plain_event(i, rng)
        value = _salt(event, rng.choice(salts), i) if salts and rng.random() < rate else orjson.dumps(event)
        records.append(Record(value, None, "features", i % 2, i, 1_700_000_000_000 + i))
    return records


def config(**limits) -> Config:
    return Config(detectors=SMALL, limits=Limits(**{"idle_seconds": 5_000.0, **limits}))


def outputs(records: list[Record], batch: int, cfg: Config, fast: bool, monkeypatch, restore_at: int | None = None):
    """Everything a run produces, batch by batch, and the final state."""
    with monkeypatch.context() as patch:
        if not fast:
            patch.setattr(DriftPipeline, "_plain_runs", lambda self, records, batch: None)
            patch.setattr(DriftPipeline, "_plain_pieces", lambda self, records, batch: None)
        pipeline = DriftPipeline(cfg)
        produced = []
        start = 0
        while start < len(records):
            if restore_at is not None and start >= restore_at:
                # A restart from the checkpoint, which replays events it already covers: from
                # the middle of the last batch, so that a batch is part covered, part new.
                state = pipeline.checkpoint()
                pipeline = DriftPipeline(cfg)
                pipeline.restore(state)
                start, restore_at = max(0, start - batch // 2 - 7), None
            out = pipeline.process(records[start:start + batch])
            start += batch
            produced.append((out.alerts, out.retrain_requests,
                             [(r.record.offset, r.reason) for r in out.rejected], out.processed,
                             out.labels_joined, out.labels_unmatched, out.predictions_expired, out.notices))
        return produced, pipeline.checkpoint(), pipeline.model_count, pipeline.monitored_pairs


@pytest.mark.parametrize("batch", [6_000, 1_000, 257, 1])
def test_clean_stream_gives_the_per_event_results(batch, monkeypatch):
    records = stream(6_000)
    fast = outputs(records, batch, config(), True, monkeypatch)
    assert any(alerts for alerts, *_ in fast[0]), "the shift of m0's feature a should raise alerts"
    assert fast == outputs(records, batch, config(), False, monkeypatch)


@pytest.mark.parametrize("batch", [1_000, 257])
def test_restart_that_replays_covered_events_gives_the_per_event_results(batch, monkeypatch):
    records = stream(6_000)
    assert outputs(records, batch, config(), True, monkeypatch, restore_at=3_500) == \
           outputs(records, batch, config(), False, monkeypatch, restore_at=3_500)


def test_new_models_beyond_max_models_give_the_per_event_results(monkeypatch):
    records = stream(3_000, ("new model",), rate=0.01, seed=2)
    cfg = config(max_models=MODELS + 2)
    fast = outputs(records, 500, cfg, True, monkeypatch)
    assert any(rejected for _, _, rejected, *_ in fast[0]), "some models should be refused"
    assert fast == outputs(records, 500, cfg, False, monkeypatch)


@pytest.mark.parametrize("salt", SALTS)
def test_each_exception_gives_the_per_event_results(salt, monkeypatch):
    records = stream(3_000, (salt,), rate=0.002, seed=1)
    for batch in (1_000, 97):
        assert outputs(records, batch, config(), True, monkeypatch) == \
               outputs(records, batch, config(), False, monkeypatch), (salt, batch)


@pytest.mark.parametrize("seed", range(3))
def test_mixed_exceptions_and_a_restart_give_the_per_event_results(seed, monkeypatch):
    records = stream(4_000, SALTS, rate=0.01, seed=seed)
    cfg = config(max_models=MODELS + 3)  # some new models meet the limit
    for batch in (1_000, 333):
        assert outputs(records, batch, cfg, True, monkeypatch, restore_at=2_000) == \
               outputs(records, batch, cfg, False, monkeypatch, restore_at=2_000), (seed, batch)


def test_replayed_records_with_parsed_data_give_the_per_event_results(monkeypatch):
    records = [Record(r.value, r.key, r.topic, r.partition, r.offset, r.timestamp_ms, orjson.loads(r.value))
               for r in stream(3_000)]
    assert outputs(records, 500, config(), True, monkeypatch) == outputs(records, 500, config(), False, monkeypatch)


def test_a_clean_batch_of_known_models_decodes_no_event(monkeypatch):
    """The point of the fast path: after the first batch, no per-event ``decode``."""
    records = stream(4_000)
    pipeline = DriftPipeline(config())
    pipeline.process(records[:2_000])
    calls = []
    monkeypatch.setattr(intake, "decode", lambda *args: calls.append(args))  # where events are made
    out = pipeline.process(records[2_000:])
    assert out.processed == 2_000 and not out.rejected and calls == []


def test_plain_batch_values_are_the_features_in_event_order():
    records = stream(600)
    batch = plain_batch(records, Limits())
    expected = [list(orjson.loads(r.value)["features"].values()) for r in records]
    assert batch.features == FEATURES and np.array_equal(batch.values, np.array(expected))
    assert batch.models == [f"m{i % MODELS}" for i in range(600)] and batch.ts == [1_000.0 + i for i in range(600)]


@pytest.mark.parametrize("salt", SALTS)
def test_plain_batch_refuses_every_exception_but_the_ones_the_pipeline_sorts_out(salt):
    records = stream(10)
    records[7] = Record(_salt(orjson.loads(records[7].value), salt, 7))
    batch = plain_batch(records, Limits())
    if salt in ("null", "int value", "int ts", "reordered", "keys reordered", "idle gap", "new model"):
        assert batch is not None and batch.unread is None
    elif salt in ("bool id", "bad model", "not json", "not an object"):
        # decode rejects it: the batch is the others, the rejection kept with its reason
        assert batch is not None and batch.unread.tolist() == [7] and not batch.others
        assert [r.record for r in batch.rejected] == [records[7]] and batch.models[:7] == [f"m{i}" for i in range(6)] + ["m0"]
        with_others = plain_batch(records, Limits(), others=True)
        assert with_others.unread.tolist() == [7] and with_others.others == []
    else:
        assert batch is None
        # valid but not plain: with ``others`` the scanner reads around it
        assert plain_batch(records, Limits(), others=True).others == [7]


def test_one_feature_events_give_the_per_event_results(monkeypatch):
    """(One feature: ``itemgetter`` then gives the value itself, not a tuple.)"""
    rng = random.Random(3)
    records = [Record(orjson.dumps({"model": f"m{i % 2}", "ts": 1_000.0 + i,
                                    "features": {"x": rng.gauss(2.0 if i > 1_500 else 0.0, 1.0)}}), offset=i)
               for i in range(3_000)]
    fast = outputs(records, 400, config(), True, monkeypatch)
    assert any(alerts for alerts, *_ in fast[0])
    assert fast == outputs(records, 400, config(), False, monkeypatch)


def test_replayed_nan_times_give_the_per_event_results(monkeypatch):
    """A reader's NaN time (JSON has none) passes every type check: its gaps restart nothing and
    hide no other gap."""
    records = []
    for r in stream(2_000):
        data = orjson.loads(r.value)
        if r.offset % 301 == 7:
            data["ts"] = float("nan")
        elif r.offset == 1_234:
            data["ts"] += 10_000.0  # an idle gap that a NaN maximum would hide
        records.append(Record(r.value, r.key, r.topic, r.partition, r.offset, r.timestamp_ms, data))
    assert outputs(records, 500, config(), True, monkeypatch) == outputs(records, 500, config(), False, monkeypatch)


# -- categorical features on the plain path ----------------------------------------------------
COUNTRIES = ("DE", "FR", "US", "GB")


def mixed_event(i: int, rng: random.Random, missing: float = 0.0) -> dict:
    """``plain_event`` with a categorical ``country`` whose mix moves for model 1, a boolean
    ``member``, and nulls in both (``missing``) and in ``c``."""
    event = plain_event(i, rng)
    shares = (0.1, 0.2, 0.3, 0.4) if i % MODELS == 1 and i > 3_000 else (0.4, 0.3, 0.2, 0.1)
    features = event["features"]
    features["country"] = None if rng.random() < missing else rng.choices(COUNTRIES, shares)[0]
    features["member"] = None if rng.random() < missing else rng.random() < 0.3
    if rng.random() < missing:
        features["c"] = None
    return event


def mixed_stream(n: int, missing: float = 0.0, seed: int = 5, salts: tuple[str, ...] = (),
                 rate: float = 0.0) -> list[Record]:
    rng = random.Random(seed)
    records = []
    for i in range(n):
        event = mixed_event(i, rng, missing)
        value = _salt(event, rng.choice(salts), i) if salts and rng.random() < rate else orjson.dumps(event)
        records.append(Record(value, None, "features", i % 2, i, 1_700_000_000_000 + i))
    return records


@pytest.mark.parametrize("batch", [6_000, 1_000, 257])
@pytest.mark.parametrize("missing", [0.0, 0.05])
def test_categorical_features_give_the_per_event_results(batch, missing, monkeypatch):
    records = mixed_stream(6_000, missing)
    fast = outputs(records, batch, config(), True, monkeypatch)
    features = {alert["feature"] for alerts, *_ in fast[0] for alert in alerts}
    assert "country" in features and "a" in features, features
    assert fast == outputs(records, batch, config(), False, monkeypatch)


def test_categorical_features_one_event_at_a_time_give_the_per_event_results(monkeypatch):
    """(Batches of one: each event a plain batch of its own; a shorter stream, the time is per batch.)"""
    records = mixed_stream(1_500, missing=0.05)
    assert outputs(records, 1, config(), True, monkeypatch) == outputs(records, 1, config(), False, monkeypatch)


def test_a_clean_mixed_batch_of_known_models_decodes_no_event(monkeypatch):
    records = mixed_stream(4_000, missing=0.05)
    pipeline = DriftPipeline(config())
    pipeline.process(records[:2_000])
    calls = []
    monkeypatch.setattr(intake, "decode", lambda *args: calls.append(args))
    out = pipeline.process(records[2_000:])
    assert out.processed == 2_000 and not out.rejected and calls == []


@pytest.mark.parametrize("seed", range(2))
def test_categorical_features_with_exceptions_and_a_restart_give_the_per_event_results(seed, monkeypatch):
    records = mixed_stream(4_000, 0.02, seed, SALTS, rate=0.01)
    cfg = config(max_models=MODELS + 3)
    for batch in (1_000, 333):
        assert outputs(records, batch, cfg, True, monkeypatch, restore_at=2_000) == \
               outputs(records, batch, cfg, False, monkeypatch, restore_at=2_000), (seed, batch)


def test_a_string_where_a_feature_was_numeric_or_too_long_leaves_the_plain_path(monkeypatch):
    records = mixed_stream(3_000)
    for i, value in ((1_500, "12.5"), (2_200, "x" * 300)):
        event = orjson.loads(records[i].value)
        event["features"]["a" if i == 1_500 else "country"] = value
        records[i] = Record(orjson.dumps(event), None, "features", i % 2, i, records[i].timestamp_ms)
    fast = outputs(records, 500, config(max_string_length=256), True, monkeypatch)
    rejected = [reason for _, _, rejected, *_ in fast[0] for _, reason in rejected]
    assert len(rejected) == 2 and "has always been numeric" in rejected[0] and "max_string_length" in rejected[1]
    assert fast == outputs(records, 500, config(max_string_length=256), False, monkeypatch)


def test_multivariate_monitor_on_plain_batches_with_categories(monkeypatch):
    records = mixed_stream(6_000, missing=0.02)
    cfg = Config(detectors=SMALL, limits=Limits(idle_seconds=5_000.0), multivariate_models=("*",),
                 multivariate=MultivariateSettings(reference_size=400, rearm_size=400))
    fast = outputs(records, 700, cfg, True, monkeypatch)
    assert fast == outputs(records, 700, cfg, False, monkeypatch)


def malformed_now_and_then(n: int) -> list[Record]:
    records = mixed_stream(n, missing=0.02)
    for i in range(499, n, 500):
        records[i] = Record(b"{" if i % 1000 == 499 else b'{"model": "m1", "features": {"a": [1]}}',
                            None, "features", i % 2, i, records[i].timestamp_ms)
    return records


def test_a_malformed_message_now_and_then_leaves_the_rest_on_the_plain_path_read_once(monkeypatch):
    from streamdrift import plain_scan

    records = malformed_now_and_then(6_000)
    pipeline = DriftPipeline(config())
    pipeline.process(records[:2_000])
    calls, scanned = [], []
    decode, scan = intake.decode, plain_scan.scan
    monkeypatch.setattr(intake, "decode", lambda *args: (calls.append(args), decode(*args))[1])
    monkeypatch.setattr(plain_scan, "scan", lambda messages, **kw: (scanned.append(len(messages)),
                                                                   scan(messages, **kw))[1])
    out = pipeline.process(records[2_000:])
    assert len(out.rejected) == 8 and out.processed == 3_992
    # Invalid JSON is taken out (events.plain_pieces: decode rejects it); a list value passes
    # decode, but the pipeline refuses it before the batch (``_refused_whole``: a known model's
    # known feature, its column check rejects it, no time in the batch can restart a model), so
    # it is taken out too: no event goes the routed way, and the batch is scanned once.
    assert calls == []
    assert scanned == [4_000]


def test_a_list_value_in_a_batch_with_an_idle_gap_still_cuts_it(monkeypatch):
    """Where a model could restart in the batch (an event time past ``idle_seconds``), a valid
    event the column check would reject is not refused ahead: the batch is cut around it as
    before, and the results are the per-event path's."""
    records = malformed_now_and_then(3_000)
    gap = orjson.loads(records[2_600].value)
    gap["ts"] += 10_000.0
    records[2_600] = Record(orjson.dumps(gap), None, "features", 0, 2_600, records[2_600].timestamp_ms)
    pipeline = DriftPipeline(config())
    pipeline.process(records[:2_000])
    refused = []
    original = DriftPipeline._refused_whole
    monkeypatch.setattr(DriftPipeline, "_refused_whole",
                        lambda self, events, span: (refused.append(original(self, events, span)), refused[-1])[1])
    pipeline.process(records[2_000:])
    assert refused and not any(r for batch in refused for r in batch)
    assert outputs(records, 1_000, config(), True, monkeypatch) == outputs(records, 1_000, config(), False,
                                                                           monkeypatch)


@pytest.mark.parametrize("batch", [3_000, 700])
def test_strings_for_numbers_now_and_then_are_refused_ahead_with_the_per_event_results(batch, monkeypatch):
    """A producer that sends a string for a known numeric feature now and then (the sample log's
    ``"amount": "twelve"``): each such event is refused before the batch, which stays whole on
    the plain path, and everything is what the per-event path gives."""
    records = mixed_stream(6_000, missing=0.02)
    for i in range(250, 6_000, 400):
        event = orjson.loads(records[i].value)
        event["features"] = {"a": "twelve"} if i % 800 == 250 else {**event["features"], "b": "x"}
        if i % 1_200 == 250:
            del event["ts"]  # a time of its own or not
        records[i] = Record(orjson.dumps(event), None, "features", i % 2, i, records[i].timestamp_ms)
    pieces = []
    original = DriftPipeline._process_pieces
    monkeypatch.setattr(DriftPipeline, "_process_pieces", lambda self, *a: (pieces.append(1), original(self, *a))[1])
    fast = outputs(records, batch, config(), True, monkeypatch)
    assert len(pieces) <= 1  # a batch cut only while the models are new (their first batch)
    rejected = [reason for _, _, rejected, *_ in fast[0] for _, reason in rejected]
    assert len(rejected) == 15 and all("has always been numeric" in reason for reason in rejected)
    assert fast == outputs(records, batch, config(), False, monkeypatch)


@pytest.mark.parametrize("batch", [6_000, 1_100, 600])
def test_a_batch_cut_around_malformed_messages_gives_the_per_event_results(batch, monkeypatch):
    records = malformed_now_and_then(6_000)
    fast = outputs(records, batch, config(), True, monkeypatch)
    assert fast == outputs(records, batch, config(), False, monkeypatch)


@pytest.mark.parametrize("salt", SALTS)
def test_a_chunk_looks_plain_exactly_when_each_of_its_messages_does(salt):
    from streamdrift.events import _chunk_looks_plain, looks_plain
    records = mixed_stream(300, missing=0.05)
    records[123] = Record(_salt(orjson.loads(records[123].value), salt, 123), None, "features", 1, 123)
    for chunk in (records, [Record(r.value, data=orjson.loads(r.value)) if r.value[:1] == b"{" and
                            r.value != b"{" else r for r in records]):
        assert _chunk_looks_plain(chunk, Limits()) == all(looks_plain(r, Limits()) for r in chunk), salt


def test_plain_flags_are_the_chunk_check_of_each_message():
    from streamdrift.events import _chunk_looks_plain, _plain_flags
    records = stream(3_000, SALTS, rate=0.3, seed=4)
    records[7] = Record(b"x" * 2_000_000, None, "features", 1, 7)  # over max_message_bytes
    records[8] = Record(None, None, "features", 1, 8)
    records[9] = Record(b'{"model": "m", "ts": 1, "features": {"a": 1.0}, "id": null}', None, "features", 1, 9)
    records[10] = Record(b'{"model": "m", "ts": 1, "features": {"a": 1.0}, "other": 1}', None, "features", 1, 10)
    records[11] = Record(b'{"model": "m", "features": {"a": 1.0}, "id": "x", "other": 1}', None, "features", 1, 11)
    records[12] = Record(b'{"model": 5, "ts": 1, "features": {"a": 1.0}}', None, "features", 1, 12)
    records[13] = Record(b'{"model": "m", "ts": true, "features": {"a": 1.0}}', None, "features", 1, 13)
    parsed = [Record(r.value, data=orjson.loads(r.value)) if isinstance(r.value, bytes) and r.value[:1] == b"{"
              and r.value != b"{" else r for r in records]
    for chunk in (records, parsed):
        expected = [_chunk_looks_plain([r], Limits()) for r in chunk]
        assert 0 < expected.count(False) < len(expected)
        assert _plain_flags(chunk, Limits()) == expected
