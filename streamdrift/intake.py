"""Intake: a batch of decoded events turned into what the monitors take, one run of values per
stream of a model, with each value's place in the batch (for alert positions and ids).

``DriftPipeline._route`` and ``_plain_runs`` (decode, label join, idle restarts, plain batches)
hand each model its events; this module turns those into columns (``columns_of``) or, for a
plain batch, a features x events matrix (``PlainRun``)."""

from __future__ import annotations

from itertools import count
from operator import attrgetter

import numpy as np

from .events import Event, PlainBatch, Record, decode
from .model_monitors import CONCEPT, LABEL, LATE_LABEL, PREDICTION, ModelMonitors, _filled_streams

def columns_of(group: "ModelMonitors", events: list[Event]) -> dict[tuple[str, str], tuple[int, list]]:
    """Every monitored stream of a run of events, as ``(first event, column)``: features, then
    prediction and label.

    A stream starts at the first event that carries a value (not null) for it; from then on an
    event with a null, or without it, counts as a missing value. This makes every stream's value
    positions depend on the event order only, never on how the events were batched, so alert ids
    are the same online and offline.
    """
    fast = _same_features(group, events)
    if fast is not None:
        return fast
    streams: dict[tuple[str, str], int] = {key: 0 for key in group.types if key[0] != CONCEPT and key != LATE_LABEL}
    known = {name for kind, name in streams if kind == "feature"}
    for i, event in enumerate(events):
        extra = event.features.keys() - known  # usually empty: one C-level set difference
        if extra:
            for name in extra:
                if event.features[name] is not None:
                    streams[("feature", name)] = i
                    known.add(name)
        if event.prediction is not None and (PREDICTION, PREDICTION) not in streams:
            streams[(PREDICTION, PREDICTION)] = i
        if event.label is not None and (LABEL, LABEL) not in streams:
            streams[(LABEL, LABEL)] = i
    columns = {}
    for (kind, name), start in streams.items():
        if kind == "feature":
            column = [e.features.get(name) for e in events[start:]] if start else [e.features.get(name) for e in events]
        else:
            column = [getattr(e, kind) for e in events[start:]]
        columns[(kind, name)] = (start, column)
    return columns


def _same_features(group: "ModelMonitors", events: list[Event]):
    """``columns_of`` for the common batch: every event has the same features in the same order,
    all of them already known, and no prediction or label. One transpose instead of a lookup per
    value; ``None`` when the batch is not like that."""
    if not events:
        return None
    names = tuple(events[0].features)
    if not _all_streams(group, names):
        return None  # a new feature, a known one absent, or a prediction/label stream to fill
    # C-level loops (map, list.count): this runs once per event of the hot path.
    n = len(events)
    if list(map(_PREDICTION_OF, events)).count(None) != n or list(map(_LABEL_OF, events)).count(None) != n:
        return None
    dicts = list(map(_FEATURES_OF, events))
    if list(map(tuple, dicts)).count(names) != n:
        return None
    return {("feature", name): (0, column) for name, column in zip(names, zip(*map(dict.values, dicts)))}


_PREDICTION_OF, _LABEL_OF, _FEATURES_OF = (attrgetter(a) for a in ("prediction", "label", "features"))


def _all_streams(group: "ModelMonitors", names: tuple) -> bool:
    """Whether the features ``names`` are every stream that a run of events fills: all known, and
    no other feature, no prediction or label stream."""
    types = group.types
    return bool(names) and all(("feature", name) in types for name in names) and len(names) == _filled_streams(types)


class Positions(dict):
    """Each record's position in its batch, by ``id(record)``: made at the first lookup, since
    most batches raise no alert.

    >>> records = [Record(b"{}"), Record(b"[]")]
    >>> Positions(records)[id(records[1])]
    1
    """

    def __init__(self, records: list[Record]):
        super().__init__()
        self.records = records

    def __missing__(self, key: int) -> int:
        if self.records is None:
            raise KeyError(key)
        self.update(zip(map(id, self.records), count()))
        self.records = None
        return self[key]


class PlainRun:
    """The events of one model in a batch of plain events (``events.plain_batch``): where they
    are in the batch. The common case, monitored without an ``Event`` per event."""

    __slots__ = ("records", "batch", "positions")

    def __init__(self, records: list[Record], batch: PlainBatch, positions: np.ndarray):
        self.records, self.batch, self.positions = records, batch, positions

    def __len__(self) -> int:
        return len(self.positions)

    def events(self, limits) -> list[Event]:
        """The run decoded, for ``_monitor``: parsed again, which is rare (a new model, a value of
        another type...) and keeps ``decode`` the one place that makes events."""
        records = self.records
        return [decode(records[i], limits) for i in self.positions]

    def matrix(self) -> np.ndarray:
        """Features x events."""
        return np.ascontiguousarray(self.batch.values[self.positions].T)

    def source(self):
        """``(record, ts)`` of the run's ``i``-th event, for ``_alerts``."""
        records, ts, positions = self.records, self.batch.ts, self.positions
        return lambda i: (records[positions[i]], ts[positions[i]])

    def last(self) -> tuple[Record, float]:
        return self.source()(len(self.positions) - 1)


