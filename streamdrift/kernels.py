"""Every compiled (numba) kernel, compiled into numba's cache now rather than at first use:
``python -m streamdrift.kernels``, which ``make`` and the Docker build run once. Compiling them
all takes several seconds; loading them from the cache afterwards, a fraction of a second per
process (numba's own start-up, ~0.5 s, is paid once per process either way).

The cache is ``__pycache__`` beside each module, or ``NUMBA_CACHE_DIR`` where that is set (the
Docker image: its site-packages are not writable at run time, and numba reads a cache only from
a directory it may write to).

The kernels fall in independent parts (no cached function shared between two), so ``python -m
streamdrift.kernels`` compiles them in a process per core: on 2 cores ~30 s instead of ~50.

>>> compile_all()
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np


def _scanner() -> None:
    from .plain_scan import compile_now

    compile_now()


def _multivariate() -> None:
    from .detectors import joint_compiled

    none = np.zeros(0, np.int64)
    z = np.zeros((2, 2))
    u = joint_compiled.coordinates(z, none, none, np.zeros(2), np.ones(2), False, 1.0)
    joint_compiled.coordinates(z.T, *np.triu_indices(2), np.zeros(3), np.ones(3), True, 1.0)  # column-major rows
    joint_compiled.bet(u, np.zeros(2), np.zeros(1), np.zeros((3, 3), np.int64), 1, np.zeros(3, np.int64),
                       np.zeros(3, np.int64), 0, np.zeros(2), True)
    x = np.zeros((2, 3))
    for first, second in ((none, none), np.triu_indices(2)):
        width = first.size or 2
        joint_compiled.advance(x, 0, 3, np.zeros(2), np.ones(2), 8.0, first, second, np.zeros(width),
                               np.ones(width), 1.0, np.zeros(width), np.zeros(1), np.zeros((3, 3), np.int64), 1,
                               np.zeros(3, np.int64), np.zeros(3, np.int64), 0, np.zeros(width), True)
    joint_compiled.scores(np.zeros((2, 3), np.int16), np.zeros(2))


def _lookups() -> None:
    """The reference lookups, alone and inside the cross-model call (which compiles them too)."""
    from .detectors import across_compiled, positions_compiled

    guard = np.full(positions_compiled.BLOCK, np.inf)
    guard32, coarse = positions_compiled.narrow(guard)
    positions_compiled.positions(guard, guard32, coarse, guard.size, np.zeros((1, 1)))
    for c, scores in ((2, True), (0, False)):
        plans = across_compiled.Plans()
        one = np.zeros((2 * c, 1), np.int64)
        plans.add(np.zeros((1, 1)), guard, guard32, coarse, guard.size, np.zeros(1, np.int64), np.ones(3),
                  np.zeros((3, 2, c), np.int32), one, one)
        plans.run(scores)


def _adwin() -> None:
    from .detectors import adwin_compiled

    buckets = np.zeros((1, 6))
    adwin_compiled.add_blocks(buckets, buckets.copy(), np.zeros(6, np.bool_), np.zeros(2, np.int64), np.ones((1, 1)),
                              np.zeros((1, 1)), np.zeros(1), np.zeros(1), 0, 0, 1, 1, 1, 2, 0.01, 1e-9, 1)
    waiting = np.zeros((1, 2))[:, :1]  # a group's pending values: a view of its buffer
    for u in (np.ones((1, 1)), np.ones((1, 2))[:, :1]):
        adwin_compiled.take_batch(waiting, u, 2, buckets, buckets.copy(), np.zeros(2, np.int64), 1, np.zeros(1),
                                  np.zeros(1), 0, 0, 1, 1, 2, 0.01, 1e-9)


def _rings() -> None:
    from .detectors import rings_compiled

    ring, flags = np.zeros((1, 1)), np.zeros((1, 1), np.bool_)
    fixed = rings_compiled.rings_fixed(ring, np.zeros((1, 1), np.int64), flags)
    for recent in (rings_compiled.NO_RECENT_ROW, *(rings_compiled.recent_fixed(np.zeros((1, 1), dtype))
                                                   for dtype in (np.int16, np.int64))):
        row = rings_compiled.row(1, 1, 0, (0, 0, 0), 0, fixed, recent)
        rings_compiled.extend_rings(np.zeros(1), np.zeros(1, np.int64), np.array([row]))


def _windowed() -> None:
    from .detectors import windowed_compiled

    for dtype in (np.int16, np.int64):  # positions as int16 below 2**15 (together._windowed)
        one = np.zeros(1)
        windowed_compiled.windowed_quiet(np.zeros((1, 1), dtype), 0, np.zeros(1, np.int64), 1, True, True,
                                         np.zeros(1, np.int64), np.zeros(1, np.int32), np.ones(1, np.int32),
                                         np.ones(1, np.int64), one, np.zeros(1, dtype), 1, 1, np.ones((1, 1)), one,
                                         1e-9, np.ones(1, np.bool_))


#: The independent parts, the longest to compile first (the scanner: ~15 s of ~50 on one core).
PARTS = (_scanner, _multivariate, _lookups, _adwin, _windowed, _rings)


def compile_all(processes: int = 1) -> None:
    """Run each kernel once on a tiny input of the types the hot path gives it; with
    ``processes`` > 1, the parts (``PARTS``) in that many processes at once, or one after the
    other here if this system cannot run the processes (no ``/dev/shm`` for their locks, say, or
    a process killed): the parts compiled by then are in the cache and load in a moment. A
    part's own error, whatever its type, is raised."""
    if processes > 1:
        pool = None
        try:
            pool = ProcessPoolExecutor(processes)
            futures = [pool.submit(part) for part in PARTS]
        except (OSError, NotImplementedError) as exc:  # the pool's locks or processes
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            _without_pool(exc)
        else:
            with pool:
                try:
                    for done in futures:
                        done.result()
                    return
                except BrokenProcessPool as exc:
                    _without_pool(exc)
    for part in PARTS:
        part()


def _without_pool(exc: BaseException) -> None:
    print(f"streamdrift.kernels: no process pool here ({type(exc).__name__}: {exc}); "
          "compiling one part after the other", file=sys.stderr)


if __name__ == "__main__":
    compile_all(processes=len(os.sched_getaffinity(0)))
