"""The HTML report of an offline replay: one self-contained file a person reads instead of JSON.

It ranks each model's drifted features by evidence, plots each one's value stream against its
reference band with the detection points marked, and lists every alert and retrain request.
Plots are PNGs embedded as base64, so the file can be mailed or attached to a ticket as is.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

SEVERITY_RANK = {"warning": 1, "critical": 2}
# Up to this many values a plot shows every point; longer streams show quantiles per block.
MAX_POINTS = 2_000
PLOT_BLOCKS = 300
TOP_CATEGORIES = 6
RATE_KINDS = frozenset({"missing_rate", "concept", "error_rate"})
# Detector lines must not be confused with the data (blue) or the reference band (green).
_DETECTOR_COLOURS = ("#d62728", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#000000",
                     "#bcbd22", "#7f7f7f")
_LABEL_ROWS = 4


@dataclass
class FeatureTrace:
    """The value stream of one monitored feature, as the report plots it.

    ``positions`` holds the value index of each entry of ``values`` (so a stream may be
    downsampled); ``values`` are numbers for numeric streams, 0/1 for rate streams such as
    ``missing_rate`` and strings for categorical ones. ``reference_band`` is the reference's
    (5%, 50%, 95%) quantiles. ``detections`` are the alerts drawn on the plot; each needs
    ``detector``, ``index`` (value index where it fired) and, optionally, ``severity``.

    >>> trace = FeatureTrace("fraud-v3", None, "amount", "numeric", np.arange(3), np.array([1.0, 2.0, 9.0]))
    >>> trace.label
    'fraud-v3 · amount'
    """

    model: str
    segment: str | None
    feature: str
    kind: str
    positions: np.ndarray
    values: np.ndarray
    reference_band: tuple[float, float, float] | None = None
    detections: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        """Model, segment (when there is one), feature and a non-value kind, for titles."""
        parts = [self.model] + ([self.segment] if self.segment else []) + [self.feature]
        if self.kind not in ("numeric", "categorical"):
            parts.append(self.kind.replace("_", " "))
        return " · ".join(parts)


@dataclass
class FeatureEvidence:
    """How strongly one (model, segment, feature) drifted: the alerts that name it."""

    model: str
    segment: str | None
    feature: str
    alerts: list[dict[str, Any]]

    @property
    def max_severity(self) -> str:
        """The worst severity among the alerts."""
        return max((a.get("severity") or "warning" for a in self.alerts), key=lambda s: SEVERITY_RANK.get(s, 0))

    @property
    def first_alert(self) -> dict[str, Any]:
        """The earliest alert by event time, then input offset, then value index."""
        return min(self.alerts, key=_detection_order)

    @property
    def rank_key(self) -> tuple[int, int, tuple[float, float, float]]:
        """Sort key: worse severity first, then more alerts, then earlier detection."""
        severity = SEVERITY_RANK.get(self.max_severity, 0)
        return (-severity, -len(self.alerts), _detection_order(self.first_alert))


def rank_drifted_features(alerts: Iterable[dict[str, Any]]) -> dict[str, list[FeatureEvidence]]:
    """Group alerts by model and (segment, feature), ranked by evidence within each model.

    >>> alerts = [{"model": "m", "feature": "a", "severity": "warning", "index": 5},
    ...           {"model": "m", "feature": "b", "severity": "critical", "index": 9},
    ...           {"model": "m", "feature": "a", "severity": "warning", "index": 7}]
    >>> [(e.feature, len(e.alerts), e.max_severity) for e in rank_drifted_features(alerts)["m"]]
    [('b', 1, 'critical'), ('a', 2, 'warning')]
    """
    groups: dict[tuple[str, str | None, str], list[dict[str, Any]]] = defaultdict(list)
    for alert in alerts:
        groups[(str(alert.get("model")), alert.get("segment") or None, _feature_name(alert))].append(alert)
    ranked: dict[str, list[FeatureEvidence]] = defaultdict(list)
    for (model, segment, feature), members in groups.items():
        ranked[model].append(FeatureEvidence(model, segment, feature, members))
    return {model: sorted(items, key=lambda e: e.rank_key) for model, items in sorted(ranked.items())}


def plot_trace(trace: FeatureTrace, *, width: float = 9.5, height: float = 3.3, dpi: int = 100) -> bytes:
    """Render one feature's stream as PNG bytes.

    Short streams show every value; long ones show the 5/50/95% quantiles of consecutive blocks
    of values (rate streams: the rate per block; categorical: the share of the top categories).
    The reference band is shaded and each detection is a vertical line in its detector's colour.

    >>> rng = np.random.default_rng(1)
    >>> values = np.concatenate([rng.normal(0, 1, 3000), rng.normal(2, 1, 3000)])
    >>> trace = FeatureTrace("m", None, "x", "numeric", np.arange(6000), values, (-1.6, 0.0, 1.6),
    ...                      [{"detector": "adwin", "index": 3100, "severity": "critical"}])
    >>> png = plot_trace(trace)
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n", len(png) > 1000
    (True, True)
    """
    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    positions = np.asarray(trace.positions)
    values = np.asarray(trace.values)
    if values.size == 0:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes, color="grey")
    elif trace.kind in RATE_KINDS:
        _plot_rate(ax, positions, values.astype(float), trace)
    elif trace.kind == "categorical" or values.dtype.kind in "USb":
        _plot_categories(ax, positions, values)
    else:
        _plot_numeric(ax, positions, values.astype(float), trace)
    _plot_detections(ax, trace.detections)
    ax.set_title(_plain(trace.label), loc="left", fontsize=11)
    ax.set_xlabel("value index")
    ax.grid(True, alpha=0.25, linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    buffer = io.BytesIO()
    # No "Software" text chunk: the same replay gives the same bytes whatever matplotlib is installed.
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def render_report(path: str | os.PathLike[str], alerts: Sequence[dict[str, Any]],
                  retrain_requests: Sequence[dict[str, Any]], traces: Sequence[FeatureTrace],
                  title: str, summary: dict[str, Any], *, max_plots_per_model: int = 20,
                  max_alert_rows: int = 2_000) -> None:
    """Write the self-contained HTML report of a replay to ``path``.

    ``summary`` holds the run's counts (``events``, ``rejected``; other keys are listed too).
    Per model: drifted features ranked by evidence, plots of the top ``max_plots_per_model``
    (each trace of the feature: values, missing rate...), the alerts table (at most
    ``max_alert_rows`` rows over the whole report) and the retrain requests. A trace without
    detections gets the alerts of its feature drawn.

    >>> import pathlib, shutil, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> out = folder / "report.html"
    >>> alert = {"alert_id": "a1", "model": "m", "segment": None, "feature": "x<1>", "kind": "feature",
    ...          "detector": "ks", "severity": "critical", "index": 40,
    ...          "detected_at": {"ts": 1732470000.0, "topic": "features", "partition": 0, "offset": 40}}
    >>> trace = FeatureTrace("m", None, "x<1>", "numeric", np.arange(80), np.r_[np.zeros(40), np.ones(40)])
    >>> render_report(out, [alert], [], [trace], "Replay", {"events": 80, "rejected": 0})
    >>> text = out.read_text()
    >>> "x&lt;1&gt;" in text, "x<1>" in text, text.count("data:image/png;base64,")
    (True, False, 1)
    >>> shutil.rmtree(folder)
    """
    ranked = rank_drifted_features(alerts)
    traces_by_feature: dict[tuple[str, str | None, str], list[FeatureTrace]] = defaultdict(list)
    for trace in traces:
        traces_by_feature[(trace.model, trace.segment or None, trace.feature)].append(trace)
    requests_by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for request in retrain_requests:
        requests_by_model[str(request.get("model"))].append(request)
    # Models with drift first, so a long report opens on what needs attention.
    models = sorted(set(ranked) | {t.model for t in traces} | set(requests_by_model),
                    key=lambda m: (m not in ranked, m))

    rows_left = max_alert_rows
    sections = []
    for number, model in enumerate(models, 1):
        section, rows_left = _model_section(
            number, model, ranked.get(model, []), traces_by_feature, requests_by_model.get(model, []),
            max_plots_per_model, rows_left)
        sections.append(section)
    body = [
        f"<header><h1>{_esc(title)}</h1>",
        f"<p class='muted'>Generated {_esc(_format_ts(dt.datetime.now(dt.timezone.utc).timestamp()))}</p>",
        _summary_cards(summary, len(alerts), len(retrain_requests)),
        _model_index(models, ranked),
        "</header>",
        *sections,
    ]
    if not models:
        body.append("<p>No events of any model were replayed.</p>")
    document = (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
                f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>"
                + "\n".join(body) + "</body></html>\n")
    with open(path, "w", encoding="utf-8") as out:
        out.write(document)


# --- plotting ----------------------------------------------------------------------------------

def _plain(text: str) -> str:
    """A label matplotlib prints literally: ``$`` would otherwise start maths mode."""
    return text.replace("$", r"\$")


def _blocks(n: int) -> tuple[list[slice], int]:
    """Consecutive blocks of at least 10 values (at most PLOT_BLOCKS), and their typical size."""
    edges = np.linspace(0, n, min(PLOT_BLOCKS, max(1, n // 10)) + 1).astype(int)
    blocks = [slice(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    return blocks, int(round(n / max(len(blocks), 1)))


def _plot_numeric(ax: Any, positions: np.ndarray, values: np.ndarray, trace: FeatureTrace) -> None:
    if trace.reference_band is not None:
        low, mid, high = trace.reference_band
        ax.axhspan(low, high, color="#2ca02c", alpha=0.13, linewidth=0, label="reference 5–95%")
        ax.axhline(mid, color="#2ca02c", linestyle="--", linewidth=1, label="reference median")
    finite = np.isfinite(values)
    positions, values = positions[finite], values[finite]
    if values.size <= MAX_POINTS:
        ax.plot(positions, values, ".", markersize=3, color="#1f77b4", alpha=0.6, label="values")
    else:
        blocks, size = _blocks(values.size)
        centre = np.array([positions[b].mean() for b in blocks])
        q = np.array([np.quantile(values[b], (0.05, 0.5, 0.95)) for b in blocks])
        ax.fill_between(centre, q[:, 0], q[:, 2], color="#1f77b4", alpha=0.22, linewidth=0,
                        label=f"5–95% per {size} values")
        ax.plot(centre, q[:, 1], color="#1f77b4", linewidth=1.4, label="median")
    ax.set_ylabel(_plain(trace.feature))


def _plot_rate(ax: Any, positions: np.ndarray, values: np.ndarray, trace: FeatureTrace) -> None:
    if trace.reference_band is not None:
        low, mid, high = trace.reference_band
        ax.axhspan(low, high, color="#2ca02c", alpha=0.13, linewidth=0, label="reference band")
        ax.axhline(mid, color="#2ca02c", linestyle="--", linewidth=1, label="reference rate")
    blocks, size = _blocks(values.size)
    centre = np.array([positions[b].mean() for b in blocks])
    rate = np.array([np.nanmean(values[b]) for b in blocks])
    ax.plot(centre, rate, color="#1f77b4", linewidth=1.4, label=f"rate per {size} values")
    top = max(float(np.nanmax(rate)), trace.reference_band[2] if trace.reference_band else 0.0, 0.01)
    ax.set_ylim(0, min(1.0, top * 1.15))
    ax.set_ylabel(trace.kind.replace("_", " "))


def _plot_categories(ax: Any, positions: np.ndarray, values: np.ndarray) -> None:
    values = values.astype(str)
    top = [name for name, _ in Counter(values.tolist()).most_common(TOP_CATEGORIES)]
    blocks, _ = _blocks(values.size)
    centre = np.array([positions[b].mean() for b in blocks])
    shares = [np.array([np.mean(values[b] == name) for b in blocks]) for name in top]
    other = 1.0 - np.sum(shares, axis=0)
    labels = [_plain(name) for name in top]
    if np.any(other > 1e-9):
        shares.append(other)
        labels.append("other")
    # Pastel areas, so that the saturated detector lines stand out on top of them.
    ax.stackplot(centre, *shares, labels=labels, colors=colormaps["Pastel1"].colors[: len(shares)])
    ax.set_ylim(0, 1)
    ax.set_ylabel("share")


def _plot_detections(ax: Any, detections: Sequence[dict[str, Any]]) -> None:
    colours: dict[str, str] = {}
    marked = sorted((d for d in detections if d.get("index") is not None), key=lambda d: d["index"])
    left, right = ax.get_xlim()
    if marked:
        left, right = min(left, marked[0]["index"]), max(right, marked[-1]["index"])
    span = max(right - left, 1e-9)
    row_ends = [-math.inf] * _LABEL_ROWS  # where the last label of each text row ends (axes fraction)
    for detection in marked:
        name = str(detection.get("detector") or "detector")
        first = name not in colours
        colour = colours.setdefault(name, _DETECTOR_COLOURS[len(colours) % len(_DETECTOR_COLOURS)])
        critical = detection.get("severity") == "critical"
        ax.axvline(detection["index"], color=colour, linewidth=1.6 if critical else 1.1,
                   linestyle="-" if critical else (0, (2, 2)), label=_plain(name) if first else None)
        # Label each line in the first text row where it does not overlap a neighbour; when all
        # rows are taken near this point, the legend still names the colour.
        x = (detection["index"] - left) / span
        row = next((r for r, end in enumerate(row_ends) if end < x), None)
        if row is not None:
            ax.annotate(_plain(name), xy=(detection["index"], 0.98 - 0.09 * row),
                        xycoords=("data", "axes fraction"), xytext=(3, 0), textcoords="offset points",
                        va="top", fontsize=7.5, color=colour,
                        bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none",
                              "alpha": 0.8})
            row_ends[row] = x + 0.012 + 0.0085 * len(name)


# --- HTML --------------------------------------------------------------------------------------

def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _feature_name(alert: dict[str, Any]) -> str:
    """Prediction, label and concept alerts name no feature; their kind names the stream."""
    return str(alert.get("feature") or alert.get("kind") or "?")


def _detection_order(alert: dict[str, Any]) -> tuple[float, float, float]:
    where = alert.get("detected_at") or {}
    ts = where.get("ts")
    offset = where.get("offset")
    index = alert.get("index")
    return (float(ts) if isinstance(ts, (int, float)) else math.inf,
            float(offset) if isinstance(offset, (int, float)) else math.inf,
            float(index) if isinstance(index, (int, float)) else math.inf)


def _format_ts(ts: Any) -> str:
    if isinstance(ts, (int, float)) and not isinstance(ts, bool) and math.isfinite(ts):
        moment = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return "" if ts is None else str(ts)


def _format_number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.3g}" if value and abs(value) < 1e-3 else f"{value:.4g}"


def _where(alert: dict[str, Any]) -> str:
    where = alert.get("detected_at") or {}
    parts = []
    if alert.get("index") is not None:
        parts.append(f"value #{_format_number(alert['index'])}")
    if where.get("offset") is not None:
        partition = f" p{where['partition']}" if where.get("partition") is not None else ""
        parts.append(f"{where.get('topic') or 'input'}{partition} offset {where['offset']}")
    if where.get("ts") is not None:
        parts.append(_format_ts(where["ts"]))
    return " · ".join(parts)


def _shift(alert: dict[str, Any]) -> str:
    """Reference vs window, in the words the summaries allow (mean, else top category)."""
    reference, window = alert.get("reference") or {}, alert.get("window") or {}
    if isinstance(reference, dict) and isinstance(window, dict):
        if "mean" in reference and "mean" in window:
            return f"mean {_format_number(reference['mean'])} → {_format_number(window['mean'])}"
        if reference.get("top") and window.get("top"):
            return f"top {_compact(reference['top'], 60)} → {_compact(window['top'], 60)}"
    return ""


def _compact(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _severity(severity: Any) -> str:
    css = "crit" if severity == "critical" else "warn"
    return f"<span class='badge {css}'>{_esc(severity or 'warning')}</span>"


def _summary_cards(summary: dict[str, Any], n_alerts: int, n_requests: int) -> str:
    known = [("events", "events read"), ("rejected", "rejected"), ("alerts", "alerts"),
             ("retrain_requests", "retrain requests")]
    values = {"alerts": n_alerts, "retrain_requests": n_requests, **summary}
    cards = "".join(f"<div class='card'><div class='big'>{_esc(_format_number(values.get(key, 0)))}</div>"
                    f"<div class='muted'>{label}</div></div>" for key, label in known)
    extra = [(k, v) for k, v in summary.items() if k not in dict(known)]
    shown = [(k, _compact(v) if isinstance(v, (dict, list)) else _format_number(v)) for k, v in extra]
    rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in shown)
    return f"<div class='cards'>{cards}</div>" + (f"<table class='kv'>{rows}</table>" if rows else "")


def _model_index(models: list[str], ranked: dict[str, list[FeatureEvidence]]) -> str:
    if len(models) < 2:
        return ""
    items = "".join(f"<li><a href='#model-{i}'>{_esc(m)}</a> — {len(ranked.get(m, []))} drifted</li>"
                    for i, m in enumerate(models, 1))
    return f"<ul class='index'>{items}</ul>"


def _model_section(number: int, model: str, evidence: list[FeatureEvidence],
                   traces: dict[tuple[str, str | None, str], list[FeatureTrace]],
                   requests: list[dict[str, Any]], max_plots: int, rows_left: int) -> tuple[str, int]:
    alerts = sorted((a for e in evidence for a in e.alerts), key=_detection_order)
    parts = [f"<section id='model-{number}'><h2>Model {_esc(model)}</h2>"]
    if not evidence:
        parts.append("<p class='ok'>No drift detected.</p>")
    else:
        parts.append(f"<p>{len(evidence)} drifted feature(s), {len(alerts)} alert(s), "
                     f"{len(requests)} retrain request(s).</p>")
        parts.append(_evidence_table(evidence))
        parts.append("<p class='muted'>In the plots: the green band is the reference's 5–95% range; "
                     "vertical lines are detections (solid: critical, dashed: warning), coloured by "
                     "detector; the x axis counts the feature's values.</p>")
        for rank, item in enumerate(evidence[:max_plots], 1):
            parts.append(_feature_block(rank, item, traces.get((item.model, item.segment, item.feature), [])))
        if len(evidence) > max_plots:
            parts.append(f"<p class='muted'>Plots shown for the top {max_plots} of {len(evidence)} "
                         "drifted features; the table above lists them all.</p>")
    if alerts:
        shown = alerts[:max(rows_left, 0)]
        parts.append("<h3>All alerts</h3>" + _alerts_table(shown))
        if len(shown) < len(alerts):
            parts.append(f"<p class='muted'>{len(alerts) - len(shown)} more alert(s) not listed here; "
                         "the alerts JSONL has them all.</p>")
        rows_left -= len(shown)
    if requests:
        parts.append("<h3>Retrain requests</h3>" + _requests_table(requests))
    parts.append("</section>")
    return "\n".join(parts), rows_left


def _table(head: list[str], rows: list[list[str]], *, drop_empty: Sequence[str] = ()) -> str:
    """An HTML table from escaped cells; columns named in ``drop_empty`` go when all are blank."""
    keep = [i for i, name in enumerate(head) if name not in drop_empty or any(row[i] for row in rows)]
    header = "".join(f"<th>{head[i]}</th>" for i in keep)
    body = "".join("<tr>" + "".join(row[i] if row[i].startswith("<td") else f"<td>{row[i]}</td>" for i in keep)
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _evidence_table(evidence: list[FeatureEvidence]) -> str:
    head = ["#", "feature", "segment", "kinds", "alerts", "detectors", "max severity", "first detection"]
    rows = []
    for rank, item in enumerate(evidence, 1):
        kinds = ", ".join(sorted({str(a.get("kind") or "") for a in item.alerts} - {""}))
        detectors = Counter(str(a.get("detector") or "?") for a in item.alerts)
        rows.append([str(rank), f"<b>{_esc(item.feature)}</b>", _esc(item.segment or ""), _esc(kinds),
                     f"<td class='num'>{len(item.alerts)}</td>",
                     _esc(", ".join(f"{d} ×{n}" for d, n in detectors.most_common())),
                     _severity(item.max_severity), _esc(_where(item.first_alert))])
    return _table(head, rows, drop_empty=("segment",))


def _feature_block(rank: int, item: FeatureEvidence, traces: list[FeatureTrace]) -> str:
    title = f"{rank}. {item.feature}" + (f" (segment {item.segment})" if item.segment else "")
    parts = [f"<div class='feature'><h3>{_esc(title)}</h3>"]
    if not traces:
        parts.append("<p class='muted'>No value trace was recorded for this feature.</p>")
    for trace in traces:
        if not trace.detections:
            wants_rate = trace.kind == "missing_rate"
            drawn = [a for a in item.alerts if (a.get("kind") == "missing_rate") == wants_rate]
            trace = FeatureTrace(trace.model, trace.segment, trace.feature, trace.kind, trace.positions,
                                 trace.values, trace.reference_band, drawn)
        png = base64.b64encode(plot_trace(trace)).decode("ascii")
        parts.append(f"<img alt='{_esc(trace.label)}' src='data:image/png;base64,{png}'>")
    parts.append("</div>")
    return "".join(parts)


def _alerts_table(alerts: list[dict[str, Any]]) -> str:
    head = ["detected at", "feature", "segment", "kind", "detector", "severity", "statistic / threshold",
            "p-value", "direction", "shift", "alert id"]
    rows = []
    for a in alerts:
        stat = f"{_format_number(a.get('statistic'))} / {_format_number(a.get('threshold'))}"
        rows.append([_esc(_where(a)), _esc(_feature_name(a)), _esc(a.get("segment") or ""), _esc(a.get("kind")),
                     _esc(a.get("detector")), _severity(a.get("severity")), f"<td class='num'>{_esc(stat)}</td>",
                     f"<td class='num'>{_esc(_format_number(a.get('p_value')))}</td>", _esc(a.get("direction")),
                     _esc(_shift(a)), f"<td class='id'>{_esc(a.get('alert_id'))}</td>"])
    return _table(head, rows, drop_empty=("segment", "p-value", "direction", "shift"))


def _requests_table(requests: list[dict[str, Any]]) -> str:
    head = ["created", "segment", "reason", "drifted features", "data since", "request id"]
    rows = []
    for r in requests:
        drifted = r.get("drifted") or []
        names = [str(d.get("feature", d)) if isinstance(d, dict) else str(d) for d in drifted]
        since = r.get("since") if isinstance(r.get("since"), dict) else {}
        since_text = _format_ts(since.get("ts"))
        if since.get("offsets") is not None:
            since_text += f" offsets {_compact(since['offsets'], 80)}"
        rows.append([_esc(_format_ts(r.get("created_at"))), _esc(r.get("segment") or ""), _esc(r.get("reason")),
                     _esc(", ".join(names)), _esc(since_text.strip()),
                     f"<td class='id'>{_esc(r.get('request_id'))}</td>"])
    return _table(head, rows, drop_empty=("segment",))


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2rem auto;max-width:1200px;
 padding:0 1rem;color:#1d1d1f;line-height:1.45}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #ddd;padding-bottom:.3rem;margin-top:2.5rem}
.muted{color:#6e6e73;font-size:.9rem}.ok{color:#2a7d2e;font-weight:600}
.cards{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.card{border:1px solid #ddd;border-radius:8px;padding:.6rem 1.2rem;min-width:8rem}
.big{font-size:1.6rem;font-weight:700}
table{border-collapse:collapse;width:100%;font-size:.85rem;margin:.5rem 0 1rem}
th,td{border-bottom:1px solid #e5e5e5;padding:.3rem .5rem;text-align:left;vertical-align:top}
thead th{background:#f5f5f7;position:sticky;top:0}tbody tr:nth-child(even){background:#fafafa}
table.kv{width:auto}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.id{font-family:ui-monospace,monospace;font-size:.75rem;color:#6e6e73;word-break:break-all}
.badge{border-radius:4px;padding:0 .4rem;font-size:.75rem;font-weight:600;color:#fff}
.crit{background:#c62828}.warn{background:#e09b00}
.feature img{max-width:100%;display:block;margin:.3rem 0 1rem}
.index{columns:3}
"""
