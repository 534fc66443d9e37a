"""Streaming readers for historical feature-event logs (JSONL, CSV, Parquet; gzip ok).

Offline replay and backtests read logs of any size through :class:`LogReader`: one
:class:`LogRow` per line or table row, in constant memory, with bad rows kept (and counted in a
:class:`ReadSummary`) instead of dropped, so the replay can route them like the processor routes
rejected events.
"""

from __future__ import annotations

import csv
import glob
import io
import operator
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import orjson

# Re-exported: a log's event times follow the same contract as a Kafka event's (one parser).
from .events import parse_ts

# Suffixes (after an optional ".gz") that a directory listing picks up, and the format they mean.
SUPPORTED_SUFFIXES: dict[str, str] = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".csv": "csv", ".tsv": "csv",
    ".parquet": "parquet", ".pq": "parquet",
}
MAX_BAD_EXAMPLES = 20
# A line this long is a broken log (or a binary file), not an event; reading it whole would break
# the constant-memory promise, so the reader keeps a prefix and skips the rest.
DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024

_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
_READ_BUFFER = 1 << 20
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


class LogFormatError(ValueError):
    """A log that cannot be read at all: no such file, an unusable header or column mapping."""


class LogRow(NamedTuple):
    """One line (JSONL) or table row (CSV, Parquet) of a log.

    ``line`` is 1-based: the physical line where the row starts for JSONL and CSV (the CSV header
    is line 1), the data-row number for Parquet. ``raw`` is the line's bytes for JSONL and the
    JSON encoding of ``event`` for tables. Exactly one of ``event`` and ``error`` is set, except
    for a JSONL line from a reader told not to parse them (``LogReader(parse_jsonl=False)``):
    then neither is, and the line is the caller's to parse (``jsonl_problem`` says what the
    reader would have said of a line that is not an event).
    """

    source: str
    line: int
    raw: bytes
    event: dict[str, Any] | None
    error: str | None


@dataclass
class ReadSummary:
    """What a :class:`LogReader` has read so far: all rows (good and bad), bad rows, examples."""

    rows: int = 0
    bad_rows: int = 0
    files: int = 0
    bad_examples: list[tuple[str, int, str]] = field(default_factory=list)

    @property
    def good_rows(self) -> int:
        """Rows that carried an event."""
        return self.rows - self.bad_rows

    def _record_bad(self, row: LogRow) -> None:
        self.record_bad(row.source, row.line, row.error or "")

    def record_bad(self, source: str, line: int, error: str) -> None:
        """Count a bad row: one the reader found, or a JSONL line it left unparsed that the caller
        found is not an event (``jsonl_problem``)."""
        self.bad_rows += 1
        if len(self.bad_examples) < MAX_BAD_EXAMPLES:
            self.bad_examples.append((source, line, error))


