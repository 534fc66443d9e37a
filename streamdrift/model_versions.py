"""The versions of one model (``model_version`` on events) and the comparison of each new version
with its baseline: rollback and promote decisions as published on ``model-decisions``.

A model's versions are known in the order their first event arrived. Each version after the
first is compared with its baseline (the policy's ``baseline``, else the version seen before it)
on the losses of its labelled predictions (``detectors.comparison.LossComparison``), over all
segments of the model; one label gives the losses of every version whose prediction it met (a
shadow deployment: the same id, two versions). No I/O: the pipeline feeds it, the worker and
the offline replay publish what it returns.
"""

from __future__ import annotations

import hashlib

from .config import VersionPolicy
from .detectors.comparison import Decision, LossComparison

#: Most versions remembered per model; the oldest beyond (with its comparisons) is forgotten.
MAX_VERSIONS = 64


def decision_id(model: str, version: str, baseline: str, observations: int) -> str:
    """Deterministic id: from model, version, baseline and the comparison's input position (its
    count of labels), so that a replay after a crash republishes a decision under the same id.

    >>> decision_id("fraud-v3", "v2", "v1", 388)
    'd-f9f152f579af803e7354ef3e'
    """
    key = "\x1f".join((model, version, baseline, str(observations)))
    return "d-" + hashlib.sha256(key.encode()).hexdigest()[:24]


class ModelVersions:
    """One model's versions, in the order their first event came, and their comparisons.

    >>> from streamdrift.events import Record
    >>> versions = ModelVersions("m", VersionPolicy(min_labels=50))
    >>> versions.see("v1"), versions.see("v2"), versions.see("v1"), versions.baseline_of("v2")
    (True, True, False, 'v1')
    >>> found = []
    >>> for i in range(2000):   # shadow: v2 errs on every 4th request v1 gets right
    ...     found += versions.observe({"v1": 0.0, "v2": float(i % 4 == 0)}, Record(b"", offset=i), float(i), "cfg")
    >>> [(d["decision"], d["version"], d["baseline"], d["traffic"], d["labels"]) for d in found]
    [('rollback', 'v2', 'v1', 'shadow', 65)]
    """

    def __init__(self, model: str, policy: VersionPolicy):
        self.model = model
        self.policy = policy
        #: Versions in the order their first event came.
        self.seen: list[str] = []
        #: (version, baseline) -> its comparison.
        self.comparisons: dict[tuple[str, str], LossComparison] = {}
        #: Per version: labelled predictions and the sum of their losses (metrics, report).
        self.losses: dict[str, list] = {}
        #: After a restore: per input (topic, partition), the offset the checkpoint covers;
        #: labels below it were already compared and are skipped.
        self.covered: dict[tuple[str, int], int] = {}
        #: Per input (topic, partition): the offset after the last label compared.
        self.next_offsets: dict[tuple[str, int], int] = {}

    def see(self, version: str) -> bool:
        """A version's event arrived; ``True`` when it is new (then it gets its comparison)."""
        if version in self.losses:
            return False
        baseline = self.policy.baseline or (self.seen[-1] if self.seen else None)
        self.seen.append(version)
        self.losses[version] = [0, 0.0]
        if baseline is not None and baseline != version:
            p = self.policy
            self.comparisons[(version, baseline)] = LossComparison(p.margin, p.error_rate, p.min_labels, p.traffic)
        if len(self.seen) > MAX_VERSIONS:
            oldest = self.seen.pop(0)
            del self.losses[oldest]
            for key in [k for k in self.comparisons if oldest in k]:
                del self.comparisons[key]
        return True

    def knows(self, version: str) -> bool:
        return version in self.losses

    def baseline_of(self, version: str) -> str | None:
        return next((b for v, b in self.comparisons if v == version), None)

    def observe(self, losses: dict[str, float], record, ts: float | None, config_version: str) -> list[dict]:
        """One label's losses per version (the versions whose prediction it met); the decisions
        it makes, as published."""
        where = (record.topic, record.partition)
        covered = self.covered.get(where)
        if covered is not None:
            if record.offset < covered:
                return []  # already in the restored state
            del self.covered[where]
        self.next_offsets[where] = record.offset + 1
        for version, loss in losses.items():
            total = self.losses.get(version)
            if total is not None:
                total[0] += 1
                total[1] += loss
        found = []
        for (version, baseline), comparison in self.comparisons.items():
            new, base = losses.get(version), losses.get(baseline)
            if new is None and base is None:
                continue
            decision = comparison.update(new, base)
            if decision is not None:
                found.append(self._published(version, baseline, comparison, decision, record, ts, config_version))
        return found

    def _published(self, version: str, baseline: str, comparison: LossComparison, d: Decision, record,
                   ts: float | None, config_version: str) -> dict:
        return {
            "decision_id": decision_id(self.model, version, baseline, comparison.observations),
            "model": self.model,
            "version": version,
            "baseline": baseline,
            "decision": d.decision,
            "traffic": d.traffic,
            "loss_difference": {"estimate": d.estimate, "lower": d.lower, "upper": d.upper,
                                "confidence": 1.0 - comparison.error_rate, "margin": comparison.margin},
            "loss": {"version": d.loss_version, "baseline": d.loss_baseline},
            "labels": d.labels,
            "labels_version": d.labels_version,
            "labels_baseline": d.labels_baseline,
            "detected_at": {"ts": ts, "topic": record.topic, "partition": record.partition, "offset": record.offset},
            "config_version": config_version,
        }

    def mean_loss(self, version: str) -> float | None:
        """The mean loss of a version's labelled predictions so far (``None``: none yet)."""
        n, total = self.losses.get(version, (0, 0.0))
        return total / n if n else None

    # -- state --------------------------------------------------------------------------------
    def get_state(self) -> dict:
        return {"seen": list(self.seen), "losses": [[v, *self.losses[v]] for v in self.seen],
                "comparisons": [[v, b, c.get_state()] for (v, b), c in self.comparisons.items()],
                "next_offsets": [[t, p, o] for (t, p), o in self.next_offsets.items()]}

    def set_state(self, state: dict) -> None:
        """Restore from ``get_state``. The comparisons take this object's policy: a config
        changed between two runs applies to the comparisons still running. Labels of an input
        below the offsets the state covers are skipped by ``observe`` (a restart replays them)."""
        self.seen = list(state["seen"])
        self.losses = {v: [int(n), float(total)] for v, n, total in state["losses"]}
        self.comparisons = {}
        p = self.policy
        for version, baseline, saved in state["comparisons"]:
            comparison = LossComparison(p.margin, p.error_rate, p.min_labels, p.traffic)
            comparison.set_state(saved)
            self.comparisons[(version, baseline)] = comparison
        self.next_offsets = {(t, int(p_)): int(o) for t, p_, o in state["next_offsets"]}
        self.covered = dict(self.next_offsets)
