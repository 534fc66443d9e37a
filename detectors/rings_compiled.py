"""Every quiet group's rings of recent values, positions and missing flags, and its cached recent
positions, extended in one compiled call (numba) for a whole batch.

``together._Rings`` keeps a group's rings of a kind as the rows of one array, so a group's
extension is four slice assignments; but at a few dozen values per feature their calls, not the
copying, were the cost, paid per group and batch. Here each group is a row of numbers (``row``:
its arrays' addresses, sizes and counts, read where they are, as ``across_compiled`` reads the
tables) and one call writes them all: value ``t`` of a batch of ``n`` goes to slot
``(count + t) % size`` of its ring, the last ``size`` of them if the batch is longer, exactly as
``Ring.extend``.

>>> values = np.array([[1.0, 2.0, 3.0]])
>>> ring = np.zeros((1, 2))
>>> positions, flags = np.zeros((1, 4), np.int64), np.ones((1, 4), np.bool_)
>>> fixed = rings_fixed(ring, positions, flags)
>>> extend_rings(values.ravel(), np.array([7, 8, 9]), np.array([row(1, 3, 0, (1, 3, 3), 0, fixed)]))
>>> ring.tolist(), positions.tolist(), flags.tolist()
([[2.0, 3.0]], [[8, 9, 0, 7]], [[False, False, True, False]])
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit

from .addresses import address, pointer

# Columns of a group's row: what changes every batch, then what its arrays fix (``fixed``).
_K, _N, _AT, _VALUES_COUNT, _POSITIONS_COUNT, _MISSING_COUNT, _RECENT_COUNT, _VALUES, _VALUES_SIZE, _POSITIONS, \
    _POSITIONS_SIZE, _MISSING, _MISSING_SIZE, _RECENT, _RECENT_SIZE, _RECENT_KIND = range(16)

#: ``_RECENT_KIND``: no cached recent positions, or their dtype.
NO_RECENT, RECENT_INT16, RECENT_INT64 = 0, 1, 2

#: The fixed part of a row without recent positions.
NO_RECENT_ROW = (0, 1, NO_RECENT)


def rings_fixed(values: np.ndarray, positions: np.ndarray, missing: np.ndarray) -> tuple:
    """The part of a row that a group's rings (each kind one k x size array) fix: made once."""
    if values.dtype != np.float64 or positions.dtype != np.int64 or missing.dtype != np.bool_:
        raise ValueError("rings of the wrong types for extend_rings")
    return (address(values), values.shape[1], address(positions), positions.shape[1], address(missing),
            missing.shape[1])


def recent_fixed(recent: np.ndarray) -> tuple:
    """The part of a row that a group's cached recent positions (k x size, int16 or int64) fix."""
    if recent.dtype not in (np.int16, np.int64):
        raise ValueError("recent positions must be int16 or int64")
    return address(recent), recent.shape[1], RECENT_INT16 if recent.dtype == np.int16 else RECENT_INT64


def row(k: int, n: int, at: int, counts, recent_count: int, rings: tuple, recent: tuple = NO_RECENT_ROW) -> list:
    """A group's row: ``k`` features of ``n`` values each, from ``at`` in the call's flat values
    and positions; its rings' counts (values, positions, missing flags) and its recent
    positions' count; ``rings_fixed`` of its rings and ``recent_fixed`` of its recent positions
    (``together._RecentPositions``' buffer), if it keeps them."""
    return [k, n, at, *counts, recent_count, *rings, *recent]


@njit(cache=True, nogil=True)
def _extend(buffer, size, count, items, at, k, n):
    """Row ``i`` of ``buffer`` (k x size) extended by ``items[at + i * n:][:n]``."""
    first = n - size if n > size else 0
    for i in range(k):
        for t in range(first, n):
            buffer[i * size + (count + t) % size] = items[at + i * n + t]


@njit(cache=True, nogil=True)
def extend_rings(values, positions, meta):
    """Each group's (row of ``meta``) rings extended by its values and positions (flat, features
    one after the other) and as many ``False`` missing flags, and its recent positions by its
    positions. The counts are the caller's to advance."""
    for g in range(meta.shape[0]):
        k, n, at = meta[g, _K], meta[g, _N], meta[g, _AT]
        size = meta[g, _VALUES_SIZE]
        _extend(carray(pointer(meta[g, _VALUES]), k * size, np.float64), size, meta[g, _VALUES_COUNT], values,
                at, k, n)
        size = meta[g, _POSITIONS_SIZE]
        _extend(carray(pointer(meta[g, _POSITIONS]), k * size, np.int64), size, meta[g, _POSITIONS_COUNT],
                positions, at, k, n)
        size = meta[g, _MISSING_SIZE]
        flags = carray(pointer(meta[g, _MISSING]), k * size, np.bool_)
        count = meta[g, _MISSING_COUNT]
        first = n - size if n > size else 0
        for i in range(k):
            for t in range(first, n):
                flags[i * size + (count + t) % size] = False
        kind = meta[g, _RECENT_KIND]
        size = meta[g, _RECENT_SIZE]
        if kind == 1:
            recent16 = carray(pointer(meta[g, _RECENT]), k * size, np.int16)
            _extend(recent16, size, meta[g, _RECENT_COUNT], positions, at, k, n)
        elif kind == 2:
            recent64 = carray(pointer(meta[g, _RECENT]), k * size, np.int64)
            _extend(recent64, size, meta[g, _RECENT_COUNT], positions, at, k, n)
