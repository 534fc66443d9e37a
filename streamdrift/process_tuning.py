"""Process settings for the hot path: the garbage collector, BLAS threads and the C heap.

Not part of the pipeline (which is pure): ``streamdrift run``, its worker processes and
``streamdrift replay`` call these once at start and after each checkpoint.
"""

from __future__ import annotations

import ctypes
import gc

from threadpoolctl import threadpool_limits


def tune_gc() -> None:
    """Make Python's cyclic garbage collector run ~100x less often in this process.

    Its first generation is collected every 700 new container objects by default, and each
    collection of an older generation walks every live object - a batch holds tens of thousands
    of parsed events, so the collector re-walked them over and over: 30% of a replay's time,
    measured. Events, columns and alerts hold no reference cycles, so reference counting frees
    them as before; only cycles wait a little longer. Called by ``streamdrift run`` (and its
    worker processes) and by ``streamdrift replay``.
    """
    gc.set_threshold(100_000, 50, 100)


def limit_blas_threads() -> None:
    """Run BLAS (OpenBLAS under numpy) on one thread in this process.

    ``multivariate_pca``'s projections and the multivariate reference fits are small matrix
    products (``JointShift``'s scores are compiled loops since: ``joint_compiled``). On one thread
    BLAS does such products 2.5-4x faster than einsum (measured: 80 vs 206 us for 2,500 x 210, 5.6
    vs 21 us for 200 x 210); with BLAS's default thread per core they cost 10-100x more as soon as the cores
    are busy (a worker process per core, the broker beside them), because the threads wait for
    each other. The processor already runs a process per core, so one BLAS thread each is all
    the parallelism there is. Called by ``streamdrift run`` (and its worker processes) and by
    ``streamdrift replay``.
    """
    threadpool_limits(1, user_api="blas")


def trim_memory() -> None:
    """Give the C heap's free pages back to the operating system (glibc ``malloc_trim``).

    A batch's parsed events are freed after it, but glibc keeps the freed pages, so a worker's
    RSS showed about twice the memory its monitors hold (measured: 250 vs 121 MiB per 1,000
    monitored features). Called after each checkpoint; a no-op where glibc is not the allocator.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - present only in glibc
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()
