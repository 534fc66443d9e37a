"""``LogReader.runs``: a JSONL file's unparsed lines in runs, split a block at a time, must be the
rows ``LogReader`` gives one by one - the same line numbers, bytes, refusals (long lines), blank
lines left out, the same summary - whatever the block size, line ends, compression or truncation."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

import streamdrift.logs as logs
from streamdrift.logs import JsonlLines, LogReader


def flattened(reader: LogReader) -> list[tuple]:
    out = []
    for run in reader.runs():
        if type(run) is JsonlLines:
            out.extend((run.source, line, raw, None) for line, raw in zip(run.lines, run.raws))
        else:
            out.append((run.source, run.line, run.raw, run.error))
    return out


def one_by_one(reader: LogReader) -> list[tuple]:
    return [(row.source, row.line, row.raw, row.error) for row in reader]


def random_log(rng: np.random.Generator) -> bytes:
    lines = []
    for _ in range(int(rng.integers(0, 400))):
        kind = rng.random()
        if kind < 0.05:
            lines.append(b"")
        elif kind < 0.08:
            lines.append(b"  \t ")
        elif kind < 0.12:
            lines.append(b"x" * int(rng.integers(40, 300)))  # longer than the readers' limit
        else:
            lines.append(b'{"model": "m", "features": {"x": %d}}' % int(rng.integers(0, 99)))
    ends = [b"\r\n" if rng.random() < 0.2 else b"\n" for _ in lines]
    data = b"".join(line + end for line, end in zip(lines, ends))
    if lines and rng.random() < 0.5:
        data = data[:-len(ends[-1])]  # no line end after the last line
    return data


@pytest.mark.parametrize("seed", range(30))
def test_runs_are_the_rows_one_by_one(tmp_path, monkeypatch, seed):
    rng = np.random.default_rng(seed)
    monkeypatch.setattr(logs, "_RUN_BYTES", int(rng.choice([7, 64, 333, 1 << 22])))
    data = random_log(rng)
    path = tmp_path / ("log.jsonl.gz" if seed % 3 == 0 else "log.jsonl")
    path.write_bytes(gzip.compress(data) if seed % 3 == 0 else data)
    runs, rows = LogReader(path, max_line_bytes=40, parse_jsonl=False), LogReader(path, max_line_bytes=40,
                                                                                   parse_jsonl=False)
    assert flattened(runs) == one_by_one(rows)
    assert (runs.summary.rows, runs.summary.bad_rows, runs.summary.bad_examples) == \
        (rows.summary.rows, rows.summary.bad_rows, rows.summary.bad_examples)


def test_a_truncated_compressed_file_keeps_the_lines_before_its_end(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "_RUN_BYTES", 1 << 22)
    lines = [b'{"model": "m", "features": {"x": %d}}' % i for i in range(30_000)]
    packed = gzip.compress(b"\n".join(lines) + b"\n")
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(packed[:len(packed) * 2 // 3])
    got = flattened(LogReader(path, parse_jsonl=False))
    assert got[-1][3].startswith("file unreadable from here on")
    assert len(got) > 10_000 and [raw for _, _, raw, _ in got[:-1]] == lines[:len(got) - 1]
