"""Plain feature events read straight from their bytes, in one compiled pass (numba).

``events.plain_batch`` parses each message with ``orjson.loads`` and then checks, in passes over
Python objects, that every event is plain and has the same features. For a batch of 20-feature
events that is about 5 us per event, half the pipeline's time. ``scan`` does the same reading
over the batch's bytes laid end to end, in machine code, and builds no Python object per event:
the matrix of values, the times, a code per event for its model, and a code per categorical
value (each distinct string is decoded once).

It reads a strict subset of what ``plain_batch`` accepts and answers ``None`` for anything
else (an escape in a string, a non-ASCII byte in a key or id, a feature with numbers and
strings...). The caller then takes ``plain_batch``'s own path, so what the
pipeline sees never depends on which of the two read a batch. A number it converts itself is a
decimal whose digits make an integer of at most 2^53 (about 16 significant digits, a time in
seconds with its microseconds included) and whose power of ten is within 10^22 either way:
Clinger's fast path, exact in one IEEE operation. One of up to 18 significant digits (a float
printed in full: Python's ``repr`` and ``orjson`` write up to 17) is converted by the
Eisel-Lemire algorithm (``_eisel_lemire``: a 64 x 128-bit product with a table of powers of
five, rounded to nearest even), which is exact for every such decimal. What is left (more
digits, a result below the normal doubles or beyond them) is copied out and all of them are
parsed by one ``orjson.loads`` of the list, so every value is exactly what ``orjson`` makes of
it.

>>> batch = scan([b'{"model": "m", "ts": 5, "features": {"x": 1.5, "y": null}}',
...               b'{"model": "n", "id": "e-2", "ts": 1764771234.567891, "features": {"y": -2e-3, "x": 10}}'])
>>> batch.names, batch.codes.tolist(), batch.features, batch.values.tolist(), batch.ts
(['m', 'n'], [0, 1], ('x', 'y'), [[1.5, nan], [10.0, -0.002]], [5.0, 1764771234.567891])
>>> scan([b'{"model": "m", "ts": 5, "features": {"x": 1.5, "c": "DE"}}',
...       b'{"model": "m", "ts": 6, "features": {"x": 2.5, "c": true}}']).categories
{'c': ['DE', True]}
>>> scan([b'{"model": "m", "ts": 5, "features": {"x": "DE"}}', b'{"model": "m", "ts": 6, "features": {"x": 1}}']) is None
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import orjson
from numba import njit

from .detectors.addresses import unowned

#: Powers of ten that are exact doubles (10^22 is the last).
_POW10 = np.array([10.0 ** k for k in range(23)])
#: The largest integer up to which every integer is a double: a mantissa up to it is exact.
_EXACT = 2 ** 53
#: The powers of ten ``_eisel_lemire`` converts: those of every normal double's shortest decimal.
_SMALLEST_POWER, _LARGEST_POWER = -342, 308


def _powers_of_five() -> np.ndarray:
    """Row ``q - _SMALLEST_POWER``: the 128 most significant bits of 5^q as (high, low) 64-bit
    halves, truncated for q >= 0; for q < 0, of 2^b / 5^-q plus one (a bound from above). This
    is the table of Lemire's fast_float (and of Go's and Rust's parsers), made here with exact
    integers.

    >>> table = _powers_of_five()
    >>> hex(int(table[0 - _SMALLEST_POWER, 0])), int(table[0 - _SMALLEST_POWER, 1])  # 5^0 = 1: the top bit
    ('0x8000000000000000', 0)
    """
    rows = []
    for q in range(_SMALLEST_POWER, _LARGEST_POWER + 1):
        if q >= 0:
            power = 5 ** q
            bits = power.bit_length()
            power = power << (128 - bits) if bits < 128 else power >> (bits - 128)
        else:
            five = 5 ** -q
            z = (five - 1).bit_length()  # the least z with 2^z >= 5^-q
            power = (1 << (z + 127 if q >= -27 else 2 * z + 128)) // five + 1
            while power >= 1 << 128:
                power >>= 1
        rows.append((power >> 64, power & ((1 << 64) - 1)))
    return np.array(rows, dtype=np.uint64)


_POW5 = _powers_of_five()
_LOW32 = np.uint64(0xFFFFFFFF)
#: A categorical feature's values that are not strings (``_scan``'s ``categories``).
_NULL, _TRUE, _FALSE = -1, -2, -3


@dataclass(slots=True)
class ScannedBatch:
    """What ``scan`` read: per event its model's code (an index into ``names``, the models in
    order of first appearance) and ``ts``; the features' values, events x features, in the
    first event's order (a null is NaN)."""

    names: list[str]
    codes: np.ndarray
    ts: list[float]
    features: tuple[str, ...]
    #: A categorical feature's values are NaN here, and in ``categories`` (strings, booleans and
    #: nulls as ``None``, event by event).
    values: np.ndarray
    categories: dict[str, list]
    #: The features that had a number (the others had strings or booleans, or only nulls).
    numeric: set[str]
    #: The length of the longest string value (``limits.max_string_length`` is the caller's).
    longest_string: int
    #: The messages left out (``scan``'s ``skip_unread``), in order; their rows are NaN, their
    #: codes 0, their categories ``None``.
    unread: list[int] = field(default_factory=list)
    #: ``ts`` as the array it was read into (for the callers' numpy checks: no list converted back).
    ts_array: np.ndarray | None = None


