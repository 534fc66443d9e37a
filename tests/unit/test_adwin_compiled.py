"""``adwin_compiled.add_blocks``: a group's ADWINs taking blocks in one compiled pass leave
exactly the buckets, width and sums that ``ADWIN.update`` leaves, call after call, and its cut
test flags every ADWIN that ``ADWIN.update`` finds a cut for (it may flag more: the caller then
leaves that ADWIN to ``ADWIN.update``)."""

from __future__ import annotations

import numpy as np
import pytest

from streamdrift.detectors import ADWIN
from streamdrift.detectors.adwin_compiled import add_blocks, pairwise_sum, take_batch
from streamdrift.detectors.together import MARGIN


@pytest.mark.parametrize("seed", range(8))
def test_blocks_added_together_are_adwin_update_s(seed):
    rng = np.random.default_rng(seed)
    block, clock, max_buckets = int(rng.choice([4, 8, 32])), int(rng.integers(1, 4)), int(rng.integers(2, 6))
    k = int(rng.integers(1, 12))
    adwins = [ADWIN(delta=1e-3, block=block, clock=clock, max_buckets=max_buckets, min_window_length=10)
              for _ in range(k)]
    for a in adwins:
        a.fit(None)
    capacity = max_buckets + 1
    tot = var = np.zeros((k, 0))
    counts = np.zeros(0, np.int64)
    levels_used, width, seen = 1, 0, 0
    total, variance = np.zeros(k), np.zeros(k)
    drifting = rng.integers(0, k)
    fed = compared = 0
    for call in range(int(rng.integers(2, 6))):
        nb = int(rng.integers(1, 60))
        values = rng.uniform(0.0, 1.0, (k, nb * block))
        if call >= 1:
            values[drifting] = rng.uniform(0.6, 1.0, nb * block)  # a change for one of them
        blocks = values.reshape(k, nb, block)
        totals = blocks.sum(axis=2)
        variances = ((blocks - (totals / block)[:, :, None]) ** 2).sum(axis=2)
        # Room for the levels these blocks can make, the old buckets kept (as together._adwin).
        levels = levels_used + nb + 1
        grown_tot, grown_var = np.zeros((k, levels * capacity)), np.zeros((k, levels * capacity))
        used = min(tot.shape[1], levels_used * capacity)
        grown_tot[:, :used], grown_var[:, :used] = tot[:, :used], var[:, :used]
        grown_counts = np.zeros(levels, np.int64)
        grown_counts[:min(counts.size, levels_used)] = counts[:levels_used]
        tot, var, counts = grown_tot, grown_var, grown_counts
        old = np.ones(levels * capacity, np.bool_)
        width, seen, cut, _, levels_used = add_blocks(tot, var, old, counts, totals, variances, total, variance,
                                                      width, seen, block, clock, 10, max_buckets, 1e-3, MARGIN,
                                                      levels_used)
        hits = [a.update(row) for a, row in zip(adwins, values)]
        fed += nb * block
        for i, a in enumerate(adwins):
            if hits[i]:
                assert cut[i], f"ADWIN {i} found a cut the compiled pass did not flag"
                continue
            if a.width != fed:  # cut earlier: its state left the group's (the caller's fallback)
                continue
            compared += 1
            assert (a.width, a.blocks_seen) == (width, seen)
            assert (a.total, a.variance) == (total[i], variance[i])
            assert [[tuple(b) for b in level] for level in a.levels if level] == [
                list(zip(tot[i, lv * capacity:lv * capacity + c], var[i, lv * capacity:lv * capacity + c]))
                for lv, c in enumerate(counts[:levels_used].tolist()) if c]
    assert compared >= k  # the state was compared after every call for the ADWINs without a cut


