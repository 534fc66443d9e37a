"""``scripts/batch_log.py`` reads the batch lines the worker writes at debug level: the test
makes the worker write one and reads it back, so the script and the log format cannot drift apart."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from pathlib import Path

from streamdrift.logging_setup import TEXT_FORMAT
from tests.unit.test_worker_batches import records, worker

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "batch_log.py"


def batch_log():
    spec = importlib.util.spec_from_file_location("batch_log", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_worker_s_batch_line_is_read_back(caplog):
    w = worker()
    with caplog.at_level(logging.DEBUG, logger="streamdrift.worker"):
        asyncio.run(w.handle(records(0, 40), 0))
    text = logging.Formatter(TEXT_FORMAT)  # the worker's text log format
    lines = [text.format(r) for r in caplog.records if r.getMessage().startswith("batch of")]
    rows = batch_log().read(lines)
    assert len(rows) == 1
    _, events, oldest, pipeline, publishing, alerts, cpu = rows[0]
    assert events == 40 and alerts == 0 and pipeline >= 0 and publishing >= 0 and cpu >= 0
    assert oldest > 0  # the records' Kafka timestamps are from 2023: long before
