"""``across_compiled.lookups_and_cusums``: every model's reference positions, uniform scores and
CUSUMs in one call, as the numpy expressions give them model by model (``searchsorted`` on each
row's distinct values, ``Reference.uniform_scores``, and the CUSUM's closed form: a cumulative
sum less its running minimum)."""

from __future__ import annotations

import numpy as np
import pytest

from streamdrift.detectors import MonitorSettings, NumericMonitor
from streamdrift.detectors.across_compiled import Plans, fixed_row
from streamdrift.detectors.cusum import first_crossing
from streamdrift.detectors.positions_compiled import BLOCK, narrow, positions, room_for
from streamdrift.detectors.together import CUSUMS, _Tables


@pytest.mark.parametrize("seed", range(40))
def test_positions_are_searchsorted_s(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 25))
    sizes = rng.integers(1, 1500, k)
    rows = [np.unique(np.round(rng.standard_t(3, int(size)), int(rng.integers(0, 4)))) for size in sizes]
    room = room_for(max(r.size for r in rows))
    guard = np.full((k, room), np.inf)
    for i, r in enumerate(rows):
        guard[i, :r.size] = r
    n = int(rng.integers(1, 400))
    x = np.round(rng.standard_t(3, (k, n)) * 1.5, int(rng.integers(0, 4)))  # many ties with reference values
    x[:, :3] = [[r[0], r[-1], r[-1] + 1.0] for r in rows]  # the extremes and past them
    x[0, 3 % n] = -0.0 if n > 3 else x[0, 0]
    expected = np.array([2 * r.searchsorted(row) + np.isin(row, r) for r, row in zip(rows, x)])
    assert positions(guard.ravel(), *narrow(guard.ravel()), room, x).tolist() == expected.tolist()


@pytest.mark.parametrize("seed", range(20))
def test_positions_where_float32_cannot_tell_s(seed):
    """The search reads float32 copies of the rows: values and reference values that round to
    the same float32 (a hair apart, huge beyond float32, tiny below its normal range) are told
    apart in float64, as ``searchsorted`` does."""
    rng = np.random.default_rng(seed)
    centre = rng.choice([1.0, -3.5, 1e-40, 1e300, -1e300, 0.0])
    hairs = np.unique(centre + np.concatenate(([0.0], rng.integers(-60, 60, 40) * np.spacing(centre or 1e-300))))
    others = np.unique(rng.normal(0, 1, 200) * (abs(centre) or 1.0))
    rows = [np.unique(np.concatenate((hairs, others[:int(rng.integers(0, 200))]))), hairs]
    room = room_for(max(r.size for r in rows))
    guard = np.full((2, room), np.inf)
    for i, r in enumerate(rows):
        guard[i, :r.size] = r
    x = np.concatenate((hairs, centre + rng.integers(-80, 80, 60) * np.spacing(centre or 1e-300), others[:20],
                        [np.finfo(np.float64).max, -np.finfo(np.float64).max]))
    x = np.tile(x, (2, 1))
    expected = np.array([2 * r.searchsorted(row) + np.isin(row, r) for r, row in zip(rows, x)])
    assert positions(guard.ravel(), *narrow(guard.ravel()), room, x).tolist() == expected.tolist()


def fitted_tables(rng) -> tuple[list[NumericMonitor], _Tables]:
    k = int(rng.integers(1, 6))
    monitors = [NumericMonitor(MonitorSettings(reference_size=int(rng.integers(200, 600)))) for _ in range(k)]
    for m in monitors:
        m.update(np.round(rng.standard_t(4, 700), int(rng.integers(0, 3))))
    return monitors, _Tables(monitors)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("names", [CUSUMS, ("page_hinkley",), ("scale",), ()])
def test_every_model_of_a_call_as_model_by_model(seed, names):
    rng = np.random.default_rng(seed)
    scores = bool(seed % 2)
    c = len(names)
    models, plans, expected = int(rng.integers(1, 8)), Plans(), []
    for _ in range(models):
        monitors, tables = fitted_tables(rng)
        k = len(monitors)
        x = np.round(rng.standard_t(4, (k, int(rng.integers(1, 200)))) + rng.normal(0, 0.5), 1)
        start = rng.integers(0, 20_000, (2 * c, k))
        start[:, ::2] = 0
        threshold = rng.integers(1_000, 200_000, (2 * c, k))
        steps, by_position = tables.cusum_steps(names), tables.cusum_steps_by_position(names)
        fixed = fixed_row(tables.guard, tables.guard32, tables.coarse, tables.room, tables.row_start, tables.u_rows,
                          by_position) if seed % 3 else None
        plans.add(x, tables.guard, tables.guard32, tables.coarse, tables.room, tables.row_start, tables.u_rows,
                  by_position, start, threshold, fixed)
        found = np.array([2 * m.reference.distinct.searchsorted(row) + np.isin(row, m.reference.distinct)
                          for m, row in zip(monitors, x)])
        u = np.array([m.reference.uniform_scores(row) for m, row in zip(monitors, found)])
        index = found + tables.row_start[:, None]
        cusums = closed_form(steps.take(index, axis=2).reshape(2 * c, k, x.shape[1]), start, threshold)
        expected.append((found, u, cusums))
    got_positions, got_u, *got_cusums = plans.run(scores)
    assert got_positions.tolist() == np.concatenate([f.ravel() for f, _, _ in expected]).tolist()
    if scores:
        assert got_u.tobytes() == np.concatenate([u.ravel() for _, u, _ in expected]).tobytes()
    else:
        assert got_u.size == 0
    for name, part, got in zip(("crossed", "sums", "zeros"), range(3), got_cusums):
        assert got.tolist() == np.concatenate([e[2][part] for e in expected], axis=1).tolist(), name


