#!/usr/bin/env python3
"""Two versions of the pipeline measured side by side, at the same moments: ``DriftPipeline.process``
of the same batches in two processes that take turns, one on this working tree, one on a git
revision (checked out in a temporary worktree), so that a change is measured against the same
minute-to-minute noise. On the development machine the same benchmark moved by a factor of two
from one minute to the next, more than most changes; whole-benchmark runs one after the other
could not tell them apart.

Each process warms its pipeline up (unmeasured), then the two take turns, chunk by chunk (the
order swapped every chunk), each timing its chunk in CPU seconds. Printed: each side's median,
quartile and minimum per batch, and the ratio new / old chunk by chunk (median and quartiles:
below 1, the working tree is faster).

Workloads: ``batches``, ``scripts/bench_batches.py``'s stream (32 fitted models x 20 numeric
features, 250-event batches; ``--models``, ``--size``); ``latency``, ``scripts/bench_stream.py``'s
latency phase for one worker process (32 live models warmed up, then drifting at staggered
points, 1,500-event batches); ``stationary``, the same values without their drift; ``full``,
``batches`` with every value printed in full (17 significant digits, as a producer that does not
round them writes them); ``sample``, the offline replay of the sample log's mix
(``bench_replay.py --mix sample``: 3 models, numeric and categorical features, nulls, a
malformed line every 500) in its batches of 20,000 lines, one batch a chunk. ``--wrap module.function`` times that function only (both sides must have it):
e.g. ``--wrap streamdrift.detectors.across._finish``.

    python scripts/ab_lockstep.py --base HEAD~1 [--workload batches|latency|stationary|full|sample] [--chunks 30] [--wrap ...]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The workloads ``records_for`` makes (``time_functions.py`` takes the same).
WORKLOADS = ("batches", "latency", "stationary", "full", "sample")


#: ``--size``'s help, as ``default_size`` decides (``time_functions.py`` and ``same_outputs.py`` take it too).
SIZE_HELP = "events per batch (default 250; latency and stationary: 1,500; sample: 20,000)"


def default_size(workload: str) -> int:
    """Events per batch unless ``--size`` says otherwise: the latency phase's 1,500 (drifting or
    not), the offline replay's 20,000 for the sample log's mix, else 250."""
    return {"latency": 1_500, "stationary": 1_500, "sample": 20_000}.get(workload, 250)


#: Where each part of the package lives in a checkout (as pyproject.toml's package-dir says).
PACKAGE_DIRS = {"streamdrift": "streamdrift", "detectors": "detectors", "stream": "stream"}


def package_of(checkout: Path, into: Path) -> Path:
    """A folder whose ``streamdrift`` package is ``checkout``'s (links to its files and to its
    ``detectors`` and ``stream`` folders, mounted as the subpackages), for ``PYTHONPATH``: it comes
    before the editable install of the working tree."""
    package = into / "streamdrift"
    package.mkdir(parents=True)
    for item in (checkout / "streamdrift").iterdir():
        if item.name != "__pycache__":
            (package / item.name).symlink_to(item)
    for name in ("detectors", "stream"):
        (package / name).symlink_to(checkout / name)
    return into


@contextlib.contextmanager
def side_environments(base: str):
    """The environments of the two sides, ``{"old": ..., "new": ...}``: revision ``base``'s
    package first on ``PYTHONPATH`` (checked out in a temporary worktree, removed on leaving),
    and this working tree's (the editable install)."""
    with tempfile.TemporaryDirectory(prefix="ab-lockstep-") as tmp:
        checkout = Path(tmp) / "checkout"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(checkout), base], check=True,
                       capture_output=True)
        try:
            old = dict(os.environ)
            old["PYTHONPATH"] = str(package_of(checkout, Path(tmp) / "old")) + os.pathsep + old.get("PYTHONPATH", "")
            yield {"old": old, "new": dict(os.environ)}
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(checkout)], check=False,
                           capture_output=True)


