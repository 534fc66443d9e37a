"""``python -m streamdrift.kernels``: the parts compiled in a process pool, or one after the
other where the pool cannot run (no /dev/shm for its locks, a worker killed)."""

from __future__ import annotations

from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import pytest

from streamdrift import kernels


class _InlinePool:
    """Runs each submitted part at once, here; ``broken``: every result a BrokenProcessPool."""

    def __init__(self, processes: int, broken: bool = False):
        self.broken = broken

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, part) -> Future:
        future: Future = Future()
        if self.broken:
            future.set_exception(BrokenProcessPool("a process of the pool terminated abruptly"))
            return future
        try:
            future.set_result(part())
        except Exception as exc:  # noqa: BLE001 - handed to the caller, as a real pool does
            future.set_exception(exc)
        return future


@pytest.fixture
def ran(monkeypatch) -> list[str]:
    """Three stand-in parts that record their runs."""
    calls: list[str] = []
    monkeypatch.setattr(kernels, "PARTS", tuple((lambda name=name: calls.append(name)) for name in "abc"))
    return calls


def test_without_a_process_pool_every_part_is_compiled_one_after_the_other(monkeypatch, ran, capsys):
    def no_pool(processes):
        raise OSError(38, "Function not implemented")  # SemLock without /dev/shm

    monkeypatch.setattr(kernels, "ProcessPoolExecutor", no_pool)
    kernels.compile_all(processes=2)
    assert ran == ["a", "b", "c"]
    assert "no process pool here (OSError" in capsys.readouterr().err


def test_a_broken_pool_falls_back_to_compiling_here(monkeypatch, ran, capsys):
    monkeypatch.setattr(kernels, "ProcessPoolExecutor", lambda processes: _InlinePool(processes, broken=True))
    kernels.compile_all(processes=2)
    assert ran == ["a", "b", "c"]
    assert "BrokenProcessPool" in capsys.readouterr().err


def test_a_parts_own_error_is_raised_not_retried(monkeypatch):
    calls: list[str] = []

    def fails():
        calls.append("fails")
        raise ValueError("a kernel that does not compile")

    monkeypatch.setattr(kernels, "PARTS", (fails,))
    monkeypatch.setattr(kernels, "ProcessPoolExecutor", _InlinePool)
    with pytest.raises(ValueError, match="does not compile"):
        kernels.compile_all(processes=2)
    assert calls == ["fails"]


def test_a_parts_own_os_error_is_raised_not_taken_for_a_missing_pool(monkeypatch, capsys):
    calls: list[str] = []

    def fails():
        calls.append("fails")
        raise OSError(28, "No space left on device")  # numba's cache, say

    monkeypatch.setattr(kernels, "PARTS", (fails,))
    monkeypatch.setattr(kernels, "ProcessPoolExecutor", _InlinePool)
    with pytest.raises(OSError, match="No space left"):
        kernels.compile_all(processes=2)
    assert calls == ["fails"]
    assert capsys.readouterr().err == ""


def test_with_a_pool_each_part_runs_once_and_nothing_is_printed(monkeypatch, ran, capsys):
    monkeypatch.setattr(kernels, "ProcessPoolExecutor", _InlinePool)
    kernels.compile_all(processes=2)
    assert ran == ["a", "b", "c"]
    assert capsys.readouterr().err == ""
