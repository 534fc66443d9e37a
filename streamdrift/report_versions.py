"""The replay report's model-version part: each version's loss over its labels, with the rollback
or promote decision marked, and the table of decisions."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: Labels per point of the rolling mean (at least; more when the trace is long).
MIN_ROLLING_LABELS = 50
_VERSION_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf")
_DECISION_COLOURS = {"rollback": "#d62728", "promote": "#2ca02c"}


@dataclass
class VersionTrace:
    """One model's versions' losses, as the report plots them: ``series[version] = (label
    indexes, losses)`` (possibly thinned), ``labels`` the model's labels in all, ``decided_at``
    decision id -> label index.

    >>> trace = VersionTrace("m", {"v1": (np.arange(4.0), np.zeros(4))}, 4)
    >>> sorted(trace.series)
    ['v1']
    """

    model: str
    series: dict[str, tuple[np.ndarray, np.ndarray]]
    labels: int
    decided_at: dict[str, int] = field(default_factory=dict)


def rolling_mean(positions: np.ndarray, losses: np.ndarray, n_points: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """The mean loss over consecutive blocks of points (at least ``MIN_ROLLING_LABELS`` each).

    >>> x, y = rolling_mean(np.arange(200.0), np.r_[np.zeros(100), np.ones(100)], n_points=4)
    >>> y.tolist()
    [0.0, 0.0, 1.0, 1.0]
    """
    size = max(MIN_ROLLING_LABELS, len(losses) // max(1, n_points))
    blocks = [slice(i, i + size) for i in range(0, len(losses) - size + 1, size)] or [slice(0, len(losses))]
    return (np.array([positions[b].mean() for b in blocks]), np.array([losses[b].mean() for b in blocks]))


def plot_versions(trace: VersionTrace, decisions: Sequence[dict[str, Any]], *, width: float = 9.5,
                  height: float = 3.3, dpi: int = 100) -> bytes:
    """PNG of each version's rolling mean loss against the model's label count, with each
    decision a vertical line at the label it was made on."""
    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    ax = figure.add_axes((0.08, 0.17, 0.74, 0.72))
    for colour, (version, (positions, losses)) in zip(_VERSION_COLOURS * 10, trace.series.items()):
        x, y = rolling_mean(positions, losses)
        ax.plot(x, y, color=colour, lw=1.6, label=f"version {version}")
    for decision in decisions:
        at = trace.decided_at.get(decision["decision_id"])
        if at is None:
            continue
        colour = _DECISION_COLOURS.get(decision["decision"], "#000000")
        ax.axvline(at, color=colour, lw=1.8)
        ax.annotate(f"{decision['decision']} {decision['version']}\n(vs {decision['baseline']})", (at, 1.0),
                    xycoords=("data", "axes fraction"), xytext=(4, -4), textcoords="offset points",
                    va="top", fontsize=8, color=colour)
    ax.set_xlim(0, max(trace.labels, 1))
    ax.set_ylim(bottom=0)
    ax.set_xlabel(f"label index, of {trace.labels:,} labels that met a prediction of a version")
    ax.set_ylabel("mean loss")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def versions_block(trace: VersionTrace | None, decisions: Sequence[dict[str, Any]]) -> str:
    """The HTML of one model's versions: the plot and the decisions table ('' without either)."""
    if trace is None and not decisions:
        return ""
    parts = ["<h3>Model versions</h3>"]
    if trace is not None and trace.series:
        png = base64.b64encode(plot_versions(trace, decisions)).decode()
        parts.append("<p class='muted'>Each version's mean loss (0/1 error for classes, absolute error for "
                     "numbers) over blocks of its labelled predictions; vertical lines are decisions (red: "
                     "rollback, green: promote) at the label that made them.</p>")
        parts.append(f"<img alt='loss of each version of {html.escape(trace.model)}' src='data:image/png;base64,{png}'>")
    if decisions:
        rows = []
        for d in decisions:
            diff = d["loss_difference"]
            rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
                d["decision"], d["version"], d["baseline"], d["traffic"],
                f"{diff['estimate']:+.4f} [{diff['lower']:+.4f}, {diff['upper']:+.4f}]",
                f"{d['loss']['version']:.4f} / {d['loss']['baseline']:.4f}", f"{d['labels']:,}",
                d["decision_id"])) + "</tr>")
        parts.append("<table><thead><tr><th>decision</th><th>version</th><th>baseline</th><th>traffic</th>"
                     "<th>loss difference [interval]</th><th>loss version / baseline</th><th>labels</th>"
                     "<th>decision id</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    return "\n".join(parts)
