"""``plain_scan.scan``, the compiled reader of plain batches: whatever it reads, it reads as
``orjson`` does (values, times, models), and what it does not read it leaves to
``events.plain_batch``'s own path, which then gives the same batch."""

from __future__ import annotations

import math
import random

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdrift import events
from streamdrift.config import Limits
from streamdrift.events import Record, plain_batch
from streamdrift.plain_scan import _number, scan


def reference(messages: list[bytes]):
    """What orjson makes of a batch that scan reads: names, codes, ts, features, values."""
    data = [orjson.loads(m) for m in messages]
    features = tuple(data[0]["features"])
    names = list(dict.fromkeys(d["model"] for d in data))
    codes = [names.index(d["model"]) for d in data]
    values = [[math.nan if d["features"][f] is None else float(d["features"][f]) for f in features] for d in data]
    return names, codes, [float(d["ts"]) for d in data], features, values


def same_as_reference(messages: list[bytes]) -> None:
    batch = scan(messages)
    assert batch is not None
    names, codes, ts, features, values = reference(messages)
    assert batch.names == names and batch.codes.tolist() == codes and batch.features == features
    assert batch.ts == ts and all(type(t) is float for t in batch.ts)
    # Bit for bit: -0.0 and 0.0 told apart, NaN where null.
    expected = np.array(values, np.float64).reshape(len(messages), len(features))
    assert batch.values.tobytes() == expected.tobytes()


# -- numbers ----------------------------------------------------------------------------------
def number_texts():
    floats = st.floats(allow_nan=False, allow_infinity=False)
    return st.one_of(
        floats.map(repr),  # shortest repr: up to 17 digits, exponents either way
        st.tuples(floats, st.integers(0, 20)).map(lambda fk: f"{fk[0]:.{fk[1]}f}"),
        st.tuples(floats, st.integers(0, 20), st.sampled_from("eE")).map(lambda f: f"{f[0]:.{f[1]}e}".replace("e", f[2])),
        st.integers(-(10 ** 25), 10 ** 25).map(str),
        st.tuples(st.integers(-10 ** 16, 10 ** 16), st.integers(-30, 30)).map(lambda me: f"{me[0]}e{me[1]:+d}"),
        st.tuples(st.integers(0, 10 ** 12), st.integers(0, 12)).map(lambda me: f"-0.{'0' * me[1]}{me[0]}"),
        st.sampled_from(["0", "-0", "0.0", "-0.0", "0e5", "-0E-5", "1E+2", "1e22", "1e23", "9007199254740993",
                         "123456789012345678", "1234567890123456789", "18446744073709551616", "2.2250738585072011e-308",
                         "4.9e-324", "1.7976931348623157e308", "0.1", "0.30000000000000004", "1e-22", "1e-23",
                         # around 2^53 digits (the fast path's edge), and times with microseconds
                         "9007199254740.992", "9007199254740.993", "-0.9007199254740991", "0.9007199254740993",
                         "1764771234.567891", "1764771234.5678911", "17647712345678.91e8"]),
    )


@settings(max_examples=800, deadline=None)
@given(st.lists(number_texts(), min_size=1, max_size=16))
def test_every_number_is_the_value_orjson_reads(texts):
    features = ", ".join(f'"x{j}": {text}' for j, text in enumerate(texts))
    messages = [f'{{"model": "m", "ts": {texts[0]}, "features": {{{features}}}}}'.encode()]
    if any(math.isinf(float(t)) for t in texts):
        assert scan(messages) is None  # orjson refuses a number beyond the doubles
        return
    same_as_reference(messages)


def random_number_texts(seed: int, count: int) -> list[str]:
    """Decimals of every kind the reader converts itself or leaves to orjson: doubles of random
    bits (every exponent, subnormals included) in their shortest repr, printed to 15-19 digits,
    and random 1-19 digit mantissas with powers of ten past both ends of the doubles."""
    rng = np.random.default_rng(seed)
    doubles = rng.integers(0, 2 ** 63 - 2 ** 52, count, dtype=np.int64).view(np.float64)  # finite, positive
    doubles *= rng.choice([-1.0, 1.0], count)
    texts = []
    for x, digits, mantissa, power in zip(doubles.tolist(), rng.integers(15, 20, count).tolist(),
                                          rng.integers(1, 10 ** 18, count).tolist(), rng.integers(-350, 320, count).tolist()):
        texts += [repr(x), f"{x:.{digits}g}", f"{x:.{digits - 1}e}",
                  f"{mantissa // 10 ** (power % 18)}e{power}", f"0.{'0' * (power % 7)}{mantissa}", f"{mantissa}.5e{power % 40 - 20}"]
    return texts


