"""HTML report: renders, stays self-contained, embeds real PNGs, escapes user strings, stays bounded;
after an offline replay, its headline is the replay's counts and each plot is of its monitor's kind."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import orjson
import pytest

import streamdrift.report
from streamdrift.cli import main
from streamdrift.report import FeatureTrace, ReplayCounts, plot_trace, rank_drifted_features, render_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert('x')</script>"


def make_alert(model: str, feature: str, detector: str, index: int, severity: str = "warning",
               kind: str = "feature", segment: str | None = None) -> dict:
    return {
        "alert_id": f"{model}|{feature}|{detector}|{index}", "model": model, "segment": segment,
        "feature": feature, "kind": kind, "detector": detector, "statistic": 0.31, "threshold": 0.2,
        "p_value": 1e-5, "direction": "up", "severity": severity,
        "detected_at": {"ts": 1732470000.0 + index, "topic": "features", "partition": 0, "offset": index},
        "reference": {"n": 1000, "mean": 0.0}, "window": {"n": 200, "mean": 1.0}, "config_version": "v1",
        "index": index,
    }


def embedded_pngs(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)]


@pytest.fixture
def small_case():
    rng = np.random.default_rng(5)
    long_values = np.r_[rng.normal(0, 1, 4000), rng.normal(1.5, 1, 4000)]
    alerts = [
        make_alert("fraud-v3", "amount", "adwin", 4100, "critical"),
        make_alert("fraud-v3", "amount", "ks", 4300),
        make_alert("fraud-v3", "device", "adwin", 900, kind="missing_rate"),
        make_alert("fraud-v3", "country", "categorical", 600, "critical", segment="eu"),
        make_alert(EVIL, f"{EVIL} feature", "ks", 300),
    ]
    traces = [
        FeatureTrace("fraud-v3", None, "amount", "numeric", np.arange(8000), long_values, (-1.64, 0.0, 1.64),
                     alerts[:2]),
        FeatureTrace("fraud-v3", None, "device", "missing_rate", np.arange(1500),
                     (rng.random(1500) < np.where(np.arange(1500) < 800, 0.02, 0.2)).astype(float), (0, 0.02, 0.05)),
        FeatureTrace("fraud-v3", "eu", "country", "categorical", np.arange(1200),
                     np.where(np.arange(1200) < 600, rng.choice(["DE", "FR"], 1200), rng.choice(["US", "FR"], 1200))),
        FeatureTrace(EVIL, None, f"{EVIL} feature", "numeric", np.arange(0, 1000, 2),
                     np.r_[rng.normal(0, 1, 150), rng.normal(3, 1, 350)], (-1.64, 0, 1.64)),
    ]
    requests = [{"request_id": "r-1", "model": "fraud-v3", "segment": None, "reason": f"drift {EVIL}",
                 "drifted": [{"feature": "amount", "alert_ids": ["a"]}], "since": {"ts": 1732474100.0,
                 "offsets": {"0": 4100}}, "created_at": 1732474300.0}]
    counts = ReplayCounts(events_read=12_003, processed=12_000, rejected=3)
    return alerts, requests, traces, counts


def test_report_is_self_contained_with_real_pngs(tmp_path, small_case):
    alerts, requests, traces, counts = small_case
    path = tmp_path / "report.html"
    render_report(path, alerts, requests, traces, "Replay <of> logs", counts)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    pngs = embedded_pngs(text)
    assert len(pngs) == 4  # one per drifted feature with a trace
    for png in pngs:
        assert png.startswith(PNG_MAGIC) and len(png) > 1024
    # Nothing is fetched from elsewhere: no remote URLs, scripts, stylesheets or non-data sources.
    assert "http://" not in text and "https://" not in text and "<link" not in text
    assert re.findall(r"src=['\"](?!data:image/png;base64,)", text) == []
    for label in ("12,003", "events read", "12,000", "processed", "rejected", "alerts", "retrain requests", "r-1"):
        assert label in text


def test_user_strings_are_escaped(tmp_path, small_case):
    alerts, requests, traces, counts = small_case
    path = tmp_path / "report.html"
    render_report(path, alerts, requests, traces, f"Replay {EVIL}", counts)
    text = path.read_text(encoding="utf-8")
    assert "<script" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "Replay &lt;script&gt;" in text


def test_features_ranked_by_evidence_and_plots_bounded(tmp_path):
    rng = np.random.default_rng(0)
    alerts, traces = [], []
    for f in range(6):
        feature = f"f{f}"
        for k in range(f + 1):  # f5 has the most alerts
            alerts.append(make_alert("m", feature, "ks", 100 + 10 * k))
        traces.append(FeatureTrace("m", None, feature, "numeric", np.arange(300), rng.normal(size=300)))
    alerts.append(make_alert("m", "f0", "adwin", 500, "critical"))  # critical outranks counts
    ranked = rank_drifted_features(alerts)["m"]
    assert [e.feature for e in ranked] == ["f0", "f5", "f4", "f3", "f2", "f1"]
    path = tmp_path / "r.html"
    render_report(path, alerts, [], traces, "bounded", ReplayCounts(1800, 1800, 0), max_plots_per_model=2,
                  max_alert_rows=5)
    text = path.read_text()
    assert len(embedded_pngs(text)) == 2
    assert text.index("<h3>1. f0</h3>") < text.index("<h3>2. f5</h3>")
    assert "top 2 of 6" in text
    assert text.count("<td class='id'>") == 5 and f"{len(alerts) - 5} more alert(s)" in text


def test_models_without_alerts_say_so(tmp_path):
    trace = FeatureTrace("quiet", None, "x", "numeric", np.arange(50), np.zeros(50))
    path = tmp_path / "quiet.html"
    render_report(path, [], [], [trace], "nothing", ReplayCounts(50, 50, 0), models=["idle"])
    text = path.read_text()
    assert "No drift detected" in text and "data:image/png" not in text
    assert "Model idle" in text  # replayed without a trace or an alert: still listed


@pytest.mark.parametrize("trace", [
    FeatureTrace("m", None, "empty", "numeric", np.array([], dtype=int), np.array([])),
    FeatureTrace("m", None, "cost $ (usd)", "numeric", np.arange(10), np.arange(10.0), (1, 5, 9),
                 [{"detector": "page_hinkley", "index": 4, "severity": "critical"}]),
    FeatureTrace("m", None, "flag", "categorical", np.arange(100), np.array([True, False] * 50)),
    FeatureTrace("m", None, "x", "missing_rate", np.arange(5000), np.r_[np.zeros(2500), np.ones(2500)],
                 None, [{"detector": "adwin", "index": i} for i in range(2500, 2600, 5)]),
])
def test_plot_trace_draws_every_kind(trace):
    png = plot_trace(trace)
    assert png.startswith(PNG_MAGIC) and len(png) > 1024


# -- after an offline replay -------------------------------------------------------------------------
# A short warm-up, so that drift at event 1,500 of 3,000 is well past the reference; two drifted
# features of one model make a retrain request.
REPLAY_CONFIG = """
[detectors]
reference_size = 500
[retrain]
min_features = 2
"""
EVENTS_PER_MODEL = 3_000
DRIFT_AT = 1_500
REJECTED_EVERY = 250  # then an event whose numeric amount is the string "twelve"
UNREADABLE = [b"not json {", b"[1, 2]"]


def synthetic_log() -> tuple[list[bytes], dict[str, int]]:
    """Lines of a feature log of two models (churn-v1 drifts in amount and tenure, ranker-v7 stays
    put), with rejected and unreadable lines mixed in, and how many lines of each kind."""
    rng = np.random.default_rng(7)
    lines, rejected = [], 0
    for i in range(EVENTS_PER_MODEL):
        drifted = i >= DRIFT_AT
        amount = float(rng.lognormal(3.0 + 0.8 * drifted, 0.8))
        tenure = float(rng.normal(12.0 + 4.0 * drifted, 3.0))
        lines.append(orjson.dumps({"model": "churn-v1", "id": f"c{i}", "ts": 1.7e9 + i,
                                   "features": {"amount": amount, "tenure": tenure}}))
        lines.append(orjson.dumps({"model": "ranker-v7", "id": f"r{i}", "ts": 1.7e9 + i + 0.5,
                                   "features": {"amount": float(rng.lognormal(3.0, 0.8))}}))
        if i % REJECTED_EVERY == REJECTED_EVERY - 1:
            lines.append(orjson.dumps({"model": "churn-v1", "features": {"amount": "twelve"}}))
            rejected += 1
    lines[100:100] = UNREADABLE
    return lines, {"read": len(lines), "processed": 2 * EVENTS_PER_MODEL, "rejected": rejected,
                   "unreadable": len(UNREADABLE)}


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("replay")
    lines, expected = synthetic_log()
    log, config = folder / "features.jsonl", folder / "streamdrift.toml"
    log.write_bytes(b"".join(line + b"\n" for line in lines))
    config.write_text(REPLAY_CONFIG)
    alerts, report = folder / "alerts.jsonl", folder / "report.html"
    drawn: list[FeatureTrace] = []
    real_render = streamdrift.report.render_report

    def render_and_keep(path, alerts, requests, traces, *args, **kwargs):
        drawn.extend(traces)
        return real_render(path, alerts, requests, traces, *args, **kwargs)

    # The traces as the report receives them: the PNGs cannot be read back into series.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(streamdrift.report, "render_report", render_and_keep)
        code = main(["replay", str(log), "--offline", "--config", str(config), "--alerts", str(alerts),
                     "--report", str(report), "--quiet"])
    assert code == 0
    return {"expected": expected, "html": report.read_text(encoding="utf-8"), "lines": lines, "traces": drawn,
            "alerts": alerts.read_bytes().splitlines(),
            "retrain_requests": alerts.with_suffix(".retrain.jsonl").read_bytes().splitlines()}


def headline(text: str) -> dict[str, int]:
    cards = re.findall(r"<div class='big'>([\d,]+)</div><div class='muted'>([^<]+)</div>", text)
    return {label: int(number.replace(",", "")) for number, label in cards}


def test_headline_numbers_are_the_replays_counts(replayed):
    expected, text = replayed["expected"], replayed["html"]
    assert replayed["alerts"] and replayed["retrain_requests"]  # the replay found the drift
    assert headline(text) == {
        "events read": expected["read"], "processed": expected["processed"], "rejected": expected["rejected"],
        "unreadable rows": expected["unreadable"], "alerts": len(replayed["alerts"]),
        "retrain requests": len(replayed["retrain_requests"])}
    # The model sections count the same alerts as the headline, and every model replayed is there.
    per_model = [int(n) for n in re.findall(r"drifted feature\(s\), (\d+) alert\(s\)", text)]
    assert sum(per_model) == len(replayed["alerts"])
    assert "Model churn-v1" in text and "Model ranker-v7" in text


def test_plot_kind_follows_the_monitored_kind(replayed):
    # amount was always numeric for churn-v1; its "twelve"s were rejected and must not make it
    # look categorical.
    plots = dict((alt, kind) for kind, alt in re.findall(r"<figure data-kind='(\w+)'><img alt='([^']*)'",
                                                         replayed["html"]))
    assert plots.get("churn-v1 · amount") == "numeric", plots
    assert plots.get("churn-v1 · tenure") == "numeric", plots
    assert "categorical" not in plots.values()


def test_x_axis_counts_the_values_the_monitor_processed(replayed):
    # churn-v1's amount: 3,000 numbers processed, and a rejected "twelve" every 250 events. The
    # plot and its alert lines must count the processed values only, as the alerts' indexes do.
    processed = []  # (log line, amount) of each processed value, in stream order
    for line_number, line in enumerate(replayed["lines"], 1):
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(event, dict) or event.get("model") != "churn-v1":
            continue
        if isinstance(event["features"].get("amount"), float):
            processed.append((line_number, event["features"]["amount"]))
    assert len(processed) == EVENTS_PER_MODEL
    value_index = {line_number: i for i, (line_number, _) in enumerate(processed)}

    trace = next(t for t in replayed["traces"] if t.label == "churn-v1 · amount")
    assert trace.length == EVENTS_PER_MODEL
    positions = trace.positions.astype(int)
    assert positions[-1] < EVENTS_PER_MODEL and positions[-1] >= EVENTS_PER_MODEL - 4  # thinned: every 2nd
    # Every plotted point is at the index of its value among the processed ones.
    np.testing.assert_array_equal(trace.values, [processed[p][1] for p in positions])
    # Every alert line is at the index of the value of the event that raised it.
    alerts = [orjson.loads(a) for a in replayed["alerts"]]
    amount_alerts = [a for a in alerts if a["model"] == "churn-v1" and a["feature"] == "amount"]
    assert amount_alerts
    assert sorted(d["index"] for d in trace.detections) == sorted(a["index"] for a in amount_alerts)
    for alert in amount_alerts:
        assert value_index[alert["detected_at"]["offset"]] == alert["index"]
    assert "the x axis counts the values the feature's monitor processed" in replayed["html"]


def test_x_axis_label_says_what_it_counts():
    trace = FeatureTrace("m", None, "x", "numeric", np.arange(0, 6000, 4), np.zeros(1500), monitored=5991)
    assert trace.length == 5991
    assert FeatureTrace("m", None, "x", "numeric", np.arange(0, 80, 4), np.zeros(20)).length == 77
    assert streamdrift.report._x_label(trace) == \
        "value index, of 5,991 values processed (rejected events not counted)"


def test_a_multivariate_alert_shows_what_explains_it(tmp_path):
    alert = {"alert_id": "a-1", "model": "fraud-v3", "segment": None, "feature": "*", "kind": "multivariate",
             "detector": "multivariate_covariance", "statistic": 18.2, "threshold": 17.9, "p_value": 1e-8,
             "direction": None, "severity": "warning", "index": 4250,
             "detected_at": {"ts": 1.0, "topic": "features", "partition": 0, "offset": 4250},
             "effect": {"pairs": [{"features": ["x0", "x1"], "move": 0.61}]},
             "explained_by": [{"feature": "x1", "share": 0.55, "move": 0.02}, {"feature": "x0", "share": 0.4, "move": -0.01}]}
    path = tmp_path / "r.html"
    render_report(path, [alert], [], [], "joint", ReplayCounts(5000, 5000, 0))
    page = path.read_text()
    block = page.split("data-kind='multivariate'", 1)[1].split("</div>", 1)[0]
    assert "all features together (multivariate)" in page and "No value trace" not in page
    table = block.split("<table", 1)[1]
    assert table.index("x1") < table.index("x0") and "55.0%" in table and "x0 × x1: 0.61" in block


@pytest.mark.parametrize("statistic, said", [("spe", "squared residual (SPE"), ("t2", "squared move (T²")])
def test_a_pca_alert_says_what_its_shares_are_of(tmp_path, statistic, said):
    alert = {"alert_id": "a-2", "model": "fraud-v3", "segment": None, "feature": "*", "kind": "multivariate",
             "detector": "multivariate_pca", "statistic": 39.7, "threshold": 38.9, "p_value": None,
             "direction": None, "severity": "warning", "index": 5045,
             "detected_at": {"ts": 1.0, "topic": "features", "partition": 0, "offset": 5045},
             "effect": {"statistic": statistic, "side": "up", "distance": 0.08},
             "explained_by": [{"feature": "x0", "share": 0.5, "move": 0.05}, {"feature": "x1", "share": 0.5, "move": 0.07}]}
    path = tmp_path / "r.html"
    render_report(path, [alert], [], [], "joint", ReplayCounts(9000, 9000, 0))
    block = path.read_text().split("data-kind='multivariate'", 1)[1].split("</div>", 1)[0]
    assert said in block and "classifier" not in block and "<th>share</th>" in block
