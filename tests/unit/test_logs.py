"""Log readers: every format with and without gzip, inputs, mapping, bad rows, time stamps, memory."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import tracemalloc
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamdrift.logs import ColumnMapping, LogFormatError, LogReader, parse_ts, resolve_paths

EVENTS = [
    {"model": "fraud-v3", "id": "e-1", "ts": 1732470000.25,
     "features": {"amount": 12.5, "age_days": 340, "country": "DE", "device": None},
     "prediction": 0.83, "label": 1},
    {"model": "fraud-v3", "id": "e-2", "ts": 1732470001.5,
     "features": {"amount": 7.0, "age_days": 12, "country": "FR", "device": "ios"},
     "prediction": 0.1, "label": 0},
]
COLUMNS = ["model", "id", "ts", "amount", "age_days", "country", "device", "prediction", "label"]


def table_rows(events=EVENTS) -> list[list]:
    return [[e["model"], e["id"], e["ts"], *e["features"].values(), e["prediction"], e["label"]] for e in events]


def write(path: Path, data: bytes, compress: bool) -> Path:
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def jsonl_bytes(events=EVENTS) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


def csv_bytes(rows: list[list], header: list[str] = COLUMNS) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return out.getvalue().encode()


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def events_table(events=EVENTS) -> pa.Table:
    rows = table_rows(events)
    return pa.table({name: [row[i] for row in rows] for i, name in enumerate(COLUMNS)})


@pytest.mark.parametrize("compress", [False, True])
def test_jsonl_rows_keep_line_bytes_and_parse(tmp_path, compress):
    path = write(tmp_path / "events.jsonl", jsonl_bytes(), compress)
    rows = list(LogReader(path))
    assert [r.event for r in rows] == EVENTS
    assert [r.line for r in rows] == [1, 2]
    assert [r.raw for r in rows] == jsonl_bytes().splitlines()
    assert all(r.error is None and r.source == str(path) for r in rows)


@pytest.mark.parametrize("compress", [False, True])
def test_csv_rows_become_events_in_the_design_shape(tmp_path, compress):
    path = write(tmp_path / "events.csv", csv_bytes(table_rows()), compress)
    rows = list(LogReader(path))
    assert [r.event for r in rows] == [
        {"model": "fraud-v3", "id": "e-1", "ts": 1732470000.25, "prediction": 0.83, "label": 1,
         "features": {"amount": 12.5, "age_days": 340, "country": "DE", "device": None}},
        {"model": "fraud-v3", "id": "e-2", "ts": 1732470001.5, "prediction": 0.1, "label": 0,
         "features": {"amount": 7.0, "age_days": 12, "country": "FR", "device": "ios"}},
    ]
    assert [r.line for r in rows] == [2, 3]  # the header is line 1
    assert all(orjson.loads(r.raw) == r.event for r in rows)


@pytest.mark.parametrize("compress", [False, True])
def test_parquet_rows_become_events_with_nulls_as_none(tmp_path, compress):
    path = write(tmp_path / "events.parquet", parquet_bytes(events_table()), compress)
    rows = list(LogReader(path))
    assert [r.event["features"] for r in rows] == [e["features"] for e in EVENTS]
    assert [r.event["id"] for r in rows] == ["e-1", "e-2"]
    assert [r.line for r in rows] == [1, 2]
    assert all(orjson.loads(r.raw) == r.event for r in rows)


def test_gzip_is_found_by_magic_bytes_not_the_name(tmp_path):
    hidden = tmp_path / "events.jsonl"
    hidden.write_bytes(gzip.compress(jsonl_bytes()))
    plain_named_gz = tmp_path / "more.csv.gz"
    plain_named_gz.write_bytes(csv_bytes(table_rows()))
    assert [r.event for r in LogReader(hidden)] == EVENTS
    assert len([r for r in LogReader(plain_named_gz) if r.event]) == 2


def test_unknown_suffix_is_sniffed(tmp_path):
    (tmp_path / "a.log").write_bytes(jsonl_bytes())
    (tmp_path / "b.dat").write_bytes(parquet_bytes(events_table()))
    (tmp_path / "c.txt").write_bytes(csv_bytes(table_rows()))
    for name in ("a.log", "b.dat", "c.txt"):
        rows = list(LogReader(tmp_path / name))
        assert [r.event["features"] for r in rows] == [e["features"] for e in EVENTS], name


def test_directory_reads_supported_files_sorted(tmp_path):
    (tmp_path / "b.csv.gz").write_bytes(gzip.compress(csv_bytes(table_rows()[:1])))
    (tmp_path / "a.jsonl").write_bytes(jsonl_bytes(EVENTS[1:]))
    (tmp_path / "c.parquet").write_bytes(parquet_bytes(events_table()))
    (tmp_path / "README.md").write_text("not a log")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.jsonl").write_bytes(jsonl_bytes())
    reader = LogReader(tmp_path)
    ids = [(Path(r.source).name, r.event["id"]) for r in reader]
    assert ids == [("a.jsonl", "e-2"), ("b.csv.gz", "e-1"), ("c.parquet", "e-1"), ("c.parquet", "e-2")]
    assert reader.summary.files == 3 and reader.summary.rows == 4


def test_glob_and_lists_of_inputs(tmp_path):
    for day in ("2024-11-02", "2024-11-01"):
        (tmp_path / f"events-{day}.jsonl").write_bytes(jsonl_bytes())
    (tmp_path / "other.jsonl").write_bytes(jsonl_bytes())
    names = [p.name for p in resolve_paths(str(tmp_path / "events-*.jsonl"))]
    assert names == ["events-2024-11-01.jsonl", "events-2024-11-02.jsonl"]
    both = resolve_paths([tmp_path / "other.jsonl", str(tmp_path / "events-*01.jsonl")])
    assert [p.name for p in both] == ["other.jsonl", "events-2024-11-01.jsonl"]
    assert len(list(LogReader(str(tmp_path / "**" / "*.jsonl")))) == 6


def test_missing_input_fails_before_reading(tmp_path):
    with pytest.raises(LogFormatError, match="no such file"):
        LogReader(tmp_path / "nope.jsonl")
    with pytest.raises(LogFormatError, match="no files match"):
        LogReader(str(tmp_path / "*.parquet"))


def test_csv_cells_typed_like_json_values(tmp_path):
    header = ["model", "n", "x", "code", "flag", "odd", "big", "zip"]
    rows = [["m", "42", "-1.5e3", "A7", "true", "nan", "123456789012345678901234", "01234"],
            ["m", "", " 7 ", "", "1_000", "inf", "-3", "00007"]]
    path = tmp_path / "typed.csv"
    path.write_bytes(csv_bytes(rows, header))
    features = [r.event["features"] for r in LogReader(path, ColumnMapping(categorical=("zip",)))]
    assert features[0] == {"n": 42, "x": -1500.0, "code": "A7", "flag": "true", "odd": "nan",
                           "big": 1.2345678901234568e23, "zip": "01234"}
    assert features[1] == {"n": None, "x": 7, "code": None, "flag": "1_000", "odd": "inf",
                           "big": -3, "zip": "00007"}
    assert type(features[0]["n"]) is int and type(features[1]["big"]) is int


def test_column_mapping_renames_picks_features_and_sets_model(tmp_path):
    header = ["event_time", "row_id", "region", "score", "outcome", "amount", "country", "note", "drift_starts"]
    rows = [["2024-11-24T17:40:00Z", "r1", "eu", "0.7", "1", "3.5", "DE", "ignore me", ""],
            ["2024-11-24T17:41:00Z", "r2", "", "0.2", "", "4.5", "FR", "me too", "amount;country"]]
    path = tmp_path / "custom.csv"
    path.write_bytes(csv_bytes(rows, header))
    mapping = ColumnMapping(model=None, model_name="churn-v1", id="row_id", ts="event_time",
                            prediction="score", label="outcome", segment="region",
                            change_point="drift_starts", features=("amount", "country"))
    events = [r.event for r in LogReader(path, mapping)]
    assert events[0] == {"model": "churn-v1", "id": "r1", "ts": "2024-11-24T17:40:00Z", "prediction": 0.7,
                         "label": 1, "segment": "eu", "features": {"amount": 3.5, "country": "DE"}}
    # Empty optional cells leave the field out rather than sending null.
    assert events[1] == {"model": "churn-v1", "id": "r2", "ts": "2024-11-24T17:41:00Z", "prediction": 0.2,
                         "change_point": ["amount", "country"], "features": {"amount": 4.5, "country": "FR"}}
    default = [r.event for r in LogReader(path, ColumnMapping(model_name="churn-v1"))]
    assert set(default[0]["features"]) == set(header)  # nothing is mapped by the default names


def test_mapping_that_does_not_fit_the_file_is_a_clear_error(tmp_path):
    path = tmp_path / "nomodel.csv"
    path.write_bytes(csv_bytes([["1.0"]], ["x"]))
    with pytest.raises(LogFormatError, match="no model column 'model'.*model_name"):
        list(LogReader(path))
    with pytest.raises(LogFormatError, match=r"feature columns \['y'\] not found"):
        list(LogReader(path, ColumnMapping(model_name="m", features=("x", "y"))))
    dup = tmp_path / "dup.csv"
    dup.write_bytes(csv_bytes([["m", "1", "2"]], ["model", "x", "x"]))
    with pytest.raises(LogFormatError, match="duplicate column names"):
        list(LogReader(dup))


def test_bad_jsonl_lines_are_reported_with_their_line_numbers(tmp_path):
    good = orjson.dumps(EVENTS[0])
    lines = [good, b"{not json", b"", good, b"[1, 2, 3]", b'"just a string"', b'{"a": NaN}', good, b"   "]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\r\n".join(lines) + b"\n")
    reader = LogReader(path)
    rows = list(reader)
    assert [(r.line, r.event is not None) for r in rows] == [
        (1, True), (2, False), (4, True), (5, False), (6, False), (7, False), (8, True)]
    errors = {r.line: r.error for r in rows if r.error}
    assert errors[2].startswith("invalid JSON")
    assert errors[5] == "expected a JSON object, found an array"
    assert errors[6] == "expected a JSON object, found a string"
    assert errors[7].startswith("invalid JSON")
    assert rows[1].raw == b"{not json"
    assert (reader.summary.rows, reader.summary.bad_rows, reader.summary.good_rows) == (7, 4, 3)
    assert [(line, error) for _, line, error in reader.summary.bad_examples] == sorted(errors.items())


def test_bad_csv_rows_keep_physical_line_numbers(tmp_path):
    text = ('model,x,note\n'
            'm,1,"two\nlines"\n'      # lines 2-3
            'm,2\n'                   # line 4: too few columns
            '\n'                      # line 5: blank
            'm,3,ok,extra\n'          # line 6: too many
            'm,4,fine\n')             # line 7
    path = tmp_path / "bad.csv"
    path.write_text(text)
    rows = list(LogReader(path))
    assert [(r.line, r.error) for r in rows] == [
        (2, None), (4, "expected 3 columns as in the header, found 2"),
        (6, "expected 3 columns as in the header, found 4"), (7, None)]
    assert rows[0].event["features"] == {"x": 1, "note": "two\nlines"}
    assert rows[1].raw == b"m,2"


def test_parquet_nan_rows_are_rejected_not_rewritten(tmp_path):
    table = pa.table({
        "model": ["m", "m", "m"],
        "ts": pa.array([dt.datetime(2024, 11, 24, 17, 40), None, dt.datetime(2024, 11, 24, 17, 40, 1)],
                       pa.timestamp("ms", tz="UTC")),
        "x": [1.5, float("nan"), None],
        "country": pa.array(["DE", "FR", None]).dictionary_encode(),
    })
    path = tmp_path / "nan.parquet"
    pq.write_table(table, path, row_group_size=2)
    rows = list(LogReader(path, batch_size=2))
    assert [r.line for r in rows] == [1, 2, 3]
    assert rows[0].event == {"model": "m", "ts": 1732470000.0, "features": {"x": 1.5, "country": "DE"}}
    assert rows[1].event is None and "NaN" in rows[1].error
    assert rows[2].event == {"model": "m", "ts": 1732470001.0, "features": {"x": None, "country": None}}


def test_truncated_gzip_is_reported_and_the_next_file_is_read(tmp_path):
    data = gzip.compress(jsonl_bytes(EVENTS * 2000))
    (tmp_path / "a.jsonl.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "b.jsonl").write_bytes(jsonl_bytes())
    reader = LogReader(tmp_path)
    rows = list(reader)
    broken = [r for r in rows if r.error]
    assert len(broken) == 1 and "unreadable" in broken[0].error
    assert broken[0].source.endswith("a.jsonl.gz") and broken[0].line > 1
    assert [r.event["id"] for r in rows[-2:]] == ["e-1", "e-2"]
    assert reader.summary.bad_rows == 1


def test_unreadable_files_are_bad_rows_not_the_end_of_the_replay(tmp_path):
    (tmp_path / "a.parquet").write_bytes(b"PAR1 this is not really parquet")
    (tmp_path / "b.csv.gz").write_bytes(gzip.compress(csv_bytes(table_rows()))[:20] + b"garbage" * 50)
    (tmp_path / "c.jsonl").write_bytes(jsonl_bytes())
    rows = list(LogReader(tmp_path))
    assert [(Path(r.source).name, r.line, r.error is None) for r in rows] == [
        ("a.parquet", 1, False), ("b.csv.gz", 1, False), ("c.jsonl", 1, True), ("c.jsonl", 2, True)]
    assert "not a readable Parquet file" in rows[0].error
    assert "corrupt gzip data" in rows[1].error


def test_concatenated_gzip_members_read_as_one_file(tmp_path):
    path = tmp_path / "joined.jsonl.gz"
    path.write_bytes(gzip.compress(jsonl_bytes(EVENTS[:1])) + gzip.compress(jsonl_bytes(EVENTS[1:])))
    assert [r.event for r in LogReader(path)] == EVENTS


def test_oversized_line_is_a_bad_row_without_reading_it_whole(tmp_path):
    path = tmp_path / "long.jsonl"
    path.write_bytes(orjson.dumps(EVENTS[0]) + b"\n" + b"x" * 5000 + b"\n" + orjson.dumps(EVENTS[1]) + b"\n")
    rows = list(LogReader(path, max_line_bytes=1000))
    assert [(r.line, r.error is None) for r in rows] == [(1, True), (2, False), (3, True)]
    assert "longer than 1000 bytes" in rows[1].error and len(rows[1].raw) <= 1024


def test_bad_examples_are_capped(tmp_path):
    path = tmp_path / "junk.jsonl"
    path.write_bytes(b"junk\n" * 50)
    reader = LogReader(path)
    assert sum(1 for _ in reader) == 50
    assert reader.summary.bad_rows == 50 and len(reader.summary.bad_examples) == 20


@pytest.mark.parametrize("value, expected", [
    (1732470000, 1732470000.0),
    (1732470000.25, 1732470000.25),
    (np.int64(1732470000), 1732470000.0),
    ("2024-11-24T17:40:00Z", 1732470000.0),
    ("2024-11-24T19:40:00+02:00", 1732470000.0),
    ("2024-11-24 17:40:00", 1732470000.0),  # naive = UTC
    ("2024-11-24", 1732406400.0),
    ("20241124", 1732406400.0),  # ISO-8601's basic format, not 20,241,124 epoch seconds
    (dt.datetime(2024, 11, 24, 17, 40), 1732470000.0),
    # DESIGN.md: epoch seconds are a number; a string must be ISO-8601 (the processor's rule).
    ("1732470000.5", None), (" 2024-11-24T17:40:00Z", None),
    ("tomorrow", None), ("", None), (None, None), (True, None), (float("nan"), None), ("inf", None),
    (10**400, None), ([1], None),
])
def test_parse_ts(value, expected):
    assert parse_ts(value) == expected


def test_logs_and_kafka_events_share_one_time_parser():
    """A second copy would drift from the processor's rule (it did: two accepted different inputs)."""
    import streamdrift.events

    assert parse_ts is streamdrift.events.parse_ts