@dataclass(frozen=True)
class ColumnMapping:
    """How the columns of a CSV or Parquet log become a feature event.

    Each of ``model``, ``id``, ``ts``, ``prediction``, ``label``, ``segment``, ``model_version`` and
    ``change_point`` names the column holding that field (``None``: the log has no such column); a
    named column that the file lacks is simply absent from the events. ``features`` lists the
    feature columns; by default every column not mapped to a field is a feature. ``model_name``
    gives every event that model (for logs of a single model without a model column).
    ``categorical`` lists feature columns whose values stay strings even when they look like
    numbers (zip codes, codes with leading zeros). JSONL lines are events already and are not
    mapped. ``change_point`` marks where a backtest's known drift starts (see ``backtest.py``).

    >>> ColumnMapping(model=None, model_name="churn-v1", features=("age", "plan")).model_name
    'churn-v1'
    """

    model: str | None = "model"
    id: str | None = "id"
    ts: str | None = "ts"
    prediction: str | None = "prediction"
    label: str | None = "label"
    segment: str | None = "segment"
    model_version: str | None = "model_version"
    change_point: str | None = "change_point"
    features: tuple[str, ...] | None = None
    model_name: str | None = None
    categorical: tuple[str, ...] = ()

    def _field_columns(self) -> dict[str, str]:
        """Event field -> column name, for the fields that this mapping takes from a column."""
        named = {"model": self.model, "id": self.id, "ts": self.ts, "prediction": self.prediction,
                 "label": self.label, "segment": self.segment, "model_version": self.model_version,
                 "change_point": self.change_point}
        return {name: column for name, column in named.items() if column}

    def _plan(self, columns: list[str], source: str) -> _TablePlan:
        """Check the mapping against a file's columns and fix which column goes where."""
        seen: set[str] = set()
        duplicates = sorted({c for c in columns if c in seen or seen.add(c)})
        if duplicates:
            raise LogFormatError(f"{source}: duplicate column names {duplicates}; rename them so "
                                 "each feature has one column")
        position = {name: i for i, name in enumerate(columns)}
        fields = {name: position[col] for name, col in self._field_columns().items() if col in position}
        if "model" not in fields and self.model_name is None:
            raise LogFormatError(
                f"{source}: no model column {self.model!r} (columns: {columns}); name it with "
                "ColumnMapping(model=...) or give ColumnMapping(model_name=...)")
        if self.features is None:
            taken = set(self._field_columns().values())
            features = [c for c in columns if c not in taken]
        else:
            missing = [c for c in self.features if c not in position]
            if missing:
                raise LogFormatError(f"{source}: feature columns {missing} not found (columns: {columns})")
            features = list(self.features)
        categorical = set(self.categorical)
        return _TablePlan(
            fields=fields,
            numeric=[(c, position[c]) for c in features if c not in categorical],
            text=[(c, position[c]) for c in features if c in categorical],
            model_name=self.model_name,
        )


@dataclass
class _TablePlan:
    """Column positions resolved for one table file."""

    fields: dict[str, int]
    numeric: list[tuple[str, int]]
    text: list[tuple[str, int]]
    model_name: str | None

    def __post_init__(self) -> None:
        # itemgetter + map keep the per-row work in C; this is the hot loop of a CSV replay.
        self.numeric_names = tuple(name for name, _ in self.numeric)
        self.numeric_cells = _cells_getter([i for _, i in self.numeric])


