"""The HTML report of an offline replay: one self-contained file a person reads instead of JSON.

It opens on the replay's counts, ranks each model's drifted features by evidence, plots each
one's value stream against its reference band with the detection points marked, and lists every
alert and retrain request.
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
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import orjson
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .report_versions import VersionTrace, versions_block  # noqa: F401  (VersionTrace: replay makes them)

SEVERITY_RANK = {"warning": 1, "critical": 2}
# A positive feature spread over more than this factor (0.5% to 99.5% quantile) is plotted on a
# log axis, where a change of scale (amounts, durations, counts) is as visible as one of level.
LOG_AXIS_SPREAD = 50
# Up to this many values a numeric plot shows every point under its rolling quantiles.
MAX_POINTS = 2_000
PLOT_BLOCKS = 300
# A rolling window spans this share of a numeric stream: wide enough for steady 5% and 95%
# quantiles, narrow enough that a change shows where it happens.
ROLLING_SHARE = 1 / 15
MIN_ROLLING_VALUES = 20
TOP_CATEGORIES = 6
RATE_KINDS = frozenset({"missing_rate", "concept", "error_rate"})
VALUE_KINDS = frozenset({"numeric", "categorical"})
# Detector lines must not be confused with the data (blue) or the reference band (green).
_DETECTOR_COLOURS = ("#d62728", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#000000",
                     "#bcbd22", "#7f7f7f")
_LABEL_ROWS = 4


@dataclass(frozen=True)
class ReplayCounts:
    """What a replay did with the rows of its log: the headline of the report.

    Every row read was processed by the detectors, rejected (an event the processor would send
    to the dead-letter topic, with its reason) or unreadable (not an event at all).
    """

    events_read: int
    processed: int
    rejected: int
    unreadable: int = 0


@dataclass
class FeatureTrace:
    """The value stream of one monitored feature, as the report plots it.

    ``kind`` is the stream's kind as its monitor sees it (``numeric``, ``categorical`` or a rate
    kind such as ``missing_rate``) and alone decides the kind of plot. ``positions`` holds the
    value index of each entry of ``values`` (so a stream may be downsampled); ``values`` are
    numbers for numeric streams (NaN = missing), 0/1 for rate streams and strings for
    categorical ones. ``reference_band`` is the reference's (5%, 50%, 95%) quantiles, or for a
    rate stream its rate three times; ``reference_span`` the value indexes the reference was
    taken from, when it came from the stream itself (warm-up). ``detections`` are the alerts
    drawn on the plot; each needs ``detector``, ``index`` (value index where it fired) and,
    optionally, ``severity``. ``monitored`` is how many values the monitor was given (missing
    ones included, values of rejected events not): the stream the value indexes count, and the
    x axis; None when ``positions`` reach its end.

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
    reference_span: tuple[float, float] | None = None
    monitored: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in VALUE_KINDS | RATE_KINDS:
            raise ValueError(f"kind must be one of {sorted(VALUE_KINDS | RATE_KINDS)}, got {self.kind!r}")

    @property
    def length(self) -> int:
        """How many values the stream has: ``monitored``, else one past the last position."""
        if self.monitored is not None:
            return self.monitored
        return int(np.asarray(self.positions)[-1]) + 1 if len(self.positions) else 0

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
    """Render one feature's stream as PNG bytes, drawn as its ``kind`` says.

    Numeric: the rolling median and 5–95% range of the values (and, for short streams, every
    value) against the reference's band. Rate streams: the rate per block of values against the
    reference rate. Categorical: the share of the top categories per block. A reference taken
    from the stream itself is shaded grey; each detection is a vertical line in its detector's
    colour.

    >>> rng = np.random.default_rng(1)
    >>> values = np.concatenate([rng.normal(0, 1, 3000), rng.normal(2, 1, 3000)])
    >>> trace = FeatureTrace("m", None, "x", "numeric", np.arange(6000), values, (-1.6, 0.0, 1.6),
    ...                      [{"detector": "adwin", "index": 3100, "severity": "critical"}])
    >>> png = plot_trace(trace)
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n", len(png) > 1000
    (True, True)
    """
    fig = Figure(figsize=(width, height), dpi=dpi)
    # Fixed margins, not a layout fitted to each legend: the plots of a page then share one x
    # scale on screen, so the same value index is at the same place in each of them.
    fig.subplots_adjust(left=0.085, right=0.76, bottom=0.17, top=0.9)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    positions = np.asarray(trace.positions)
    values = np.asarray(trace.values)
    if values.size == 0:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes, color="grey")
    elif trace.kind in RATE_KINDS:
        _plot_rate(ax, positions, values.astype(float), trace)
    elif trace.kind == "categorical":
        _plot_categories(ax, positions, values)
    else:
        _plot_numeric(ax, positions, values.astype(float), trace)
    if trace.reference_span is not None:
        ax.axvspan(*trace.reference_span, color="#7f7f7f", alpha=0.08, linewidth=0, zorder=0,
                   label="reference taken here")
    _plot_detections(ax, trace.detections)
    ax.set_title(_plain(trace.label), loc="left", fontsize=11)
    ax.set_xlabel(_x_label(trace))
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
                  title: str, counts: ReplayCounts, *, models: Iterable[str] = (),
                  max_plots_per_model: int = 20, max_alert_rows: int = 2_000,
                  below_effect_floor: Sequence[dict[str, Any]] = (),
                  decisions: Sequence[dict[str, Any]] = (), version_traces: Sequence[Any] = ()) -> None:
    """Write the self-contained HTML report of a replay to ``path``.

    The headline shows ``counts`` and how many alerts and retrain requests there are (the
    lengths of the lists, so the headline and the tables cannot disagree). Per model (those
    named in ``models``, which may have been quiet, and those with alerts, traces or requests):
    drifted features ranked by evidence, plots of the top ``max_plots_per_model`` (each trace
    of the feature: values, missing rate...), the alerts table (at most ``max_alert_rows`` rows
    over the whole report) and the retrain requests. A trace without detections gets the alerts
    of its kind drawn: missing-rate alerts on a missing-rate trace, the others on the values.
    ``below_effect_floor`` (detections smaller than their ``min_effect``, not published) are
    counted in the headline and the largest few listed after it. ``decisions`` (model-version
    rollbacks and promotions) and ``version_traces`` (``report_versions.VersionTrace``: each
    version's losses) add a "Model versions" block to their model's section.

    >>> import pathlib, shutil, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> out = folder / "report.html"
    >>> alert = {"alert_id": "a1", "model": "m", "segment": None, "feature": "x<1>", "kind": "feature",
    ...          "detector": "ks", "severity": "critical", "index": 40,
    ...          "detected_at": {"ts": 1732470000.0, "topic": "features", "partition": 0, "offset": 40}}
    >>> trace = FeatureTrace("m", None, "x<1>", "numeric", np.arange(80), np.r_[np.zeros(40), np.ones(40)])
    >>> render_report(out, [alert], [], [trace], "Replay", ReplayCounts(events_read=81, processed=80, rejected=1))
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
    decisions_by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for decision in decisions:
        decisions_by_model[str(decision.get("model"))].append(decision)
    version_trace_of = {t.model: t for t in version_traces}
    # Models with drift first, so a long report opens on what needs attention.
    models = sorted(set(models) | set(ranked) | {t.model for t in traces} | set(requests_by_model)
                    | set(decisions_by_model), key=lambda m: (m not in ranked and m not in decisions_by_model, m))

    rows_left = max_alert_rows
    sections = []
    for number, model in enumerate(models, 1):
        section, rows_left = _model_section(
            number, model, ranked.get(model, []), traces_by_feature, requests_by_model.get(model, []),
            max_plots_per_model, rows_left)
        block = versions_block(version_trace_of.get(model), decisions_by_model.get(model, []))
        if block:
            section = section.replace("</section>", block + "\n</section>")
        sections.append(section)
    body = [
        f"<header><h1>{_esc(title)}</h1>",
        f"<p class='muted'>Generated {_esc(_format_ts(dt.datetime.now(dt.timezone.utc).timestamp()))}</p>",
        _summary_cards(counts, len(alerts), len(retrain_requests), len(below_effect_floor), len(decisions)),
        _below_floor_table(below_effect_floor),
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

def _x_label(trace: FeatureTrace) -> str:
    """What the x axis counts: the monitor's values, so that it agrees with the alerts' indexes."""
    return f"value index, of {trace.length:,} values processed (rejected events not counted)"


def _about(n: int) -> int:
    """``n`` to two significant digits: a window's length in values is approximate (the trace
    may be thinned), and two plots of one stream must not seem to disagree on it.

    >>> _about(398), _about(401), _about(66), _about(12_345)
    (400, 400, 66, 12000)
    """
    return int(float(f"{n:.2g}")) if n > 0 else n


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
        # Edges too: where the values' own band covers the reference's, the edges still show.
        for edge in (low, high):
            ax.axhline(edge, color="#2ca02c", linewidth=0.7, alpha=0.7)
        ax.axhline(mid, color="#2ca02c", linestyle="--", linewidth=1, label="reference median")
    finite = np.isfinite(values)
    positions, values = positions[finite], values[finite]
    if values.size == 0:
        ax.text(0.5, 0.5, "only missing values", ha="center", va="center", transform=ax.transAxes, color="grey")
        return
    if values.size <= MAX_POINTS:
        ax.plot(positions, values, ".", markersize=2.5, color="#7f9fbf", alpha=0.35, label="values")
    rolling = _rolling_windows(positions, values)
    q = None
    if rolling is not None:
        ends, windows, span = rolling
        q = np.quantile(windows, (0.05, 0.5, 0.95), axis=1).T
        ax.fill_between(ends, q[:, 0], q[:, 2], color="#1f77b4", alpha=0.25, linewidth=0,
                        label=f"5–95% of last ~{_about(span):,} values")
        ax.plot(ends, q[:, 1], color="#1f77b4", linewidth=1.6, label=f"median of last ~{_about(span):,} values")
    _fit_value_axis(ax, values, trace.reference_band, q)
    ax.set_ylabel(_plain(trace.feature))


def _rolling_windows(positions: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Windows of consecutive values, one ending at each plotted point (rows of the array), the
    value index where each ends, and a window's typical length in values (positions may be
    thinned); None for a stream too short to roll.

    The window trails its point, as a detector's window does, so a change shows where it starts.

    >>> ends, windows, span = _rolling_windows(np.arange(1000), np.r_[np.zeros(500), np.ones(500)])
    >>> span, windows.shape[1], float(np.median(windows[ends < 500], axis=1).max()), int(ends[-1])
    (66, 66, 0.0, 999)
    """
    window = max(MIN_ROLLING_VALUES, int(values.size * ROLLING_SHARE))
    if values.size < 2 * window:
        return None
    step = max(1, values.size // PLOT_BLOCKS)
    # Step back from the last value so that the stream's end is always plotted.
    last = np.arange(values.size - 1, window - 2, -step)[::-1]
    windows = np.lib.stride_tricks.sliding_window_view(values, window)[last - (window - 1)]
    span = int(round((positions[-1] - positions[0] + 1) * window / values.size))
    return positions[last], windows, span


def _fit_value_axis(ax: Any, values: np.ndarray, band: tuple[float, float, float] | None,
                    rolling: np.ndarray | None) -> None:
    """Keep the y axis on the bulk of the values: one far outlier must not flatten the drift.

    Values beyond the top or bottom are counted in a note under the plot, so that nothing is
    hidden silently.
    """
    low, high = np.quantile(values, (0.005, 0.995))
    shown = [low, high] + (list(band) if band is not None else []) + \
        ([float(rolling.min()), float(rolling.max())] if rolling is not None else [])
    bottom, top = min(shown), max(shown)
    if bottom > 0 and high / max(low, 1e-300) > LOG_AXIS_SPREAD:
        ax.set_yscale("log")
        bottom, top = bottom / 1.15, top * 1.15
    else:
        pad = 0.06 * max(top - bottom, 1e-9)
        bottom, top = bottom - pad, top + pad
    ax.set_ylim(bottom, top)
    above, below = int(np.sum(values > top)), int(np.sum(values < bottom))
    hidden = [f"{n:,} value(s) {where} the plot" for n, where in ((above, "above"), (below, "below")) if n]
    if hidden:
        # Under the legend, where it cannot cover the data or the axis labels.
        ax.annotate("\n".join(hidden), xy=(1.01, 0.0), xycoords="axes fraction", ha="left", va="bottom",
                    fontsize=7.5, color="#6e6e73")


def _plot_rate(ax: Any, positions: np.ndarray, values: np.ndarray, trace: FeatureTrace) -> None:
    if trace.reference_band is not None:
        low, mid, high = trace.reference_band
        if high > low:
            ax.axhspan(low, high, color="#2ca02c", alpha=0.13, linewidth=0, label="reference band")
        ax.axhline(mid, color="#2ca02c", linestyle="--", linewidth=1, label="reference rate")
    rolling = _rolling_windows(positions, values)
    if rolling is None:  # too short to roll: one rate for the whole stream
        ends, rate, span = positions[[0, -1]], np.full(2, np.nanmean(values)), int(positions[-1] - positions[0] + 1)
    else:
        ends, windows, span = rolling
        rate = np.nanmean(windows, axis=1)
    ax.plot(ends, rate, color="#1f77b4", linewidth=1.4, label=f"rate of last ~{_about(span):,} values")
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
    rows: list[list[tuple[float, float]]] = [[] for _ in range(_LABEL_ROWS)]
    for detection in marked:
        name = str(detection.get("detector") or "detector")
        first = name not in colours
        colour = colours.setdefault(name, _DETECTOR_COLOURS[len(colours) % len(_DETECTOR_COLOURS)])
        critical = detection.get("severity") == "critical"
        ax.axvline(detection["index"], color=colour, linewidth=1.6 if critical else 1.1,
                   linestyle="-" if critical else (0, (2, 2)), label=_plain(name) if first else None)
        _label_detection(ax, name, detection["index"], (detection["index"] - left) / span, colour, rows)


def _label_detection(ax: Any, name: str, index: float, x: float, colour: str,
                     rows: list[list[tuple[float, float]]]) -> None:
    """Name a detection line in the first text row where the name overlaps no other.

    The name sits right of its line, or left of it near the right edge, where it would run into
    the legend. ``rows`` holds each row's taken (start, end) in axes fractions; when every row
    is taken near this point the name is left out: the legend still names the colour.
    """
    width = 0.012 + 0.0085 * len(name)
    leftwards = x + width > 1.0
    extent = (x - width, x) if leftwards else (x, x + width)
    row = next((r for r, taken in enumerate(rows)
                if all(extent[1] < start or extent[0] > end for start, end in taken)), None)
    if row is None:
        return
    rows[row].append(extent)
    ax.annotate(_plain(name), xy=(index, 0.98 - 0.09 * row), xycoords=("data", "axes fraction"),
                xytext=(-3 if leftwards else 3, 0), textcoords="offset points",
                ha="right" if leftwards else "left", va="top", fontsize=7.5, color=colour,
                bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})


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
        parts.append(f"value index {_format_number(alert['index'])}")
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


