"""Backtest scoring on hand-made alerts: exact delays, misses and false alarms; change files."""

from __future__ import annotations

import gzip

import orjson
import pytest

from streamdrift.backtest import (Change, changes_from_events, detector_totals, format_table, load_changes,
                                  score_detections)
from streamdrift.logs import ColumnMapping, LogReader


def alert(feature: str, detector: str, index: int, model: str = "m", segment: str | None = None) -> dict:
    return {"model": model, "segment": segment, "feature": feature, "detector": detector, "index": index}


def by(rows: list[dict], feature: str, detector: str, segment: str | None = None) -> dict:
    [row] = [r for r in rows if r["feature"] == feature and r["detector"] == detector and r["segment"] == segment]
    return row


def counts(row: dict) -> tuple:
    return (row["changes"], row["detected"], row["missed"], row["false_alarms"], row["median_delay"],
            row["max_delay"], row["delays"])


CHANGES = [Change("m", "amount", 1000), Change("m", "amount", 3000), Change("m", "amount", 6000),
           Change("m", "country", 2000), Change("m", "amount", 500, segment="eu")]
ALERTS = [
    alert("amount", "adwin", 200),    # before the first change: false alarm
    alert("amount", "adwin", 1040),   # change 1000, delay 40
    alert("amount", "adwin", 1500),   # change 1000 already detected by adwin: false alarm
    alert("amount", "adwin", 3100),   # change 3000, delay 100
    alert("amount", "ks", 1000),      # change 1000, delay 0 (fires on the first drifted value)
    alert("amount", "ks", 6250),      # change 6000, delay 250; ks misses change 3000
    alert("country", "ks", 2010),     # change 2000, delay 10; adwin misses it
    alert("device", "adwin", 50),     # no known change in device: false alarm
    alert("amount", "ks", 530, segment="eu"),  # segment stream: delay 30
]


def test_delays_misses_and_false_alarms_per_detector():
    rows = score_detections(ALERTS, CHANGES)
    # adwin on amount: detects 1000 (+40) and 3000 (+100), misses 6000, two false alarms.
    assert counts(by(rows, "amount", "adwin")) == (3, 2, 1, 2, 70, 100, [40, 100])
    assert counts(by(rows, "amount", "ks")) == (3, 2, 1, 0, 125, 250, [0, 250])
    # Feature overall: earliest detection per change over both detectors; false alarms summed.
    assert counts(by(rows, "amount", "any")) == (3, 3, 0, 2, 100, 250, [0, 100, 250])
    assert counts(by(rows, "country", "ks")) == (1, 1, 0, 0, 10, 10, [10])
    assert counts(by(rows, "country", "adwin")) == (1, 0, 1, 0, None, None, [])
    assert counts(by(rows, "device", "adwin")) == (0, 0, 0, 1, None, None, [])
    assert [r["detector"] for r in rows if r["feature"] == "device"] == ["any", "adwin"]
    assert counts(by(rows, "amount", "ks", segment="eu")) == (1, 1, 0, 0, 30, 30, [30])
    assert counts(by(rows, "amount", "adwin", segment="eu")) == (1, 0, 1, 0, None, None, [])


def test_detectors_that_never_fired_are_scored_as_missing():
    rows = score_detections([alert("x", "ks", 12)], [Change("m", "x", 10)], detectors=["page_hinkley"])
    assert counts(by(rows, "x", "page_hinkley")) == (1, 0, 1, 0, None, None, [])
    assert counts(by(rows, "x", "ks")) == (1, 1, 0, 0, 2, 2, [2])


def test_alert_in_the_next_interval_belongs_to_the_next_change():
    # An alert after the second change starts is never credited to the first one.
    rows = score_detections([alert("x", "ks", 150)], [Change("m", "x", 100), Change("m", "x", 120)])
    assert counts(by(rows, "x", "ks")) == (2, 1, 1, 0, 30, 30, [30])


def test_alerts_need_an_index():
    with pytest.raises(ValueError, match="integer 'index'"):
        score_detections([{"model": "m", "feature": "x", "detector": "ks", "alert_id": "a-1"}], [])


