"""Prediction, label and concept drift through the pipeline, with labels that arrive late."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from river.datasets import synth

from streamdrift.concept import PendingPredictions, prediction_error
from streamdrift.config import Config, Limits
from streamdrift.events import Record
from streamdrift.pipeline import DriftPipeline


def sea_events(n: int, switch: int | None, *, shift_features: bool = False, seed: int = 0, noise: float = 0.05):
    """SEA stream (x0, x1, x2 uniform on [0, 10]); the deployed model is SEA's variant-0 rule
    (x0 + x1 > 8). With ``switch`` the true rule becomes variant 2 (x0 + x1 > 7) there: a pure
    concept change. With ``shift_features`` x0 moves up instead while the rule stays: a pure
    covariate shift that the model still gets right."""
    rng = np.random.default_rng(seed)
    events = []
    for i, (x, _) in enumerate(synth.SEA(variant=0, seed=seed).take(n)):
        x0, x1, x2 = x[0], x[1], x[2]
        if shift_features and i >= n // 2:
            x0 = min(10.0, x0 * 0.6 + 4.0)
        threshold = 7.0 if switch is not None and i >= switch else 8.0
        label = int(x0 + x1 > threshold)
        if rng.random() < noise:
            label = 1 - label
        events.append({"model": "sea", "id": f"e{i}", "ts": 1e9 + i,
                       "features": {"x0": x0, "x1": x1, "x2": x2},
                       "prediction": float(x0 + x1 > 8.0), "label": label})
    return events


def run(events, config=None, batch=2000):
    pipeline = DriftPipeline(config or Config())
    records = [Record(orjson.dumps(e), e["model"].encode(), "features", 0, i) for i, e in enumerate(events)]
    outs = [pipeline.process(records[i:i + batch]) for i in range(0, len(records), batch)]
    return pipeline, [a for o in outs for a in o.alerts], [r for o in outs for r in o.retrain_requests], outs


def test_pure_concept_change_raises_concept_alerts_and_no_feature_alerts():
    _, alerts, requests, _ = run(sea_events(16_000, 8_000))
    concept = [a for a in alerts if a["kind"] == "concept"]
    assert concept, "the error rate rose from 5% to ~12%: a concept alert was expected"
    assert all(8_000 <= a["index"] < 12_000 for a in concept)
    first = concept[0]
    assert first["effect"]["error_after"] > first["effect"]["error_before"]
    assert not [a for a in alerts if a["kind"] == "feature"], "the inputs did not change"
    assert requests and requests[0]["severity"] == "critical" and "concept" in requests[0]["reason"]


def test_covariate_shift_with_a_model_that_stays_right_raises_feature_alerts_and_no_concept_alert():
    _, alerts, _, _ = run(sea_events(16_000, None, shift_features=True))
    assert {a["feature"] for a in alerts if a["kind"] == "feature"} == {"x0"}
    assert not [a for a in alerts if a["kind"] == "concept"]


def test_prediction_and_label_streams_have_their_own_kinds():
    events = sea_events(12_000, None)
    for e in events[6_000:]:
        e["prediction"] = 1.0  # the model starts predicting the positive class for everyone
    _, alerts, _, _ = run(events)
    kinds = {(a["kind"], a["feature"]) for a in alerts}
    assert ("prediction", "prediction") in kinds
    assert ("feature", "x0") not in kinds


def late(events, delay: int):
    """The same events with their labels sent ``delay`` events later on their own."""
    out = []
    for i, e in enumerate(events):
        out.append({k: v for k, v in e.items() if k != "label"})
        if i >= delay:
            prev = events[i - delay]
            out.append({"model": prev["model"], "id": prev["id"], "label": prev["label"], "ts": e["ts"]})
    return out


def test_late_labels_join_their_predictions_and_catch_the_concept_change():
    pipeline, alerts, _, outs = run(late(sea_events(16_000, 8_000), delay=500))
    assert sum(o.labels_joined for o in outs) == 16_000 - 500
    assert sum(o.labels_unmatched for o in outs) == 0
    concept = [a for a in alerts if a["kind"] == "concept"]
    assert concept and all(8_000 <= a["index"] < 12_000 for a in concept)
    assert len(pipeline.pending["sea"]) == 500  # the last predictions still wait


def test_alerts_of_late_labels_do_not_depend_on_batching():
    events = late(sea_events(16_000, 8_000), delay=300)
    ids = [[a["alert_id"] for a in run(events, batch=b)[1]] for b in (1_000, 4_999, 30_000)]
    assert ids[0] == ids[1] == ids[2] and ids[0]


def test_labels_after_the_time_to_live_are_counted_never_lost():
    config = Config(limits=Limits(label_ttl_seconds=100.0))
    events = late(sea_events(3_000, None), delay=200)  # labels come 200 s late: after the 100 s TTL
    _, _, _, outs = run(events, config)
    assert sum(o.labels_joined for o in outs) == 0
    assert sum(o.labels_unmatched for o in outs) == 3_000 - 200
    assert sum(o.predictions_expired for o in outs) >= 3_000 - 200 - 1
    assert sum(o.processed for o in outs) + sum(len(o.rejected) for o in outs) == len(events)


def test_pending_predictions_are_bounded_and_checkpointed():
    config = Config(limits=Limits(max_pending_predictions=100))
    events = [{k: v for k, v in e.items() if k != "label"} for e in sea_events(1_000, None)]
    pipeline, _, _, outs = run(events, config)
    assert len(pipeline.pending["sea"]) == 100
    assert sum(o.predictions_expired for o in outs) == 900
    records = pipeline.checkpoint()
    restored = DriftPipeline(config)
    restored.restore(records)
    assert list(restored.pending["sea"].items) == list(pipeline.pending["sea"].items)
    out = restored.process([Record(orjson.dumps({"model": "sea", "id": "e999", "label": 1}), b"sea", "labels", 0, 0)])
    assert out.labels_joined == 1


@pytest.mark.parametrize("prediction,label,error", [(0.9, 1, 0.0), (0.9, 0, 1.0), ("a", "a", 0.0), (True, False, 1.0),
                                                    (2.0, 5.0, 3.0)])
def test_prediction_error(prediction, label, error):
    assert prediction_error(prediction, label) == error


def test_pending_expiry_is_by_event_time():
    pending = PendingPredictions(max_size=10, ttl_seconds=5)
    pending.add("a", 1, None, 0.0, 0)
    pending.add("b", 1, None, 4.0, 1)
    assert pending.expire(now=6.0) == 1 and pending.take("b") is not None


def test_binary_detectors_on_a_regression_error_stream_fall_back_with_a_notice():
    from streamdrift.config import from_mapping
    config = from_mapping({"detectors": {"reference_size": 200},
                           "features": [{"pattern": "concept:error", "detectors": ["ddm", "adwin"]}]})
    rng = np.random.default_rng(1)
    events = [{"model": "reg", "id": f"e{i}", "ts": 1e9 + i, "features": {"x": float(rng.normal())},
               "prediction": float(rng.normal()), "label": float(rng.normal())} for i in range(3000)]
    pipeline = DriftPipeline(config)
    records = [Record(orjson.dumps(e), b"reg", "features", 0, i) for i, e in enumerate(events)]
    outs = [pipeline.process(records[i:i + 500]) for i in range(0, len(records), 500)]
    notices = [n for out in outs for n in out.notices]
    assert len(notices) == 1 and "ddm" in notices[0] and "adwin" in notices[0], notices
    assert sum(out.processed for out in outs) == 3000
    monitor = pipeline.models[("reg", None)].monitors[("concept", "error")]
    assert monitor.active == ("adwin",) and monitor.seen == 3000


def test_late_labels_feed_a_label_stream_of_their_own():
    # Predictions now, labels later on the labels topic; the share of class 1 moves 20% -> 60%.
    rng = np.random.default_rng(5)
    n = 6000
    shares = np.where(np.arange(n) < 3000, 0.2, 0.6)
    labels = (rng.random(n) < shares).astype(int)
    config = Config()
    from streamdrift.config import from_mapping
    config = from_mapping({"detectors": {"reference_size": 1000}})
    pipeline = DriftPipeline(config)
    records, pos = [], 0
    for start in range(0, n, 500):
        for i in range(start, start + 500):
            event = {"model": "m", "id": f"e{i}", "ts": 1e9 + i, "features": {"x": float(rng.normal())},
                     "prediction": 0.5}
            records.append(Record(orjson.dumps(event), b"m", "features", 0, pos)); pos += 1
        for i in range(start, start + 500):
            label = {"model": "m", "id": f"e{i}", "label": int(labels[i]), "ts": 1e9 + i + 0.5}
            records.append(Record(orjson.dumps(label), b"m", "labels", 0, pos)); pos += 1
    records.append(Record(orjson.dumps({"model": "m", "id": "e5", "label": "cat", "ts": 2e9}), b"m", "labels", 0, pos))
    outs = [pipeline.process(records[i:i + 700]) for i in range(0, len(records), 700)]
    alerts = [a for o in outs for a in o.alerts]
    late = [a for a in alerts if a["feature"] == "late_label"]
    assert late and all(a["kind"] == "label" for a in late), alerts
    assert min(a["detected_at"]["offset"] for a in late) > 6000, "no label alert before the change"
    group = pipeline.models[("m", None)]
    assert ("label", "label") not in group.monitors  # events without a label are not missing labels
    assert sum(o.processed for o in outs) + sum(len(o.rejected) for o in outs) == len(records)
    # e5 was joined already: a second label for it finds no prediction (unmatched, not rejected)
    assert sum(o.labels_unmatched for o in outs) == 1


def test_a_late_label_of_the_wrong_type_is_rejected_with_its_reason():
    pipeline = DriftPipeline(Config())
    msgs = [({"model": "m", "id": "a", "ts": 1.0, "features": {"x": 1.0}, "prediction": 1}, "features"),
            ({"model": "m", "id": "b", "ts": 2.0, "features": {"x": 1.0}, "prediction": 1}, "features"),
            ({"model": "m", "id": "a", "label": 1, "ts": 3.0}, "labels"),
            ({"model": "m", "id": "b", "label": "dog", "ts": 4.0}, "labels")]
    out = pipeline.process([Record(orjson.dumps(m), b"m", t, 0, i) for i, (m, t) in enumerate(msgs)])
    assert [r.reason for r in out.rejected] == ["label has always been numeric; got categorical value 'dog'"]
    assert out.processed == 3 and out.labels_joined == 1 and out.predictions_expired == 1
