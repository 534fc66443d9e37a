"""The multivariate monitor: what it catches, what it stays quiet on, batches, state, settings."""

from __future__ import annotations

import numpy as np
import pytest

from streamdrift.detectors import MultivariateMonitor, MultivariateSettings, decode_monitor, encode_monitor
from streamdrift.detectors.state import pack, unpack

SETTINGS = MultivariateSettings(reference_size=2000, rearm_size=1000, block=100)
COUNTRIES = np.array(["DE", "FR", "US", "NL"])


def events(seed: int, n: int, correlation: float = 0.0, shift: float = 0.0, shares=(0.4, 0.3, 0.2, 0.1)) -> dict:
    """Columns of ``n`` events: 6 numeric features (x0 and x1 with ``correlation``, all moved by
    ``shift``), some missing, and a categorical one."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    x[:, 1] = correlation * x[:, 0] + np.sqrt(1 - correlation ** 2) * x[:, 1]
    x += shift
    x[rng.random(n) < 0.05, 5] = np.nan
    columns = {f"x{k}": x[:, k] for k in range(6)}
    columns["country"] = list(COUNTRIES[rng.choice(4, n, p=shares)])
    return columns


def joined(*parts: dict) -> dict:
    return {name: (np.concatenate([p[name] for p in parts]) if isinstance(parts[0][name], np.ndarray)
                   else sum((list(p[name]) for p in parts), [])) for name in parts[0]}


def sliced(columns: dict, start: int, stop: int) -> dict:
    return {name: column[start:stop] for name, column in columns.items()}


def feed(monitor: MultivariateMonitor, columns: dict, size: int) -> list[tuple]:
    n = len(columns["x0"])
    found = []
    for start in range(0, n, size):
        found.extend((d.detector, d.index, d.statistic, d.severity, tuple(e["feature"] for e in d.explained_by))
                     for d in monitor.update(sliced(columns, start, start + size)))
    return found


def test_quiet_on_stationary_events_even_strongly_correlated():
    monitor = MultivariateMonitor(SETTINGS)
    assert monitor.update(events(1, 30_000, correlation=0.9)) == []
    assert monitor.fitted and monitor.names == ("country", "x0", "x1", "x2", "x3", "x4", "x5")


def test_a_correlation_that_changes_is_caught_and_explained():
    monitor = MultivariateMonitor(SETTINGS)
    assert monitor.update(events(2, 4000)) == []
    [found] = monitor.update(events(3, 3000, correlation=0.7))
    assert found.detector == "multivariate_covariance" and found.kind == "multivariate"
    assert found.index < 4000 + 1500
    assert {e["feature"] for e in found.explained_by[:2]} == {"x0", "x1"}
    assert found.effect["pairs"][0]["features"] == ["x0", "x1"] and found.effect["pairs"][0]["move"] > 0.3
    assert found.threshold > 0 and found.statistic > found.threshold and 0 < found.p_value < 1e-6


def test_a_small_move_of_every_feature_is_caught_by_the_mean_detector():
    monitor = MultivariateMonitor(SETTINGS)
    monitor.update(events(4, 4000))
    found = monitor.update(events(5, 5000, shift=0.15))
    assert [d.detector for d in found] == ["multivariate_mean"]
    moves = {e["feature"]: e["move"] for e in found[0].explained_by}
    assert all(moves[f"x{k}"] > 0 for k in range(6))


def test_a_category_share_that_moves_is_caught():
    monitor = MultivariateMonitor(SETTINGS)
    monitor.update(events(6, 4000))
    found = monitor.update(events(7, 5000, shares=(0.25, 0.25, 0.25, 0.25)))
    assert found and found[0].explained_by[0]["feature"] == "country"


def test_after_an_alert_it_rearms_on_the_new_regime():
    monitor = MultivariateMonitor(SETTINGS)
    monitor.update(events(8, 4000))
    assert len(monitor.update(events(9, 3000, correlation=0.7))) == 1
    assert monitor.calibrations == 2  # the new reference: 1,000 events after the alert
    assert monitor.update(events(10, 20_000, correlation=0.7)) == []


STREAM = joined(events(11, 3000), events(12, 3000, correlation=0.7), events(13, 3000, correlation=0.7, shift=0.5))


@pytest.mark.parametrize("size", [1, 37, 1000])
def test_batches_give_what_one_by_one_gives(size):
    whole, parts = MultivariateMonitor(SETTINGS), MultivariateMonitor(SETTINGS)
    expected = feed(whole, STREAM, 9000)
    assert len(expected) >= 2
    assert feed(parts, STREAM, size) == expected
    assert pack(parts.get_state()) == pack(whole.get_state())


@pytest.mark.parametrize("cut", [500, 2500, 3600, 4500, 8000])
def test_state_restored_mid_stream_changes_nothing(cut):
    """Cut while warming up, watching, re-arming and watching again."""
    original = MultivariateMonitor(SETTINGS)
    before = feed(original, sliced(STREAM, 0, cut), 9000)
    restored = decode_monitor(encode_monitor(original))
    assert type(restored) is MultivariateMonitor and restored.settings == SETTINGS
    rest = sliced(STREAM, cut, 9000)
    assert feed(restored, rest, 9000) == feed(original, rest, 9000)
    assert pack(restored.get_state()) == pack(original.get_state())
    assert before or cut < 3000


def test_the_reference_rows_can_be_written_apart():
    monitor = MultivariateMonitor(SETTINGS)
    monitor.update(events(14, 2500))
    from streamdrift.detectors import reference_tag
    tag = reference_tag(monitor.reference_rows)
    apart = encode_monitor(monitor, tag)
    assert len(apart) < len(encode_monitor(monitor)) / 4
    assert unpack(apart)["reference_tag"] == tag
    restored = decode_monitor(apart, {tag: monitor.reference_rows})
    assert pack(restored.get_state()) == pack(monitor.get_state())


def test_a_supplied_reference_catches_skew_from_the_first_events():
    monitor = MultivariateMonitor(SETTINGS, reference=events(15, 3000))
    assert monitor.fitted and monitor.reference_rows.shape == (2000, 7)
    found = monitor.update(events(16, 3000, correlation=0.7))
    assert found and found[0].index < 1500


def test_a_feature_absent_from_a_run_counts_as_missing():
    monitor = MultivariateMonitor(SETTINGS)
    monitor.update(events(17, 2000))
    partial = events(18, 500)
    del partial["x3"]
    assert monitor.update(partial) == [] and monitor.seen == 2500


def test_runs_must_have_columns_of_one_length():
    with pytest.raises(ValueError, match="one length"):
        MultivariateMonitor(SETTINGS).update({"a": np.zeros(3), "b": np.zeros(4)})


@pytest.mark.parametrize("bad, name", [
    ({"reference_size": 10}, "reference_size"), ({"block": 5}, "block"), ({"max_features": 1}, "max_features"),
    ({"false_alarm_budget": 1}, "false_alarm_budget"), ({"detectors": ("ks",)}, "detectors"),
])
def test_bad_settings_name_the_setting(bad, name):
    with pytest.raises(ValueError, match=rf"^{name}"):
        MultivariateSettings(**bad)
