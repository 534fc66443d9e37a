"""``cusums_compiled.cusums``: a model's CUSUMs over a batch, as ``cusum.first_crossing``'s
closed form (a cumulative sum less its running minimum) gives them on the gathered steps."""

from __future__ import annotations

import numpy as np
from streamdrift.detectors.cusum import first_crossing
from streamdrift.detectors.cusums_compiled import cusums


def test_cusums_are_the_closed_form_s():
    seen = set()
    for seed in range(60):
        seen |= one_case(np.random.default_rng(seed))
    assert seen == {"crossed", "quiet", "back at 0"}  # every outcome was compared


def one_case(rng) -> set[str]:
    c, k, n, width = int(rng.integers(1, 4)), int(rng.integers(1, 25)), int(rng.integers(1, 300)), 64
    drift = int(rng.integers(-40, 40))
    table = (rng.integers(-3000, 3000, (2, c, k * width)) + np.array([drift, -drift])[:, None, None]).astype(np.int32)
    index = rng.integers(0, width, (k, n)) + np.arange(k)[:, None] * width
    start = rng.integers(0, 20_000, (2 * c, k))
    start[:, ::3] = 0
    threshold = rng.integers(1_000, 200_000, (2 * c, k))
    steps = table.take(index, axis=2).reshape(2 * c, k * n)
    expected = closed_form(steps.reshape(2 * c, k, n), start, threshold)
    got = cusums(table, index, start, threshold)
    for name, e, g in zip(("crossed", "sums", "zeros"), expected, got):
        assert g.tolist() == e.tolist(), name
    crossed, _, zeros = expected
    outcomes = {"crossed": crossed.any(), "quiet": not crossed.all(), "back at 0": (zeros >= 0).any()}
    return {name for name, happened in outcomes.items() if happened}


def closed_form(steps, start, threshold):
    """Each (row, feature)'s CUSUM from ``start`` over its ``steps``: (crossed, final sum, last
    value after which it was 0, or -1), each rows x features; ``first_crossing`` agrees where
    it does not cross."""
    rows, k, n = steps.shape
    crossed, sums, zeros = np.zeros((rows, k), bool), np.zeros((rows, k), np.int64), np.zeros((rows, k), np.int64)
    for r in range(rows):
        for f in range(k):
            c = np.cumsum(steps[r, f].astype(np.int64))
            run = c - np.minimum(np.minimum.accumulate(c), -start[r, f])
            zero = np.flatnonzero(run == 0)
            crossed[r, f], sums[r, f], zeros[r, f] = run.max() > threshold[r, f], run[-1], zero[-1] if zero.size else -1
            if not crossed[r, f]:
                assert first_crossing(steps[r, f].astype(np.int64), int(start[r, f]), int(threshold[r, f]))[1:] == \
                    (run[-1], zeros[r, f])
    return crossed, sums, zeros
