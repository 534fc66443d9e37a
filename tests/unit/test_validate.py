"""``streamdrift validate``: verdicts and exit codes, ranking, bad input, JSON and HTML output."""

from __future__ import annotations

import csv
import pathlib
import subprocess
import sys

import numpy as np
import orjson
import pytest

from streamdrift.cli import main as cli_main
from streamdrift.validate import ValidationInputError, delong_interval, permutation_p_value, validate

ROWS = 1_500
STREAMDRIFT = pathlib.Path(sys.executable).with_name("streamdrift")


def write_csv(path: pathlib.Path, rng: np.random.Generator, rows: int = ROWS, *, shift: float = 0.0,
              share_c: float = 0.2) -> pathlib.Path:
    """Columns a, b, c (categorical) and d (with missing values); ``shift`` moves b's mean."""
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["a", "b", "c", "d"])
        for _ in range(rows):
            d = "" if rng.random() < 0.1 else f"{rng.exponential(2.0):.4f}"
            c = rng.choice(["red", "green", "blue"], p=[0.5, 0.5 - share_c, share_c])
            writer.writerow([f"{rng.normal():.5f}", f"{rng.normal(shift):.5f}", c, d])
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, pathlib.Path]:
    folder = tmp_path_factory.mktemp("validate")
    rng = np.random.default_rng(11)
    return {"reference": write_csv(folder / "reference.csv", rng),
            "same": write_csv(folder / "same.csv", rng),
            "shifted": write_csv(folder / "shifted.csv", rng, shift=0.5),
            "folder": folder}


@pytest.fixture(scope="module")
def shifted_run(files, tmp_path_factory):
    """One CLI run on the shifted pair with --json and --report: (exit code, stdout, report path)."""
    report = tmp_path_factory.mktemp("report") / "validate.html"
    run = subprocess.run([str(STREAMDRIFT), "validate", str(files["reference"]), str(files["shifted"]),
                          "--json", "--report", str(report)], capture_output=True, timeout=120)
    return run.returncode, run.stdout, run.stderr, report


def test_same_distribution_is_no_shift(files, capsys):
    code = cli_main(["validate", str(files["reference"]), str(files["same"]), "--seed", "3"])
    out = capsys.readouterr().out
    assert code == 0
    assert "no shift found" in out and "AUC" in out
    result = validate(str(files["reference"]), str(files["same"]), seed=3)
    assert abs(result.auc - 0.5) < 0.05
    assert result.auc_interval[0] <= 0.5 + 0.02
    assert not result.shift and result.exit_code == 0


def test_shifted_feature_is_found_and_ranked_first(files):
    result = validate(str(files["reference"]), str(files["shifted"]))
    assert result.shift and result.exit_code == 1
    assert result.auc > 0.55 and result.p_value < 0.01
    assert result.features[0]["feature"] == "b"
    b = result.features[0]
    assert b["test"] == "ks" and b["p_value"] < 1e-6 and 0.35 < b["mean_shift_sd"] < 0.65
    assert len(result.typical_rows) == 10
    scores = [row["p_current"] for row in result.typical_rows]
    assert scores == sorted(scores, reverse=True)
    assert set(result.typical_rows[0]["values"]) == {"a", "b", "c", "d"}


def test_categorical_shift_ranks_the_category(files):
    rng = np.random.default_rng(5)
    current = write_csv(files["folder"] / "categories.csv", rng, share_c=0.35)
    result = validate(str(files["reference"]), str(current), seed=1)
    assert result.shift
    top = result.features[0]
    assert top["feature"] == "c" and top["test"] == "chi2" and top["psi"] > 0.05
    assert top["most_changed"]["category"] in ("green", "blue")


def test_cli_json_and_report(shifted_run):
    code, stdout, stderr, report = shifted_run
    assert code == 1, stderr.decode()
    document = orjson.loads(stdout)
    assert document["verdict"] == "shift" and document["shift"] is True
    assert document["features"][0]["feature"] == "b"
    assert len(document["auc_ci95"]) == 2 and 0 < document["p_value"] < 0.01
    assert document["reference"]["rows_used"] == ROWS and len(document["typical_rows"]) == 10
    html = report.read_text()
    # ROC + scores, importance bars, one histogram per feature (4 here).
    assert html.count("data:image/png;base64,") == 6
    assert "shift found" in html and "<table>" in html


