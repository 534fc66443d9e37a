"""One ``streamdrift run``, several cores: a worker process per core, each a member of the group.

Decoding JSON and updating monitors is Python-bound, so one process uses one core. With
``processes = N`` the ``streamdrift run`` process keeps faust (lifecycle, signals, ``/health``,
``/metrics``) and forks ``N`` worker processes. Each is a whole single-process ``Worker``: a
member of the consumer group with its own consumer, publisher and state checkpoints, exactly as
if ``N`` workers had been started by hand - so Kafka splits the partitions between them, a
model's monitors live where its partition is, and crash recovery and rebalancing are the ones a
single worker has. Events go from the broker straight to the process that monitors them: no
process hands them to another.

What the parent keeps is the view from outside: each worker process reports its health and its
metric updates over a pipe; ``/health`` sums and unions them, ``/metrics`` is one registry.
Worker processes die with the parent (``PR_SET_PDEATHSIG``), so a ``kill -9`` of
``streamdrift run`` is a crash of all of them, not an orderly hand-over.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import signal
import time
import traceback
from dataclasses import replace

from streamdrift.config import Config, available_cpus

from .metrics import Metrics
from .worker import COUNTS, Worker, create_topics

log = logging.getLogger("streamdrift.worker")

#: Seconds between two reports of a worker process (its health and metric updates).
REPORT_SECONDS = 0.2
#: How long a worker process may take to hand its partitions over when asked to stop.
STOP_TIMEOUT_S = 60.0
#: Gauges without labels that are a per-process quantity: the worker's value is their sum;
#: ``degraded`` is 1 when any process is.
_SUMMED_GAUGES = frozenset({"models", "monitored", "pending_predictions"})


def worker_for(config: Config, references: dict | None = None):
    """The worker of a ``streamdrift run``: a ``Worker`` in this process when ``processes`` is 1,
    else ``WorkerProcesses`` (``processes = 0``: one per CPU core this process may use)."""
    processes = config.processes or available_cpus()
    if processes <= 1:
        return Worker(config, references)
    return WorkerProcesses(config, references, processes)


class MetricUpdates:
    """Stands in for ``Metrics`` in a worker process: records each update for the parent.

    >>> updates = MetricUpdates()
    >>> updates.events_in.inc(5); updates.alerts.labels("m", "x", "feature", "ks", "critical").inc()
    >>> updates.take()
    [('events_in', (), 'inc', 5), ('alerts', ('m', 'x', 'feature', 'ks', 'critical'), 'inc', 1)]
    """

    def __init__(self) -> None:
        self._updates: list[tuple[str, tuple, str, float]] = []

    def __getattr__(self, name: str) -> "_Updates":
        if name.startswith("_"):
            raise AttributeError(name)
        return _Updates(self._updates, name, ())

    def take(self) -> list[tuple[str, tuple, str, float]]:
        updates, self._updates = self._updates, []
        return updates


class _Updates:
    __slots__ = ("_into", "_name", "_labels")

    def __init__(self, into: list, name: str, labels: tuple):
        self._into, self._name, self._labels = into, name, labels

    def labels(self, *values) -> "_Updates":
        return _Updates(self._into, self._name, tuple(values))

    def inc(self, amount: float = 1) -> None:
        self._into.append((self._name, self._labels, "inc", amount))

    def set(self, value: float) -> None:
        self._into.append((self._name, self._labels, "set", value))

    def observe(self, value: float) -> None:
        self._into.append((self._name, self._labels, "observe", value))

    def remove(self, *labels) -> None:
        self._into.append((self._name, tuple(labels), "remove", None))


class WorkerProcesses:
    """``Worker``'s interface (``run``, ``stop``, ``health``, ``metrics``) over worker processes."""

    def __init__(self, config: Config, references: dict | None = None, processes: int = 2,
                 metrics: Metrics | None = None):
        if processes < 2:
            raise ValueError("WorkerProcesses needs at least 2 processes; use Worker for one")
        self.config = config
        self.processes = processes
        self.metrics = metrics or Metrics()
        self.error: str | None = None
        self.reports: list[dict | None] = [None] * processes
        self._gauges: dict[str, list[float]] = {}
        self._stop = asyncio.Event()
        self._done: list[bool] = [False] * processes
        # fork, before any event loop runs: the children start at once with everything imported
        # (and share its memory until they write to it); each makes its own loop and clients.
        context = multiprocessing.get_context("fork")
        child_config = replace(config, processes=1)
        self.connections = []
        self.children = []
        for index in range(processes):
            parent, child = context.Pipe()
            process = context.Process(target=_serve, args=(child, [*self.connections, parent], child_config,
                                                           references),
                                      name=f"streamdrift-worker-{index}", daemon=True)
            process.start()
            child.close()
            self.connections.append(parent)
            self.children.append(process)

    # -- health ---------------------------------------------------------------------------
    def health(self) -> dict:
        """The worker processes' reports in one: counts summed, partitions joined, the worst status."""
        reports = [r for r in self.reports if r is not None]
        if self.error is not None:
            status = "degraded"
        elif len(reports) < self.processes or any(r["status"] == "starting" for r in reports):
            status = "starting"
        else:
            status = "degraded" if any(r["status"] != "ok" for r in reports) else "ok"
        counts = dict.fromkeys(COUNTS, 0)
        for r in reports:
            for key, value in r["counts"].items():
                counts[key] += value
        errors = [r["error"] for r in reports if r["error"]]
        return {"status": status,
                "seconds_since_broker_ok": max((r["seconds_since_broker_ok"] for r in reports), default=0.0),
                "error": self.error or (errors[0] if errors else None),
                "partitions": sorted(p for r in reports for p in r["partitions"]),
                "label_partitions": sorted(p for r in reports for p in r["label_partitions"]),
                "models": sum(r["models"] for r in reports), "processes": self.processes,
                "process_partitions": [sorted(r["partitions"]) if r else [] for r in self.reports], "counts": counts,
                "restored_monitors": sum(r["restored_monitors"] for r in reports),
                "config_version": self.config.version}

    def stop(self) -> None:
        self._stop.set()

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self) -> None:
        await create_topics(self.config)  # once here: the worker processes do not race to create them
        loop = asyncio.get_running_loop()
        finished = asyncio.Event()
        for index, connection in enumerate(self.connections):
            connection.send("start")
            loop.add_reader(connection.fileno(), self._receive, index, finished)
        log.info("worker started with %d worker processes", self.processes)
        try:
            stop = asyncio.ensure_future(self._stop.wait())
            ended = asyncio.ensure_future(finished.wait())
            try:
                await asyncio.wait({stop, ended}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                ended.cancel()
        finally:
            # Also when cancelled (faust stopping): each process hands its partitions over
            # (state checkpoint, offset commit) before it exits.
            for connection, done in zip(self.connections, self._done):
                if not done:
                    _send_quietly(connection, "stop")
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while any(p.is_alive() for p in self.children) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            for connection in self.connections:
                if not connection.closed:
                    loop.remove_reader(connection.fileno())
            self.close()
        if self.error is not None:
            raise RuntimeError(self.error)

    def _receive(self, index: int, finished: asyncio.Event) -> None:
        connection = self.connections[index]
        try:
            kind, payload = connection.recv()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(connection.fileno())
            connection.close()
            if not self._done[index]:
                self._done[index] = True
                self.children[index].join(timeout=1.0)  # its pipe closes just before it is reaped
                code = self.children[index].exitcode
                self.error = self.error or f"worker process {index} died (exit code {code})"
                log.error(self.error)
            finished.set()
            return
        if kind == "report":
            health, updates = payload
            self.reports[index] = health
            self._apply(index, updates)
        elif kind == "failed":
            self.error = self.error or f"worker process {index} failed:\n{payload}"
            log.error(self.error)
        elif kind == "done":
            self._done[index] = True
            if not self._stop.is_set():
                finished.set()  # one ended by itself: stop the others too

    def _apply(self, index: int, updates: list[tuple[str, tuple, str, float]]) -> None:
        """A worker process's metric updates, on this process's registry."""
        for name, labels, method, value in updates:
            metric = getattr(self.metrics, name)
            if method == "remove":
                _remove(metric, labels)
                continue
            if method == "set" and not labels:
                values = self._gauges.setdefault(name, [0.0] * self.processes)
                values[index] = value
                value = sum(values) if name in _SUMMED_GAUGES else max(values)
            getattr(metric.labels(*labels) if labels else metric, method)(value)

    def close(self) -> None:
        for connection in self.connections:
            if not connection.closed:
                connection.close()
        for process in self.children:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()


def _remove(metric, labels: tuple) -> None:
    try:
        metric.remove(*labels)
    except KeyError:
        pass  # never set here


def _send_quietly(connection, message) -> None:
    try:
        connection.send(message)
    except (BrokenPipeError, OSError):
        pass  # it is gone already


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies, so a crash of ``streamdrift run`` is a
    crash of its worker processes too (no orphan keeps consuming)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere: the closed pipe stops it instead


def _serve(conn, inherited, config: Config, references) -> None:
    """A worker process: wait for "start", then run a ``Worker`` until "stop" or the parent goes."""
    _die_with_parent()
    for connection in inherited:
        # Forked copies of the parent's ends of every pipe (ours and earlier children's): holding
        # them would keep those pipes open after the parent closes them.
        connection.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us in order
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        signal.set_wakeup_fd(-1)  # an inherited event loop's wake-up pipe is the parent's
    except ValueError:
        pass
    try:
        if conn.recv() != "start":
            return
    except (EOFError, OSError):
        return
    # Forked from inside a running loop (a test, say), this thread would still name it as running.
    asyncio._set_running_loop(None)
    asyncio.run(_work(conn, config, references))


async def _work(conn, config: Config, references) -> None:
    updates = MetricUpdates()
    worker = Worker(config, references, metrics=updates)
    loop = asyncio.get_running_loop()

    def control() -> None:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            message = "stop"  # the parent is gone
            loop.remove_reader(conn.fileno())
        if message == "stop":
            worker.stop()

    def report() -> None:
        _send_quietly(conn, ("report", (worker.health(), updates.take())))

    async def reporting() -> None:
        while True:
            report()
            await asyncio.sleep(REPORT_SECONDS)

    loop.add_reader(conn.fileno(), control)
    reporter = asyncio.ensure_future(reporting())
    try:
        await worker.run()
    except Exception:
        _send_quietly(conn, ("failed", traceback.format_exc()))
    finally:
        reporter.cancel()
        report()
        _send_quietly(conn, ("done", None))
