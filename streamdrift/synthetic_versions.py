"""A synthetic deployment of two model versions with known losses: for the demo, tests and benchmarks.

The baseline version serves alone first; from request ``start`` on a new version runs beside it,
in shadow (both score every request: two events with the same ``id``) or on split traffic (each
request goes to one of them: a canary). Each prediction's label arrives ``delay`` requests later
on the labels topic. Errors are set per version: for classes the share of wrong predictions,
for numbers the sd of a normal prediction error (mean absolute error = sd · sqrt(2/π)). The two
versions' errors on the same request are correlated (``coupling``), as those of two models on the
same inputs are.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import orjson


@dataclass
class VersionedDeployment:
    """Events of one model with a baseline and a new version.

    >>> deployment = VersionedDeployment(requests=4, start=2, delay=1, seed=1)
    >>> [(e.get("model_version"), e["id"], "features" in e) for e in deployment.messages_in_order()][:5]
    [('v1', 'r0', True), ('v1', 'r1', True), (None, 'r0', False), ('v1', 'r2', True), ('v2', 'r2', True)]
    """

    model: str = "m"
    baseline: str = "v1"
    version: str = "v2"
    #: ``shadow`` or ``split``.
    traffic: str = "shadow"
    #: ``classification`` (0/1 loss) or ``regression`` (absolute error).
    task: str = "classification"
    requests: int = 20_000
    #: The new version's first request.
    start: int = 2_000
    #: Split traffic: the share of requests the new version gets.
    share: float = 0.5
    #: Classification: each version's error rate; regression: the sd of its prediction error.
    baseline_error: float = 0.10
    version_error: float = 0.10
    #: How often the new version's error on a request follows the baseline's (0: independent).
    coupling: float = 0.8
    #: Labels arrive this many requests after their prediction.
    delay: int = 100
    #: Labels name the version of their prediction (``model_version``); else a label is for every
    #: version's prediction of its id.
    labels_name_version: bool = False
    seed: int = 0
    start_ts: float = 1_732_000_000.0
    spacing_s: float = 0.01

    def predictions(self) -> list[dict]:
        """Per request: its feature events (one per version that scored it) and its label."""
        rng = np.random.default_rng(self.seed)
        n = self.requests
        x = rng.normal(0, 1, (n, 2)).round(6)
        u = rng.random(n)
        own = rng.random(n)
        follows = rng.random(n) < self.coupling
        u_new = np.where(follows, u, own)
        to_new = rng.random(n) < self.share
        out = []
        for i in range(n):
            ts = self.start_ts + i * self.spacing_s
            label, by_version = self._outcome(rng, u[i], u_new[i])
            serving = [self.baseline] if i < self.start else \
                [self.baseline, self.version] if self.traffic == "shadow" else \
                [self.version if to_new[i] else self.baseline]
            events = [{"model": self.model, "model_version": v, "id": f"r{i}", "ts": ts,
                       "features": {"x0": float(x[i, 0]), "x1": float(x[i, 1])}, "prediction": by_version[v]}
                      for v in serving]
            out.append({"events": events, "label": label, "versions": serving, "ts": ts})
        return out

    def _outcome(self, rng, u: float, u_new: float) -> tuple[object, dict]:
        if self.task == "classification":
            label = int(rng.random() < 0.5)

            def predict(wrong: bool) -> float:
                return 0.2 if (label == 1) == wrong else 0.8

            return label, {self.baseline: predict(u < self.baseline_error),
                           self.version: predict(u_new < self.version_error)}
        if self.task == "regression":
            label = round(float(rng.normal(50.0, 10.0)), 4)
            from scipy.special import ndtri  # the normal quantile of the shared uniforms
            z_base, z_new = float(ndtri(min(max(u, 1e-12), 1 - 1e-12))), float(ndtri(min(max(u_new, 1e-12), 1 - 1e-12)))
            return label, {self.baseline: round(label + self.baseline_error * z_base, 4),
                           self.version: round(label + self.version_error * z_new, 4)}
        raise ValueError(f"task must be classification or regression, got {self.task!r}")

    def messages_in_order(self) -> Iterator[dict]:
        """Feature events and labels as they arrive: each request's events, and the labels of the
        request ``delay`` before it."""
        requests = self.predictions()
        for i, request in enumerate(requests):
            yield from request["events"]
            if i >= self.delay:
                yield from self._labels(requests[i - self.delay], request["ts"])
        for request in requests[max(0, len(requests) - self.delay):]:
            yield from self._labels(request, requests[-1]["ts"])

    def _labels(self, request: dict, ts: float) -> Iterator[dict]:
        if self.labels_name_version:
            for version in request["versions"]:
                yield {"model": self.model, "model_version": version, "id": request["events"][0]["id"],
                       "label": request["label"], "ts": ts}
        else:
            yield {"model": self.model, "id": request["events"][0]["id"], "label": request["label"], "ts": ts}

    def messages(self) -> Iterator[tuple[str, bytes, bytes]]:
        """``(topic kind, key, value)``: ``features`` or ``labels``, keyed by the model."""
        for message in self.messages_in_order():
            yield ("features" if "features" in message else "labels"), self.model.encode(), orjson.dumps(message)