def test_feature_events_with_model(tmp_path):
    rng = np.random.default_rng(2)

    def log(path, shift):
        lines = []
        for i in range(2 * 800):
            model = "fraud-v3" if i % 2 else "churn-v1"
            x = rng.normal(shift if model == "fraud-v3" else 0.0)
            lines.append(orjson.dumps({"model": model, "ts": 1.7e9 + i,
                                       "features": {"x": x, "y": rng.normal(), "plan": "basic"}}))
        path.write_bytes(b"\n".join(lines) + b"\n")
        return path

    reference, current = log(tmp_path / "ref.jsonl", 0.0), log(tmp_path / "cur.jsonl", 0.8)
    assert validate(str(reference), str(current), model="fraud-v3").shift
    assert cli_main(["validate", str(reference), str(current), "--model", "churn-v1", "--json"]) == 0


def test_subsample_is_said(files):
    result = validate(str(files["reference"]), str(files["same"]), max_rows=500)
    assert result.reference["rows_used"] == 500 and "500 of 1,500" in result.reference["subsampled"]


def bad(tmp_path: pathlib.Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("case, expected", [
    ("missing file", "no such file or directory"),
    ("empty file", "empty.csv: no rows to validate"),
    ("header only", "header.csv: no rows to validate"),
    ("missing column", "column 'd' is in"),
    ("numeric vs string", "column 'b' is numeric in"),
    ("mixed column", "mixed.csv: column 'a' mixes numbers (line 2) and strings (line 3)"),
    ("no rows of model", "events.jsonl: no rows of model 'nope' (models in the file: churn-v1)"),
    ("no model in a table", "reference.csv: no rows of model 'nope' (its rows name no model)"),
])
def test_bad_input_exits_2_with_a_clear_message(files, tmp_path, capsys, case, expected):
    reference = str(files["reference"])
    args = {
        "missing file": [reference, str(tmp_path / "absent.csv")],
        "empty file": [reference, bad(tmp_path, "empty.csv", "")],
        "header only": [reference, bad(tmp_path, "header.csv", "a,b,c,d\n")],
        "missing column": [reference, bad(tmp_path, "three.csv", "a,b,c\n" + "1,2,red\n" * 10)],
        "numeric vs string": [reference, bad(tmp_path, "strings.csv", "a,b,c,d\n" + "1,x,red,2\n" * 10)],
        "mixed column": [bad(tmp_path, "mixed.csv", "a,b,c,d\n1,2,red,3\nz,2,red,3\n"), reference],
        "no rows of model": [bad(tmp_path, "events.jsonl", '{"model": "churn-v1", "features": {"a": 1}}\n'),
                             reference, "--model", "nope"],
        "no model in a table": [reference, reference, "--model", "nope"],
    }[case]
    code = cli_main(["validate", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err, err
    assert err.startswith("streamdrift validate: error: ") and err.count("\n") == 1
    if case in ("missing column", "numeric vs string"):
        assert reference in err  # names the files as well as the column


def test_bad_input_raises_from_the_function(files, tmp_path):
    with pytest.raises(ValidationInputError, match="no rows to validate"):
        validate(str(files["reference"]), bad(tmp_path, "empty.jsonl", "\n"))


def test_cli_exit_code_2_through_the_entry_point(files, tmp_path):
    run = subprocess.run([str(STREAMDRIFT), "validate", str(files["reference"]), str(tmp_path / "none.csv")],
                         capture_output=True, timeout=60)
    assert run.returncode == 2
    assert b"no such file or directory" in run.stderr


def test_delong_and_permutation_p_value():
    rng = np.random.default_rng(0)
    positive = np.r_[np.zeros(3000, bool), np.ones(3000, bool)]
    null = rng.random(6000)
    auc, low, high = delong_interval(null, positive)
    assert low < 0.5 < high and high - low < 0.04
    assert permutation_p_value(null, positive, 199, rng) > 0.01
    shifted = null + 0.1 * positive
    assert delong_interval(shifted, positive)[1] > 0.5
    assert permutation_p_value(shifted, positive, 199, rng) == 1 / 200
