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

import struct

import numpy as np
import orjson

MAGIC = b"SDST"
VERSION = 1
_PREFIX = struct.Struct("<4sHI")
_DTYPES = {"<f8", "<i8", "<i4", "<i2", "|i1", "|b1", "|u1"}


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

    def strip(value):
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                return [None if v is None else str(v) for v in value.tolist()]
            arr = np.ascontiguousarray(value)
            arr = arr.astype(arr.dtype.newbyteorder("<")) if arr.dtype.byteorder == ">" else arr
            arrays.append(arr)
            return {"__array__": len(arrays) - 1}
        if isinstance(value, dict):
            return {str(k): strip(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [strip(v) for v in value]
        if isinstance(value, (np.integer,)):
            return int(value)
        if isinstance(value, (np.floating,)):
            return float(value)
        return value

    body = strip(state)
    descr, offset = [], 0
    for arr in arrays:
        descr.append({"dtype": arr.dtype.str, "shape": list(arr.shape), "offset": offset, "nbytes": arr.nbytes})
        offset += arr.nbytes
    header = orjson.dumps({"state": body, "arrays": descr})
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
    arrays = []
    for d in descr:
        if d.get("dtype") not in _DTYPES:
            raise StateError(f"state array has unsupported dtype {d.get('dtype')!r}")
        end = d["offset"] + d["nbytes"]
        if end > len(data):
            raise StateError("state record is truncated (arrays)")
        arr = np.frombuffer(data[d["offset"]:end], dtype=np.dtype(d["dtype"])).copy()
        arrays.append(arr.reshape(d["shape"]))

    def restore(value):
        if isinstance(value, dict):
            if set(value) == {"__array__"}:
                return arrays[value["__array__"]]
            return {k: restore(v) for k, v in value.items()}
        if isinstance(value, list):
            return [restore(v) for v in value]
        return value

    return restore(body)


def encode_monitor(monitor) -> bytes:
    """A monitor's complete state as bytes (see the module docstring for the layout).

    >>> from streamdrift.detectors import NumericMonitor, MonitorSettings
    >>> m = NumericMonitor(MonitorSettings(reference_size=100))
    >>> _ = m.update(np.arange(150.0))
    >>> decode_monitor(encode_monitor(m)).seen
    150
    """
    kind = "numeric" if monitor.numeric else "categorical"
    return pack({"type": kind, "settings": monitor.settings.to_dict(), "monitor": monitor.get_state()})


def decode_monitor(blob: bytes):
    """Rebuild a monitor from ``encode_monitor`` output; detections continue exactly as before."""
    from .categorical import CategoricalMonitor
    from .numeric import NumericMonitor
    from .settings import MonitorSettings

    data = unpack(blob)
    try:
        cls = {"numeric": NumericMonitor, "categorical": CategoricalMonitor}[data["type"]]
        monitor = cls(MonitorSettings.from_dict(data["settings"]))
        monitor.set_state(data["monitor"])
    except (KeyError, TypeError, IndexError) as exc:
        raise StateError(f"state record does not describe a monitor: {exc!r}") from None
    return monitor
