"""The monitors of one (model, segment[, model version]): its streams' value types and monitors,
its retrain incident, its input position, and its checkpoint records."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache, partial
from itertools import repeat

import numpy as np

from . import detectors
from .config import Config
from .detectors import CategoricalMonitor, MultivariateMonitor, NumericMonitor
from .detectors.state import frozen, pack
from .detectors.together import FastPath
from .events import NUMBERS, SEPARATOR, value_problem
from .retrain import RetrainTracker
from .state_keys import StateKey

#: What each kind of monitored stream is called in alerts, and where its values come from.
PREDICTION, LABEL, CONCEPT = "prediction", "label", "concept"
#: The stream of labels that arrive late (topic ``labels``), in arrival order: label drift for
#: models whose events carry no label. A stream of its own (``kind: label``, ``feature:
#: late_label``), so that events without an inline label are not counted as missing labels.
LATE_LABEL = (LABEL, "late_label")
#: The multivariate monitor's stream (``kind: multivariate``; alerts name the feature ``*``:
#: all of them, ranked in ``explained_by``), and where a supplied reference keeps its rows.
JOINT = ("multivariate", "*")
JOINT_REFERENCE = "multivariate:rows"
#: Fewest rows of a supplied reference the multivariate monitor starts from (else it warms up).
JOINT_REFERENCE_ROWS = 400
#: Detectors of the error stream unless a ``[[features]]`` rule for ``concept:error`` says otherwise.
CONCEPT_DETECTORS = ("adwin", "page_hinkley", "histogram")

def value_type(value) -> str | None:
    """``numeric`` for numbers, ``categorical`` for strings and booleans, ``None`` for null.

    >>> value_type(1.5), value_type(True), value_type("DE"), value_type(None)
    ('numeric', 'categorical', 'categorical', None)
    """
    if value is None:
        return None
    if isinstance(value, (bool, str)):
        return "categorical"
    if isinstance(value, (int, float)):
        return "numeric"
    return "invalid"


_NUMERIC = NUMBERS
_CATEGORICAL = {str, bool}


def group_key(model: str, segment: str | None, version: str | None = None) -> tuple:
    """The key of one monitored (model, segment[, version]) in ``DriftPipeline.models``: events
    without a ``model_version`` keep the ``(model, segment)`` key they always had.

    >>> group_key("m", None), group_key("m", "eu", "v2")
    (('m', None), ('m', 'eu', 'v2'))
    """
    return (model, segment) if version is None else (model, segment, version)


def version_of(key: tuple) -> str | None:
    """The model version of a ``group_key`` (``None``: events without one).

    >>> version_of(("m", None)), version_of(("m", None, "v2"))
    (None, 'v2')
    """
    return key[2] if len(key) > 2 else None


class ModelMonitors:
    """The monitors of one (model, segment[, version]), its value types and its retrain incident."""

    def __init__(self, model: str, segment: str | None, config: Config, reference: dict | None,
                 version: str | None = None):
        self.model = model
        self.segment = segment
        #: The model version whose events these monitors watch (``None``: events without one).
        self.version = version
        self.config = config
        self.reference = reference or {}
        self.types: dict[tuple[str, str], str] = {}  # (kind, name) -> numeric | categorical
        #: Stream -> its monitor. Set a monitor with ``put`` (it forgets ``members``' list).
        self.monitors: dict[tuple[str, str], detectors.NumericMonitor | detectors.CategoricalMonitor] = {}
        self._members: tuple | None = None  # ``members``' last streams and list
        self.tracker = RetrainTracker(config.policy_for(model))
        self.last_ts: float | None = None
        #: Event time of this incarnation's first event: part of alert ids, so that a model that
        #: comes back after an idle eviction never reuses the ids of its earlier alerts.
        self.started: float | None = None
        #: Input position: partition of this model's events and the next offset not yet processed.
        self.partition: int | None = None
        self.next_offset: int | None = None
        #: After a restore: per stream, the offset its checkpoint covers; replayed events below it
        #: were already counted in that stream's state and are skipped for it.
        self.covered: dict[tuple[str, str], int] = {}
        self.dirty: set[tuple[str, str]] = set()
        #: ``mark_changed``'s last streams and the ``dirty`` set they went into.
        self._marked: tuple | None = None
        #: Numeric monitors' references as last written to the state topic: stream -> (the
        #: reference object, its tag). Written again only when a monitor fits a new one.
        self.saved_references: dict[tuple[str, str], tuple[object, str]] = {}
        #: Keys of replaced reference records: deleted (tombstones) with the next checkpoint,
        #: once the records that replace them are acknowledged.
        self.stale_references: list[str] = []
        #: (features, limits, stream count, monitor count) of the last run ``takes_plain`` accepted.
        self._takes_plain: tuple | None = None
        #: What the vectorised update keeps between batches for this model's numeric monitors.
        self.fast_path = FastPath()
        #: The model's features watched together (``[multivariate] models``), or ``None``.
        self.joint: MultivariateMonitor | None = None
        if config.watches_jointly(model):
            rows = self.reference.get(JOINT_REFERENCE)
            enough = rows is not None and len(next(iter(rows.values()), ())) >= JOINT_REFERENCE_ROWS
            self.joint = MultivariateMonitor(config.multivariate, reference=rows if enough else None)

    def monitor(self, kind: str, name: str):
        key = (kind, name)
        monitor = self.monitors.get(key)
        if monitor is None:
            settings = self.config.settings_for(name if kind == "feature" else f"{kind}:{name}")
            if kind == CONCEPT and not self.config.has_rule(f"{kind}:{name}"):
                settings = replace(settings, detectors=CONCEPT_DETECTORS)
            ref = self.reference.get(name) if kind == "feature" else self.reference.get(f"{kind}:{name}")
            if self.types[key] == "numeric":
                monitor = NumericMonitor(settings, reference=ref if isinstance(ref, np.ndarray) else None)
            else:
                monitor = CategoricalMonitor(settings, reference=ref if isinstance(ref, dict) else None)
            self.put(key, monitor)
        return monitor

    def put(self, key: tuple[str, str], monitor) -> None:
        """``monitors[key] = monitor``."""
        self.monitors[key] = monitor
        self._members = None

    def members(self, streams: tuple[tuple[str, str], ...]) -> list:
        """The monitors of ``streams``, each ``monitors[stream]``: the same list for the same
        ``streams`` object while no monitor is set (a plain run's numeric streams, batch after
        batch: 20 tuple keys hashed per model and batch, cold, cost more than the update of a
        model's plan across models)."""
        kept = self._members
        if kept is not None and kept[0] is streams:
            return kept[1]
        found = list(map(self.monitors.__getitem__, streams))
        self._members = (streams, found)
        return found

    def check_column(self, kind: str, name: str, column: list, limits) -> tuple[str | None, dict[int, str]]:
        """The column's value type and the events (by position) whose value cannot be used.

        The first non-null value a (model, segment) ever sends fixes the type of a feature; a
        later value of the other type is rejected, as is any list, object or over-long string.
        """
        known = self.types.get((kind, name))
        present = set(map(type, column))
        present.discard(type(None))
        if not present:
            return known, {}
        kind_of = "numeric" if present <= _NUMERIC else "categorical" if present <= _CATEGORICAL else None
        if kind_of is not None and known in (None, kind_of):
            too_long = str in present and max(len(v) for v in column if type(v) is str) > limits.max_string_length
            if not too_long:
                return kind_of, {}
        # Slow path: name every bad value in stream order.
        what = f"feature {name!r}" if kind == "feature" else kind
        bad: dict[int, str] = {}
        for i, value in enumerate(column):
            problem = value_problem(what, value, limits)
            if problem:
                bad[i] = problem
                continue
            t = value_type(value)
            if t is None:
                continue
            if known is None:
                known = t
            elif t != known:
                bad[i] = f"{what} has always been {known}; got {t} value {value!r}"
        return known, bad

    def adopt_plain(self, features: tuple[str, ...], numeric: frozenset, limits, first_complete: bool) -> bool:
        """A new model's first plain run, every feature a number in its first event
        (``first_complete``): its streams made now as ``_monitor`` would make them from these
        events (each numeric and starting at the first event, a monitor each, in the order
        ``columns_of`` finds them), so that this run and the model's later ones take the plain
        path. ``False``, with nothing changed, for a model that has streams or for any other run
        (then ``_monitor`` reads it: the limits' rejections, the types of nulls-only features and
        streams that start later are its own)."""
        if self.types or self.monitors or self.covered or not first_complete or numeric != frozenset(features) \
                or len(features) > limits.max_features or any(map(_bad_feature_name, features, repeat(limits))):
            return False
        # columns_of's order: the first event's features less those known (none), as a set.
        for name in dict.fromkeys(features).keys() - set():
            self.types[("feature", name)] = "numeric"
            self.monitor("feature", name)
        return True

    def goes_together(self, stream: tuple[str, str], first: int) -> bool:
        """The one rule of the fast path: a numeric stream whose values in a run start at the
        run's first event is updated with the model's other such streams in one vectorised call
        (``update_together``, which proves each monitor's batch quiet or hands it to the
        monitor's own ``update``); any other stream is updated on its own."""
        return first == 0 and self.types.get(stream) == "numeric"

    def mark_changed(self, streams: tuple[tuple[str, str], ...]) -> None:
        """Add ``streams`` to ``dirty`` (changed since the last checkpoint), unless this very
        tuple went into this very set since it was last emptied: a plain run's streams, batch
        after batch, are one tuple (``_feature_streams``), and hashing its 20 keys into the set
        every batch cost more than the rest of the model's bookkeeping.

        ``dirty`` is emptied only by replacing it (``checkpoint_records``), never in place: the
        streams then go into the new set.

        >>> from streamdrift.config import Config
        >>> group = ModelMonitors("m", None, Config(), None)
        >>> streams = _feature_streams(("x", "y"))
        >>> group.mark_changed(streams); sorted(group.dirty)
        [('feature', 'x'), ('feature', 'y')]
        >>> group.dirty = set(); group.mark_changed(streams); sorted(group.dirty)
        [('feature', 'x'), ('feature', 'y')]
        """
        marked = self._marked
        if marked is None or marked[0] is not streams or marked[1] is not self.dirty:
            self.dirty.update(streams)
            self._marked = (streams, self.dirty)

    def takes_plain(self, features: tuple[str, ...], limits, numeric: frozenset = None,
                    categorical: frozenset = frozenset()) -> bool:
        """Whether a run of events that all have exactly ``features`` — numbers or nulls for the
        ``numeric`` ones (default: all), strings, booleans or nulls for the ``categorical`` ones,
        only nulls for the rest — fills exactly this model's streams, each known of the type its
        values have, with their monitors, none restored part-way: then ``check_column`` would
        find nothing to reject, every stream starts at the first event, and no monitor is made
        (so the order of ``features`` changes nothing). Then every numeric stream of the run
        ``goes_together``, read straight from the parsed matrix, and every categorical one is
        its own column."""
        if self.covered:
            return False
        # Streams and their types are only ever added (a monitor may be replaced, not removed):
        # while their counts stay, the answer for the same features does too.
        known = (features, numeric, categorical, limits, len(self.types), len(self.monitors))
        if self._takes_plain == known:
            return True
        numeric = frozenset(features) if numeric is None else numeric
        streams = _feature_streams(features)
        types = self.types
        ok = bool(streams) \
            and all(types.get(("feature", name)) == "numeric" for name in numeric) \
            and all(types.get(("feature", name)) == "categorical" for name in categorical) \
            and all(types.get(stream) in ("numeric", "categorical") for stream in streams) \
            and len(streams) == _filled_streams(types) \
            and all(map(self.monitors.__contains__, streams)) \
            and not any(map(_bad_feature_name, features, repeat(limits)))
        if ok:
            self._takes_plain = known
        return ok

    @property
    def key(self) -> tuple:
        """This group's key in ``DriftPipeline.models`` (``group_key``)."""
        return group_key(self.model, self.segment, self.version)

    def state_keys(self) -> list[str]:
        joint = [self._monitor_key(JOINT)] if self.joint is not None else []
        return [self._model_key()] + [self._monitor_key(stream) for stream in self.monitors] + joint + \
            [self._reference_key(stream, tag) for stream, (_, tag) in self.saved_references.items()] + \
            self.stale_references

    def _model_key(self) -> str:
        return StateKey.of_model(self.model, self.segment, self.version).format()

    def _monitor_key(self, stream: tuple[str, str]) -> str:
        return StateKey.monitor(self.model, self.segment, stream, self.version).format()

    def _reference_key(self, stream: tuple[str, str], tag: str) -> str:
        return StateKey.reference(self.model, self.segment, stream, tag, self.version).format()

    # -- checkpoints: one record for the model, one per monitor (a model's state can exceed a
    # -- Kafka message, a monitor's cannot: it is bounded by its reference and window sizes) --
    def checkpoint_records(self, everything: bool = False, deferred: bool = False) -> list[tuple[str, object]]:
        """``(key, value)`` records of what changed since the last checkpoint; ``deferred``: see
        ``DriftPipeline.checkpoint``."""
        seal = _sealed if deferred else pack
        position = {"partition": self.partition, "offset": self.next_offset}
        records = [(self._model_key(), seal({**position, "model": self.model, "segment": self.segment,
                                  "types": [[k, n, t] for (k, n), t in sorted(self.types.items())],
                                  "tracker": self.tracker.get_state(), "last_ts": self.last_ts,
                                  "started": self.started}))]
        records.extend((key, None) for key in self.stale_references)
        self.stale_references = []
        streams = list(self.monitors if everything else sorted(self.dirty - {JOINT}))
        if self.joint is not None and (everything or JOINT in self.dirty):
            streams.append(JOINT)
        for key in streams:
            monitor = self.joint if key == JOINT else self.monitors[key]
            tag = self._reference_record(key, monitor, position, records, seal)
            if deferred:
                value = partial(_pack_monitor, position, detectors.monitor_record(monitor, tag))
            else:
                value = _pack_monitor(position, detectors.encode_monitor(monitor, tag))
            records.append((self._monitor_key(key), value))
        self.dirty = set()  # a new set, never emptied in place: see ``mark_changed``
        return records

    def _reference_record(self, stream: tuple[str, str], monitor, position: dict, records: list,
                          seal=pack) -> str | None:
        """The tag of a numeric or multivariate monitor's reference, adding its record to
        ``records`` when it is not written yet (a monitor's reference is ~8 bytes per reference
        value, its other state about as much again; the reference changes only when the monitor
        fits)."""
        reference, values = _reference_of(monitor)
        if reference is None:
            return None
        saved = self.saved_references.get(stream)
        if saved is not None and saved[0] is reference:
            return saved[1]
        tag = detectors.reference_tag(values)
        if saved is not None and saved[1] != tag:
            self.stale_references.append(self._reference_key(stream, saved[1]))
        records.append((self._reference_key(stream, tag), seal({**position, "reference": values})))
        self.saved_references[stream] = (reference, tag)
        return tag


def _sealed(state: dict) -> partial:
    """``pack`` of ``state`` as it is now, to be called later (see ``detectors.state.frozen``)."""
    return partial(pack, frozen(state))


def _pack_monitor(position: dict, monitor: bytes | dict) -> bytes:
    """A monitor's state record: its input position and its encoded state (``monitor``: bytes of
    ``encode_monitor``, or the frozen dict of ``monitor_record`` that they encode)."""
    blob = monitor if type(monitor) is bytes else pack(monitor)
    return pack({**position, "monitor": np.frombuffer(blob, dtype=np.uint8)})


def packed(value):
    """The bytes of a checkpoint record's value (``None``: a tombstone), packing a deferred one.

    >>> packed(None), packed(b"x"), packed(lambda: b"later")
    (None, b'x', b'later')
    """
    return value() if callable(value) else value


def _filled_streams(types: dict) -> int:
    """How many streams of a model its events fill (the others: errors and late labels)."""
    return sum(1 for key in types if key[0] != CONCEPT and key != LATE_LABEL)


@lru_cache(maxsize=64)
def _feature_streams(features: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple(("feature", name) for name in features)


def _bad_feature_name(name: str, limits) -> bool:
    """Whether a feature name cannot be monitored (too long for a state key, or with its separator)."""
    return len(name) > limits.max_string_length or SEPARATOR in name


def _remember_references(group: ModelMonitors, stream: tuple[str, str], monitor, known: dict[str, np.ndarray]) -> None:
    """After a restore: which reference record the monitor's is (not to be written again), and
    which others of the stream are left over (to be deleted)."""
    reference, values = _reference_of(monitor)
    tag = detectors.reference_tag(values) if reference is not None else None
    if tag in known:
        group.saved_references[stream] = (reference, tag)
    group.stale_references.extend(group._reference_key(stream, other) for other in known if other != tag)


def _reference_of(monitor) -> tuple[object, np.ndarray | None]:
    """A monitor's reference as checkpoints write it apart: the object that changes when it
    fits again, and its values (``(None, None)`` for a categorical monitor, or none yet)."""
    if type(monitor) is MultivariateMonitor:
        return monitor.reference_rows, monitor.reference_rows
    reference = getattr(monitor, "reference", None) if monitor.numeric else None
    return reference, None if reference is None else reference.values
