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


@njit(cache=True, nogil=True)
def _pairwise_leaf(a, start, n):
    """numpy's pairwise sum of at most 128 values: eight running sums, then the rest in turn."""
    if n < 8:
        res = -0.0
        for i in range(start, start + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    i = 8
    whole = n - n % 8
    while i < whole:
        p = start + i
        r0 += a[p]
        r1 += a[p + 1]
        r2 += a[p + 2]
        r3 += a[p + 3]
        r4 += a[p + 4]
        r5 += a[p + 5]
        r6 += a[p + 6]
        r7 += a[p + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[start + i]
        i += 1
    return res


@njit(cache=True, nogil=True)
def pairwise_sum(a, start, n):
    """``a[start:start + n].sum()`` as numpy sums float64, bit for bit (the blocks' sums must be
    ``ADWIN``'s): up to 128 values ``_pairwise_leaf``, above that the sum of two halves (the
    first a multiple of 8), each summed the same way - numpy's recursion, run here on a stack of
    its own (numba cannot call a recursive function from another one)."""
    if n <= 128:
        return _pairwise_leaf(a, start, n)
    starts, sizes = np.empty(64, np.int64), np.empty(64, np.int64)
    phase, left = np.zeros(64, np.int64), np.empty(64)
    top = 0
    starts[0], sizes[0] = start, n
    result = 0.0
    while True:
        s, m = starts[top], sizes[top]
        half = m // 2
        half -= half % 8
        if m <= 128:
            result = _pairwise_leaf(a, s, m)
        elif phase[top] == 0:  # the first half next
            phase[top] = 1
            top += 1
            starts[top], sizes[top], phase[top] = s, half, 0
            continue
        elif phase[top] == 1:  # the first half's sum in ``result``: the second half next
            left[top] = result
            phase[top] = 2
            top += 1
            starts[top], sizes[top], phase[top] = s + half, m - half, 0
            continue
        else:  # both halves summed
            result = left[top] + result
        top -= 1
        if top < 0:
            return result


@njit(cache=True, nogil=True)
def take_batch(pending, u, block, tot, var, counts, old_levels, total, variance, width, blocks_seen, clock, mwl,
               max_buckets, delta, margin):
    """A batch ``u`` (features x values) that completes at least one block, after the values
    ``pending`` (features x fewer than ``block``): the blocks summed as ``ADWIN.update_scores``
    sums them (``pairwise_sum`` of each block, then of its squared deviations from its mean),
    added by ``add_blocks`` to copies of the vectors (``tot``, ``var``, ``counts`` with
    ``old_levels`` in use, ``total``, ``variance``: left as they are). Returns the new ``tot``,
    ``var``, ``counts``, ``old`` flags, ``total``, ``variance``, the values left pending, then
    ``add_blocks``' width, blocks seen, cut flags, old buckets merged and levels in use."""
    k, waiting = pending.shape
    n = u.shape[1]
    blocks = (waiting + n) // block
    rest = waiting + n - blocks * block
    totals, variances = np.empty((k, blocks)), np.empty((k, blocks))
    left = np.empty((k, rest))
    row = np.empty(block)
    for i in range(k):
        for b in range(blocks):
            for j in range(block):
                t = b * block + j
                row[j] = pending[i, t] if t < waiting else u[i, t - waiting]
            s = pairwise_sum(row, 0, block)
            mean = s / block
            for j in range(block):
                d = row[j] - mean
                row[j] = d * d
            totals[i, b] = s
            variances[i, b] = pairwise_sum(row, 0, block)
        for j in range(rest):
            t = blocks * block + j
            left[i, j] = pending[i, t] if t < waiting else u[i, t - waiting]
    # A level more than these blocks can make; the columns in use copied.
    capacity = max_buckets + 1
    levels = old_levels + blocks + 1
    new_counts = np.zeros(levels, np.int64)
    new_counts[:old_levels] = counts[:old_levels]
    used = old_levels * capacity
    new_tot, new_var = np.empty((k, levels * capacity)), np.empty((k, levels * capacity))
    new_tot[:, :used] = tot[:, :used]
    new_var[:, :used] = var[:, :used]
    old = np.ones(levels * capacity, np.bool_)
    new_total, new_variance = total.copy(), variance.copy()
    width, blocks_seen, cut, merged_old, in_use = add_blocks(
        new_tot, new_var, old, new_counts, totals, variances, new_total, new_variance, width, blocks_seen, block, clock,
        mwl, max_buckets, delta, margin, old_levels)
    return (new_tot, new_var, new_counts, old, new_total, new_variance, left, width, blocks_seen, cut, merged_old,
            in_use)
