"""Benchmark of ``streamdrift validate`` on 50,000 x 50 rows per dataset.

Two cases, for each seed: both datasets from one distribution (target: |AUC - 0.5| <= 0.02, no
shift), and the current one with a few features shifted (target: those ranked first, shift found).
Each run goes through the command (``streamdrift.cli.main``) on Parquet files, reading included;
target < 30 s per run. Prints wall time, AUC, p-value and the ranks of the shifted features.

    .venv/bin/python scripts/bench_validate.py [--rows 50000] [--features 50] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import pathlib
import sys
import tempfile
import time

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from streamdrift.cli import main as cli_main

SHIFTED = {"x03": ("mean", 0.15), "x13": ("scale", 1.25), "cat2": ("share", 0.05)}


def make(rows: int, features: int, rng: np.random.Generator, shifted: bool) -> pa.Table:
    """Numeric features x00.. (normal, log-normal, some missing) and three categorical ones."""
    columns: dict[str, object] = {}
    for j in range(features - 3):
        name = f"x{j:02d}"
        values = rng.normal(0, 1, rows) if j % 3 else rng.lognormal(0, 0.8, rows)
        if shifted and name in SHIFTED:
            kind, size = SHIFTED[name]
            values = values + size * values.std() if kind == "mean" else values * size
        if j % 10 == 5:
            values = np.where(rng.random(rows) < 0.05, np.nan, values)
        columns[name] = pa.array(values, from_pandas=True)
    for k in range(3):
        name = f"cat{k}"
        shares = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
        if shifted and name in SHIFTED:
            shares = shares + np.array([-SHIFTED[name][1], 0, 0, 0, SHIFTED[name][1]])
        columns[name] = pa.array(rng.choice(list("ABCDE"), size=rows, p=shares))
    return pa.table(columns)


def run(folder: pathlib.Path, rows: int, features: int, seed: int, shifted: bool) -> dict:
    rng = np.random.default_rng(seed)
    reference, current = folder / "reference.parquet", folder / "current.parquet"
    pq.write_table(make(rows, features, rng, False), reference)
    pq.write_table(make(rows, features, rng, shifted), current)
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.TextIOWrapper(io.BytesIO(), write_through=True)) as captured:
        code = cli_main(["validate", str(reference), str(current), "--json", "--seed", str(seed)])
        captured.seek(0)
        document = orjson.loads(captured.buffer.getvalue())
    wall = time.perf_counter() - started
    ranks = {f["feature"]: f["rank"] for f in document["features"]}
    return {"code": code, "wall": wall, "auc": document["auc"], "p": document["p_value"],
            "ranks": {name: ranks[name] for name in SHIFTED} if shifted else {}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    print(f"validate: {args.rows:,} rows x {args.features} features per dataset; shifted case: "
          + ", ".join(f"{n} {k} {s}" for n, (k, s) in SHIFTED.items()))
    print(f"{'case':<10} {'seed':>4} {'exit':>4} {'wall s':>7} {'AUC':>7} {'p':>7}  shifted feature ranks")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for shifted in (False, True):
                r = run(pathlib.Path(tmp), args.rows, args.features, seed, shifted)
                ranks = " ".join(f"{n}:{k}" for n, k in r["ranks"].items())
                print(f"{'shifted' if shifted else 'same':<10} {seed:>4} {r['code']:>4} {r['wall']:>7.1f} "
                      f"{r['auc']:>7.4f} {r['p']:>7.4f}  {ranks}", flush=True)
                ok &= r["wall"] < 30
                if shifted:
                    ok &= r["code"] == 1 and sorted(r["ranks"].values()) == list(range(1, len(SHIFTED) + 1))
                else:
                    ok &= r["code"] == 0 and abs(r["auc"] - 0.5) <= 0.02
    print("targets (< 30 s, |AUC - 0.5| <= 0.02 same, shifted ranked first):", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
