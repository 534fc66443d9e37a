#!/usr/bin/env python3
"""Concept-drift detection delay on river's synthetic drifting streams, scored by the backtest.

Each run draws a river ``ConceptDriftStream`` (SEA, Agrawal, STAGGER: one concept switching to
another at a known position), predicts with a fixed model of the first concept, writes the
events as a JSONL log, replays it offline (``streamdrift replay --offline``) and scores the
concept alerts (``feature: error``) against the known switch with ``streamdrift.backtest`` — the
same table ``streamdrift replay --changes`` prints.

    python scripts/bench_concept.py [--runs 5] [--events 20000] [--position 10000]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from contextlib import redirect_stdout
from pathlib import Path

import orjson
from river.datasets import synth

from streamdrift.cli import main as cli

STREAMS = {
    # name: (make(seed, position, width), fixed model of the first concept)
    "SEA 0->2": (lambda seed, pos, width: synth.ConceptDriftStream(
        synth.SEA(variant=0, seed=seed, noise=0.05), synth.SEA(variant=2, seed=seed + 1, noise=0.05),
        position=pos, width=width, seed=seed), lambda x: x[0] + x[1] > 8),
    "STAGGER 0->1": (lambda seed, pos, width: synth.ConceptDriftStream(
        synth.STAGGER(classification_function=0, seed=seed), synth.STAGGER(classification_function=1, seed=seed + 1),
        position=pos, width=width, seed=seed),
        lambda x: x["size"] == 0 and x["color"] == 0),
    "Agrawal 0->4": (lambda seed, pos, width: synth.ConceptDriftStream(
        synth.Agrawal(classification_function=0, seed=seed), synth.Agrawal(classification_function=4, seed=seed + 1),
        position=pos, width=width, seed=seed),
        lambda x: x["age"] < 40 or x["age"] >= 60),
}


def write_log(path: Path, stream, model_rule, events: int, name: str) -> None:
    with open(path, "wb") as out:
        for i, (x, y) in enumerate(stream.take(events)):
            features = {str(k): (float(v) if isinstance(v, (int, float)) else str(v)) for k, v in x.items()}
            event = {"model": name, "id": f"e{i}", "ts": 1.7e9 + i, "features": features,
                     "prediction": int(bool(model_rule(x))), "label": int(bool(y))}
            out.write(orjson.dumps(event) + b"\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--position", type=int, default=10_000)
    parser.add_argument("--width", type=int, default=100, help="width of the transition (river: > ~20)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        changes = tmp / "changes.csv"
        log_paths = []
        lines = ["model,feature,index"]
        for name, (make, rule) in STREAMS.items():
            for run in range(args.runs):
                model = f"{name.split()[0].lower()}-{run}"
                path = tmp / f"{model}.jsonl"
                write_log(path, make(run, args.position, args.width), rule, args.events, model)
                log_paths.append(str(path))
                lines.append(f"{model},error,{args.position}")
        changes.write_text("\n".join(lines) + "\n")
        captured = io.StringIO()
        with redirect_stdout(captured):
            cli(["replay", *log_paths, "--offline", "--alerts", str(tmp / "alerts.jsonl"), "--changes", str(changes),
                 "--quiet"])
        table = captured.getvalue()
        alerts = [orjson.loads(line) for line in (tmp / "alerts.jsonl").read_bytes().splitlines()]
    concept = [a for a in alerts if a["kind"] == "concept"]
    features = [a for a in alerts if a["kind"] == "feature"]
    print(f"concept switch at event {args.position:,} of {args.events:,}, width {args.width}; {args.runs} runs per stream\n")
    print(table)
    print(f"concept alerts: {len(concept)}; feature alerts (inputs do not drift in these streams): {len(features)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
