"""``adwin_compiled.add_blocks``: a group's ADWINs taking blocks in one compiled pass leave
exactly the buckets, width and sums that ``ADWIN.update`` leaves, call after call, and its cut
test flags every ADWIN that ``ADWIN.update`` finds a cut for (it may flag more: the caller then
leaves that ADWIN to ``ADWIN.update``)."""

from __future__ import annotations

import numpy as np
import pytest

from streamdrift.detectors import ADWIN
from streamdrift.detectors.adwin_compiled import add_blocks
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
