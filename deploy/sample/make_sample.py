"""Write deploy/sample/features.jsonl.gz: the feature log the compose "replay" profile loads.

Three models, 6000 events each, interleaved as they would arrive; drift is injected at event 3000
into two features of fraud-v3 and two of churn-v1 (ranker-v7 stays stable), so that with
deploy/streamdrift/streamdrift.toml the processors raise alerts and one retrain request per
drifting model. Every 500th event is followed by a malformed one (valid JSON the processor must
reject), so the dashboard's "rejected" panel and the dead-letter topic have something to show.
Deterministic (fixed seed and gzip mtime): re-running it rewrites the same bytes.

    .venv/bin/python deploy/sample/make_sample.py
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import orjson

from streamdrift.synthetic import Drift, SyntheticStream

OUT = Path(__file__).with_name("features.jsonl.gz")
MODELS = ["fraud-v3", "churn-v1", "ranker-v7"]
EVENTS_PER_MODEL = 6000
DRIFT_AT = 3000
DRIFTS = [
    Drift("fraud-v3", "f01", DRIFT_AT, "mean"),
    Drift("fraud-v3", "country", DRIFT_AT, "category"),
    Drift("churn-v1", "amount", DRIFT_AT, "variance"),
    Drift("churn-v1", "f02", DRIFT_AT, "missing"),
]
MALFORMED_EVERY = 500
MALFORMED = [
    {"model": "fraud-v3"},                                     # no features
    {"model": "fraud-v3", "features": {"f01": [1, 2]}},        # a list is not a feature value
    {"model": "churn-v1", "features": {"amount": "twelve"}},   # a string where it was numeric
    {"features": {"f00": 0.5}},                                # no model
]


def main(out: Path = OUT) -> int:
    stream = SyntheticStream(models=MODELS, numeric_features=3, events_per_model=EVENTS_PER_MODEL,
                             drifts=DRIFTS, seed=11)
    with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as gz:
        for i, event in enumerate(stream.events(), start=1):
            gz.write(orjson.dumps(event) + b"\n")
            if i % MALFORMED_EVERY == 0:
                gz.write(orjson.dumps(MALFORMED[(i // MALFORMED_EVERY) % len(MALFORMED)]) + b"\n")
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
