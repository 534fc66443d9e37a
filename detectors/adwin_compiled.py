"""A group's ADWINs taking their new blocks, in one compiled call (numba).

``together._adwin`` keeps a group's ADWINs as vectors over its features, one bucket structure
for all. Adding a block is a handful of elementwise operations on those vectors, a merge a few
more, and every ``clock`` blocks the cut test; in numpy each operation is a call on 20 values,
so a block cost ~50-100 us of calls. Here the same arithmetic runs in one pass: each operation
is the numpy expression's, element by element in the same order (``ADWIN._add_summary``,
``_compress`` and the first pass of ``_detect_change``), so the buckets, sums and widths are
bit for bit those of ``ADWIN.update``.

Buckets are columns of ``tot`` / ``var`` (features x slots): level ``l`` holds its buckets,
oldest first, in slots ``l * capacity`` onwards (``counts[l]`` of them; ``capacity`` is
``max_buckets + 1``, what a level holds before it is compressed); ``old`` says which slots hold
a bucket that was there before the call.

>>> tot, var = np.zeros((1, 3 * 3)), np.zeros((1, 3 * 3))
>>> counts, old = np.zeros(3, np.int64), np.zeros(9, np.bool_)
>>> total, variance = np.zeros(1), np.zeros(1)
>>> blocks = np.array([[1.0, 3.0, 2.0]])
>>> width, seen, cut, merged, in_use = add_blocks(tot, var, old, counts, blocks, np.zeros((1, 3)), total, variance,
...                                       0, 0, 4, 1, 5, 2, 0.01, 1e-9, 1)
>>> width, seen, counts.tolist(), float(tot[0, 0]), float(tot[0, 3]), total.tolist(), variance.tolist()
(12, 3, [1, 1, 0], 2.0, 4.0, [6.0], [0.5])
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def add_blocks(tot, var, old, counts, totals, variances, total, variance, width, blocks_seen, block, clock, mwl,
               max_buckets, delta, margin, old_levels):
    """Add the blocks ``totals`` / ``variances`` (features x blocks, in order) to every row's
    ADWIN. ``total``, ``variance``, ``tot``, ``var``, ``old`` and ``counts`` are updated in
    place (``counts`` must have room for a level more than the blocks can make). Returns
    (width, blocks seen, which rows the cut test might fire for (``margin``: it errs towards
    firing, and the caller leaves those rows to ``ADWIN.update``), how many old buckets each of
    the first ``old_levels`` levels lost to merges, and the levels in use: ``old_levels`` or one
    past the highest a merge reached)."""
    k, nb = totals.shape
    capacity = max_buckets + 1
    levels = counts.size
    cut = np.zeros(k, np.bool_)
    merged_old = np.zeros(old_levels, np.int64)
    in_use = old_levels
    sizes = np.empty(levels * capacity)
    totals_in_order = np.empty(levels * capacity)
    for j in range(nb):
        # ADWIN._add_summary
        if width:
            for i in range(k):
                d = total[i] / width - totals[i, j] / block
                variance[i] = variance[i] + (variances[i, j] + (width * block) * (d * d) / (width + block))
        else:
            for i in range(k):
                variance[i] = variance[i] + variances[i, j]
        width += block
        for i in range(k):
            total[i] = total[i] + totals[i, j]
        slot = counts[0]
        for i in range(k):
            tot[i, slot] = totals[i, j]
            var[i, slot] = variances[i, j]
        old[slot] = False
        counts[0] += 1
        # ADWIN._compress: the two oldest of a full level merge into the next level's newest.
        level = 0
        while counts[level] > max_buckets:
            first = level * capacity
            if level < old_levels:
                merged_old[level] += np.int64(old[first]) + np.int64(old[first + 1])
            size = block << level
            up = (level + 1) * capacity + counts[level + 1]
            for i in range(k):
                t1, t2, v1, v2 = tot[i, first], tot[i, first + 1], var[i, first], var[i, first + 1]
                d = t1 / size - t2 / size
                tot[i, up] = t1 + t2
                var[i, up] = v1 + v2 + (size * size) * (d * d) / (2 * size)
            old[up] = False
            counts[level + 1] += 1
            in_use = max(in_use, level + 2)
            for q in range(first + 2, first + counts[level]):
                for i in range(k):
                    tot[i, q - 2] = tot[i, q]
                    var[i, q - 2] = var[i, q]
                old[q - 2] = old[q]
            counts[level] -= 2
            level += 1
        blocks_seen += 1
        if blocks_seen % clock == 0 and width > 2 * mwl:
            _cut_test(tot, counts, capacity, block, width, total, variance, delta, mwl, margin, sizes,
                      totals_in_order, cut)
    return width, blocks_seen, cut, merged_old, in_use


@njit(cache=True, nogil=True)
def _cut_test(tot, counts, capacity, block, width, total, variance, delta, mwl, margin, sizes, totals_in_order,
              cut):
    """The first pass of ``ADWIN._detect_change`` for every row: the splits between buckets
    (oldest first) long enough on both sides, and whether a row's means differ at one of them
    by its bound (less ``margin``)."""
    levels = counts.size
    b = 0
    for lv in range(levels - 1, -1, -1):
        for q in range(counts[lv]):
            sizes[b] = float(block << lv)
            b += 1
    if b < 2:
        return
    dd = math.log(2.0 * math.log(width) / delta)
    for i in range(tot.shape[0]):
        b = 0
        u0 = 0.0
        n0 = 0.0
        for lv in range(levels - 1, -1, -1):
            base = lv * capacity
            for q in range(counts[lv]):
                totals_in_order[b] = tot[i, base + q]
                b += 1
        for s in range(b - 1):
            n0 += sizes[s]
            u0 += totals_in_order[s]
            n1 = width - n0
            if mwl > block and not (n0 >= mwl and n1 >= mwl):
                continue
            m = 1.0 / (n0 - mwl + 1) + 1.0 / (n1 - mwl + 1)
            two_m, bias = 2.0 * m, 2.0 / 3.0 * dd * m
            u1 = total[i] - u0
            delta_mean = u0 / n0 - u1 / n1
            epsilon = np.sqrt(two_m * (variance[i] / width) * dd) + bias
            if abs(delta_mean) >= epsilon * (1 - margin):
                cut[i] = True
                break