@pytest.mark.parametrize("seed", range(3))
def test_full_length_decimals_are_read_as_orjson_reads_them(seed):
    # 6 x 4,000 numbers per seed, 200 per event; bit for bit, or left to the other path where orjson
    # refuses a number (beyond the doubles).
    texts = random_number_texts(seed, 4000)
    for at in range(0, len(texts), 200):
        chunk = [t for t in texts[at:at + 200] if not math.isinf(float(t))]
        features = ", ".join(f'"x{j}": {text}' for j, text in enumerate(chunk))
        same_as_reference([f'{{"model": "m", "ts": {chunk[0]}, "features": {{{features}}}}}'.encode()])


def test_a_float_printed_in_full_needs_no_orjson():
    # Python's repr and orjson write up to 17 significant digits: every normal double's is converted
    # in the compiled pass (status 0), however small or large, as are times in seconds to 0.1 us.
    rng = np.random.default_rng(7)
    doubles = np.concatenate([rng.normal(0, 1, 3000), rng.normal(0, 1, 3000) * 10.0 ** rng.integers(-300, 300, 3000),
                              1.7e9 + rng.random(3000) * 1e8, [2.2250738585072014e-308, 1.7976931348623157e308]])
    for x in doubles.tolist():
        text = repr(x).encode()
        value, end, status = _number(np.frombuffer(text, np.uint8), 0, len(text))
        assert (status, end) == (0, len(text)) and value == x and math.copysign(1.0, value) == math.copysign(1.0, x), text


@pytest.mark.parametrize("text,status", [
    ("4.9e-324", 1), ("2.2250738585072011e-308", 1),  # subnormal: orjson's
    ("1.7976931348623159e308", 1),  # rounds past the largest double
    ("1e-400", 1), ("1e400", 1),  # beyond the table
    ("0.1234567890123456789", 1), ("0.000123456789012345678", 0), ("0.0001234567890123456789", 1),  # significant digits
    ("18446744073709551616.0", 1),  # 2^64: the mantissa would wrap to 0
    ("0.00000000000000000000", 0), ("-0.00000000000000000000e7", 0),
])
def test_what_the_compiled_pass_leaves_to_orjson(text, status):
    buf = np.frombuffer(text.encode(), np.uint8)
    value, end, got = _number(buf, 0, len(buf))
    assert (got, end) == (status, len(buf))
    if status == 0:
        assert value == float(text) and math.copysign(1.0, value) == math.copysign(1.0, float(text))


@pytest.mark.parametrize("text", ["01", "-01", "1.", ".5", "-", "1e", "1e+", "+1", "NaN", "Infinity", "-Infinity",
                                  "0x10", "1.5.2", "--1", "1e400", "true", '"1.5"', "[1]", "{}"])
def test_what_is_not_a_number_is_left_to_the_other_path(text):
    # (after a number: "true" and a string would be categories of a feature of their own)
    numeric = b'{"model": "m", "ts": 1, "features": {"x": 2.5}}'
    assert scan([numeric, f'{{"model": "m", "ts": 1, "features": {{"x": {text}}}}}'.encode()]) is None


# -- shapes -----------------------------------------------------------------------------------
def writer(rng: random.Random):
    """Events written with varying whitespace and key order, ids or not, nulls now and then."""
    spaces = ["", " ", "\n", "\t ", "\r\n  "]

    def ws() -> str:
        return rng.choice(spaces) if rng.random() < 0.3 else ""

    def event(model: str, ts: str, features: dict[str, str], with_id: bool) -> bytes:
        inner = ",".join(f'{ws()}"{name}"{ws()}:{ws()}{value}{ws()}' for name, value in
                         rng.sample(list(features.items()), len(features)))
        parts = [f'"model"{ws()}:{ws()}"{model}"', f'"ts":{ws()}{ts}', f'"features":{ws()}{{{inner}}}']
        if with_id:
            parts.append(rng.choice(['"id": "e-1"', '"id":null']))
        rng.shuffle(parts)
        return f"{ws()}{{{ws()}{f',{ws()}'.join(parts)}{ws()}}}{ws()}".encode()
    return event


