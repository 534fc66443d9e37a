"""``streamdrift validate``: adversarial validation of a current dataset against a reference.

A classifier is trained to tell the two datasets apart; if it cannot (out-of-fold ROC AUC near
0.5), nothing it could see has shifted. If it can, the features it relies on, a univariate test of
each, and the current rows it finds most unlike the reference say where the shift is.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import io
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import orjson

from .detectors.categorical import as_category
from .logs import ColumnMapping, LogFormatError, LogReader

DEFAULT_MIN_AUC = 0.55
DEFAULT_ALPHA = 0.01
DEFAULT_MAX_ROWS = 50_000
FOLDS = 5
PERMUTATIONS = 999
# Permutation importance re-scores the held-out rows once per feature and repeat; this many rows
# per fold rank a feature that moves the AUC by 0.01 reliably and keep 50 features within seconds.
IMPORTANCE_ROWS_PER_FOLD = 2_000
IMPORTANCE_REPEATS = 5
TYPICAL_ROWS = 10
# HistGradientBoosting takes at most 255 bins, one of them for missing values: the most frequent
# categories keep a code of their own, the others share one.
MAX_CATEGORY_CODES = 253
HISTOGRAM_FEATURES = 6
ANY_MODEL = "*"
# Event fields that are not features: a classifier would separate two datasets by time or id alone.
EVENT_FIELDS = ("model", "id", "ts", "prediction", "label", "segment", "change_point")


class ValidationInputError(ValueError):
    """Input that cannot be validated: the message names the file and the column to fix."""


# --- reading ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _AnyModelMapping(ColumnMapping):
    """The default mapping, except that a table without a model column is of any model."""

    def _plan(self, columns: list[str], source: str):
        if self.model_name is None and self.model not in columns:
            return ColumnMapping._plan(replace(self, model_name=ANY_MODEL), columns, source)
        return super()._plan(columns, source)


@dataclass
class Dataset:
    """The rows of one dataset as columns: numbers (NaN = missing) or strings (None = missing).

    ``kinds`` maps each feature to ``numeric`` or ``categorical``; ``lines`` holds each row's line
    (or row number) in ``path``; ``total_rows`` counts the rows before subsampling.
    """

    path: str
    columns: dict[str, np.ndarray]
    kinds: dict[str, str]
    lines: np.ndarray
    total_rows: int
    bad_rows: int = 0

    @property
    def rows(self) -> int:
        return len(self.lines)


def read_dataset(path: str, *, model: str | None = None, ignore: Sequence[str] = ()) -> Dataset:
    """Read a CSV, JSONL or Parquet file (gzip ok) into columns, with each column's type.

    Rows are flat (a table's columns, a JSON object's keys) or feature events (their
    ``features`` object); event fields such as ``model``, ``id`` and ``ts`` are not features.
    A column holding both numbers and strings is an error naming the file, column and line.
    """
    try:
        reader = LogReader(path, _AnyModelMapping())
        rows: list[dict[str, Any]] = []
        lines: list[int] = []
        models: Counter[str] = Counter()
        for row in reader:
            if row.event is None:
                continue
            event = row.event
            features = event.get("features")
            if not isinstance(features, dict):  # a flat JSON object: its keys are the features
                features = {k: v for k, v in event.items() if k not in EVENT_FIELDS}
            row_model = str(event.get("model") or ANY_MODEL)
            models[row_model] += 1
            if model is not None and row_model != model:
                continue
            rows.append(features)
            lines.append(row.line)
    except LogFormatError as exc:
        raise ValidationInputError(str(exc)) from None
    except OSError as exc:
        raise ValidationInputError(f"{path}: cannot read: {exc}") from None
    summary = reader.summary
    if not rows:
        if model is not None and summary.good_rows:
            named = sorted(models.keys() - {ANY_MODEL})
            where = f"models in the file: {', '.join(named[:10])}" if named else "its rows name no model"
            raise ValidationInputError(f"{path}: no rows of model {model!r} ({where})")
        detail = ""
        if summary.bad_examples:
            source, line, reason = summary.bad_examples[0]
            detail = f" ({summary.bad_rows} unreadable; first at line {line}: {reason})"
        raise ValidationInputError(f"{path}: no rows to validate{detail}")
    names: dict[str, None] = {}
    for features in rows:
        for name in features:
            if name not in names and name not in ignore:
                names[name] = None
    columns: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    for name in names:
        values = [features.get(name) for features in rows]
        kind = _column_kind(path, name, values, lines)
        if kind is None:
            continue  # only missing values here; the other dataset decides its type
        kinds[name] = kind
        if kind == "numeric":
            columns[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        else:
            columns[name] = np.array([as_category(v) for v in values], dtype=object)
    for name in names:
        if name not in kinds:
            columns[name] = np.full(len(rows), None, dtype=object)
    if not names:
        raise ValidationInputError(f"{path}: the rows have no feature columns")
    return Dataset(path, columns, kinds, np.asarray(lines), len(rows), summary.bad_rows)


def _column_kind(path: str, name: str, values: list[Any], lines: list[int]) -> str | None:
    types = {type(v) for v in values}
    types.discard(type(None))
    if not types:
        return None
    numeric = types <= {int, float}
    categorical = types <= {str, bool}
    if numeric:
        return "numeric"
    if categorical:
        return "categorical"
    is_number = [isinstance(v, (int, float)) and not isinstance(v, bool) for v in values]
    bad = [(v, line) for v, line, num in zip(values, lines, is_number)
           if v is not None and not num and not isinstance(v, (str, bool))]
    if bad:
        value, line = bad[0]
        raise ValidationInputError(f"{path}: column {name!r} holds {type(value).__name__} values "
                                   f"(line {line}); only numbers and strings can be validated")
    first_text = next(line for v, line, num in zip(values, lines, is_number) if v is not None and not num)
    first_number = next(line for line, num in zip(lines, is_number) if num)
    raise ValidationInputError(f"{path}: column {name!r} mixes numbers (line {first_number}) and "
                               f"strings (line {first_text}); make it one type")


def subsample(data: Dataset, max_rows: int, rng: np.random.Generator) -> Dataset:
    """At most ``max_rows`` rows of ``data``, drawn without replacement, in file order."""
    if data.rows <= max_rows:
        return data
    keep = np.sort(rng.choice(data.rows, size=max_rows, replace=False))
    return replace(data, columns={k: v[keep] for k, v in data.columns.items()}, lines=data.lines[keep])


def check_compatible(reference: Dataset, current: Dataset) -> dict[str, str]:
    """The features both datasets share and their type; an error for any that differ."""
    for one, other in ((reference, current), (current, reference)):
        missing = [name for name in one.columns if name not in other.columns]
        if missing:
            raise ValidationInputError(f"column {missing[0]!r} is in {one.path} but not in {other.path}"
                                       + (f" (nor {len(missing) - 1} more)" if len(missing) > 1 else ""))
    kinds: dict[str, str] = {}
    for name in reference.columns:
        a, b = reference.kinds.get(name), current.kinds.get(name)
        if a and b and a != b:
            words = {"numeric": "numeric", "categorical": "strings"}
            raise ValidationInputError(f"column {name!r} is {words[a]} in {reference.path} but "
                                       f"{words[b]} in {current.path}")
        kind = a or b
        if kind is not None:
            kinds[name] = kind
    if not kinds:
        raise ValidationInputError(f"{reference.path} and {current.path}: every column holds only missing values")
    return kinds


def _typed(data: Dataset, kinds: dict[str, str]) -> Dataset:
    """``data`` with its all-missing columns stored as the type the other dataset gave them."""
    columns = dict(data.columns)
    for name, kind in kinds.items():
        if name not in data.kinds:
            columns[name] = np.full(data.rows, np.nan) if kind == "numeric" else np.full(data.rows, None, dtype=object)
    return replace(data, columns={name: columns[name] for name in kinds}, kinds=dict(kinds))


# --- the classifier -----------------------------------------------------------------------------

def _encode(reference: Dataset, current: Dataset, kinds: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """The feature matrix of both datasets (reference rows first) and the categorical mask."""
    names = list(kinds)
    X = np.empty((reference.rows + current.rows, len(names)), dtype=np.float64)
    categorical = np.zeros(len(names), dtype=bool)
    for j, name in enumerate(names):
        if kinds[name] == "numeric":
            X[:, j] = np.concatenate([reference.columns[name], current.columns[name]]).astype(np.float64)
            continue
        categorical[j] = True
        values = np.concatenate([reference.columns[name], current.columns[name]])
        present = np.array([v is not None for v in values])
        counts = Counter(values[present].tolist())
        codes = {c: i for i, (c, _) in enumerate(counts.most_common(MAX_CATEGORY_CODES))}
        other = float(len(codes))
        X[:, j] = [codes.get(v, other) if v is not None else np.nan for v in values]
    return X, categorical


def _rank_auc(ranks: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC from the mid-ranks of the scores (Mann-Whitney U / n1 n0)."""
    n1 = int(positive.sum())
    n0 = positive.size - n1
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def delong_interval(scores: np.ndarray, positive: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """ROC AUC and its DeLong confidence interval, from placement values (O(n log n)).

    >>> rng = np.random.default_rng(3)
    >>> s = np.r_[rng.normal(0, 1, 2000), rng.normal(1, 1, 2000)]
    >>> y = np.r_[np.zeros(2000, bool), np.ones(2000, bool)]
    >>> auc, low, high = delong_interval(s, y)
    >>> round(auc, 3), low < 0.76 < high, round(high - low, 3)
    (0.753, True, 0.03)
    """
    from scipy.special import ndtri
    from scipy.stats import rankdata

    positive = np.asarray(positive, dtype=bool)
    n1, n0 = int(positive.sum()), int((~positive).sum())
    ranks = rankdata(scores)
    auc = _rank_auc(ranks, positive)
    # Placement of a positive: share of negatives below it (ties half); of a negative: share of
    # positives above it. The AUC's variance is theirs divided by the group sizes.
    v_pos = (ranks[positive] - rankdata(scores[positive])) / n0
    v_neg = 1.0 - (ranks[~positive] - rankdata(scores[~positive])) / n1
    se = math.sqrt(np.var(v_pos, ddof=1) / n1 + np.var(v_neg, ddof=1) / n0)
    z = float(ndtri(0.5 + level / 2))
    return auc, max(0.0, auc - z * se), min(1.0, auc + z * se)


def permutation_p_value(scores: np.ndarray, positive: np.ndarray, permutations: int,
                        rng: np.random.Generator) -> float:
    """One-sided p-value of AUC > 0.5: labels shuffled against the fixed out-of-fold scores.

    Under "one distribution" the rows are exchangeable, so each shuffle draws an AUC from the
    null; the scores are ranked once, and a shuffle costs one sum of ranks.
    """
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    observed = _rank_auc(ranks, positive)
    n1 = int(positive.sum())
    n0 = positive.size - n1
    exceed = 0
    for _ in range(permutations):
        chosen = rng.choice(ranks.size, size=n1, replace=False)
        auc = (ranks[chosen].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
        exceed += int(auc >= observed)
    return (1 + exceed) / (permutations + 1)


def permutation_importance(classifier: Any, X: np.ndarray, positive: np.ndarray, repeats: int,
                           rng: np.random.Generator, *, features_per_call: int = 10) -> np.ndarray:
    """AUC drop on held-out rows when one column is shuffled: ``(features, repeats)``.

    The measure of ``sklearn.inspection.permutation_importance`` with ``scoring="roc_auc"``, but
    the shuffled copies of several features go through one ``predict_proba`` and their AUCs are
    ranked at once: per call, that function's input checks and scorer cost more than the
    prediction itself (about 20 s of 50 features x 5 repeats x 5 folds at 2,000 rows).
    """
    from scipy.stats import rankdata

    n, d = X.shape
    n1 = int(positive.sum())
    n0 = n - n1
    base = _rank_auc(rankdata(classifier.predict_proba(X)[:, 1]), positive)
    drops = np.empty((d, repeats))
    for start in range(0, d, features_per_call):
        columns = range(start, min(d, start + features_per_call))
        shuffled = np.repeat(X[np.newaxis], len(columns) * repeats, axis=0)
        for k, j in enumerate(columns):
            for r in range(repeats):
                shuffled[k * repeats + r, :, j] = X[rng.permutation(n), j]
        scores = classifier.predict_proba(shuffled.reshape(-1, d))[:, 1].reshape(-1, n)
        ranks = rankdata(scores, axis=1)
        aucs = (ranks[:, positive].sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n0)
        drops[start:start + len(columns)] = base - aucs.reshape(len(columns), repeats)
    return drops


def _fit_classifier(X: np.ndarray, y: np.ndarray, categorical: np.ndarray, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.1, early_stopping=True, validation_fraction=0.1,
        n_iter_no_change=10, categorical_features=categorical if categorical.any() else None,
        random_state=seed)
    return model.fit(X, y)


# --- univariate tests ---------------------------------------------------------------------------

def numeric_test(reference: np.ndarray, current: np.ndarray) -> dict[str, Any]:
    """Two-sample KS on the present values, the mean shift in reference sds, missing rates."""
    from scipy.stats import ks_2samp

    a, b = reference[~np.isnan(reference)], current[~np.isnan(current)]
    out: dict[str, Any] = {"test": "ks", "statistic": None, "p_value": None, "mean_shift_sd": None,
                           "sd_ratio": None,
                           "reference_mean": _finite(a.mean()) if a.size else None,
                           "current_mean": _finite(b.mean()) if b.size else None,
                           "reference_missing": float(np.isnan(reference).mean()),
                           "current_missing": float(np.isnan(current).mean())}
    if a.size and b.size:
        ks = ks_2samp(a, b)
        out["statistic"], out["p_value"] = float(ks.statistic), float(ks.pvalue)
        sd = a.std(ddof=1) if a.size > 1 else 0.0
        if sd > 0:
            out["mean_shift_sd"] = float((b.mean() - a.mean()) / sd)
            if b.size > 1:
                out["sd_ratio"] = float(b.std(ddof=1) / sd)
    return out


def categorical_test(reference: np.ndarray, current: np.ndarray) -> dict[str, Any]:
    """Chi-square on the category counts (missing is a category), PSI and Jensen-Shannon distance."""
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chi2_contingency

    ref = Counter("(missing)" if v is None else v for v in reference.tolist())
    cur = Counter("(missing)" if v is None else v for v in current.tolist())
    cats = sorted(set(ref) | set(cur), key=lambda c: -(ref[c] + cur[c]))
    table = np.array([[ref[c] for c in cats], [cur[c] for c in cats]], dtype=float)
    p = table / table.sum(axis=1, keepdims=True)
    out: dict[str, Any] = {"test": "chi2", "statistic": 0.0, "p_value": 1.0}
    if len(cats) > 1:
        chi = chi2_contingency(table, correction=False)
        out["statistic"], out["p_value"] = float(chi.statistic), float(chi.pvalue)
    # PSI needs a share for every cell: half a count where a dataset has none.
    smoothed = (table + 0.5) / (table + 0.5).sum(axis=1, keepdims=True)
    out["psi"] = float(np.sum((smoothed[1] - smoothed[0]) * np.log(smoothed[1] / smoothed[0])))
    out["js_distance"] = float(jensenshannon(p[0], p[1], base=2))
    changed = int(np.argmax(np.abs(p[1] - p[0])))
    out["most_changed"] = {"category": cats[changed], "reference_share": float(p[0, changed]),
                           "current_share": float(p[1, changed])}
    out["categories"] = len(cats)
    return out


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


# --- the whole validation -----------------------------------------------------------------------

@dataclass
class ValidationResult:
    """Everything ``validate`` reports; ``as_dict`` is the ``--json`` document."""

    reference: dict[str, Any]
    current: dict[str, Any]
    auc: float
    auc_interval: tuple[float, float]
    p_value: float
    permutations: int
    min_auc: float
    alpha: float
    shift: bool
    features: list[dict[str, Any]]
    typical_rows: list[dict[str, Any]]
    seed: int
    folds: int
    seconds: float
    roc: dict[str, list[float]] = field(repr=False, default_factory=dict)
    scores: dict[str, list[float]] = field(repr=False, default_factory=dict)
    samples: dict[str, dict[str, Any]] = field(repr=False, default_factory=dict)

    @property
    def exit_code(self) -> int:
        """1 when a shift was found, else 0 (bad input exits 2 before a result exists)."""
        return 1 if self.shift else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": "shift" if self.shift else "no_shift",
            "shift": self.shift,
            "auc": self.auc,
            "auc_ci95": list(self.auc_interval),
            "auc_ci_method": "DeLong, on the out-of-fold scores",
            "p_value": self.p_value,
            "p_value_method": f"label permutation against the out-of-fold scores ({self.permutations} shuffles)",
            "rule": {"min_auc": self.min_auc, "alpha": self.alpha},
            "classifier": f"scikit-learn HistGradientBoostingClassifier, stratified {self.folds}-fold",
            "seed": self.seed,
            "reference": self.reference,
            "current": self.current,
            "features": self.features,
            "typical_rows": self.typical_rows,
            "seconds": round(self.seconds, 3),
        }


def validate(reference_path: str, current_path: str, *, min_auc: float = DEFAULT_MIN_AUC,
             alpha: float = DEFAULT_ALPHA, max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0,
             model: str | None = None, ignore: Sequence[str] = (),
             permutations: int = PERMUTATIONS) -> ValidationResult:
    """Adversarial validation of ``current_path`` against ``reference_path``.

    Raises :class:`ValidationInputError` for input that cannot be compared.
    """
    if not 0.5 <= min_auc <= 1.0:
        raise ValueError(f"min_auc must be in [0.5, 1], got {min_auc!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if max_rows < FOLDS:
        raise ValueError(f"max_rows must be an integer >= {FOLDS}, got {max_rows!r}")
    if permutations < 1:
        raise ValueError(f"permutations must be an integer >= 1, got {permutations!r}")
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    reference = read_dataset(reference_path, model=model, ignore=ignore)
    current = read_dataset(current_path, model=model, ignore=ignore)
    kinds = check_compatible(reference, current)
    reference, current = _typed(reference, kinds), _typed(current, kinds)
    for data in (reference, current):
        if data.rows < FOLDS:
            raise ValidationInputError(f"{data.path}: {data.rows} row(s); {FOLDS}-fold validation needs "
                                       f"at least {FOLDS}")
    reference, current = subsample(reference, max_rows, rng), subsample(current, max_rows, rng)
    names = list(kinds)
    X, categorical = _encode(reference, current, kinds)
    y = np.r_[np.zeros(reference.rows, dtype=np.int8), np.ones(current.rows, dtype=np.int8)]

    from sklearn.model_selection import StratifiedKFold

    oof = np.empty(y.size)
    importances = []
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    for fold, (train, test) in enumerate(folds.split(X, y)):
        classifier = _fit_classifier(X[train], y[train], categorical, seed + fold)
        oof[test] = classifier.predict_proba(X[test])[:, 1]
        held = test if test.size <= IMPORTANCE_ROWS_PER_FOLD else np.sort(
            rng.choice(test, size=IMPORTANCE_ROWS_PER_FOLD, replace=False))
        if np.unique(y[held]).size == 2:
            importances.append(permutation_importance(classifier, X[held], y[held] == 1,
                                                      IMPORTANCE_REPEATS, rng))
    positive = y == 1
    auc, low, high = delong_interval(oof, positive)
    p_value = permutation_p_value(oof, positive, permutations, rng)
    drops = np.concatenate(importances, axis=1) if importances else np.zeros((len(names), 1))

    features = []
    n_ref = reference.rows
    for j, name in enumerate(names):
        ref_values, cur_values = reference.columns[name], current.columns[name]
        test = numeric_test(ref_values, cur_values) if kinds[name] == "numeric" else \
            categorical_test(ref_values, cur_values)
        features.append({"feature": name, "kind": kinds[name],
                         "importance": float(drops[j].mean()), "importance_sd": float(drops[j].std()),
                         **test})
    order = sorted(range(len(names)), key=lambda j: (-features[j]["importance"],
                                                     -(features[j]["statistic"] or 0.0), names[j]))
    features = [dict(features[j], rank=r) for r, j in enumerate(order, 1)]

    current_scores = oof[n_ref:]
    top = np.argsort(-current_scores, kind="stable")[:TYPICAL_ROWS]
    typical = [{"line": int(current.lines[i]), "p_current": float(current_scores[i]),
                "values": {name: _json_value(current.columns[name][i]) for name in names}} for i in top]

    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, oof, drop_intermediate=True)
    keep = np.unique(np.linspace(0, fpr.size - 1, min(fpr.size, 400)).astype(int))
    return ValidationResult(
        reference=_describe(reference, max_rows), current=_describe(current, max_rows),
        auc=auc, auc_interval=(low, high), p_value=p_value, permutations=permutations,
        min_auc=min_auc, alpha=alpha, shift=bool(auc >= min_auc and p_value < alpha),
        features=features, typical_rows=typical, seed=seed, folds=FOLDS,
        seconds=time.perf_counter() - started,
        roc={"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()},
        scores={"reference": oof[:n_ref].tolist(), "current": current_scores.tolist()},
        samples={name: {"kind": kinds[name], "reference": reference.columns[name],
                        "current": current.columns[name]} for name in names})


def _describe(data: Dataset, max_rows: int) -> dict[str, Any]:
    out = {"path": data.path, "rows_read": data.total_rows, "rows_used": data.rows,
           "unreadable_rows": data.bad_rows}
    if data.rows < data.total_rows:
        out["subsampled"] = f"{data.rows:,} of {data.total_rows:,} rows drawn at random (--max-rows {max_rows:,})"
    return out


def _json_value(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return value


# --- terminal ------------------------------------------------------------------------------------

def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and value == 0 and digits >= 4:
        return "< 1e-300"  # a p-value below what a float holds
    if isinstance(value, float):
        if value != 0 and abs(value) < 10 ** -digits:
            return f"{value:.1e}"
        return f"{value:.{digits}f}"
    return str(value)


def _effect(f: dict[str, Any], *, full: bool = True) -> str:
    """The univariate effect in words; ``full`` adds the Jensen-Shannon distance of categories."""
    if f["kind"] == "numeric":
        parts = []
        if f.get("mean_shift_sd") is not None:
            parts.append(f"mean {f['mean_shift_sd'] + 0.0:+.2f} sd".replace("-0.00", "+0.00"))
        if f.get("sd_ratio") is not None and abs(math.log(f["sd_ratio"] or 1e-9)) >= 0.05:
            parts.append(f"sd ×{f['sd_ratio']:.2f}")
        if abs(f["current_missing"] - f["reference_missing"]) >= 0.005:
            parts.append(f"missing {f['reference_missing']:.1%}→{f['current_missing']:.1%}")
        return ", ".join(parts)
    changed = f["most_changed"]
    js = f", JS {f['js_distance']:.3f}" if full else ""
    return (f"PSI {f['psi']:.3f}{js}; {changed['category']} "
            f"{changed['reference_share']:.1%}→{changed['current_share']:.1%}")


def print_result(result: ValidationResult, console: Any, *, max_features: int = 20) -> None:
    """The terminal view: headline, ranked features with their univariate tests, typical rows."""
    from rich.table import Table

    verdict = "[bold red]SHIFT FOUND[/]" if result.shift else "[bold green]no shift found[/]"
    low, high = result.auc_interval
    console.print(f"{verdict}: AUC {result.auc:.3f} [95% CI {low:.3f}–{high:.3f}], permutation "
                  f"p = {_fmt(result.p_value, 4)} (shift when AUC ≥ {result.min_auc} and p < {result.alpha})",
                  highlight=False)
    for role, info in (("reference", result.reference), ("current", result.current)):
        note = f"; {info['subsampled']}" if "subsampled" in info else ""
        bad = f"; {info['unreadable_rows']:,} unreadable rows skipped" if info["unreadable_rows"] else ""
        console.print(f"  {role}: {info['path']} — {info['rows_used']:,} rows{note}{bad}", highlight=False)
    table = Table(title="Features ranked by permutation importance (AUC drop on held-out folds)",
                  title_justify="left")
    for name, justify in (("#", "right"), ("feature", "left"), ("type", "left"), ("AUC drop", "right"),
                          ("test", "left"), ("statistic", "right"), ("p-value", "right"), ("effect", "left")):
        table.add_column(name, justify=justify)
    for f in result.features[:max_features]:
        table.add_row(str(f["rank"]), f["feature"], f["kind"][:3], f"{f['importance']:.4f}", f["test"],
                      _fmt(f["statistic"]), _fmt(f["p_value"], 4), _effect(f, full=False))
    console.print(table)
    if len(result.features) > max_features:
        console.print(f"  … {len(result.features) - max_features} more features (--json lists them all)")
    top_names = [f["feature"] for f in result.features[:6]]
    rows = Table(title="Current rows most typical of the current data (highest out-of-fold P(current))",
                 title_justify="left")
    rows.add_column("line", justify="right")
    rows.add_column("P(current)", justify="right")
    for name in top_names:
        rows.add_column(name, justify="right")
    for row in result.typical_rows:
        rows.add_row(str(row["line"]), f"{row['p_current']:.3f}",
                     *(_fmt(row["values"][n]) for n in top_names))
    console.print(rows)


# --- HTML report ----------------------------------------------------------------------------------

def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _tidy(ax: Any) -> None:
    ax.grid(True, alpha=0.25, linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def plot_roc(result: ValidationResult) -> str:
    """ROC curve and the out-of-fold score distributions, as base64 PNG."""
    fig = _figure(11, 3.8)
    roc, scores = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    roc.plot([0, 1], [0, 1], color="#7f7f7f", linestyle="--", linewidth=1, label="chance (AUC 0.5)")
    roc.plot(result.roc["fpr"], result.roc["tpr"], color="#1f77b4", linewidth=1.8,
             label=f"classifier (AUC {result.auc:.3f})")
    roc.set_xlabel("false positive rate (reference rows called current)")
    roc.set_ylabel("true positive rate")
    roc.set_title("ROC, out-of-fold", loc="left", fontsize=11)
    roc.set_xlim(0, 1)
    roc.set_ylim(0, 1)
    roc.legend(loc="lower right", fontsize=8, frameon=False)
    _tidy(roc)
    bins = np.linspace(0, 1, 51)
    scores.hist(result.scores["reference"], bins=bins, density=True, histtype="stepfilled", alpha=0.35,
                color="#2ca02c", label="reference rows")
    scores.hist(result.scores["current"], bins=bins, density=True, histtype="step", linewidth=1.6,
                color="#1f77b4", label="current rows")
    scores.set_xlabel("out-of-fold P(current)")
    scores.set_ylabel("density")
    scores.set_title("Scores of the two datasets", loc="left", fontsize=11)
    scores.legend(loc="upper right", fontsize=8, frameon=False)
    _tidy(scores)
    return _png(fig)


def plot_importance(result: ValidationResult, limit: int = 20) -> str:
    """Permutation importance of the top features, as a horizontal bar chart (base64 PNG)."""
    from .report import _plain

    shown = result.features[:limit][::-1]
    fig = _figure(9.5, 0.9 + 0.28 * len(shown))
    ax = fig.add_subplot()
    ax.barh([_plain(f["feature"]) for f in shown], [f["importance"] for f in shown],
            xerr=[f["importance_sd"] for f in shown], color="#1f77b4", alpha=0.8,
            error_kw={"elinewidth": 0.8, "ecolor": "#555555"})
    ax.axvline(0, color="#7f7f7f", linewidth=0.8)
    ax.set_xlabel("AUC drop when the feature is shuffled (mean ± sd over folds and repeats)")
    ax.set_title("Feature importance", loc="left", fontsize=11)
    _tidy(ax)
    return _png(fig)


def plot_feature(name: str, sample: dict[str, Any]) -> str:
    """Reference against current for one feature: histograms, or category shares (base64 PNG)."""
    from .report import _plain

    fig = _figure(5.4, 3.0)
    ax = fig.add_subplot()
    ref, cur = sample["reference"], sample["current"]
    if sample["kind"] == "numeric":
        a, b = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
        both = np.concatenate([a, b])
        if both.size:
            low, high = np.quantile(both, (0.005, 0.995))
            if high <= low:
                low, high = low - 0.5, high + 0.5
            bins = np.linspace(low, high, 41)
            # The far tails are left out rather than piled into the edge bins, where they would
            # look like a mass of values that is not there.
            ax.hist(a[(a >= low) & (a <= high)], bins=bins, density=True, histtype="stepfilled",
                    alpha=0.35, color="#2ca02c", label="reference")
            ax.hist(b[(b >= low) & (b <= high)], bins=bins, density=True, histtype="step", linewidth=1.6,
                    color="#1f77b4", label="current")
        ax.set_ylabel("density")
        ref_missing, cur_missing = np.isnan(ref).mean(), np.isnan(cur).mean()
        missing = f" · missing {ref_missing:.1%} → {cur_missing:.1%}" if ref_missing or cur_missing else ""
    else:
        ref_counts = Counter("(missing)" if v is None else v for v in ref.tolist())
        cur_counts = Counter("(missing)" if v is None else v for v in cur.tolist())
        total = ref_counts + cur_counts
        cats = [c for c, _ in total.most_common(8)]
        x = np.arange(len(cats))
        ax.bar(x - 0.2, [ref_counts[c] / max(len(ref), 1) for c in cats], width=0.4, color="#2ca02c",
               alpha=0.55, label="reference")
        ax.bar(x + 0.2, [cur_counts[c] / max(len(cur), 1) for c in cats], width=0.4, color="#1f77b4",
               alpha=0.85, label="current")
        ax.set_xticks(x, [_plain(str(c))[:14] for c in cats], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("share")
        missing = ""
    ax.set_title(_plain(name) + missing, loc="left", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    _tidy(ax)
    return _png(fig)


def render_report(path: str | os.PathLike[str], result: ValidationResult, *,
                  title: str = "Adversarial validation") -> None:
    """Write the self-contained HTML page of a validation (plots embedded as PNG)."""
    from .report import _CSS, _esc, _table

    low, high = result.auc_interval
    verdict = "shift found" if result.shift else "no shift found"
    cards = [("AUC", f"{result.auc:.3f}"), ("95% CI", f"{low:.3f}–{high:.3f}"),
             ("permutation p", _fmt(result.p_value, 4)), ("verdict", verdict),
             ("reference rows", f"{result.reference['rows_used']:,}"),
             ("current rows", f"{result.current['rows_used']:,}")]
    card_html = "<div class='cards'>" + "".join(
        f"<div class='card{' alarm' if label == 'verdict' and result.shift else ''}'>"
        f"<div class='big'>{_esc(value)}</div><div class='muted'>{label}</div></div>"
        for label, value in cards) + "</div>"
    sources = "".join(
        f"<li>{role}: <code>{_esc(info['path'])}</code> — {info['rows_used']:,} rows"
        + (f"; {_esc(info['subsampled'])}" if "subsampled" in info else "")
        + (f"; {info['unreadable_rows']:,} unreadable rows skipped" if info["unreadable_rows"] else "")
        + "</li>" for role, info in (("reference", result.reference), ("current", result.current)))
    head = ["#", "feature", "type", "AUC drop", "± sd", "test", "statistic", "p-value", "effect"]
    rows = [[str(f["rank"]), f"<b>{_esc(f['feature'])}</b>", _esc(f["kind"]),
             f"<td class='num'>{f['importance']:.4f}</td>", f"<td class='num'>{f['importance_sd']:.4f}</td>",
             _esc(f["test"]), f"<td class='num'>{_esc(_fmt(f['statistic']))}</td>",
             f"<td class='num'>{_esc(_fmt(f['p_value'], 4))}</td>", _esc(_effect(f))] for f in result.features]
    shown = [f["feature"] for f in result.features[:8]]
    typical_rows = [[f"<td class='num'>{r['line']}</td>", f"<td class='num'>{r['p_current']:.3f}</td>",
                     *(f"<td class='num'>{_esc(_fmt(r['values'][n]))}</td>" for n in shown)]
                    for r in result.typical_rows]
    figures = "".join(
        f"<figure><img alt='{_esc(f['feature'])}' src='data:image/png;base64,"
        f"{plot_feature(f['feature'], result.samples[f['feature']])}'></figure>"
        for f in result.features[:HISTOGRAM_FEATURES])
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    body = [
        f"<header><h1>{_esc(title)}</h1>",
        f"<p class='muted'>Generated {generated} · seed {result.seed} · {result.seconds:.1f} s</p>",
        card_html, f"<ul>{sources}</ul>",
        f"<p>A {result.folds}-fold cross-validated HistGradientBoosting classifier learned to tell current "
        f"rows from reference rows. Its out-of-fold ROC AUC is {result.auc:.3f} (DeLong 95% CI "
        f"{low:.3f}–{high:.3f}); shuffling the labels {result.permutations} times against the same scores "
        f"gives p = {_esc(_fmt(result.p_value, 4))}. A shift is reported when AUC ≥ {result.min_auc} and "
        f"p &lt; {result.alpha}: <b class='{'bad' if result.shift else 'ok'}'>{verdict}</b>.</p></header>",
        "<section><h2>How well the datasets can be told apart</h2>",
        f"<figure><img alt='ROC curve' src='data:image/png;base64,{plot_roc(result)}'></figure></section>",
        f"<section><h2>{len(result.features)} features ranked by importance</h2>",
        "<p class='muted'>Importance: how much the held-out AUC drops when the feature's values are "
        "shuffled. Beside it, each feature's own two-sample test: Kolmogorov-Smirnov for numbers "
        "(effect: mean shift in reference sds, missing rates), chi-square for categories (effect: PSI, "
        "Jensen-Shannon distance, the category whose share moved most). p-values are per feature, "
        "not corrected for the number of features.</p>",
        f"<figure><img alt='feature importance' src='data:image/png;base64,{plot_importance(result)}'></figure>",
        _table(head, rows),
        f"<h3>Reference against current, top {min(HISTOGRAM_FEATURES, len(result.features))} features</h3>",
        "<p class='muted'>Histograms span the 0.5–99.5% quantiles of both datasets together; "
        "categorical features show their 8 most common categories.</p>",
        f"<div class='grid'>{figures}</div></section>",
        "<section><h2>Current rows most typical of the current data</h2>",
        "<p class='muted'>The current rows the classifier, not having seen them, was surest were current; "
        "line is the row's line in the current file. Columns: the top-ranked features.</p>",
        _table(["line", "P(current)", *(_esc(n) for n in shown)], typical_rows), "</section>",
    ]
    css = _CSS + (".alarm{border-color:#c62828;background:#fdecea}.bad{color:#c62828}"
                  ".grid{display:grid;grid-template-columns:repeat(2,1fr);gap:.5rem}"
                  ".grid figure{margin:0}img{max-width:100%}")
    document = (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{_esc(title)}</title>"
                f"<style>{css}</style></head><body>" + "\n".join(body) + "</body></html>\n")
    with open(path, "w", encoding="utf-8") as out:
        out.write(document)


# --- command line ---------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("reference", help="the reference dataset (CSV, JSONL, Parquet; gzip ok), e.g. training data")
    p.add_argument("current", help="the dataset to compare with it, e.g. recent production features")
    p.add_argument("--json", action="store_true", help="print the result as one JSON document")
    p.add_argument("--report", help="write an HTML report with plots here")
    p.add_argument("--min-auc", type=float, default=DEFAULT_MIN_AUC,
                   help=f"a shift needs at least this AUC (default {DEFAULT_MIN_AUC})")
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                   help=f"... and a permutation p-value below this (default {DEFAULT_ALPHA})")
    p.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS,
                   help=f"rows drawn at random from each dataset at most (default {DEFAULT_MAX_ROWS:,})")
    p.add_argument("--seed", type=int, default=0, help="seed of the subsample, folds and classifier")
    p.add_argument("--model", help="feature-event logs: use the rows of this model only")
    p.add_argument("--ignore", help="comma-separated columns to leave out (ids, timestamps)")


def main(args: argparse.Namespace) -> int:
    """Run ``streamdrift validate``: 0 no shift, 1 shift, 2 bad input."""
    from rich.console import Console

    try:
        result = validate(args.reference, args.current, min_auc=args.min_auc, alpha=args.alpha,
                          max_rows=args.max_rows, seed=args.seed, model=args.model,
                          ignore=tuple(c.strip() for c in args.ignore.split(",")) if args.ignore else ())
    except (ValidationInputError, ValueError) as exc:
        print(f"streamdrift validate: error: {exc}", file=sys.stderr)
        return 2
    if args.report:
        render_report(args.report, result)
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n")
        sys.stdout.flush()
    else:
        print_result(result, Console())
        if args.report:
            print(f"report: {args.report}")
    return result.exit_code
