"""Reference positions of a model's values, all its features' binary searches at once (numba).

A batch of a few values per (model, feature) spends its lookups waiting on memory: a model's
reference tables (20 features x 1,000 distinct values) are cold by the time the next batch
comes, and one ``searchsorted`` per feature walks each value's ~10 steps one miss after another.
Here every value of every feature takes its next step in the same pass, without a branch, so
the misses of a pass overlap instead of queueing (memory-level parallelism), and the whole
lookup is one call instead of one per feature.

The result is ``Reference.positions``' (``2 * searchsorted(distinct, x) + (x is a reference
value)``), exactly: each search is a lower bound on the same sorted values.

>>> guard = np.array([1.0, 2.0, 4.0, np.inf, 0.5, np.inf, np.inf, np.inf])  # rows of room 4
>>> positions(guard, 4, np.array([[0.0, 2.0, 3.0, 9.0], [0.5, 0.7, -1.0, 0.5]])).tolist()
[[0, 3, 4, 6], [1, 2, 0, 1]]
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def positions(guard, room, x):
    """``x`` (rows x values, finite) looked up in ``guard``: row ``i``'s sorted distinct reference
    values at ``guard[i * room:]``, padded with +inf to ``room`` entries (``together._Tables``)."""
    k, n = x.shape
    total = k * n
    base = np.empty(total, np.int64)
    flat = np.empty(total)
    for i in range(k):
        for v in range(n):
            base[i * n + v] = i * room
            flat[i * n + v] = x[i, v]
    # Lower bound (the first entry >= x) in lock-step: one step of every search per pass.
    length = room
    while length > 1:
        half = length >> 1
        for t in range(total):
            b = base[t]
            if guard[b + half] < flat[t]:  # compiled to a conditional move
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
