"""One ``streamdrift run`` with several worker processes: they split the partitions like workers
of one group, the worker reports them as one, and they die with it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from streamdrift.config import ConfigError, from_mapping
from streamdrift.stream.topics import ensure_topics_sync
from streamdrift.synthetic import SyntheticStream

from .workers import WorkerProcess, config_text, produce

ALL_PARTITIONS = 4


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def _start(broker, unique_topic, tmp_path, processes: int = 2) -> tuple[WorkerProcess, str]:
    prefix = unique_topic("wp")
    ensure_topics_sync(broker.bootstrap, {f"{prefix}.features": ALL_PARTITIONS})
    config = tmp_path / "streamdrift.toml"
    config.write_text(f"processes = {processes}\n" + config_text(prefix, "[detectors]\nreference_size = 500\n"))
    worker = WorkerProcess(broker.bootstrap, config, tmp_path / "worker.log")
    return worker, prefix


def test_processes_split_the_partitions_and_report_as_one_worker(broker, unique_topic, tmp_path):
    worker, prefix = _start(broker, unique_topic, tmp_path)
    try:
        report = worker.wait_until(lambda h: h["status"] == "ok" and len(h["partitions"]) == ALL_PARTITIONS
                                   and all(h["process_partitions"]), timeout_s=45, what="both processes assigned")
        assert report["processes"] == 2
        owned = [set(part) for part in report["process_partitions"]]
        assert owned[0] and owned[1] and not owned[0] & owned[1]
        assert len(owned[0] | owned[1]) == ALL_PARTITIONS
        models = [f"model-{i}" for i in range(8)]
        messages = list(SyntheticStream(models=models, events_per_model=1500, drifts=[], numeric_features=3,
                                        seed=5).messages())
        produced = produce(broker.bootstrap, f"{prefix}.features", messages)
        report = worker.wait_until(lambda h: h["counts"]["in"] >= produced, timeout_s=60, what="all events")
        assert report["counts"]["in"] == report["counts"]["processed"] == produced  # each event once
        assert report["models"] == len(models)
        metrics = worker.wait_until(lambda h: True) and worker.metrics()
        assert _metric(metrics, "streamdrift_events_in_total") == produced
        assert _metric(metrics, "streamdrift_models") == len(models)  # summed over the processes
        def feature_lags(text: str) -> list[str]:
            return [line for line in text.splitlines() if line.startswith("streamdrift_consumer_lag{") and ".features" in line]

        # Lag is measured every 2 s by the process of each partition: a measurement taken while the
        # events were still arriving stands until the next one, so wait for a fresh one.
        deadline = time.monotonic() + 15
        lags = feature_lags(metrics)
        while not (len(lags) == ALL_PARTITIONS and all(line.endswith(" 0.0") for line in lags)) \
                and time.monotonic() < deadline:
            time.sleep(0.5)
            lags = feature_lags(worker.metrics())
        assert len(lags) == ALL_PARTITIONS and all(line.endswith(" 0.0") for line in lags), lags
        assert worker.stop(signal.SIGTERM) == 0
        log = worker.log_path.read_text()
        assert log.count("handed over") == 2, log[-3000:]  # each process checkpointed its partitions
    finally:
        worker.stop()


def _running_with_children(broker, unique_topic, tmp_path) -> tuple[WorkerProcess, list[int]]:
    worker, _ = _start(broker, unique_topic, tmp_path)
    worker.wait_until(lambda h: h["status"] == "ok", timeout_s=45, what="start")
    children = _children(worker.process.pid)
    assert len(children) == 2
    return worker, children


def test_processes_die_with_the_worker(broker, unique_topic, tmp_path):
    worker, children = _running_with_children(broker, unique_topic, tmp_path)
    try:
        worker.stop(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(map(_alive, children)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(map(_alive, children)), "a worker process outlived a killed streamdrift run"
    finally:
        worker.stop()


def test_a_dead_process_stops_the_worker_with_an_error(broker, unique_topic, tmp_path):
    worker, children = _running_with_children(broker, unique_topic, tmp_path)
    try:
        os.kill(children[0], signal.SIGKILL)
        worker.process.wait(timeout=30)
        assert worker.process.returncode != 0
        assert " died (exit code -9)" in worker.log_text()
    finally:
        worker.stop()


def test_processes_setting_is_checked():
    with pytest.raises(ConfigError, match="processes"):
        from_mapping({"processes": -2})
