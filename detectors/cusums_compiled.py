"""A model's Page-Hinkley-type CUSUMs over a batch, read from its step table (numba).

The cross-model path ran every model's CUSUMs as one closed form in numpy (a gather of each
value's step from the model's table, a cumulative sum, a running minimum and three reductions,
each a pass over sides x CUSUMs x values int64 temporaries). Here each CUSUM is one loop,
``S = max(0, S + step)``, the step read where it is used: the same integers (the closed form *is*
this recurrence), so the same crossings, sums and run starts.

>>> table = np.array([[[5, -3, 2]], [[-5, 3, -2]]], dtype=np.int32)  # 2 sides x 1 CUSUM x 3 positions
>>> crossed, sums, zeros = cusums(table, np.array([[0, 0, 1, 2]]), np.array([[1], [4]]), np.array([[9], [9]]))
>>> crossed.tolist(), sums.tolist(), zeros.tolist()
([[True], [False]], [[10], [1]], [[-1], [1]])
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def cusums(table, index, start, threshold):
    """Every CUSUM of one model: ``table`` (2 sides, CUSUMs, positions) of steps, ``index``
    (features x values) each value's column in it, ``start`` and ``threshold`` (side * CUSUMs +
    CUSUM, feature). Returns, each (rows, features): whether the sum exceeded its threshold, the
    final sum, and the last value (in the batch) after which it was 0, or -1."""
    c = table.shape[1]
    k, n = index.shape
    crossed = np.zeros((2 * c, k), np.bool_)
    sums = np.empty((2 * c, k), np.int64)
    zeros = np.full((2 * c, k), -1, np.int64)
    for side in range(2):
        for name in range(c):
            row = side * c + name
            steps = table[side, name]
            for f in range(k):
                s = start[row, f]
                limit = threshold[row, f]
                over = False
                zero = -1
                for v in range(n):
                    s += steps[index[f, v]]
                    if s <= 0:
                        s = 0
                        zero = v
                    elif s > limit:
                        over = True
                crossed[row, f] = over
                sums[row, f] = s
                zeros[row, f] = zero
    return crossed, sums, zeros