def _summary_cards(counts: ReplayCounts, n_alerts: int, n_requests: int, n_below: int = 0,
                   n_decisions: int = 0) -> str:
    """The headline: one card per count, unreadable rows and detections below the effect floor
    only when there were some."""
    cards = [("events read", counts.events_read), ("processed", counts.processed), ("rejected", counts.rejected)]
    if counts.unreadable:
        cards.append(("unreadable rows", counts.unreadable))
    cards += [("alerts", n_alerts), ("retrain requests", n_requests)]
    if n_below:
        cards.append(("below effect floor", n_below))
    if n_decisions:
        cards.append(("model-version decisions", n_decisions))
    return "<div class='cards'>" + "".join(
        f"<div class='card'><div class='big'>{_esc(_format_number(value))}</div>"
        f"<div class='muted'>{label}</div></div>" for label, value in cards) + "</div>"


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
        parts.append("<p class='muted'>In the plots: green is the reference (band: its 5–95% range, "
                     "dashed: its median or rate), grey shading the values it was taken from; "
                     "vertical lines are detections (solid: critical, dashed: warning), coloured by "
                     "detector; the x axis counts the values the feature's monitor processed "
                     "(missing ones included, values of rejected events not), as an alert's value "
                     "index does.</p>")
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
    if all(a.get("kind") == "multivariate" for a in item.alerts):
        return _joint_block(f"{rank}. all features together (multivariate)"
                            + (f" (segment {item.segment})" if item.segment else ""), item)
    parts = [f"<div class='feature'><h3>{_esc(title)}</h3>"]
    if not traces:
        parts.append("<p class='muted'>No value trace was recorded for this feature.</p>")
    for trace in traces:
        if not trace.detections:
            wants_rate = trace.kind == "missing_rate"
            drawn = [a for a in item.alerts if (a.get("kind") == "missing_rate") == wants_rate]
            trace = replace(trace, detections=drawn)
        png = base64.b64encode(plot_trace(trace)).decode("ascii")
        parts.append(f"<figure data-kind='{_esc(trace.kind)}'>"
                     f"<img alt='{_esc(trace.label)}' src='data:image/png;base64,{png}'>"
                     f"<figcaption class='muted'>{_esc(_caption(trace))}</figcaption></figure>")
    parts.append("</div>")
    return "".join(parts)


