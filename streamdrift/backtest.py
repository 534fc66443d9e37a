"""Backtests: score a replay's alerts against the change points known to be in the log.

Scoring rule. Changes and alerts are matched by (model, segment, feature); positions are value
indices in that feature's stream. A change at index ``c`` owns the interval ``[c, next change)``
(the last one: to the end of the stream). For each detector, the first alert in a change's
interval is a *true detection* with delay ``alert.index - c``; every other alert of that detector
(before the first change, or after the change was already detected) is a *false alarm*. A change
with no alert of the detector in its interval is *missed*. The ``any`` row of a feature takes its
earliest true detection over all detectors, and counts every detector's false alarms.

Known changes come from a side file (:func:`load_changes`) or from the log itself
(:func:`changes_from_events`): an event whose ``change_point`` field is ``true`` starts a change
in all its features; a list of feature names (CSV: names separated by ``;``, ``,`` or ``|``)
starts one in those features only. The value indices must be counted the way the replay
feeds the monitors; see :func:`changes_from_events`.
"""

from __future__ import annotations

import bisect
import csv
import io
import math
import os
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .logs import open_binary

ANY_DETECTOR = "any"
ALL = "(all)"
TABLE_COLUMNS = ("model", "segment", "feature", "detector", "changes", "detected", "missed",
                 "false_alarms", "median_delay", "max_delay")

Key = tuple[str, str | None, str]


@dataclass(frozen=True)
class Change:
    """A known change point: drift in ``feature`` of ``model`` starts at value ``index``.

    >>> Change("fraud-v3", "amount", 5000)
    Change(model='fraud-v3', feature='amount', index=5000, segment=None)
    """

    model: str
    feature: str
    index: int
    segment: str | None = None

    @property
    def key(self) -> Key:
        """The (model, segment, feature) stream this change happens in."""
        return (self.model, self.segment or None, self.feature)


