"""The vectorised fast path must be indistinguishable from updating monitors one by one: same
detections (every field) and bit-identical state after every batch."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from streamdrift.detectors import MonitorSettings, NumericMonitor, encode_monitor
from streamdrift.detectors.together import FastPath, update_together


def streams(rng: np.random.Generator, k: int, n: int, kind: str) -> np.ndarray:
    x = rng.normal(0, 1, (k, n))
    if kind == "ties":
        x = rng.poisson(3, (k, n)).astype(np.float64)
    elif kind == "drift":
        x[1, n // 2:] += 0.6  # mean shift
        x[2, n // 3:] *= 2.0  # variance
        x[3, 2 * n // 3:] = rng.uniform(-2, 2, n - 2 * n // 3)
    elif kind == "missing":
        x[0, rng.random(n) < 0.02] = np.nan  # this feature always has some missing values
        x[2, n // 2: n // 2 + 3000][rng.random(3000) < 0.3] = np.nan
    elif kind == "late":
        x[:, : n // 4] = np.nan  # nothing arrives at first
        x[1, n // 4: n // 3] = np.nan
    return x


def detections(found) -> list[tuple]:
    return [(d.detector, d.kind, d.index, d.statistic, d.threshold, d.p_value, d.direction, d.severity,
             repr(d.reference), repr(d.window), repr(d.effect)) for d in found]


@pytest.mark.parametrize("kind", ["stable", "ties", "drift", "missing", "late"])
@pytest.mark.parametrize("settings", [
    MonitorSettings(reference_size=600, rearm_size=300, window=200, evaluate_every=50),
    MonitorSettings(reference_size=1000, window=300, evaluate_every=300, adwin_block=16, adwin_clock=1,
                    false_alarm_budget=1e4),
    MonitorSettings(reference_size=500, window=100, evaluate_every=7, detectors=("ks", "scale")),
])
def test_together_equals_one_by_one(kind, settings):
    rng = np.random.default_rng(zlib.crc32(f"{kind}/{settings.window}".encode()))  # not hash(): salted per run
    k, n = 5, 12_000
    x = streams(rng, k, n, kind)
    together = [NumericMonitor(settings) for _ in range(k)]
    alone = [NumericMonitor(settings) for _ in range(k)]
    alone_calls = [0]
    for m in together:  # count the updates that took the one-by-one path
        m.update = (lambda original: lambda values: (alone_calls.__setitem__(0, alone_calls[0] + 1),
                                                      original(values))[1])(m.update)
    pos = 0
    fired = 0
    batches = 0
    fast_path = FastPath()
    while pos < n:
        size = int(rng.choice([1, 37, 128, 250, 613, 1500]))
        batch = x[:, pos:pos + size]
        got = update_together(together, batch, fast_path)
        for j in range(k):
            want = alone[j].update(batch[j])
            assert detections(got[j]) == detections(want), f"feature {j}, values {pos}..{pos + size}"
            fired += len(want)
            assert encode_monitor(together[j]) == encode_monitor(alone[j]), f"state of feature {j} after {pos + size}"
        pos += size
        batches += 1
    # Warm-up and missing values take the one-by-one path; quiet stretches the fast one.
    share = 0.5 if kind in ("stable", "ties", "drift") else 0.8
    assert alone_calls[0] < share * k * batches, "the fast path was hardly used"
    if kind == "drift":
        assert fired >= 2  # the one-by-one path was exercised


def test_supplied_references_of_different_sizes():
    rng = np.random.default_rng(9)
    settings = MonitorSettings(window=200, evaluate_every=100)
    refs = [rng.normal(0, 1, 700), rng.normal(0, 1, 1300), np.round(rng.normal(0, 1, 900), 1)]
    together = [NumericMonitor(settings, reference=r) for r in refs]
    alone = [NumericMonitor(settings, reference=r) for r in refs]
    x = rng.normal(0, 1, (3, 5000))
    x[2] = np.round(x[2], 1)
    x[0, 3000:] += 1.0
    fast_path = FastPath()
    for pos in range(0, 5000, 333):
        got = update_together(together, x[:, pos:pos + 333], fast_path)
        for j in range(3):
            assert detections(got[j]) == detections(alone[j].update(x[j, pos:pos + 333]))
            assert encode_monitor(together[j]) == encode_monitor(alone[j])


def test_shape_is_checked():
    with pytest.raises(ValueError, match="monitors x values"):
        update_together([NumericMonitor()], np.zeros((2, 5)))


def test_features_configured_alike_advance_together():
    # Settings objects that are equal but distinct (one per feature, as [[features]] rules make
    # them) must still share one group: one _advance call for all of them.
    import streamdrift.detectors.together as together
    rng = np.random.default_rng(2)
    monitors = [NumericMonitor(MonitorSettings(reference_size=300)) for _ in range(4)]
    fast_path = FastPath()
    update_together(monitors, rng.normal(0, 1, (4, 1000)), fast_path)
    calls = []
    original = together._advance
    together._advance = lambda *args: calls.append(1) or original(*args)
    try:
        update_together(monitors, rng.normal(0, 1, (4, 50)), fast_path)
    finally:
        together._advance = original
    assert len(calls) == 1


@pytest.mark.parametrize("reference", ["normal", "ties", "one value", "large", "heavy tails"])
def test_positions_match_the_reference_for_any_value(reference):
    """``_positions`` (values sorted by bucket, then searched) gives ``Reference.positions`` exactly: values equal to reference values, between them, beyond
    both ends, huge, tiny and signed zeros."""
    from streamdrift.detectors.together import _positions, _Tables

    rng = np.random.default_rng(zlib.crc32(reference.encode()))
    make = {"normal": lambda: rng.normal(0, 1, 1000), "ties": lambda: rng.poisson(3, 800).astype(float),
            "one value": lambda: np.full(300, 2.5), "large": lambda: rng.normal(0, 1, 200_000),
            "heavy tails": lambda: rng.standard_cauchy(2000)}[reference]
    monitors = [NumericMonitor(MonitorSettings(reference_size=50), reference=make()) for _ in range(3)]
    tables = _Tables(monitors)
    rows = []
    for m in monitors:
        distinct = m.reference.distinct
        picks = rng.choice(distinct, 300)
        between = (picks + np.roll(picks, 1)) / 2
        edges = [distinct[0], distinct[-1], np.nextafter(distinct[0], -np.inf), np.nextafter(distinct[-1], np.inf),
                 1e308, -1e308, 1e-300, -0.0, 0.0, 5e-324]
        above = np.nextafter(distinct, np.inf)  # each the last of its bucket's smaller ones at some point
        rows.append(np.concatenate([picks, between, rng.normal(0, 3, 300), edges, above[rng.permutation(above.size)]]))
    width = max(map(len, rows))
    x = np.array([np.resize(row, width) for row in rows])
    positions, _, _ = _positions(tables, x)
    for i, m in enumerate(monitors):
        assert positions[i].tolist() == m.reference.positions(x[i]).tolist()


def warm_up(together: list, alone: list, x: np.ndarray) -> FastPath:
    """Feed ``x`` (monitors x values) in batches of 100 to ``together`` on one fast path and to
    ``alone`` one by one; return that fast path."""
    fast_path = FastPath()
    for pos in range(0, x.shape[1], 100):
        update_together(together, x[:, pos:pos + 100], fast_path)
        for m, row in zip(alone, x[:, pos:pos + 100]):
            m.update(row)
    return fast_path


@pytest.mark.parametrize("touch", ["update alone", "refit"])
def test_a_member_changed_outside_the_group_is_not_trusted(touch):
    """The group's caches are trusted only while no member changed since the group last moved on
    together: an update of one member on its own, or a new reference, and the next batch checks
    everything again, giving what one by one gives."""
    rng = np.random.default_rng(17)
    settings = MonitorSettings(reference_size=300, window=100, evaluate_every=50, adwin_block=8, adwin_clock=1)
    together = [NumericMonitor(settings) for _ in range(4)]
    alone = [NumericMonitor(settings) for _ in range(4)]
    x = rng.normal(0, 1, (4, 2_000))
    fast_path = warm_up(together, alone, x[:, :1_200])
    for group in (together, alone):
        if touch == "update alone":
            group[0].update(x[0, 1_200:1_237])
        else:
            group[0].set_reference(x[0, :500])
    for pos in range(1_237, 2_000, 100):
        got = update_together(together, x[:, pos:pos + 100], fast_path)
        for j, (m, row) in enumerate(zip(alone, x[:, pos:pos + 100])):
            assert detections(got[j]) == detections(m.update(row))
            assert encode_monitor(together[j]) == encode_monitor(alone[j]), f"feature {j} after {pos}"


def test_a_member_given_another_monitors_state_is_not_trusted():
    """``a.set_state(c.get_state())`` with ``c`` at the same count and calibrations as ``a``: the
    group's cached sums are ``a``'s old ones, and only a version that ``set_state`` bumps tells
    the fast path (a stamp of ``seen`` and ``calibrations`` did not: Page-Hinkley sums differed)."""
    rng = np.random.default_rng(23)
    settings = MonitorSettings(reference_size=300, window=100, evaluate_every=50, adwin_block=8, adwin_clock=1)
    together = [NumericMonitor(settings) for _ in range(3)]
    alone = [NumericMonitor(settings) for _ in range(3)]
    other = NumericMonitor(settings)
    x = rng.normal(0, 1, (3, 3_000))
    fast_path = warm_up(together, alone, x[:, :1_500])
    other.update(np.concatenate([rng.normal(0, 1, 300), rng.normal(0.2, 1, 1_200)]))
    assert (other.seen, other.calibrations) == (together[0].seen, together[0].calibrations)
    for group in (together, alone):
        group[0].set_state(other.get_state())
    for pos in range(1_500, 3_000, 100):
        got = update_together(together, x[:, pos:pos + 100], fast_path)
        for j, (m, row) in enumerate(zip(alone, x[:, pos:pos + 100])):
            assert detections(got[j]) == detections(m.update(row))
            assert together[j].page_hinkley.get_state() == alone[j].page_hinkley.get_state(), f"feature {j} after {pos}"
            assert encode_monitor(together[j]) == encode_monitor(alone[j]), f"feature {j} after {pos}"


def test_the_monitors_carry_nothing_of_the_fast_path():
    monitors = [NumericMonitor(MonitorSettings(reference_size=300)) for _ in range(2)]
    before = [set(vars(m)) for m in monitors]
    update_together(monitors, np.random.default_rng(1).normal(0, 1, (2, 1_000)), FastPath())
    assert [set(vars(m)) for m in monitors] == before
    assert not any(name.startswith("position_bins") for name in vars(monitors[0].reference))


def test_a_warm_up_that_completes_inside_a_call_gives_the_rest_to_the_group():
    # A new model's first batches: every reference completes at one column. Each monitor gets
    # only the values up to it; the rest of the call takes the group's path, with the results
    # and the state of one by one.
    rng = np.random.default_rng(12)
    settings = MonitorSettings(reference_size=400, window=100, evaluate_every=50)
    together = [NumericMonitor(settings) for _ in range(4)]
    alone = [NumericMonitor(settings) for _ in range(4)]
    given = []
    for m in together:
        m.update = (lambda original: lambda values: (given.append(len(values)), original(values))[1])(m.update)
    x = rng.normal(0, 1, (4, 1500))
    x[2, 700:] += 3.0  # one feature drifts after the warm-up, in the group's part of the call
    fast_path = FastPath()
    fired = 0
    for part in (x[:, :150], x[:, 150:]):
        got = update_together(together, part, fast_path)
        for j in range(4):
            assert detections(got[j]) == detections(alone[j].update(part[j]))
            assert encode_monitor(together[j]) == encode_monitor(alone[j])
            fired += len(got[j])
    # The first call only adds to the references: collected without each monitor's own update
    # (``_warm_up``); in the second each gets the values up to its reference's end.
    assert given[:4] == [250] * 4
    assert fired and sum(given) < 4 * 1500  # the drift was caught; most values went the group's way


@pytest.mark.parametrize("missing", [False, True])
def test_a_warm_up_is_collected_without_each_monitors_own_update(missing):
    # A new model's batches before its references complete: the values are collected as one by
    # one would, without a call of each feature's update; a feature with a missing value in the
    # batch takes its own update, as before.
    rng = np.random.default_rng(13)
    settings = MonitorSettings(reference_size=500, window=100, evaluate_every=50)
    together = [NumericMonitor(settings) for _ in range(3)]
    alone = [NumericMonitor(settings) for _ in range(3)]
    given = []
    for j, m in enumerate(together):
        m.update = (lambda original, j=j: lambda values: (given.append(j), original(values))[1])(m.update)
    x = rng.normal(0, 1, (3, 450))
    if missing:
        x[1, 200] = np.nan
    fast_path = FastPath()
    for part in (x[:, :1], x[:, 1:130], x[:, 130:450]):
        got = update_together(together, part, fast_path)
        for j in range(3):
            assert detections(got[j]) == detections(alone[j].update(part[j])) == []
            assert encode_monitor(together[j]) == encode_monitor(alone[j])
            assert together[j]._collected_count() == alone[j]._collected_count()
    assert given == ([1] if missing else [])
    assert all(not m.fitted and m.seen == 450 for m in together)


def test_features_re_arming_after_an_alarm_advance_as_a_group(monkeypatch):
    """Two features drift, alarm and collect the reference of their new level (re-arming): while
    they collect, they watch with their old reference, their muted detectors left out, and
    advance together (``_advance``, collecting as they go) rather than one by one; the batch in
    which the new reference completes is each monitor's own (its fit). Same detections and
    state as one by one after every call."""
    import streamdrift.detectors.together as together

    collected = []
    original = together._collected
    monkeypatch.setattr(together, "_collected", lambda ms, rows, x: (collected.append(len(rows)), original(ms, rows, x)))
    settings = MonitorSettings(reference_size=300, rearm_size=400, window=100, evaluate_every=50)
    group = [NumericMonitor(settings) for _ in range(3)]
    alone = [NumericMonitor(settings) for _ in range(3)]
    fast_path = FastPath()
    rng = np.random.default_rng(21)
    x = rng.normal(0, 1, (3, 6_000))
    x[:2, 2_000:] += 1.5  # features 0 and 1 drift together
    muted = 0
    for pos in range(0, 6_000, 23):
        rows = x[:, pos:pos + 23]
        got = update_together(group, rows, fast_path)
        want = [m.update(row) for m, row in zip(alone, rows)]
        assert [detections(g) for g in got] == [detections(w) for w in want], pos
        assert [encode_monitor(m) for m in group] == [encode_monitor(m) for m in alone], pos
        muted += bool(group[0].muted) and group[0].collecting
    assert muted > 10 and sum(collected) > 20  # the re-arming pair went the group's way, collecting
