"""Reference data from a training-data file (``--reference FILE``): per model, per feature.

The file is read with the same readers as replay logs (CSV, JSONL, Parquet, gzip ok). Rows with a
``model`` name the model they are the reference of; rows without one (or a file without a model
column, read with ``model_name="*"``) are the reference of every model.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from .logs import ColumnMapping, LogReader
from .pipeline import LABEL, PREDICTION, value_type


def load_references(path: str, mapping: ColumnMapping | None = None) -> dict:
    """``{model or "*": {feature: ndarray of numbers (NaN = missing) | {category: count}}}``.

    Prediction and label references are stored under ``"prediction:prediction"`` and ``"label:label"``.
    """
    columns: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    reader = LogReader(path, mapping or ColumnMapping(model_name="*"))
    for row in reader:
        if row.event is None:
            continue
        model = row.event.get("model") or "*"
        for name, value in (row.event.get("features") or {}).items():
            columns[model][name].append(value)
        for kind in (PREDICTION, LABEL):
            if row.event.get(kind) is not None:
                columns[model][f"{kind}:{kind}"].append(row.event[kind])
    references: dict[str, dict] = {}
    for model, features in columns.items():
        out = {}
        for name, values in features.items():
            types = {value_type(v) for v in values} - {None}
            if types == {"numeric"}:
                out[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            elif types == {"categorical"}:
                counts = Counter("true" if v is True else "false" if v is False else v for v in values)
                out[name] = dict(counts)
            # mixed or empty columns give no reference: the feature warms up from the stream
        references[model] = out
    if not references:
        raise ValueError(f"reference file {path} has no usable rows ({reader.summary.bad_rows} bad rows)")
    return references
