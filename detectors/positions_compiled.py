"""Reference positions of a model's values, all its features' searches at once (numba).

A batch of a few values per (model, feature) spends its lookups waiting on memory: a model's
reference tables (20 features x 1,000 distinct values) are cold by the time the next batch
comes, and a binary search over a row walks each value's ~10 steps one miss after another. So
each row is searched in two levels: first among the last values of its blocks of ``BLOCK``
(``coarse``: a sixteenth of the row, which stays warm between batches), then inside the one
block that holds the answer (two cache lines). Every value of every feature takes its next
step of a level in the same pass, without a branch, so the misses of a pass overlap instead of
queueing (memory-level parallelism), and the whole lookup is one call instead of one per feature.

The result is ``Reference.positions``' (``2 * searchsorted(distinct, x) + (x is a reference
value)``), exactly: each search is a lower bound on the same sorted values.

>>> guard = np.full(2 * BLOCK, np.inf)                      # two rows, room BLOCK
>>> guard[:3], guard[BLOCK] = [1.0, 2.0, 4.0], 0.5
>>> positions(guard, coarse_of(guard), BLOCK, np.array([[0.0, 2.0, 3.0, 9.0], [0.5, 0.7, -1.0, 0.5]])).tolist()
[[0, 3, 4, 6], [1, 2, 0, 1]]
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


@njit(cache=True, nogil=True)
def positions(guard, coarse, room, x):
    """``x`` (rows x values, finite) looked up in ``guard``: row ``i``'s sorted distinct reference
    values at ``guard[i * room:]``, padded with +inf to ``room`` entries, a multiple of ``BLOCK``
    with at least one +inf (``room_for``); ``coarse``: ``coarse_of(guard)``."""
    k, n = x.shape
    total = k * n
    blocks = room // BLOCK
    base = np.empty(total, np.int64)
    flat = np.empty(total)
    for i in range(k):
        for v in range(n):
            base[i * n + v] = i * blocks
            flat[i * n + v] = x[i, v]
    # The first block whose last value is >= x (one exists: each row ends with +inf), in
    # lock-step: one step of every search per pass.
    length = blocks
    while length > 1:
        half = length >> 1
        for t in range(total):
            b = base[t]
            if coarse[b + half] < flat[t]:  # compiled to a conditional move
                b += half
            base[t] = b
        length -= half
    for i in range(k):
        for v in range(n):
            t = i * n + v
            b = base[t]
            block = b - i * blocks + (1 if coarse[b] < flat[t] else 0)
            base[t] = i * room + block * BLOCK
    # The lower bound inside that block: its last value is >= x, the block before's is not.
    length = BLOCK
    while length > 1:
        half = length >> 1
        for t in range(total):
            b = base[t]
            if guard[b + half] < flat[t]:
                b += half
            base[t] = b
        length -= half
    out = np.empty((k, n), np.int64)
    for i in range(k):
        for v in range(n):
            t = i * n + v
            b = base[t]
            j = b - i * room + (1 if guard[b] < flat[t] else 0)
            # The value's position: 2 j, plus one if it is the reference value found there.
            out[i, v] = 2 * j + (1 if guard[i * room + j] == flat[t] else 0)
    return out
