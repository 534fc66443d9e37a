"""Reference positions of a model's values, all its features' searches at once (numba).

A batch of a few values per (model, feature) spends its lookups waiting on memory: a model's
reference tables (20 features x 1,000 distinct values) are cold by the time the next batch
comes, and a binary search over a row walks each value's ~10 steps one miss after another. So
each row is searched in two levels: first among the last values of its blocks of ``BLOCK``
(``coarse``: a sixteenth of the row, which stays warm between batches), then inside the one
block that holds the answer. Every value of every feature takes its next step of a level in the
same pass, without a branch, so the misses of a pass overlap instead of queueing (memory-level
parallelism), and the whole lookup is one call instead of one per feature.

The search reads the rows rounded to float32 (``narrow``: half the bytes, a block one cache
line), and the float64 row only where a value rounds to the same float32 as a reference value
(a tie, or within a float32 rounding of one): rounding keeps the order, so a row value whose
float32 is below the value's is below the value, and one above is above. Cold, as in the
processor, the searches took 0.68x the time of a float64 search (an interleaved A/B of 37
models x 20 features x 47 values).

The result is ``Reference.positions``' (``2 * searchsorted(distinct, x) + (x is a reference
value)``), exactly: each search is a lower bound on the same sorted values.

>>> guard = np.full(2 * BLOCK, np.inf)                      # two rows, room BLOCK
>>> guard[:4], guard[BLOCK] = [1.0, 2.0, 2.0 + 1e-12, 4.0], 0.5  # 2.0 + 1e-12: 2.0 in float32
>>> positions(guard, *narrow(guard), BLOCK, np.array([[0.0, 2.0, 2.0 + 5e-13, 9.0], [0.5, 0.7, -1.0, 0.5]])).tolist()
[[0, 3, 4, 8], [1, 2, 0, 1]]
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Values per block of a row: two cache lines of float64.
BLOCK = 16


def room_for(distinct: int) -> int:
    """A row's room for ``distinct`` values: at least one +inf after them, a whole number of blocks."""
    return -(-(distinct + 1) // BLOCK) * BLOCK


def coarse_of(guard: np.ndarray) -> np.ndarray:
    """Each block's last value, row by row (rows of ``room // BLOCK``: rows are whole blocks)."""
    return np.ascontiguousarray(guard.reshape(-1, BLOCK)[:, -1])


def narrow(guard: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``guard`` rounded to float32, each block of ``BLOCK`` on a cache line of its own (64
    bytes), and its ``coarse_of``: the tables ``positions`` searches."""
    spare = np.empty(guard.size + BLOCK, np.float32)
    skip = (-spare.__array_interface__["data"][0] % 64) // 4  # float32 entries to the next line
    guard32 = spare[skip:skip + guard.size]
    with np.errstate(over="ignore"):  # beyond float32: +-inf, which keeps the order too
        guard32[:] = guard
    return guard32, coarse_of(guard32)


@njit(cache=True, nogil=True)
def positions(guard, guard32, coarse32, room, x):
    """``x`` (rows x values, finite) looked up in ``guard``: row ``i``'s sorted distinct reference
    values at ``guard[i * room:]``, padded with +inf to ``room`` entries, a multiple of ``BLOCK``
    with at least one +inf (``room_for``); ``guard32``, ``coarse32``: ``narrow(guard)``."""
    k, n = x.shape
    total = k * n
    blocks = room // BLOCK
    base = np.empty(total, np.int64)
    flat = np.empty(total, np.float32)
    for i in range(k):
        for v in range(n):
            base[i * n + v] = i * blocks
            flat[i * n + v] = np.float32(x[i, v])  # rounded to nearest: it keeps the order
    # The first block whose last value is >= x (one exists: each row ends with +inf), in
    # lock-step: one step of every search per pass.
    length = blocks
    while length > 1:
        half = length >> 1
        for t in range(total):
            b = base[t]
            if coarse32[b + half] < flat[t]:  # compiled to a conditional move
                b += half
            base[t] = b
        length -= half
    for i in range(k):
        for v in range(n):
            t = i * n + v
            b = base[t]
            block = b - i * blocks + (1 if coarse32[b] < flat[t] else 0)
            base[t] = i * room + block * BLOCK
    # The lower bound inside that block: its last value is >= x, the block before's is not.
    length = BLOCK
    while length > 1:
        half = length >> 1
        for t in range(total):
            b = base[t]
            if guard32[b + half] < flat[t]:
                b += half
            base[t] = b
        length -= half
    out = np.empty((k, n), np.int64)
    for i in range(k):
        for v in range(n):
            t = i * n + v
            b = base[t]
            b += 1 if guard32[b] < flat[t] else 0  # the first row value whose float32 is >= x's
            if guard32[b] == flat[t]:
                # Row values of x's float32 may lie either side of x: walk them in float64 (the
                # row's +inf ends the walk). Those before ``b`` are below x already.
                value = x[i, v]
                while guard[b] < value:
                    b += 1
                out[i, v] = 2 * (b - i * room) + (1 if guard[b] == value else 0)
            else:  # every row value from ``b`` on is above x, every one before it below
                out[i, v] = 2 * (b - i * room)
    return out
