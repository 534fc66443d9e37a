"""The multivariate monitors of many models advanced at once (``detectors.joint_across``) give
exactly what each monitor's own ``update`` gives: detections, and state byte for byte."""

from __future__ import annotations

import numpy as np
import pytest

from streamdrift.detectors import MultivariateMonitor, MultivariateSettings
from streamdrift.detectors import joint_across
from streamdrift.detectors.joint_across import update_jointly
from streamdrift.detectors import encode_monitor


def runs(rng: np.random.Generator, models: int, batch: int, features: int, drifting: set[int], missing: float):
    out = []
    for m in range(models):
        n = int(rng.integers(0, 30))
        rows = rng.normal(size=(n, features)) * (1 + m % 3)
        if m in drifting and batch > 30:
            rows[:, 1] = 0.8 * rows[:, 0] + 0.6 * rows[:, 1]  # a correlation appears
        if m in drifting and batch > 60:
            rows += 0.3  # then every mean moves a little
        if missing:
            rows[rng.random(rows.shape) < missing] = np.nan
        out.append({f"x{k}": rows[:, k].copy() for k in range(features)})
    return out


@pytest.mark.parametrize("seed, features, missing, block", [(0, 4, 0.0, 50), (1, 6, 0.02, 37), (2, 3, 0.0, 100),
                                                           (3, 21, 0.0, 200), (4, 5, 0.1, 64)])
def test_pooled_monitors_match_their_own_updates(seed, features, missing, block, monkeypatch):
    rng = np.random.default_rng(seed)
    settings = MultivariateSettings(reference_size=400, rearm_size=400, block=block, window_blocks=3,
                                    max_quadratic=64)  # 21 features: random projections, left to update
    models = 7
    together = [MultivariateMonitor(settings) for _ in range(models)]
    alone = [MultivariateMonitor(settings) for _ in range(models)]
    own_updates = []
    original = MultivariateMonitor.update
    monkeypatch.setattr(MultivariateMonitor, "update",
                        lambda self, *args: (own_updates.append(self), original(self, *args))[1])
    detections = 0
    for batch in range(140):
        batch_runs = runs(rng, models, batch, features, {1, 4}, missing)
        found = update_jointly([(monitor, run, None) for monitor, run in zip(together, batch_runs)])
        expected = [original(monitor, run) for monitor, run in zip(alone, batch_runs)]
        assert found == expected, batch
        detections += sum(map(len, found))
    assert detections >= 2
    assert all(encode_monitor(a) == encode_monitor(b) for a, b in zip(together, alone))
    pooled = 140 * models - len(own_updates)
    if features * (features + 1) // 2 <= 64:
        assert pooled > 140 * models / 5  # the quiet case is common (runs crossing a block boundary are not)
    else:
        assert pooled == 0


def test_a_categorical_feature_or_a_long_run_goes_to_the_monitors_own_update():
    rng = np.random.default_rng(9)
    settings = MultivariateSettings(reference_size=400)
    monitor, twin = MultivariateMonitor(settings), MultivariateMonitor(settings)
    reference = {"a": rng.normal(size=400), "c": np.array(["x", "y"] * 200, dtype=object)}
    for m in (monitor, twin):
        m.update(reference)
    run = {"a": rng.normal(size=30), "c": np.array(["x"] * 30, dtype=object)}
    assert joint_across._plan(0, monitor, run, None) is None
    long = {"a": rng.normal(size=joint_across.LONG_RUN + 1)}
    assert joint_across._plan(0, monitor, long, None) is None
    assert update_jointly([(monitor, run, None)]) == [twin.update(run)]
    assert encode_monitor(monitor) == encode_monitor(twin)
