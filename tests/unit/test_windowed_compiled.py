"""``windowed_compiled.windowed_quiet`` against the windowed tests in numpy (sorted windows read in
the reference tables, histogram cells counted): thresholds a relative 2e-9 above each feature's
numpy statistic leave it quiet, 0.5e-9 above flag it, so the compiled statistics are numpy's to
well within the fast path's margin (1e-9) - ties, several evaluation points, KS or histogram alone."""

from __future__ import annotations

import numpy as np
import pytest

from streamdrift.detectors import MonitorSettings, NumericMonitor
from streamdrift.detectors.together import MARGIN, _Tables
from streamdrift.detectors.windowed_compiled import windowed_quiet


def numpy_statistics(tables: _Tables, ext: np.ndarray, old: int, t: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Each feature's KS ``D`` and G statistic at point ``t``, as the numpy form computed them."""
    k = ext.shape[0]
    window = ext[:, old + t + 1 - w:old + t + 1].astype(np.int64)
    ranked = np.sort(window, axis=1)
    r = ranked + tables.row_start[:, None]
    rank = np.arange(w + 1, dtype=np.int64)
    rank_size, before = rank[1:] * tables.size[:, None], rank[:-1] * tables.size[:, None]
    down = (rank_size - tables.at_or_below.take(r) * np.int64(w)).max(axis=1)
    up = (tables.below.take(r) * np.int64(w) - before).max(axis=1)
    scale = tables.size * w
    d = np.maximum(np.maximum(up, 0) / scale, np.maximum(down, 0) / scale)
    codes = tables.cell.take(window + tables.offset)
    counts = np.bincount(codes.ravel().astype(np.int64), minlength=k * tables.cells).reshape(k, tables.cells)
    ref, obs = tables.hist_reference, counts.astype(np.float64)
    n_r, n_w = ref.sum(axis=1, keepdims=True), obs.sum(axis=1, keepdims=True)
    column, total = ref + obs, n_r + n_w
    g = np.zeros(k)
    with np.errstate(divide="ignore", invalid="ignore"):
        for row, n_row in ((ref, n_r), (obs, n_w)):
            g += np.where(row > 0, row * np.log(row * total / (n_row * column)), 0.0).sum(axis=1)
    return d, 2.0 * g


def fitted(rng: np.random.Generator, k: int, ties: bool) -> list[NumericMonitor]:
    settings = MonitorSettings(reference_size=400, window=120, evaluate_every=40)
    monitors = []
    for _ in range(k):
        reference = rng.poisson(3, 400).astype(float) if ties else rng.normal(0, 1, 400)
        monitors.append(NumericMonitor(settings, reference=reference))
    return monitors


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("ks_on, hist_on", [(True, True), (True, False), (False, True)])
def test_flags_follow_the_numpy_statistics(ties, ks_on, hist_on):
    rng = np.random.default_rng(3 + ties)
    k, w, old, n = 5, 120, 119, 200
    monitors = fitted(rng, k, ties)
    tables = _Tables(monitors)
    for trial in range(20):
        shift = rng.normal(0, 0.3 * trial / 10, (k, 1))
        values = (rng.poisson(3, (k, old + n)) if ties else rng.normal(0, 1, (k, old + n)) + shift)
        ext = np.array([m.reference.positions(row) for m, row in zip(monitors, values)])
        ext = ext.astype(np.int16)
        points = np.array(sorted(rng.choice(n, 3, replace=False)), dtype=np.int64)
        stats = [numpy_statistics(tables, ext, old, int(t), w) for t in points]
        d = np.max([s[0] for s in stats], axis=0)
        g = np.max([s[1] for s in stats], axis=0)
        for above, expect_quiet in ((2e-9, True), (0.5e-9, False)):
            critical = d * (1 + above) if ks_on else np.full(k, np.inf)
            hist_critical = g * (1 + above) if hist_on else np.full(k, np.inf)
            quiet = np.ones(k, dtype=bool)
            windowed_quiet(ext, old, points, w, ks_on, hist_on, tables.row_start, tables.below, tables.at_or_below,
                           tables.size, critical, tables.cell, tables.width, tables.cells, tables.hist_reference,
                           hist_critical, MARGIN, quiet)
            on = (d > 0) if ks_on and not hist_on else (g > 0) if hist_on and not ks_on else (d > 0) | (g > 0)
            assert (quiet[on] == expect_quiet).all(), (trial, above, quiet, d, g)


def test_a_feature_already_flagged_is_left_flagged():
    rng = np.random.default_rng(9)
    tables = _Tables(fitted(rng, 2, False))
    ext = np.zeros((2, 240), dtype=np.int16)
    quiet = np.array([False, True])
    windowed_quiet(ext, 119, np.array([10]), 120, True, True, tables.row_start, tables.below, tables.at_or_below,
                   tables.size, np.full(2, np.inf), tables.cell, tables.width, tables.cells, tables.hist_reference,
                   np.full(2, np.inf), MARGIN, quiet)
    assert quiet.tolist() == [False, True]
