"""The pure heart of the processor: a batch of input records plus state in, alerts, retrain
requests and rejections out. No Kafka, no clocks, no I/O: ``streamdrift run`` and
``streamdrift replay --offline`` both call ``DriftPipeline.process``, which is why they publish
identical alerts for the same input order.

Read in one pass: ``process`` has the batch routed (``intake.py``: decode, label join, idle
restarts, plain batches) into one run of events per model, turns each run into columns, feeds
them to the model's monitors (``model_monitors.py``; numeric streams that start at the run's
first event together, by the fast path), and emits the alerts in input order. State records are
keyed by ``state_keys.StateKey``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from . import detectors
from .alerts import build_alert
from .config import Config
from .detectors import NumericMonitor
from .detectors.settings import BINARY_DETECTORS
from .detectors.state import pack, unpack
from .detectors.together import update_together
from .detectors.across import Pools, update_groups_together
from .concept import ERROR, PendingPredictions
from .events import (MIN_PLAIN_PIECE, Event, Piece, PlainBatch, Record, Rejected, decode,  # noqa: F401  (decode: tests patch it here)
                     plain_batch, plain_pieces)
from .intake import PlainRun, Positions, Run, columns_of, plain_runs, route
from .model_monitors import (CONCEPT, CONCEPT_DETECTORS, JOINT, LABEL, LATE_LABEL, PREDICTION, ModelMonitors,  # noqa: F401
                             _bad_feature_name, _feature_streams, _remember_references, _sealed, group_key, packed,
                             value_type, version_of)
from .model_versions import ModelVersions
from .retrain import RetrainTracker
from .state_keys import PENDING, REFERENCE, StateKey, StateKeyError, is_reference_record

#: Models that must have reached an event time before the eviction clock moves there.
CLOCK_QUORUM = 3
#: Parts of state-topic keys (the codec is ``state_keys.StateKey``); kept here for the tests and tools
#: that name them.
PENDING_KEY, REFERENCE_KEY = PENDING, REFERENCE


@dataclass
class Output:
    """What one batch produced."""

    alerts: list[dict] = field(default_factory=list)
    retrain_requests: list[dict] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    processed: int = 0
    #: Late labels that met their prediction, that found none, and predictions that expired
    #: unlabelled (time-to-live or the pending limit), in this batch.
    labels_joined: int = 0
    labels_unmatched: int = 0
    predictions_expired: int = 0
    #: Things an operator should know that are not errors in an event (logged as warnings).
    notices: list[str] = field(default_factory=list)
    #: Detections smaller than their stream's ``min_effect``: alerts as they would have been
    #: (plus ``effect_size`` and ``min_effect``), in input order; not published, no retrain.
    below_effect_floor: list[dict] = field(default_factory=list)
    #: Rollback and promote decisions of new model versions, in input order (``model-decisions``).
    decisions: list[dict] = field(default_factory=list)
    #: Each label that met predictions of model versions, in input order: ``(model, ts, {version:
    #: loss}, ids of the decisions it made)`` (for the replay report and the metrics).
    version_losses: list[tuple] = field(default_factory=list)

    def extend(self, other: "Output") -> None:
        """Add what a later batch produced (its lists after these, its counts to these)."""
        for f in fields(self):
            mine = getattr(self, f.name)
            if isinstance(mine, list):
                mine.extend(getattr(other, f.name))
            else:
                setattr(self, f.name, mine + getattr(other, f.name))


def _in_input_order(rejected: list[Rejected], order: Positions) -> None:
    """Sort a batch's rejections by their messages' positions in it (in place), however the batch
    was routed or cut."""
    if len(rejected) > 1:
        rejected.sort(key=lambda r: order[id(r.record)])


class DriftPipeline:
    """Decode, validate, route and monitor batches of feature events.

    >>> import orjson
    >>> pipeline = DriftPipeline(Config())
    >>> records = [Record(orjson.dumps({"model": "m", "features": {"x": float(i % 7)}}), offset=i)
    ...            for i in range(100)] + [Record(b"not json", offset=100)]
    >>> out = pipeline.process(records)
    >>> out.processed, len(out.rejected), out.rejected[0].reason[:14]
    (100, 1, 'not valid JSON')
    """

    def __init__(self, config: Config, references: dict | None = None):
        self.config = config
        self.version = config.version
        #: Supplied reference data: {model or "*": {feature: ndarray | {category: count}}}.
        self.references = references or {}
        #: Keyed by ``group_key``: (model, segment), or (model, segment, version) for events with a
        #: ``model_version``.
        self.models: dict[tuple, ModelMonitors] = {}
        self.evicted = 0
        self.latest_ts: float | None = None
        #: ``group_key``s of the models changed since the last checkpoint.
        self.dirty: set[tuple] = set()
        #: State-topic keys of evicted models, to be written as tombstones with the next checkpoint.
        self.evicted_keys: list[str] = []
        #: Predictions waiting for late labels, per model, and the models whose waiting changed.
        self.pending: dict[str, PendingPredictions] = {}
        self.dirty_pending: set[str] = set()
        #: Each model's versions and their comparisons (events with ``model_version``), and the
        #: models whose versions changed.
        self.versions: dict[str, ModelVersions] = {}
        self.dirty_versions: set[str] = set()
        #: Alerts of the batch being processed, emitted in order at its end.
        self._found: list[tuple[tuple, dict, RetrainTracker]] = []
        #: Detections of the batch below their stream's effect floor (order key, alert).
        self._below_floor: list[tuple[tuple, dict]] = []
        #: What the cross-model path keeps from batch to batch (``detectors.across.Pools``).
        self._pools = Pools()

    def _model(self, model: str, segment: str | None, version: str | None = None) -> ModelMonitors:
        key = group_key(model, segment, version)
        found = self.models.get(key)
        if found is None:
            # A model version's own training data (``--reference`` rows with a model_version), else the model's.
            ref = self.references.get((model, version), self.references.get(("*", version))) \
                if version is not None else None
            if ref is None:
                ref = self.references.get(model, self.references.get("*"))
                if version is not None:
                    ref = {**(ref or {}), **self._baseline_reference(model, segment, version)}
            found = self.models[key] = ModelMonitors(model, segment, self.config, ref, version)
        return found

    def _baseline_reference(self, model: str, segment: str | None, version: str) -> dict:
        """A new version's reference from its baseline's monitors (``[versions] reference =
        "baseline"``): each numeric feature, prediction and label stream's reference values
        (missing ones as NaN), as the baseline's monitors hold them now. Categorical streams, the
        error stream and the multivariate monitor warm up on the version's own events."""
        versions = self.versions.get(model)
        if versions is None or self.config.version_policy_for(model).reference != "baseline":
            return {}
        baseline = versions.baseline_of(version)
        group = self.models.get(group_key(model, segment, baseline)) if baseline is not None else None
        if group is None:
            return {}
        found = {}
        for (kind, name), monitor in group.monitors.items():
            reference = getattr(monitor, "reference", None) if monitor.numeric else None
            if reference is None or kind == CONCEPT or (kind, name) == LATE_LABEL:
                continue
            values = np.concatenate([reference.values, np.full(monitor.reference_missing, np.nan)])
            found[name if kind == "feature" else f"{kind}:{name}"] = values
        return found

    def _versions_for(self, model: str) -> ModelVersions:
        """The versions of ``model`` (made on its first event with a ``model_version``)."""
        found = self.versions.get(model)
        if found is None:
            found = self.versions[model] = ModelVersions(model, self.config.version_policy_for(model))
        self.dirty_versions.add(model)
        return found

    def process(self, records: list[Record]) -> Output:
        """Monitor a batch of records: what it produced. A batch that is not plain as a whole but
        has long plain stretches (``events.plain_pieces``: a malformed message now and then) is
        processed stretch by stretch, each on its own path; the results are the whole batch's."""
        return self._process(records, cut=True)

    def _process_pieces(self, records: list[Record], plan: tuple[list[Rejected], list[Piece]]) -> Output:
        """``process`` of a batch made into plain stretches (``_plain_pieces``)."""
        rejected, pieces = plan
        out = Output()
        for piece, batch in pieces:
            out.extend(self._process(piece, batch=batch))
        if rejected:
            out.rejected += rejected
            _in_input_order(out.rejected, Positions(records))
        return out

    def _plain_pieces(self, records: list[Record], batch: PlainBatch | None) -> tuple[list[Rejected], list[Piece]] | None:
        """``events.plain_pieces`` of a batch that is not plain as a whole (a seam the tests turn off)."""
        return plain_pieces(records, self.config.limits, batch)

    def _process(self, records: list[Record], cut: bool = False, batch: PlainBatch | None = None) -> Output:
        """``process``; ``batch``: the records' plain batch if read already (``plain_pieces``)."""
        out = Output()
        self._found, self._below_floor = [], []
        self._plain_updates: list[tuple] = []  # _monitor_plain's, for _update_plain
        order = Positions(records)
        if batch is None:
            batch = plain_batch(records, self.config.limits, others=cut, refuse=self._refused_whole)
        plain = self._plain_runs(records, batch)
        if plain is None and cut and len(records) >= 2 * MIN_PLAIN_PIECE:
            plan = self._plain_pieces(records, batch)
            if plan is not None:
                return self._process_pieces(records, plan)
        ordered = 0  # how many of out.rejected are in input order, with none after them
        if plain is not None:
            (groups, rejected), errors, late_labels = plain, {}, {}
            out.rejected.extend(rejected)  # malformed messages the plain batch left out
            ordered = len(rejected)  # in input order: the plain batch read its messages in turn
        else:
            routed = route(records, self.config.limits, self.models, self._model, self.pending, self.dirty_pending,
                           out, lambda key, run: self._restart(key, run, out, order), self.versions,
                           self._versions_for, lambda key, run: self._monitor_run(key, run, out, order))
            groups, errors, late_labels = routed.events, routed.errors, routed.late_labels
            self._compare_versions(routed.losses, out)
        for key in dict.fromkeys([*groups, *errors]):
            group = self.models[key]
            events = groups.get(key, [])
            if type(events) is PlainRun:
                self._monitor_plain(group, events, out, order)
            else:
                self._monitor(group, events, out, errors.get(key, []), order, late_labels.get(key, []))
            if not group.types and group.last_ts is None and group.partition is None:
                del self.models[key]  # only rejected events: a hostile producer takes no model slot
        self._update_plain(order)
        if len(out.rejected) != ordered:  # (a plain batch's own rejections need no sorting, nor its positions)
            _in_input_order(out.rejected, order)
        self._emit(out)
        self._advance_clock(groups)
        self._evict_idle()
        return out

    def _refused_whole(self, events: list, span: tuple[float, float] | None) -> list[Rejected | None]:
        """``plain_batch``'s ``refuse``: the rejection of each of a batch's valid events that are
        not plain (``events``; ``span``: the earliest and latest time of its plain events) that
        the routed path would reject whole wherever it stands in the batch, with nothing else
        following from it; else ``None``. A refused event is left out of the plain batch like a
        malformed message, instead of cutting the batch into pieces around it (a producer that
        sends a string for a numeric feature now and then would otherwise cut every batch).

        So only a feature event of a model monitored already (no prediction, label or version),
        every feature of it known and typed (a value's rejection then depends on the value
        alone), that ``_valid_columns`` rejects; and only if no model can restart or be evicted
        in this batch: every time in it that can count (the plain events', the others' but those
        refused without a time of their own), the models' last ones and the eviction clock lie
        within ``limits.idle_seconds`` of each other. Else none is refused."""
        refused = [self._rejected_alone(event) for event in events]
        idle = self.config.limits.idle_seconds
        if not idle or not any(refused):
            return refused
        times = list(span or ()) + [event.ts for event, no in zip(events, refused)
                                    if event.ts is not None and (no is None or event.ts_given)]
        if self.latest_ts is not None:
            times.append(self.latest_ts)
        for event, no in zip(events, refused):
            if no is not None:
                last = self.models[(event.model, event.segment)].last_ts
                if last is None:
                    return [None] * len(events)
                times.append(last)
        if max(times) - min(times) > idle:
            return [None] * len(events)
        return refused

    def _rejected_alone(self, event) -> Rejected | None:
        """``_refused_whole`` of one event, times aside."""
        if type(event) is not Event or event.version is not None or event.prediction is not None \
                or event.label is not None:
            return None
        group = self.models.get((event.model, event.segment))
        if group is None or group.started is None or not group.types \
                or not all(("feature", name) in group.types for name in event.features):
            return None
        scratch = Output()
        _, _, kept = self._valid_columns(group, [event], scratch)
        return scratch.rejected[0] if not kept else None

    def _compare_versions(self, losses, out: Output) -> None:
        """Feed each label's losses per version to its model's comparisons; their decisions."""
        for model, record, ts, by_version in losses:
            versions = self.versions.get(model)
            if versions is None:
                continue
            decisions = versions.observe(by_version, record, ts, self.version)
            out.decisions.extend(decisions)
            out.version_losses.append((model, ts, by_version, [d["decision_id"] for d in decisions]))
            self.dirty_versions.add(model)

    def _plain_runs(self, records: list[Record],
                    batch: PlainBatch | None) -> tuple[dict[tuple[str, None], PlainRun], list[Rejected]] | None:
        """``intake.plain_runs`` of this pipeline's models (a seam the tests turn off)."""
        return plain_runs(records, self.config.limits, self.models, self._model, batch) if batch is not None else None

    def _restart(self, key: tuple, run: Run, out: Output, order: dict[int, int]) -> None:
        """A model idle for longer than limits.idle_seconds starts afresh: the part of the batch
        it had before (``run``) is monitored first, then it is retired."""
        self._monitor_run(key, run, out, order)
        self._retire(key)

    def _monitor_run(self, key: tuple, run: Run, out: Output, order: dict[int, int]) -> None:
        """Monitor part of a batch of one (model, segment[, version]) now, before the rest of the
        batch is routed."""
        if run.events or run.errors:
            self._monitor(self.models[key], run.events, out, run.errors, order, run.late_labels)

    def _monitor_plain(self, group: ModelMonitors, run: PlainRun, out: Output, order: dict[int, int]) -> None:
        """``_monitor`` of a plain run: the usual batch (its known numeric features) is one matrix
        straight from the parsed values; any other run is decoded into events for ``_monitor``."""
        limits = self.config.limits
        batch = run.batch
        names = batch.features
        if batch.categories:
            plain = group.takes_plain(names, limits, frozenset(batch.numeric), frozenset(batch.categories))
        else:
            plain = group.takes_plain(names, limits) or \
                (group.adopt_plain(names, frozenset(batch.numeric), limits,
                                   not np.isnan(batch.values[run.positions[0]]).any())
                 and group.takes_plain(names, limits))
        if not plain:
            self._monitor(group, run.events(limits), out, [], order)
            return
        group.mark_changed(_feature_streams(names))
        out.processed += len(run)
        if batch.categories:
            run.split(group.types)
            found = []
            for name in run.categorical:  # each on its own, as in ``_monitor``
                monitor = group.monitors[("feature", name)]
                start = monitor.seen
                detections = monitor.update(run.column(name))
                if detections:
                    found.extend(self._alerts(group, "feature", name, detections, start, run.source(), order))
            if not run.numeric:  # nothing for the numeric update: the run ends here
                if group.joint is not None:
                    found.extend(self._monitor_jointly(group, run.joint_columns(np.empty((0, len(run)))),
                                                       run.source(), order))
                self._finish(group, found, *run.last())
                return
            self._finish(group, found)  # its position moves with the numeric update (``_update_plain``)
        streams = _feature_streams(run.numeric)
        self._plain_updates.append((group, streams, run.matrix(), run))

    def _update_plain(self, order: dict[int, int]) -> None:
        """The numeric updates of the batch's plain runs (``_monitor_plain``), every model's at
        once (``update_groups_together``), then each run's alerts, multivariate update and
        ``_finish``. Models are independent and alerts are sorted by input order (``_emit``), so
        updating them after the loop changes nothing else."""
        updates, self._plain_updates = self._plain_updates, []
        if not updates:
            return
        monitors = [group.members(streams) for group, streams, _, _ in updates]
        results = update_groups_together([(members, matrix, group.fast_path)
                                          for members, (group, _, matrix, _) in zip(monitors, updates)], self._pools)
        for (group, streams, matrix, run), members, detections in zip(updates, monitors, results):
            source = run.source()
            found = self._numeric_alerts(group, streams, members, detections, matrix.shape[1], source, order)
            if group.joint is not None:
                found.extend(self._monitor_jointly(group, run.joint_columns(matrix), source, order))
            self._finish(group, found, *run.last())

    def _emit(self, out: Output) -> None:
        """Alerts in input order (of the events that raised them; then kind, stream and detector),
        each followed by the retrain request it completes. This order depends on the input order
        only, never on batching or on how models are spread over processes."""
        found, self._found = self._found, []
        found.sort(key=lambda item: item[0])
        for _, alert, tracker in found:
            out.alerts.append(alert)
            request = tracker.observe(alert)
            if request is not None:
                out.retrain_requests.append(request)
        below, self._below_floor = self._below_floor, []
        below.sort(key=lambda item: item[0])
        out.below_effect_floor.extend(alert for _, alert in below)

    def _valid_columns(self, group: ModelMonitors, events: list[Event], out: Output):
        """Columns of the events whose every value is usable; the others are rejected."""
        limits = self.config.limits
        while True:
            columns = columns_of(group, events)
            bad: dict[int, str] = {}
            types = {}
            for (kind, name), (start, column) in columns.items():
                if kind == "feature" and _bad_feature_name(name, limits):
                    for i in range(start, len(events)):
                        if name in events[i].features:
                            bad.setdefault(i, f"a feature name is longer than limits.max_string_length = "
                                              f"{limits.max_string_length} or contains the control character U+001F")
                    continue
                types[(kind, name)], problems = group.check_column(kind, name, column, limits)
                for i, reason in problems.items():
                    bad.setdefault(start + i, reason)
            # A model may not grow more streams than max_features (each one is a monitor).
            new = [key for key in columns if key not in group.types and key[0] == "feature"]
            room = limits.max_features - sum(1 for key in group.types if key[0] == "feature")
            for kind, name in new[max(0, room):]:
                start, column = columns[(kind, name)]
                for i, value in enumerate(column):
                    if value is not None:
                        bad.setdefault(start + i, f"feature {name!r} would be more than limits.max_features = "
                                                  f"{limits.max_features} distinct features for model {group.model!r}")
            if not bad:
                return columns, types, events
            for i in sorted(bad):
                out.rejected.append(Rejected(events[i].record, bad[i]))
            events = [e for i, e in enumerate(events) if i not in bad]
            if not events:
                return {}, {}, events

    def _monitor(self, group: ModelMonitors, events: list[Event], out: Output,
                 errors: list[tuple[Record, float, float | None]], order: dict[int, int],
                 late: list[tuple[Record, object, float | None]] = ()) -> None:
        rejected_before = len(out.rejected)
        columns, types, events = self._valid_columns(group, events, out)
        out.processed += len(events)
        if len(out.rejected) > rejected_before and errors:
            dropped = {id(r.record) for r in out.rejected[rejected_before:]}
            errors = [e for e in errors if id(e[0]) not in dropped]
        found: list[tuple[int, str, str, dict]] = []
        #: Numeric streams present since the first event: one matrix, one vectorised update.
        together: list[tuple[str, str, NumericMonitor, list]] = []
        if errors:
            found.extend(self._monitor_errors(group, errors, order, out))
        if late:
            found.extend(self._monitor_late_labels(group, late, order))
        for (kind, name), (first, column) in columns.items():
            type_ = types.get((kind, name))
            if type_ is None:
                continue  # only nulls so far: the type is not known yet, nothing to watch
            group.types[(kind, name)] = type_
            monitor = group.monitor(kind, name)
            skip = self._replayed(group, (kind, name), events, first)
            if skip:
                first += skip
                column = column[skip:]
                if not column:
                    continue
            group.dirty.add((kind, name))
            if group.goes_together((kind, name), first):
                together.append((kind, name, monitor, column))  # updated below, all at once
                continue
            if type_ == "numeric":
                column = np.array(column, dtype=np.float64)  # None becomes NaN: missing
            start = monitor.seen
            detections = monitor.update(column)
            if detections:
                found.extend(self._alerts(group, kind, name, detections, start, self._events_from(events, first),
                                          order))
        if together:
            matrix = np.array([column for *_, column in together], dtype=np.float64)
            found.extend(self._update_together(group, [(kind, name) for kind, name, _, _ in together], matrix,
                                               self._events_from(events, 0), order))
        if group.joint is not None:
            skip = self._replayed(group, JOINT, events, 0)
            if skip < len(events):
                joint = self._joint_columns(group, columns, events)
                found.extend(self._monitor_jointly(group, {name: c[skip:] for name, c in joint.items()} if skip else joint,
                                                   self._events_from(events, skip), order))
        if events:
            self._finish(group, found, events[-1].record, events[-1].ts)
        else:
            self._finish(group, found)

    @staticmethod
    def _joint_columns(group: ModelMonitors, columns: dict, events: list[Event]) -> dict:
        """The run's features, each a column over all its events (a stream that starts later is
        missing before), for the multivariate monitor."""
        n = len(events)
        out = {}
        for (kind, name), (first, column) in columns.items():
            type_ = group.types.get((kind, name))
            if kind != "feature" or type_ is None:
                continue
            if type_ == "numeric":
                values = np.full(n, np.nan)
                values[first:] = np.array(column, dtype=np.float64)
            else:
                values = [None] * first + list(column)
            out[name] = values
        return out

    @staticmethod
    def _replayed(group: ModelMonitors, stream: tuple[str, str], events: list[Event], first: int) -> int:
        """After a restore: how many of the events from ``first`` on the stream's checkpoint
        already holds (they are skipped for it); once an event lies beyond, the mark is dropped."""
        covered = group.covered.get(stream)
        if covered is None:
            return 0
        skip = 0
        while first + skip < len(events) and events[first + skip].record.offset < covered:
            skip += 1
        if first + skip < len(events):
            del group.covered[stream]
        return skip

    def _monitor_jointly(self, group: ModelMonitors, columns: dict, source,
                         order: dict[int, int]) -> list[tuple[int, str, str, dict]]:
        """Feed the model's multivariate monitor one run (``columns``: feature -> values over the
        run's events; ``source(i)``: where its ``i``-th event is)."""
        start, kinds = self._joint_input(group, columns)
        return self._alerts(group, *JOINT, group.joint.update(columns, kinds), start, source, order)

    @staticmethod
    def _joint_input(group: ModelMonitors, columns: dict) -> tuple[int, dict]:
        """What the model's multivariate monitor is given with ``columns``: it is marked changed,
        and this returns where its update starts and the columns' feature types."""
        group.dirty.add(JOINT)
        return group.joint.seen, {name: group.types[("feature", name)] for name in columns}

    def _update_together(self, group: ModelMonitors, streams: list[tuple[str, str]], matrix: np.ndarray, source,
                         order: dict[int, int]) -> list[tuple[int, str, str, dict]]:
        """One vectorised update of numeric streams whose values all start at the run's first
        event (row ``k`` of ``matrix`` feeds ``streams[k]``), and their alerts."""
        monitors = list(map(group.monitors.__getitem__, streams))
        return self._numeric_alerts(group, streams, monitors, update_together(monitors, matrix, group.fast_path),
                                    matrix.shape[1], source, order)

    def _numeric_alerts(self, group: ModelMonitors, streams: list[tuple[str, str]], monitors: list, detections: list,
                        n: int, source, order: dict[int, int]) -> list[tuple[int, str, str, dict]]:
        """The alerts of a vectorised update of ``n`` values of each of ``streams``
        (``detections``: each monitor's)."""
        found = []
        if not any(detections):  # the usual batch: no stream detected anything
            return found
        for (kind, name), monitor, found_here in zip(streams, monitors, detections):
            if found_here:  # an update adds each of its values to ``seen``: this one started n before
                found.extend(self._alerts(group, kind, name, found_here, monitor.seen - n, source, order))
        return found

    def _finish(self, group: ModelMonitors, found: list[tuple[int, str, str, dict]], last: Record | None = None,
                last_ts: float | None = None) -> None:
        """Keep a run's alerts for ``_emit`` and move the model's input position to after its
        ``last`` record (event time ``last_ts``)."""
        for position, kind, name, alert in found:
            self._found.append(((position, kind, name, alert["detector"]), alert, group.tracker))
        if last is not None:
            group.partition = last.partition
            group.next_offset = last.offset + 1
            self.dirty.add(group.key)
        if last_ts is not None:
            group.last_ts = last_ts

    def _alerts(self, group: ModelMonitors, kind: str, name: str, detections, start: int, source,
                order: dict[int, int]) -> list[tuple[int, str, str, dict]]:
        """Alerts of one stream's detections: ``start`` is the monitor's value count before the
        update, ``source(i)`` the ``(record, ts)`` of the update's ``i``-th value. A detection
        smaller than the stream's ``min_effect`` is kept aside for ``Output.below_effect_floor``
        instead (the monitor has re-armed as after any detection)."""
        found = []
        floor = 0.0 if (kind, name) == JOINT else group.monitors[(kind, name)].settings.min_effect
        for detection in detections:
            record, ts = source(detection.index - start)
            alert = build_alert(group.model, group.segment, name, kind, detection, ts, record, self.version,
                                group.started, group.version)
            if kind == CONCEPT:
                alert["kind"] = CONCEPT  # a missing-rate detection on the error stream is a concept alert too
                alert["effect"]["error_before"] = detection.reference.get("mean")
                alert["effect"]["error_after"] = detection.window.get("mean")
            size = detection.effect_size() if floor else None
            if size is not None and size < floor:
                alert["effect_size"], alert["min_effect"] = size, floor
                self._below_floor.append(((order[id(record)], kind, name, detection.detector), alert))
                continue
            found.append((order[id(record)], kind, name, alert))
        return found

    @staticmethod
    def _events_from(events: list[Event], first: int):
        """``source`` for ``_alerts`` of a stream whose first value in this batch is ``events[first]``."""
        return lambda i: (events[first + i].record, events[first + i].ts)

    def _monitor_late_labels(self, group: ModelMonitors, late, order) -> list[tuple[int, str, str, dict]]:
        """Feed the late-label stream of one (model, segment) (its type is fixed on arrival)."""
        monitor = group.monitor(*LATE_LABEL)
        group.dirty.add(LATE_LABEL)
        values = [label for _, label, _ in late]
        column = np.array(values, dtype=np.float64) if group.types[LATE_LABEL] == "numeric" else values
        start = monitor.seen
        return self._alerts(group, LABEL, LATE_LABEL[1], monitor.update(column), start,
                            lambda i: (late[i][0], late[i][2]), order)

    def _monitor_errors(self, group: ModelMonitors, errors, order, out: Output) -> list[tuple[int, str, str, dict]]:
        """Feed the error stream of one (model, segment); concept alerts carry the error before
        (the reference's) and after (the window's)."""
        group.types[(CONCEPT, ERROR)] = "numeric"
        monitor = group.monitor(CONCEPT, ERROR)
        group.dirty.add((CONCEPT, ERROR))
        start = monitor.seen
        values = np.array([e for _, e, _ in errors], dtype=np.float64)
        try:
            detections = monitor.update(values)
        except ValueError as exc:
            # ddm / hddm_a were named for a model whose errors are not 0/1 (a regression model):
            # its error stream keeps the other detectors; the operator is told once, not per event.
            kept = tuple(d for d in monitor.active if d not in BINARY_DETECTORS) or CONCEPT_DETECTORS
            monitor = NumericMonitor(replace(monitor.settings, detectors=kept))
            group.put((CONCEPT, ERROR), monitor)
            out.notices.append(f"model {group.model!r}: {exc}; its concept:error stream is watched by "
                               f"{', '.join(kept)} instead")
            start = monitor.seen
            detections = monitor.update(values)
        return self._alerts(group, CONCEPT, ERROR, detections, start, lambda i: (errors[i][0], errors[i][2]), order)

    def _retire(self, key: tuple) -> None:
        """Drop a (model, segment): tombstones for the state topic, so a restore does not bring
        it back."""
        group = self.models.pop(key)
        self.evicted_keys.extend(group.state_keys())
        self.dirty.discard(key)
        self.evicted += 1

    def _advance_clock(self, groups: dict) -> None:
        """Event time as the eviction clock sees it: the latest time that at least
        ``CLOCK_QUORUM`` models have reached, so that a stray event from the far future (a broken
        producer clock) cannot age every other model out."""
        if not groups:
            return
        times = [g.last_ts for g in self.models.values() if g.last_ts is not None]
        if len(times) >= CLOCK_QUORUM:
            reached = float(np.partition(times, len(times) - CLOCK_QUORUM)[len(times) - CLOCK_QUORUM])
            self.latest_ts = reached if self.latest_ts is None else max(self.latest_ts, reached)

    def _evict_idle(self) -> None:
        idle = self.config.limits.idle_seconds
        if not idle or self.latest_ts is None:
            return
        stale = [k for k, g in self.models.items() if g.last_ts is not None and self.latest_ts - g.last_ts > idle]
        for key in stale:
            self._retire(key)
        if stale:
            alive = {key[0] for key in self.models}
            for model in [m for m in self.pending if m not in alive]:
                del self.pending[model]
            for model in [m for m in self.versions if m not in alive]:
                del self.versions[model]

    # -- state ------------------------------------------------------------------------------
    def changed_models(self) -> list[tuple]:
        """The models changed since the last checkpoint, in the order a checkpoint writes them
        (a periodic checkpoint taken a slice at a time names its slices from this list)."""
        return sorted(self.dirty, key=_checkpoint_order)

    def checkpoint(self, partitions=None, deferred: bool = False, models: list[tuple] | None = None,
                   others: bool = True) -> list[tuple[str, object]]:
        """State records of the models changed since the last checkpoint (of ``partitions`` only,
        when given), to be written to the compacted state topic. ``models``: of those, only
        these (keys of ``changed_models``); ``others``: with the rest of the state (evicted
        models' tombstones, waiting predictions, model versions).

        ``deferred``: each value is a function that packs it (see ``packed``), on a frozen copy
        of the state taken now: the state is captured between two batches (a consistent cut)
        for a fraction of what encoding it costs, and encoded while the next batches are
        processed, with the bytes it would have had now.

        >>> import orjson
        >>> running, twin = DriftPipeline(Config()), DriftPipeline(Config())
        >>> batch = lambda lo, hi: [Record(orjson.dumps({"model": "m", "features": {"x": i % 7}}), offset=i)
        ...                         for i in range(lo, hi)]
        >>> _ = running.process(batch(0, 6000)), twin.process(batch(0, 6000))
        >>> later, now = running.checkpoint(deferred=True), twin.checkpoint()
        >>> _ = running.process(batch(6000, 6500))             # the state moves on before packing
        >>> [(key, packed(value)) for key, value in later] == now
        True
        """
        seal = _sealed if deferred else pack
        records: list[tuple[str, object]] = []
        if partitions is None and others:
            records.extend((key, None) for key in self.evicted_keys)
            self.evicted_keys = []
        for key in self.changed_models() if models is None else [key for key in models if key in self.dirty]:
            group = self.models.get(key)
            if group is None:
                self.dirty.discard(key)
                continue
            if partitions is not None and group.partition not in partitions:
                continue
            records.extend(group.checkpoint_records(deferred=deferred))
            self.dirty.discard(key)
        if not others:
            return records
        for model in sorted(self.dirty_pending):
            partition = self._partition_of(model)
            if partition is None:
                self.dirty_pending.discard(model)
                continue
            if partitions is not None and partition not in partitions:
                continue
            pending = self.pending.get(model)
            if pending is not None:
                records.append((StateKey.pending(model).format(), seal({"partition": partition, "offset": None,
                                                                       "pending": pending.get_state()})))
            self.dirty_pending.discard(model)
        for model in sorted(self.dirty_versions):
            partition = self._partition_of(model)
            if partition is None:
                self.dirty_versions.discard(model)
                continue
            if partitions is not None and partition not in partitions:
                continue
            versions = self.versions.get(model)
            if versions is not None:
                records.append((StateKey.versions(model).format(), seal({"partition": partition, "offset": None,
                                                                        "versions": versions.get_state()})))
            self.dirty_versions.discard(model)
        return records

    def _partition_of(self, model: str) -> int | None:
        """The input partition of a model's events (that of any of its monitored groups)."""
        return next((g.partition for key, g in self.models.items() if key[0] == model and g.partition is not None),
                    None)

    def restore(self, records: list[tuple[str, bytes]]) -> int:
        """Rebuild models from their latest checkpoint records (references first, then models,
        then their monitors). Returns how many monitors were restored."""
        monitors = 0
        references: dict[tuple, dict[str, np.ndarray]] = {}  # (model, segment, kind, name) -> {tag: values}
        # References first (their monitors need them), then models, then the rest.
        order = {"reference": 0, "model": 1, "pending": 1, "versions": 1, "monitor": 2}
        parsed = []
        for key, value in records:
            if value is None:  # a tombstone: that state was dropped (evicted model)
                continue
            try:
                parsed.append((StateKey.parse(key), value))
            except StateKeyError:
                continue  # not a record this version writes: nothing of ours to restore from it
        for key, value in sorted(parsed, key=lambda r: order[r[0].what]):
            state = unpack(value)
            model, segment = key.model, key.segment
            if key.what == "reference":
                references.setdefault((*group_key(model, segment, key.version), *key.stream), {})[key.tag] = \
                    state["reference"]
                continue
            if key.what == "versions":
                self.versions[model] = ModelVersions(model, self.config.version_policy_for(model))
                self.versions[model].set_state(state["versions"])
                continue
            if key.what == "pending":
                limits = self.config.limits
                pending = self.pending[model] = PendingPredictions(limits.max_pending_predictions,
                                                                   limits.label_ttl_seconds)
                pending.set_state(state["pending"])
                continue
            if key.what == "model":
                group = self._model(model, segment, key.version)
                group.types = {(k, n): t for k, n, t in state["types"]}
                group.tracker.set_state(state["tracker"])
                group.last_ts = state["last_ts"]
                group.started = state.get("started")
                group.partition, group.next_offset = state["partition"], state["offset"]
            else:
                group = self.models.get(group_key(model, segment, key.version))
                if group is None:
                    continue
                stream = key.stream
                known = references.get((*group.key, *stream), {})
                try:
                    monitor = detectors.decode_monitor(state["monitor"].tobytes(), known)
                except detectors.StateError:
                    continue  # its reference record is gone (a crash between the two writes): start afresh
                if stream == JOINT:
                    if group.joint is None or monitor.settings != group.joint.settings:
                        continue  # watched jointly no more, or with other settings: start afresh
                    group.joint = monitor
                else:
                    group.put(stream, monitor)
                    group.types[stream] = "numeric" if monitor.numeric else "categorical"
                _remember_references(group, stream, monitor, known)
                if state["offset"] is not None:
                    group.covered[stream] = state["offset"]
                monitors += 1
        return monitors

    def resave_all(self, unwritten: list[tuple[str, bytes | None]] = ()) -> None:
        """After a checkpoint the broker did not take (its records: ``unwritten``): the next one
        writes every model, monitor, reference and waiting prediction again (what it held is not
        known to be stored), and again drops the references it was to drop."""
        self.dirty = set(self.models)
        for group in self.models.values():
            group.dirty = set(group.monitors) | ({JOINT} if group.joint is not None else set())
            group.saved_references.clear()
        self.dirty_pending = set(self.pending)
        self.dirty_versions = set(self.versions)
        for key, value in unwritten:
            if value is None and is_reference_record(key):
                parsed = StateKey.parse(key)
                group = self.models.get(group_key(parsed.model, parsed.segment, parsed.version))
                if group is not None and key not in group.stale_references:
                    group.stale_references.append(key)

    @property
    def model_count(self) -> int:
        return len(self.models)

    @property
    def pending_count(self) -> int:
        """Predictions waiting for their labels."""
        return sum(len(p) for p in self.pending.values())

    def drop_partitions(self, partitions: set[int]) -> int:
        """Forget the models of ``partitions`` (handed over to another worker), with their versions."""
        gone = [k for k, g in self.models.items() if g.partition in partitions]
        for key in gone:
            del self.models[key]
        alive = {key[0] for key in self.models}
        for model in [m for m in self.versions if m not in alive]:
            del self.versions[model]
            self.dirty_versions.discard(model)
        return len(gone)

    @property
    def monitored_pairs(self) -> int:
        return sum(len(g.monitors) for g in self.models.values())


def _checkpoint_order(key: tuple) -> tuple:
    """Models in a checkpoint: by name, segment and version."""
    return key[0], key[1] or "", version_of(key) or ""