def test_a_table_read_by_address_must_be_c_contiguous():
    _, tables = fitted_tables(np.random.default_rng(0))
    steps = tables.cusum_steps_by_position(CUSUMS)
    with pytest.raises(ValueError, match="C-contiguous"):
        fixed_row(tables.guard, tables.guard32, tables.coarse, tables.room, tables.row_start, tables.u_rows,
                  tables.cusum_steps(CUSUMS)[:, :, ::-1].transpose(2, 0, 1))  # (positions, 2, c), not contiguous
    with pytest.raises(ValueError, match="C-contiguous"):
        fixed_row(tables.guard, tables.guard32, tables.coarse[::-1], tables.room, tables.row_start, tables.u_rows, steps)
    with pytest.raises(ValueError, match="wrong types"):
        fixed_row(tables.guard, tables.guard32, tables.coarse, tables.room, tables.row_start.astype(np.int32), tables.u_rows, steps)
    with pytest.raises(ValueError, match="multiple of"):
        fixed_row(tables.guard, tables.guard32, tables.coarse, tables.room - 1, tables.row_start, tables.u_rows, steps)


def test_the_cusums_take_every_outcome_s():
    """The CUSUM part of the kernel on synthetic step tables: crossings, quiet runs and runs
    back at 0 all compared with the closed form."""
    seen = set()
    for seed in range(60):
        rng = np.random.default_rng(seed)
        c, k, n, width = int(rng.integers(1, 4)), int(rng.integers(1, 25)), int(rng.integers(1, 300)), 64
        drift = int(rng.integers(-40, 40))
        table = (rng.integers(-3000, 3000, (2, c, k * width)) + np.array([drift, -drift])[:, None, None]).astype(np.int32)
        # One reference value per feature: every value looked up lands at position 0, 1 or 2.
        guard = np.tile(np.array([0.0] + [np.inf] * (BLOCK - 1)), k)
        x = rng.choice([-1.0, 0.0, 1.0], (k, n))
        row_start = (np.arange(k) * width).astype(np.int64)
        start = rng.integers(0, 20_000, (2 * c, k))
        start[:, ::3] = 0
        threshold = rng.integers(1_000, 200_000, (2 * c, k))
        plans = Plans()
        plans.add(x, guard, *narrow(guard), BLOCK, row_start, np.full(k * width, 0.5),
                  np.ascontiguousarray(table.transpose(2, 0, 1)), start, threshold)
        found, _, *got = plans.run(False)
        index = found.reshape(k, n) + row_start[:, None]
        expected = closed_form(table.take(index, axis=2).reshape(2 * c, k, n), start, threshold)
        for name, e, g in zip(("crossed", "sums", "zeros"), expected, got):
            assert g.tolist() == e.tolist(), name
        crossed, _, zeros = expected
        seen |= {name for name, happened in (("crossed", crossed.any()), ("quiet", not crossed.all()),
                                             ("back at 0", (zeros >= 0).any())) if happened}
    assert seen == {"crossed", "quiet", "back at 0"}


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


def test_uniform_scores_go_after_the_pending_values_when_they_fit():
    """With a pending buffer (``together._AdwinVectors``), a model's uniform scores are written
    after its pending values if they fit in its room (no block completes), and nowhere else."""
    rng = np.random.default_rng(2)
    plans, buffers, expected_rows = Plans(), [], []
    for pending, n, room in ((3, 4, 8), (3, 5, 8), (0, 2, 2), (0, 1, 2)):
        monitors, tables = fitted_tables(rng)
        k = len(monitors)
        buffer = np.full((k, room), -1.0)
        x = rng.normal(0, 1, (k, n))
        plans.add(x, tables.guard, tables.guard32, tables.coarse, tables.room, tables.row_start, tables.u_rows,
                  tables.cusum_steps_by_position(()), np.zeros((0, k), np.int64), np.zeros((0, k), np.int64),
                  pending=(buffer.__array_interface__["data"][0], pending, room))
        u = np.array([m.reference.uniform_scores(m.reference.positions(row)) for m, row in zip(monitors, x)])
        want = np.full((k, room), -1.0)
        if pending + n < room:
            want[:, pending:pending + n] = u
        buffers.append(buffer)
        expected_rows.append(want)
    plans.run(True)
    for buffer, want in zip(buffers, expected_rows):
        assert buffer.tolist() == want.tolist()
