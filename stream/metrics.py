"""Prometheus metrics of one worker (served on ``/metrics``).

Each worker has its own registry so that several workers can live in one process (tests).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


def reason_code(reason: str) -> str:
    """A short, bounded label for a rejection reason (the full text goes to the dead-letter topic).

    >>> reason_code("not valid JSON (NaN and Infinity are not JSON either): ..."), reason_code("feature 'x' is a list; ...")
    ('not_json', 'bad_value')
    >>> reason_code("model_version 'v9' of model 'm' is unknown: no feature event carried it (known: v1)")
    'unknown_version'
    """
    checks = (("is unknown: no feature event carried it", "unknown_version"), ("\"model_version\" must", "bad_version"),
              ("not valid JSON", "not_json"), ("event must be a JSON object", "not_object"),
              ("missing or empty \"model\"", "no_model"), ("missing \"features\"", "no_features"),
              ("\"features\" must", "no_features"), ("limits.", "limit"), ("has always been", "type_changed"),
              ("\"ts\"", "bad_ts"), ("empty message", "empty"))
    for prefix, code in checks:
        if prefix in reason:
            return code
    return "bad_value"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_in = Counter("streamdrift_events_in", "Feature events consumed", registry=r)
        self.events_processed = Counter("streamdrift_events_processed", "Feature events fed to monitors", registry=r)
        self.events_rejected = Counter("streamdrift_events_rejected", "Feature events sent to the dead-letter topic",
                                       ["reason"], registry=r)
        self.alerts = Counter("streamdrift_alerts", "Drift alerts published",
                              ["model", "feature", "kind", "detector", "severity"], registry=r)
        self.below_effect_floor = Counter("streamdrift_below_effect_floor",
                                          "Detections not published: their effect size was below min_effect",
                                          ["model", "feature", "kind", "detector"], registry=r)
        self.retrain_requests = Counter("streamdrift_retrain_requests", "Retrain requests published", ["model"],
                                        registry=r)
        self.model_decisions = Counter("streamdrift_model_decisions", "Rollback and promote decisions published",
                                       ["model", "version", "baseline", "decision"], registry=r)
        self.version_loss = Gauge("streamdrift_model_version_loss",
                                  "Mean loss of a model version's labelled predictions (0/1 error or absolute error)",
                                  ["model", "version"], registry=r)
        self.version_labels = Gauge("streamdrift_model_version_labels",
                                    "Labelled predictions of a model version", ["model", "version"], registry=r)
        self.lag = Gauge("streamdrift_consumer_lag", "Messages not yet consumed", ["topic", "partition"], registry=r)
        self.latency = Histogram("streamdrift_processing_latency_seconds",
                                 "From the input message's timestamp to its batch being published",
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        self.batch_seconds = Histogram("streamdrift_batch_seconds", "Time to process one batch", registry=r,
                                       buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.fetch_wait = Counter("streamdrift_fetch_wait_seconds",
                                  "Time spent waiting for the next batch from the broker (fetch and linger)", registry=r)
        self.checkpoint_capture = Counter("streamdrift_checkpoint_capture_seconds",
                                          "Time periodic checkpoints held the batches up (the state captured between two)",
                                          registry=r)
        self.models = Gauge("streamdrift_models", "(model, segment) pairs monitored by this worker", registry=r)
        self.monitored = Gauge("streamdrift_monitored_features", "(model, feature) monitors held by this worker",
                               registry=r)
        self.evicted = Counter("streamdrift_evicted_models", "Idle (model, segment) pairs dropped", registry=r)
        self.degraded = Gauge("streamdrift_degraded", "1 while the broker cannot be reached", registry=r)
        self.checkpoints = Counter("streamdrift_checkpoints", "State checkpoints written", registry=r)
        self.labels_joined = Counter("streamdrift_labels_joined", "Late labels joined to their prediction",
                                     registry=r)
        self.labels_unmatched = Counter("streamdrift_labels_unmatched", "Late labels that found no prediction",
                                        registry=r)
        self.predictions_expired = Counter("streamdrift_predictions_expired",
                                           "Predictions dropped unlabelled (time-to-live or pending limit)",
                                           registry=r)
        self.pending_predictions = Gauge("streamdrift_pending_predictions", "Predictions waiting for a label",
                                         registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
