"""Drift alerts and retrain requests as published on Kafka (DESIGN.md's schemas)."""

from __future__ import annotations

import hashlib

from .detectors import Detection


def alert_id(model: str, segment: str | None, feature: str, detector: str, index: int,
             started: float | None = None, version: str | None = None) -> str:
    """Deterministic id: the same input position always yields the same id, so a replay after a
    crash republishes an alert under the id consumers already saw. ``started`` (the event time
    the model's monitors started at) tells apart a model that came back after an idle eviction;
    ``version`` the monitors of one model version (events without one keep the ids they had).

    >>> alert_id("fraud-v3", None, "amount", "ks", 1200), alert_id("fraud-v3", None, "amount", "ks", 1200, version="v2")
    ('a-512daa7aedfe4fdaf073e09b', 'a-58d9c916af57ad6c7c99be78')
    """
    parts = [model, segment or "", feature, detector, str(index)]
    if started is not None:
        parts.append(repr(float(started)))
    if version is not None:
        parts += ["model_version", version]
    key = "\x1f".join(parts)
    return "a-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def position(record) -> dict:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}


def build_alert(model: str, segment: str | None, feature: str, kind: str, detection: Detection,
                ts: float | None, record, config_version: str, started: float | None = None,
                version: str | None = None) -> dict:
    """The alert for one detection, with where in the input it happened (and ``model_version``
    when the events carried one)."""
    alert = {
        "alert_id": alert_id(model, segment, feature, detection.detector, detection.index, started, version),
        "model": model,
        "segment": segment,
        "feature": feature,
        "kind": kind if detection.kind == "feature" else detection.kind,
        "detector": detection.detector,
        "statistic": detection.statistic,
        "threshold": detection.threshold,
        "p_value": detection.p_value,
        "direction": detection.direction,
        "severity": detection.severity,
        "detected_at": {"ts": ts, **position(record)},
        "index": detection.index,
        "reference": detection.reference,
        "window": detection.window,
        "effect": detection.effect,
        "config_version": config_version,
    }
    if version is not None:
        alert["model_version"] = version
    if detection.explained_by:  # a multivariate detection: the features that explain it, ranked
        alert["explained_by"] = detection.explained_by
    return alert
