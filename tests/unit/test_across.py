"""The fast path across models must be indistinguishable from updating every monitor one by one:
same detections (every field) and bit-identical state after every batch, whatever each model's
number of values (0 and 1 included), with drift, missing values and warm-ups among them."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import streamdrift.detectors.across as across
from streamdrift.detectors import MonitorSettings, NumericMonitor, encode_monitor
from streamdrift.detectors.across import update_groups_together
from streamdrift.detectors.together import FastPath, update_together

from .test_together import detections

SIZES = [0, 1, 2, 3, 5, 8, 8, 8, 13, 21, 40, 90, 200, 400]  # from 192 a lookup sorts first


class Model:
    """One model: its features' monitors updated across models, their twins one by one, and
    its stream (features x values), drifting or missing values as its ``kind`` says."""

    def __init__(self, rng: np.random.Generator, settings: MonitorSettings, k: int, n: int, kind: str):
        self.together = [NumericMonitor(settings) for _ in range(k)]
        self.alone = [NumericMonitor(settings) for _ in range(k)]
        self.fast_path = FastPath()
        x = rng.normal(0, 1, (k, n))
        if kind == "drift":
            x[0, 1_200:] += 0.8
        elif kind == "scale":
            x[-1, 1_000:] *= 2.5
        elif kind == "missing":
            x[rng.random((k, n)) < 0.003] = np.nan  # a missing value now and then
        elif kind == "ties":
            x = rng.poisson(2, (k, n)).astype(np.float64)
        self.x, self.pos = x, 0

    def take(self, size: int) -> np.ndarray:
        batch = self.x[:, self.pos:self.pos + size]
        self.pos += batch.shape[1]
        return batch


KINDS = ["stable", "stable", "stable", "drift", "scale", "missing", "ties", "stable"]


@pytest.mark.parametrize("settings, most_fallbacks", [
    (MonitorSettings(reference_size=300, rearm_size=200, window=100, evaluate_every=60, adwin_block=16,
                     adwin_clock=2), 0.35),
    # A false alarm every 10,000 values: detections and re-arming all the time, fewer quiet calls.
    (MonitorSettings(reference_size=400, window=150, evaluate_every=150, adwin_block=64, adwin_clock=1,
                     false_alarm_budget=1e4), 0.7),
    (MonitorSettings(reference_size=250, window=80, evaluate_every=25, detectors=("ks", "scale", "missing_rate")),
     0.35),
])
@pytest.mark.parametrize("pooled", [False, True])
def test_across_equals_one_by_one(settings, most_fallbacks, pooled):
    rng = np.random.default_rng(zlib.crc32(f"across/{settings.window}".encode()))
    models = [Model(rng, settings, int(rng.integers(1, 6)), 5_000, KINDS[i % len(KINDS)]) for i in range(14)]
    pools = across.Pools() if pooled else None
    fallbacks, calls, fired, batches = [0], 0, 0, 0
    original = across.update_together

    def counted(monitors, values, fast_path=None):
        fallbacks[0] += values.shape[1] > 0
        return original(monitors, values, fast_path)

    across.update_together = counted
    try:
        while batches < 180:
            sizes = rng.choice(SIZES, len(models))
            if pooled and batches % 3:  # every model has values: the same plans, the pool kept
                sizes = np.maximum(sizes, 1)
            groups = [(m.together, m.take(int(size)), m.fast_path) for m, size in zip(models, sizes)]
            got = update_groups_together(groups, pools)
            for i, (m, (_, values, _)) in enumerate(zip(models, groups)):
                calls += values.shape[1] > 0
                for j, monitor in enumerate(m.alone):
                    want = monitor.update(values[j])
                    assert detections(got[i][j]) == detections(want), f"model {i}, feature {j}, batch {batches}"
                    fired += len(want)
                    assert encode_monitor(m.together[j]) == encode_monitor(monitor), \
                        f"state of model {i}, feature {j} after batch {batches}"
            batches += 1
    finally:
        across.update_together = original
    # Warm-ups, missing values, detections and re-arming take update_together; the rest, most
    # calls once the models are fitted, this path.
    assert fallbacks[0] < most_fallbacks * calls, f"the path across models was hardly used: {fallbacks[0]} of {calls} fell back"
    assert fired >= 3  # the fallback's detections were compared too


def test_a_model_changed_outside_the_group_falls_back():
    """A model whose monitor was updated on its own since its group last moved on is not trusted:
    it goes to ``update_together``, and gives what one by one gives."""
    rng = np.random.default_rng(3)
    settings = MonitorSettings(reference_size=300, window=100, evaluate_every=50, adwin_block=32)
    together = [[NumericMonitor(settings) for _ in range(3)] for _ in range(2)]
    alone = [[NumericMonitor(settings) for _ in range(3)] for _ in range(2)]
    paths = [FastPath(), FastPath()]
    x = rng.normal(0, 1, (2, 3, 1_000))
    for pos in range(0, 600, 50):
        update_groups_together([(together[i], x[i, :, pos:pos + 50], paths[i]) for i in range(2)])
        for i in range(2):
            for m, row in zip(alone[i], x[i, :, pos:pos + 50]):
                m.update(row)
    for group in (together, alone):
        group[0][1].update(x[0, 1, 600:605])
    seen = []
    original = across.update_together
    across.update_together = lambda monitors, values, fast_path=None: (
        seen.append(monitors[0]), original(monitors, values, fast_path))[1]
    try:
        for pos in range(605, 1_000, 7):
            update_groups_together([(together[i], x[i, :, pos:pos + 7], paths[i]) for i in range(2)])
            for i in range(2):
                for m, row in zip(alone[i], x[i, :, pos:pos + 7]):
                    m.update(row)
                assert [encode_monitor(m) for m in together[i]] == [encode_monitor(m) for m in alone[i]]
    finally:
        across.update_together = original
    assert seen[0] is together[0][0]  # the changed model fell back, then was trusted again
    assert together[1][0] not in seen[:2]


def test_results_in_the_order_of_the_groups():
    """Fallback and cross-model groups come back in the order they were given; an empty group
    is an empty result per monitor."""
    rng = np.random.default_rng(5)
    settings = MonitorSettings(reference_size=200)
    monitors = [[NumericMonitor(settings) for _ in range(2)] for _ in range(3)]
    twins = [[NumericMonitor(settings) for _ in range(2)] for _ in range(3)]
    paths = [FastPath() for _ in range(3)]
    for pos in range(0, 400, 40):
        values = [rng.normal(0, 1, (2, 40)), rng.normal(0, 1, (2, 0)), rng.normal(3, 1, (2, 40))]
        got = update_groups_together(list(zip(monitors, values, paths)))
        want = [update_together(t, v) for t, v in zip(twins, values)]
        assert [[detections(d) for d in g] for g in got] == [[detections(d) for d in w] for w in want]
        assert got[1] == [[], []]


def test_a_model_whose_features_parted_is_taken_group_by_group():
    """After one feature's alarm its monitor re-arms, and its schedule parts from the others':
    the per-model path keeps two groups, and this path takes each as a plan of its own, with
    the results and state of one by one."""
    rng = np.random.default_rng(8)
    together, alone, path = twins(MonitorSettings(reference_size=300, rearm_size=200, window=100, evaluate_every=50), 3)
    parted = 0
    for batch in range(400):
        x = rng.normal(0, 1, (3, 6))
        if 120 <= batch < 200:
            x[0] += 1.5  # feature 0 drifts, alarms, re-arms on the new level
        parted += len(across._plans(0, together, x, path)) > 1
        step_alike(together, alone, path, x)
    assert parted > 100
    assert [encode_monitor(m) for m in together] == [encode_monitor(m) for m in alone]


def twins(settings: MonitorSettings, k: int) -> tuple[list, list, FastPath]:
    """A model's monitors for this path, their twins for one by one, and its ``FastPath``."""
    return [NumericMonitor(settings) for _ in range(k)], [NumericMonitor(settings) for _ in range(k)], FastPath()


