"""Hostile and broken producers against the pure core (``DriftPipeline``, what the worker calls
for every batch): nothing raises, every record ends processed or rejected with a reason, the
limits hold and name themselves, and state stays bounded under high cardinality."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamdrift.config import Config, Limits
from streamdrift.detectors import MonitorSettings, encode_monitor
from streamdrift.events import Record
from streamdrift.pipeline import DriftPipeline

SMALL = MonitorSettings(reference_size=100, rearm_size=100, window=100, categorical_window=100, evaluate_every=50)


def records_of(messages, start: int = 0) -> list[Record]:
    """One record per message, each at its own offset (the offset tells records apart)."""
    return [Record(m, None, "features", 0, start + i, 1_732_000_000_000) for i, m in enumerate(messages)]


def event(model: str = "m", ts: float | None = None, **features) -> bytes:
    body = {"model": model, "features": features}
    if ts is not None:
        body["ts"] = ts
    return orjson.dumps(body)


def assert_accounted(records: list[Record], out) -> None:
    """Each record is either processed or rejected (once, with a reason), never lost, never twice."""
    assert len(records) == out.processed + len(out.rejected)
    rejected = [r.record.offset for r in out.rejected]
    assert len(rejected) == len(set(rejected)), "a record was rejected twice"
    assert set(rejected) <= {r.offset for r in records}
    for r in out.rejected:
        assert isinstance(r.reason, str) and r.reason.strip(), f"rejection without a reason: {r}"


def reasons(out) -> list[str]:
    return [r.reason for r in out.rejected]


# -- strategies -----------------------------------------------------------------------------
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2 ** 63), max_value=2 ** 64 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=25)
feature_names = st.sampled_from(["amount", "country", "age", "flag"]) | st.text(max_size=6)
models = st.sampled_from(["m1", "m2", "m3"]) | st.text(max_size=6)
# Mostly well-formed envelopes, so that the values reach the per-feature checks.
events = st.fixed_dictionaries(
    {"model": models | json_values, "features": st.dictionaries(feature_names, json_values, max_size=6) | json_values},
    optional={"ts": st.floats(0, 2e9) | json_values, "segment": st.none() | st.sampled_from(["eu", "us"]) | json_values,
              "id": json_values, "prediction": json_values, "label": json_values, "extra": json_values})
# Values that look right most of the time, so a feature's type gets fixed and then contradicted.
plausible = st.dictionaries(st.sampled_from(["amount", "country", "age"]),
                            st.none() | st.floats(-1e6, 1e6) | st.sampled_from(["DE", "FR", "US"]) | st.booleans(),
                            min_size=1)
plausible_events = st.builds(lambda m, f: {"model": m, "features": f}, st.sampled_from(["m1", "m2"]), plausible)
messages = st.one_of(
    st.binary(max_size=200),
    json_values.map(orjson.dumps),
    events.map(orjson.dumps),
    plausible_events.map(orjson.dumps),
    st.sampled_from([b"NaN", b'{"model": "m1", "features": {"amount": NaN}}', b'{"model": "m1", "features": {"amount": Infinity}}',
                     b'{"model": "m1", "features": {"amount": -Infinity}}', b'{"model": "m1", "features": {"amount": 1e999}}',
                     b"", b"\xff\xfe\x00", b'{"model": "m1", "features": {"amount": 1}', b"[" * 5000]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages, max_size=60), st.lists(st.integers(1, 20), min_size=1, max_size=10))
def test_arbitrary_messages_never_raise_and_every_record_is_accounted_for(batch, cuts):
    pipeline = DriftPipeline(Config(detectors=SMALL))
    records = records_of(batch)
    # The worker sees the same stream cut into batches of any size.
    position, i = 0, 0
    while position < len(records):
        size = cuts[i % len(cuts)]
        chunk = records[position:position + size]
        assert_accounted(chunk, pipeline.process(chunk))
        position += size
        i += 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(plausible_events.map(orjson.dumps) | events.map(orjson.dumps), min_size=1, max_size=80))
def test_state_after_hostile_input_survives_checkpoint_and_restore(batch):
    pipeline = DriftPipeline(Config(detectors=SMALL))
    out = pipeline.process(records_of(batch))
    assert_accounted(records_of(batch), out)
    restored = DriftPipeline(Config(detectors=SMALL))
    restored.restore(pipeline.checkpoint())
    # Models whose every event was rejected hold no state (see the max_models test below).
    assert set(restored.models) == {k for k, g in pipeline.models.items() if g.next_offset is not None}
    # ... and the restored state keeps working.
    again = records_of(batch, start=len(batch))
    assert_accounted(again, restored.process(again))


def test_not_json_and_not_an_object_are_rejected_with_reasons():
    batch = [None, b"", b"\x00\xff", b"garbage", b"[1, 2]", b"null", b'"text"', b"42", b"{}", b'{"model": "m"}',
             b'{"features": {}}', b'{"model": 7, "features": {}}', b'{"model": "", "features": {}}',
             b'{"model": "m", "features": [1, 2]}', b'{"model": "m", "features": "x"}']
    records = records_of(batch)
    out = DriftPipeline(Config()).process(records)
    assert_accounted(records, out)
    assert out.processed == 0


@pytest.mark.parametrize("raw", [
    b'{"model": "m", "features": {"x": NaN}}', b'{"model": "m", "features": {"x": Infinity}}',
    b'{"model": "m", "features": {"x": -Infinity}}', b'{"model": "m", "features": {"x": 1e400}}',
    b'{"model": "m", "features": {"x": 1.0}, "prediction": NaN}', b'{"model": "m", "features": {"x": 1.0}, "label": -1e999}',
    b'{"model": "m", "ts": Infinity, "features": {"x": 1.0}}', b'{"model": "m", "ts": NaN, "features": {"x": 1.0}}',
])
def test_nan_and_infinity_are_rejected(raw):
    records = records_of([raw])
    out = DriftPipeline(Config()).process(records)
    assert_accounted(records, out)
    assert out.processed == 0


def test_deeply_nested_json_is_rejected():
    deep_array = b"[" * 100_000 + b"]" * 100_000
    deep_object = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    nested_value = {"model": "m", "features": {"x": 1.0}}
    inner = nested_value["features"]
    for _ in range(50):  # within the JSON parser's depth limit: reaches the value checks
        inner["x"] = {"x": 1.0}
        inner = inner["x"]
    deep_feature = orjson.dumps(nested_value)
    deep_envelope = b'{"model": "m", "features": ' + b'{"x":' * 5000 + b"1" + b"}" * 5001
    records = records_of([deep_array, deep_object, deep_feature, deep_envelope])
    out = DriftPipeline(Config()).process(records)
    assert_accounted(records, out)
    assert out.processed == 0
    by_offset = {r.record.offset: r.reason for r in out.rejected}
    assert "feature 'x' is an object" in by_offset[2], by_offset[2]


def test_huge_strings_hit_the_message_and_string_limits():
    huge = "x" * 5_000_000
    records = records_of([event(country=huge), event(**{"n" * 5000: 1.0}), event(model="m" * 5000, x=1.0),
                          orjson.dumps({"model": "m", "segment": "s" * 5000, "features": {"x": 1.0}})])
    out = DriftPipeline(Config()).process(records)
    assert_accounted(records, out)
    assert out.processed == 0
    assert "limits.max_message_bytes" in reasons(out)[0]
    assert all("limits.max_string_length" in r for r in reasons(out)[1:]), reasons(out)
    # With a larger message limit, the same string is stopped by the string limit.
    roomy = DriftPipeline(Config(limits=Limits(max_message_bytes=10_000_000)))
    records = records_of([event(country=huge), event(country="DE")])
    out = roomy.process(records)
    assert_accounted(records, out)
    assert out.processed == 1 and "limits.max_string_length" in reasons(out)[0]


def test_ten_thousand_features_in_one_event():
    wide = orjson.dumps({"model": "m", "features": {f"f{i:05d}": float(i) for i in range(10_000)}})
    records = records_of([wide, event(x=1.0)])
    out = DriftPipeline(Config()).process(records)
    assert_accounted(records, out)
    assert out.processed == 1 and "limits.max_features" in reasons(out)[0]
    # Raised limits: the wide event is processed, not a crash.
    pipeline = DriftPipeline(Config(detectors=SMALL, limits=Limits(max_features=20_000)))
    records = records_of([wide])
    out = pipeline.process(records)
    assert_accounted(records, out)
    assert out.processed == 1 and pipeline.monitored_pairs == 10_000


@pytest.mark.parametrize("body, words", [
    ({"model": "m", "features": {"x": [1, 2]}}, "a list"),
    ({"model": "m", "features": {"x": {"$numberDecimal": "1.5"}}}, "an object"),
    ({"model": "m", "features": {"x": 1.0}, "prediction": [0.1, 0.9]}, "prediction"),
    ({"model": "m", "features": {"x": 1.0}, "label": {"y": 1}}, "label"),
    ({"model": "m", "features": {"x": 1.0}, "segment": 3}, "segment"),
    ({"model": "m", "features": {"x": 1.0}, "id": 1.5}, "id"),
    ({"model": "m", "features": {"x": 1.0}, "id": True}, "id"),
    ({"model": "m", "features": {"x": 1.0}, "ts": "yesterday"}, "ts"),
    ({"model": "m", "features": {"x": 1.0}, "ts": [1]}, "ts"),
    ({"model": "m", "features": {"x": 1.0}, "ts": False}, "ts"),
    ({"model": ["m"], "features": {"x": 1.0}}, "model"),
])
def test_unknown_and_wrong_types_are_rejected_with_a_reason_naming_the_field(body, words):
    records = records_of([orjson.dumps(body)])
    out = DriftPipeline(Config()).process(records)
    assert_accounted(records, out)
    assert out.processed == 0 and words in reasons(out)[0], reasons(out)


def test_a_string_where_a_feature_has_always_been_numeric():
    pipeline = DriftPipeline(Config(detectors=SMALL))
    history = records_of([event(amount=float(i), country="DE") for i in range(50)])
    assert pipeline.process(history).processed == 50
    later = records_of([event(amount="12.5", country="DE"), event(amount=3.0, country=7.0), event(amount=True, country="FR"),
                        event(amount=4.0, country="FR")], start=50)
    out = pipeline.process(later)
    assert_accounted(later, out)
    assert out.processed == 1
    assert "'amount' has always been numeric" in reasons(out)[0]
    assert "'country' has always been categorical" in reasons(out)[1]
    assert "'amount' has always been numeric" in reasons(out)[2]
    # Within one batch, too: the first value fixes the type.
    fresh = DriftPipeline(Config(detectors=SMALL))
    mixed = records_of([event(x=1.0), event(x="one"), event(x=2.0)])
    out = fresh.process(mixed)
    assert_accounted(mixed, out)
    assert out.processed == 2 and "has always been numeric" in reasons(out)[0]


def test_max_models_is_enforced_and_named():
    pipeline = DriftPipeline(Config(limits=Limits(max_models=5)))
    records = records_of([event(model=f"m{i}", x=1.0) for i in range(8)]
                         + [orjson.dumps({"model": "m0", "segment": "new", "features": {"x": 1.0}}), event(model="m1", x=2.0)])
    out = pipeline.process(records)
    assert_accounted(records, out)
    assert len(pipeline.models) == 5 and out.processed == 6
    assert len(out.rejected) == 4 and all("limits.max_models" in r for r in reasons(out))


def test_rejected_events_do_not_take_model_slots():
    """A producer whose events are all rejected (here: a list as a feature value) must not use
    up ``limits.max_models`` and lock out models with valid events."""
    pipeline = DriftPipeline(Config(limits=Limits(max_models=100, idle_seconds=60)))
    junk = records_of([orjson.dumps({"model": f"junk-{i}", "ts": 1000.0, "features": {"x": [i]}}) for i in range(100)])
    out = pipeline.process(junk)
    assert_accounted(junk, out)
    assert out.processed == 0
    real = records_of([orjson.dumps({"model": "real", "ts": 2000.0, "features": {"x": 1.0}})], start=100)
    out = pipeline.process(real)
    assert out.processed == 1, f"a valid event of a new model was rejected: {reasons(out)}"


def test_model_and_segment_names_with_the_state_key_separator_do_not_corrupt_state():
    """State keys are ``model␟segment[␟kind␟name]``: a name that contains ␟ must either be
    rejected at the boundary or survive a checkpoint and restore as itself."""
    pipeline = DriftPipeline(Config(detectors=SMALL))
    records = records_of([
        orjson.dumps({"model": "m", "segment": "s", "features": {"x": 1.0}}),
        # Its model record's key equals the key of the monitor of feature x of (m, s).
        orjson.dumps({"model": "m", "segment": "s\x1ffeature\x1fx", "features": {"x": 2.0}}),
        orjson.dumps({"model": "a\x1fb", "features": {"y\x1fz": 1.0}}),
    ])
    out = pipeline.process(records)
    assert_accounted(records, out)
    checkpoint = pipeline.checkpoint()
    keys = [k for k, _ in checkpoint]
    assert len(keys) == len(set(keys)), f"two different states share a key on the compacted topic: {keys}"
    restored = DriftPipeline(Config(detectors=SMALL))
    restored.restore(checkpoint)
    assert set(restored.models) == set(pipeline.models)
    for key, group in pipeline.models.items():
        assert set(restored.models[key].monitors) == set(group.monitors)


def test_one_event_from_the_far_future_does_not_evict_every_other_model():
    """Eviction runs on event time; one event with a wild ``ts`` (year 9999, or 1e300) must not
    make every active model look idle and drop its monitors."""
    pipeline = DriftPipeline(Config(detectors=SMALL, limits=Limits(idle_seconds=3600)))
    now = 1_732_000_000.0
    records = records_of([event(model=f"m{i}", ts=now + i, x=float(i)) for i in range(5)])
    pipeline.process(records)
    hostile = records_of([event(model="clock-skew", ts=1e300, x=1.0),
                          orjson.dumps({"model": "y9999", "ts": "9999-12-31T00:00:00Z", "features": {"x": 1.0}})], start=5)
    out = pipeline.process(hostile)
    assert_accounted(hostile, out)
    assert {f"m{i}" for i in range(5)} <= {model for model, _ in pipeline.models}, \
        f"active models evicted by one event's timestamp: {sorted(pipeline.models)}, evicted={pipeline.evicted}"


# -- memory stays bounded ---------------------------------------------------------------------
def rotating_models(batches: int, per_batch: int = 20, live: int = 40, spacing_s: float = 60.0):
    """Batches where every batch brings new models and old ones fall silent (model churn)."""
    for b in range(batches):
        yield records_of([event(model=f"model-{b * per_batch + j}", ts=b * spacing_s + j * 0.01, x=float(j),
                                 session=f"s-{b}-{j}")
                          for j in range(per_batch)]
                         + [event(model=f"steady-{j}", ts=b * spacing_s + 0.5, x=float(b % 7)) for j in range(live)],
                         start=b * (per_batch + live))


def test_idle_models_are_evicted_and_model_count_stays_bounded():
    pipeline = DriftPipeline(Config(detectors=SMALL, limits=Limits(idle_seconds=600)))
    peak = 0
    for records in rotating_models(500):
        assert_accounted(records, pipeline.process(records))
        peak = max(peak, len(pipeline.models))
    # 40 steady models + the churned models of the last idle window (600 s / 60 s + 1 batches of 20).
    assert peak <= 40 + 20 * 11
    assert pipeline.evicted >= 500 * 20 - 20 * 11
    assert {f"steady-{j}" for j in range(40)} <= {m for m, _ in pipeline.models}


def test_pending_checkpoint_set_stays_bounded_when_models_are_evicted_between_checkpoints():
    """The worker checkpoints every few seconds and processes many batches in between: models
    evicted in between must not stay in ``pipeline.dirty`` forever."""
    pipeline = DriftPipeline(Config(detectors=SMALL, limits=Limits(idle_seconds=600)))
    for b, records in enumerate(rotating_models(500)):
        pipeline.process(records)
        if b % 20 == 19:
            pipeline.checkpoint()
    assert len(pipeline.dirty) <= len(pipeline.models), \
        f"{len(pipeline.dirty)} keys pending checkpoint for {len(pipeline.models)} live models (evicted {pipeline.evicted})"


def test_evicted_models_do_not_come_back_from_the_state_topic():
    """Eviction must reach the compacted state topic (a tombstone), or every restore brings back
    every (model, segment) ever seen."""
    pipeline = DriftPipeline(Config(detectors=SMALL, limits=Limits(idle_seconds=600)))
    compacted: dict[str, bytes | None] = {}
    for b, records in enumerate(rotating_models(100)):
        pipeline.process(records)
        if b % 5 == 4:
            compacted.update(pipeline.checkpoint())
    compacted.update(pipeline.checkpoint())
    restored = DriftPipeline(Config(detectors=SMALL, limits=Limits(idle_seconds=600)))
    restored.restore([(k, v) for k, v in compacted.items() if v is not None])  # as read_state does
    assert len(restored.models) <= len(pipeline.models), \
        f"restore brought back {len(restored.models)} models; {len(pipeline.models)} are live, {pipeline.evicted} evicted"


def test_categorical_state_is_bounded_regardless_of_the_number_of_categories():
    pipeline = DriftPipeline(Config(detectors=MonitorSettings(reference_size=1000, rearm_size=500)))
    sizes = {}
    total = 0
    for b in range(60):
        records = records_of([event(user=f"user-{total + i:09d}") for i in range(5000)], start=total)
        total += len(records)
        assert_accounted(records, pipeline.process(records))
        if total in (20_000, 100_000, 300_000):
            monitor = pipeline.models[("m", None)].monitors[("feature", "user")]
            sizes[total] = len(encode_monitor(monitor))
    assert sizes[300_000] <= 1.25 * sizes[20_000], f"encoded monitor grows with categories: {sizes}"
    # Bounded by the reference size (distinct names kept), not by the 300,000 categories seen.
    assert sizes[300_000] < 200_000, sizes