def test_totals_per_detector_over_all_features():
    totals = {r["detector"]: r for r in detector_totals(score_detections(ALERTS, CHANGES))}
    assert list(totals) == ["any", "adwin", "ks"]
    assert counts(totals["adwin"]) == (5, 2, 3, 3, 70, 100, [40, 100])
    assert counts(totals["ks"]) == (5, 4, 1, 0, 20, 250, [0, 250, 10, 30])
    assert totals["any"]["detected"] == 5 and totals["any"]["false_alarms"] == 3


def test_format_table_aligns_columns():
    rows = score_detections(ALERTS, CHANGES)
    text = format_table(rows)
    lines = text.splitlines()
    assert lines[0].split() == ["model", "segment", "feature", "detector", "changes", "detected", "missed",
                                "false_alarms", "median_delay", "max_delay"]
    assert len(lines) == len(rows) + 1
    # Every column starts at the same offset on every line.
    starts = [lines[0].index(name) for name in ("feature", "detector")]
    assert all(line[starts[0] - 2:starts[0]] == "  " and line[starts[1] - 2:starts[1]] == "  " for line in lines)
    adwin_amount = next(line for line in lines if line.split()[2:4] == ["amount", "adwin"])
    assert adwin_amount.split() == ["m", "-", "amount", "adwin", "3", "2", "1", "2", "70", "100"]
    # Without segments the column goes away; missing delays print as "-".
    plain = format_table(score_detections([], [Change("m", "x", 5)], detectors=["ks"]))
    assert plain.splitlines()[1].split() == ["m", "x", "any", "1", "0", "1", "0", "-", "-"]


def test_load_changes_from_csv_jsonl_and_gzip(tmp_path):
    csv_path = tmp_path / "changes.csv"
    csv_path.write_text("model,feature,index,segment\nm,amount,1000,\nm,amount,500,eu\n")
    jsonl_path = tmp_path / "changes.jsonl.gz"
    jsonl_path.write_bytes(gzip.compress(b'{"model": "m", "feature": "amount", "index": 1000}\n\n'
                                         b'{"model": "m", "feature": "amount", "index": 500.0, "segment": "eu"}\n'))
    expected = [Change("m", "amount", 1000), Change("m", "amount", 500, "eu")]
    assert load_changes(csv_path) == expected
    assert load_changes(jsonl_path) == expected


@pytest.mark.parametrize("content, message", [
    ("model,feature,index\nm,x,12\nm,x,-1\n", r"changes.csv:3: index must be an integer >= 0"),
    ("model,feature,index\nm,,12\n", r"changes.csv:2: model and feature must be non-empty"),
    ("model,feature,index\nm,x,1.5\n", r"changes.csv:2: index must be an integer"),
])
def test_load_changes_rejects_bad_lines_with_their_line_number(tmp_path, content, message):
    path = tmp_path / "changes.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_changes(path)


def test_bad_jsonl_change_line_is_an_error(tmp_path):
    path = tmp_path / "changes.jsonl"
    path.write_bytes(b'{"model": "m", "feature": "x", "index": 3}\n{oops\n')
    with pytest.raises(ValueError, match=r"changes.jsonl:2: expected an object"):
        load_changes(path)


def test_changes_marked_in_a_csv_log_end_to_end(tmp_path):
    # The value index counts the feature's values in its (model, segment) stream, nulls included.
    log = tmp_path / "log.csv"
    log.write_text("model,segment,amount,country,change_point\n"
                   "m,,1.0,DE,\n"
                   "m,eu,1.0,DE,\n"
                   "m,,,FR,\n"
                   "m,,9.0,US,amount\n"
                   "m,eu,9.0,US,true\n"
                   "m,,9.5,US,country|amount\n")
    events = (row.event for row in LogReader(log, ColumnMapping()) if row.event)
    assert changes_from_events(events) == [
        Change("m", "amount", 2), Change("m", "amount", 1, "eu"), Change("m", "country", 1, "eu"),
        Change("m", "country", 3), Change("m", "amount", 3)]
    # Counting only present values, the null amount on line 4 does not move the index.
    events = (orjson.loads(row.raw) for row in LogReader(log) if row.event)
    assert changes_from_events(events, count_missing=False)[0] == Change("m", "amount", 1)
