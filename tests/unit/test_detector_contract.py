"""One contract, checked over every detector (in the manner of river's estimator checks): fit
before update, batches change nothing, state restored mid-stream changes nothing, bad
parameters name the parameter, and the protocol's attributes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from streamdrift.detectors import (ADWIN, DDM, HDDM_A, Detector, FrequencyTest, Hit, JointShift, MissingRate,
                                   NotFittedError, PageHinkley, Reference, Scale, WindowedKS)

SHARE = 5e6


@dataclass
class Case:
    """A detector, how to fit it, and a stream on which it fires (drift after the first part)."""

    make: Callable[[], object]
    reference: Callable[[], object]
    stream: Callable[[], np.ndarray]

    def fitted(self):
        detector = self.make()
        detector.fit(self.reference(), SHARE)
        return detector


def normal(seed: int, mean: float, sd: float, n: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, sd, n)


def shifted(before: int = 3000, after: int = 3000, shift: float = 0.6, sd: float = 1.0) -> np.ndarray:
    return np.concatenate([normal(1, 0, 1, before), normal(2, shift, sd, after)])


def flags(seed: int, rate: float, n: int) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < rate


def errors(seed: int, rate: float, n: int) -> np.ndarray:
    return flags(seed, rate, n).astype(np.float64)


def rows(seed: int, n: int, correlation: float = 0.0, shift: float = 0.0) -> np.ndarray:
    """Rows of 5 standard normal features; features 0 and 1 with ``correlation``, all moved by ``shift``."""
    x = np.random.default_rng(seed).normal(size=(n, 5))
    x[:, 1] = correlation * x[:, 0] + np.sqrt(1 - correlation ** 2) * x[:, 1]
    return x + shift


REFERENCE = Reference(normal(0, 0, 1, 5000))
SHARES = [0.3, 0.25, 0.2, 0.15, 0.1]

CASES = {
    "page_hinkley": Case(lambda: PageHinkley(shift=0.5), lambda: REFERENCE, shifted),
    "scale": Case(Scale, lambda: REFERENCE, lambda: shifted(shift=0.0, sd=1.6)),
    "adwin": Case(lambda: ADWIN(block=16, clock=2), lambda: REFERENCE, shifted),
    "adwin_bounded": Case(lambda: ADWIN(block=16, clock=2), lambda: None,
                          lambda: np.concatenate([np.random.default_rng(3).uniform(0, 1, 3000),
                                                  np.random.default_rng(4).uniform(0.25, 1, 3000)])),
    "ks": Case(lambda: WindowedKS(window=500, evaluate_every=100), lambda: REFERENCE,
               lambda: shifted(shift=0.0, sd=2.0)),
    "ks_sliding": Case(lambda: WindowedKS(window=500, evaluate_every=100, sliding_reference=True),
                       lambda: REFERENCE, shifted),
    "frequency": Case(lambda: FrequencyTest(window=1000, evaluate_every=250),
                      lambda: np.bincount(np.random.default_rng(5).choice(5, 5000, p=SHARES), minlength=5),
                      lambda: np.concatenate([np.random.default_rng(6).choice(5, 3000, p=SHARES),
                                              np.random.default_rng(7).choice(5, 3000, p=[0.45, 0.2, 0.15, 0.1, 0.1])])),
    "missing_rate": Case(MissingRate, lambda: flags(8, 0.02, 5000),
                         lambda: np.concatenate([flags(9, 0.02, 3000), flags(10, 0.10, 3000)])),
    "ddm": Case(DDM, lambda: errors(11, 0.1, 3000), lambda: np.concatenate([errors(12, 0.1, 2000), errors(13, 0.3, 2000)])),
    "hddm_a": Case(HDDM_A, lambda: errors(14, 0.1, 3000),
                   lambda: np.concatenate([errors(15, 0.1, 2000), errors(16, 0.3, 2000)])),
    "joint_mean": Case(lambda: JointShift("mean", block=100), lambda: rows(17, 4000),
                       lambda: np.concatenate([rows(18, 3000), rows(19, 3000, shift=0.15)])),
    "joint_covariance": Case(lambda: JointShift("covariance", block=100), lambda: rows(20, 4000),
                             lambda: np.concatenate([rows(21, 3000), rows(22, 3000, correlation=0.6)])),
}
NAMES = sorted(CASES)


def feed(detector, x: np.ndarray, size: int) -> list[tuple]:
    """Every hit over the stream, fed ``size`` values per call, with its index in the stream."""
    found = []
    for start in range(0, len(x), size):
        for hit in detector.update(x[start:start + size]):
            found.append((start + hit.index, hit.direction, hit.statistic, hit.threshold, hit.p_value,
                          None if hit.change_point is None else start + hit.change_point))
    return found


def equal_states(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(equal_states(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(equal_states, a, b))
    return np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("name", NAMES)
def test_it_keeps_the_detector_protocol(name):
    detector = CASES[name].make()
    assert isinstance(detector, Detector)
    assert isinstance(detector.name, str) and detector.name
    assert not detector.fitted and not detector.drift_detected


@pytest.mark.parametrize("name", NAMES)
def test_update_before_fit_raises(name):
    case = CASES[name]
    with pytest.raises(NotFittedError, match="is not fitted: call fit"):
        case.make().update(case.stream()[:10])


@pytest.mark.parametrize("name", NAMES)
def test_it_fires_on_its_drifting_stream_and_reports_named_hits(name):
    case = CASES[name]
    detector = case.fitted()
    x = case.stream()
    half = len(x) // 2
    hits = detector.update(x[:half])
    assert hits == [] and not detector.drift_detected
    hits = detector.update(x[half:])
    assert hits and detector.drift_detected
    assert all(isinstance(hit, Hit) for hit in hits)
    assert [hit.index for hit in hits] == sorted(hit.index for hit in hits)
    first = hits[0]
    assert 0 <= first.index < half
    assert np.isfinite(first.statistic)
    assert first.change_point is None or first.change_point <= first.index
    assert detector.update(x[:0]) == [] and not detector.drift_detected


@pytest.mark.parametrize("size", [1, 7, 250])
@pytest.mark.parametrize("name", NAMES)
def test_batches_give_what_one_by_one_gives(name, size):
    case = CASES[name]
    x = case.stream()
    whole, parts = case.fitted(), case.fitted()
    expected = feed(whole, x, len(x))
    assert expected
    assert feed(parts, x, size) == expected
    assert equal_states(parts.get_state(), whole.get_state())


@pytest.mark.parametrize("cut", [1, 999, 3001, 3500])
@pytest.mark.parametrize("name", NAMES)
def test_state_restored_mid_stream_changes_nothing(name, cut):
    case = CASES[name]
    x = case.stream()
    original = case.fitted()
    original.update(x[:cut])
    restored = case.fitted()  # fitted on the same reference, as a monitor restores its detectors
    restored.set_state(original.get_state())
    expected = feed(original, x[cut:], len(x))
    assert feed(restored, x[cut:], len(x)) == expected
    assert equal_states(restored.get_state(), original.get_state())


@pytest.mark.parametrize("name", NAMES)
def test_fit_starts_afresh(name):
    case = CASES[name]
    x = case.stream()
    detector = case.fitted()
    detector.update(x)
    detector.fit(case.reference(), SHARE)
    assert not detector.drift_detected
    assert equal_states(detector.get_state(), case.fitted().get_state())


@pytest.mark.parametrize("make, name", [
    (lambda: PageHinkley(shift=0), "page_hinkley.shift"),
    (lambda: Scale(change=0), "scale_change"),
    (lambda: ADWIN(delta=0), "adwin.delta"),
    (lambda: ADWIN(block=0), "adwin.block"),
    (lambda: WindowedKS(window=10), "ks.window"),
    (lambda: FrequencyTest(window=5), "window"),
    (lambda: MissingRate(min_change=0), "missing_rate.min_change"),
    (lambda: DDM(drift_threshold=0), "ddm_drift_threshold"),
    (lambda: HDDM_A(drift_confidence=0.9), "hddm_a_drift_confidence"),
    (lambda: JointShift("mean", block=5), "block"),
    (lambda: JointShift("spread"), "terms"),
    (lambda: JointShift().fit(rows(0, 500), share=0), "share"),
    (lambda: PageHinkley().fit(REFERENCE, share=0.5), "share"),
    (lambda: WindowedKS().fit(REFERENCE, share=float("inf")), "share"),
    (lambda: MissingRate().fit(np.zeros(10, dtype=bool), share=-1), "share"),
])
def test_bad_parameters_name_the_parameter(make, name):
    with pytest.raises(ValueError, match=rf"^{re.escape(name)} must be "):
        make()


def test_adwin_without_a_reference_refuses_values_outside_0_1():
    adwin = ADWIN()
    adwin.fit(None, SHARE)
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="watches values in \\[0, 1\\]"):
            adwin.update(np.array([0.5, bad]))
    assert adwin.update(np.array([0.0, 1.0])) == []
    # Fitted on a reference it watches any number, through its rank in the reference.
    adwin.fit(REFERENCE, SHARE)
    assert adwin.update(np.array([-40.0, 1e6])) == []


def test_values_the_detectors_cannot_read_are_refused():
    ph = PageHinkley()
    ph.fit(REFERENCE, SHARE)
    with pytest.raises(ValueError, match="position 1 is not a finite number"):
        ph.update(np.array([0.0, np.inf]))
    mr = MissingRate()
    mr.fit(np.zeros(100, dtype=bool), SHARE)
    with pytest.raises(ValueError, match="takes booleans"):
        mr.update(np.array([0.0, 1.0]))
    test = FrequencyTest()
    test.fit(np.array([10, 20, 30]), SHARE)
    with pytest.raises(ValueError, match="position 0 is 3, not a cell code"):
        test.update(np.array([3]))
    with pytest.raises(TypeError, match="takes a Reference"):
        PageHinkley().fit(np.arange(10.0), SHARE)


def test_a_cusum_holds_its_alarm_until_it_is_fit_again():
    ph = CASES["page_hinkley"].fitted()
    x = CASES["page_hinkley"].stream()
    assert ph.update(x)
    assert ph.update(normal(20, 3.0, 1, 100)) == []  # in alarm on the up side: held, not repeated
    ph.fit(REFERENCE, SHARE)
    assert ph.update(normal(21, 3.0, 1, 100))


@pytest.mark.parametrize("folder", ["detectors", "stream"])
def test_the_core_cannot_be_imported_twice_under_two_names(folder):
    """From the repository root, `import detectors` would otherwise be a second copy of every
    class (``detectors.NumericMonitor is not streamdrift.detectors.NumericMonitor``)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-c", f"import {folder}"], cwd=root, capture_output=True, text=True)
    assert run.returncode != 0
    assert f"this package is streamdrift.{folder}, not '{folder}'" in run.stderr
    ok = subprocess.run([sys.executable, "-c", f"import streamdrift.{folder}"], cwd=root, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
