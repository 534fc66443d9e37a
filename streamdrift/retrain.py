"""The retrain policy: when do drift alerts of one model become a retrain request?

An incident opens with the first qualifying alert of a (model, segment). A request is made when
``min_features`` distinct features have drifted within ``window_seconds`` of event time, or at
once on a concept-drift alert (``on_concept``). After a request the model is in cool-down for
``cooldown_seconds``: further alerts are still published, but no new request is made. Time is
event time, never wall-clock, so a replay of the same input makes the same requests.
"""

from __future__ import annotations

import hashlib

from .config import RetrainPolicy

SEVERITY_RANK = {"warning": 0, "critical": 1}


def evidence(alert: dict) -> float:
    """How strongly one alert says "drifted": statistic over threshold, doubled when critical."""
    threshold = alert.get("threshold") or 0.0
    ratio = alert["statistic"] / threshold if threshold > 0 else 1.0
    return float(ratio) * (2.0 if alert["severity"] == "critical" else 1.0)


class RetrainTracker:
    """Incident bookkeeping for one (model, segment).

    >>> tracker = RetrainTracker(RetrainPolicy(min_features=2))
    >>> a = {"alert_id": "a-1", "model": "m", "segment": None, "feature": "x", "kind": "feature",
    ...      "statistic": 2.0, "threshold": 1.0, "severity": "warning",
    ...      "detected_at": {"ts": 10.0, "topic": "features", "partition": 0, "offset": 5}}
    >>> tracker.observe(a) is None
    True
    >>> request = tracker.observe({**a, "alert_id": "a-2", "feature": "y",
    ...                             "detected_at": {**a["detected_at"], "ts": 20.0, "offset": 9}})
    >>> request["reason"], [d["feature"] for d in request["drifted"]], request["since"]["offset"]
    ('2 features drifted within 3600 s: x, y', ['x', 'y'], 5)
    """

    def __init__(self, policy: RetrainPolicy):
        self.policy = policy
        self.recent: list[dict] = []
        self.cooldown_until: float | None = None

    def observe(self, alert: dict) -> dict | None:
        p = self.policy
        if SEVERITY_RANK[alert["severity"]] < SEVERITY_RANK[p.min_severity]:
            return None
        now = alert["detected_at"]["ts"] or 0.0
        self.recent = [a for a in self.recent if now - (a["detected_at"]["ts"] or 0.0) <= p.window_seconds]
        self.recent.append(alert)
        if self.cooldown_until is not None and now < self.cooldown_until:
            return None
        features = {a["feature"] for a in self.recent if a["kind"] != "concept"}
        concept = alert["kind"] == "concept" and p.on_concept
        if not concept and len(features) < p.min_features:
            return None
        request = self._request(alert, concept, features)
        self.cooldown_until = now + p.cooldown_seconds
        self.recent = []
        return request

    def _request(self, trigger: dict, concept: bool, features: set[str]) -> dict:
        by_feature: dict[str, list[dict]] = {}
        for a in self.recent:
            by_feature.setdefault(a["feature"], []).append(a)
        drifted = sorted(
            ({"feature": f, "kind": alerts[0]["kind"], "evidence": round(sum(evidence(a) for a in alerts), 6),
              "alert_ids": [a["alert_id"] for a in alerts]} for f, alerts in by_feature.items()),
            key=lambda d: (-d["evidence"], d["feature"]))
        first = min(self.recent, key=lambda a: (a["detected_at"]["ts"] or 0.0, a["detected_at"]["offset"]))
        names = ", ".join(sorted(features))
        if concept:
            reason = f"concept drift on {trigger['feature']}" + (f"; features drifted: {names}" if features else "")
        else:
            reason = f"{len(features)} features drifted within {self.policy.window_seconds:g} s: {names}"
        key = "\x1f".join((trigger["model"], trigger["segment"] or "", first["alert_id"], trigger["alert_id"]))
        request = {
            "request_id": "r-" + hashlib.sha256(key.encode()).hexdigest()[:24],
            "model": trigger["model"],
            "segment": trigger["segment"],
            "reason": reason,
            "severity": "critical" if concept or any(a["severity"] == "critical" for a in self.recent) else "warning",
            "drifted": drifted,
            "since": dict(first["detected_at"]),
            "created_at": trigger["detected_at"]["ts"],
            "trigger_alert_id": trigger["alert_id"],
        }
        if "model_version" in trigger:  # the incident of one model version (its alerts' ids differ too)
            request["model_version"] = trigger["model_version"]
        return request

    def get_state(self) -> dict:
        return {"recent": self.recent, "cooldown_until": self.cooldown_until}

    def set_state(self, state: dict) -> None:
        self.recent = list(state["recent"])
        self.cooldown_until = state["cooldown_until"]
