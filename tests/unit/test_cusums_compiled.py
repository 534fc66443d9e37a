"""``cusums_compiled.cusums``: a model's CUSUMs over a batch, as the closed form of
``across._segmented_cusum`` gives them on the gathered steps."""

from __future__ import annotations

import numpy as np
from streamdrift.detectors.across import _segmented_cusum
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
    expected = _segmented_cusum(steps, np.full(k, n), start, threshold)
    got = cusums(table, index, start, threshold)
    for name, e, g in zip(("crossed", "sums", "zeros"), expected, got):
        assert g.tolist() == e.tolist(), name
    crossed, _, zeros = expected
    outcomes = {"crossed": crossed.any(), "quiet": not crossed.all(), "back at 0": (zeros >= 0).any()}
    return {name for name, happened in outcomes.items() if happened}
