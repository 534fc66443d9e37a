"""``positions_compiled.positions``: every value's reference position as ``Reference.positions``
gives it (numpy's ``searchsorted`` on each row's distinct values)."""

from __future__ import annotations

import numpy as np
import pytest

from streamdrift.detectors.positions_compiled import lookup, positions


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


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("scores", [True, False])
def test_lookup_gives_the_tables_indices_and_uniform_scores(seed, scores):
    """``lookup``: the positions, the indices into a fitted group's tables and the uniform
    scores, as the numpy expressions of ``together`` give them from the positions."""
    from streamdrift.detectors import MonitorSettings, NumericMonitor
    from streamdrift.detectors.together import _Tables

    rng = np.random.default_rng(seed)
    monitors = [NumericMonitor(MonitorSettings(reference_size=int(rng.integers(200, 600)))) for _ in range(4)]
    for m in monitors:
        m.update(np.round(rng.standard_t(4, 700), int(rng.integers(0, 3))))
    tables = _Tables(monitors)
    x = np.round(rng.standard_t(4, (4, int(rng.integers(1, 300)))), 1)
    found, index, u = lookup(tables.guard, tables.room, x, tables.row_start, tables.u_rows, scores)
    assert found.tolist() == positions(tables.guard, tables.room, x).tolist()
    assert index.tolist() == (found + tables.row_start[:, None]).tolist()
    if scores:
        denominator = (2.0 * (tables.size + 1))[:, None]  # Reference.uniform_scores' arithmetic
        expected = (tables.below.take(index) + tables.at_or_below.take(index) + 1) / denominator
        assert u.tobytes() == expected.tobytes()
        assert np.array_equal(u, np.array([m.reference.uniform_scores(row) for m, row in zip(monitors, found)]))
    else:
        assert u.size == 0