def scan(messages: list[bytes], skip_unread: bool = False, sizes: np.ndarray | None = None) -> ScannedBatch | None:
    """The batch read (module docstring), or ``None`` if a message is not a plain event that
    this reader reads: an object of ``model`` (a string), ``ts`` (a number), ``features`` (an
    object of the same names in every event, each feature's values numbers and nulls, or strings,
    booleans and nulls) and optionally ``id`` (a string or null), nothing else. It checks no
    limit: that is the caller's (``events.plain_batch``).

    With ``skip_unread`` such a message is left out instead (its number in ``unread``), and the
    batch is what the others make: their models, their features' kinds. ``None`` then only when
    none is read, or a reading of the whole batch fails (a number beyond the doubles, bytes that
    are not UTF-8), or the first message that looks plain is not read (the features' order is the
    first event's). ``sizes``: the messages' lengths (int64), if the caller has them.

    >>> batch = scan([b'{"model": "m", "ts": 5, "features": {"x": 1.5}}', b'{"model": "bad"}',
    ...               b'{"model": "n", "ts": 6, "features": {"x": 2}}'], skip_unread=True)
    >>> batch.unread, batch.names, batch.codes[[0, 2]].tolist()
    ([1], ['m', 'n'], [0, 1])
    """
    if not messages:
        return None
    first = _first_plain(messages, 16 if skip_unread else 1)
    if first is None:
        return None
    names = tuple(first[1]["features"])
    try:
        encoded = [name.encode() for name in names]
    except UnicodeEncodeError:  # a lone surrogate, which only an escape writes
        return None
    name_ends = np.cumsum([len(name) for name in encoded])
    name_bytes = np.frombuffer(b"".join(encoded) or b"\0", np.uint8)
    if sizes is None:
        sizes = np.fromiter(map(len, messages), np.int64, len(messages))
    ends = np.cumsum(sizes)
    buf = np.frombuffer(b"".join(messages), np.uint8)
    n, width = len(messages), len(names)
    values = np.empty((n, width))
    ts = np.empty(n)
    codes = np.empty(n, np.intp)
    spans = np.empty((n, 3), np.int64)  # where each model's name is, in order of first appearance
    slow = np.empty(len(buf) + 2, np.uint8)  # the numbers for orjson, as one JSON list
    slow_at = np.empty(n * (width + 1), np.int64)  # their places: event * (width + 1) + column + 1 (0: ts)
    kinds = np.zeros(width, np.int8)
    categories = np.empty((n, width), np.int32)  # _scan writes every value of a categorical feature
    string_spans = np.empty((max(64, 2 * n), 3), np.int64)  # each distinct string: where, and its feature
    unread = np.empty(n, np.int64)
    skipped, models, slow_count, slow_len, strings = _scan(buf, ends, name_bytes, name_ends, values, ts, codes, spans,
                                                           slow, slow_at, kinds, categories, string_spans, unread)
    unread = unread[:skipped]
    if skipped and (not skip_unread or skipped == n or first[0] in unread):
        return None
    try:  # strict UTF-8, as orjson reads: no lone surrogate either
        model_names = [bytes(buf[start:stop]).decode() for start, stop, _ in spans[:models].tolist()]
        texts = [bytes(buf[start:stop]).decode() for start, stop, _ in string_spans[:strings].tolist()]
    except UnicodeDecodeError:
        return None
    if slow_count:
        try:
            parsed = np.array(orjson.loads(slow[:slow_len].tobytes()), np.float64)
        except (orjson.JSONDecodeError, OverflowError):
            return None
        places = slow_at[:slow_count]
        rows, columns = np.divmod(places, width + 1)
        is_ts = columns == 0
        ts[rows[is_ts]] = parsed[is_ts]
        values[rows[~is_ts], columns[~is_ts] - 1] = parsed[~is_ts]
    if skipped:
        values[unread], ts[unread], categories[unread] = np.nan, np.nan, _NULL
        codes, model_names = _models_read(codes, model_names, unread)
    # Each categorical feature's values, event by event: its strings, booleans and nulls.
    objects = np.array(texts + [None, True, False], dtype=object)  # codes -1, -2, -3 at the end
    kinds = kinds.tolist()
    columns = {name: objects[np.where(column >= 0, column, strings - 1 - column)].tolist()
               for name, kind, column in zip(names, kinds, categories.T) if kind == 2}
    numeric = {name for name, kind in zip(names, kinds) if kind == 1}
    return ScannedBatch(model_names, codes, ts.tolist(), names, values, columns, numeric,
                        max(map(len, texts), default=0), unread.tolist(), ts)


