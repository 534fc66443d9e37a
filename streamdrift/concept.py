"""Concept drift: the model's error stream, and the predictions waiting for late labels.

When a label meets its prediction — in the same event, or later on the ``labels`` topic joined
by event ``id`` — the error goes to a monitor of its own (``kind: concept``): 0/1 for classes
(a score in [0, 1] against a 0/1 label is read at 0.5), the absolute error for numbers. That
monitor is calibrated on the model's own error rate in its reference, like every other stream.
"""

from __future__ import annotations

from collections import OrderedDict

#: The stream name of the error in alerts (``feature: "error"``, ``kind: "concept"``).
ERROR = "error"


def prediction_error(prediction, label) -> float:
    """The error of one prediction against its label.

    >>> prediction_error(0.83, 1), prediction_error(0.2, 1), prediction_error("cat", "dog"), prediction_error(3.0, 5.5)
    (0.0, 1.0, 1.0, 2.5)
    """
    numeric = (int, float)
    if isinstance(prediction, numeric) and not isinstance(prediction, bool) \
            and isinstance(label, numeric) and not isinstance(label, bool):
        if label in (0, 1) and 0.0 <= prediction <= 1.0:
            return float((prediction >= 0.5) != (label == 1))
        return abs(float(prediction) - float(label))
    return float(str(prediction).lower() != str(label).lower())


class PendingPredictions:
    """Predictions of one model waiting for their labels, oldest first, bounded in number and age.

    >>> pending = PendingPredictions(max_size=2, ttl_seconds=10)
    >>> pending.add("a", 0.9, None, 100.0, 7); pending.add("b", 0.1, None, 101.0, 8)
    >>> pending.add("c", 0.5, None, 102.0, 9)   # "a" is pushed out
    >>> pending.take("a"), pending.take("b")[0], pending.expired
    (None, 0.1, 1)
    >>> pending.expire(now=120.0), len(pending)
    (1, 0)

    Predictions of model versions (``model_version``) wait under their id and version: in a
    shadow deployment two versions predict for the same id, and one label (without a version)
    takes both.

    >>> pending.add("r1", 1.0, None, 200.0, 10, version="v1"); pending.add("r1", 0.0, None, 200.0, 11, version="v2")
    >>> [(version, entry[0]) for version, entry in pending.take_all("r1")], len(pending)
    ([('v1', 1.0), ('v2', 0.0)], 0)
    """

    def __init__(self, max_size: int, ttl_seconds: float):
        self.max_size = max_size
        self.ttl_seconds = ttl_seconds
        #: id (or (id, version)) -> (prediction, segment, ts, offset)
        self.items: OrderedDict[str | tuple[str, str], tuple] = OrderedDict()
        self.expired = 0
        #: id -> the versions whose predictions of it wait (an index of the versioned items).
        self._versions: dict[str, list[str]] = {}

    def __len__(self) -> int:
        return len(self.items)

    def add(self, event_id: str, prediction, segment: str | None, ts: float | None, offset: int,
            version: str | None = None) -> None:
        key = event_id if version is None else (event_id, version)
        if version is not None and key not in self.items:
            self._versions.setdefault(event_id, []).append(version)
        self.items[key] = (prediction, segment, ts, offset)
        self.items.move_to_end(key)
        while len(self.items) > self.max_size:
            self._forget(self.items.popitem(last=False)[0])
            self.expired += 1

    def take(self, event_id: str) -> tuple | None:
        return self.items.pop(event_id, None)

    def take_all(self, event_id: str, version: str | None = None) -> list[tuple[str | None, tuple]]:
        """The predictions a label of ``event_id`` is for, as ``(version, entry)``: of that
        ``version`` only, or (``None``) the unversioned one and every version's."""
        if version is not None:
            entry = self.items.pop((event_id, version), None)
            if entry is None:
                return []
            self._forget((event_id, version))
            return [(version, entry)]
        found = []
        entry = self.items.pop(event_id, None)
        if entry is not None:
            found.append((None, entry))
        for each in self._versions.pop(event_id, ()):
            found.append((each, self.items.pop((event_id, each))))
        return found

    def _forget(self, key) -> None:
        """Drop a versioned item's entry in the index (after it left ``items``)."""
        if type(key) is tuple:
            versions = self._versions.get(key[0])
            if versions is not None:
                versions.remove(key[1])
                if not versions:
                    del self._versions[key[0]]

    def expire(self, now: float | None) -> int:
        """Drop the predictions older than the time-to-live at event time ``now``; return how many.

        Called as records arrive (event time, in input order), never on a clock, so which
        labels join does not depend on batching or on when a replay runs."""
        if now is None or not self.ttl_seconds:
            return 0
        gone = 0
        while self.items:
            key, (_, _, ts, _) = next(iter(self.items.items()))
            if ts is None or now - ts <= self.ttl_seconds:
                break
            self.items.popitem(last=False)
            self._forget(key)
            gone += 1
        self.expired += gone
        return gone

    def get_state(self) -> dict:
        ids = list(self.items)
        return {"ids": ids, "entries": [list(self.items[i]) for i in ids], "expired": self.expired}

    def set_state(self, state: dict) -> None:
        # A versioned id was written as [id, version].
        keys = [tuple(i) if type(i) is list else i for i in state["ids"]]
        self.items = OrderedDict((i, tuple(e)) for i, e in zip(keys, state["entries"]))
        self.expired = int(state["expired"])
        self._versions = {}
        for key in keys:
            if type(key) is tuple:
                self._versions.setdefault(key[0], []).append(key[1])