def _cells_getter(positions: list[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    if len(positions) == 1:
        only = positions[0]
        return lambda cells: (cells[only],)
    if not positions:
        return lambda cells: ()
    return operator.itemgetter(*positions)


def resolve_paths(spec: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The log files that ``spec`` names: a file, a directory (its supported files), or a glob.

    A directory contributes the files directly in it whose suffix (before an optional ``.gz``)
    is one of :data:`SUPPORTED_SUFFIXES`, sorted by name; a glob contributes every file it
    matches (``**`` recurses), sorted. A list of specs is resolved in order.

    >>> import pathlib, shutil, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("b.csv.gz", "a.jsonl", "notes.txt"):
    ...     _ = (folder / name).write_bytes(b"")
    >>> [p.name for p in resolve_paths(folder)]
    ['a.jsonl', 'b.csv.gz']
    >>> [p.name for p in resolve_paths(str(folder / "*.txt"))]
    ['notes.txt']
    >>> shutil.rmtree(folder)
    """
    if isinstance(spec, (str, os.PathLike)):
        specs: list[str | os.PathLike[str]] = [spec]
    else:
        specs = list(spec)
    paths: list[Path] = []
    for item in specs:
        path = Path(item)
        if path.is_dir():
            paths.extend(sorted(p for p in path.iterdir() if p.is_file() and _suffix_format(p)))
        elif path.is_file():
            paths.append(path)
        elif glob.has_magic(str(item)):
            matches = sorted(Path(p) for p in glob.glob(str(item), recursive=True))
            files = [p for p in matches if p.is_file()]
            if not files:
                raise LogFormatError(f"no files match {str(item)!r}")
            paths.extend(files)
        else:
            raise LogFormatError(f"no such file or directory: {str(item)!r}")
    return paths


def open_binary(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a log for buffered binary reading, decompressing gzip (found by its magic bytes).

    >>> import pathlib, gzip, shutil, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "log.data").write_bytes(gzip.compress(b"hello\\n"))
    >>> with open_binary(folder / "log.data") as stream:
    ...     stream.read()
    b'hello\\n'
    >>> shutil.rmtree(folder)
    """
    with open(path, "rb") as probe:
        compressed = probe.read(2) == _GZIP_MAGIC
    if compressed:
        return io.BufferedReader(_GzipReader(path), buffer_size=_READ_BUFFER)  # type: ignore[return-value]
    return open(path, "rb", buffering=_READ_BUFFER)


class _GzipReader(io.RawIOBase):
    """Gzip decompression that hands over every byte before a truncation, then raises EOFError.

    The standard ``gzip`` module drops the partly decompressed chunk when the file ends early, so
    the complete lines just before the cut of a log copied while it was written would be lost.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self._file = open(path, "rb")
        self._inflate = zlib.decompressobj(wbits=31)
        self._started = False  # the current member has received input
        self._input = b""
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            if not self._fill():
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        self._file.close()
        super().close()

    def _fill(self) -> bool:
        """Decompress the next piece into ``_pending``; False at a clean end of the file."""
        if self._inflate.eof:
            # Gzip files may hold several members back to back (cat a.gz b.gz).
            self._input = self._inflate.unused_data + self._input
            self._inflate = zlib.decompressobj(wbits=31)
            self._started = False
        if not self._input:
            self._input = self._file.read(_READ_BUFFER)
            if not self._input:
                if self._started:
                    raise EOFError("compressed file ended before the end of its data (truncated?)")
                return False
        if not self._started and not self._input.strip(b"\0"):
            self._input = b""  # zero padding after the last member, as gzip(1) allows
            return True
        self._started = True
        try:
            # A bounded output size keeps memory flat even for extremely compressible data.
            data = self._inflate.decompress(self._input, _READ_BUFFER)
        except zlib.error as exc:
            raise OSError(f"corrupt gzip data: {exc}") from exc
        self._input = self._inflate.unconsumed_tail
        self._pending = memoryview(data)
        return True


class LogReader:
    """Iterate over the rows of one or more logs in order, keeping a running :class:`ReadSummary`.

    ``paths`` is anything :func:`resolve_paths` takes; they are resolved at construction so a
    typo fails before a long replay starts. ``mapping`` turns CSV and Parquet rows into events.
    Bad rows come through with ``event=None`` and the reason; so does a compressed file that ends
    early (at the line where it stopped), after which the next file is read. Each iteration reads
    the logs again and starts a fresh summary.

    >>> import pathlib, shutil, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.jsonl").write_text(
    ...     '{"model": "m", "features": {"x": 1.5}}\\nnot json\\n[1, 2]\\n')
    >>> _ = (folder / "b.csv").write_text("model,x,country\\nm,2,DE\\nm,3\\n")
    >>> reader = LogReader(folder)
    >>> for row in reader:
    ...     print(row.source.rsplit("/", 1)[-1], row.line, row.event, row.error)
    a.jsonl 1 {'model': 'm', 'features': {'x': 1.5}} None
    a.jsonl 2 None invalid JSON: ...line 1 column 1 (char 0)
    a.jsonl 3 None expected a JSON object, found an array
    b.csv 2 {'model': 'm', 'features': {'x': 2, 'country': 'DE'}} None
    b.csv 3 None expected 3 columns as in the header, found 2
    >>> reader.summary.rows, reader.summary.bad_rows, reader.summary.files
    (5, 3, 2)
    >>> shutil.rmtree(folder)
    """

    def __init__(self, paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
                 mapping: ColumnMapping | None = None, *,
                 max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, batch_size: int = 65_536, parse_jsonl: bool = True):
        if max_line_bytes < 1:
            raise ValueError(f"max_line_bytes must be an integer >= 1, got {max_line_bytes!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.paths = resolve_paths(paths)
        self.mapping = mapping or ColumnMapping()
        self.max_line_bytes = max_line_bytes
        self.batch_size = batch_size
        #: ``False``: JSONL lines come unparsed (``LogRow``), for a caller that parses them anyway.
        self.parse_jsonl = parse_jsonl
        self.summary = ReadSummary()

    def __iter__(self) -> Iterator[LogRow]:
        return self._counted(runs=False)

    def runs(self) -> Iterator["LogRow | JsonlLines"]:
        """The rows ``__iter__`` gives, in order, except that a reader that leaves JSONL lines
        unparsed gives a JSONL file's good lines in runs (``JsonlLines``), split a few megabytes
        at a time in C: a ``LogRow`` per line, and a generator step per line, cost more than the
        pipeline spends on a line of a few features (offline replay). Blank lines are skipped
        and long lines refused as ``__iter__`` does; the summary counts the same.

        >>> import pathlib, shutil, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "a.jsonl").write_bytes(b'{"a": 1}\\n\\n{"b": 2}\\r\\n' + b"x" * 40 + b"\\n{}")
        >>> for run in LogReader(folder, max_line_bytes=32, parse_jsonl=False).runs():
        ...     print(type(run).__name__, run.lines if type(run) is JsonlLines else (run.line, run.error))
        JsonlLines [1, 3]
        LogRow (4, 'line longer than 32 bytes (first 1024 kept)')
        JsonlLines [5]
        >>> shutil.rmtree(folder)
        """
        return self._counted(runs=True)

    def _counted(self, runs: bool) -> Iterator["LogRow | JsonlLines"]:
        """The logs' rows (with ``runs``, JSONL lines in runs), counted in a fresh summary."""
        summary = self.summary = ReadSummary()
        for path in self.paths:
            summary.files += 1
            for row in self._read_file(path, runs):
                if type(row) is JsonlLines:
                    summary.rows += len(row.lines)
                    yield row
                    continue
                summary.rows += 1
                if row.error is not None:
                    summary._record_bad(row)
                yield row

    def _read_file(self, path: Path, runs: bool = False) -> Iterator[LogRow]:
        source = str(path)
        with open_binary(path) as stream:
            fmt = _suffix_format(path) or _sniff_format(stream.peek(64)[:64])
            if fmt == "jsonl" and runs and not self.parse_jsonl:
                yield from _jsonl_runs(stream, source, self.max_line_bytes)
            elif fmt == "jsonl":
                yield from _read_jsonl(stream, source, self.max_line_bytes, self.parse_jsonl)
            elif fmt == "csv":
                delimiter = "\t" if _strip_gz(path.name.lower()).endswith(".tsv") else ","
                yield from _read_csv(stream, source, self.mapping, delimiter)
            else:
                yield from _read_parquet(path, stream, source, self.mapping, self.batch_size)


# --- formats -----------------------------------------------------------------------------------

def _strip_gz(name: str) -> str:
    return name[:-3] if name.endswith(".gz") else name


def _suffix_format(path: Path) -> str | None:
    return SUPPORTED_SUFFIXES.get(Path(_strip_gz(path.name.lower())).suffix)


def _sniff_format(head: bytes) -> str:
    if head.startswith(_PARQUET_MAGIC):
        return "parquet"
    return "jsonl" if head.lstrip()[:1] in (b"{", b"[") else "csv"


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def jsonl_problem(raw: bytes) -> str | None:
    """What ``LogReader`` says of a JSONL line that is not an event (not JSON, or not an object),
    or ``None`` if it is one.

    >>> jsonl_problem(b"[1, 2]"), jsonl_problem(b'{"model": "m"}')
    ('expected a JSON object, found an array', None)
    """
    return _parsed_line(raw)[1]


def _parsed_line(raw: bytes) -> tuple[dict | None, str | None]:
    """A JSONL line's event, or why it is not one."""
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc}"
    if type(event) is not dict:
        return None, f"expected a JSON object, found {_json_type(event)}"
    return event, None


