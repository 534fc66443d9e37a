"""The intake on its own (``streamdrift/intake.py``): records decoded into one run per model,
rejections with their reasons, the label join and idle restarts."""

from __future__ import annotations

import numpy as np
import orjson

from streamdrift.config import Config, Limits
from streamdrift.events import Record
from streamdrift.intake import plain_runs, restarts, route
from streamdrift.model_monitors import LATE_LABEL, ModelMonitors
from streamdrift.pipeline import Output


class Intake:
    """What ``route`` reads and writes, kept here: the models, the waiting predictions and the
    restarts it asked for."""

    def __init__(self, **limits):
        self.config = Config(limits=Limits(**limits))
        self.models: dict = {}
        self.pending: dict = {}
        self.dirty_pending: set = set()
        self.restarted: list = []

    def model_for(self, model, segment):
        key = (model, segment)
        if key not in self.models:
            self.models[key] = ModelMonitors(model, segment, self.config, None)
        return self.models[key]

    def restart(self, key, run):
        self.restarted.append((key, [e.record.offset for e in run.events], [r.offset for r, _, _ in run.errors]))
        del self.models[key]

    def route(self, events):
        out = Output()
        # A Kafka timestamp far after every event time: only an event without ``ts`` takes it.
        records = [Record(e if isinstance(e, bytes) else orjson.dumps(e), None, "features", 0, i, 10_000_000)
                   for i, e in enumerate(events)]
        routed = route(records, self.config.limits, self.models, self.model_for, self.pending, self.dirty_pending,
                       out, self.restart)
        return routed, out


def offsets(run):
    return [e.record.offset for e in run]


def test_good_events_become_one_run_per_model_and_segment_in_input_order():
    intake = Intake()
    routed, out = intake.route([{"model": "a", "features": {"x": 1.0}},
                                {"model": "b", "segment": "eu", "features": {"x": 2.0}},
                                {"model": "a", "features": {"x": 3.0}}])
    assert {key: offsets(run) for key, run in routed.events.items()} == {("a", None): [0, 2], ("b", "eu"): [1]}
    assert [e.features["x"] for e in routed.events[("a", None)]] == [1.0, 3.0]
    assert out.rejected == [] and routed.errors == {} and set(intake.models) == {("a", None), ("b", "eu")}


def test_bad_events_are_rejected_with_their_reason_and_take_no_run():
    intake = Intake(max_models=1)
    routed, out = intake.route([b"not json", {"model": "a", "features": {"x": 1.0}},
                                {"features": {"x": 1.0}}, {"model": "b", "features": {"x": 1.0}}])
    reasons = {r.record.offset: r.reason for r in out.rejected}
    assert sorted(reasons) == [0, 2, 3]
    assert reasons[0].startswith("not valid JSON")
    assert "model" in reasons[2]
    assert reasons[3].startswith("limits.max_models = 1")
    assert {key: offsets(run) for key, run in routed.events.items()} == {("a", None): [1]}
    assert set(intake.models) == {("a", None)}


def test_a_late_label_meets_its_prediction_and_becomes_an_error_and_a_label():
    intake = Intake()
    routed, out = intake.route([{"model": "m", "id": "p1", "prediction": 1.0, "features": {"x": 1.0}},
                                {"model": "m", "id": "p2", "prediction": 1.0, "label": 0, "features": {"x": 1.0}}])
    assert [(r.offset, e) for r, e, _ in routed.errors[("m", None)]] == [(1, 1.0)]  # the label came with it
    assert len(intake.pending["m"]) == 1 and intake.dirty_pending == {"m"}
    intake.dirty_pending.clear()
    routed, out = intake.route([{"model": "m", "id": "p1", "label": 1},
                                {"model": "m", "id": "nobody", "label": 1},
                                {"model": "m", "id": "p1", "label": 1}])  # taken already
    assert [(r.offset, e) for r, e, _ in routed.errors[("m", None)]] == [(0, 0.0)]
    assert [(r.offset, label) for r, label, _ in routed.late_labels[("m", None)]] == [(0, 1)]
    assert (out.labels_joined, out.labels_unmatched, out.processed) == (1, 2, 3)
    assert routed.events == {} and len(intake.pending["m"]) == 0 and intake.dirty_pending == {"m"}
    assert intake.models[("m", None)].types[LATE_LABEL] == "numeric"


