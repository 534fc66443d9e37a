#!/usr/bin/env python3
"""Speed of ``streamdrift replay --offline`` beside the naive loop, measured in this run on one core.

1. A JSONL log is generated in a temp dir: 200,000 events of 16 models, 20 numeric features each
   (4,000,000 feature values), with a few mean drifts so that alerts are written too.
2. ``streamdrift replay LOG --offline --alerts OUT`` runs in this process (``streamdrift.cli.main``),
   best of 3: feature values per second, file reading and JSON decoding included.
3. The naive equivalent on the same file: ``json.loads`` per line and every numeric value fed to
   river's ADWIN, PageHinkley and KSWIN (one of each per (model, feature); KSWIN with our window
   of 1,000 and river's default alpha, its window pre-filled so it tests from the first value, as
   it does in the long run). KSWIN costs ~150 us a value, so the loop runs on the first 5,000
   events and its cost per value is extrapolated to the whole file.

Requirements (issue 4): replay >= 1,000,000 feature values/s on one core, and >= 20x the naive loop.

``--mix sample``: the sample log's mix instead (``deploy/sample/make_sample.py``: three models of
three standard-normal features, a log-normal ``amount`` and a categorical ``country``, a mean, a
category, a variance and a missing-value drift, a malformed event every 500), ``--events`` events
long; replay only, not pinned, the median of 3 (issue 18: >= 1,000,000 feature values/s, a null
counted as a value, malformed events not).

    python scripts/bench_replay.py [--events 200000] [--models 16] [--naive-events 5000]
    python scripts/bench_replay.py --mix sample [--events 600000]
"""

from __future__ import annotations

import os

# One core: no BLAS/OpenMP helper threads, set before numpy loads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import orjson  # noqa: E402
from river import drift  # noqa: E402

from streamdrift.cli import main as streamdrift  # noqa: E402

FEATURES = 20
REPEATS = 3
KSWIN_WINDOW = 1000
VALUES_PER_SECOND_REQUIRED = 1_000_000
SPEEDUP_REQUIRED = 20.0
# Drift starts halfway through the first few models' streams (mean + 1 sd on one feature each).
DRIFTED_MODELS = 4
# A reference of 1,000 values (the default is 5,000) keeps the warm-up to 8% of each model's
# 12,500 events, so the detectors' steady state dominates, as in a long log.
CONFIG = """
[detectors]
reference_size = 1000
"""


