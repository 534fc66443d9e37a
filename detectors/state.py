"""The explicit, versioned encoding of monitor state (never pickle).

Layout of an encoded state::

    b"SDST" | u16 version | u32 header length | header (JSON) | array bytes...

The header is JSON of plain numbers, strings and lists; every numpy array in the state is
replaced by ``{"__array__": i}`` and its raw little-endian bytes follow the header, described by
``header["arrays"][i] = {"dtype", "shape", "offset", "nbytes"}``. Reading checks the magic, the
version and every length, so a corrupt or foreign record raises ``StateError`` instead of
executing anything.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import orjson

MAGIC = b"SDST"
VERSION = 1
_PREFIX = struct.Struct("<4sHI")
_DTYPES = {"<f8", "<f4", "<i8", "<i4", "<i2", "|i1", "|b1", "|u1"}


class StateError(ValueError):
    """An encoded state that cannot be read: wrong magic, unknown version, truncated or corrupt."""


def pack(state: dict) -> bytes:
    """Encode a dict of numbers, strings, lists, dicts and numpy arrays.

    >>> blob = pack({"n": 3, "values": np.arange(3.0)})
    >>> restored = unpack(blob)
    >>> restored["n"], restored["values"].tolist()
    (3, [0.0, 1.0, 2.0])
    """
    arrays: list[np.ndarray] = []

    def as_json(value):
        # orjson walks the dicts and lists in C and asks only about what it does not know.
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                return [None if v is None else str(v) for v in value.tolist()]
            arr = np.ascontiguousarray(value)
            arr = arr.astype(arr.dtype.newbyteorder("<")) if arr.dtype.byteorder == ">" else arr
            arrays.append(arr)
            return {"__array__": len(arrays) - 1}
        if isinstance(value, np.integer):
            return int(value)
        if isinstance(value, np.floating):
            return float(value)
        raise TypeError(f"a state record cannot hold {type(value).__name__}")

    body = orjson.dumps(state, default=as_json, option=orjson.OPT_NON_STR_KEYS)
    descr, offset = [], 0
    for arr in arrays:
        descr.append({"dtype": arr.dtype.str, "shape": list(arr.shape), "offset": offset, "nbytes": arr.nbytes})
        offset += arr.nbytes
    header = b'{"state":' + body + b',"arrays":' + orjson.dumps(descr) + b"}"
    return b"".join([_PREFIX.pack(MAGIC, VERSION, len(header)), header] + [a.tobytes() for a in arrays])


def unpack(blob: bytes) -> dict:
    """Decode what ``pack`` wrote; raise ``StateError`` on anything else."""
    if len(blob) < _PREFIX.size:
        raise StateError("state record is shorter than its header")
    magic, version, length = _PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise StateError("not a streamdrift state record (bad magic)")
    if version != VERSION:
        raise StateError(f"state version {version} is not supported (this build reads version {VERSION})")
    start = _PREFIX.size + length
    if start > len(blob):
        raise StateError("state record is truncated (header)")
    try:
        header = orjson.loads(blob[_PREFIX.size:start])
        body, descr = header["state"], header["arrays"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise StateError(f"state header is corrupt: {exc}") from None
    data = memoryview(blob)[start:]
    if not isinstance(descr, list):
        raise StateError("state header is corrupt: array descriptors must be a list")
    arrays = [_read_array(data, d) for d in descr]

    def restore(value):
        if isinstance(value, dict):
            if set(value) == {"__array__"}:
                index = value["__array__"]
                if not isinstance(index, int) or not 0 <= index < len(arrays):
                    raise StateError(f"state refers to array {index!r}, which the record does not hold")
                return arrays[index]
            return {k: restore(v) for k, v in value.items()}
        if isinstance(value, list):
            return [restore(v) for v in value]
        return value

    return restore(body)


def _read_array(data: memoryview, d) -> np.ndarray:
    """One array of a record, after checking its descriptor against the bytes that are there."""
    if not isinstance(d, dict) or not {"dtype", "shape", "offset", "nbytes"} <= set(d):
        raise StateError(f"state array descriptor is corrupt: {d!r}")
    if d["dtype"] not in _DTYPES:
        raise StateError(f"state array has unsupported dtype {d['dtype']!r}")
    offset, nbytes, shape = d["offset"], d["nbytes"], d["shape"]
    if not all(isinstance(v, int) and v >= 0 for v in (offset, nbytes)) or not isinstance(shape, list) \
            or not all(isinstance(v, int) and v >= 0 for v in shape):
        raise StateError(f"state array descriptor has bad offset, size or shape: {d!r}")
    dtype = np.dtype(d["dtype"])
    if nbytes != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise StateError(f"state array of shape {shape} cannot hold {nbytes} bytes of {d['dtype']}")
    if offset + nbytes > len(data):
        raise StateError("state record is truncated (arrays)")
    return np.frombuffer(data[offset:offset + nbytes], dtype=dtype).copy().reshape(shape)


def frozen(state):
    """A copy of a state that later updates of what it came from cannot change (dicts, lists and
    arrays copied down to their leaves; numbers and strings are immutable anyway): ``pack`` of it,
    whenever it runs, gives what ``pack`` of the state gave at the moment of the copy. This is
    what lets a checkpoint be taken between two batches and encoded while the next ones run.

    >>> live = {"values": np.zeros(2), "recent": [[1, 2.0]]}
    >>> copy = frozen(live)
    >>> live["values"][0] = 5.0; live["recent"][0][0] = 7; live["recent"].append([3, 4.0])
    >>> copy["values"].tolist(), copy["recent"]
    ([0.0, 0.0], [[1, 2.0]])
    """
    kind = type(state)
    if kind is dict:
        # Numbers, strings and None are most of a state's values: kept without a call each;
        # arrays, most of the rest, copied without one.
        out = {}
        for key, value in state.items():
            kind = type(value)
            out[key] = value if kind in _IMMUTABLE else value.copy() if kind is np.ndarray else frozen(value)
        return out
    if kind is list or kind is tuple:
        return kind(map(frozen, state))
    if kind is np.ndarray:
        return state.copy()
    return state


_IMMUTABLE = frozenset((int, float, str, bool, type(None), np.float64, np.int64))


def monitor_record(monitor, reference_tag: str | None = None) -> dict:
    """What ``encode_monitor`` encodes, as a frozen dict (see ``frozen``): ``pack`` of it later
    gives the bytes ``encode_monitor`` gives now.

    >>> from streamdrift.detectors import NumericMonitor, MonitorSettings
    >>> m = NumericMonitor(MonitorSettings(reference_size=100))
    >>> _ = m.update(np.arange(150.0))
    >>> record, now = monitor_record(m), encode_monitor(m)
    >>> _ = m.update(np.arange(50.0))
    >>> pack(record) == now, pack(record) == encode_monitor(m)
    (True, False)
    """
    state = monitor.get_state()
    tagged = reference_tag is not None and monitor.kind != "categorical" and state.get("reference") is not None
    if tagged:
        state["reference"] = None  # stored in a record of its own, named by the tag
    record = {"type": monitor.kind, "settings": monitor.settings.to_dict(), "monitor": frozen(state)}
    if tagged:
        record["reference_tag"] = reference_tag
    return record


def encode_monitor(monitor, reference_tag: str | None = None) -> bytes:
    """A monitor's complete state as bytes (see the module docstring for the layout).

    With ``reference_tag`` a numeric monitor's reference values are left out and the record
    names them by that tag instead: a reference changes only when the monitor (re-)fits, so a
    checkpoint writes it once, in a record of its own (``reference_tag`` of it), and not again
    with every checkpoint of the monitor.

    >>> from streamdrift.detectors import NumericMonitor, MonitorSettings
    >>> m = NumericMonitor(MonitorSettings(reference_size=100))
    >>> _ = m.update(np.arange(150.0))
    >>> decode_monitor(encode_monitor(m)).seen
    150
    >>> tag = reference_tag(m.reference.values)
    >>> apart = encode_monitor(m, tag)
    >>> len(apart) < len(encode_monitor(m)), decode_monitor(apart, {tag: m.reference.values}).seen
    (True, 150)
    """
    return pack(monitor_record(monitor, reference_tag))


def reference_tag(values: np.ndarray) -> str:
    """A short name for a reference that changes whenever its values do (a digest of them).

    >>> reference_tag(np.arange(3.0)) == reference_tag(np.arange(3.0)), len(reference_tag(np.arange(3.0)))
    (True, 24)
    """
    return hashlib.blake2b(np.ascontiguousarray(values, dtype="<f8").tobytes(), digest_size=12).hexdigest()


def decode_monitor(blob: bytes, references: dict | None = None):
    """Rebuild a monitor from ``encode_monitor`` output; detections continue exactly as before.
    A record whose reference was written apart needs it in ``references`` (tag -> values)."""
    from .categorical import CategoricalMonitor
    from .multivariate import MultivariateMonitor, MultivariateSettings
    from .numeric import NumericMonitor
    from .settings import MonitorSettings

    data = unpack(blob)
    tag = data.get("reference_tag")
    if tag is not None:
        values = (references or {}).get(tag)
        if values is None:
            raise StateError(f"the reference record {tag!r} of this monitor is missing")
        data["monitor"]["reference"] = values
    try:
        cls, settings = {"numeric": (NumericMonitor, MonitorSettings), "categorical": (CategoricalMonitor, MonitorSettings),
                         "multivariate": (MultivariateMonitor, MultivariateSettings)}[data["type"]]
        monitor = cls(settings.from_dict(data["settings"]))
        monitor.set_state(data["monitor"])
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as exc:
        raise StateError(f"state record does not describe a monitor: {exc!r}") from None
    return monitor
