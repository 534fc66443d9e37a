#!/usr/bin/env python3
"""Whether a change keeps the pipeline's outputs: ``DriftPipeline.process`` over one of
``ab_lockstep.py``'s workloads, on this working tree and on a git revision (checked out in a
temporary worktree: ``ab_lockstep.side_environments``), each in a process of its own; then the two
compared. Compared: every alert, retrain request, rejection (its message's offset and reason)
and detection below its effect floor, in order, and each monitor's encoded state at the end
(``encode_monitor``, hashed). Exit status 0 if all are identical, 1 if not (the first
difference printed).

The hot path's changes must leave alert ids, detections and state bytes as they were (issue 18);
the tests check that on small streams, this on the benchmarks' workloads (the latency copy has
models that drift, alarm and re-arm).

    python scripts/same_outputs.py --base HEAD~1 [--workload latency] [--chunks 40] [--size N]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ab_lockstep  # noqa: E402

ROOT = ab_lockstep.ROOT


def outputs(workload: str, models: int, size: int, chunks: int) -> dict:
    """What the pipeline of the tree this process imports gives for the workload."""
    from streamdrift.detectors import encode_monitor

    pipeline, batches = ab_lockstep.warmed(workload, models, size, chunks)
    found = {"alerts": [], "retrain_requests": [], "rejected": [], "below_effect_floor": []}
    for batch in batches:
        out = pipeline.process(batch)
        found["alerts"] += out.alerts
        found["retrain_requests"] += out.retrain_requests
        found["rejected"] += [[r.record.offset, r.reason] for r in out.rejected]
        found["below_effect_floor"] += out.below_effect_floor
    states = {}
    for key, group in pipeline.models.items():
        for stream, monitor in group.monitors.items():
            states[repr((key, stream))] = hashlib.sha256(encode_monitor(monitor)).hexdigest()
    found["states"] = dict(sorted(states.items()))
    return found


def first_difference(old: dict, new: dict) -> str | None:
    for name in old:
        a, b = old[name], new[name]
        if a == b:
            continue
        if isinstance(a, dict):
            keys = sorted(set(a) ^ set(b)) or [k for k in a if a[k] != b.get(k)]
            return f"{name}: {len(a)} against {len(b)}; first differing: {keys[0]}"
        if len(a) != len(b):
            return f"{name}: {len(a)} against {len(b)}"
        at = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
        return f"{name}[{at}]:\n  base:         {a[at]}\n  working tree: {b[at]}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the git revision to compare the working tree with")
    parser.add_argument("--workload", choices=ab_lockstep.WORKLOADS, default="latency")
    parser.add_argument("--chunks", type=int, default=40, help="ab_lockstep's chunks: how much of the workload")
    parser.add_argument("--models", type=int, default=32)
    parser.add_argument("--size", type=int, default=0, help=ab_lockstep.SIZE_HELP)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.size = args.size or ab_lockstep.default_size(args.workload)
    if args.child:
        sys.stdout.buffer.write(orjson.dumps(outputs(args.workload, args.models, args.size, args.chunks)))
        return 0
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", "--base", args.base, "--workload", args.workload,
            "--chunks", str(args.chunks), "--models", str(args.models), "--size", str(args.size)]
    with ab_lockstep.side_environments(args.base) as environments:
        found = {name: orjson.loads(subprocess.run(argv, env=env, cwd=str(ROOT), capture_output=True, check=True).stdout)
                 for name, env in environments.items()}
    old, new = found["old"], found["new"]
    counts = ", ".join(f"{len(old[name]):,} {name.replace('_', ' ')}" for name in old)
    print(f"DriftPipeline.process, workload {args.workload}, {args.chunks} chunks of batches of {args.size:,}: "
          f"{counts}")
    difference = first_difference(old, new)
    if difference is None:
        print(f"identical: {args.base} and the working tree")
        return 0
    print(f"DIFFERENT: {difference}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