def score_detections(alerts: Iterable[dict[str, Any]], changes: Iterable[Change], *,
                     detectors: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One row per feature and detector (plus the feature's ``any`` row), scored by the module's rule.

    Features with known changes get a row for every detector seen in ``alerts`` (and every name
    in ``detectors``, for detectors that never fired); features without changes only get rows for
    the detectors that alerted on them (all false alarms). Each row also carries its ``delays``.

    >>> changes = [Change("m", "x", 100), Change("m", "x", 500)]
    >>> alerts = [{"model": "m", "feature": "x", "detector": "adwin", "index": i} for i in (40, 130, 180, 530)]
    >>> alerts.append({"model": "m", "feature": "x", "detector": "ks", "index": 110})
    >>> for row in score_detections(alerts, changes):
    ...     print(row["detector"], row["detected"], row["missed"], row["false_alarms"], row["delays"])
    any 2 0 2 [10, 30]
    adwin 2 0 2 [30, 30]
    ks 1 1 0 [10]
    """
    by_key: dict[Key, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    seen_detectors: set[str] = set(detectors)
    for alert in alerts:
        index = alert.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            raise ValueError(f"alert {alert.get('alert_id', alert)!r} needs an integer 'index' "
                             "(the value index where it fired) to be scored")
        detector = str(alert.get("detector"))
        seen_detectors.add(detector)
        key = (str(alert.get("model")), alert.get("segment") or None, str(alert.get("feature")))
        by_key[key][detector].append(index)
    change_points: dict[Key, list[int]] = defaultdict(list)
    for change in changes:
        change_points[change.key].append(change.index)

    rows = []
    for key in sorted(set(by_key) | set(change_points), key=lambda k: (k[0], k[1] or "", k[2])):
        starts = sorted(set(change_points.get(key, [])))
        fired = by_key.get(key, {})
        names = sorted(seen_detectors) if starts else sorted(fired)
        scored = {name: _score_one(starts, sorted(fired.get(name, []))) for name in names}
        # Per change: the earliest true detection over all detectors.
        earliest = [min((s[0][i] for s in scored.values() if s[0][i] is not None), default=None)
                    for i in range(len(starts))]
        rows.append(_row(key, ANY_DETECTOR, starts, earliest, sum(s[1] for s in scored.values())))
        rows.extend(_row(key, name, starts, delays, false_alarms)
                    for name, (delays, false_alarms) in scored.items())
    return rows


def detector_totals(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sum the rows of :func:`score_detections` per detector over all features.

    >>> rows = score_detections([{"model": "m", "feature": f, "detector": "ks", "index": 12} for f in "ab"],
    ...                         [Change("m", "a", 10), Change("m", "b", 10), Change("m", "c", 10)])
    >>> [(r["detector"], r["changes"], r["detected"], r["missed"], r["median_delay"])
    ...  for r in detector_totals(rows)]
    [('any', 3, 2, 1, 2), ('ks', 3, 2, 1, 2)]
    """
    totals: dict[str, dict[str, Any]] = {}
    for row in rows:
        total = totals.setdefault(row["detector"], {"changes": 0, "false_alarms": 0, "delays": []})
        total["changes"] += row["changes"]
        total["false_alarms"] += row["false_alarms"]
        total["delays"].extend(row["delays"])
    ordered = sorted(totals, key=lambda name: (name != ANY_DETECTOR, name))
    return [_summarise(ALL, None, ALL, name, totals[name]["changes"], totals[name]["delays"],
                       totals[name]["false_alarms"]) for name in ordered]


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] = TABLE_COLUMNS) -> str:
    """Rows as an aligned plain-text table; the segment column is left out when no row has one.

    >>> print(format_table([{"model": "m", "segment": None, "feature": "x", "detector": "ks",
    ...                      "changes": 2, "detected": 1, "missed": 1, "false_alarms": 0,
    ...                      "median_delay": 12.5, "max_delay": 12}]))
    model  feature  detector  changes  detected  missed  false_alarms  median_delay  max_delay
    m      x        ks              2         1       1             0          12.5         12
    """
    shown = [c for c in columns if c != "segment" or any(row.get("segment") for row in rows)]
    cells = [[_cell(row.get(c)) for c in shown] for row in rows]
    widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(shown)]
    # Counts and delays read best right-aligned; names left-aligned.
    right = [c not in ("model", "segment", "feature", "detector") for c in shown]
    lines = [list(shown)] + cells
    return "\n".join("  ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)).rstrip()
                     for values in lines)


def load_changes(path: str | os.PathLike[str]) -> list[Change]:
    """Read known change points from a CSV or JSONL file (gzip ok).

    Columns (CSV header) or keys (JSONL objects): ``model``, ``feature``, ``index`` and
    optionally ``segment``. A malformed line is an error naming the file and line: a backtest
    against a silently shortened list of changes would score wrongly.

    >>> import pathlib, shutil, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> path = folder / "changes.csv"
    >>> _ = path.write_text("model,feature,index\\nfraud-v3,amount,5000\\nfraud-v3,country,7000\\n")
    >>> load_changes(path)[1]
    Change(model='fraud-v3', feature='country', index=7000, segment=None)
    >>> shutil.rmtree(folder)
    """
    with open_binary(path) as stream:
        head = stream.peek(64)[:64].lstrip()
        if head[:1] == b"{":
            records: Iterable[tuple[int, Any]] = _jsonl_records(stream)
        else:
            text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
            records = ((n + 2, record) for n, record in enumerate(csv.DictReader(text)))
        return [_change_from_record(record, f"{os.fspath(path)}:{line}") for line, record in records]