def test_the_cut_test_flags_a_change():
    """A clear change in one ADWIN's values: ``ADWIN.update`` cuts, and the pass flags it."""
    a = ADWIN(delta=1e-3, block=8, clock=1, max_buckets=5, min_window_length=10)
    a.fit(None)
    rng = np.random.default_rng(0)
    values = np.concatenate((rng.uniform(0.0, 0.5, 800), rng.uniform(0.5, 1.0, 800)))[None, :]
    blocks = values.reshape(1, -1, 8)
    totals = blocks.sum(axis=2)
    variances = ((blocks - (totals / 8)[:, :, None]) ** 2).sum(axis=2)
    levels = 2 + totals.shape[1]
    tot, var = np.zeros((1, levels * 6)), np.zeros((1, levels * 6))
    *_, cut, _, _ = add_blocks(tot, var, np.ones(levels * 6, np.bool_), np.zeros(levels, np.int64), totals, variances,
                               np.zeros(1), np.zeros(1), 0, 0, 8, 1, 10, 5, 1e-3, MARGIN, 1)
    assert a.update(values[0]) and cut.tolist() == [True]


@pytest.mark.parametrize("n", [*range(1, 40), 64, 127, 128, 129, 136, 255, 256, 1000, 4096, 4097])
def test_pairwise_sum_is_numpys_sum(n):
    """The blocks' sums must be bit for bit ``ADWIN``'s, which numpy makes."""
    rng = np.random.default_rng(n)
    rows = rng.uniform(0.0, 1.0, (40, n + 3)) * rng.choice([1.0, 1e-9, 1e9], (40, 1))
    for row in rows:
        assert pairwise_sum(row, 3, n) == row[3:].sum()


@pytest.mark.parametrize("seed", range(12))
def test_a_batch_taken_in_one_call_is_adwin_update_scores_s(seed):
    """``take_batch``: the pending values and a batch that completes blocks, summed and added as
    ``ADWIN.update_scores`` adds them (buckets, width, sums, blocks seen, the values left)."""
    rng = np.random.default_rng(seed)
    block, clock, max_buckets = int(rng.choice([4, 8, 32, 160])), int(rng.integers(1, 4)), int(rng.integers(2, 6))
    k = int(rng.integers(1, 8))
    adwins = [ADWIN(delta=1e-3, block=block, clock=clock, max_buckets=max_buckets, min_window_length=10)
              for _ in range(k)]
    warm = rng.uniform(0.0, 1.0, (k, int(rng.integers(0, 6 * block))))
    for a, row in zip(adwins, warm):
        a.fit(None)
        a.update_scores(row)
    a0 = adwins[0]
    levels = len(a0.levels)
    capacity = max_buckets + 1
    tot, var = np.zeros((k, (levels + 1) * capacity)), np.zeros((k, (levels + 1) * capacity))
    for i, a in enumerate(adwins):
        for lv, level in enumerate(a.levels):
            for q, (t, v) in enumerate(level):
                tot[i, lv * capacity + q], var[i, lv * capacity + q] = t, v
    counts = np.array([len(level) for level in a0.levels] + [0], np.int64)
    waiting = len(a0.pending)
    buffer = np.zeros((k, block + 2))
    buffer[:, :waiting] = [a.pending for a in adwins]
    u = rng.uniform(0.0, 1.0, (k, block - waiting + int(rng.integers(0, 4 * block))))
    new_tot, new_var, new_counts, _, total, variance, left, width, seen, _, _, in_use = take_batch(
        buffer[:, :waiting], u, block, tot, var, counts, levels, np.array([a.total for a in adwins]),
        np.array([a.variance for a in adwins]), a0.width, a0.blocks_seen, clock, a0.min_window_length, max_buckets,
        a0.delta, MARGIN)
    for a, row in zip(adwins, u):
        a.update_scores(row)
    assert (width, seen, in_use) == (a0.width, a0.blocks_seen, len(a0.levels))
    for i, a in enumerate(adwins):
        assert (total[i], variance[i]) == (a.total, a.variance)
        assert left[i].tolist() == list(a.pending)
        for lv, level in enumerate(a.levels):
            got = [[new_tot[i, lv * capacity + q], new_var[i, lv * capacity + q]] for q in range(new_counts[lv])]
            assert got == [list(bucket) for bucket in level]
