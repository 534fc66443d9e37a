"""Model versions: the sequential comparison of losses (``detectors/comparison.py``), and versions
through the pipeline (``model_version`` on events, late labels per version, decisions, state)."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from streamdrift.config import Config, ConfigError, VersionPolicy, from_mapping
from streamdrift.detectors import MonitorSettings
from streamdrift.detectors.comparison import LossComparison, MeanSequence
from streamdrift.events import Record
from streamdrift.pipeline import DriftPipeline
from streamdrift.state_keys import StateKey
from streamdrift.synthetic_versions import VersionedDeployment


# -- the sequential test ------------------------------------------------------------------------
def _losses(rng, n, base_rate, new_rate, coupling=0.8):
    u = rng.random(n)
    u_new = np.where(rng.random(n) < coupling, u, rng.random(n))
    return (u_new < new_rate).astype(float), (u < base_rate).astype(float)


def _run(comparison, new, base, paired=True, rng=None):
    """Feed a comparison: shadow (each label both losses) or split (each label one version's)."""
    to_new = rng.random(len(new)) < 0.5 if not paired else None
    for i in range(len(new)):
        if paired:
            decision = comparison.update(new[i], base[i])
        else:
            decision = comparison.update(new[i], None) if to_new[i] else comparison.update(None, base[i])
        if decision is not None:
            return decision
    return None


@pytest.mark.parametrize("paired", [True, False])
def test_equal_versions_get_no_decision(paired):
    rng = np.random.default_rng(1)
    for _ in range(5):
        new, base = _losses(rng, 20_000, 0.10, 0.10)
        comparison = LossComparison()
        assert _run(comparison, new, base, paired, rng) is None
        estimate, lower, upper = comparison.interval()
        assert lower < 0 < upper


@pytest.mark.parametrize("paired", [True, False])
def test_a_worse_version_is_rolled_back_and_a_better_one_promoted(paired):
    rng = np.random.default_rng(2)
    new, base = _losses(rng, 20_000, 0.10, 0.15)
    worse = _run(LossComparison(), new, base, paired, rng)
    assert worse is not None and worse.decision == "rollback" and worse.lower > 0
    assert worse.traffic == ("shadow" if paired else "split")
    new, base = _losses(rng, 20_000, 0.10, 0.05)
    better = _run(LossComparison(), new, base, paired, rng)
    assert better is not None and better.decision == "promote" and better.upper < 0
    if paired:
        assert worse.labels < 1500, "shadow pairs differ rarely: few labels should do"
    else:
        assert worse.labels > 1500


def test_regression_losses_are_unbounded_absolute_errors():
    rng = np.random.default_rng(3)
    base = np.abs(rng.normal(0, 10, 30_000))
    new = np.abs(rng.normal(0, 11, 30_000))  # 10% more absolute error
    decision = _run(LossComparison(), new, base)
    assert decision is not None and decision.decision == "rollback"
    assert decision.estimate == pytest.approx(0.8, abs=0.6)


def test_margin_tolerates_a_small_degradation():
    rng = np.random.default_rng(4)
    new, base = _losses(rng, 40_000, 0.10, 0.11)
    strict = _run(LossComparison(), new, base)
    tolerant = _run(LossComparison(margin=0.03), new, base)
    assert strict is not None and strict.decision == "rollback"
    assert tolerant is not None and tolerant.decision == "promote", "1 point worse is within a 3-point margin"


def test_no_decision_before_min_labels_and_one_decision_only():
    comparison = LossComparison(min_labels=300)
    for i in range(299):
        assert comparison.update(1.0, 0.0) is None
    decision = comparison.update(1.0, 0.0)
    assert decision is not None and decision.labels == 300
    assert comparison.update(1.0, 0.0) is None and comparison.decision == decision


def test_auto_traffic_starts_at_the_new_versions_first_loss():
    comparison = LossComparison()
    assert comparison.update(None, 1.0) is None and comparison.mode is None  # the baseline alone: not yet
    comparison.update(0.0, None)
    assert comparison.mode == "split" and comparison.baseline.n == 0
    shadow = LossComparison()
    shadow.update(0.0, 1.0)
    shadow.update(None, 1.0)
    assert shadow.mode == "shadow" and shadow.unpaired == 1 and shadow.paired.n == 1


def test_state_round_trip_continues_with_the_same_decision():
    rng = np.random.default_rng(5)
    new, base = _losses(rng, 20_000, 0.10, 0.14)
    whole = _run(LossComparison(), new, base)
    first = LossComparison()
    _run(first, new[:150], base[:150])
    second = LossComparison()
    second.set_state(orjson.loads(orjson.dumps(first.get_state())))
    rest = _run(second, new[150:], base[150:])
    assert rest == whole and second.observations == first.observations + rest.labels - 150


@pytest.mark.parametrize("kwargs, message", [
    ({"margin": -0.1}, "margin must be"), ({"error_rate": 0.0}, "error_rate must be"),
    ({"min_labels": 1}, "min_labels must be"), ({"traffic": "canary"}, "traffic must be one of"),
])
def test_bad_parameters_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LossComparison(**kwargs)


def test_a_loss_must_be_a_finite_number():
    with pytest.raises(ValueError, match="a loss must be"):
        LossComparison().update(float("nan"), 0.0)


def test_mean_sequence_covers_the_mean_at_all_times_in_most_runs():
    rng = np.random.default_rng(6)
    misses = 0
    for _ in range(200):
        sequence = MeanSequence()
        missed = False
        for value in rng.exponential(1.0, 2000):
            sequence.add(value)
            if sequence.n >= 100:
                lower, upper = sequence.bounds(0.05)
                missed = missed or not lower <= 1.0 <= upper
        misses += missed
    assert misses <= 10, f"{misses} of 200 runs left the mean at some time (alpha 0.05: at most ~10)"


# -- config -------------------------------------------------------------------------------------
def test_version_policy_per_model_glob_and_config_version():
    config = from_mapping({"versions": {"margin": 0.02, "models": {"fraud-*": {"min_labels": 50, "baseline": "v1"}}}})
    assert config.version_policy_for("fraud-eu") == VersionPolicy(margin=0.02, min_labels=50, baseline="v1")
    assert config.version_policy_for("churn") == VersionPolicy(margin=0.02)
    assert Config().version == from_mapping({}).version == from_mapping({"versions": {}}).version
    assert config.version != Config().version


@pytest.mark.parametrize("table, message", [
    ({"error_rate": 0.5}, "versions.error_rate must be > 0 and < 0.5"),
    ({"margin": -1}, "versions.margin must be a number >= 0"),
    ({"traffic": "canary"}, 'versions.traffic must be "auto", "shadow" or "split"'),
    ({"min_labels": 1}, "versions.min_labels must be an integer >= 2"),
    ({"reference": "training"}, 'versions.reference must be "baseline" or "warm_up"'),
    ({"margins": 1}, r"\[versions\] has unknown key\(s\) \['margins'\]"),
    ({"models": {"m*": {"traffic": "x"}}}, "versions.models.m\\*.traffic must be"),
])
def test_bad_version_settings_name_the_setting(table, message):
    with pytest.raises(ConfigError, match=message):
        from_mapping({"versions": table})


# -- through the pipeline -----------------------------------------------------------------------
def _records(messages, topic_of=lambda m: "features" if "features" in m else "labels"):
    return [Record(orjson.dumps(m), m["model"].encode(), topic_of(m), 0, i) for i, m in enumerate(messages)]


def _process(pipeline, records, batch=3000):
    outs = [pipeline.process(records[i:i + batch]) for i in range(0, len(records), batch)]
    return outs, [d for o in outs for d in o.decisions]


def test_shadow_deployment_of_a_worse_version_is_rolled_back_once_whatever_the_batches():
    deployment = VersionedDeployment(requests=3000, start=500, version_error=0.16, seed=7)
    records = _records(deployment.messages_in_order())
    decisions = {}
    for batch in (len(records), 977):
        pipeline = DriftPipeline(Config())
        _, decisions[batch] = _process(pipeline, records, batch)
    assert decisions[len(records)] == decisions[977]
    [decision] = decisions[977]
    assert (decision["decision"], decision["version"], decision["baseline"], decision["traffic"]) == \
        ("rollback", "v2", "v1", "shadow")
    assert decision["loss_difference"]["lower"] > 0 and decision["loss"]["version"] > decision["loss"]["baseline"]
    assert decision["detected_at"]["topic"] == "labels" and decision["config_version"] == Config().version
    assert decision["decision_id"].startswith("d-") and decision["labels"] >= 200


def test_equal_versions_get_no_decision_and_a_better_canary_is_promoted():
    equal = VersionedDeployment(requests=6000, start=500, seed=8)
    _, decisions = _process(DriftPipeline(Config()), _records(equal.messages_in_order()))
    assert decisions == []
    canary = VersionedDeployment(requests=6000, start=500, traffic="split", version_error=0.04, seed=9,
                                 labels_name_version=True)
    _, decisions = _process(DriftPipeline(Config()), _records(canary.messages_in_order()))
    assert [(d["decision"], d["traffic"]) for d in decisions] == [("promote", "split")]


def test_versions_are_monitored_apart_and_alerts_carry_the_version():
    settings = Config(detectors=MonitorSettings(reference_size=500))
    events = []
    for i in range(3000):
        for version, shift in (("v1", 0.0), ("v2", 3.0 if i >= 1500 else 0.0)):
            events.append({"model": "m", "model_version": version, "ts": 1e9 + i,
                           "features": {"x": float(np.sin(i * 0.37) + shift)}})
    pipeline = DriftPipeline(settings)
    alerts = [a for o in _process(pipeline, _records(events))[0] for a in o.alerts]
    assert alerts and {a["model_version"] for a in alerts} == {"v2"} and {a["feature"] for a in alerts} == {"x"}
    assert set(pipeline.models) == {("m", None, "v1"), ("m", None, "v2")}
    keys = [key for key, _ in pipeline.checkpoint()]
    assert StateKey.monitor("m", None, ("feature", "x"), "v2").format() in keys
    assert StateKey.versions("m").format() in keys


def test_events_without_a_version_keep_their_alert_ids_and_state_keys():
    events = [{"model": "m", "ts": 1e9 + i, "features": {"x": float(np.sin(i * 0.37) + (3 if i >= 1500 else 0))}}
              for i in range(3000)]
    pipeline = DriftPipeline(Config(detectors=MonitorSettings(reference_size=500)))
    alerts = [a for o in _process(pipeline, _records(events))[0] for a in o.alerts]
    assert alerts and all("model_version" not in a for a in alerts)
    keys = {key for key, _ in pipeline.checkpoint()}
    assert keys == {"m\x1f", "m\x1f\x1ffeature\x1fx"} | {k for k in keys if "__reference__" in k}
    assert pipeline.versions == {}


def test_a_label_for_an_unknown_version_is_rejected_with_the_reason():
    pipeline = DriftPipeline(Config())
    out = pipeline.process(_records([
        {"model": "m", "model_version": "v1", "id": "a", "features": {"x": 1.0}, "prediction": 0.9},
        {"model": "m", "model_version": "v7", "id": "a", "label": 1},
        {"model": "other", "model_version": "v1", "id": "a", "label": 1},
        {"model": "m", "model_version": "v1", "id": "a", "label": 1},
        {"model": "m", "model_version": 3, "features": {"x": 1.0}},
    ]))
    reasons = [r.reason for r in out.rejected]
    assert reasons[0] == "model_version 'v7' of model 'm' is unknown: no feature event carried it (known: v1)"
    assert reasons[1] == "model_version 'v1' of model 'other' is unknown: no feature event carried it (known: none)"
    assert reasons[2].startswith('"model_version" must be a non-empty string')
    assert out.labels_joined == 1 and len(reasons) == 3


def test_a_restored_pipeline_makes_the_same_decision_under_the_same_id():
    deployment = VersionedDeployment(requests=8000, start=1000, version_error=0.16, seed=10)
    records = _records(deployment.messages_in_order())
    _, whole = _process(DriftPipeline(Config()), records)
    assert len(whole) == 1 and whole[0]["detected_at"]["offset"] > 2600
    running = DriftPipeline(Config())
    _, before = _process(running, records[:2600])
    assert before == [] and running.versions["m"].comparisons[("v2", "v1")].observations > 100
    restored = DriftPipeline(Config())
    restored.restore(running.checkpoint())
    # The restart replays from before the checkpoint: labels the state already holds are skipped.
    _, rest = _process(restored, records[2200:])
    assert rest == whole


def test_a_new_version_is_compared_with_its_own_training_reference(tmp_path):
    """Training-serving skew: v2 was trained on x around 5 but is fed x around 0; its own
    reference (rows with a model_version) catches it from the first events, v1 warms up."""
    from streamdrift.references import load_references

    rng = np.random.default_rng(11)
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"model": "m", "model_version": "v2", "features": {"x": float(v)}}) + b"\n"
                              for v in rng.normal(5, 1, 3000)))
    references = load_references(str(path))
    assert set(references) == {("m", "v2")}
    events = [{"model": "m", "model_version": v, "ts": 1e9 + i, "features": {"x": float(rng.normal(0, 1))}}
              for i in range(1500) for v in ("v1", "v2")]
    pipeline = DriftPipeline(Config(), references)
    alerts = [a for o in _process(pipeline, _records(events))[0] for a in o.alerts]
    assert alerts and {a["model_version"] for a in alerts} == {"v2"}
    assert min(a["index"] for a in alerts) < 200, "the skew shows within the first events"


