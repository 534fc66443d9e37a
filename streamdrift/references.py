"""Reference data from a training-data file (``--reference FILE``): per model, per feature.

The file is read with the same readers as replay logs (CSV, JSONL, Parquet, gzip ok). Rows with a
``model`` name the model they are the reference of; rows without one (or a file without a model
column, read with ``model_name="*"``) are the reference of every model. Rows with a
``model_version`` too are that version's own training data: the reference of its monitors
(events with that ``model_version``), so a new version fed differently prepared features is
caught from its first events.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from .detectors.categorical import as_category
from .logs import ColumnMapping, LogReader
from .model_monitors import JOINT_REFERENCE, LABEL, PREDICTION, value_type


def load_references(path: str, mapping: ColumnMapping | None = None) -> dict:
    """``{model or "*" or (model, version): {feature: ndarray of numbers (NaN = missing) | {category: count}}}``.

    Prediction and label references are stored under ``"prediction:prediction"`` and ``"label:label"``;
    the rows themselves, aligned, under ``"multivariate:rows"`` (``{feature: values}``, for the
    multivariate monitor).
    """
    columns: dict[object, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    rows: dict[object, list[dict]] = defaultdict(list)  # per model: each row's features, for the multivariate monitor
    reader = LogReader(path, mapping or ColumnMapping(model_name="*"))
    for row in reader:
        if row.event is None:
            continue
        model = row.event.get("model") or "*"
        version = row.event.get("model_version")
        if version is not None:
            model = (model, str(version))
        features = row.event.get("features") or {}
        rows[model].append(features)
        for name, value in features.items():
            columns[model][name].append(value)
        for kind in (PREDICTION, LABEL):
            if row.event.get(kind) is not None:
                columns[model][f"{kind}:{kind}"].append(row.event[kind])
    references: dict[object, dict] = {}
    for model, features in columns.items():
        out = {}
        for name, values in features.items():
            types = {value_type(v) for v in values} - {None}
            if types == {"numeric"}:
                out[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            elif types == {"categorical"}:
                counts = Counter(map(as_category, values))
                out[name] = dict(counts)
            # mixed or empty columns give no reference: the feature warms up from the stream
        # The rows, aligned (a row without a feature: missing there), for the multivariate monitor.
        usable = [name for name in features if name in out and not name.startswith((f"{PREDICTION}:", f"{LABEL}:"))]
        out[JOINT_REFERENCE] = {name: [r.get(name) for r in rows[model]] for name in usable}
        references[model] = out
    if not references:
        raise ValueError(f"reference file {path} has no usable rows ({reader.summary.bad_rows} bad rows)")
    return references
