"""The faust application that owns a ``streamdrift run`` process.

faust gives the process its lifecycle (start-up, signals, graceful shutdown), logging and the
web server with ``/health`` and ``/metrics``. The hot path is one faust task running ``Worker``,
which consumes in batches with aiokafka: faust's per-event agent loop tops out near 10k events/s
here, the batch path is an order of magnitude faster.

faust's own Kafka consumer is switched off (``NoFaustConsumer``): it would join a consumer
group of its own, which costs a half-session wait on Tansu and competes with nothing we need.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile

import faust
from faust.app.base import BootStrategy
from faust.worker import Worker as FaustWorker

from streamdrift.config import Config

from .worker import Worker
from .worker_processes import WorkerProcesses, worker_for

log = logging.getLogger("streamdrift.app")


class NoFaustConsumer(BootStrategy):
    """faust's lifecycle, web server and sensors without its consumer, conductor and tables."""

    enable_kafka_consumer = False


class WorkerApp(faust.App):
    BootStrategy = NoFaustConsumer


def build_app(config: Config, worker: Worker | WorkerProcesses, on_done=None, datadir: str | None = None) -> faust.App:
    """The faust app: one task (the hot path) and two pages. ``on_done`` runs when the hot path
    ends by itself (the worker was asked to stop), to shut the process down. faust keeps nothing
    of ours on disk (state lives in the state topic) but insists on a ``datadir``: by default it
    would be ``<group>-control-data`` in the current directory, so ``run`` passes a temporary one."""
    app = WorkerApp(
        f"{config.group_id}-control",
        broker=",".join(f"kafka://{b.strip()}" for b in config.broker.split(",")),
        web_port=config.web_port,
        web_host="0.0.0.0",
        autodiscover=False,
        store="memory://",
        topic_allow_declare=False,
        topic_disable_leader=True,
        **({"datadir": datadir} if datadir else {}),
        **_faust_security(config),
    )

    @app.task
    async def hot_path() -> None:
        try:
            await worker.run()
        finally:
            if on_done is not None:
                on_done()

    @app.page("/health")
    async def health(web, request):
        report = worker.health()
        return web.json(report, status=200 if report["status"] == "ok" else 503)

    @app.page("/metrics")
    async def metrics(web, request):
        return web.bytes(worker.metrics.render(), content_type="text/plain; version=0.0.4")

    return app


def _faust_security(config: Config) -> dict:
    options = config.security_options()
    protocol = options.get("security_protocol", "PLAINTEXT")
    if protocol == "PLAINTEXT":
        return {}
    context = options.get("ssl_context")
    if protocol.startswith("SASL"):
        credentials = faust.SASLCredentials(username=options.get("sasl_plain_username"),
                                            password=options.get("sasl_plain_password"),
                                            mechanism=options.get("sasl_mechanism", "PLAIN"), ssl_context=context)
    else:
        credentials = faust.SSLCredentials(context)
    return {"broker_credentials": credentials}


def run(config: Config, references: dict | None = None, loglevel: str = "info") -> int:
    """Run a worker until it is stopped (SIGINT/SIGTERM); return the process exit code."""
    worker = worker_for(config, references)
    faust_worker: list[FaustWorker] = []
    scratch = tempfile.TemporaryDirectory(prefix="streamdrift-faust-")
    app = build_app(config, worker, on_done=lambda: asyncio.ensure_future(faust_worker[0].stop()),
                    datadir=scratch.name)
    options = {}
    if config.log_format == "json":
        # faust and aiokafka log through the root logger: give it the JSON formatter too.
        options["logging_config"] = {
            "version": 1, "disable_existing_loggers": False,
            "formatters": {"json": {"()": "streamdrift.logging_setup.JsonFormatter"}},
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
            "root": {"handlers": ["stderr"], "level": loglevel.upper()},
        }
    faust_worker.append(FaustWorker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False, **options))
    try:
        faust_worker[0].execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        scratch.cleanup()
    return 0