def _read_jsonl(stream: BinaryIO, source: str, max_line_bytes: int, parse: bool = True) -> Iterator[LogRow]:
    readline = stream.readline
    line_no = 0
    try:
        while True:
            line = readline(max_line_bytes)
            if not line:
                return
            line_no += 1
            if line[-1:] != b"\n" and len(line) == max_line_bytes:
                _skip_to_newline(stream)
                yield LogRow(source, line_no, line[:1024], None, _too_long(max_line_bytes))
                continue
            raw = line.rstrip(b"\r\n")
            if not raw or raw.isspace():
                continue  # a blank line holds no event, so there is nothing to reject
            if not parse:
                yield LogRow(source, line_no, raw, None, None)
                continue
            event, error = _parsed_line(raw)
            yield LogRow(source, line_no, raw, event, error)
    except (EOFError, OSError) as exc:
        yield LogRow(source, line_no + 1, b"", None, f"file unreadable from here on: {exc}")


class JsonlLines(NamedTuple):
    """A run of good lines of a JSONL file, unparsed (``LogReader.runs``): their 1-based line
    numbers and their bytes (without the line end)."""

    source: str
    lines: list[int]
    raws: list[bytes]


#: How much of a JSONL file ``LogReader.runs`` splits at a time.
_RUN_BYTES = 1 << 22


