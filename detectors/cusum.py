"""One-sided CUSUM on integer increments: the engine under Page-Hinkley and the missing-rate test.

Scores are quantised to integers (``QUANTUM`` steps per unit) so that the cumulative sums are
exact: a batch of a thousand values and the same values one at a time reach bit-identical sums,
hence identical detections.
"""

from __future__ import annotations

import numpy as np

#: Integer steps per unit of score. Scores are bounded by ~4 (normal scores of a finite reference),
#: so sums over any realistic batch stay far inside int64.
QUANTUM = 1 << 20


def quantise(scores: np.ndarray) -> np.ndarray:
    """Scores as exact int64 increments."""
    return np.rint(np.asarray(scores, dtype=np.float64) * QUANTUM).astype(np.int64)


def first_crossing(increments: np.ndarray, start: int, threshold: int) -> tuple[int | None, int, int]:
    """Run ``S = max(0, S + x)`` from ``S = start`` over ``increments``.

    Returns the index of the first ``S > threshold`` (or ``None``), ``S`` after the last
    increment processed (the crossing one when there is a crossing), and the last index at or
    before that where ``S`` was 0 (-1 if none): the run that crossed began right after it, which
    is the CUSUM's own estimate of where the change started.

    >>> first_crossing(np.array([3, -1, 4, 4]), 0, 9)
    (3, 10, -1)
    >>> first_crossing(np.array([-5, 2]), 1, 9)
    (None, 2, 0)
    """
    if increments.size == 0:
        return None, start, -1
    # Closed form of the recursion: S_t = C_t - min(-start, min_{j<=t} C_j), exact in integers.
    c = np.cumsum(increments)
    s = c - np.minimum(np.minimum.accumulate(c), -start)
    over = np.flatnonzero(s > threshold)
    end = int(over[0]) if over.size else s.size - 1
    zeros = np.flatnonzero(s[:end + 1] == 0)
    zero_at = int(zeros[-1]) if zeros.size else -1
    return (end if over.size else None), int(s[end]), zero_at