def test_offline_replay_writes_the_processors_decisions_and_reports_both_versions(tmp_path):
    from streamdrift.cli import main

    deployment = VersionedDeployment(model="fraud", requests=3000, start=500, version_error=0.16, seed=7)
    messages = list(deployment.messages_in_order())
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in messages))
    assert main(["replay", str(log), "--offline", "--alerts", str(tmp_path / "alerts.jsonl"),
                 "--report", str(tmp_path / "report.html"), "--quiet"]) == 0
    written = [orjson.loads(line) for line in (tmp_path / "alerts.decisions.jsonl").read_bytes().splitlines()]
    _, expected = _process(DriftPipeline(Config()), _records(messages, topic_of=lambda m: str(log)))
    assert [d["decision_id"] for d in written] == [d["decision_id"] for d in expected] and len(written) == 1
    html = (tmp_path / "report.html").read_text()
    assert "Model versions" in html and "model-version decisions" in html and written[0]["decision_id"] in html
    assert "loss of each version of fraud" in html and html.count("data:image/png;base64,") == 1


def test_a_new_version_starts_from_its_baselines_live_reference():
    """Shadow deployment whose new version gets x scaled by 10 (a unit bug in its feature
    pipeline): compared with the baseline's reference from its first event, it alerts at once;
    with reference = "warm_up" it learns the bug as normal."""
    rng = np.random.default_rng(12)
    x = rng.normal(0, 1, 4000)
    events = [{"model": "m", "model_version": "v1", "ts": 1e9 + i, "features": {"x": float(x[i])}} for i in range(2000)]
    for i in range(2000, 4000):
        events += [{"model": "m", "model_version": "v1", "ts": 1e9 + i, "features": {"x": float(x[i])}},
                   {"model": "m", "model_version": "v2", "ts": 1e9 + i, "features": {"x": float(x[i] * 10)}}]
    found = {}
    for reference in ("baseline", "warm_up"):
        config = Config(detectors=MonitorSettings(reference_size=1000), versions=VersionPolicy(reference=reference))
        pipeline = DriftPipeline(config)
        found[reference] = [a for o in _process(pipeline, _records(events))[0] for a in o.alerts]
    assert found["baseline"] and {a["model_version"] for a in found["baseline"]} == {"v2"}
    assert min(a["index"] for a in found["baseline"]) < 100
    assert found["warm_up"] == []
    # The baseline's reference as it is at the new version's first event, whatever the batching.
    for batch in (97, 2001, 2500):
        pipeline = DriftPipeline(Config(detectors=MonitorSettings(reference_size=1000)))
        alerts = [a for o in _process(pipeline, _records(events), batch)[0] for a in o.alerts]
        assert alerts == found["baseline"], f"batches of {batch}"


def test_a_handed_over_partition_takes_its_models_versions_along():
    pipeline = DriftPipeline(Config())
    records = [Record(orjson.dumps({"model": m, "model_version": "v1", "features": {"x": 1.0}}), None, "features", p, 0)
               for m, p in (("a", 0), ("b", 1))]
    pipeline.process(records)
    assert set(pipeline.versions) == {"a", "b"}
    pipeline.drop_partitions({0})
    assert set(pipeline.versions) == {"b"} and set(pipeline.models) == {("b", None, "v1")}


def test_a_model_remembers_at_most_max_versions_and_their_comparisons():
    from streamdrift.model_versions import MAX_VERSIONS, ModelVersions

    versions = ModelVersions("m", VersionPolicy())
    for i in range(MAX_VERSIONS + 6):
        versions.see(f"v{i}")
    assert len(versions.seen) == MAX_VERSIONS and versions.seen[0] == "v6"
    assert all(version in versions.seen and baseline in versions.seen for version, baseline in versions.comparisons)
    assert not versions.knows("v0") and versions.knows(f"v{MAX_VERSIONS + 5}")