def _jsonl_runs(stream: BinaryIO, source: str, max_line_bytes: int) -> Iterator["LogRow | JsonlLines"]:
    """``_read_jsonl`` unparsed, its good lines in runs (``JsonlLines``), a long line or an
    unreadable end a ``LogRow`` in its place."""
    line_no = 0  # lines done
    carry = b""  # the start of a line whose end is not read yet
    # One read of the file (or one step of decompression) at a time: a corrupt or truncated
    # compressed file raises in a read, and what the reads before it gave is not lost.
    read = getattr(stream, "read1", stream.read)
    try:
        while True:
            block = read(_RUN_BYTES)
            data = carry + block if carry else block
            if block:
                parts = data.split(b"\n")
                carry = parts.pop()
            else:  # the end: a last line without a line end
                parts, carry = ([data] if data else []), b""
            if parts:
                yield from _lines_in_runs(parts, line_no, source, max_line_bytes)
                line_no += len(parts)
            if len(carry) >= max_line_bytes:  # too long already, its end not read yet
                line_no += 1
                yield LogRow(source, line_no, carry[:min(1024, max_line_bytes)], None, _too_long(max_line_bytes))
                carry = b""
                _skip_to_newline(stream)
            if not block:
                return
    except (EOFError, OSError) as exc:
        yield LogRow(source, line_no + 1, b"", None, f"file unreadable from here on: {exc}")


def _lines_in_runs(parts: list[bytes], done: int, source: str, max_line_bytes: int
                   ) -> Iterator["LogRow | JsonlLines"]:
    """Lines ``done + 1 ..`` (``parts``, without their ``\\n``) as runs of good lines, each
    long line a ``LogRow``; blank ones left out."""
    raws = list(map(bytes.rstrip, parts, repeat(b"\r\n")))
    if max(map(len, parts)) < max_line_bytes and min(map(len, raws)) and not any(map(bytes.isspace, raws)):
        yield JsonlLines(source, list(range(done + 1, done + 1 + len(raws))), raws)  # the usual chunk
        return
    lines: list[int] = []
    kept: list[bytes] = []
    for k, (part, raw) in enumerate(zip(parts, raws), start=done + 1):
        if len(part) >= max_line_bytes:
            if kept:
                yield JsonlLines(source, lines, kept)
                lines, kept = [], []
            yield LogRow(source, k, part[:min(1024, max_line_bytes)], None, _too_long(max_line_bytes))
        elif raw and not raw.isspace():
            lines.append(k)
            kept.append(raw)
    if kept:
        yield JsonlLines(source, lines, kept)


