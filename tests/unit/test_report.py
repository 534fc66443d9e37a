"""HTML report: renders, stays self-contained, embeds real PNGs, escapes user strings, stays bounded."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from streamdrift.report import FeatureTrace, plot_trace, rank_drifted_features, render_report

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
    summary = {"events": 12_000, "rejected": 3, "source": f"logs/{EVIL}.jsonl"}
    return alerts, requests, traces, summary


def test_report_is_self_contained_with_real_pngs(tmp_path, small_case):
    alerts, requests, traces, summary = small_case
    path = tmp_path / "report.html"
    render_report(path, alerts, requests, traces, "Replay <of> logs", summary)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    pngs = embedded_pngs(text)
    assert len(pngs) == 4  # one per drifted feature with a trace
    for png in pngs:
        assert png.startswith(PNG_MAGIC) and len(png) > 1024
    # Nothing is fetched from elsewhere: no remote URLs, scripts, stylesheets or non-data sources.
    assert "http://" not in text and "https://" not in text and "<link" not in text
    assert re.findall(r"src=['\"](?!data:image/png;base64,)", text) == []
    for label in ("12,000", "events read", "rejected", "alerts", "retrain requests", "r-1"):
        assert label in text


def test_user_strings_are_escaped(tmp_path, small_case):
    alerts, requests, traces, summary = small_case
    path = tmp_path / "report.html"
    render_report(path, alerts, requests, traces, f"Replay {EVIL}", summary)
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
    render_report(path, alerts, [], traces, "bounded", {"events": 1800}, max_plots_per_model=2,
                  max_alert_rows=5)
    text = path.read_text()
    assert len(embedded_pngs(text)) == 2
    assert text.index("<h3>1. f0</h3>") < text.index("<h3>2. f5</h3>")
    assert "top 2 of 6" in text
    assert text.count("<td class='id'>") == 5 and f"{len(alerts) - 5} more alert(s)" in text


def test_models_without_alerts_say_so(tmp_path):
    trace = FeatureTrace("quiet", None, "x", "numeric", np.arange(50), np.zeros(50))
    path = tmp_path / "quiet.html"
    render_report(path, [], [], [trace], "nothing", {"events": 50, "rejected": 0})
    text = path.read_text()
    assert "No drift detected" in text and "data:image/png" not in text


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
