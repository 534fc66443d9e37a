"""Log lines as text or JSON (``log_format``); alert and retrain-request lines carry their ids."""

from __future__ import annotations

import logging
import time

import orjson

EXTRA_FIELDS = ("alert_id", "request_id", "decision_id", "model")


#: The text format's line (``scripts/batch_log.py`` reads the worker's batch lines in it).
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the ids an operator greps for.

    >>> record = logging.LogRecord("streamdrift", logging.INFO, __file__, 1, "alert %s", ("a-1",), None)
    >>> record.alert_id = "a-1"
    >>> JsonFormatter().format(record).split(',"message":')[1]
    '"alert a-1","alert_id":"a-1"}'
    """

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        for name in EXTRA_FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure(log_format: str, level: str = "info") -> None:
    """Route streamdrift's loggers to stderr in the chosen format."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logger = logging.getLogger("streamdrift")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False