def records_for(workload: str, models: int, size: int, chunks: int):
    """The warm-up records and the measured batches of a workload."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "scripts"))
    from streamdrift.events import Record

    if workload == "sample":  # the offline replay's lines, as it hands them to the pipeline
        import bench_replay

        with tempfile.TemporaryDirectory(prefix="ab-lockstep-sample-") as tmp:
            log = Path(tmp) / "log.jsonl"
            bench_replay.write_sample_mix(log, size * (chunks + 1))
            lines = log.read_bytes().splitlines()
        made = [Record(line, None, str(log), 0, k) for k, line in enumerate(lines, start=1)]
        return made[:size], [made[i:i + size] for i in range(size, len(made), size)]
    if workload in ("latency", "stationary"):
        import bench_stream

        per_model = 17_000
        live = bench_stream.LiveModels(models, per_model, drift=workload == "latency")

        def made(order):
            return [Record(live.heads[m] + repr(1.7e9 + j * 1e-4).encode() + live.tails[m][i], live.keys[m],
                           "features", 0, j, None) for j, (m, i) in enumerate(order)]

        warm = made([(m, i) for i in range(max(live.warm_up)) for m in range(models) if i < live.warm_up[m]])
        measured = made([(m, live.warm_up[m] + i) for i in range(per_model) for m in range(models)])
    else:
        import bench_batches

        rng = np.random.default_rng(0)
        decimals = None if workload == "full" else 6
        warm = bench_batches.events(rng, models, models * 1300, 0, decimals)
        measured = bench_batches.events(rng, models, size * 10 * chunks, len(warm), decimals)
    return warm, [measured[i:i + size] for i in range(0, len(measured), size)]


def warmed(workload: str, models: int, size: int, chunks: int):
    """A pipeline as the processor runs it (GC and BLAS tuned), warmed up on the workload's
    warm-up records, and the workload's measured batches."""
    from streamdrift.config import Config
    from streamdrift.detectors import MonitorSettings
    from streamdrift.pipeline import DriftPipeline
    from streamdrift.process_tuning import limit_blas_threads, tune_gc

    tune_gc()
    limit_blas_threads()
    pipeline = DriftPipeline(Config(detectors=MonitorSettings(reference_size=1000)))
    warm, batches = records_for(workload, models, size, chunks)
    for i in range(0, len(warm), 20_000):
        pipeline.process(warm[i:i + 20_000])
    return pipeline, batches


def child(args) -> int:
    """One side: warm up, say ``ready``, then time a chunk each time it is told to."""
    import streamdrift.detectors
    print(f"tree {Path(streamdrift.detectors.__file__).resolve().parent.parent}", file=sys.stderr)
    spent = [0.0]
    if args.wrap:
        module, name = args.wrap.rsplit(".", 1)
        owner = importlib.import_module(module)
        original = getattr(owner, name)

        def timed(*a, **k):
            began = time.process_time()
            try:
                return original(*a, **k)
            finally:
                spent[0] += time.process_time() - began
        setattr(owner, name, timed)
    pipeline, batches = warmed(args.workload, args.models, args.size, args.chunks)
    per = max(1, len(batches) // args.chunks)
    print("ready", flush=True)
    for c in range(args.chunks):
        sys.stdin.readline()
        spent[0] = 0.0
        began = time.process_time()
        for batch in batches[c * per:(c + 1) * per]:
            pipeline.process(batch)
        took = spent[0] if args.wrap else time.process_time() - began
        print(took / per * 1e3, flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the git revision to measure the working tree against")
    parser.add_argument("--workload", choices=WORKLOADS, default="batches")
    parser.add_argument("--chunks", type=int, default=30)
    parser.add_argument("--models", type=int, default=32)
    parser.add_argument("--size", type=int, default=0, help=SIZE_HELP)
    parser.add_argument("--wrap", help="time only this function (module.function)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.size = args.size or default_size(args.workload)
    if args.child:
        return child(args)
    argv = [sys.executable, __file__, "--child", "--base", args.base, "--workload", args.workload,
            "--chunks", str(args.chunks), "--models", str(args.models), "--size", str(args.size)]
    if args.wrap:
        argv += ["--wrap", args.wrap]
    with side_environments(args.base) as environments:
        sides = {name: subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        cwd=str(ROOT))
                 for name, env in environments.items()}
        for side in sides.values():
            if side.stdout.readline().strip() != "ready":
                raise SystemExit("a side did not start (its error is above)")
        times = {name: [] for name in sides}
        for c in range(args.chunks):
            for name in ("old", "new") if c % 2 == 0 else ("new", "old"):
                side = sides[name]
                side.stdin.write("go\n")
                side.stdin.flush()
                times[name].append(float(side.stdout.readline()))
        for side in sides.values():
            side.stdin.close()
            side.wait()
    what = args.wrap or "DriftPipeline.process"
    print(f"{what}, workload {args.workload}, {args.chunks} chunks in turn; CPU ms per batch:")
    for name, label in (("old", args.base), ("new", "working tree")):
        t = sorted(times[name])
        print(f"   {label:>14}: median {statistics.median(t):.2f}, quartiles {t[len(t) // 4]:.2f}-"
              f"{t[3 * len(t) // 4]:.2f}, min {t[0]:.2f}")
    ratios = sorted(n / o for n, o in zip(times["new"], times["old"]))
    print(f"   new / old, chunk by chunk: median {statistics.median(ratios):.3f}, "
          f"quartiles {ratios[len(ratios) // 4]:.3f}-{ratios[3 * len(ratios) // 4]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
