"""``positions_compiled.positions``: every value's reference position as ``Reference.positions``
gives it (numpy's ``searchsorted`` on each row's distinct values)."""

from __future__ import annotations

import numpy as np
import pytest

from streamdrift.detectors.positions_compiled import positions


@pytest.mark.parametrize("seed", range(40))
def test_positions_are_searchsorted_s(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 25))
    sizes = rng.integers(1, 1500, k)
    rows = [np.unique(np.round(rng.standard_t(3, int(size)), int(rng.integers(0, 4)))) for size in sizes]
    room = max(r.size for r in rows) + 1
    guard = np.full((k, room), np.inf)
    for i, r in enumerate(rows):
        guard[i, :r.size] = r
    n = int(rng.integers(1, 400))
    x = np.round(rng.standard_t(3, (k, n)) * 1.5, int(rng.integers(0, 4)))  # many ties with reference values
    x[:, :3] = [[r[0], r[-1], r[-1] + 1.0] for r in rows]  # the extremes and past them
    x[0, 3 % n] = -0.0 if n > 3 else x[0, 0]
    expected = np.array([2 * r.searchsorted(row) + np.isin(row, r) for r, row in zip(rows, x)])
    assert positions(guard.ravel(), room, x).tolist() == expected.tolist()