def _first_plain(messages: list[bytes], tries: int) -> tuple[int, dict] | None:
    """The first of the first ``tries`` messages that looks like a plain event (an object with a
    string ``model``, a number ``ts`` and features), as ``(its number, the object)``: the
    features' order is its order. Every message before it is one ``_scan`` does not read."""
    for k, message in enumerate(messages[:tries]):
        try:
            data = orjson.loads(message)
        except orjson.JSONDecodeError:
            continue
        if type(data) is dict and type(data.get("features")) is dict and data["features"] \
                and type(data.get("model")) is str and type(data.get("ts")) in (int, float):
            return k, data
    return None


def _models_read(codes: np.ndarray, names: list[str], unread: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The models of the events read, in order of first appearance, and each event's code among
    them (an unread message interned its model too, perhaps before or instead of a read one's)."""
    read = np.ones(len(codes), bool)
    read[unread] = False
    codes[unread] = 0  # (not written, or a model the message interned)
    present, first = np.unique(codes[read], return_index=True)
    order = present[np.argsort(first, kind="stable")]
    if len(order) == len(names) and (order == np.arange(len(names))).all():
        return codes, names
    recode = np.zeros(len(names), np.intp)
    recode[order] = np.arange(len(order))
    codes = recode[codes]
    codes[unread] = 0
    return codes, [names[k] for k in order.tolist()]


def compile_now() -> None:
    """Compile the scanner now, or load it from numba's cache (``__pycache__`` beside this file,
    or ``NUMBA_CACHE_DIR``), rather than at the first batch (``streamdrift.kernels`` compiles it
    with the other kernels). A compilation takes seconds; a load, a fraction.

    >>> compile_now()
    """
    scan([b'{"model": "m", "ts": 1.5, "features": {"x": 1.25}}'])


@njit(cache=True, nogil=True)
def _skip_whitespace(buf, i, end):
    while i < end:
        c = buf[i]
        if c != 32 and c != 9 and c != 10 and c != 13:
            break
        i += 1
    return i


@njit(cache=True, nogil=True)
def _string_end(buf, i, end, ascii_only):
    """Past the closing quote of the string opening at ``i``; -1 for an escape, a control
    character, a non-ASCII byte when ``ascii_only``, or no closing quote."""
    i += 1
    while i < end:
        c = buf[i]
        if c == 34:
            return i + 1
        if c == 92 or c < 32 or (ascii_only and c >= 128):
            return -1
        i += 1
    return -1


@njit(cache=True, nogil=True)
def _same_bytes(buf, start, stop, names, name_start, name_stop):
    if stop - start != name_stop - name_start:
        return False
    for k in range(stop - start):
        if buf[start + k] != names[name_start + k]:
            return False
    return True


@njit(cache=True, nogil=True)
def _digit(buf, i, end):
    """The digit at ``i``, or -1 (not a digit, or the end)."""
    if i >= end:
        return -1
    d = np.int64(buf[i]) - 48
    return d if 0 <= d <= 9 else -1


@njit(cache=True, nogil=True, inline="always")  # in the loop: 0.81-0.89x the time per event
def _number(buf, i, end):
    """The JSON number at ``i``: (value, past it, status); status 0 converted, 1 valid but left
    to orjson (too many digits, a result beyond the normal doubles), -1 not a JSON number.

    Leading zeros add nothing to the mantissa, so it is exact while there are at most 18
    significant digits (it would wrap past 19: those numbers go to orjson; an integer of more
    than 18 digits does too). A fraction is converted in one IEEE operation when its digits, as
    an integer, are at most 2^53 (a double holds it exactly: a time in seconds with its
    microseconds, 16 digits, is one) and its power of ten is exact: then the one multiplication
    or division is correctly rounded, which is what orjson's parse is. Any other fraction (a
    float printed in full, 17 digits) by ``_eisel_lemire``, also correctly rounded."""
    negative = i < end and buf[i] == 45
    if negative:
        i += 1
    first = i
    d = _digit(buf, i, end)
    if d < 0:
        return 0.0, i, -1
    mantissa = d
    i += 1
    if d == 0:
        if _digit(buf, i, end) >= 0:
            return 0.0, i, -1  # a leading zero
    else:
        d = _digit(buf, i, end)
        while d >= 0:
            mantissa = mantissa * 10 + d
            i += 1
            d = _digit(buf, i, end)
    digits = i - first
    exponent = 0
    integer = True
    if i < end and buf[i] == 46:
        integer = False
        i += 1
        fraction = i
        d = _digit(buf, i, end)
        if d < 0:
            return 0.0, i, -1
        while d >= 0:
            mantissa = mantissa * 10 + d
            i += 1
            d = _digit(buf, i, end)
        digits += i - fraction
        exponent = fraction - i
    if i < end and (buf[i] == 101 or buf[i] == 69):
        integer = False
        i += 1
        sign = 1
        if i < end and (buf[i] == 43 or buf[i] == 45):
            sign = -1 if buf[i] == 45 else 1
            i += 1
        d = _digit(buf, i, end)
        if d < 0:
            return 0.0, i, -1
        power = 0
        while d >= 0:
            if power < 100000:
                power = power * 10 + d
            i += 1
            d = _digit(buf, i, end)
        exponent += sign * power
    if integer:
        if digits > 18:
            return 0.0, i, 1
        # An integer is orjson's int, then float: -0 is 0.0.
        return float(-mantissa if negative else mantissa), i, 0
    if digits > 18:
        significant = digits
        if buf[first] == 48:  # "0.": that zero and those right after the point are not significant
            z = first + 2
            while z < i and buf[z] == 48:
                z += 1
            significant -= z - first - 1
        if significant > 18:
            return 0.0, i, 1  # (the mantissa may have wrapped, even to 0)
    if mantissa == 0:
        return -0.0 if negative else 0.0, i, 0
    if mantissa <= _EXACT and -22 <= exponent <= 22:
        value = float(mantissa) * _POW10[exponent] if exponent >= 0 else float(mantissa) / _POW10[-exponent]
    else:
        value, exact = _eisel_lemire(np.uint64(mantissa), exponent)
        if not exact:
            return 0.0, i, 1
    return (-value if negative else value), i, 0


@njit(cache=True, nogil=True, inline="always")
def _product(a, b):
    """The 128-bit product of two uint64, as (high, low) halves."""
    shift = np.uint64(32)
    a_low, a_high, b_low, b_high = a & _LOW32, a >> shift, b & _LOW32, b >> shift
    low_low, low_high, high_low = a_low * b_low, a_low * b_high, a_high * b_low
    middle = low_high + (low_low >> shift) + (high_low & _LOW32)  # < 2^64: no carry lost
    return a_high * b_high + (middle >> shift) + (high_low >> shift), (middle << shift) | (low_low & _LOW32)


@njit(cache=True, nogil=True)
def _eisel_lemire(w, q):
    """The double nearest ``w`` x 10^``q`` (``w``: a uint64, 0 < w < 10^19), ties to even, and
    ``True``; or ``(0.0, False)`` for a power of ten beyond the table, or a result below the
    normal doubles or beyond the largest (left to ``orjson``).

    Lemire's algorithm as fast_float computes it ("Number Parsing at a Gigabyte per Second",
    2021): ``w``, normalised, times the table's 128 bits of 5^q (a second product only when
    the first leaves the rounding bits undecided); proven exact for up to 19 digits (Mushtak and
    Lemire, "Fast Number Parsing Without Fallback", 2023).

    >>> _eisel_lemire(np.uint64(17647712345678911), -7) == (1764771234.5678911, True)
    True
    >>> _eisel_lemire(np.uint64(49), -325)
    (0.0, False)
    """
    if q < _SMALLEST_POWER or q > _LARGEST_POWER:
        return 0.0, False
    lz = 0  # w's leading zero bits
    for bits in (32, 16, 8, 4, 2, 1):
        if w >> np.uint64(64 - bits) == 0:
            w <<= np.uint64(bits)
            lz += bits
    index = q - _SMALLEST_POWER
    high, low = _product(w, _POW5[index, 0])
    if high & np.uint64(0x1FF) == np.uint64(0x1FF):  # the bits below the 55 kept are all ones
        second, _ = _product(w, _POW5[index, 1])
        low += second
        if second > low:
            high += np.uint64(1)
    upper = np.int64(high >> np.uint64(63))
    shift = np.uint64(upper + 9)
    mantissa = high >> shift  # 54 or 55 bits
    power2 = (((152170 + 65536) * q) >> 16) + 63 + upper - lz + 1023
    if power2 <= 0:
        return 0.0, False  # a subnormal (or zero)
    if low <= np.uint64(1) and -4 <= q <= 23 and mantissa & np.uint64(3) == np.uint64(1) \
            and (mantissa << shift) == high:
        mantissa &= ~np.uint64(1)  # exactly halfway: round to even, down
    mantissa += mantissa & np.uint64(1)
    mantissa >>= np.uint64(1)
    if mantissa >= np.uint64(1 << 53):
        mantissa = np.uint64(1 << 52)
        power2 += 1
    if power2 >= 0x7FF:
        return 0.0, False  # beyond the largest double
    return math.ldexp(float(mantissa), power2 - 1075), True


@njit(cache=True, nogil=True)
def _copy_slow(buf, start, stop, slow, slow_len):
    """Append ``buf[start:stop]`` to the list of numbers for orjson; its new length."""
    slow[slow_len] = 44 if slow_len else 91  # "," or "["
    slow_len += 1
    for k in range(start, stop):
        slow[slow_len] = buf[k]
        slow_len += 1
    slow[slow_len] = 93  # "]", overwritten by the next one's ","
    return slow_len


@njit(cache=True, nogil=True)
def _intern(buf, start, stop, salt, table, spans, count):
    """The code of the bytes ``buf[start:stop]`` (with ``salt``: a column, or -1 for a model)
    among those seen: open addressing on an FNV-1a hash, a new one added as code ``count`` with
    its span and salt. Returns (code, the new count), or (-1, count) when the table is half full
    or ``spans`` is."""
    h = np.uint64(14695981039346656037) ^ np.uint64(salt + 1)
    for k in range(start, stop):
        h = (h ^ np.uint64(buf[k])) * np.uint64(1099511628211)
    mask = len(table) - 1
    slot = np.int64(h & np.uint64(mask))
    while True:
        code = table[slot]
        if code < 0:
            if count == len(table) // 2 or count == len(spans):
                return -1, count
            table[slot] = count
            spans[count, 0] = start
            spans[count, 1] = stop
            spans[count, 2] = salt
            return count, count + 1
        if spans[code, 2] == salt and _same_bytes(buf, start, stop, buf, spans[code, 0], spans[code, 1]):
            return code, count
        slot = (slot + 1) & mask


@njit(cache=True, nogil=True)
def _scan(message_bytes, ends, name_bytes, name_ends, values, ts, codes, spans, slow_numbers, slow_at, kinds,
          categories, string_spans, unread):
    """Read every message; returns (messages not read, models, slow numbers, length of their
    list, distinct strings). ``unread``: the messages not read, in order. ``spans``: where each model's
    name is; ``kinds``: per feature 0 (only nulls), 1 (numbers) or 2 (strings and booleans);
    ``categories``: per value of a feature of kind 2, its string's code (``string_spans``), or
    ``_NULL``, ``_TRUE``, ``_FALSE`` (written for every value of such a feature, never read for
    the others).

    A message that is not plain is left unread (``bad``: the loops end, the next message
    starts), and what it changed that the rest of the batch would see is undone: its features'
    kinds. A model or a string it added stays, read by no event (``scan`` keeps the models of the
    events read). One function: with the reading of a message, of a member's key or of the
    separator after it a helper, inlined or not, it measured 20-50% slower.

    The arrays its helpers take are read through ``unowned`` views: numba counted a reference to
    an array around every call of a helper, two atomic operations each time, a quarter of the
    time (measured: 0.69-0.75x the time without them). Once they were gone, inlining the reading
    of a number (``_number``) measured 0.81-0.89x."""
    buf, names, slow = unowned(message_bytes), unowned(name_bytes), unowned(slow_numbers)
    width = len(name_ends)
    name_starts = np.empty(width, np.int64)
    for j in range(width):
        name_starts[j] = name_ends[j - 1] if j else 0
    seen = np.zeros(width, np.int64)  # the message (+1) that last had each feature
    table_size = 64
    while table_size < 4 * len(ends):
        table_size *= 2
    table = np.full(min(table_size, 1 << 16), -1, np.int64)
    string_table = np.full(min(table_size, 1 << 16), -1, np.int64)
    models = 0
    strings = 0
    slow_count = 0
    slow_len = 0
    start = 0
    skipped = 0
    kinds_before = kinds.copy()
    for m in range(len(ends)):
        end = ends[m]
        for j in range(width):
            kinds_before[j] = kinds[j]
        bad = False
        i = _skip_whitespace(buf, start, end)
        if i >= end or buf[i] != 123:
            bad = True
        i += 1
        got_model = got_ts = got_features = got_id = False
        while not bad:  # the members; a break with ``bad`` set: not plain, left unread
            i = _skip_whitespace(buf, i, end)
            if i >= end or buf[i] != 34:
                bad = True
                break
            key_end = _string_end(buf, i, end, True)
            if key_end < 0:
                bad = True
                break
            key_start, key_len = i + 1, key_end - i - 2
            i = _skip_whitespace(buf, key_end, end)
            if i >= end or buf[i] != 58:
                bad = True
                break
            i = _skip_whitespace(buf, i + 1, end)
            if i >= end:
                bad = True
                break
            first = buf[key_start]
            if key_len == 5 and first == 109 and buf[key_start + 1] == 111 and buf[key_start + 2] == 100 \
                    and buf[key_start + 3] == 101 and buf[key_start + 4] == 108:  # model
                if got_model or buf[i] != 34:
                    bad = True
                    break
                value_end = _string_end(buf, i, end, False)
                if value_end < 0 or value_end - i == 2:
                    bad = True
                    break
                got_model = True
                code, models = _intern(buf, i + 1, value_end - 1, -1, table, spans, models)
                if code < 0:
                    bad = True  # more models than one table holds
                    break
                codes[m] = code
                i = value_end
            elif key_len == 2 and first == 116 and buf[key_start + 1] == 115:  # ts
                if got_ts:
                    bad = True
                    break
                got_ts = True
                number_start = i
                value, i, status = _number(buf, i, end)
                if status < 0:
                    bad = True
                    break
                if status:
                    slow_len = _copy_slow(buf, number_start, i, slow, slow_len)
                    slow_at[slow_count] = m * (width + 1)
                    slow_count += 1
                else:
                    ts[m] = value
            elif key_len == 2 and first == 105 and buf[key_start + 1] == 100:  # id
                if got_id:
                    bad = True
                    break
                got_id = True
                if buf[i] == 34:
                    i = _string_end(buf, i, end, True)
                    if i < 0:
                        bad = True
                        break
                elif i + 4 <= end and buf[i] == 110 and buf[i + 1] == 117 and buf[i + 2] == 108 and buf[i + 3] == 108:
                    i += 4
                else:
                    bad = True
                    break
            elif key_len == 8 and first == 102 and buf[key_start + 1] == 101 and buf[key_start + 2] == 97 \
                    and buf[key_start + 3] == 116 and buf[key_start + 4] == 117 and buf[key_start + 5] == 114 \
                    and buf[key_start + 6] == 101 and buf[key_start + 7] == 115:  # features
                if got_features or buf[i] != 123:
                    bad = True
                    break
                got_features = True
                i += 1
                count = 0
                while True:
                    i = _skip_whitespace(buf, i, end)
                    if i >= end or buf[i] != 34:
                        bad = True
                        break
                    name_end = _string_end(buf, i, end, False)
                    if name_end < 0:
                        bad = True
                        break
                    # The feature's column: usually the one after the last (the same order).
                    j = count if count < width else 0
                    if not _same_bytes(buf, i + 1, name_end - 1, names, name_starts[j], name_ends[j]):
                        j = -1
                        for k in range(width):
                            if _same_bytes(buf, i + 1, name_end - 1, names, name_starts[k], name_ends[k]):
                                j = k
                                break
                        if j < 0:
                            bad = True
                            break
                    if seen[j] == m + 1:
                        bad = True  # twice in one event
                        break
                    seen[j] = m + 1
                    count += 1
                    i = _skip_whitespace(buf, name_end, end)
                    if i >= end or buf[i] != 58:
                        bad = True
                        break
                    i = _skip_whitespace(buf, i + 1, end)
                    if i + 4 <= end and buf[i] == 110 and buf[i + 1] == 117 and buf[i + 2] == 108 and buf[i + 3] == 108:
                        values[m, j] = np.nan
                        categories[m, j] = _NULL  # (read only if the feature turns out categorical)
                        i += 4
                    elif i < end and (buf[i] == 34 or buf[i] == 116 or buf[i] == 102):  # a string, true, false
                        if kinds[j] == 1:
                            bad = True  # numbers and strings: check_column's
                            break
                        kinds[j] = 2
                        values[m, j] = np.nan
                        if buf[i] == 34:
                            value_end = _string_end(buf, i, end, False)
                            if value_end < 0:
                                bad = True
                                break
                            code, strings = _intern(buf, i + 1, value_end - 1, j, string_table, string_spans, strings)
                            if code < 0:
                                bad = True  # too many distinct strings
                                break
                            categories[m, j] = code
                            i = value_end
                        elif i + 4 <= end and buf[i + 1] == 114 and buf[i + 2] == 117 and buf[i + 3] == 101:
                            categories[m, j] = _TRUE
                            i += 4
                        elif i + 5 <= end and buf[i + 1] == 97 and buf[i + 2] == 108 and buf[i + 3] == 115 \
                                and buf[i + 4] == 101:
                            categories[m, j] = _FALSE
                            i += 5
                        else:
                            bad = True
                            break
                    else:
                        if kinds[j] == 2:
                            bad = True
                            break
                        kinds[j] = 1
                        number_start = i
                        value, i, status = _number(buf, i, end)
                        if status < 0:
                            bad = True
                            break
                        if status:
                            slow_len = _copy_slow(buf, number_start, i, slow, slow_len)
                            slow_at[slow_count] = m * (width + 1) + j + 1
                            slow_count += 1
                        else:
                            values[m, j] = value
                    i = _skip_whitespace(buf, i, end)
                    if i < end and buf[i] == 44:
                        i += 1
                        continue
                    if i < end and buf[i] == 125:
                        i += 1
                        break
                    bad = True
                    break
                if bad:
                    break
                if count != width:
                    bad = True
                    break
            else:
                bad = True
                break
            i = _skip_whitespace(buf, i, end)
            if i < end and buf[i] == 44:
                i += 1
                continue
            if i < end and buf[i] == 125:
                i += 1
                break
            bad = True
            break
        if not bad and (not (got_model and got_ts and got_features) or _skip_whitespace(buf, i, end) != end):
            bad = True
        if bad:
            for j in range(width):
                kinds[j] = kinds_before[j]
            unread[skipped] = m
            skipped += 1
        start = end
    return skipped, models, slow_count, slow_len + (1 if slow_count else 0), strings
