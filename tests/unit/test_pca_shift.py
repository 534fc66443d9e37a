"""``multivariate_pca``: Hotelling's T² and SPE, the multivariate monitor's opt-in companion."""

from __future__ import annotations

import numpy as np
import pytest

from streamdrift.detectors import MultivariateMonitor, MultivariateSettings, decode_monitor, encode_monitor
from streamdrift.detectors.pca_shift import PcaShift
from streamdrift.detectors.state import pack
from tests.unit.test_multivariate import events, feed, joined, sliced

PCA = MultivariateSettings(reference_size=2000, rearm_size=1000, block=100, detectors=("multivariate_pca",))
BOTH = MultivariateSettings(reference_size=2000, rearm_size=1000, block=100,
                            detectors=("multivariate_covariance", "multivariate_pca"))


def numeric(columns: dict) -> dict:
    return {name: column for name, column in columns.items() if name != "country"}


def test_it_is_opt_in_and_named_in_the_settings_error():
    assert MultivariateSettings().active == ("multivariate_mean", "multivariate_covariance")
    assert PCA.active == ("multivariate_pca",)
    with pytest.raises(ValueError, match="multivariate_pca"):
        MultivariateSettings(detectors=("multivariate_pcs",))


def test_quiet_on_stationary_events_even_strongly_correlated():
    monitor = MultivariateMonitor(PCA)
    assert monitor.update(numeric(events(21, 60_000, correlation=0.9))) == []
    assert isinstance(monitor.parts["multivariate_pca"], PcaShift)


def test_a_correlation_that_breaks_is_caught_by_spe_and_explained():
    monitor = MultivariateMonitor(PCA)
    assert monitor.update(numeric(events(22, 4000, correlation=0.9))) == []
    [found] = monitor.update(numeric(events(23, 3000, correlation=0.0)))
    assert found.detector == "multivariate_pca" and found.kind == "multivariate"
    assert found.effect["statistic"] == "spe" and found.index < 4000 + 1000
    assert {e["feature"] for e in found.explained_by[:2]} == {"x0", "x1"}


def test_a_wider_spread_of_every_feature_is_caught_by_t2():
    monitor = MultivariateMonitor(PCA)
    monitor.update(numeric(events(24, 4000, correlation=0.5)))
    wide = numeric(events(25, 4000, correlation=0.5))
    wide = {name: column * 1.5 for name, column in wide.items()}
    [found] = monitor.update(wide)
    assert found.effect["statistic"] == "t2" and found.effect["side"] == "up" and found.index < 4000 + 500


STREAM = numeric(joined(events(26, 3000, correlation=0.8), events(27, 3000), events(28, 3000, shift=0.5)))


@pytest.mark.parametrize("size", [7, 37, 1000])  # (1 by 1: test_multivariate's; these runs are exact per event too)
@pytest.mark.parametrize("settings", [PCA, BOTH], ids=["pca", "covariance+pca"])
def test_batches_give_what_one_by_one_gives(size, settings):
    whole, parts = MultivariateMonitor(settings), MultivariateMonitor(settings)
    expected = feed(whole, STREAM, 9000)
    assert len(expected) >= 2
    assert feed(parts, STREAM, size) == expected
    assert pack(parts.get_state()) == pack(whole.get_state())


@pytest.mark.parametrize("cut", [500, 2500, 3600, 6500])
def test_state_restored_mid_stream_changes_nothing(cut):
    original = MultivariateMonitor(PCA)
    feed(original, sliced(STREAM, 0, cut), 9000)
    restored = decode_monitor(encode_monitor(original))
    assert restored.settings == PCA
    rest = sliced(STREAM, cut, 9000)
    assert feed(restored, rest, 9000) == feed(original, rest, 9000)
    assert pack(restored.get_state()) == pack(original.get_state())


def test_in_the_pipeline_a_broken_correlation_raises_it_alone_whatever_the_batches():
    from streamdrift.config import from_mapping
    from streamdrift.pipeline import DriftPipeline
    from tests.unit.test_multivariate_pipeline import as_records, feature_events, run
    config = from_mapping({"multivariate": {"models": ["fraud-*"], "reference_size": 2000, "rearm_size": 1000,
                                            "block": 100, "detectors": ["multivariate_pca"]}})
    records = as_records(feature_events(0, 4000, correlation=0.9, categorical=False)
                         + feature_events(4000, 3000, correlation=0.0, categorical=False))
    alerts = run(DriftPipeline(config), records, 1000)
    assert [(a["kind"], a["detector"], a["effect"]["statistic"]) for a in alerts] == [
        ("multivariate", "multivariate_pca", "spe")]
    assert 4000 <= alerts[0]["index"] < 5000
    assert {e["feature"] for e in alerts[0]["explained_by"][:2]} == {"x0", "x1"}
    assert run(DriftPipeline(config), records, 37) == alerts


def test_one_feature_alone_is_left_to_the_other_detectors():
    settings = MultivariateSettings(reference_size=400, detectors=("multivariate_mean", "multivariate_pca"))
    monitor = MultivariateMonitor(settings)
    monitor.update({"x0": np.random.default_rng(3).normal(size=500)})
    assert monitor.fitted and set(monitor.parts) == {"multivariate_mean"}
    restored = decode_monitor(encode_monitor(monitor))
    assert pack(restored.get_state()) == pack(monitor.get_state())