def _joint_block(title: str, item: FeatureEvidence) -> str:
    """A multivariate alert has no value trace: what explains it, feature by feature, instead."""
    parts = [f"<div class='feature' data-kind='multivariate'><h3>{_esc(title)}</h3>"]
    for alert in item.alerts:
        explained = alert.get("explained_by") or []
        rows = [[str(k), f"<b>{_esc(e.get('feature'))}</b>",
                 f"<td><span class='bar' style='width:{max(1, round(180 * float(e.get('share') or 0)))}px'></span> "
                 f"{100 * float(e.get('share') or 0):.1f}%</td>",
                 f"<td class='num'>{_esc(_format_number(e.get('move')))}</td>"] for k, e in enumerate(explained, 1)]
        effect = alert.get("effect") or {}
        pairs = effect.get("pairs") or []
        said = "; ".join(f"{' × '.join(p.get('features') or [])}: {_format_number(p.get('move'))}" for p in pairs)
        if alert.get("detector") == "multivariate_pca":
            weight = ("recent squared residual (SPE: the correlations broke)" if effect.get("statistic") == "spe"
                      else "recent squared move (T²: the features moved or spread together)")
            ranked, what, column = f"share of the {weight}", "mean (sds)", "share"
        else:
            ranked, column = "share of the classifier's weight", "share of weight"
            what = "mean (sds)" if alert.get("detector") == "multivariate_mean" else "square (spread)"
        parts.append(f"<p>{_esc(alert.get('detector'))} at {_esc(_where(alert))}: the features ranked by their "
                     f"{ranked}, with the move of each one's {what}."
                     + (f" Products that moved most: {_esc(said)}." if said else "") + "</p>")
        parts.append(_table(["#", "feature", column, "move"], rows))
    parts.append("</div>")
    return "".join(parts)