def step_alike(together: list, alone: list, path: FastPath, x: np.ndarray) -> None:
    """One batch through this path and one by one: the same detections."""
    found = update_groups_together([(together, x, path)])[0]
    expected = [m.update(row) for m, row in zip(alone, x)]
    assert [detections(f) for f in found] == [detections(e) for e in expected]


def test_a_feature_collecting_its_new_reference_is_taken_across_in_a_group_of_its_own():
    """While one feature collects the reference of its new regime after an alarm, it is a
    trusted group of its own (another schedule: its detectors that alarmed are muted) and stays
    on this path, which collects its values; the batch in which its reference completes it goes
    to ``update_together`` (its monitor's own ``update`` fits it). Before, it went the slow way
    for the whole re-arm. Same results and state as one by one."""
    rng = np.random.default_rng(9)
    together, alone, path = twins(MonitorSettings(reference_size=300, rearm_size=400, window=100, evaluate_every=50), 4)
    collecting = completing = rejoined = 0
    for batch in range(300):
        x = rng.normal(0, 1, (4, 5))
        if batch >= 100:
            x[0] += 2.0  # feature 0 drifts, alarms, collects 400 values of its new level
        plans = across._plans(0, together, x, path)
        taken = sorted(row for plan in plans for row in plan.rows)
        monitor = together[0]
        if monitor.collecting and monitor.fitted:
            if monitor.collect_target - monitor._collected_count() > x.shape[1]:
                collecting += taken == [0, 1, 2, 3] and len(plans) == 2 and monitor.muted != set()
            else:  # its reference completes in this batch: left to update_together
                completing += taken == [1, 2, 3]
        elif batch >= 100:
            # Its new reference fitted, it joins again: a group of its own (another schedule),
            # found though the model's parts were kept from batch to batch (``FastPath.parts``).
            rejoined += taken == [0, 1, 2, 3] and len(plans) == 2 and path.parts is not None
        step_alike(together, alone, path, x)
    assert collecting > 50 and completing >= 1 and rejoined > 50
    assert [encode_monitor(m) for m in together] == [encode_monitor(m) for m in alone]


