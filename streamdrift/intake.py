"""Intake: a batch of records turned into what the monitors take, one run of events per model and
then one run of values per stream, with each value's place in the batch (for alert positions and ids).

``route`` decodes the records one by one (rejections, the label join, idle restarts) into a
``Run`` per (model, segment); ``plain_runs`` does the same for a batch of plain events, as one
``PlainRun`` per model. ``columns_of`` turns a run of events into columns; a ``PlainRun`` gives
a features x events matrix."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count
from operator import attrgetter
from typing import TYPE_CHECKING, Callable

import numpy as np

from .concept import PendingPredictions, prediction_error
from .config import Limits
from .events import Event, LabelEvent, PlainBatch, Record, Rejected, decode, plain_batch
from .model_monitors import (CONCEPT, LABEL, LATE_LABEL, PREDICTION, ModelMonitors, _filled_streams, group_key,
                             value_type)
from .model_versions import ModelVersions

if TYPE_CHECKING:
    from .pipeline import Output

#: A monitored (model, segment), or (model, segment, version) for events with a ``model_version``
#: (``model_monitors.group_key``).
Key = tuple
#: The models being monitored, and the function that gives a (model, segment[, version]) its
#: monitors (made on first use, then in ``models``).
Models = dict[Key, ModelMonitors]
ModelFor = Callable[..., ModelMonitors]
#: The versions of each model (``model_version``), and the function that gives a model its own.
VersionsFor = Callable[[str], ModelVersions]
#: One label's losses for the version comparisons: ``(model, record, ts, {version: loss})``.
Losses = tuple[str, Record, "float | None", dict]


@dataclass
class Run:
    """What ``route`` hands one (model, segment) (or, as ``Routed``, every one of them), each in
    input order: its events; the errors of its predictions that met their label,
    ``(record, error, ts)``; and its late labels that met their prediction, ``(record, label, ts)``,
    for the label stream."""

    events: list[Event] = field(default_factory=list)
    errors: list[tuple[Record, float, float | None]] = field(default_factory=list)
    late_labels: list[tuple[Record, object, float | None]] = field(default_factory=list)


@dataclass
class Routed:
    """A batch routed by ``route``: the fields of ``Run``, per (model, segment) that has any."""

    events: dict[Key, list[Event]] = field(default_factory=dict)
    errors: dict[Key, list[tuple[Record, float, float | None]]] = field(default_factory=dict)
    late_labels: dict[Key, list[tuple[Record, object, float | None]]] = field(default_factory=dict)
    #: Labels that met predictions of model versions, in input order, for their comparisons.
    losses: list[Losses] = field(default_factory=list)

    def pop(self, key: Key) -> Run:
        """Take out what the batch had for ``key`` so far."""
        return Run(self.events.pop(key, []), self.errors.pop(key, []), self.late_labels.pop(key, []))


def route(records: list[Record], limits: Limits, models: Models, model_for: ModelFor,
          pending: dict[str, PendingPredictions], dirty_pending: set[str], out: "Output",
          restart: Callable[[Key, Run], None], versions: dict[str, ModelVersions] | None = None,
          versions_for: VersionsFor | None = None, catch_up: Callable[[Key, Run], None] | None = None) -> Routed:
    """Decode the records one by one into what each (model, segment) gets.

    On the way: rejections, label counts and expired predictions go to ``out``; a prediction
    without its label waits in ``pending`` (per model; the models whose waiting changed are added
    to ``dirty_pending``) and a late label takes it from there; a new (model, segment) beyond
    limits.max_models is rejected. A model idle for longer than limits.idle_seconds starts afresh:
    ``restart(key, run)`` is called with what the batch had for it so far and must retire it
    (take it out of ``models``); the events from there on go to a new one from ``model_for``.

    Events with a ``model_version`` are monitored per version (``group_key``); ``versions_for``
    registers each model's versions in ``versions``. A late label names the version of its
    prediction, or (without ``model_version``) is for every version's prediction of its ``id``;
    the losses of the versions it met go to ``Routed.losses``. A label for a version the model
    never had an event of is rejected. At the first event of a new version, ``catch_up(key, run)``
    is called with what the batch had so far for its baseline's (model, segment, version) and must
    monitor it: the new version's monitors may start from the baseline's reference as it is at
    that event, whatever the batching."""
    routed = Routed()
    groups, errors, late_labels = routed.events, routed.errors, routed.late_labels
    versions = {} if versions is None else versions
    for record in records:
        result = decode(record, limits)
        if isinstance(result, Rejected):
            out.rejected.append(result)
            continue
        if isinstance(result, LabelEvent):
            _join_label(result, record, models, pending, dirty_pending, versions, routed, out)
            continue
        version = result.version
        key = (result.model, result.segment) if version is None else (result.model, result.segment, version)
        if key not in models and len(models) >= limits.max_models:
            out.rejected.append(Rejected(record, f"limits.max_models = {limits.max_models} "
                                                 "(model, segment) pairs are already monitored"))
            continue
        if version is not None:  # first: a new version's monitors may start from its baseline's reference
            model_versions = versions_for(result.model)
            if model_versions.see(version) and catch_up is not None:
                baseline = model_versions.baseline_of(version)
                if baseline is not None:
                    before = group_key(result.model, result.segment, baseline)
                    if before in models and (before in groups or before in errors or before in late_labels):
                        catch_up(before, routed.pop(before))
        group = model_for(result.model, result.segment) if version is None else \
            model_for(result.model, result.segment, version)
        idle = limits.idle_seconds
        # Only a time the event states itself can restart a model: a message without ``ts``
        # (Kafka timestamp: the producer's clock, not event time) never does.
        if idle and result.ts is not None and result.ts_given:
            last = groups[key][-1].ts if groups.get(key) else group.last_ts
            if last is not None and result.ts - last > idle:
                # Idle for longer than idle_seconds: the model starts afresh at this event.
                # Decided on its own event times only, so it does not depend on batching.
                restart(key, routed.pop(key))
                group = model_for(result.model, result.segment) if version is None else \
                    model_for(result.model, result.segment, version)
        if group.started is None:
            group.started = result.ts
        groups.setdefault(key, []).append(result)
        if result.prediction is not None and result.id is not None:
            if result.label is not None:
                error = prediction_error(result.prediction, result.label)
                errors.setdefault(key, []).append((record, error, result.ts))
                if version is not None:
                    routed.losses.append((result.model, record, result.ts, {version: error}))
            else:
                waiting = pending.get(result.model)
                if waiting is None:
                    waiting = pending[result.model] = PendingPredictions(
                        limits.max_pending_predictions, limits.label_ttl_seconds)
                before = waiting.expired
                waiting.expire(result.ts)
                waiting.add(result.id, result.prediction, result.segment, result.ts, record.offset, version)
                out.predictions_expired += waiting.expired - before
                dirty_pending.add(result.model)
    return routed


def _join_label(label: LabelEvent, record: Record, models: Models, pending: dict[str, PendingPredictions],
                dirty_pending: set[str], versions: dict[str, ModelVersions], routed: Routed, out: "Output") -> None:
    """A late label meets the predictions of its ``id`` (of its version, or of every version):
    their errors, the late-label stream, the versions' losses; or it is counted unmatched, or
    rejected."""
    known_versions = versions.get(label.model)
    if label.version is not None and (known_versions is None or not known_versions.knows(label.version)):
        seen = known_versions.seen if known_versions is not None else []
        out.rejected.append(Rejected(record, f"model_version {label.version!r} of model {label.model!r} is unknown: "
                                             f"no feature event carried it (known: {', '.join(seen) or 'none'})"))
        return
    waiting = pending.get(label.model)
    hits = ()
    if waiting is not None:
        out.predictions_expired += waiting.expire(label.ts)
        if known_versions is None:  # the model never had a version: its predictions wait under their id alone
            hit = waiting.take(label.id)
            if hit is not None:
                hits = ((None, hit),)
        else:
            hits = waiting.take_all(label.id, label.version)
    if not hits:
        out.processed += 1
        out.labels_unmatched += 1
        return
    kind_of = value_type(label.label)
    met = []
    for version, (prediction, segment, _, _) in hits:
        group = models.get(group_key(label.model, segment, version))
        if group is None:
            continue  # the model was evicted meanwhile
        dirty_pending.add(label.model)
        known = group.types.setdefault(LATE_LABEL, kind_of)
        if known is not None and kind_of != known:
            out.predictions_expired += len(hits)  # its label cannot be used: the predictions stay unlabelled
            out.rejected.append(Rejected(record, f"label has always been {known}; got {kind_of} value "
                                                 f"{label.label!r}"))
            return
        met.append((group.key, version, prediction_error(prediction, label.label)))
    out.processed += 1
    if not met:
        return
    out.labels_joined += 1
    for key, _, error in met:
        routed.errors.setdefault(key, []).append((record, error, label.ts))
        routed.late_labels.setdefault(key, []).append((record, label.label, label.ts))
    if known_versions is not None:
        losses = {version: error for _, version, error in met if version is not None}
        if losses:
            routed.losses.append((label.model, record, label.ts, losses))


def plain_runs(records: list[Record], limits: Limits, models: Models, model_for: ModelFor,
               batch: PlainBatch | None = None) -> tuple[dict[tuple[str, None], PlainRun], list[Rejected]] | None:
    """The batch's events per model, as ``route`` would group them, when every event is plain
    (``events.plain_batch``, or ``batch`` if read already), no model is new beyond
    limits.max_models and none restarts after being idle: then nothing else in ``route``
    applies. ``None`` otherwise. With the runs, the messages ``decode`` rejects that the batch
    left out (``PlainBatch.rejected``)."""
    if batch is None:
        batch = plain_batch(records, limits)
    if batch is None or batch.others:
        return None
    names, codes = batch.names, batch.codes
    new = sum(1 for model in names if (model, None) not in models)
    if new and len(models) + new > limits.max_models:
        return None
    # Each model's positions in input order: a stable sort by model, in C.
    if batch.unread is None:
        by_model = np.argsort(codes, kind="stable")
    else:
        kept = np.delete(np.arange(len(codes)), batch.unread)
        codes = codes[kept]
        by_model = kept[np.argsort(codes, kind="stable")]
    firsts = np.concatenate(([0], np.cumsum(np.bincount(codes, minlength=len(names)))[:-1]))
    last = [models[(m, None)].last_ts if (m, None) in models else None for m in names]
    if restarts(last, batch.ts_values()[by_model], firsts, limits.idle_seconds):
        return None
    runs = {}
    bounds = firsts.tolist() + [len(by_model)]
    for model, a, b in zip(names, bounds, bounds[1:]):  # np.split's pieces, without its per-piece overhead
        where = by_model[a:b]
        group = model_for(model, None)
        runs[(model, None)] = PlainRun(records, batch, where)
        if group.started is None:
            group.started = batch.ts[where[0]]
    return runs, batch.rejected


def restarts(last: list[float | None], ts: np.ndarray, firsts: np.ndarray, idle: float) -> bool:
    """Whether an event comes more than ``idle`` seconds after the one before it of the same
    model (or after the model's last event), which makes ``route`` start the model afresh there.
    ``ts``: the times of each model's events in turn, in input order; model ``k``'s start at
    ``firsts[k]``, its last event before the batch at ``last[k]`` (``None``: none).

    >>> restarts([None, 100.0], np.array([0.0, 50.0, 120.0]), np.array([0, 2]), idle=60.0)
    False
    >>> restarts([None, 10.0], np.array([0.0, 50.0, 120.0]), np.array([0, 2]), idle=60.0)
    True
    """
    if not idle:
        return False
    before = np.array([np.nan if t is None else t for t in last])  # no last event: no gap
    gaps = np.empty_like(ts)
    gaps[:1] = np.nan
    np.subtract(ts[1:], ts[:-1], out=gaps[1:])
    gaps[firsts] = ts[firsts] - before
    # A NaN gap (a reader's NaN time) is no restart, as ``ts - last > idle`` is False for it:
    # ``fmax`` passes NaNs by (``nanmax``'s answer, without its Python-level copies).
    return bool(np.fmax.reduce(gaps, initial=-np.inf) > idle)


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

    __slots__ = ("records", "batch", "positions", "numeric", "categorical")

    def __init__(self, records: list[Record], batch: PlainBatch, positions: np.ndarray):
        self.records, self.batch, self.positions = records, batch, positions
        #: The features monitored as numbers (in the matrix) and as categories (columns), once
        #: the pipeline has told them apart by the model's types (``split``).
        self.numeric: tuple[str, ...] = batch.features
        self.categorical: tuple[str, ...] = ()

    def split(self, types: dict) -> None:
        """Tell the run's features apart by the model's ``types`` (``ModelMonitors.types``)."""
        names = self.batch.features
        self.numeric = tuple(n for n in names if types.get(("feature", n)) == "numeric")
        self.categorical = tuple(n for n in names if types.get(("feature", n)) == "categorical")

    def column(self, name: str) -> list:
        """A categorical feature's values over the run (``None`` = missing)."""
        column = self.batch.categories.get(name)
        if column is None:  # only nulls in this batch
            return [None] * len(self.positions)
        return list(map(column.__getitem__, self.positions.tolist()))

    def joint_columns(self, matrix: np.ndarray) -> dict:
        """The run's features for the multivariate monitor: ``matrix``'s rows (``matrix()``) and
        the categorical columns."""
        columns = dict(zip(self.numeric, matrix))
        for name in self.categorical:
            columns[name] = self.column(name)
        return columns

    def __len__(self) -> int:
        return len(self.positions)

    def events(self, limits) -> list[Event]:
        """The run decoded, for ``_monitor``: parsed again, which is rare (a new model, a value of
        another type...) and keeps ``decode`` the one place that makes events."""
        records = self.records
        return [decode(records[i], limits) for i in self.positions]

    def matrix(self) -> np.ndarray:
        """Numeric features (``numeric``) x events."""
        # The run's rows gathered, then turned: a copy of the run alone (a ``take`` across the
        # transposed batch copied the whole batch first, once per model).
        rows = self.batch.values.take(self.positions, axis=0)
        if len(self.numeric) != len(self.batch.features):
            index = {name: j for j, name in enumerate(self.batch.features)}
            rows = rows[:, [index[name] for name in self.numeric]]
        return np.ascontiguousarray(rows.T)

    def source(self):
        """``(record, ts)`` of the run's ``i``-th event, for ``_alerts``."""
        records, ts, positions = self.records, self.batch.ts, self.positions
        return lambda i: (records[positions[i]], ts[positions[i]])

    def last(self) -> tuple[Record, float]:
        return self.source()(len(self.positions) - 1)


