"""Every model of a batch looked up in its reference tables and its CUSUMs run, in one compiled
call (numba), the tables read where they live.

A compiled call costs ~6 us before any work (checking and boxing its arguments), and the
cross-model path would pay it per model and batch, a fixed cost that small batches pay in full.
Here one call takes every model's values, flat, and a row of numbers per model naming its tables
*by address* (``Plans``): each model's tables stay the arrays its ``together._Tables`` made once,
nothing is copied or pooled per batch. A value's position is ``positions_compiled.positions``'
(``Reference.positions``, exactly), each CUSUM the integer recurrence ``S = max(0, S + step)``
with the step read from the model's table at that position: the same integers as
``cusum.first_crossing``'s closed form, so the same crossings, sums and run starts.

A table's address is valid while the array lives; ``Plans`` holds every table it names until the
call returns.

>>> guard = np.full(BLOCK, np.inf)                           # one feature's reference, room BLOCK
>>> guard[:3] = [1.0, 2.0, 4.0]
>>> u_rows = np.arange(1, 2 * BLOCK + 1) / 10
>>> steps = np.tile(np.array([[3], [-1]], np.int32), (2 * BLOCK, 1, 1))  # positions x 2 sides x 1 CUSUM
>>> plans = Plans()
>>> plans.add(np.array([[0.5, 2.0, 9.0]]), guard, *narrow(guard), BLOCK, np.zeros(1, np.int64), u_rows,
...           steps, np.array([[0], [0]]), np.array([[5], [5]]))
>>> positions, u, crossed, sums, zeros = plans.run(True)
>>> positions.tolist(), u.tolist(), crossed.tolist(), sums.tolist(), zeros.tolist()
([0, 3, 6], [0.1, 0.4, 0.7], [[True], [False]], [[9], [0]], [[-1], [2]])
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit

from .addresses import address, pointer
from .positions_compiled import BLOCK, narrow, positions

# Columns of a plan's row in ``Plans.meta``.
_K, _N, _AT, _GUARD, _GUARD32, _COARSE, _ROOM, _ROW_START, _U_ROWS, _U_SIZE, _STEPS, _STEPS_SIZE, _PENDING, \
    _PENDING_SIZE, _PENDING_ROOM = range(15)

#: A row's pending columns when there is no pending buffer to write to.
NO_PENDING = (0, 0, 0)


@njit(cache=True, nogil=True)
def lookups_and_cusums(values, meta, start, threshold, c, scores):
    """Every plan's (row ``p`` of ``meta``) values, ``values[at:at + k * n]`` as (k, n), looked
    up (positions; with ``scores`` also each value's uniform score, ``u_rows[row_start[i] +
    position]``), and its CUSUMs run from ``start`` / ``threshold`` (2 c rows: up sides name by
    name, then down sides; the plans' features side by side as columns). Returns positions and
    uniform scores (flat, as ``values``; no scores unless ``scores``), and, each 2 c x features:
    whether the sum exceeded its threshold, the final sum, and the last value (in the batch)
    after which it was 0, or -1."""
    total = values.size
    found_all = np.empty(total, np.int64)
    u_all = np.empty(total if scores else 0)
    columns = start.shape[1]
    crossed = np.zeros((2 * c, columns), np.bool_)
    sums = np.empty((2 * c, columns), np.int64)
    zeros = np.full((2 * c, columns), -1, np.int64)
    column = 0
    for p in range(meta.shape[0]):
        k, n, at, room = meta[p, _K], meta[p, _N], meta[p, _AT], meta[p, _ROOM]
        guard = carray(pointer(meta[p, _GUARD]), k * room, np.float64)
        guard32 = carray(pointer(meta[p, _GUARD32]), k * room, np.float32)
        coarse = carray(pointer(meta[p, _COARSE]), k * (room // BLOCK), np.float32)
        row_start = carray(pointer(meta[p, _ROW_START]), k, np.int64)
        x = values[at:at + k * n].reshape((k, n))
        found = positions(guard, guard32, coarse, room, x)
        found_all[at:at + k * n] = found.ravel()
        if scores:
            u_rows = carray(pointer(meta[p, _U_ROWS]), meta[p, _U_SIZE], np.float64)
            for i in range(k):
                for v in range(n):
                    u_all[at + i * n + v] = u_rows[found[i, v] + row_start[i]]
            pending, room = meta[p, _PENDING_SIZE], meta[p, _PENDING_ROOM]
            if meta[p, _PENDING] != 0 and pending + n < room:  # no block completes: after the pending values
                buffer = carray(pointer(meta[p, _PENDING]), k * room, np.float64)
                for i in range(k):
                    for v in range(n):
                        buffer[i * room + pending + v] = u_all[at + i * n + v]
        if c:
            size = meta[p, _STEPS_SIZE]
            # Position by position: a value's increments of every CUSUM on one cache line.
            table = carray(pointer(meta[p, _STEPS]), (size, 2, c), np.int32)
            index = np.empty(n, np.int64)
            for f in range(k):
                base = row_start[f]
                for v in range(n):
                    index[v] = found[f, v] + base
                for name in range(c):
                    # A name's two sides in one loop: two independent sums, whose steps overlap.
                    up_row, down_row = name, c + name
                    up, down = start[up_row, column + f], start[down_row, column + f]
                    up_limit, down_limit = threshold[up_row, column + f], threshold[down_row, column + f]
                    up_over = down_over = False
                    up_zero = down_zero = -1
                    # Without a branch (selects): the sign of a step is a coin toss.
                    for v in range(n):
                        j = index[v]
                        up += table[j, 0, name]
                        down += table[j, 1, name]
                        up_low, down_low = up <= 0, down <= 0
                        up_zero = v if up_low else up_zero
                        down_zero = v if down_low else down_zero
                        up = 0 if up_low else up
                        down = 0 if down_low else down
                        up_over |= up > up_limit
                        down_over |= down > down_limit
                    crossed[up_row, column + f], crossed[down_row, column + f] = up_over, down_over
                    sums[up_row, column + f], sums[down_row, column + f] = up, down
                    zeros[up_row, column + f], zeros[down_row, column + f] = up_zero, down_zero
        column += k
    return found_all, u_all, crossed, sums, zeros


class Plans:
    """The models of one call: their values, tables (by address, held here) and CUSUM starts."""

    __slots__ = ("values", "meta", "held", "starts", "thresholds", "at", "flat")

    def __init__(self):
        self.values, self.meta, self.held, self.starts, self.thresholds = [], [], [], [], []
        self.at = 0

    def add(self, values: np.ndarray, guard: np.ndarray, guard32: np.ndarray, coarse: np.ndarray, room: int,
            row_start: np.ndarray, u_rows: np.ndarray, steps: np.ndarray, start: np.ndarray, threshold: np.ndarray,
            fixed: list | None = None, pending: tuple = NO_PENDING) -> None:
        """One model: ``values`` (k x n, finite float64), its tables (``together._Tables``:
        ``guard`` of ``room`` per feature and its ``guard32`` and ``coarse``
        (``positions_compiled.narrow``), ``row_start``, ``u_rows``, ``steps`` as
        ``cusum_steps_by_position``: positions x 2 sides x c, int32, C-contiguous), its CUSUMs' ``start`` and ``threshold`` (2 c x k, int64). ``fixed``: the tables'
        part of its row (``fixed_row``), if kept. ``pending``: (address, values in it, room) of
        its ADWINs' pending buffer (k x room float64, ``together._AdwinVectors``), where the
        uniform scores are written after the values in it if they fit (no block completes).
        ``start`` and ``threshold`` may be ``None`` if ``run`` is given every model's at once."""
        k, n = values.shape
        row = fixed if fixed is not None else fixed_row(guard, guard32, coarse, room, row_start, u_rows, steps)
        self.meta.append([k, n, self.at, *row, *pending])
        self.held.append((guard, guard32, coarse, row_start, u_rows, steps))
        self.values.append(values.ravel())
        self.starts.append(start)
        self.thresholds.append(threshold)
        self.at += k * n

    def run(self, scores: bool, start: np.ndarray | None = None, threshold: np.ndarray | None = None):
        """``lookups_and_cusums`` of every model added (their values, flat: ``flat``). ``start``,
        ``threshold``: every model's CUSUM starts and thresholds side by side (2 c x features,
        int64), if the caller has them so; else those given to ``add``, joined."""
        if start is None:
            start, threshold = np.concatenate(self.starts, axis=1), np.concatenate(self.thresholds, axis=1)
        self.flat = np.concatenate(self.values)  # every model's values, in the order added
        return lookups_and_cusums(self.flat, np.array(self.meta, dtype=np.int64), start, threshold,
                                  start.shape[0] // 2, scores)


def meta_rows(ks: np.ndarray, ns, fixed: np.ndarray, pending: list | None) -> np.ndarray:
    """``Plans.meta`` made at once for models of ``ks`` features and ``ns`` values each (their
    values flat in that order), whose ``fixed_row`` s are the rows of ``fixed``, and whose
    ``pending`` columns are given (``None``: no pending buffer).

    >>> meta_rows(np.array([2, 1]), [3, 4], np.zeros((2, 9), np.int64), None)[:, :3].tolist()
    [[2, 3, 0], [1, 4, 6]]
    """
    meta = np.empty((ks.size, _PENDING_ROOM + 1), dtype=np.int64)
    meta[:, _K], meta[:, _N] = ks, ns
    sizes = meta[:, _K] * meta[:, _N]
    meta[:, _AT] = np.cumsum(sizes) - sizes
    meta[:, _GUARD:_PENDING] = fixed
    meta[:, _PENDING:] = NO_PENDING if pending is None else pending
    return meta


def fixed_row(guard: np.ndarray, guard32: np.ndarray, coarse: np.ndarray, room: int, row_start: np.ndarray,
              u_rows: np.ndarray, steps: np.ndarray) -> list:
    """The part of a model's row in ``Plans.meta`` that its tables fix (kept with the tables)."""
    if guard.dtype != np.float64 or guard32.dtype != np.float32 or coarse.dtype != np.float32 \
            or row_start.dtype != np.int64 or u_rows.dtype != np.float64 or steps.dtype != np.int32 or steps.ndim != 3 \
            or steps.shape[1] != 2:
        raise ValueError("tables of the wrong types for lookups_and_cusums")
    if room % BLOCK or guard.size != row_start.size * room or guard32.size != guard.size \
            or coarse.size != guard.size // BLOCK:
        raise ValueError(f"guard rows must be of room, a multiple of {BLOCK}, and coarse one entry per block")
    return [address(guard), address(guard32), address(coarse), room, address(row_start), address(u_rows), u_rows.size,
            address(steps), steps.shape[0]]
