"""Synthetic feature events with drift injected at known points: for the demo, tests and benchmarks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import orjson

COUNTRIES = ["DE", "FR", "US", "GB", "NL"]
COUNTRY_SHARES = [0.3, 0.25, 0.2, 0.15, 0.1]


@dataclass(frozen=True)
class Drift:
    """A change injected into one feature of one model from event ``at`` on."""

    model: str
    feature: str
    at: int
    kind: str  # "mean", "variance", "category", "missing"


@dataclass
class SyntheticStream:
    """Events of several models, interleaved round-robin, each with numeric features ``f00..``
    (standard normal), a categorical ``country`` and a numeric ``amount`` (log-normal).

    >>> stream = SyntheticStream(models=["m1"], numeric_features=2, events_per_model=3, seed=1)
    >>> [sorted(e["features"]) for e in stream.events()][0]
    ['amount', 'country', 'f00', 'f01']
    """

    models: list[str]
    numeric_features: int = 5
    events_per_model: int = 10_000
    drifts: list[Drift] = field(default_factory=list)
    seed: int = 0
    start_ts: float = 1_732_000_000.0
    spacing_s: float = 0.01

    def events(self) -> Iterator[dict]:
        rng = np.random.default_rng(self.seed)
        n, k = self.events_per_model, self.numeric_features
        columns = {}
        for model in self.models:
            cols = {f"f{j:02d}": rng.normal(0, 1, n) for j in range(k)}
            cols["amount"] = rng.lognormal(3, 1, n)
            cols["country"] = rng.choice(len(COUNTRIES), n, p=COUNTRY_SHARES)
            missing = {name: np.zeros(n, dtype=bool) for name in cols}
            for d in (d for d in self.drifts if d.model == model):
                after = slice(d.at, n)
                m = n - d.at
                if d.kind == "mean":
                    cols[d.feature][after] += cols[d.feature][:d.at].std() * 1.0
                elif d.kind == "variance":
                    cols[d.feature][after] *= 2.0
                elif d.kind == "category":
                    cols[d.feature][after] = rng.choice(len(COUNTRIES), m, p=[0.1, 0.15, 0.2, 0.25, 0.3])
                elif d.kind == "missing":
                    missing[d.feature][after] = rng.random(m) < 0.3
                else:
                    raise ValueError(f"unknown drift kind {d.kind!r}")
            columns[model] = (cols, missing)
        for i in range(n):
            for mi, model in enumerate(self.models):
                cols, missing = columns[model]
                features = {}
                for name, values in cols.items():
                    if missing[name][i]:
                        features[name] = None
                    elif name == "country":
                        features[name] = COUNTRIES[int(values[i])]
                    else:
                        features[name] = round(float(values[i]), 6)
                yield {"model": model, "id": f"{model}-{i}", "ts": self.start_ts + i * self.spacing_s + mi * 1e-4,
                       "features": features}

    def messages(self) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs ready to produce: the key is the model."""
        for event in self.events():
            yield event["model"].encode(), orjson.dumps(event)