def test_a_late_label_of_another_type_is_rejected_and_its_prediction_expires():
    intake = Intake()
    intake.route([{"model": "m", "id": f"p{i}", "prediction": 1.0, "features": {"x": 1.0}} for i in range(2)])
    routed, out = intake.route([{"model": "m", "id": "p0", "label": 1}, {"model": "m", "id": "p1", "label": "cat"}])
    assert [r.record.offset for r in out.rejected] == [1]
    assert out.rejected[0].reason == "label has always been numeric; got categorical value 'cat'"
    assert (out.labels_joined, out.predictions_expired) == (1, 1)
    assert len(routed.errors[("m", None)]) == 1


def test_an_idle_model_restarts_at_its_own_event_time_with_what_came_before_handed_over():
    intake = Intake(idle_seconds=100.0)
    event = lambda ts, **more: {"model": "m", "ts": ts, "features": {"x": 1.0}, **more}
    routed, _ = intake.route([event(0.0), event(50.0, id="p", prediction=1.0, label=1), event(200.0), event(250.0),
                              {"model": "m", "features": {"x": 1.0}}])  # no ts of its own: no restart
    assert intake.restarted == [(("m", None), [0, 1], [1])]
    assert offsets(routed.events[("m", None)]) == [2, 3, 4] and routed.events[("m", None)][-1].ts == 10_000.0
    assert ("m", None) not in routed.errors
    assert intake.models[("m", None)].started == 200.0
    intake.models[("m", None)].last_ts = 250.0  # as the pipeline leaves it after monitoring
    intake.route([event(300.0)])
    assert len(intake.restarted) == 1
    intake.route([event(400.0)])  # 150 s after the model's last event, in another batch
    assert intake.restarted[1] == (("m", None), [], [])


def test_plain_runs_give_each_model_its_positions_unless_a_model_restarts():
    intake = Intake(idle_seconds=100.0)
    records = [Record(orjson.dumps({"model": m, "ts": float(i), "features": {"x": float(i)}}), None, "features", 0, i)
               for i, m in enumerate("abab")]
    limits = intake.config.limits
    runs, rejected = plain_runs(records, limits, intake.models, intake.model_for)
    assert {key: run.positions.tolist() for key, run in runs.items()} == {("a", None): [0, 2], ("b", None): [1, 3]}
    assert runs[("b", None)].matrix().tolist() == [[1.0, 3.0]] and intake.models[("b", None)].started == 1.0
    assert rejected == []
    # A malformed message is left out with its reason; the others keep their places.
    bad = Record(b"not json", offset=9)
    runs, rejected = plain_runs(records[:2] + [bad] + records[2:], limits, intake.models, intake.model_for)
    assert {key: run.positions.tolist() for key, run in runs.items()} == {("a", None): [0, 3], ("b", None): [1, 4]}
    assert [(r.record.offset, r.reason[:14]) for r in rejected] == [(9, "not valid JSON")]
    # A valid message that is not plain (a label) keeps the batch off the plain path.
    label = Record(orjson.dumps({"model": "a", "id": "e-1", "label": 1}), None, "features", 0, 5)
    assert plain_runs(records[:2] + [label] + records[2:], limits, intake.models, intake.model_for) is None
    intake.models[("a", None)].last_ts = -500.0
    assert plain_runs(records, limits, intake.models, intake.model_for) is None  # "a" restarts: the general path


def test_restarts_looks_at_gaps_within_and_before_each_models_events():
    ts, firsts = np.array([0.0, 50.0, 200.0, 210.0]), np.array([0, 3])
    assert restarts([None, None], ts, firsts, 100.0)  # 50 -> 200 within the first model
    assert not restarts([None, None], ts, firsts, 0.0)  # no idle limit: never
    assert not restarts([None, 150.0], np.array([0.0, 50.0, 200.0]), np.array([0, 2]), 100.0)
    assert restarts([None, 50.0], np.array([0.0, 50.0, 200.0]), np.array([0, 2]), 100.0)
    assert not restarts([None], np.array([0.0, np.nan, 500.0]), np.array([0]), 100.0)  # a NaN gap is none



def test_the_pipeline_routes_a_clean_batch_of_known_models_without_route(monkeypatch):
    """The fast path: after the first batch, neither ``route`` nor its per-event ``decode`` runs."""
    from streamdrift import intake as intake_module, pipeline as pipeline_module

    def refuse(*args):
        raise AssertionError("a clean batch of known models went the per-event way")

    pipeline = pipeline_module.DriftPipeline(Config())
    batches = [[Record(orjson.dumps({"model": f"m{i % 3}", "ts": float(i), "features": {"x": float(i % 7)}}),
                       None, "features", 0, i) for i in range(lo, lo + 200)] for lo in (0, 200)]
    pipeline.process(batches[0])
    monkeypatch.setattr(pipeline_module, "route", refuse)
    monkeypatch.setattr(intake_module, "decode", refuse)
    assert pipeline.process(batches[1]).processed == 200