def _too_long(max_line_bytes: int) -> str:
    return f"line longer than {max_line_bytes} bytes (first 1024 kept)"


def _skip_to_newline(stream: BinaryIO) -> None:
    while True:
        chunk = stream.readline(_READ_BUFFER)
        if not chunk or chunk.endswith(b"\n"):
            return


def _cell_value(text: str) -> Any:
    """A CSV cell as the JSON value a producer would have sent: number, null or string."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    # float() also takes "nan", "inf" and "1_000"; none of them is a number in a log.
    if value - value != 0 or "_" in text:
        return text
    if value.is_integer() and text.isascii() and text.lstrip("+-").isdigit():
        number = int(text)
        # orjson cannot encode integers outside 64 bits.
        return number if _INT64_MIN <= number <= _UINT64_MAX else value
    return value


def _change_mark(value: Any) -> bool | list[str] | None:
    """A change-point cell: true for "all features", a list of feature names, or None."""
    if value is None or value is False or value == 0:
        return None
    if value is True or isinstance(value, (int, float)):
        return True
    if isinstance(value, (list, tuple)):
        return [str(name) for name in value] or None
    text = str(value).strip()
    if text.lower() in ("", "0", "false", "no"):
        return None
    if text.lower() in ("1", "true", "yes"):
        return True
    return [name for name in re.split(r"\s*[;,|]\s*", text) if name]


_TEXT_FIELDS = ("model", "id", "segment", "model_version")


def _build_event(plan: _TablePlan, cells: Sequence[Any], *, convert: bool) -> dict[str, Any]:
    """The event of one table row; optional fields whose cell is empty are left out."""
    if convert:
        features = dict(zip(plan.numeric_names, map(_cell_value, plan.numeric_cells(cells))))
        for name, i in plan.text:
            features[name] = cells[i] or None
    else:
        features = dict(zip(plan.numeric_names, plan.numeric_cells(cells)))
        for name, i in plan.text:
            value = cells[i]
            features[name] = None if value is None else str(value)
    event: dict[str, Any] = {}
    if plan.model_name is not None:
        event["model"] = plan.model_name
    for name, i in plan.fields.items():
        value = cells[i]
        if convert and value == "":
            continue
        if value is None or (name == "model" and plan.model_name is not None):
            continue
        if name in _TEXT_FIELDS:
            value = str(value)
        elif name == "change_point":
            value = _change_mark(value)
            if value is None:
                continue
        elif convert:
            value = _cell_value(value)
        event[name] = value
    event["features"] = features
    return event


def _read_csv(stream: BinaryIO, source: str, mapping: ColumnMapping, delimiter: str) -> Iterator[LogRow]:
    # Bad bytes become U+FFFD rather than ending the file: one corrupt cell should cost one value.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
    reader = csv.reader(text, delimiter=delimiter)
    dumps = orjson.dumps
    try:
        header = next(reader, None)
        if header is None:
            return
        plan = mapping._plan([c.strip() for c in header], source)
        width = len(header)
        line_end = reader.line_num
        while True:
            start = line_end + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                line_end = reader.line_num
                yield LogRow(source, start, b"", None, f"unreadable CSV row: {exc}")
                continue
            line_end = reader.line_num
            if not cells:
                continue  # a blank line holds no event
            if len(cells) != width:
                yield LogRow(source, start, delimiter.join(cells).encode(), None,
                             f"expected {width} columns as in the header, found {len(cells)}")
                continue
            event = _build_event(plan, cells, convert=True)
            yield LogRow(source, start, dumps(event), event, None)
    except (EOFError, OSError) as exc:
        yield LogRow(source, reader.line_num + 1, b"", None, f"file unreadable from here on: {exc}")
    finally:
        text.detach()  # the caller owns (and closes) the binary stream


def _read_parquet(path: Path, stream: BinaryIO, source: str, mapping: ColumnMapping,
                  batch_size: int) -> Iterator[LogRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(getattr(stream, "raw", None), io.FileIO):
        yield from _read_parquet_file(pa, pq, path, source, mapping, batch_size)
        return
    # Parquet needs random access; a gzip-wrapped file is unpacked to a temporary file once.
    with tempfile.TemporaryFile() as unpacked:
        shutil.copyfileobj(stream, unpacked, _READ_BUFFER)
        unpacked.seek(0)
        yield from _read_parquet_file(pa, pq, unpacked, source, mapping, batch_size)


def _read_parquet_file(pa: Any, pq: Any, where: Any, source: str, mapping: ColumnMapping,
                       batch_size: int) -> Iterator[LogRow]:
    try:
        parquet = pq.ParquetFile(where)
    except (pa.ArrowException, OSError) as exc:
        yield LogRow(source, 1, b"", None, f"not a readable Parquet file: {exc}")
        return
    columns = parquet.schema_arrow.names
    plan = mapping._plan(columns, source)
    # Read only the mapped columns, and index rows by their position among those.
    wanted = [columns[i] for i in sorted({i for _, i in plan.numeric} | {i for _, i in plan.text}
                                         | set(plan.fields.values()))]
    plan = mapping._plan(wanted, source)
    ts_position = plan.fields.get("ts")
    dumps = orjson.dumps
    row_no = 0
    batches = parquet.iter_batches(batch_size=batch_size, columns=wanted)
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as exc:
            yield LogRow(source, row_no + 1, b"", None, f"file unreadable from here on: {exc}")
            return
        if batch is None:
            return
        bad: dict[int, str] = {}
        values = [_arrow_to_python(pa, batch.column(i), name, i == ts_position, bad)
                  for i, name in enumerate(wanted)]
        for r, cells in enumerate(zip(*values)):
            row_no += 1
            if r in bad:
                yield LogRow(source, row_no, dumps(dict(zip(wanted, cells)), default=str), None, bad[r])
                continue
            event = _build_event(plan, cells, convert=False)
            yield LogRow(source, row_no, dumps(event), event, None)


def _arrow_to_python(pa: Any, column: Any, name: str, is_ts: bool, bad: dict[int, str]) -> list[Any]:
    """A Parquet column as JSON-ready Python values; rows JSON cannot carry go into ``bad``."""
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.dictionary_decode()
        kind = column.type
    if pa.types.is_floating(kind):
        # JSON has no NaN or infinity (orjson would write null); such rows are rejected, not changed.
        finite = pc.fill_null(pc.is_finite(column), True)
        if not pc.all(finite).as_py():
            for r in pc.indices_nonzero(pc.invert(finite)).to_pylist():
                bad.setdefault(r, f"column {name!r} holds NaN or infinity, which an event cannot carry")
    elif pa.types.is_timestamp(kind) and is_ts:
        per_second = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[kind.unit]
        column = pc.divide(pc.cast(column.cast(pa.timestamp(kind.unit)), pa.int64()).cast(pa.float64()),
                           per_second)
    elif pa.types.is_decimal(kind):
        column = column.cast(pa.float64())
    elif pa.types.is_temporal(kind):
        column = column.cast(pa.string())
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        try:
            column = column.cast(pa.string())
        except pa.ArrowInvalid:
            return [None if v is None else v.hex() for v in column.to_pylist()]
    return column.to_pylist()
