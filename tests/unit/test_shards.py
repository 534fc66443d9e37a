"""A worker's pipeline split over processes gives what one pipeline gives, in the same order."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from streamdrift.config import ConfigError, from_mapping
from streamdrift.events import Record
from streamdrift.pipeline import DriftPipeline
from streamdrift.stream.shards import ShardedPipeline

CONFIG = from_mapping({"detectors": {"reference_size": 300, "rearm_size": 200, "window": 200, "evaluate_every": 100},
                       "retrain": {"min_features": 1}})


def records(n: int = 12_000, models: int = 6) -> list[Record]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        m = i % models
        x = rng.normal(0, 1, 3)
        if m % 2 and i > n // 2:
            x[0] += 1.5  # odd models drift in f0
        event = {"model": f"m{m}", "id": f"e{i}", "ts": 1e9 + i, "features": {f"f{j}": float(v) for j, v in enumerate(x)},
                 "prediction": float(x[1] > 0), "label": int(x[1] > 0) if m != 3 or i < n // 2 else int(x[1] < 0)}
        out.append(Record(orjson.dumps(event), f"m{m}".encode(), "features", m % 4, i))
    out.insert(500, Record(b"not json", b"m1", "features", 1, 10**6))
    return out


def test_sharded_pipeline_equals_one_pipeline_in_content_and_order():
    data = records()
    one = DriftPipeline(CONFIG)
    sharded = ShardedPipeline(CONFIG, processes=2)
    try:
        expected = [one.process(data[i:i + 1000]) for i in range(0, len(data), 1000)]
        got = [sharded.process(data[i:i + 1000]) for i in range(0, len(data), 1000)]
        alerts = [a for o in expected for a in o.alerts]
        assert len(alerts) >= 3 and {a["kind"] for a in alerts} >= {"feature", "concept"}
        assert [a for o in got for a in o.alerts] == alerts
        assert [r for o in got for r in o.retrain_requests] == [r for o in expected for r in o.retrain_requests]
        assert sum(o.processed for o in got) == sum(o.processed for o in expected) == len(data) - 1
        assert [r.reason for o in got for r in o.rejected] == [r.reason for o in expected for r in o.rejected]
        assert sharded.model_count == one.model_count and sharded.monitored_pairs == one.monitored_pairs
        # State: every child checkpoints its own models; together they are the one pipeline's.
        assert sorted(k for k, _ in sharded.checkpoint()) == sorted(k for k, _ in one.checkpoint())
    finally:
        sharded.close()


def test_sharded_state_restores_into_any_layout_and_partitions_hand_over():
    data = records(6000)
    sharded = ShardedPipeline(CONFIG, processes=2)
    try:
        sharded.process(data[:4000])
        state = sharded.checkpoint()
        one = DriftPipeline(CONFIG)
        assert one.restore(state) == sharded.monitored_pairs
        assert sharded.drop_partitions({1, 3}) == 3  # m1, m3, m5 live in partitions 1 and 3
        assert sharded.model_count == 3
        again = ShardedPipeline(CONFIG, processes=3)
        try:
            assert again.restore(state) == one.monitored_pairs
            rest = data[4000:]
            assert [a["alert_id"] for a in again.process(rest).alerts] == [a["alert_id"] for a in one.process(rest).alerts]
        finally:
            again.close()
    finally:
        sharded.close()


def test_processes_setting_is_checked():
    with pytest.raises(ConfigError, match="processes"):
        from_mapping({"processes": -2})
    with pytest.raises(ValueError, match="at least 2"):
        ShardedPipeline(CONFIG, processes=1)
