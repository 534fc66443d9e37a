"""``JointShift``'s per-event arithmetic compiled (numba): its coordinates and its bets.

In numpy, an event of 20 features costs the covariance detector six passes over its 210 terms
(products, less the mean, in steps, clipped, rounded, the score) and its bets a dozen calls
whatever the batch size: 4 us per event at 44 events per model and batch. Here each event is
one pass, in the same IEEE operations in the same order, so every coordinate, score, wealth and
hit is bit for bit what the numpy expressions in ``joint`` give (the tests compare the two).

>>> z = np.array([[0.5, -1.0], [2.0, 0.25]])
>>> first, second = np.triu_indices(2)
>>> u = coordinates(z, first, second, np.zeros(3), np.full(3, 1024.0), False, 8192.0)
>>> u.tolist()
[[256.0, -512.0, 1024.0], [4096.0, 512.0, 64.0]]
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def coordinates(z, first, second, mean, step, missing, limit):
    """``joint.quantised`` of the terms of standardised rows ``z`` (clipped to +-``limit``): the
    products ``z[:, first] * z[:, second]`` (the covariance terms), or ``z`` itself when
    ``first`` is empty (the mean terms)."""
    n = z.shape[0]
    products = first.shape[0] > 0
    width = first.shape[0] if products else z.shape[1]
    u = np.empty((n, width))
    for r in range(n):
        for q in range(width):
            v = z[r, first[q]] * z[r, second[q]] if products else z[r, q]
            v = v - mean[q]
            v = v * step[q]
            if missing and np.isnan(v):
                v = 0.0
            # np.clip's order: NaN stays NaN (only a missing value makes one, set to 0 above).
            if v < -limit:
                v = -limit
            elif v > limit:
                v = limit
            u[r, q] = np.rint(v)
    return u


@njit(cache=True, nogil=True)
def _rank_position(ranked, score):
    """``ranked.searchsorted(score, "left") + ranked.searchsorted(score, "right")``."""
    lo, hi = 0, ranked.shape[0]
    while lo < hi:  # the first position whose score is >= score
        mid = (lo + hi) >> 1
        if ranked[mid] < score:
            lo = mid + 1
        else:
            hi = mid
    left = lo
    hi = ranked.shape[0]
    while lo < hi:  # the first position whose score is > score
        mid = (lo + hi) >> 1
        if ranked[mid] <= score:
            lo = mid + 1
        else:
            hi = mid
    return left + lo


@njit(cache=True, nogil=True)
def _wager(steps, where, limit, wealth, since, after):
    """Every bet's e-CUSUM ``max(0, wealth + step)`` at rank position ``where``; a wealth back at
    0 starts its run ``after`` this row. Returns the smallest bet index whose wealth exceeds
    ``limit``, or -1."""
    crossed = -1
    for b in range(steps.shape[0]):
        s = wealth[b] + steps[b, where]
        if s <= 0:
            s = 0
            since[b] = after
        wealth[b] = s
        if s > limit and crossed < 0:
            crossed = b
    return crossed


@njit(cache=True, nogil=True)
def bet(u, weights, ranked, steps, limit, wealth, since, watched, block_sum, betting):
    """Advance over the coordinates ``u`` (the rows of one block at most): each row's score
    (weights times it, exact: integers below 2^53) ranked among ``ranked``, each bet's e-CUSUM
    ``max(0, wealth + step)`` (``since``: the row, counted from the fit, after the last one at
    which it was 0), and ``block_sum`` plus the row. ``betting`` False: only the sums (no
    weights yet). Stops at the first row at which a wealth exceeds ``limit``; returns (that row,
    the smallest bet index crossing there), or (-1, -1). ``wealth``, ``since`` and ``block_sum``
    are updated in place up to and including that row."""
    n, width = u.shape
    for r in range(n):
        crossed = -1
        if betting:
            score = 0.0
            for q in range(width):
                score += u[r, q] * weights[q]
            crossed = _wager(steps, _rank_position(ranked, score), limit, wealth, since, watched + r + 1)
        for q in range(width):
            block_sum[q] += u[r, q]
        if crossed >= 0:
            return r, crossed
    return -1, -1


@njit(cache=True, nogil=True)
def advance(x, lo, hi, center, scale, zclip, first, second, mean, step, limit, weights, ranked, steps, wlimit,
            wealth, since, watched, block_sum, betting):
    """``coordinates`` and ``bet`` fused, from the raw rows: events ``lo:hi`` of ``x`` (features x
    events), each standardised (``joint.standardised``: less ``center``, over ``scale``, clipped
    to +-``zclip``), made into its coordinates and bet on at once, so no array of coordinates is
    made. A missing value (NaN) makes a coordinate 0, as ``coordinates`` with ``missing``. Each
    value is made by the same operations in the same order as ``standardised`` and
    ``coordinates`` give; the score is summed in four parts (exact either way: integers whose
    every partial sum stays below 2^53), so the loop need not wait for each addition. Returns
    what ``bet`` returns (the row counted from ``lo``)."""
    d = x.shape[0]
    products = first.shape[0] > 0
    width = first.shape[0] if products else d
    z = np.empty(d)
    u = np.empty(width)
    for r in range(hi - lo):
        e = lo + r
        for f in range(d):
            v = (x[f, e] - center[f]) / scale[f]
            if v < -zclip:  # np.clip's order: NaN stays NaN
                v = -zclip
            elif v > zclip:
                v = zclip
            z[f] = v
        if products:
            for q in range(width):
                u[q] = z[first[q]] * z[second[q]]
        else:
            for q in range(width):
                u[q] = z[q]
        for q in range(width):
            v = (u[q] - mean[q]) * step[q]
            if np.isnan(v):
                v = 0.0
            if v < -limit:
                v = -limit
            elif v > limit:
                v = limit
            u[q] = np.rint(v)
        for q in range(width):
            block_sum[q] += u[q]
        if not betting:
            continue
        s0 = s1 = s2 = s3 = 0.0
        q = 0
        while q + 4 <= width:
            s0 += u[q] * weights[q]
            s1 += u[q + 1] * weights[q + 1]
            s2 += u[q + 2] * weights[q + 2]
            s3 += u[q + 3] * weights[q + 3]
            q += 4
        while q < width:
            s0 += u[q] * weights[q]
            q += 1
        crossed = _wager(steps, _rank_position(ranked, (s0 + s1) + (s2 + s3)), wlimit, wealth, since, watched + r + 1)
        if crossed >= 0:
            return r, crossed
    return -1, -1


@njit(cache=True, nogil=True)
def scores(terms, weights):
    """``terms.T @ weights`` for integer ``terms`` (coordinates x rows, int16: coordinates are
    clipped to +-8192) and integer ``weights``: every row's score, exact (every product and partial
    sum an integer below 2^53), so in any order. A quarter of the float64 rows' memory: closing a
    block reads every reference row of the model, and with many models those reads miss the cache
    (64 models of 20 features: 27-33 against 93-97 us per block closed with BLAS on float64)."""
    width, n = terms.shape
    out = np.zeros(n)
    for q in range(width):
        w = weights[q]
        for r in range(n):
            out[r] += terms[q, r] * w
    return out
