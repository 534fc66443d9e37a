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
    """

    def __init__(self, max_size: int, ttl_seconds: float):
        self.max_size = max_size
        self.ttl_seconds = ttl_seconds
        self.items: OrderedDict[str, tuple] = OrderedDict()  # id -> (prediction, segment, ts, offset)
        self.expired = 0

    def __len__(self) -> int:
        return len(self.items)

    def add(self, event_id: str, prediction, segment: str | None, ts: float | None, offset: int) -> None:
        self.items[event_id] = (prediction, segment, ts, offset)
        self.items.move_to_end(event_id)
        while len(self.items) > self.max_size:
            self.items.popitem(last=False)
            self.expired += 1

    def take(self, event_id: str) -> tuple | None:
        return self.items.pop(event_id, None)

    def expire(self, now: float | None) -> int:
        """Drop the predictions older than the time-to-live at event time ``now``; return how many.

        Called as records arrive (event time, in input order), never on a clock, so which
        labels join does not depend on batching or on when a replay runs."""
        if now is None or not self.ttl_seconds:
            return 0
        gone = 0
        while self.items:
            _, (_, _, ts, _) = next(iter(self.items.items()))
            if ts is None or now - ts <= self.ttl_seconds:
                break
            self.items.popitem(last=False)
            gone += 1
        self.expired += gone
        return gone

    def get_state(self) -> dict:
        ids = list(self.items)
        return {"ids": ids, "entries": [list(self.items[i]) for i in ids], "expired": self.expired}

    def set_state(self, state: dict) -> None:
        self.items = OrderedDict((i, tuple(e)) for i, e in zip(state["ids"], state["entries"]))
        self.expired = int(state["expired"])