@pytest.mark.parametrize("seed", range(20))
def test_events_of_any_layout_are_read_as_orjson_reads_them(seed):
    rng = random.Random(seed)
    event = writer(rng)
    names = [f"f{j}" for j in range(rng.randint(1, 30))] + ["naïve €"]
    models = ["m", "m1", "m10", "m100", "modèle", "b" * 300]
    messages = []
    for i in range(500):
        values = {name: rng.choice(["null", repr(rng.gauss(0, 1)), str(rng.randint(-5, 5)), f"{rng.random():.4f}"])
                  for name in names}
        messages.append(event(rng.choice(models), repr(1.7e9 + i * 0.001) if i % 2 else str(i), values, rng.random() < 0.5))
    same_as_reference(messages)


def test_many_models_each_get_their_code():
    messages = [b'{"model": "model-%d", "ts": 1, "features": {"x": 1}}' % (i % 5000) for i in range(20_000)]
    batch = scan(messages)
    assert batch.names == [f"model-{i}" for i in range(5000)]
    assert batch.codes.tolist() == [i % 5000 for i in range(20_000)]


GOOD = b'{"model": "m", "id": "e-1", "ts": 1, "features": {"x": 1.5, "y": null}}'


@pytest.mark.parametrize("bad", [
    b'{"model": "m", "ts": 1, "features": {"x": 1.5}}',  # other features
    b'{"model": "m", "ts": 1, "features": {"x": 1.5, "y": 1, "z": 1}}',
    b'{"model": "m", "ts": 1, "features": {"x": 1.5, "x": 1}}',  # a feature twice
    b'{"model": "m", "ts": 1, "ts": 2, "features": {"x": 1.5, "y": 1}}',  # a key twice
    b'{"model": "m", "ts": 1, "features": {"x": 1.5, "y": 1}, "label": 1}',  # not plain
    b'{"model": "m", "features": {"x": 1.5, "y": 1}}',  # no ts
    b'{"ts": 1, "features": {"x": 1.5, "y": 1}}',  # no model
    b'{"model": "", "ts": 1, "features": {"x": 1.5, "y": 1}}',
    b'{"model": 3, "ts": 1, "features": {"x": 1.5, "y": 1}}',
    b'{"model": "m\\u0041", "ts": 1, "features": {"x": 1.5, "y": 1}}',  # an escape: orjson's to read
    b'{"model": "m\xff", "ts": 1, "features": {"x": 1.5, "y": 1}}',  # not UTF-8
    b'{"model": "m\xed\xa0\x80", "ts": 1, "features": {"x": 1.5, "y": 1}}',  # a surrogate in UTF-8
    b'{"model": "m\x01", "ts": 1, "features": {"x": 1.5, "y": 1}}',  # a control character
    b'{"model": "m", "id": "\xc3\xa9", "ts": 1, "features": {"x": 1.5, "y": 1}}',  # a non-ASCII id
    b'{"model": "m", "id": 7, "ts": 1, "features": {"x": 1.5, "y": 1}}',
    b'{"model": "m", "ts": "2024-11-24T17:40:00Z", "features": {"x": 1.5, "y": 1}}',
    b'{"model": "m", "ts": true, "features": {"x": 1.5, "y": 1}}',
    b'{"model": "m", "ts": 1, "features": {"x": true, "y": 1}}',  # a boolean, a string where x had numbers
    b'{"model": "m", "ts": 1, "features": {"x": "DE", "y": 1}}',
    b'{"model": "m", "ts": 1, "features": {"x": 1.5, "y": 1}} x',  # trailing garbage
    b'{"model": "m", "ts": 1, "features": {"x": 1.5, "y": 1}',  # cut short
    b'{"model": "m", "ts": 1, "features": {"x": 1.5, "y": 1},}',
    b'{"model": "m", "ts": 1, "features": {"x": 1.5, "y": 1,}}',
    b'\xef\xbb\xbf{"model": "m", "ts": 1, "features": {"x": 1.5, "y": 1}}',  # a byte-order mark
    b'[1]', b'null', b'', b'{}',
])
def test_a_message_it_does_not_read_leaves_the_batch_to_the_other_path(bad):
    assert scan([GOOD]) is not None
    assert scan([GOOD, bad, GOOD]) is None


def test_feature_names_with_escapes_are_left_to_the_other_path():
    assert scan([b'{"model": "m", "ts": 1, "features": {"a\\"b": 1}}']) is None
    assert scan([b'{"model": "m", "ts": 1, "features": {"\\u00e9": 1}}']) is None


# -- plain_batch: the same batch whichever path reads it ---------------------------------------
def both_paths(records, monkeypatch):
    scanned = plain_batch(records, Limits())
    with monkeypatch.context() as patch:
        patch.setattr(events, "_scanned", lambda records, values, limits, refuse=None, sizes=None: None)
        parsed = plain_batch(records, Limits())
    return scanned, parsed