def test_pooled_state_stays_one_by_one_while_the_same_models_come_back():
    """The state of the same quiet models, batch after batch, is kept in a pool across models
    (``across.Pools``): owed to the detectors and read back from there. One model drifts now and
    then (it leaves the pool: its tables keep their own state, the pool is made afresh) and the
    detectors are read now and then (what they were owed is written, and owed again after the
    next batch): the same state and detections as one by one, and the pool was used."""
    rng = np.random.default_rng(12)
    settings = MonitorSettings(reference_size=300, window=100, evaluate_every=50, adwin_block=16, adwin_clock=2)
    models = [Model(rng, settings, int(rng.integers(2, 6)), 8_000, kind) for kind in
              ("stable", "stable", "drift", "stable", "scale")]
    pools, reused, made = across.Pools(), [0], [0]
    original = across._Pool.__init__

    def counted(self, *args):
        made[0] += 1
        original(self, *args)

    across._Pool.__init__ = counted
    try:
        for batch in range(400):
            order = rng.permutation(len(models))  # a batch brings its models in any order
            batch_models = [models[i] for i in order]
            groups = [(m.together, m.take(int(size)), m.fast_path)
                      for m, size in zip(batch_models, rng.choice([1, 4, 9, 15], len(models)))]
            kept = dict(pools.kept)
            found = update_groups_together(groups, pools)
            reused[0] += any(pools.kept.get(active) is pool for active, pool in kept.items())
            for m, (_, values, _), got in zip(batch_models, groups, found):
                want = [monitor.update(row) for monitor, row in zip(m.alone, values)]
                assert [detections(g) for g in got] == [detections(w) for w in want], batch
            if batch % 23 == 22:
                for m in models:
                    assert [encode_monitor(t) for t in m.together] == [encode_monitor(a) for a in m.alone], batch
    finally:
        across._Pool.__init__ = original
    for m in models:
        assert [encode_monitor(t) for t in m.together] == [encode_monitor(a) for a in m.alone]
    assert reused[0] > 200 and made[0] >= 3


def test_state_owed_over_many_batches_is_what_one_by_one_gives_when_read():
    """The cross-model path owes its ADWIN and CUSUM state to the detectors (``detectors.owed``)
    and reads it back only from its own vectors: over many batches with no read in between (the
    processor reads at a checkpoint), each owed write replaces the last, and the first read
    gives exactly the one-by-one state, blocks completed and buckets merged on the way."""
    rng = np.random.default_rng(11)
    settings = MonitorSettings(reference_size=300, window=100, evaluate_every=50, adwin_block=16, adwin_clock=2)
    models = [Model(rng, settings, int(rng.integers(2, 6)), 6_000, "stable") for _ in range(5)]
    stale = 0
    for batch in range(300):
        sizes = rng.choice([0, 3, 7, 16, 40], len(models))
        groups = [(m.together, m.take(int(size)), m.fast_path) for m, size in zip(models, sizes)]
        update_groups_together(groups)
        for m, (_, values, _) in zip(models, groups):
            for monitor, row in zip(m.alone, values):
                monitor.update(row)
        if batch % 37 == 36:  # a read now and then: every detector's state, as a checkpoint reads it
            for m in models:
                # Unread, the ADWINs' own slots lag behind: the write is owed, not done.
                stale += any(t.adwin.__dict__["_width"] != a.adwin.width for t, a in zip(m.together, m.alone))
                assert [encode_monitor(t) for t in m.together] == [encode_monitor(a) for a in m.alone], batch
    assert stale >= 3  # the owed path was taken, and what it owed was written when read
