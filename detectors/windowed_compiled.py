"""A group's windowed KS and histogram tests at its evaluation points, in one compiled call (numba):
which features might fire, for ``together._windowed``.

The numpy form sorts each feature's window, reads the reference tables at every sorted position
and counts histogram cells, a dozen calls per evaluation point (~0.5 ms for twenty features of a
1,000-value window). Here each window is counted per reference position instead (positions are
small integers), and one walk over the positions gives both statistics:

- KS: with ``c`` window values at a position, at ranks ``i0 + 1 .. i0 + c``, the largest of
  ``i * size - at_or_below * w`` over them is at the last rank and the largest of
  ``below * w - (i - 1) * size`` at the first; so ``D`` is the numpy form's maximum, in the same
  integers, then the same two float divisions;
- histogram: each position's count added to its cell, then the G statistic, its terms in the
  numpy form's arithmetic, summed in order (not pairwise: a few units in the last place, which
  the caller's margin, a relative 1e-9 of the threshold, absorbs).

Only the *quiet* decision comes from here: a feature near or over a threshold is handed to its
monitor's own update, which decides exactly.

>>> ext = np.array([[0, 1, 1, 2, 3, 3]], dtype=np.int16)     # one feature, positions 0..3
>>> quiet = np.ones(1, dtype=bool)
>>> tables = (np.zeros(1, np.int64), np.array([0, 1, 1, 2], np.int32), np.array([1, 1, 2, 2], np.int32),
...           np.array([2], np.int64), np.array([0.9]))
>>> windowed_quiet(ext, 2, np.array([3]), 4, True, False, *tables, np.zeros(4, np.int16), 4, 1,
...                np.ones((1, 1)), np.ones(1), 1e-9, quiet)
>>> quiet.tolist()
[True]
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def windowed_quiet(ext, old, points, w, ks_on, hist_on, row_start, below, at_or_below, ref_size, critical,
                   cell, width, cells, hist_reference, hist_critical, margin, quiet):
    """Clear ``quiet[i]`` where feature ``i``'s KS statistic or G statistic at one of ``points``
    is over, or within ``margin`` (relative) of, its threshold. ``ext[i]``: the feature's
    ``old`` recent positions then this batch's; its window at point ``t`` ends at column
    ``old + t``. The tables are ``together._Tables``' (``cell`` holds ``i * cells`` plus the
    cell, row ``i`` from ``i * width``)."""
    k = ext.shape[0]
    count = np.zeros(width, np.int64)
    observed = np.zeros(cells, np.float64)
    for i in range(k):
        if not quiet[i]:
            continue
        base = row_start[i]
        size = ref_size[i]
        scale = size * w
        for t in points:
            stop = old + t + 1
            for j in range(stop - w, stop):
                count[ext[i, j]] += 1
            down = np.int64(-1) << 62
            up = np.int64(-1) << 62
            cum = np.int64(0)
            observed[:] = 0.0
            for p in range(width):
                c = count[p]
                if c == 0:
                    continue
                count[p] = 0
                if ks_on:
                    d_here = (cum + c) * size - np.int64(at_or_below[base + p]) * w
                    u_here = np.int64(below[base + p]) * w - cum * size
                    if d_here > down:
                        down = d_here
                    if u_here > up:
                        up = u_here
                if hist_on:
                    observed[cell[i * width + p] - i * cells] += c
                cum += c
            if ks_on:
                d = max(max(up, 0) / scale, max(down, 0) / scale)
                if d > critical[i] * (1 - margin):
                    quiet[i] = False
                    break
            if hist_on and _g_statistic(hist_reference[i], observed) > hist_critical[i] * (1 - margin):
                quiet[i] = False
                break


@njit(cache=True, nogil=True)
def _g_statistic(r, o):
    """``frequency.g_statistic`` of reference counts ``r`` and window counts ``o`` (one row of
    ``together._g_statistics``)."""
    n_r = 0.0
    n_o = 0.0
    for j in range(r.size):
        n_r += r[j]
        n_o += o[j]
    total = n_r + n_o
    g_r = 0.0
    g_o = 0.0
    for j in range(r.size):
        column = r[j] + o[j]
        if r[j] > 0:
            g_r += r[j] * np.log(r[j] * total / (n_r * column))
        if o[j] > 0:
            g_o += o[j] * np.log(o[j] * total / (n_o * column))
    return 2.0 * (g_r + g_o)