def test_a_csv_epoch_seconds_column_still_gives_times(tmp_path):
    """CSV cells are text; the reader makes numbers of numeric cells, so ``ts`` reaches
    ``parse_ts`` as epoch seconds, not as the numeric string it rejects."""
    path = tmp_path / "log.csv"
    path.write_text("model,ts,x\nm,1732470000.5,1\nm,2024-11-24T17:40:00Z,2\n")
    times = [parse_ts(row.event["ts"]) for row in LogReader(path)]
    assert times == [1732470000.5, 1732470000.0]


def test_a_million_lines_stream_in_constant_memory(tmp_path):
    path = tmp_path / "big.jsonl"
    block = b"".join(b'{"model":"m","features":{"x":%d}}\n' % i for i in range(10_000))
    with open(path, "wb") as out:
        for _ in range(100):
            out.write(block)
    assert path.stat().st_size > 30_000_000
    reader = LogReader(path)
    count = total = 0
    peak = None
    try:
        for row in reader:
            count += 1
            total += row.event["features"]["x"]
            # Trace the second half only (tracing costs ~5x): a reader that kept rows would grow
            # by hundreds of MiB over those 500,000 rows, one that streams by nothing.
            if count == 500_000:
                tracemalloc.start()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 1_000_000 and total == 100 * sum(range(10_000))
    assert reader.summary.rows == 1_000_000 and reader.summary.bad_rows == 0
    assert peak < 4 * 1024 * 1024, peak
