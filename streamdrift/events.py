"""Feature events at the boundary: decode one message, validate it, or say why it is rejected.

Everything a producer can get wrong ends here as a ``Rejected`` with a reason a person can act
on; nothing raises. The event format is DESIGN.md's: ``model`` and ``features`` required;
``ts``, ``id``, ``segment``, ``prediction``, ``label`` optional.

``model_version`` (optional) names the model version that made the prediction.

``decode`` checks an event's envelope; the values of its features are checked a column at a
time by the pipeline (``value_problem`` names what is wrong with one), which keeps the per-event
cost of the hot path to one ``orjson.loads`` and a few type checks.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import chain, count, repeat
from operator import attrgetter, countOf, itemgetter

import numpy as np
import orjson

from .config import Limits


# Records and events are made once per message on the hot path and never changed; they are not
# frozen because a frozen dataclass's __init__ costs about three times as much.
@dataclass(slots=True)
class Record:
    """One input message and where it came from (offline replay: topic = file, offset = line)."""

    #: ``None`` for a Kafka tombstone (rejected: not a JSON object).
    value: bytes | None
    key: bytes | None = None
    topic: str = ""
    partition: int = 0
    offset: int = 0
    timestamp_ms: int | None = None
    #: The message already parsed as JSON, when the reader had to parse it anyway (replay of a
    #: log): ``decode`` then skips parsing it again.
    data: object = None


@dataclass(slots=True)
class Event:
    """A valid feature event."""

    model: str
    segment: str | None
    ts: float | None
    id: str | None
    features: dict
    prediction: object
    label: object
    record: Record
    #: Whether ``ts`` came from the event itself (not the Kafka message timestamp).
    ts_given: bool = True
    #: The model version that made the prediction (``model_version``), or ``None``.
    version: str | None = None


@dataclass(frozen=True, slots=True)
class LabelEvent:
    """A label that arrives after its prediction (topic ``labels``): ``{"model", "id", "label"}``."""

    model: str
    id: str
    label: object
    ts: float | None
    record: Record
    #: The version whose prediction this label is for (``model_version``); ``None``: every
    #: version's prediction of this ``id`` (shadow deployments).
    version: str | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    record: Record
    reason: str


def parse_ts(value) -> float | None:
    """An event's ``ts`` as epoch seconds, or ``None`` if it is not a time (DESIGN.md: epoch
    seconds or ISO-8601). The one parser of event times: decoding and log readers share it.

    A number is epoch seconds (finite; not a boolean). A string is ISO-8601 (``Z`` or an offset;
    naive = UTC), never a number in text: ``"1732470000"`` is no time and ``"20241124"`` is the
    basic-format date. A ``datetime`` (a log's timestamp column) is read the same way.

    >>> parse_ts(1732470000.25), parse_ts("2024-11-24T17:40:00Z"), parse_ts("2024-11-24 18:40:00+01:00")
    (1732470000.25, 1732470000.0, 1732470000.0)
    >>> parse_ts("1732470000"), parse_ts("yesterday"), parse_ts(True), parse_ts(float("nan")), parse_ts(10**400)
    (None, None, None, None, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):  # int, float and numpy's numbers alike
        try:
            seconds = float(value)
        except OverflowError:
            return None
        return seconds if math.isfinite(seconds) else None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def value_problem(name: str, value, limits: Limits) -> str | None:
    """Why one feature (or prediction, label) value cannot be monitored, or ``None``.

    >>> value_problem("feature 'x'", {"a": 1}, Limits())
    "feature 'x' is an object; values must be a number, string, boolean or null"
    """
    if value is None or isinstance(value, (bool, int, float)):
        return None
    if isinstance(value, str):
        if len(value) > limits.max_string_length:
            return f"{name} is a string of {len(value)} characters (limits.max_string_length = {limits.max_string_length})"
        return None
    kind = "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__
    return f"{name} is {kind}; values must be a number, string, boolean or null"


def model_problem(model, limits: Limits) -> str | None:
    """Why ``model`` cannot name a model, or ``None``.

    >>> model_problem("fraud-v3", Limits()), model_problem("", Limits())
    (None, 'missing or empty "model" (a non-empty string is required)')
    """
    if type(model) is not str or not model:
        return "missing or empty \"model\" (a non-empty string is required)"
    if len(model) > limits.max_string_length:
        return f"model name longer than limits.max_string_length = {limits.max_string_length}"
    if SEPARATOR in model:
        return "model name contains the control character U+001F"
    return None


def decode(record: Record, limits: Limits) -> Event | LabelEvent | Rejected:
    """Validate one message: a feature event, or a late label (no ``features``, an ``id`` and a
    ``label``).

    >>> decode(Record(b'{"model": "m", "features": [1]}'), Limits()).reason
    '"features" must be an object, got list'
    >>> decode(Record(b'{"model": "m", "features": {"x": 1.5}}'), Limits()).features
    {'x': 1.5}
    """
    raw = record.value
    if raw is None:
        return Rejected(record, "empty message (no value)")
    if len(raw) > limits.max_message_bytes:
        return Rejected(record, f"message of {len(raw)} bytes exceeds limits.max_message_bytes = {limits.max_message_bytes}")
    data = record.data
    if data is None:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return Rejected(record, f"not valid JSON (NaN and Infinity are not JSON either): {exc}")
    # The hot path: exact type checks (orjson only ever makes these types), few lookups.
    if type(data) is not dict:
        return Rejected(record, f"event must be a JSON object, got {type(data).__name__}")
    get = data.get
    model = get("model")
    problem = model_problem(model, limits)
    if problem:
        return Rejected(record, problem)
    features = get("features")
    if type(features) is not dict:
        if features is None and "label" in data and "id" in data:
            return _label_event(data, model, record, limits)
        return Rejected(record, "missing \"features\" object" if features is None else
                        f"\"features\" must be an object, got {type(features).__name__}")
    if len(features) > limits.max_features:
        return Rejected(record, f"{len(features)} features exceed limits.max_features = {limits.max_features}")
    prediction, label = get("prediction"), get("label")
    for key, value in (("prediction", prediction), ("label", label)):
        if value is not None and (type(value) not in _SCALARS or type(value) is str):
            problem = value_problem(key, value, limits)
            if problem:
                return Rejected(record, problem)
    segment = get("segment")
    if segment is not None and (type(segment) is not str or len(segment) > limits.max_string_length
                                or SEPARATOR in segment):
        return Rejected(record, "\"segment\" must be a string (up to limits.max_string_length characters, "
                                "without the control character U+001F)")
    version = get("model_version")
    if version is not None:
        problem = version_problem(version, limits)
        if problem:
            return Rejected(record, problem)
    event_id = get("id")
    if event_id is not None:
        if type(event_id) is int:
            event_id = str(event_id)
        elif type(event_id) is not str:
            return Rejected(record, "\"id\" must be a string or an integer")
    ts = get("ts")
    if ts is not None:
        if type(ts) is float or type(ts) is int:
            ts = float(ts)
        else:
            parsed = parse_ts(ts)
            if parsed is None:
                return Rejected(record, f"\"ts\" must be epoch seconds or an ISO-8601 time, got {ts!r}")
            ts = parsed
        given = True
    else:
        given = False
        if record.timestamp_ms is not None:
            ts = record.timestamp_ms / 1000.0
    return Event(model, segment, ts, event_id, features, prediction, label, record, given, version)


def version_problem(version, limits: Limits) -> str | None:
    """Why ``version`` cannot name a model version, or ``None``.

    >>> version_problem("v2", Limits()), version_problem(2, Limits())
    (None, '"model_version" must be a non-empty string (up to limits.max_string_length characters, without the control character U+001F), got int')
    """
    if type(version) is str and version and len(version) <= limits.max_string_length and SEPARATOR not in version:
        return None
    got = f"a string of {len(version)} characters" if type(version) is str else type(version).__name__
    return ("\"model_version\" must be a non-empty string (up to limits.max_string_length characters, "
            f"without the control character U+001F), got {got}")


#: Separates the parts of state-topic keys; names may not contain it.
SEPARATOR = "\x1f"

#: Value types that need no further check (strings are checked for length).
_SCALARS = frozenset((int, float, bool, str))


def _label_event(data: dict, model: str, record: Record, limits: Limits) -> LabelEvent | Rejected:
    event_id, label = data["id"], data["label"]
    if isinstance(event_id, bool) or not isinstance(event_id, (str, int)):
        return Rejected(record, "a late label's \"id\" must be a string or an integer")
    problem = value_problem("label", label, limits)
    if problem or label is None:
        return Rejected(record, problem or "a late label's \"label\" must not be null")
    version = data.get("model_version")
    if version is not None:
        problem = version_problem(version, limits)
        if problem:
            return Rejected(record, problem)
    ts = parse_ts(data["ts"]) if data.get("ts") is not None else None
    if ts is None and record.timestamp_ms is not None:
        ts = record.timestamp_ms / 1000.0
    return LabelEvent(model=model, id=str(event_id), label=label, ts=ts, record=record, version=version)


#: The keys of a plain feature event, what most producers send: ``id`` is optional.
PLAIN_KEYS = frozenset(("model", "features", "ts", "id"))
_PLAIN_REQUIRED = frozenset(("model", "features", "ts"))
#: Value types of a numeric feature.
NUMBERS = frozenset((int, float))
#: Messages parsed and checked at a time: a chunk's objects are still in the CPU cache when their
#: values are copied out and when they are freed. Over a whole batch at once (tens of MB of
#: objects) every pass waits on memory: about twice the cost.
CHUNK = 256


@dataclass(slots=True)
class PlainBatch:
    """A batch of plain feature events, parsed: per event its model (a code: an index into
    ``names``, the models in order of first appearance) and ``ts`` (as ``decode`` makes it), and
    the values of the features that every event has (in the first event's order)."""

    names: list[str]
    codes: np.ndarray
    ts: list[float]
    features: tuple[str, ...]
    #: events x features; a null is NaN, and so is every value of a categorical feature.
    values: np.ndarray
    #: The categorical features (strings or booleans, and nulls): their values, event by event.
    categories: dict[str, list] = field(default_factory=dict)
    #: The features that had a number in the batch (the others had strings or only nulls).
    numeric: set[str] = field(default_factory=set)
    #: The messages ``plain_scan.scan`` left unread (``None``: none): their rows hold no event
    #: (NaN values, code 0). Those ``decode`` rejects are in ``rejected``; the others, valid but
    #: not plain (a label, another feature set...), in ``others``: the batch is plain only between
    #: them (``plain_pieces``).
    unread: np.ndarray | None = None
    rejected: list = field(default_factory=list)
    others: list[int] = field(default_factory=list)
    #: ``ts`` as an array, when the reader had one (``plain_scan.scan``); ``ts_values`` gives it.
    ts_array: np.ndarray | None = None

    def ts_values(self) -> np.ndarray:
        """``ts`` as a float64 array (the scanner's own, or made from the list)."""
        return self.ts_array if self.ts_array is not None else np.array(self.ts, dtype=np.float64)

    @property
    def models(self) -> list[str]:
        """Each event's model."""
        return np.array(self.names, object)[self.codes].tolist()

    def take(self, rows: np.ndarray, first: dict) -> "PlainBatch":
        """The events at ``rows`` (in order, none unread) as a batch of their own: what
        ``plain_batch`` gives for their messages alone, whose first is ``first`` (parsed: the
        features are in its order).

        >>> batch = plain_batch([Record(b'{"model": "m", "ts": 1, "features": {"x": 1, "c": "DE"}}'),
        ...                      Record(b'{"model": "n", "ts": 2, "features": {"c": null, "x": 2}}')], Limits())
        >>> part = batch.take(np.array([1]), {"features": {"c": None, "x": 2}})
        >>> part.names, part.features, part.values.tolist(), part.categories, part.numeric
        (['n'], ('c', 'x'), [[nan, 2.0]], {}, {'x'})
        """
        codes = self.codes[rows]
        present, at = np.unique(codes, return_index=True)
        order = present[np.argsort(at, kind="stable")]
        recode = np.zeros(len(self.names), np.intp)
        recode[order] = np.arange(len(order))
        features = tuple(first["features"])
        values = self.values[rows]
        if features != self.features:
            index = {name: j for j, name in enumerate(self.features)}
            values = values[:, [index[name] for name in features]]
        picked = rows.tolist()
        categories = {}
        for name in features:
            column = self.categories.get(name)
            if column is not None:
                part = list(map(column.__getitem__, picked))
                if part.count(None) != len(part):
                    categories[name] = part
        numeric = {name for j, name in enumerate(features) if name in self.numeric and not np.isnan(values[:, j]).all()}
        return PlainBatch([self.names[k] for k in order.tolist()], recode[codes],
                          list(map(self.ts.__getitem__, picked)), features, values, categories, numeric)


def plain_batch(records: list[Record], limits: Limits, others: bool = False,
                refuse: Callable[[list, tuple[float, float] | None], list[Rejected | None]] | None = None
                ) -> PlainBatch | None:
    """The batch parsed, when every message is a plain feature event, the common case: a JSON
    object with just ``model``, ``features``, a number ``ts`` and optionally a string ``id``,
    which ``decode`` accepts as it is, and the same features as every other event (in any
    order), each feature's values numbers and nulls, or strings, booleans (within
    ``limits.max_string_length``) and nulls. ``None`` as soon as one message is not like that:
    the caller then decodes each message, and ``decode`` alone says what is wrong.

    Most batches are read by ``plain_scan.scan``, straight from their bytes. What it does not
    read (an escape in a string, a message read already...) is parsed here: each check is then one
    pass over a chunk in C (``map``, ``set``), as at this rate a Python call per event costs
    more than parsing it. Both give the same batch. The scanner also reads around the messages
    it does not read (``_scanned``): the batch then leaves out those ``decode`` rejects
    (``unread``, ``rejected``), and, with ``others``, the valid ones too (``PlainBatch.others``:
    then it is plain only between them, for ``plain_pieces``). ``refuse(events, span)``: the
    caller's rejection (or ``None``) of each valid message that is not plain (``events``,
    decoded), if it would refuse it whole whatever comes before it in the batch (``span``: the
    earliest and latest time of the plain messages); a refused message is left out like one
    ``decode`` rejects.

    >>> batch = plain_batch([Record(b'{"model": "m", "ts": 5, "features": {"x": 1.5, "y": null}}')], Limits())
    >>> batch.models, batch.ts, batch.features, batch.values.tolist()
    (['m'], [5.0], ('x', 'y'), [[1.5, nan]])
    >>> plain_batch([Record(b'{"model": "m", "ts": 5, "features": {"x": 1}, "label": 1}')], Limits()) is None
    True
    >>> batch = plain_batch([Record(b'{"model": "m", "ts": 5, "features": {"x": 2.5, "c": "DE"}}'),
    ...                      Record(b'{"model": "m", "ts": 6, "features": {"x": 1.0, "c": null}}')], Limits())
    >>> batch.values.tolist(), batch.categories, sorted(batch.numeric)
    ([[2.5, nan], [1.0, nan]], {'c': ['DE', None]}, ['x'])
    """
    if not records:
        return None
    values = list(map(_VALUE_OF, records))
    if set(map(type, values)) != {bytes}:
        return None  # decode names the empty message
    sizes = np.fromiter(map(len, values), np.int64, len(values))  # (the scanner's too: one pass)
    if sizes.max() > limits.max_message_bytes:
        return None  # decode names the oversized message
    unparsed = countOf(map(_DATA_OF, records), None)
    parsed = unparsed == 0  # a reader parsed them already (replay of a log)
    if not parsed and unparsed != len(records):
        return None
    given = list(map(_DATA_OF, records)) if parsed else None
    if not parsed:
        scanned = _scanned(records, values, limits, refuse, sizes)
        if scanned is not None and (others or not scanned.others):
            return scanned
    batch = PlainBatch([], np.empty(0, np.intp), [], (), np.empty((len(records), 0)))
    models: list[str] = []
    valid_models: set[str] = set()
    for start in range(0, len(records), CHUNK):
        if parsed:
            data = given[start:start + CHUNK]
        else:
            try:
                data = list(map(orjson.loads, values[start:start + CHUNK]))
            except orjson.JSONDecodeError:
                return None
        if not _add_plain_chunk(batch, data, start, limits, models, valid_models):
            return None
        del data  # now, so that the next chunk's objects take the memory these leave, still cached
    batch.names = list(dict.fromkeys(models))
    code = dict(zip(batch.names, count()))
    batch.codes = np.fromiter(map(code.__getitem__, models), np.intp, len(models))
    return batch


def _scanned(records: list[Record], values: list[bytes], limits: Limits, refuse=None,
             sizes: np.ndarray | None = None) -> PlainBatch | None:
    """The batch as ``plain_scan.scan`` reads it, with the limits ``plain_batch`` checks; ``None``
    if it does not read it (or a model's name is not valid: ``decode`` says why).

    A message it leaves unread that ``decode`` rejects (a malformed event now and then) is left
    out of the batch, its rejection kept: nothing else follows from it. Any other unread message
    (valid, but not plain: a label, another feature set...) is one of the batch's ``others``.

    >>> good = b'{"model": "m", "ts": 5, "features": {"x": 1.5}}'
    >>> batch = plain_batch([Record(good), Record(b'{"model": "m"}'), Record(good)], Limits())
    >>> batch.unread.tolist(), [r.reason for r in batch.rejected], batch.values[[0, 2]].tolist()
    ([1], ['missing "features" object'], [[1.5], [1.5]])
    """
    from . import plain_scan  # numba's import and the compiled scanner: only where it is used

    scanned = plain_scan.scan(values, skip_unread=True, sizes=sizes)
    if scanned is None or len(scanned.features) > limits.max_features \
            or scanned.longest_string > limits.max_string_length \
            or any(map(model_problem, scanned.names, repeat(limits))):
        return None
    decoded = [decode(records[k], limits) for k in scanned.unread]
    valid = [result for result in decoded if type(result) is not Rejected]
    if refuse is not None and valid:  # the caller's rejections of valid events, with the batch's times
        ts = scanned.ts_array
        span = (float(np.nanmin(ts)), float(np.nanmax(ts))) if (ts == ts).any() else None
        refused = iter(refuse(valid, span))
        decoded = [result if type(result) is Rejected else next(refused) or result for result in decoded]
    rejected, others = [], []
    for k, result in zip(scanned.unread, decoded):
        if type(result) is Rejected:
            rejected.append(result)
        else:
            others.append(k)
    return PlainBatch(scanned.names, scanned.codes, scanned.ts, scanned.features, scanned.values,
                      scanned.categories, scanned.numeric,
                      np.array(scanned.unread, np.intp) if scanned.unread else None, rejected, others,
                      scanned.ts_array)


def _plain_envelopes(data: list) -> tuple[list, list, list, set] | None:
    """The models, features, times and time types of a chunk of parsed messages whose every
    envelope is plain (an object of just ``model`` (a string), ``features`` (an object), a number
    ``ts`` and optionally ``id`` (a string or null)); ``None`` otherwise. Feature values are the
    caller's to check."""
    if set(map(type, data)) != {dict}:
        return None
    try:
        models, features, ts = (list(map(key, data)) for key in (_MODEL_OF, _FEATURES_OF, _TS_OF))
    except KeyError:
        return None
    # Each object has the required keys: one more key can only be ``id``, two more is not plain.
    sizes = list(map(len, data))
    with_id = sizes.count(len(PLAIN_KEYS))
    if with_id + sizes.count(len(_PLAIN_REQUIRED)) != len(data):
        return None
    if with_id and (list(map(dict.__contains__, data, repeat("id"))).count(True) != with_id
                    or not set(map(type, map(dict.get, data, repeat("id")))) <= _ID_TYPES):
        return None  # an integer id is valid too, but decode turns it into a string
    ts_types = set(map(type, ts))
    if set(map(type, models)) != {str} or not ts_types <= NUMBERS or set(map(type, features)) != {dict}:
        return None  # (a ts that is not a number: an ISO-8601 time, or not a time at all)
    return models, features, ts, ts_types


def _add_plain_chunk(batch: PlainBatch, data: list, start: int, limits: Limits, all_models: list[str],
                     valid_models: set[str]) -> bool:
    """Add the events of a chunk of parsed messages to ``batch`` (at ``start``) and their models to
    ``all_models``, if all plain."""
    envelopes = _plain_envelopes(data)
    if envelopes is None:
        return False
    models, features, ts, ts_types = envelopes
    new_models = set(models) - valid_models
    if any(map(model_problem, new_models, repeat(limits))):
        return False
    valid_models |= new_models
    if start == 0:
        batch.features = tuple(features[0])
        batch.values = np.empty((batch.values.shape[0], len(batch.features)))
    names = batch.features
    if not names or len(names) > limits.max_features or set(map(len, features)) != {len(names)}:
        return False
    # Same size and every name found: the same features (in any order; taken in batch order).
    values_of = itemgetter(*names)
    try:
        flat = list(map(values_of, features) if len(names) == 1 else chain.from_iterable(map(values_of, features)))
    except KeyError:
        return False
    kinds = list(map(type, flat))
    # Usually all floats: counting them (compared by identity) costs less than a set of types.
    if kinds.count(float) == len(kinds) or set(kinds) <= _NUMBERS_OR_NULL:
        batch.values[start:start + len(data)] = np.fromiter(flat, np.float64, len(flat)).reshape(len(data), len(names))
        batch.numeric.update(name for name, kind in zip(names, _column_kinds(kinds, len(names))) if kind)
        for name, column in batch.categories.items():
            column += repeat(None, len(data)) if name not in batch.numeric else ()
    elif not _add_mixed_chunk(batch, flat, kinds, start, len(data), limits):
        return False
    if batch.numeric & batch.categories.keys():
        return False  # a feature with numbers and strings: check_column names the odd values
    all_models += models
    batch.ts += map(float, ts) if int in ts_types else ts
    return True


#: Plain stretches shorter than this are not worth a batch of their own (``plain_pieces``).
MIN_PLAIN_PIECE = 256
#: A stretch of a batch (``plain_pieces``): its messages, and its plain batch if read already.
Piece = tuple[list[Record], PlainBatch | None]


def plain_pieces(records: list[Record], limits: Limits,
                 batch: PlainBatch | None = None) -> tuple[list[Rejected], list[Piece]] | None:
    """A batch that is not plain as a whole (``plain_batch``), made into stretches that may be:
    the messages ``decode`` rejects are taken out (nothing but their rejection follows from them),
    and what remains is cut at each message that is valid but not plain (a label, a prediction,
    a segment...) into runs of plain messages and the messages between them, runs shorter than
    ``MIN_PLAIN_PIECE`` going with those. Returns the rejections and the stretches in order, or
    ``None`` when that leaves no long plain run, or nothing to take out or cut (then what keeps
    the batch off the plain path is between messages: a feature set or type that changes).

    ``batch``: what ``plain_batch`` read of them, with ``others``. Its unread messages are the
    ones to take out or cut at, and each long plain run comes with its part of it
    (``PlainBatch.take``), so nothing is read twice. Without it, each message is looked at
    (``looks_plain``) and each piece's batch is left to the caller (``None``).

    Processing the stretches one after another gives what the whole batch gives: the pipeline's
    results never depend on how a stream is cut into batches.

    >>> ok, bad = Record(b'{"model": "m", "ts": 1, "features": {"x": 1.0}}'), Record(b'{"model": "m"}')
    >>> other = Record(b'{"model": "m", "ts": 1, "features": {"x": 1.0}, "label": 1}')
    >>> records = [ok] * 300 + [bad] + [ok] * 10 + [other] + [ok] * 400
    >>> rejected, pieces = plain_pieces(records, Limits())
    >>> [r.reason for r in rejected], [(len(piece), part) for piece, part in pieces]
    (['missing "features" object'], [(310, None), (1, None), (400, None)])
    >>> rejected, pieces = plain_pieces(records, Limits(), plain_batch(records, Limits(), others=True))
    >>> [r.reason for r in rejected], [(len(piece), part and len(part.ts)) for piece, part in pieces]
    (['missing "features" object'], [(310, 310), (1, None), (400, 400)])
    """
    if batch is not None and batch.unread is not None:
        return _scanned_pieces(records, batch)
    if not any(looks_plain(record, limits) for record in records[:64]):
        return None  # a batch that starts with no plain message is rarely plain further on
    flags = []
    for start in range(0, len(records), CHUNK):
        chunk = records[start:start + CHUNK]
        flags += repeat(True, len(chunk)) if _chunk_looks_plain(chunk, limits) else _plain_flags(chunk, limits)
    if all(flags) or flags.count(True) < MIN_PLAIN_PIECE:
        return None
    rejected, kept, plain = [], [], []
    for record, flag in zip(records, flags):
        if not flag:
            result = decode(record, limits)
            if type(result) is Rejected:
                rejected.append(result)
                continue
        kept.append(record)
        plain.append(flag)
    # Runs of plain messages (kept), long ones on their own, the rest merged between them.
    pieces, start, run_start = [], 0, None
    for i, flag in enumerate(plain + [False]):
        if flag:
            if run_start is None:
                run_start = i
            continue
        if run_start is not None and i - run_start >= MIN_PLAIN_PIECE:
            if run_start > start:
                pieces.append((kept[start:run_start], None))
            pieces.append((kept[run_start:i], None))
            start = i
        run_start = None
    if start < len(kept):
        pieces.append((kept[start:], None))
    return (rejected, pieces) if rejected or len(pieces) > 1 else None


def _scanned_pieces(records: list[Record], batch: PlainBatch) -> tuple[list[Rejected], list[Piece]] | None:
    """``plain_pieces`` of a batch the scanner read around some messages: the plain runs are the
    stretches between its ``others`` (less the rejected messages), each with its part of
    ``batch``; a stretch shorter than ``MIN_PLAIN_PIECE`` goes with the others around it."""
    n = len(records)
    kept = np.ones(n, bool)
    kept[batch.unread] = False  # the others too: each is a stretch's bound
    if int(kept.sum()) < MIN_PLAIN_PIECE:
        return None
    pieces: list[Piece] = []
    between: list[int] = []  # the messages gathered between two long runs
    bounds = [-1, *batch.others, n]
    for a, b in zip(bounds, bounds[1:]):
        rows = np.flatnonzero(kept[a + 1:b]) + (a + 1)
        if len(rows) >= MIN_PLAIN_PIECE:
            if between:
                pieces.append((list(map(records.__getitem__, between)), None))
                between = []
            first = orjson.loads(records[rows[0]].value)  # its features' order is the piece's
            pieces.append((list(map(records.__getitem__, rows.tolist())), batch.take(rows, first)))
        else:
            between.extend(rows.tolist())
        if b < n:
            between.append(b)
    if between:
        pieces.append((list(map(records.__getitem__, between)), None))
    return (batch.rejected, pieces) if batch.rejected or len(pieces) > 1 else None


def _chunk_looks_plain(chunk: list[Record], limits: Limits) -> bool:
    """Whether every message of a chunk ``looks_plain``, in passes over the chunk in C (most
    chunks of a batch that is not plain as a whole are plain: one odd message spoils a batch)."""
    values = list(map(_VALUE_OF, chunk))
    if set(map(type, values)) != {bytes} or max(map(len, values)) > limits.max_message_bytes:
        return False
    data = list(map(_DATA_OF, chunk))
    if None in data:
        try:
            data = list(map(orjson.loads, values))
        except orjson.JSONDecodeError:
            return False
    envelopes = _plain_envelopes(data)
    return envelopes is not None and \
        set(map(type, chain.from_iterable(map(dict.values, envelopes[1])))) <= _PLAIN_VALUE_TYPES


def _plain_flags(records: list[Record], limits: Limits) -> list[bool]:
    """``[looks_plain(record, limits) for record in records]``: ``_chunk_looks_plain``'s checks
    message by message, without a chunk's passes for each (a tenth of the time: in a log with a
    malformed line every few hundred, half the chunks of a batch need it)."""
    limit = limits.max_message_bytes
    flags = []
    for record in records:
        value, data = record.value, record.data
        if type(value) is not bytes or len(value) > limit:
            flags.append(False)
            continue
        if data is None:
            try:
                data = orjson.loads(value)
            except orjson.JSONDecodeError:
                flags.append(False)
                continue
        flags.append(_looks_plain_data(data))
    return flags


def _looks_plain_data(data) -> bool:
    """``_plain_envelopes`` and the value types of ``_chunk_looks_plain`` for one parsed message."""
    if type(data) is not dict or not (len(data) == 3 or (len(data) == 4 and type(data.get("id", 0)) in _ID_TYPES)):
        return False
    model, features, ts = data.get("model"), data.get("features"), data.get("ts", "")
    return (type(model) is str and type(ts) in NUMBERS and type(features) is dict
            and set(map(type, features.values())) <= _PLAIN_VALUE_TYPES)


def looks_plain(record: Record, limits: Limits) -> bool:
    """Whether one message has the shape of a plain feature event (``plain_batch``'s checks that
    concern it alone).

    >>> looks_plain(Record(b'{"model": "m", "ts": 1, "features": {"x": 1.0, "c": "DE"}}'), Limits())
    True
    >>> looks_plain(Record(b'{"model": "m", "ts": 1, "features": {"x": [1]}}'), Limits())
    False
    """
    return _plain_flags([record], limits)[0]


def _column_kinds(kinds: list, width: int) -> list[bool]:
    """Per feature of a chunk whose values are all numbers or nulls: whether it has a number."""
    if kinds.count(float) == len(kinds):
        return [True] * width
    return [bool(set(kinds[j::width]) - _NULL) for j in range(width)]


def _add_mixed_chunk(batch: PlainBatch, flat: list, kinds: list, start: int, n: int, limits: Limits) -> bool:
    """A chunk with strings or booleans: feature by feature, numbers and nulls into the matrix,
    strings, booleans and nulls into ``categories``; ``False`` for any other mix."""
    width = len(batch.features)
    for j, name in enumerate(batch.features):
        column, types = flat[j::width], set(kinds[j::width]) - _NULL
        if types <= NUMBERS:
            batch.values[start:start + n, j] = np.fromiter(column, np.float64, n)
            if types:
                batch.numeric.add(name)
            elif name in batch.categories:
                batch.categories[name] += column
            continue
        if not types <= _CATEGORY_TYPES or name in batch.numeric:
            return False
        if str in types and max(len(v) for v in column if type(v) is str) > limits.max_string_length:
            return False
        batch.values[start:start + n, j] = np.nan
        # A feature that had only nulls so far is categorical from its first event on.
        batch.categories.setdefault(name, [None] * start).extend(column)
    return True


_NULL = frozenset((type(None),))
_PLAIN_VALUE_TYPES = frozenset((int, float, str, bool, type(None)))
_CATEGORY_TYPES = frozenset((str, bool))
_VALUE_OF, _DATA_OF = attrgetter("value"), attrgetter("data")
_MODEL_OF, _FEATURES_OF, _TS_OF = itemgetter("model"), itemgetter("features"), itemgetter("ts")
_ID_TYPES = frozenset((str, type(None)))
_NUMBERS_OR_NULL = NUMBERS | {type(None)}