def _caption(trace: FeatureTrace) -> str:
    """What the plot shows, in words: its kind follows the monitor's, so say which it is."""
    if trace.kind == "numeric":
        return "Numeric feature: rolling median and 5–95% range of its values against the reference's."
    if trace.kind == "categorical":
        return "Categorical feature: share of its most common categories."
    return f"{trace.kind.replace('_', ' ').capitalize()} of the feature against the reference's."


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


#: Rows of the table of detections below the effect floor (the largest effects first).
BELOW_FLOOR_ROWS = 20


def _below_floor_table(below: Sequence[dict[str, Any]]) -> str:
    """The largest detections that ``min_effect`` kept from being published: how close the floor is."""
    if not below:
        return ""
    largest = sorted(below, key=lambda a: -a["effect_size"])[:BELOW_FLOOR_ROWS]
    head = ["model", "feature", "segment", "detector", "effect size", "min_effect", "detected at"]
    rows = [[_esc(a.get("model")), _esc(_feature_name(a)), _esc(a.get("segment") or ""), _esc(a.get("detector")),
             f"<td class='num'>{_esc(_format_number(a['effect_size']))}</td>",
             f"<td class='num'>{_esc(_format_number(a['min_effect']))}</td>", _esc(_where(a))] for a in largest]
    shown = f"the largest {len(largest)} of {len(below):,}" if len(below) > len(largest) else f"{len(below):,}"
    return (f"<p class='muted'>Detections below their effect floor (<code>min_effect</code>), not published: "
            f"{shown}.</p>" + _table(head, rows, drop_empty=("segment",)))


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
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.id{font-family:ui-monospace,monospace;font-size:.75rem;color:#6e6e73;word-break:break-all}
.badge{border-radius:4px;padding:0 .4rem;font-size:.75rem;font-weight:600;color:#fff}
.crit{background:#c62828}.warn{background:#e09b00}
.feature figure{margin:.3rem 0 1rem}.feature img{max-width:100%;display:block}
.index{columns:3}
span.bar{display:inline-block;height:.7rem;background:#5b8bd0;vertical-align:middle}
"""
