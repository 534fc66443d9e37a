"""``joint_compiled``, JointShift's arithmetic in numba, against the numpy expressions it
replaces: the same coordinates, wealth, run starts, block sums and hits, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from streamdrift.detectors import joint_compiled
from streamdrift.detectors.joint import CLIP, U_QUANTUM, JointShift, pair_products, quantised, standardised

LIMIT = CLIP * U_QUANTUM


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("missing", [False, True])
def test_coordinates_are_numpy_s_quantised_terms(seed, missing):
    rng = np.random.default_rng(seed)
    d = int(rng.integers(1, 12))
    rows = rng.standard_t(2, size=(int(rng.integers(1, 400)), d)) * rng.uniform(0.1, 50, d)
    if missing:
        rows[rng.random(rows.shape) < 0.1] = np.nan
    z = standardised(rows, rng.normal(size=d), rng.uniform(0.2, 3, d))
    first, second = np.triu_indices(d)
    t = first.size
    mean, step = rng.normal(size=t), rng.uniform(10, 5000, t)
    expected = quantised(pair_products(np.ascontiguousarray(z.T)).T.copy(), mean, step, missing, True)
    got = joint_compiled.coordinates(z, first, second, mean, step, missing, LIMIT)
    assert got.tobytes() == np.ascontiguousarray(expected).tobytes()
    # The mean terms: z itself; and a transposed (column-major) view reads the same.
    mean, step = mean[:d], step[:d]
    expected = quantised(z, mean, step, missing, False)
    empty = np.zeros(0, np.int64)
    assert joint_compiled.coordinates(z, empty, empty, mean, step, missing, LIMIT).tobytes() == expected.tobytes()
    assert joint_compiled.coordinates(np.asfortranarray(z), empty, empty, mean, step, missing, LIMIT).tobytes() == \
        expected.tobytes()


def numpy_bet(u, weights, ranked, steps, limit, wealth, since, watched):
    """The closed form the kernel replaced (cusum.first_crossing's, one row per bet size)."""
    score = u @ weights
    where = ranked.searchsorted(score, "left") + ranked.searchsorted(score, "right")
    c = np.cumsum(steps.take(where, axis=1), axis=1)
    floor = -wealth[:, None]
    lowest = np.fmin.accumulate(c, axis=1)
    s = c - np.minimum(lowest, floor)
    over = s > limit
    at = k = -1
    if over.any():
        firsts = np.where(over.any(axis=1), over.argmax(axis=1), s.shape[1])
        at = int(firsts.min())
        k = int(np.argmax(firsts == at))
        c, lowest, s = c[:, :at + 1], lowest[:, :at + 1], s[:, :at + 1]
    reached = lowest[:, -1] <= floor[:, 0]
    last = c.shape[1] - 1 - np.argmin(c[:, ::-1], axis=1)
    return at, k, s[:, -1], np.where(reached, watched + last + 1, since)


@pytest.mark.parametrize("seed", range(30))
def test_bets_are_the_closed_form_s(seed):
    rng = np.random.default_rng(seed)
    n, width, m = int(rng.integers(1, 300)), int(rng.integers(1, 30)), int(rng.integers(5, 200))
    u = rng.integers(-3000, 3000, (n, width)).astype(np.float64)
    weights = rng.integers(-20_000, 20_000, width).astype(np.float64)
    ranked = np.sort(rng.choice(np.arange(-10 ** 6, 10 ** 6), m)).astype(np.float64) * width
    ranked[rng.integers(0, m, 3)] = (u[rng.integers(0, n, 3)] @ weights)  # ties with scores: both sides count
    ranked.sort()
    steps = rng.integers(-3000, 2500 + 200 * (seed % 3), (3, 2 * m + 1))
    limit = int(rng.integers(1000, 200_000))
    wealth, since = rng.integers(0, limit, 3), rng.integers(0, 50, 3)
    watched = int(rng.integers(50, 10 ** 6))
    at, k, wealth_after, since_after = numpy_bet(u, weights, ranked, steps, limit, wealth, since, watched)
    got_wealth, got_since, block_sum = wealth.copy(), since.copy(), rng.integers(-99, 99, width).astype(np.float64)
    summed = block_sum + u[:(at + 1 if at >= 0 else n)].sum(axis=0)
    assert joint_compiled.bet(u, weights, ranked, steps, limit, got_wealth, got_since, watched, block_sum, True) == (at, k)
    assert got_wealth.tolist() == wealth_after.tolist() and got_since.tolist() == since_after.tolist()
    assert block_sum.tolist() == summed.tolist()


def test_without_weights_only_the_block_sums_move():
    u = np.arange(12.0).reshape(4, 3)
    wealth, since, block_sum = np.array([5, 6, 7]), np.array([1, 2, 3]), np.zeros(3)
    assert joint_compiled.bet(u, np.zeros(1), np.zeros(1), np.ones((3, 3), np.int64), 1, wealth, since, 10, block_sum,
                              False) == (-1, -1)
    assert wealth.tolist() == [5, 6, 7] and since.tolist() == [1, 2, 3] and block_sum.tolist() == [18.0, 22.0, 26.0]


def test_projections_keep_numpy_s_path():
    rng = np.random.default_rng(1)
    detector = JointShift("covariance", max_quadratic=16)  # 10 features: 55 pairs > 16, projections
    detector.fit(rng.normal(size=(2000, 10)), share=1e6)
    assert detector.projections is not None and detector.update(rng.normal(size=(500, 10))) == []


def numpy_update(detector: JointShift, rows: np.ndarray) -> list:
    """``update`` as it was before the fused kernel: standardised rows, their coordinates (numpy's
    ``quantised``), then the bets block by block."""
    missing = bool(np.isnan(rows).any())
    z = detector.standardise(rows)
    terms = z if detector.terms == "mean" else pair_products(np.ascontiguousarray(z.T)).T.copy()
    u = quantised(terms, detector.phi_mean, detector._per_step, missing, terms is not z)
    hits = detector.update_coordinates(u) if rows.shape[0] else []
    detector._drift = bool(hits)
    return hits


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("terms", ["mean", "covariance"])
def test_update_events_is_the_numpy_path_bit_for_bit(seed, terms):
    """Runs of random lengths, some missing values, a correlation that appears halfway: the same
    hits, wealth, run starts, block sums and weights as standardising, quantising and betting in
    numpy."""
    rng = np.random.default_rng(seed)
    d = int(rng.integers(2, 9))
    reference = rng.normal(size=(1200, d)) * rng.uniform(0.5, 20, d)
    fused, plain = JointShift(terms, block=int(rng.integers(10, 80))), None
    fused.fit(reference, share=float(rng.uniform(1e3, 1e6)))
    plain = JointShift(terms, block=fused.block)
    plain.fit(reference, share=fused.share)
    for run in range(40):
        rows = rng.normal(size=(int(rng.integers(0, 120)), d)) * reference.std(axis=0)
        if run > 20:
            rows[:, 1] = 0.9 * rows[:, 0] + 0.45 * rows[:, 1]
        if seed % 3 == 0:
            rows[rng.random(rows.shape) < 0.05] = np.nan
        got = fused.update_events(np.ascontiguousarray(rows.T))
        expected = numpy_update(plain, rows)
        assert [(h.index, h.statistic, h.change_point, h.effect) for h in got] == \
            [(h.index, h.statistic, h.change_point, h.effect) for h in expected]
        for name in ("wealth", "since", "block_sum", "recent", "weights_exact", "ranked_scores"):
            a, b = getattr(fused, name), getattr(plain, name)
            assert (a is None and b is None) or a.tobytes() == b.tobytes(), name
        assert (fused.watched, fused.blocks, fused.held) == (plain.watched, plain.blocks, plain.held)
        if fused.held:
            break


def test_scores_are_the_float64_product():
    rng = np.random.default_rng(4)
    rows = rng.integers(-8192, 8193, (500, 210)).astype(np.float64)
    weights = rng.integers(-10 ** 8, 10 ** 8, 210).astype(np.float64)
    got = joint_compiled.scores(np.ascontiguousarray(rows.T).astype(np.int16), weights)
    assert got.tobytes() == (rows @ weights).tobytes()
