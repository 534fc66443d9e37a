"""The five detectors on their own: where they fire, that they stay quiet, what they refuse, and
agreement with the references they claim to reproduce (river's ADWIN, scipy's two-sample KS)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from river import drift
from scipy.stats import ks_2samp

from streamdrift.detectors import ADWIN, FrequencyTest, MissingRate, PageHinkley, Reference, WindowedKS
from streamdrift.detectors.reference import summarize
from streamdrift.detectors.ks import ks_statistic_positions, ks_statistic_values

#: Run length each detector is calibrated for here: the share of one of the 5 detectors of a numeric
#: monitor at the default budget of 1e7, so a 300k stationary stream expects ~0.006 false alarms.
RUN_LENGTH = 5e7
STATIONARY = 300_000


def bounded_adwin(**parameters) -> ADWIN:
    """An ADWIN over values in [0, 1] (no reference), with the given ``delta`` kept."""
    adwin = ADWIN(**parameters)
    adwin.fit(None)
    return adwin


def scores(reference: Reference, values: np.ndarray) -> np.ndarray:
    """Normal scores of values against the reference, as the numeric monitor feeds Page-Hinkley."""
    return reference.normal_scores(reference.positions(values))


def first_windowed_alarm(test, codes: np.ndarray, window: int, every: int):
    """Slide ``test`` over ``codes`` the way a monitor does; ``(index, verdict)`` of the first alarm."""
    for end in range(window, codes.size + 1, every):
        verdict = test(codes[end - window:end])
        if verdict is not None:
            return end - 1, verdict
    return None


# -- Page-Hinkley ------------------------------------------------------------------------------
def fitted_page_hinkley(seed: int = 7) -> tuple[PageHinkley, Reference, np.random.Generator]:
    rng = np.random.default_rng(seed)
    reference = Reference(rng.normal(0, 1, 5000))
    ph = PageHinkley(shift=0.5)
    ph.fit(reference, share=RUN_LENGTH)
    return ph, reference, rng


@pytest.mark.parametrize("shift, direction", [(0.5, "up"), (-0.5, "down")])
def test_page_hinkley_detects_mean_shift(shift, direction):
    ph, reference, rng = fitted_page_hinkley()
    assert ph.update(rng.normal(0, 1, 3000)) == []
    hits = ph.update(rng.normal(shift, 1, 3000))
    assert len(hits) == 1 and ph.drift_detected
    hit = hits[0]
    assert ph.name == "page_hinkley"
    assert hit.direction == direction
    assert 0 <= hit.index < 400
    assert hit.statistic > hit.threshold == ph.threshold_value
    assert hit.change_point is not None and hit.change_point <= hit.index


def test_page_hinkley_quiet_on_long_stationary_stream():
    ph, reference, rng = fitted_page_hinkley()
    assert ph.update(rng.normal(0, 1, STATIONARY)) == []


# -- ADWIN -------------------------------------------------------------------------------------
@pytest.mark.parametrize("low, direction", [(0.2, "up"), (-0.2, "down")])
def test_adwin_detects_mean_shift(low, direction):
    rng = np.random.default_rng(3)
    adwin = bounded_adwin(delta=1e-6, block=32)
    assert adwin.update(rng.uniform(0.0, 1.0, 5000)) == []
    after = rng.uniform(0.2, 1.0, 5000) if direction == "up" else rng.uniform(0.0, 0.8, 5000)
    hits = adwin.update(after)
    assert hits and adwin.drift_detected
    hit = hits[0]
    assert adwin.name == "adwin"
    assert hit.direction == direction
    assert 0 <= hit.index < 1500
    assert hit.statistic >= hit.threshold > 0
    assert 0 < hit.since_change <= 5000 + 5000


def test_adwin_quiet_on_long_stationary_stream():
    rng = np.random.default_rng(4)
    adwin = bounded_adwin(delta=1e-6, block=32)
    assert adwin.update(rng.uniform(0.0, 1.0, STATIONARY)) == []
    assert adwin.detections == 0
    # The window grew over the whole stream: nothing was cut.
    assert adwin.width == STATIONARY


def river_detections(x: np.ndarray) -> list[int]:
    detector = drift.ADWIN(delta=0.002)
    found = []
    for i, value in enumerate(x.tolist()):
        detector.update(value)
        if detector.drift_detected:
            found.append(i)
    return found


def our_detections(x: np.ndarray) -> list[int]:
    """Ours, restarted after each detection the way river resets itself on the next update."""
    found, start = [], 0
    while start < x.size:
        hits = bounded_adwin(delta=0.002, block=1, clock=32).update(x[start:])
        if not hits:
            break
        found.append(start + hits[0].index)
        start += hits[0].index + 1
    return found


@pytest.mark.parametrize("seed", range(5))
def test_adwin_first_detection_matches_river(seed):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.uniform(0, 1, 3000), rng.uniform(0.2, 1, 3000)])
    ours = bounded_adwin(delta=0.002, block=1, clock=32).update(x)
    theirs = river_detections(x)
    assert ours and theirs
    assert ours[0].index == theirs[0]


@pytest.mark.parametrize("seed", range(3))
def test_adwin_every_detection_matches_river(seed):
    rng = np.random.default_rng(100 + seed)
    x = np.concatenate([rng.uniform(0, 1, 2000), rng.uniform(0.3, 1, 2000),
                        rng.uniform(0, 0.6, 2000), rng.uniform(0, 1, 3000)])
    theirs = river_detections(x)
    assert len(theirs) >= 3
    assert our_detections(x) == theirs


# -- windowed KS -------------------------------------------------------------------------------
def fitted_ks(seed: int = 5) -> tuple[WindowedKS, Reference, np.random.Generator]:
    rng = np.random.default_rng(seed)
    reference = Reference(rng.normal(0, 1, 5000))
    ks = WindowedKS(window=1000, evaluate_every=250)
    ks.fit(reference, share=RUN_LENGTH)
    return ks, reference, rng


@pytest.mark.parametrize("after, direction", [((0.3, 1.0), "up"), ((-0.3, 1.0), "down"), ((0.0, 2.0), "wider"),
                                              ((0.0, 0.4), "narrower")])
def test_windowed_ks_detects_change(after, direction):
    ks, reference, rng = fitted_ks()
    stream = np.concatenate([rng.normal(0, 1, 3000), rng.normal(*after, 3000)])
    hit = first_windowed_alarm(ks.test_positions, reference.positions(stream), ks.window, ks.evaluate_every)
    assert hit is not None
    index, found = hit
    assert ks.name == "ks"
    assert found.direction == direction
    assert 3000 <= index < 3800
    assert found.statistic > found.threshold == ks.critical and found.p_value < 1e-4
    # The detector fed value by value (its own window) fires at the same value.
    ks.fit(reference, share=RUN_LENGTH)
    assert [(h.index, h.direction) for h in ks.update(stream)][:1] == [(index, direction)]


def test_windowed_ks_sliding_reference_detects_change():
    ks, _, rng = fitted_ks()
    stream = np.concatenate([rng.normal(0, 1, 6000), rng.normal(0.4, 1, 3000)])
    found = None
    for end in range(6000, stream.size + 1, 250):
        verdict = ks.test_values(stream[end - 1000 - 5000:end - 1000], stream[end - 1000:end])
        if verdict is not None:
            found = end - 1, verdict.direction
            break
    assert found is not None and found[1] == "up" and 6000 <= found[0] < 6800


def test_windowed_ks_quiet_on_long_stationary_stream():
    ks, reference, rng = fitted_ks()
    stream = reference.positions(rng.normal(0, 1, STATIONARY))
    assert first_windowed_alarm(ks.test_positions, stream, ks.window, ks.evaluate_every) is None


# -- frequency (G) test ------------------------------------------------------------------------
SHARES = [0.3, 0.25, 0.2, 0.15, 0.07, 0.03]


def fitted_frequency(seed: int = 11) -> tuple[FrequencyTest, np.random.Generator]:
    rng = np.random.default_rng(seed)
    test = FrequencyTest(window=1000, evaluate_every=250)
    test.fit(np.bincount(rng.choice(6, 5000, p=SHARES), minlength=6), share=RUN_LENGTH)
    return test, rng


def test_frequency_test_detects_share_change():
    test, rng = fitted_frequency()
    after = [0.4, 0.2, 0.15, 0.15, 0.07, 0.03]
    codes = np.concatenate([rng.choice(6, 3000, p=SHARES), rng.choice(6, 3000, p=after)])
    hit = first_windowed_alarm(test.test, codes, test.window, test.evaluate_every)
    assert hit is not None
    index, found = hit
    assert test.name == "frequency"
    assert 3000 <= index < 4000
    assert found.statistic > found.threshold == test.critical and found.p_value < 1e-4
    assert found.effect["psi"] > 0 and 0 < found.effect["jensen_shannon"] <= 1
    assert [h.index for h in test.update(codes)][:1] == [index]


def test_frequency_test_quiet_on_long_stationary_stream():
    test, rng = fitted_frequency()
    codes = rng.choice(6, STATIONARY, p=SHARES)
    assert first_windowed_alarm(test.test, codes, test.window, test.evaluate_every) is None


# -- missing rate ------------------------------------------------------------------------------
@pytest.mark.parametrize("reference_rate, after, direction", [(0.02, 0.10, "up"), (0.10, 0.01, "down")])
def test_missing_rate_detects_rate_change(reference_rate, after, direction):
    rng = np.random.default_rng(2)
    mr = MissingRate()
    mr.fit_counts(missing=int(reference_rate * 5000), total=5000, share=RUN_LENGTH)
    assert mr.update(rng.random(5000) < reference_rate) == []
    hits = mr.update(rng.random(5000) < after)
    assert len(hits) == 1
    hit = hits[0]
    assert mr.name == "missing_rate"
    assert hit.direction == direction
    assert 0 <= hit.index < 1000
    assert hit.statistic > hit.threshold == mr.threshold_value(direction)


@pytest.mark.parametrize("reference_rate", [0.0, 0.02, 0.3])
def test_missing_rate_quiet_on_long_stationary_stream(reference_rate):
    rng = np.random.default_rng(12)
    mr = MissingRate()
    mr.fit_counts(missing=int(reference_rate * 5000), total=5000, share=RUN_LENGTH)
    assert mr.update(rng.random(STATIONARY) < reference_rate) == []


# -- bad parameters ----------------------------------------------------------------------------
@pytest.mark.parametrize("make, name", [
    (lambda: PageHinkley(shift=0), "page_hinkley.shift"),
    (lambda: PageHinkley(shift=-0.5), "page_hinkley.shift"),
    (lambda: PageHinkley(shift=float("nan")), "page_hinkley.shift"),
    (lambda: PageHinkley(shift=11), "page_hinkley.shift"),
    (lambda: ADWIN(delta=2), "adwin.delta"),
    (lambda: ADWIN(delta=0), "adwin.delta"),
    (lambda: ADWIN(block=0), "adwin.block"),
    (lambda: ADWIN(block=2.5), "adwin.block"),
    (lambda: ADWIN(block=True), "adwin.block"),
    (lambda: ADWIN(clock=0), "adwin.clock"),
    (lambda: ADWIN(max_buckets=1), "adwin.max_buckets"),
    (lambda: ADWIN(min_window_length=0), "adwin.min_window_length"),
    (lambda: WindowedKS(window=10), "ks.window"),
    (lambda: WindowedKS(window=1000, evaluate_every=0), "ks.evaluate_every"),
    (lambda: WindowedKS(window=100, evaluate_every=101), "ks.evaluate_every"),
    (lambda: FrequencyTest(window=5), "window"),
    (lambda: FrequencyTest(window=100, evaluate_every=500), "evaluate_every"),
    (lambda: MissingRate(min_change=0), "missing_rate.min_change"),
    (lambda: MissingRate(min_change=0.9), "missing_rate.min_change"),
    (lambda: MissingRate(min_change="0.1"), "missing_rate.min_change"),
])
def test_bad_parameters_rejected_naming_the_parameter(make, name):
    with pytest.raises(ValueError, match=rf"^{re.escape(name)} must be "):
        make()


# -- KS statistic exactness against scipy ------------------------------------------------------
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
tied = st.integers(-4, 4).map(float)
samples = st.one_of(
    arrays(np.float64, st.integers(1, 120), elements=finite),
    arrays(np.float64, st.integers(1, 120), elements=tied),
)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # scipy's p-value for n = 1
@settings(max_examples=150, deadline=None)
@given(reference=samples, window=samples)
def test_ks_statistics_equal_scipy(reference, window):
    n, m = reference.size, window.size
    expected_up = ks_2samp(reference, window, alternative="greater", method="asymp").statistic
    expected_down = ks_2samp(reference, window, alternative="less", method="asymp").statistic
    expected = ks_2samp(reference, window, method="asymp").statistic

    up, down = ks_statistic_positions(Reference(reference), Reference(reference).positions(window))
    assert up / (n * m) == pytest.approx(expected_up, abs=1e-12)
    assert down / (n * m) == pytest.approx(expected_down, abs=1e-12)
    assert max(up, down) / (n * m) == pytest.approx(expected, abs=1e-12)

    up_v, down_v = ks_statistic_values(reference, window)
    assert up_v == pytest.approx(expected_up, abs=1e-12)
    assert down_v == pytest.approx(expected_down, abs=1e-12)
    assert max(up_v, down_v) == pytest.approx(expected, abs=1e-12)


def test_ks_statistics_with_heavy_ties_on_realistic_sizes():
    rng = np.random.default_rng(13)
    reference = rng.poisson(3, 5000).astype(float)
    for shift in (0, 1):
        window = rng.poisson(3 + shift, 1000).astype(float)
        up, down = ks_statistic_positions(Reference(reference), Reference(reference).positions(window))
        assert max(up, down) / (5000 * 1000) == pytest.approx(ks_2samp(reference, window).statistic, abs=1e-12)


def test_a_reference_summary_is_made_once_and_handed_out_as_copies():
    """Every alert of a reference carries its summary: made once, each alert its own copy."""
    values = np.random.default_rng(3).normal(0, 1, 1_000)
    reference = Reference(values)
    first = reference.summary()
    assert first == summarize(values)
    first["quantiles"]["p50"] = 99.0
    first["mean"] = 99.0
    assert reference.summary() == summarize(values)
