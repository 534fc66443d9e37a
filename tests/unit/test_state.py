"""The state encoding: explicit, versioned, never pickle; anything it cannot read is a StateError."""

from __future__ import annotations

import ast
import copy
import pickle
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import streamdrift.detectors as detectors
from streamdrift.detectors import (
    CategoricalMonitor, MonitorSettings, NumericMonitor, StateError, decode_monitor, encode_monitor,
)
from streamdrift.detectors.state import _PREFIX, MAGIC, VERSION, pack, unpack


def numeric_monitor(n: int = 3000, **kw) -> NumericMonitor:
    rng = np.random.default_rng(0)
    monitor = NumericMonitor(MonitorSettings(reference_size=500, rearm_size=200, window=200,
                                             evaluate_every=50, **kw))
    x = np.concatenate([rng.normal(0, 1, n // 2), rng.normal(1, 1, n - n // 2)])
    x[rng.random(n) < 0.1] = np.nan
    monitor.update(x)
    return monitor


def categorical_monitor(n: int = 3000) -> CategoricalMonitor:
    rng = np.random.default_rng(1)
    monitor = CategoricalMonitor(MonitorSettings(reference_size=500, rearm_size=200, window=200,
                                                 categorical_window=200, evaluate_every=50))
    x = rng.choice(np.array(["a", "b", "c", "ünï", ""], dtype=object), n).tolist()
    x[::17] = [None] * len(x[::17])
    monitor.update(x)
    return monitor


MONITORS = {
    "numeric-warming-up": lambda: numeric_monitor(300),
    "numeric": numeric_monitor,
    "numeric-sliding": lambda: numeric_monitor(sliding_reference=True),
    "categorical-warming-up": lambda: categorical_monitor(300),
    "categorical": categorical_monitor,
}


# -- round trip --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MONITORS)
def test_encoding_is_stable_through_a_round_trip(name):
    """decode then encode gives back the same bytes: nothing in the state is lost or re-derived."""
    blob = encode_monitor(MONITORS[name]())
    assert blob[:4] == MAGIC
    assert encode_monitor(decode_monitor(blob)) == blob


small_ints = st.integers(-2**53, 2**53)
json_leaf = st.one_of(st.none(), st.booleans(), small_ints, st.floats(allow_nan=False, allow_infinity=False),
                      st.text(max_size=20))
supported = st.sampled_from([np.float64, np.int64, np.int32, np.int16, np.int8, np.bool_, np.uint8])
numpy_array = supported.flatmap(lambda dt: arrays(dt, st.integers(0, 50)))
keys = st.text(max_size=10).filter(lambda k: k != "__array__")  # the encoding's own marker
values = st.recursive(st.one_of(json_leaf, numpy_array),
                      lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=5)),
                      max_leaves=20)


def same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and \
            np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b and type(a) is type(b)


@settings(max_examples=150, deadline=None)
@given(state=st.dictionaries(keys, values, max_size=6))
def test_pack_unpack_round_trip(state):
    assert same(unpack(pack(state)), state)


# -- what cannot be read is a StateError -------------------------------------------------------
def blob_parts(blob: bytes) -> tuple[dict, bytes]:
    _, _, length = _PREFIX.unpack_from(blob)
    return orjson.loads(blob[_PREFIX.size:_PREFIX.size + length]), blob[_PREFIX.size + length:]


def rebuild(header: dict, body: bytes, version: int = VERSION, magic: bytes = MAGIC) -> bytes:
    head = orjson.dumps(header)
    return _PREFIX.pack(magic, version, len(head)) + head + body


def test_state_error_is_a_value_error():
    assert issubclass(StateError, ValueError)


def test_bad_magic():
    blob = encode_monitor(numeric_monitor(300))
    with pytest.raises(StateError, match="magic"):
        decode_monitor(b"XXXX" + blob[4:])
    with pytest.raises(StateError, match="magic"):
        decode_monitor(pickle.dumps({"type": "numeric"}))


@pytest.mark.parametrize("version", [0, VERSION + 1, 65535])
def test_wrong_version(version):
    header, body = blob_parts(encode_monitor(numeric_monitor(300)))
    with pytest.raises(StateError, match="version"):
        decode_monitor(rebuild(header, body, version=version))


@pytest.mark.parametrize("name", ["numeric", "categorical"])
def test_every_truncation_is_a_state_error(name):
    blob = encode_monitor(MONITORS[name]())
    cuts = sorted(set(range(0, 64)) | set(range(64, len(blob), max(1, len(blob) // 400))) | {len(blob) - 1})
    for cut in cuts:
        with pytest.raises(StateError):
            decode_monitor(blob[:cut])


def test_empty_and_tiny_records():
    for blob in (b"", b"SD", MAGIC):
        with pytest.raises(StateError):
            decode_monitor(blob)


def _corrupt(change):
    def make() -> bytes:
        header, body = blob_parts(encode_monitor(numeric_monitor(3000)))
        header = copy.deepcopy(header)
        return change(header, body)
    return make


def _drop_offset(h, b):
    del h["arrays"][0]["offset"]
    return rebuild(h, b)


def _wrong_shape(h, b):
    h["arrays"][1]["shape"] = [7, 3]
    return rebuild(h, b)


def _odd_nbytes(h, b):
    h["arrays"][1]["nbytes"] = 3
    return rebuild(h, b)


def _negative_offset(h, b):
    h["arrays"][1]["offset"] = -16
    return rebuild(h, b)


def _array_index(h, b):
    h["state"]["monitor"]["reference"] = {"__array__": 999}
    return rebuild(h, b)


def _descriptor_not_a_dict(h, b):
    h["arrays"][0] = 1
    return rebuild(h, b)


def _object_dtype(h, b):
    h["arrays"][1]["dtype"] = "|O"
    return rebuild(h, b)


def _unknown_setting(h, b):
    h["state"]["settings"]["from_the_future"] = 1
    return rebuild(h, b)


def _invalid_setting(h, b):
    h["state"]["settings"]["window"] = 5
    return rebuild(h, b)


def _unknown_type(h, b):
    h["state"]["type"] = "image"
    return rebuild(h, b)


def _missing_detector(h, b):
    del h["state"]["monitor"]["adwin"]
    return rebuild(h, b)


def _not_json(h, b):
    return _PREFIX.pack(MAGIC, VERSION, 5) + b"{{{{{" + b


def _json_list(h, b):
    return rebuild([], b)


CORRUPTIONS = {f.__name__.lstrip("_"): _corrupt(f) for f in (
    _drop_offset, _wrong_shape, _odd_nbytes, _negative_offset, _array_index, _descriptor_not_a_dict,
    _object_dtype, _unknown_setting, _invalid_setting, _unknown_type, _missing_detector, _not_json, _json_list)}


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corrupt_record_is_a_state_error(name):
    """The module promises a StateError for a corrupt or foreign record, never another exception
    (a KeyError or IndexError would escape a consumer's ``except StateError``) and never a monitor
    built from misread bytes."""
    blob = CORRUPTIONS[name]()
    with pytest.raises(StateError):
        decode_monitor(blob)


# -- no pickle, bounded size -------------------------------------------------------------------
FORBIDDEN = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}


def test_no_pickle_in_the_core():
    package = Path(detectors.__file__).parent
    sources = sorted(package.glob("*.py"))
    assert len(sources) >= 10
    for path in sources:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            else:
                names = set()
            assert not names & FORBIDDEN, f"{path.name}:{node.lineno} imports {names & FORBIDDEN}"
            if isinstance(node, ast.keyword):
                assert node.arg != "allow_pickle", f"{path.name}:{node.lineno} passes allow_pickle"
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                # np.load reads .npy/.npz, which may hold pickled objects.
                assert (node.value.id, node.attr) not in {("np", "load"), ("numpy", "load")}, \
                    f"{path.name}:{node.lineno} uses {node.value.id}.{node.attr}"


def test_state_is_json_plus_raw_arrays():
    blob = encode_monitor(categorical_monitor())
    header, body = blob_parts(blob)
    assert set(header) == {"state", "arrays"}
    assert sum(d["nbytes"] for d in header["arrays"]) == len(body)
    assert {d["dtype"] for d in header["arrays"]} <= {"<f8", "<i8", "<i4", "<i2", "|i1", "|b1", "|u1"}


def layout(state: dict) -> tuple[dict, list[np.ndarray]]:
    """The documented layout, written out plainly: arrays replaced by ``{"__array__": i}`` in the
    order they appear (arrays of objects, i.e. categories, by lists of strings), numpy scalars by
    plain numbers, tuples by lists, keys by strings."""
    found: list[np.ndarray] = []

    def walk(value):
        if isinstance(value, np.ndarray) and value.dtype == object:
            return [None if v is None else str(v) for v in value]
        if isinstance(value, np.ndarray):
            found.append(value)
            return {"__array__": len(found) - 1}
        if isinstance(value, dict):
            return {str(k): walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        if isinstance(value, np.generic):
            return value.item()
        return value

    return walk(state), found


def check_layout(state: dict) -> None:
    header, body = blob_parts(pack(state))
    expected, found = layout(state)
    assert header["state"] == expected
    assert [d["dtype"] for d in header["arrays"]] == [a.dtype.newbyteorder("<").str if a.dtype.byteorder == ">"
                                                      else a.dtype.str for a in found]
    assert b"".join(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes() for a in found) == body


@pytest.mark.parametrize("name", MONITORS)
def test_pack_writes_the_documented_layout_for_every_monitor(name):
    monitor = MONITORS[name]()
    check_layout({"type": "x", "settings": monitor.settings.to_dict(), "monitor": monitor.get_state()})


@settings(max_examples=150, deadline=None)
@given(state=st.dictionaries(keys, values, max_size=6))
def test_pack_writes_the_documented_layout(state):
    check_layout(state)


def test_pack_takes_numpy_scalars_tuples_and_int_keys_and_refuses_anything_else():
    assert unpack(pack({"a": np.int64(3), "b": np.float64(0.5), "c": (1, 2), "d": {7: "x"}})) == \
        {"a": 3, "b": 0.5, "c": [1, 2], "d": {"7": "x"}}
    with pytest.raises(TypeError, match="set"):
        pack({"a": {1, 2}})


def test_encoded_numeric_state_at_window_1000_is_at_most_64_kb():
    rng = np.random.default_rng(2)
    monitor = NumericMonitor(MonitorSettings(window=1000, reference_size=5000))
    for _ in range(10):  # a long stationary stream: ADWIN's window grows all along
        x = rng.normal(0, 1, 100_000)
        x[rng.random(x.size) < 0.05] = np.nan
        monitor.update(x)
    assert monitor.adwin.width > 500_000
    blob = encode_monitor(monitor)
    assert len(blob) <= 64 * 1024, len(blob)