@pytest.mark.parametrize("seed", range(5))
def test_plain_batch_is_the_same_whichever_path_reads_it(seed, monkeypatch):
    rng = random.Random(seed)
    event = writer(rng)
    names = ["a", "b", "c", "d"]
    records = []
    for i in range(700):
        values = {name: "null" if name == "d" or rng.random() < 0.1 else repr(rng.gauss(0, 1)) for name in names}
        records.append(Record(event(f"m{i % 7}", repr(1000.0 + i), values, rng.random() < 0.5)))
    scanned, parsed = both_paths(records, monkeypatch)
    assert scanned is not None and parsed is not None
    assert (scanned.names, scanned.codes.tolist(), scanned.ts, scanned.features, scanned.categories, scanned.numeric) == \
        (parsed.names, parsed.codes.tolist(), parsed.ts, parsed.features, parsed.categories, parsed.numeric)
    assert scanned.numeric == {"a", "b", "c"}  # d: only nulls, neither numeric nor categorical
    assert scanned.values.tobytes() == parsed.values.tobytes()
    assert scanned.models == parsed.models == [f"m{i % 7}" for i in range(700)]


def test_plain_batch_checks_the_limits_on_what_scan_reads(monkeypatch):
    records = [Record(b'{"model": "m", "ts": 1, "features": {"x": 1, "y": 2}}')]
    assert plain_batch(records, Limits(max_features=1)) is None
    assert plain_batch([Record(b'{"model": "m\\u001fx", "ts": 1, "features": {"x": 1}}')], Limits()) is None
    assert plain_batch([Record(b'{"model": "%s", "ts": 1, "features": {"x": 1}}' % (b"m" * 2000))], Limits()) is None
    long = Record(b'{"model": "m", "ts": 1, "features": {"x": 1, "c": "%s"}}' % (b"x" * 1025))
    assert plain_batch([long], Limits()) is None and plain_batch([long], Limits(max_string_length=1025)) is not None


@pytest.mark.parametrize("seed", range(6))
def test_categorical_features_are_the_same_whichever_path_reads_them(seed, monkeypatch):
    rng = random.Random(seed)
    event = writer(rng)
    records = []
    for i in range(900):
        values = {"x": repr(rng.gauss(0, 1)), "y": "null" if rng.random() < 0.2 else str(rng.randint(0, 9)),
                  "country": rng.choice(['"DE"', '"FR"', '"Österreich"', '"日本"', '""', "null"]),
                  "flag": rng.choice(["true", "false", "null"]), "late": "null" if i < 400 else '"on"',
                  "empty": "null"}
        records.append(Record(event(f"m{i % 5}", repr(1000.0 + i), values, rng.random() < 0.5)))
    scanned, parsed = both_paths(records, monkeypatch)
    assert scanned is not None and parsed is not None
    assert scanned.numeric == parsed.numeric == {"x", "y"}
    assert scanned.categories == parsed.categories and set(scanned.categories) == {"country", "flag", "late"}
    assert all(type(v) is type(w) for c in scanned.categories for v, w in zip(scanned.categories[c], parsed.categories[c]))
    assert scanned.values.tobytes() == parsed.values.tobytes()
    assert (scanned.names, scanned.codes.tolist(), scanned.ts) == (parsed.names, parsed.codes.tolist(), parsed.ts)


@pytest.mark.parametrize("odd", [b'"a\\"b"', b'"\\u00e9"', b'"x\xff"', b'1', b'[1]', b'{"a": 1}', b'tru', b'"open'])
def test_an_odd_categorical_value_is_left_to_the_other_path(odd):
    good = b'{"model": "m", "ts": 1, "features": {"x": 1, "c": "DE"}}'
    assert scan([good]) is not None
    assert scan([good, b'{"model": "m", "ts": 2, "features": {"x": 1, "c": %s}}' % odd]) is None


def test_more_distinct_strings_than_the_table_holds_are_left_to_the_other_path(monkeypatch):
    records = [Record(b'{"model": "m", "ts": 1, "features": {"a": "a%d", "b": "b%d", "c": "c%d"}}' % (i, i, i))
               for i in range(100)]
    assert scan([r.value for r in records]) is None  # 300 strings; the table holds 2 per event
    assert scan([r.value for r in records[:2]] * 50) is not None  # 6 distinct ones
    scanned, parsed = both_paths(records, monkeypatch)
    assert scanned.categories == parsed.categories and len(scanned.categories["a"]) == 100