def write_log(path: Path, events: int, models: int, seed: int = 0) -> int:
    """Round-robin events of ``models`` models with ``FEATURES`` standard-normal features; returns
    the number of feature values written."""
    rng = np.random.default_rng(seed)
    names = [f"f{j:02d}" for j in range(FEATURES)]
    per_model = events // models
    values = np.round(rng.normal(0.0, 1.0, (events, FEATURES)), 6)
    model_of = np.arange(events) % models
    position = np.arange(events) // models
    for m in range(min(DRIFTED_MODELS, models)):
        rows = (model_of == m) & (position >= per_model // 2)
        values[rows, m] += 1.0
    model_names = [f"model-{m:02d}" for m in range(models)]
    with open(path, "wb") as out:
        for i, row in enumerate(values.tolist()):
            out.write(orjson.dumps({"model": model_names[model_of[i]], "id": f"e-{i}", "ts": 1_732_000_000.0 + i * 0.01,
                                    "features": dict(zip(names, row))}) + b"\n")
    return events * FEATURES


def write_sample_mix(path: Path, events: int) -> int:
    """The sample log's models, features, drifts and malformed events, ``events`` events long;
    returns the number of feature values of its well-formed events (nulls included)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "deploy" / "sample"))
    import make_sample
    from streamdrift.synthetic import SyntheticStream

    stream = SyntheticStream(models=make_sample.MODELS, numeric_features=3,
                             events_per_model=events // len(make_sample.MODELS), drifts=make_sample.DRIFTS, seed=11)
    values = 0
    with open(path, "wb") as out:
        for i, event in enumerate(stream.events(), start=1):
            out.write(orjson.dumps(event) + b"\n")
            values += len(event["features"])
            if i % make_sample.MALFORMED_EVERY == 0:
                bad = make_sample.MALFORMED[(i // make_sample.MALFORMED_EVERY) % len(make_sample.MALFORMED)]
                out.write(orjson.dumps(bad) + b"\n")
    return values


def sample_mix(events: int) -> int:
    """``--mix sample``: the replay's rate on the sample log's mix, unpinned, median of 3."""
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        folder = Path(tmp)
        log, config, alerts = folder / "log.jsonl", folder / "streamdrift.toml", folder / "alerts.jsonl"
        config.write_text(CONFIG)
        values = write_sample_mix(log, events)
        print(f"streamdrift replay, the sample log's mix: {events:,} events of 3 models, {values:,} feature "
              f"values (4 numeric, 1 categorical per event, nulls from a missing drift; {log.stat().st_size / 1e6:.0f} MB "
              f"JSONL); not pinned ({len(os.sched_getaffinity(0))} cores); reference_size 1000; median of {REPEATS}")
        runs = [time_replay(log, config, alerts) for _ in range(REPEATS)]
        for k, (wall, cpu) in enumerate(runs, start=1):
            print(f"   run {k}: {wall:.2f} s wall, {cpu:.2f} s CPU: {values / wall:,.0f} feature values/s")
        wall = float(np.median([w for w, _ in runs]))
        alert_count = sum(1 for _ in open(alerts, "rb"))
    rate = values / wall
    print(f"   median: {rate:,.0f} feature values/s; {alert_count} alerts")
    ok = rate >= VALUES_PER_SECOND_REQUIRED
    print(f"{verdict(ok)}  replay >= {VALUES_PER_SECOND_REQUIRED:,} feature values/s on the sample log's mix: {rate:,.0f}/s")
    return 0


def time_replay(log: Path, config: Path, alerts: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one offline replay in this process."""
    wall, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stderr(io.StringIO()):
        code = streamdrift(["replay", str(log), "--offline", "--config", str(config), "--alerts", str(alerts),
                            "--quiet"])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if code != 0:
        raise SystemExit(f"streamdrift replay exited with {code}")
    return wall, cpu


def time_naive(log: Path, events: int, with_kswin: bool = True) -> tuple[float, int, int]:
    """Seconds for the naive loop over the first ``events`` lines; values fed; alarms."""
    rng = np.random.default_rng(1)
    detectors: dict[tuple[str, str], list] = {}

    def make() -> list:
        trio = [drift.ADWIN(), drift.PageHinkley()]
        if with_kswin:
            # Pre-filled (untimed): a full window tests on every value, the long-run cost.
            trio.append(drift.KSWIN(window_size=KSWIN_WINDOW, seed=1,
                                    window=rng.normal(0.0, 1.0, KSWIN_WINDOW).tolist()))
        return trio

    with open(log, "rb") as f:
        lines = [f.readline() for _ in range(events)]
    for line in lines:  # build the detectors outside the timing
        event = json.loads(line)
        for name in event["features"]:
            key = (event["model"], name)
            if key not in detectors:
                detectors[key] = make()
    fed = alarms = 0
    started = time.perf_counter()
    for line in lines:
        event = json.loads(line)
        model = event["model"]
        for name, value in event["features"].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                for detector in detectors[(model, name)]:
                    detector.update(value)
                    alarms += detector.drift_detected
                fed += 1
    return time.perf_counter() - started, fed, alarms


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--models", type=int, default=16)
    parser.add_argument("--naive-events", type=int, default=5_000, help="prefix of the log the naive loop runs on")
    parser.add_argument("--mix", choices=["numeric", "sample"], default="numeric",
                        help="numeric: 20 standard-normal features (pinned, against the naive loop); "
                             "sample: the sample log's mix (unpinned, replay only)")
    args = parser.parse_args()
    if args.mix == "sample":
        return sample_mix(args.events)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        folder = Path(tmp)
        log, config, alerts = folder / "log.jsonl", folder / "streamdrift.toml", folder / "alerts.jsonl"
        config.write_text(CONFIG)
        started = time.perf_counter()
        values = write_log(log, args.events, args.models)
        size = log.stat().st_size
        print(f"streamdrift replay benchmark: {args.events:,} events x {FEATURES} numeric features of "
              f"{args.models} models = {values:,} values ({size / 1e6:.0f} MB JSONL, written in "
              f"{time.perf_counter() - started:.1f} s); pinned to {cores} core; reference_size 1000; "
              f"best of {REPEATS}")
        print()

        runs = [time_replay(log, config, alerts) for _ in range(REPEATS)]
        wall, cpu = min(runs)
        replay_rate = values / wall
        alert_count = sum(1 for _ in open(alerts, "rb"))

        naive_events = min(args.naive_events, args.events)
        naive_s, naive_values, naive_alarms = time_naive(log, naive_events)
        naive_rate = naive_values / naive_s
        floor_s, floor_values, _ = time_naive(log, naive_events, with_kswin=False)
        floor_rate = floor_values / floor_s

    print(f"   {'configuration':<74}{'values/s':>12}{'us/value':>10}{'vs naive':>10}")
    rows = [
        ("streamdrift replay --offline (whole file: read, decode, detect, write alerts)", replay_rate),
        (f"naive: json.loads + river ADWIN + PageHinkley + KSWIN({KSWIN_WINDOW}), first {naive_events:,} events",
         naive_rate),
        (f"naive without KSWIN (json.loads + ADWIN + PageHinkley; a floor, not equivalent)", floor_rate),
    ]
    for label, rate in rows:
        print(f"   {label:<74}{rate:>12,.0f}{1e6 / rate:>10.3f}{rate / naive_rate:>9.1f}x")
    print()
    print(f"   replay: {wall:.2f} s wall, {cpu:.2f} s CPU for {values:,} values; {alert_count} alerts")
    print(f"   naive: {naive_values:,} values in {naive_s:.2f} s ({naive_alarms} alarms); extrapolated to the "
          f"whole file: {values / naive_rate:,.0f} s")
    print()
    speedup = replay_rate / naive_rate
    checks = [
        (f"replay >= {VALUES_PER_SECOND_REQUIRED:,} feature values/s on one core",
         replay_rate >= VALUES_PER_SECOND_REQUIRED, f"{replay_rate:,.0f}/s"),
        (f"replay >= {SPEEDUP_REQUIRED:.0f}x the naive loop", speedup >= SPEEDUP_REQUIRED, f"{speedup:,.1f}x"),
    ]
    for label, ok, value in checks:
        print(f"{verdict(ok)}  {label}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