def changes_from_events(events: Iterable[dict[str, Any]], *, field: str = "change_point",
                        count_missing: bool = True) -> list[Change]:
    """Changes marked inside the log: the value index where each marked feature's drift starts.

    ``field`` is ``true`` (every feature of the event) or a list of feature names (or one string
    of names separated by ``;``, ``,`` or ``|``). A feature's value index counts the earlier
    events of the same (model, segment) that carried the feature, a null (missing) value
    included as the monitors count it (``detectors/detection.py``); with
    ``count_missing=False`` only non-null values count. Events without a string ``model`` and an
    object ``features`` are skipped: the processor rejects them, so they have no value index.

    >>> events = [{"model": "m", "features": {"x": 1.0, "y": None}},
    ...           {"model": "m", "features": {"x": 1.1, "y": 2.0}},
    ...           {"model": "m", "features": {"x": 9.0, "y": 2.1}, "change_point": ["x"]},
    ...           {"model": "m", "features": {"x": 9.2, "y": 7.0}, "change_point": True}]
    >>> changes_from_events(events)
    [Change(model='m', feature='x', index=2, segment=None),
     Change(model='m', feature='x', index=3, segment=None),
     Change(model='m', feature='y', index=3, segment=None)]
    >>> changes_from_events(events, count_missing=False)[-1]
    Change(model='m', feature='y', index=2, segment=None)
    """
    counts: dict[tuple[str, str | None], dict[str, int]] = defaultdict(dict)
    changes = []
    for event in events:
        model, features = event.get("model"), event.get("features")
        if not isinstance(model, str) or not isinstance(features, dict):
            continue
        segment = event.get("segment") or None
        seen = counts[(model, segment)]
        mark = event.get(field)
        if mark:
            for name in _marked_features(mark, features):
                changes.append(Change(model, name, seen.get(name, 0), segment))
        for name, value in features.items():
            if count_missing or value is not None:
                seen[name] = seen.get(name, 0) + 1
    return changes


# --- internals ---------------------------------------------------------------------------------

def _score_one(starts: list[int], fired: list[int]) -> tuple[list[int | None], int]:
    """Delays per change (None: missed) and the false alarms of one detector on one feature."""
    delays: list[int | None] = [None] * len(starts)
    false_alarms = 0
    for index in fired:
        # The change whose interval holds this alert: the last start at or before it.
        owner = _last_at_or_before(starts, index)
        if owner is None or delays[owner] is not None:
            false_alarms += 1
        else:
            delays[owner] = index - starts[owner]
    return delays, false_alarms


def _last_at_or_before(starts: list[int], index: int) -> int | None:
    position = bisect.bisect_right(starts, index) - 1
    return position if position >= 0 else None


def _row(key: Key, detector: str, starts: list[int], delays: list[int | None],
         false_alarms: int) -> dict[str, Any]:
    found = [d for d in delays if d is not None]
    return _summarise(key[0], key[1], key[2], detector, len(starts), found, false_alarms)


def _summarise(model: str, segment: str | None, feature: str, detector: str, changes: int,
               delays: list[int], false_alarms: int) -> dict[str, Any]:
    median = statistics.median(delays) if delays else None
    if isinstance(median, float) and median.is_integer():
        median = int(median)
    return {"model": model, "segment": segment, "feature": feature, "detector": detector,
            "changes": changes, "detected": len(delays), "missed": changes - len(delays),
            "false_alarms": false_alarms, "median_delay": median,
            "max_delay": max(delays) if delays else None, "delays": delays}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value)
    return str(value)


def _jsonl_records(stream: Any) -> Iterable[tuple[int, Any]]:
    for line_no, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            yield line_no, orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield line_no, f"invalid JSON: {exc}"


def _change_from_record(record: Any, where: str) -> Change:
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected an object with model, feature, index; got {record!r}")
    model, feature, index = record.get("model"), record.get("feature"), record.get("index")
    segment = record.get("segment") or None
    if not model or not feature:
        raise ValueError(f"{where}: model and feature must be non-empty, got {model!r}, {feature!r}")
    try:
        number = float(index) if isinstance(index, (str, int, float)) and not isinstance(index, bool) else math.nan
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number.is_integer() and number >= 0):
        raise ValueError(f"{where}: index must be an integer >= 0 (a value index), got {index!r}")
    return Change(str(model), str(feature), int(number), None if segment is None else str(segment))


def _marked_features(mark: Any, features: dict[str, Any]) -> list[str]:
    if mark is True:
        return list(features)
    if isinstance(mark, str):
        if mark.strip().lower() in ("true", "1", "yes"):
            return list(features)
        return [name.strip() for name in mark.replace("|", ",").replace(";", ",").split(",") if name.strip()]
    if isinstance(mark, (list, tuple)):
        return [str(name) for name in mark]
    return list(features) if mark else []
