"""Many numeric monitors updated at once: the fast path of a model's numeric features.

A model with twenty numeric features gets twenty ``NumericMonitor`` updates per batch. Each is a
few dozen numpy calls on a few hundred values, so at high rates the time goes to per-call overhead,
not arithmetic. ``update_together`` does the same work for all of them as one set of numpy calls on
a (features x values) array, and gives exactly what updating the monitors one by one gives:

- Page-Hinkley and the missing-rate CUSUM are integer sums, computed column-wise with the same
  closed form (bit-identical).
- ADWIN's bucket structure depends only on how many blocks it has seen, so ADWINs with the same
  structure advance together on (features x buckets) arrays, with the same float operations in the
  same order as ``ADWIN``.
- The windowed KS statistic is exact in integers; the histogram G statistic is a float.

Only the quiet case is done together: a monitor whose batch *might* hold a detection (a CUSUM
crossing, an ADWIN cut or a windowed test over, or within a relative 1e-9 of, its threshold) is
left untouched by this path and updated on its own, by ``NumericMonitor.update`` - so detections,
re-arming and everything rare keep exactly one implementation. So are monitors that are warming
up, re-arming, muted, given missing values in this batch, or configured unusually.

>>> import numpy as np
>>> rng = np.random.default_rng(4)
>>> together = [NumericMonitor() for _ in range(3)]
>>> alone = [NumericMonitor() for _ in range(3)]
>>> data = rng.normal(0, 1, (3, 30_000))
>>> data[1, 20_000:] += 0.5                                  # one feature drifts
>>> fast_path = FastPath()                                   # kept by the caller between batches
>>> found = [update_together(together, data[:, i:i + 700], fast_path) for i in range(0, 30_000, 700)]
>>> [sorted({d.detector for batch in found for d in batch[k]}) for k in range(3)]
[[], ['adwin', 'histogram', 'ks', 'page_hinkley'], []]
>>> expected = [[d for i in range(0, 30_000, 700) for d in m.update(data[k, i:i + 700])] for k, m in enumerate(alone)]
>>> [[d.index for batch in found for d in batch[k]] for k in range(3)] == [[d.index for d in e] for e in expected]
True
"""

from __future__ import annotations

import functools
from itertools import chain
from operator import attrgetter, is_

import numpy as np
from scipy.special import ndtri

from . import rings_compiled
from .across_compiled import fixed_row
from .addresses import address
from .adwin_compiled import take_batch
from .cusum import QUANTUM
from .detection import Detection
from .monitor import evaluation_points
from .positions_compiled import narrow, room_for
from .windowed_compiled import windowed_quiet
from .numeric import NumericMonitor
from .owed import Owed, attach, settle_all
from .settings import NUMERIC_DETECTORS

#: A vectorised statistic this close (relative) to its threshold is decided by the one-by-one path.
MARGIN = 1e-9

#: ``ndarray.all`` without its Python wrapper (it costs more than the reduction on a few rows).
_ALL = np.logical_and.reduce

_KNOWN = frozenset(NUMERIC_DETECTORS)


class FastPath:
    """What the fast path keeps between batches for the groups of monitors it advances: their
    reference tables and vectorised state (``_Tables``), and a small number per settings
    object. Its owner (a model's monitors) keeps one and hands it to every ``update_together``;
    the monitors themselves carry nothing of it. Every entry is checked against the monitors'
    ``version`` (or the identity of what it was built from) before it is used."""

    def __init__(self) -> None:
        #: id of a group's first monitor -> (that monitor, the group's tables). The monitor is
        #: held, so its id cannot be reused by another while the entry lives.
        self.tables: dict[int, tuple[NumericMonitor, _Tables]] = {}
        #: id of a settings object -> (it, the small integer of settings equal to it).
        self.settings_keys: dict[int, tuple[object, int]] = {}
        #: The cross-model path's last parting of a model's monitors into trusted groups
        #: (``across._parts``): the monitors, then each group's rows, members and tables.
        #: ``update_together`` forgets it.
        self.parts: tuple[list, list] | None = None

    def tables_of(self, first: NumericMonitor) -> "_Tables | None":
        entry = self.tables.get(id(first))
        return entry[1] if entry is not None and entry[0] is first else None

    def keep(self, first: NumericMonitor, tables: "_Tables") -> None:
        self.tables[id(first)] = (first, tables)

    def settings_key(self, settings) -> int:
        entry = self.settings_keys.get(id(settings))
        if entry is None or entry[0] is not settings:  # hashing a settings dataclass costs microseconds
            entry = self.settings_keys[id(settings)] = (settings, _SETTINGS_KEYS.setdefault(settings, len(_SETTINGS_KEYS)))
        return entry[1]


def update_together(monitors: list[NumericMonitor], values: np.ndarray,
                    fast_path: FastPath | None = None) -> list[list[Detection]]:
    """Feed row ``k`` of ``values`` (features x values, ``NaN`` = missing) to ``monitors[k]``;
    return each monitor's detections, exactly as ``monitors[k].update(values[k])`` would.
    ``fast_path``: what the caller keeps between batches for these monitors (without one, every
    call builds the group's tables afresh)."""
    cache = fast_path if fast_path is not None else FastPath()
    cache.parts = None  # this path may part the monitors into other groups
    values = np.ascontiguousarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != len(monitors):
        raise ValueError("values must be a (monitors x values) array")
    n = values.shape[1]
    results: list[list[Detection] | None] = [None] * len(monitors)
    if n == 0:
        return [[] for _ in monitors]
    clean = np.isfinite(values).all(axis=1)
    complete = _references_complete_at(monitors, n) if clean.all() else 0
    if complete:
        # Every monitor's reference completes at one column inside the call (a new model's
        # warm-up): each collects up to it, then the rest is one call as usual, which the group's
        # path takes instead of each monitor's own. Detections do not depend on how a stream is
        # cut into calls (their indices count from the stream's start).
        heads = [monitor.update(values[k, :complete]) for k, monitor in enumerate(monitors)]
        tails = update_together(monitors, values[:, complete:], cache)
        return [head + tail for head, tail in zip(heads, tails)]
    trusted = _trusted(cache, monitors)
    if trusted is not None and clean.all() and still_collecting(monitors, n):
        # The whole group advanced here last time, all quiet, and nothing has touched it since:
        # its members are still candidates with one schedule, and its caches are valid.
        quiet = _advance(cache, monitors, values, trusted)
        if _ALL(quiet):
            return [[] for _ in monitors]
        results = [[] if ok else None for ok in quiet.tolist()]
    else:
        groups: dict[tuple, list[int]] = {}
        for k, monitor in enumerate(monitors):
            if not clean[k]:
                continue
            if _quiet_candidate(monitor, n):
                groups.setdefault(_schedule(cache, monitor, n), []).append(k)
            elif _warming_up(monitor, n):
                _warm_up(monitor, values[k])
                results[k] = []
        for key, members in groups.items():
            rows = values if len(members) == len(monitors) else values[members]  # all: no copy
            quiet = _advance(cache, [monitors[k] for k in members], rows)
            for k, ok in zip(members, quiet.tolist()):
                if ok:
                    results[k] = []
    for k, monitor in enumerate(monitors):
        if results[k] is None:
            results[k] = monitor.update(values[k])
    return results


def _trusted(cache: FastPath, monitors: list[NumericMonitor]) -> "_Tables | None":
    """The tables of a group that ``_advance`` moved on last time as a whole, every member
    quiet, if no member has changed since: then its caches (ADWIN vectors, rings, recent
    positions) hold the members' state and need no check, and the members share one schedule.

    No member is read: every change of a monitor's state bumps its ``version`` (an update, a
    fit, ``set_state``, this path's own untrusted advance), and a bump tells the tables that
    trust the monitor (``FeatureMonitor.trust``), which then trust no more (``intact``). Before,
    each batch compared every member's version with the one recorded: 640 cold monitor objects
    per batch of 32 models."""
    tables = cache.tables_of(monitors[0])
    if tables is None or not tables.intact:
        return None
    members = tables.members
    if members is monitors:  # the same list as last batch (``ModelMonitors.members``); lists are never changed
        return tables
    if len(members) != len(monitors) or not all(map(is_, members, monitors)):  # compares ids only
        return None
    return tables


def _references_complete_at(monitors: list[NumericMonitor], n: int) -> int:
    """The column (in a call of ``n`` values, none missing) at which every monitor's reference
    being collected completes, if that is one column for all of them and inside the call; else 0.
    Monitors with binary detectors are left out: their check of a call's values comes first."""
    at = 0
    for monitor in monitors:
        if type(monitor) is not NumericMonitor or not monitor.collecting or monitor.binary:
            return 0
        need = monitor._still_to_collect()
        if need != at and at:
            return 0
        at = need
    return at if 0 < at < n else 0


def _quiet_candidate(monitor: NumericMonitor, n: int) -> bool:
    """Whether ``_advance`` may take ``n`` values (none missing) of ``monitor``: a fitted monitor
    of the usual detectors. One collecting the reference of its new regime after an alarm
    (re-arming) is one too, as long as that reference does not complete in these values (the
    fit is its own ``update``'s): it watches with its old reference, its muted detectors left
    out (``_watching``), and collects the values (``_collected``)."""
    return (type(monitor) is NumericMonitor and monitor.fitted and not monitor.settings.sliding_reference
            and _KNOWN.issuperset(monitor.active)
            and (monitor._still_to_collect() > n if monitor.collecting
                 else not monitor.muted))


def _warming_up(monitor: NumericMonitor, n: int) -> bool:
    """Whether ``n`` values (none missing) only add to ``monitor``'s first reference: a numeric
    monitor of the usual kind not yet fitted, whose reference does not complete in them."""
    return (type(monitor) is NumericMonitor and not monitor.fitted and not monitor.binary
            and monitor._still_to_collect() > n)


def _warm_up(monitor: NumericMonitor, x: np.ndarray) -> None:
    """What ``monitor.update(x)`` does to a monitor ``_warming_up`` on ``x``: it collects the
    values (a copy, as ``FeatureMonitor._collect`` keeps one) and counts them. A new model's
    warm-up is every feature's own update otherwise: ~10 us each, 0.1 s a batch at 512 models."""
    monitor.version += 1
    monitor.collected.append(x.copy())
    monitor.collected_total += x.size
    monitor.seen += x.size


def _watching(monitor: NumericMonitor) -> tuple:
    """The detectors a monitor runs: its active ones but those muted (after their alarm, until
    the reference of the new regime is fitted), as ``NumericMonitor._watch`` runs them."""
    muted = monitor.muted
    return monitor.active if not muted else tuple(d for d in monitor.active if d not in muted)


def still_collecting(monitors: list[NumericMonitor], n: int) -> bool:
    """Whether a trusted group may take ``n`` more values (none missing) on its path: it is not
    re-arming, or none of its members' references being collected completes in them (the fit is
    the member's own ``update``'s)."""
    return not monitors[0].collecting or all(m._still_to_collect() > n for m in monitors)


def _collected(monitors: list[NumericMonitor], rows, x: np.ndarray) -> None:
    """Monitors ``rows`` of a re-arming group (``_quiet_candidate``) took their rows of ``x``
    quietly: each collects them, as ``FeatureMonitor._collect`` (its reference does not complete)."""
    n = x.shape[1]
    for i in rows:
        m = monitors[i]
        m.collected.append(x[i].copy())
        m.collected_total += n


def _schedule(cache: FastPath, monitor: NumericMonitor, n: int) -> tuple:
    """Monitors with equal keys run the same numpy calls on the same positions."""
    s = monitor.settings
    adwin = monitor.adwin
    watching = _watching(monitor)
    shape = tuple(map(len, adwin.levels)) if "adwin" in watching else ()
    points = _evaluation_points(monitor.watched, n, s.evaluate_every, s.window)
    return (cache.settings_key(monitor.settings), watching, monitor.collecting, points, min(monitor.watched, s.window),
            shape, adwin.width, adwin.blocks_seen % adwin.clock, len(adwin.pending), adwin.delta,
            _cusum_names(watching))


@functools.lru_cache(maxsize=64)
def _cusum_names(active: tuple) -> tuple:
    """The Page-Hinkley-type CUSUMs among a monitor's detectors, in one order."""
    return tuple(name for name in CUSUMS if name in active)


#: The detectors that are two one-sided CUSUMs on a function of the normal scores.
CUSUMS = ("page_hinkley", "scale")


#: A model's features usually share the running count, so their schedules repeat.
_evaluation_points = functools.lru_cache(maxsize=4096)(evaluation_points)


#: Equal settings objects share one small integer, so that features configured alike (each with
#: its own settings object, e.g. from a ``[[features]]`` rule) advance together.
_SETTINGS_KEYS: dict = {}


def _advance(cache: FastPath, monitors: list[NumericMonitor], x: np.ndarray,
             trusted: "_Tables | None" = None) -> np.ndarray:
    """Advance a group that shares one schedule (``_schedule``: its first monitor's detectors
    and evaluation points are everyone's); returns which monitors were quiet (and so were
    updated here). The others are left exactly as they were. ``trusted``: the group's tables,
    when ``_trusted`` vouches for them and their caches. The schedule is not read from the
    ADWINs: what the cross-model path owes them stays owed."""
    first = monitors[0]
    settings, active = first.settings, _watching(first)
    k, n = x.shape
    points = _evaluation_points(first.watched, n, settings.evaluate_every, settings.window)
    quiet = np.ones(k, dtype=bool)
    vouched = trusted is not None
    tables = trusted if vouched else _tables(cache, monitors)
    positions, rank, ascending = _positions(tables, x)
    commit = []
    if "missing_rate" in active:
        commit.append(_missing_rate(monitors, tables, n, quiet, vouched))
    cusums = _cusum_names(active)
    if cusums:
        # Read in sorted order, then put back in arrival order: (sides, names, k, n).
        table = tables.cusum_steps(cusums)
        steps = table.take(ascending + tables.step_shift, axis=2).reshape(2 * len(cusums), k * n).take(rank, axis=1)
        commit.append(_cusums(monitors, tables, cusums, steps.reshape(-1, n), quiet, vouched))
    if "adwin" in active:
        # Reference.uniform_scores, from the count tables (int32 sums are exact, then the same division).
        u = tables.u_rows.take(ascending + tables.step_shift).take(rank)
        commit.append(_adwin(monitors, tables, u, quiet, vouched))
    if points and ("ks" in active or "histogram" in active):
        _windowed(monitors, tables, settings, active, points, positions, quiet, vouched)
    everyone = bool(_ALL(quiet))
    quiet_rows = list(range(k)) if everyone else np.flatnonzero(quiet).tolist()
    for apply in commit:
        apply(quiet_rows, everyone)
    moved_on(tables, monitors, quiet_rows, x, positions, everyone, vouched)
    if first.collecting:
        _collected(monitors, quiet_rows, x)
    return quiet


def moved_on(tables: "_Tables", monitors: list[NumericMonitor], rows, x: np.ndarray, positions: np.ndarray,
             everyone: bool, trusted: bool) -> None:
    """Monitors ``rows`` of the group took their rows of ``x`` (at ``positions``), all quiet and
    none missing: their rings extended (all at once through the group's ``_Rings`` if
    ``everyone`` did, else one by one), counts and versions moved on, and, if everyone did, the
    group's cached recent positions kept and its trust recorded for its next batch (``trusted``:
    as ``_rings``)."""
    n = x.shape[1]
    rings = _rings(tables, monitors, trusted) if everyone else None
    if rings is not None:
        rings.extend(x, positions)
    for i in rows:
        m = monitors[i]
        if rings is None:
            m.recent_values.extend(x[i])
            m.recent_positions.extend(positions[i])
            m.recent_missing.fill(False, n)
        m.watched += n
        m.seen += n
        m.version += 1
    recent = tables.recent
    tables.recent = recent.extended(positions) if recent is not None and everyone else None
    # A re-arming group (collecting) is trusted too: each path that takes it checks first that
    # no reference completes in its values (``still_collecting``), and collects them.
    if everyone:
        tables.members, tables.intact = monitors, True
        for m in monitors:  # their versions moved on above: each trusted by these tables from now
            m.trust(tables)
        tables.first_watched = monitors[0].watched
    else:
        tables.intact = False


def ring_row(tables: "_Tables", monitors: list[NumericMonitor], at: int, n: int) -> "tuple[list, _Rings] | None":
    """For a trusted group all of whose members take ``n`` values each (quiet, none missing):
    its rings and recent positions as a row of ``rings_compiled.extend_rings`` (their values
    and positions from ``at`` in that call's flat arrays), and its ``_Rings``; ``None`` if
    its rings are extended one by one (``moved_on``). ``counted_on`` does the rest."""
    rings = _rings(tables, monitors, True)
    if rings is None:
        return None
    recent = tables.recent
    count, fixed = (0, rings_compiled.NO_RECENT_ROW) if recent is None else (recent.count, recent.fixed)
    return rings_compiled.row(len(monitors), n, at, rings.counts, count, rings.fixed, fixed), rings


def counted_on(tables: "_Tables", monitors: list[NumericMonitor], rings: "_Rings", n: int) -> None:
    """``moved_on`` of a trusted group whose rings and recent positions ``extend_rings`` extended
    (from ``ring_row``): their counts and the members' counts.

    The members' versions stay, and so does the group's trust (``intact``): a version bump
    tells the tables that trust a monitor (this group's, and those of other groups it was in)
    that something else changed it since they last moved it on, and nothing else did. Every
    other way a monitor changes bumps its version (its own ``update``, a fit, ``set_state``,
    an untrusted ``_advance``, which also makes its group trust it afresh), so the tables that
    trust a monitor are always the last that moved it on as a whole, and a trusted advance does
    not change which those are.

    The members' counts are owed to them (``_Counted``), not written: a batch of 32 models
    touched 640 monitor objects here, cold by then, for two additions each."""
    rings.advanced(n)
    owed = tables.count_owed
    counted = owed.write
    if counted is None or (counted.members is not monitors and (
            len(counted.members) != len(monitors) or not all(map(is_, counted.members, monitors)))):
        owed.settle()
        counted = _Counted(monitors)  # the list itself, as ``tables.members``: lists of monitors are never changed
        owed.owe(counted.members, counted)
    counted.n += n
    tables.first_watched += n
    recent = tables.recent
    if recent is not None:
        recent.count += n
    tables.members = monitors


class _Counted:
    """What ``counted_on`` owes a trusted group's members: ``n`` more values seen and watched
    each (``detectors.owed``; settled by the first read of a member's ``seen`` or ``watched``)."""

    __slots__ = ("members", "n")

    def __init__(self, members: list):
        #: The list the members were given in: the next batch's is usually the very same.
        self.members, self.n = members, 0

    def __call__(self) -> None:
        n, self.n = self.n, 0
        for m in self.members:
            own = m.__dict__  # the owed attributes' own slots: this is the write they wait for
            own["_watched"] += n
            own["_seen"] += n


def _extend_rows(buffer: np.ndarray, count: int, items, n: int) -> None:
    """``Ring.extend`` of every row of ``buffer`` (rings of ``size`` columns holding ``count``
    items each, so one layout) by ``n`` items: the rows of ``items``, or ``items`` itself if it is
    a scalar (``Ring.fill``). In place; the counts are the caller's to advance."""
    size = buffer.shape[1]
    scalar = not isinstance(items, np.ndarray)  # False (the missing flags) or rows
    if n >= size:
        if scalar:
            buffer[:] = items
            return
        start = (count + n) % size
        tail = items[:, -size:]
        buffer[:, start:] = tail[:, :size - start]
        buffer[:, :start] = tail[:, size - start:]
        return
    start = count % size
    end = start + n
    if end <= size:
        buffer[:, start:end] = items
    else:
        split = size - start
        buffer[:, start:] = items if scalar else items[:, :split]
        buffer[:, :end - size] = items if scalar else items[:, split:]


_RING_BUFFER, _RING_COUNT = attrgetter("buffer"), attrgetter("count")
_RECENT = attrgetter("recent_values", "recent_positions", "recent_missing")


class _Rings:
    """The group's rings of recent values, positions and missing flags, kind by kind, as the rows
    of one array: each member's ``Ring.buffer`` *is* its row (a view), so that extending every
    member is one slice assignment per kind instead of three ``Ring.extend`` calls per member
    (at a hundred values per batch those calls cost more than the copying). The rings' counts
    are kept here, one per kind, and owed to the rings (``detectors.owed``: written when first
    read). Valid while the members keep those rings, the rings those rows (``Ring`` never
    replaces its buffer; another ``_Rings`` over the same rings takes them over) and the counts
    this one keeps."""

    def __init__(self, monitors: list[NumericMonitor]):
        self.owned = list(map(_RECENT, monitors))
        self.kinds = []  # per kind: (its rings, the array of their buffers, the row views)
        self.counts = []
        for rings in zip(*self.owned):
            array = np.stack(list(map(_RING_BUFFER, rings)))
            views = list(array)
            for ring, view in zip(rings, views):
                ring.buffer = view
            self.kinds.append((rings, array, views))
            self.counts.append(rings[0].count)
        #: The arrays' part of a row of ``rings_compiled.extend_rings``.
        self.fixed = rings_compiled.rings_fixed(*(array for _, array, _ in self.kinds))
        self.owed = Owed()
        attach([ring for rings, _, _ in self.kinds for ring in rings], self.owed)

    def valid_for(self, monitors: list[NumericMonitor]) -> bool:
        if list(map(_RECENT, monitors)) != self.owned:  # tuples of rings: compared by identity first
            return False
        for (rings, _, views), count in zip(self.kinds, self.counts):
            if not all(map(is_, map(_RING_BUFFER, rings), views)) or set(map(_RING_COUNT, rings)) != {count}:
                return False
        return True

    def extend(self, values: np.ndarray, positions: np.ndarray) -> None:
        """What ``_advance`` does to each member's rings when no value is missing: values and
        positions extended, as many ``False`` in the missing flags."""
        n = values.shape[1]
        counts = self.counts
        for kind, ((_, array, _), items) in enumerate(zip(self.kinds, (values, positions, False))):
            _extend_rows(array, counts[kind], items, n)
        self.advanced(n)

    def advanced(self, n: int) -> None:
        """Every kind's count moved on by ``n`` (the rings extended), owed to the rings."""
        counts = self.counts
        for kind in range(len(counts)):
            counts[kind] += n
        self.owed.write = self._write_counts  # (a bound method made per batch: cheaper than a partial)

    def _write_counts(self) -> None:
        """What ``extend`` and ``advanced`` owe the rings: each kind's count, as it is now (only
        they change the counts, and each owes this again)."""
        for (rings, _, _), count in zip(self.kinds, self.counts):
            for ring in rings:
                ring._count = count


def _rings(tables: "_Tables", monitors: list[NumericMonitor], trusted: bool) -> "_Rings | None":
    """The group's ``_Rings``, kept on its tables (``trusted``: valid without a check); ``None``
    while the members' rings of a kind hold different counts (e.g. one feature had missing
    values): they are extended one by one."""
    rings = tables.rings
    if rings is not None and (trusted or rings.valid_for(monitors)):
        return rings
    for kind in zip(*map(_RECENT, monitors)):
        if len(set(map(_RING_COUNT, kind))) != 1:
            return None
    rings = tables.rings = _Rings(monitors)
    return rings


class _RecentPositions:
    """The group's rings of recent positions side by side (rows in each ring's own layout), so
    that a window is one slice instead of one copy per feature. Valid while every member holds
    the ring it was read from with the count this path left (equal counts: equal layouts)."""

    def __init__(self, rings, count: int, buffer: np.ndarray):
        self.rings, self.count, self.buffer = rings, count, buffer
        #: The buffer's part of a row of ``rings_compiled.extend_rings``.
        self.fixed = rings_compiled.recent_fixed(buffer)

    @classmethod
    def of(cls, monitors, dtype) -> "_RecentPositions | None":
        rings = [m.recent_positions for m in monitors]
        count = rings[0].count
        if any(r.count != count for r in rings):
            return None
        return cls(rings, count, np.stack([r.buffer for r in rings]).astype(dtype))

    def valid_for(self, monitors) -> bool:
        count = self.count
        for m, ring in zip(monitors, self.rings):
            if m.recent_positions is not ring or ring.count != count:
                return False
        return len(monitors) == len(self.rings)

    def last(self, count: int, out: np.ndarray) -> None:
        """``Ring.last`` of every row."""
        size = self.buffer.shape[1]
        end = self.count % size
        if count <= end:
            out[:, :count] = self.buffer[:, end - count:end]
        else:
            head = count - end
            out[:, :head] = self.buffer[:, size - head:]
            out[:, head:count] = self.buffer[:, :end]

    def extended(self, positions: np.ndarray) -> "_RecentPositions":
        """``Ring.extend`` of every row (in place)."""
        size = self.buffer.shape[1]
        n = positions.shape[1]
        if n >= size:
            self.count += n
            tail = positions[:, -size:]
            start = self.count % size
            self.buffer[:, start:] = tail[:, :size - start]
            self.buffer[:, :start] = tail[:, size - start:]
            return self
        start = self.count % size
        end = start + n
        if end <= size:
            self.buffer[:, start:end] = positions
        else:
            split = size - start
            self.buffer[:, start:] = positions[:, :split]
            self.buffer[:, :end - size] = positions[:, split:]
        self.count += n
        return self


class _Tables:
    """A group's reference lookups side by side, so that a lookup is one ``take`` for the whole
    group rather than one per feature: feature ``i``'s position ``p`` is entry ``i * width + p``
    (``offset``; rows padded to the widest reference) of its own tables (distinct values,
    histogram cells), and entry ``row_start[i] + p`` of those that depend on its reference's ties
    alone (uniform scores, counts below, CUSUM increments), which features with the same ties
    share. Valid while every member keeps the reference, edges and histogram cells it was built
    from (all three are replaced, never changed, on a fit)."""

    def __init__(self, monitors: list[NumericMonitor]):
        refs = [m.reference for m in monitors]
        self.owners = [(m.reference, m.edges, m.histogram.cell_of) for m in monitors]
        k = len(refs)
        rows = self.rows = np.arange(k, dtype=np.int64)[:, None]
        width = max(r.n_positions for r in refs)
        self.offset = rows * width
        self.width = width
        self.distinct = [r.distinct for r in refs]
        # _positions' buckets: 32767 across each reference's range (none if it is one value).
        self.low = np.array([r.distinct[0] for r in refs])[:, None]
        span = np.array([r.distinct[-1] - r.distinct[0] for r in refs])[:, None]
        self.scale = np.divide(32766.0, span, out=np.zeros_like(span), where=span > 0)
        # Distinct values with +inf after each row's last: ``guard[j] == x`` is false past the top.
        # Rows of whole blocks, for the cross-model path's two-level search (``positions_compiled``).
        room = self.room = room_for(max(r.distinct.size for r in refs))
        guard = np.full((k, room), np.inf)
        self.guard_offset = rows * room
        self.size = np.array([r.size for r in refs], dtype=np.int64)
        # Compact types: the tables are read cold, so their size is their cost. Counts of at most
        # a million reference values fit int32; products are taken in int64 (see _windowed).
        # What depends on a reference only through its ties (``_null_steps``): each position's
        # uniform score and the CUSUMs' increments there (``quantise(+-statistic - allowance)``,
        # elementwise as ``PageHinkley.update_scores``). Features whose references share their
        # ties (most continuous ones: they have none) share one row, so the table a batch reads
        # at random is a row or a few per model, which stays in the cache, instead of one per
        # feature. Feature ``i`` reads row ``row_of[i]``: entry ``row_of[i] * width + position``.
        null_rows = [_null_steps(r, tuple(getattr(m, name) for name in CUSUMS)) for m, r in zip(monitors, refs)]
        # Each distinct row: its number, and the first feature's row and reference.
        firsts: dict[tuple, tuple[int, tuple, object]] = {}
        for row, r in zip(null_rows, refs):
            firsts.setdefault(row[0], (len(firsts), row, r))
        row_of = np.array([firsts[row[0]][0] for row in null_rows], dtype=np.int64)
        shared = _shared_rows(firsts, width)
        #: Where each feature's row of the shared tables (``u_rows``, ``below``, ``at_or_below``,
        #: the CUSUMs' increments) starts.
        self.row_start = row_of * width
        self.u_rows = shared.u_rows
        cells = max(m.histogram.reference_counts.size for m in monitors)
        cell = np.zeros((k, width), dtype=np.int16 if k * cells < 1 << 15 else np.int64)
        self.hist_reference = np.zeros((k, cells))
        for i, (m, r) in enumerate(zip(monitors, refs)):
            size = r.n_positions
            guard[i, :r.distinct.size] = r.distinct
            cell[i, :size] = m.histogram.cell_of[m.position_bins()] + i * cells
            self.hist_reference[i, :m.histogram.reference_counts.size] = m.histogram.reference_counts
        self.guard = guard.ravel()
        self.guard32, self.coarse = narrow(self.guard)
        self.below, self.at_or_below, self.cell = shared.below, shared.at_or_below, cell.ravel()
        self.cells = cells
        # (rows x positions, 2 sides, CUSUMS); ``step_shift`` takes a group-table index
        # (``offset + position``) to its row's.
        self._steps = shared.steps
        self.step_shift = self.row_start[:, None] - self.offset
        self._subsets = shared.subsets
        self._threshold_rows: dict[tuple, np.ndarray] = {}
        self._kernel_rows: dict[tuple, list] = {}
        self._thresholds = {name: np.array([getattr(m, name).threshold for m in monitors], dtype=np.int64)
                            for name in CUSUMS}
        #: The CUSUMs' sums (up sides, then down sides) and counts as this path left them (or
        #: where ``across`` keeps them: a slot of its pool, with ``kept()``).
        self.cusum_sums: tuple | None = None
        #: What ``across`` owes the group's CUSUMs, and ``_adwin`` its ADWINs (written when read).
        self.owed, self.adwin_owed = Owed(), Owed()
        #: What ``counted_on`` owes the members' counts (``_Counted``), and the first member's
        #: ``watched`` while the group is trusted (its schedule: ``across._plan``).
        self.count_owed, self.first_watched = Owed(), 0
        self.adwin: _AdwinVectors | None = None
        self.recent: _RecentPositions | None = None
        self.rings: _Rings | None = None
        #: The members as ``_advance`` left them when all were quiet (``_trusted``), else ``None``.
        self.members: list[NumericMonitor] = []
        #: Whether no member has changed since (a member's version bump clears it: ``_trusted``).
        self.intact = False
        # Each missing-rate side's "present" step, threshold and whether it is on (fixed by the
        # fit), and the sums as this path left them when the whole group was quiet.
        rates = [m.missing_rate for m in monitors]
        self.missing_sides = (np.array([mr.steps[:, 0] for mr in rates], dtype=np.int64),
                              np.array([mr.threshold for mr in rates], dtype=np.int64),
                              np.array([mr.enabled for mr in rates], dtype=bool))
        self.missing_sums = None  # an array, or a slot of ``across``' pool
        self.critical = np.array([m.ks.critical for m in monitors])  # both fixed by the fit
        self.hist_critical = np.array([m.histogram.critical for m in monitors])

    def valid_for(self, monitors: list[NumericMonitor]) -> bool:
        owners = self.owners
        if len(owners) != len(monitors):
            return False
        for (ref, edges, cell_of), m in zip(owners, monitors):
            if ref is not m.reference or edges is not m.edges or cell_of is not m.histogram.cell_of:
                return False
        return True

    def cusum_steps(self, names: tuple) -> np.ndarray:
        """The increments of the CUSUMs named, as one (2 sides, names, positions) table (a view
        of ``cusum_steps_by_position``)."""
        return self.cusum_steps_by_position(names).transpose(1, 2, 0)

    def cusum_steps_by_position(self, names: tuple) -> np.ndarray:
        """The same increments position by position: (positions, 2 sides, names), C-contiguous
        (what ``across_compiled`` reads by address)."""
        subset = self._subsets.get(names)
        if subset is None:
            subset = self._subsets[names] = np.ascontiguousarray(self._steps[:, :, [CUSUMS.index(n) for n in names]])
            subset.flags.writeable = False
        return subset

    def cusum_threshold(self, names: tuple) -> np.ndarray:
        """Thresholds of the rows of ``_cusums``: up sides name by name, then down sides (made
        once per names: the fit fixes them; read only)."""
        found = self._threshold_rows.get(names)
        if found is None:
            once = np.concatenate([self._thresholds[n] for n in names]) if names else np.zeros(0, np.int64)
            found = self._threshold_rows[names] = np.concatenate((once, once))
            found.flags.writeable = False
        return found

    def kernel_row(self, names: tuple) -> list:
        """What ``across_compiled.Plans`` needs of these tables for the CUSUMs named: the
        addresses and sizes of the tables that stay as they are for the group's life."""
        found = self._kernel_rows.get(names)
        if found is None:
            found = self._kernel_rows[names] = fixed_row(self.guard, self.guard32, self.coarse, self.room,
                                                         self.row_start, self.u_rows,
                                                         self.cusum_steps_by_position(names))
        return found


def _null_steps(reference, cusums: tuple) -> tuple[tuple, np.ndarray, np.ndarray, np.ndarray]:
    """A reference's row of the group tables: its key, the uniform score of each position, the
    CUSUMs' increments there (2 sides x CUSUMS x positions), and their increments at a score of
    0 (the padding past the row). All depend on the reference only through its ties (what
    ``PageHinkley.fit`` learns is remembered by them too) and the CUSUMs' settings, which the key
    holds, so references of one size without ties, the common case, share one row: it is made
    once (``_ROWS``)."""
    key = (reference.ties_key(), *((type(d), d.allowance, *(getattr(d, f) for f in d.null_fields)) for d in cusums))
    row = _ROWS.get(key)
    if row is None:
        u = reference.uniform_scores(np.arange(reference.n_positions))  # the same arithmetic as one by one
        z = np.append(ndtri(u), 0.0)
        steps = np.empty((2, len(cusums), z.size), dtype=np.int32)
        for c, d in enumerate(cusums):
            x = d.statistic(z)
            # |z| < 5.3 for a reference of a million values, shift <= 10: |step| < 2**25 fits int32.
            steps[0, c] = np.rint((x - d.allowance) * QUANTUM).astype(np.int64)
            steps[1, c] = np.rint((-x - d.allowance) * QUANTUM).astype(np.int64)
        if len(_ROWS) >= 128:
            _ROWS.clear()
        row = _ROWS[key] = (key, u, steps[:, :, :-1], steps[:, :, -1:])
    return row


#: Rows of the group tables already made, by the reference's ties and the CUSUMs' settings.
_ROWS: dict[tuple, tuple] = {}


class _SharedRows:
    """The tables of a group that depend on its references only through their ties and the
    CUSUMs' settings (``_null_steps``' rows, padded to the group's ``width``): each position's
    uniform score, the CUSUMs' increments (rows * width x 2 sides x CUSUMS, int32) and the
    counts of reference values below / at or below it (int32). Read only, and shared by every
    group with the same rows and width (``_shared_rows``): the models of a worker, fitted on
    references of one size without ties, read one table instead of one each, which stays in the
    cache between their lookups instead of being read cold model after model.

    >>> from streamdrift.detectors.reference import Reference
    >>> from streamdrift.detectors.page_hinkley import PageHinkley
    >>> from streamdrift.detectors.scale import Scale
    >>> reference = Reference(np.array([0.5, 1.5, 2.5]))
    >>> row = _null_steps(reference, (PageHinkley(), Scale()))
    >>> a = _shared_rows({row[0]: (0, row, reference)}, 8)        # 7 positions, padded to 8
    >>> a is _shared_rows({row[0]: (0, row, reference)}, 8), a.u_rows.flags.writeable
    (True, False)
    >>> a.u_rows.tolist(), a.below.tolist()
    ([0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 0.5], [0, 0, 1, 1, 2, 2, 3, 0])
    """

    __slots__ = ("u_rows", "steps", "below", "at_or_below", "subsets")

    def __init__(self, firsts: dict, width: int):
        # Past a row's positions, the score 0.5 and the increments of a score of 0, as ever.
        u_rows = np.full((len(firsts), width), 0.5)
        # Position by position: a value's increments of every CUSUM on one cache line, where side
        # by side tables had them on four (the cross-model call reads them cold, value by value).
        steps = np.empty((len(firsts), width, 2, len(CUSUMS)), dtype=np.int32)
        # The counts of reference values below / at or below each position (the KS test's
        # tables) depend on the ties alone too: the same rows.
        below = np.zeros((len(firsts), width), dtype=np.int32)
        at_or_below = np.zeros((len(firsts), width), dtype=np.int32)
        for row, (_, u, row_steps, padding), r in firsts.values():
            size = u.size
            u_rows[row, :size], steps[row, :size], steps[row, size:] = u, row_steps.transpose(2, 0, 1), padding[:, :, 0]
            below[row, :size], at_or_below[row, :size] = r.position_below, r.position_at_or_below
        self.u_rows, self.steps = u_rows.ravel(), steps.reshape(-1, 2, len(CUSUMS))
        self.below, self.at_or_below = below.ravel(), at_or_below.ravel()
        for table in (self.u_rows, self.steps, self.below, self.at_or_below):
            table.flags.writeable = False
        #: ``steps`` of some of the CUSUMs only (``_Tables.cusum_steps_by_position``), made once.
        self.subsets: dict[tuple, np.ndarray] = {CUSUMS: self.steps}


def _shared_rows(firsts: dict, width: int) -> _SharedRows:
    """The ``_SharedRows`` of a group's distinct rows (``firsts``: each row's key to its number,
    ``_null_steps`` row and a reference with those ties) at ``width``, made once."""
    key = (tuple(firsts), width)
    shared = _SHARED.get(key)
    if shared is None:
        if len(_SHARED) >= 128:
            _SHARED.clear()
        shared = _SHARED[key] = _SharedRows(firsts, width)
    return shared


#: ``_SharedRows`` already made, by their rows' keys and width.
_SHARED: dict[tuple, _SharedRows] = {}


def _tables(cache: FastPath, monitors: list[NumericMonitor]) -> _Tables:
    """The group's tables, kept by its first monitor (a group keeps its members while quiet)."""
    first = monitors[0]
    kept = cache.tables_of(first)
    if kept is None or not kept.valid_for(monitors):
        kept = _Tables(monitors)
        cache.keep(first, kept)
    return kept


def _positions(tables: _Tables, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``Reference.positions`` of every row, in fewer calls; with ``rank`` (where each value of x,
    flat, sits in the rows sorted) and the sorted positions as indices into the group's tables.

    Each row is searched in (nearly) sorted order: a binary search over ascending keys predicts
    its branches, and a sort costs less than the mispredictions it saves. The group's tables are
    read in that order too: they are cold (64 models' tables do not fit in a cache), and
    ascending reads stream them where arrival-order reads miss on almost every value.
    ``searchsorted`` is exact whatever the order of its keys, so the sort need not be: values
    are sorted by their bucket among 32767 between the reference's extremes, by an int16 radix
    sort, twice as fast as sorting the floats.
    """
    k, n = x.shape
    with np.errstate(all="ignore"):  # huge values overflow to inf and clip: any bucket is exact
        bucket = x - tables.low
        bucket *= tables.scale
        np.maximum(bucket, -1.0, out=bucket)  # np.clip, without its Python wrapper
        np.minimum(bucket, 32767.0, out=bucket)
        buckets = bucket.astype(np.int16)
    order = buckets.argsort(axis=1, kind="stable")
    order += tables.rows * n  # flat indices into x
    ascending = x.take(order)
    # The method (no np.searchsorted dispatch, same result), row by row in C: ``map`` over the rows.
    j = np.array(list(map(_SEARCHSORTED, tables.distinct, ascending)))
    p = j + j
    p += tables.guard.take(j + tables.guard_offset) == ascending
    rank = np.empty(k * n, dtype=np.intp)
    rank[order.ravel()] = _count_up(k * n)
    rank = rank.reshape(k, n)
    positions = p.take(rank)
    p += tables.offset
    return positions, rank, p


_SEARCHSORTED = np.ndarray.searchsorted


def _count_up(size: int) -> np.ndarray:
    """``np.arange(size)``: small ones made once per size (read-only: shared), where making it
    costs more than filling it; at most 64 of at most 64 KB are kept."""
    return _small_count_up(size) if size <= 8192 else np.arange(size, dtype=np.intp)


@functools.lru_cache(maxsize=64)
def _small_count_up(size: int) -> np.ndarray:
    out = np.arange(size, dtype=np.intp)
    out.flags.writeable = False
    return out


def _missing_rate(monitors, tables: "_Tables", n: int, quiet: np.ndarray, trusted: bool):
    """No value is missing here: each side adds its "present" step ``n`` times (the closed form
    of ``MissingRate.update``: rising, the last sum is the highest; falling towards 0, the first)."""
    step, threshold, enabled = tables.missing_sides
    start = missing_start(tables, monitors, trusted)
    new, crossed = missing_present(start, n, step, threshold, enabled)
    quiet &= ~crossed
    changed = (new != start).any(axis=1)

    def apply(quiet_rows, everyone):
        if changed.any():
            rows = new.tolist()
            for i in np.flatnonzero(changed & quiet).tolist():
                monitors[i].missing_rate.sums = rows[i]
        tables.missing_sums = new if everyone else None
    return apply


def missing_start(tables: "_Tables", monitors, trusted: bool) -> np.ndarray:
    """The group's missing-rate sums (features x sides): as this path left them, if it may
    trust that, else read from the monitors."""
    kept = tables.missing_sums
    if trusted and kept is not None:
        return kept if type(kept) is np.ndarray else kept.kept()  # or its slot of a pool (``across``)
    return np.array([m.missing_rate.sums for m in monitors], dtype=np.int64)


def missing_present(start: np.ndarray, n, step: np.ndarray, threshold: np.ndarray, enabled: np.ndarray):
    """Missing-rate sums (rows x sides, from ``start``) after ``n`` present values (a number or a
    column of numbers, one per row), each side adding its "present" ``step`` ``n`` times: the new
    sums (unchanged where a side is off) and which rows cross a threshold on the way."""
    total = start + n * step
    rising = step >= 0
    new = np.where(rising, total, np.maximum(total, 0))
    peak = np.where(rising, new, np.maximum(start + step, 0))
    return np.where(enabled, new, start), ((peak > threshold) & enabled).any(axis=1)


def cusum_start(tables: "_Tables", monitors, names: tuple, trusted: bool
                ) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """The group's CUSUMs named (name by name, each over the monitors), their sums (upward sides,
    then downward), counts and run starts (as the sums): as this path left them, if it may trust
    that, else read from the detectors."""
    kept = tables.cusum_sums
    if trusted and kept is not None:
        if type(kept) is not tuple:  # its slot of a pool (``across``)
            kept = kept.kept()
        if kept[0] == names:
            return kept[1], kept[2], kept[3], kept[4]
    detectors = [getattr(monitor, name) for name in names for monitor in monitors]
    start = np.array([d.up for d in detectors] + [d.down for d in detectors], dtype=np.int64)
    since = np.array([d.up_since for d in detectors] + [d.down_since for d in detectors], dtype=np.int64)
    return detectors, start, np.array([d.count for d in detectors], dtype=np.int64), since


def runs_since(zeros: np.ndarray, counts: np.ndarray, since: np.ndarray) -> np.ndarray:
    """The CUSUMs' run starts after a batch (as ``cusum_start``'s, upward sides then downward):
    after the last value at which a side's sum was 0 (``zeros``, -1 for none; ``counts``: values
    seen before the batch), else where they were."""
    before = np.concatenate((counts, counts)).reshape(zeros.shape)
    return np.where(zeros >= 0, zeros + before + 1, since.reshape(zeros.shape))


def _cusum(increments: np.ndarray, start: np.ndarray, threshold: np.ndarray):
    """Column-wise ``cusum.first_crossing`` without the crossing index: (crossed, final sum,
    last index where the sum was 0 or -1)."""
    c = np.cumsum(increments, axis=1, dtype=np.int64)
    # fmin is minimum on integers; its accumulate is ten times faster (numpy 2.4, int64 rows).
    lowest = np.fmin.accumulate(c, axis=1)
    s = c - np.minimum(lowest, -start[:, None])
    crossed = s.max(axis=1) > threshold
    # S is 0 exactly where C attains min(-start, its running minimum): the last such index is
    # the last one where C attains its overall minimum, if that is at or below -start.
    reached = lowest[:, -1] <= -start
    last_zero = np.where(reached, s.shape[1] - 1 - np.argmin(c[:, ::-1], axis=1), -1)
    return crossed, s[:, -1], last_zero


def _cusums(monitors, tables: "_Tables", names: tuple, steps: np.ndarray, quiet: np.ndarray, trusted: bool):
    """Every Page-Hinkley-type CUSUM named (``page_hinkley``, ``scale``) from its quantised
    increments (``quantise(+-statistic - allowance)``): with ``m`` = len(names) * k detectors,
    name by name, rows ``0..m-1`` of ``steps`` are their upward sides, ``m..2m-1`` the downward."""
    detectors, start, counts, since = cusum_start(tables, monitors, names, trusted)
    m = len(detectors)
    crossed, sums, zeros = _cusum(steps, start, tables.cusum_threshold(names))
    quiet &= ~(crossed[:m] | crossed[m:]).reshape(len(names), -1).any(axis=0)
    n = steps.shape[1]
    k = len(monitors)

    def apply(quiet_rows, everyone):
        after = counts + n
        if everyone:
            rows, ups, downs, counted, zero_up, zero_down, before = (
                detectors, sums[:m], sums[m:], after, zeros[:m], zeros[m:], counts)
        else:
            pick = (np.asarray(quiet_rows, dtype=np.intp)[None, :] + np.arange(0, m, k)[:, None]).ravel()
            rows = [detectors[j] for j in pick.tolist()]
            ups, downs, counted = sums[:m][pick], sums[m:][pick], after[pick]
            zero_up, zero_down, before = zeros[:m][pick], zeros[m:][pick], counts[pick]
        # A side whose sum was 0 in the batch: its run starts after the last such value.
        since_up, since_down = (zero_up + before + 1).tolist(), (zero_down + before + 1).tolist()
        for d, up, down, count, zu, su, zd, sd in zip(rows, ups.tolist(), downs.tolist(), counted.tolist(),
                                                       zero_up.tolist(), since_up, zero_down.tolist(), since_down):
            d.up, d.down, d.count = up, down, count
            if zu >= 0:
                d.up_since = su
            if zd >= 0:
                d.down_since = sd
        # Kept only when all moved on (not a view of the whole cusum).
        tables.cusum_sums = (names, detectors, sums.copy(), after, runs_since(zeros, counts, since).ravel()) \
            if everyone else None
    return apply


class _AdwinVectors:
    """A group's ADWINs as vectors, as this path left them: reading them back from the monitors'
    lists every batch cost more than the arithmetic, and so did writing them: what this path
    leaves is owed to the ADWINs (``_write_adwins``, through the tables' ``adwin_owed``), written
    when one of them is first read. The buckets are ``adwin_compiled``'s columns (``tot``,
    ``var``; ``counts`` per level, ``levels`` of them in use). Valid while every ADWIN still
    holds the very lists and pending arrays this path wrote (``owned``) and has seen no block
    since (``ADWIN`` replaces its pending array whenever it changes, and everything on
    ``set_state``).

    The pending values are the first ``pending_size`` columns of ``buffer`` (room for a block):
    a batch that completes no block adds its values in place, after them (the cross-model
    path's lookups write them there: ``pending_row``). What is past ``pending_size`` is never
    shown to anyone, so values written there for a batch that turns out not quiet are no one's."""

    def __init__(self, adwins, tot, var, counts, levels: int, total, variance, pending, width: int, blocks_seen: int,
                 block: int):
        self.adwins = adwins
        self.owned: list | None = None  # set by ``own``: when read from the ADWINs, or written to them
        self.width, self.blocks_seen, self.pending_size = width, blocks_seen, pending.shape[1]
        self.tot, self.var, self.counts, self.levels = tot, var, counts, levels
        self.total, self.variance = total, variance
        self.buffer = np.empty((pending.shape[0], block))
        self.buffer[:, :pending.shape[1]] = pending
        #: ``across_compiled.Plans``' pending columns for this buffer (its address, kept).
        self.pending_fixed = (address(self.buffer), block)
        self._slots: tuple | None = None  # ``slots``, made when first asked
        self._rows: dict[int, int] | None = None  # ``row_of``'s
        self._write: "_AdwinWrite | None" = None  # ``took``'s

    @property
    def pending(self) -> np.ndarray:
        """The pending values, (ADWINs x values): a view of ``buffer``."""
        return self.buffer[:, :self.pending_size]

    def pending_row(self) -> tuple:
        """``Plans.add``'s ``pending``: where the lookups may write this batch's values."""
        return (self.pending_fixed[0], self.pending_size, self.pending_fixed[1])

    def fits(self, n: int) -> bool:
        """Whether ``n`` more values per ADWIN complete no block: they only wait, after the
        pending ones, where the cross-model lookups write them (``pending_row``)."""
        return self.pending_size + n < self.buffer.shape[1]

    def took(self, tables: "_Tables", n: int) -> None:
        """Every ADWIN of the group (``tables``') took ``n`` values that ``fit``, already in
        ``buffer`` after the pending ones (written there by the cross-model lookups, or by
        ``_adwin``'s ``wait``): they are pending now, the vectors kept and owed to the ADWINs."""
        self.pending_size += n
        tables.adwin = self
        write = self._write
        if write is None:  # one for these vectors' life: it writes them as they are when called
            write = self._write = _AdwinWrite(self)
        tables.adwin_owed.owe(self.adwins, write)

    def own(self) -> None:
        """Note the lists and arrays the ADWINs hold now, as this path left them."""
        self.owned = [(a.levels, a.pending) for a in self.adwins]

    def valid_for(self, adwins) -> bool:
        if len(adwins) != len(self.adwins):
            return False
        settle_all(self.adwins[:1])  # what they are owed (one write for the group) sets ``owned``
        if self.owned is None:
            return False
        blocks_seen, pending_size = self.blocks_seen, self.pending_size
        for a, mine, (levels, pending) in zip(adwins, self.adwins, self.owned):
            if (a is not mine or a.levels is not levels or a.pending is not pending or a.blocks_seen != blocks_seen
                    or len(pending) != pending_size):
                return False
        return True

    def slots(self) -> tuple[np.ndarray, list[int], np.ndarray]:
        """The bucket columns in use, level after level, oldest first in each; each level's
        count; and each column's level (int8, as ``ADWIN.get_state`` has it). Fixed for these
        vectors' life: a batch that adds a block makes new ones."""
        if self._slots is None:
            capacity = self.tot.shape[1] // self.counts.size
            counts = self.counts[:self.levels].tolist()
            used = np.concatenate([np.arange(lv * capacity, lv * capacity + c) for lv, c in enumerate(counts)])
            self._slots = used, counts, np.repeat(np.arange(len(counts)), counts).astype(np.int8)
        return self._slots

    def buckets(self) -> tuple[list, list[int]]:
        """Every row's buckets as ``[total, variance]`` lists, level after level, oldest first
        in each (only the slots in use), and each level's count."""
        used, counts, _ = self.slots()
        return np.stack((self.tot[:, used], self.var[:, used]), axis=2).tolist(), counts

    def row_of(self, adwin) -> int:
        """The row of one of the group's ADWINs."""
        if self._rows is None:
            self._rows = {id(a): row for row, a in enumerate(self.adwins)}
        return self._rows[id(adwin)]


def _write_adwins(vectors: _AdwinVectors) -> None:
    """What ``_adwin`` owes the ADWINs of a group that moved on as a whole: each one's buckets
    (lists of ``[total, variance]``, level by level, as ``ADWIN`` keeps them), width, sums,
    blocks seen and pending values (a row of the group's, a view); then ``vectors`` owns them."""
    rows, counts = vectors.buckets()
    slots = list(zip(np.cumsum([0] + counts[:-1]).tolist(), np.cumsum(counts).tolist()))
    pending = list(vectors.pending)
    width, blocks_seen = vectors.width, vectors.blocks_seen
    for a, row, total, variance, pend in zip(vectors.adwins, rows, vectors.total.tolist(), vectors.variance.tolist(),
                                             pending):
        own = a.__dict__  # the owed attributes' own slots: this is the write they wait for
        own["_levels"] = [row[first:stop] for first, stop in slots]
        own["_width"], own["_total"], own["_variance"] = width, total, variance
        own["_blocks_seen"], own["_pending"] = blocks_seen, pend
    vectors.own()


class _AdwinWrite:
    """What ``_adwin`` owes a group's ADWINs (``detectors.owed``): called, it writes them
    (``_write_adwins``); ``state_of`` gives one ADWIN's ``get_state`` straight from the vectors,
    the same numbers, without writing the group (a checkpoint reads every ADWIN's state, and
    rebuilding their bucket lists only to make arrays of them again was most of its cost)."""

    __slots__ = ("vectors",)

    def __init__(self, vectors: _AdwinVectors):
        self.vectors = vectors

    def __call__(self) -> None:
        _write_adwins(self.vectors)

    def state_of(self, adwin) -> dict:
        """``ADWIN.get_state`` of ``adwin`` (one of the group's) as the write would leave it."""
        vectors = self.vectors
        used, _, levels = vectors.slots()
        row = vectors.row_of(adwin)
        return {
            "bucket_level": levels.copy(),
            "bucket_total": vectors.tot[row, used],
            "bucket_variance": vectors.var[row, used],
            "width": vectors.width, "total": float(vectors.total[row]), "variance": float(vectors.variance[row]),
            "blocks_seen": vectors.blocks_seen, "pending": vectors.buffer[row, :vectors.pending_size].copy(),
            "detections": adwin.detections,
        }


def _adwin_vectors(tables: _Tables, adwins) -> _AdwinVectors:
    kept = tables.adwin
    if kept is not None and kept.valid_for(adwins):
        return kept
    k = len(adwins)
    flat = np.array([list(chain.from_iterable(chain.from_iterable(a.levels))) for a in adwins],
                    dtype=np.float64).reshape(k, -1, 2)
    counts = [len(level) for level in adwins[0].levels]
    a0 = adwins[0]
    capacity = a0.max_buckets + 1
    tot, var = np.empty((k, len(counts) * capacity)), np.empty((k, len(counts) * capacity))
    b = 0
    for lv, count in enumerate(counts):
        tot[:, lv * capacity:lv * capacity + count] = flat[:, b:b + count, 0]
        var[:, lv * capacity:lv * capacity + count] = flat[:, b:b + count, 1]
        b += count
    total = np.array([a.total for a in adwins], dtype=np.float64)
    variance = np.array([a.variance for a in adwins], dtype=np.float64)
    pending = np.array([a.pending for a in adwins], dtype=np.float64).reshape(k, -1)
    vectors = _AdwinVectors(adwins, tot, var, np.array(counts, dtype=np.int64), len(counts), total, variance, pending,
                            a0.width, a0.blocks_seen, a0.block)
    vectors.own()
    return vectors


def _adwin(monitors, tables: _Tables, u: np.ndarray, quiet: np.ndarray, trusted: bool, in_buffer: bool = False):
    """ADWINs of one bucket structure, as ``ADWIN.update`` with buckets as vectors over monitors
    (``adwin_compiled``). ``in_buffer``: the caller's lookups wrote ``u`` after the pending
    values of the group's kept vectors wherever it fit (the cross-model path, through
    ``_AdwinVectors.pending_row``)."""
    kept = tables.adwin if trusted else None  # trusted: its ADWINs are still the members'
    adwins = kept.adwins if kept is not None else [m.adwin for m in monitors]
    a0 = adwins[0]
    block, clock, mwl, max_buckets = a0.block, a0.clock, a0.min_window_length, a0.max_buckets
    k, n = u.shape
    vectors = kept if kept is not None else _adwin_vectors(tables, adwins)
    tables.adwin = None  # until this batch is applied to every member
    if vectors.fits(n):  # no block completes: the values only wait in ``pending``
        def wait(quiet_rows, everyone):
            if not everyone:
                rows = list(np.concatenate((vectors.pending, u), axis=1))  # each ADWIN's: a row (views)
                for j in quiet_rows:
                    adwins[j].pending = rows[j]
                return
            if not (in_buffer and vectors is kept):
                size = vectors.pending_size
                vectors.buffer[:, size:size + n] = u
            vectors.took(tables, n)  # owed to the ADWINs (``detectors.owed``): written when one is first read
        return wait
    # The blocks this batch completes, summed as ADWIN.update sums them (the pending block's rest
    # first), added to copies of the vectors in one compiled call: they stay as they were unless
    # every member takes the batch.
    old_levels, capacity = vectors.levels, max_buckets + 1
    tot, var, counts, old, total, variance, pending, width, blocks_seen, cut, merged_old, in_use = take_batch(
        vectors.pending, u, block, vectors.tot, vectors.var, vectors.counts, old_levels, vectors.total,
        vectors.variance, vectors.width, vectors.blocks_seen, clock, mwl, max_buckets, a0.delta, MARGIN)
    quiet &= ~cut

    def apply(quiet_rows, everyone):
        if everyone:  # kept for the next batch, and owed to the ADWINs (``detectors.owed``)
            kept = tables.adwin = _AdwinVectors(adwins, tot, var, counts, in_use, total, variance, pending, width,
                                                blocks_seen, block)
            tables.adwin_owed.owe(adwins, _AdwinWrite(kept))
            return
        # Each level loses its oldest old buckets to merges and gains the new ones at its end:
        # edit the monitors' own lists in place rather than rebuild them.
        edits, taken = [], []
        for lv in range(in_use):
            first, stop = lv * capacity, lv * capacity + int(counts[lv])
            new = first + int(np.count_nonzero(old[first:stop]))  # the new buckets follow the old ones
            merged = int(merged_old[lv]) if lv < old_levels else 0
            if merged or stop > new or lv >= old_levels:
                begin = sum(map(len, taken))
                taken.append(range(new, stop))
                edits.append((lv, merged, begin, begin + stop - new))
        new_slots = np.array([slot for part in taken for slot in part], dtype=np.int64)
        rows = np.stack((tot[:, new_slots], var[:, new_slots]), axis=2).tolist()
        pend = list(pending)  # row views
        tot_, var_ = total.tolist(), variance.tolist()
        for j in quiet_rows:
            a = adwins[j]
            row, own = rows[j], a.levels
            for lv, merged, begin, end in edits:
                if lv < len(own):
                    level = own[lv]
                    del level[:merged]
                    level += row[begin:end]
                else:
                    own.append(row[begin:end])
            a.width, a.total, a.variance, a.blocks_seen = width, tot_[j], var_[j], blocks_seen
            a.pending = pend[j]
    return apply


def _windowed(monitors, tables: _Tables, settings, active, points, positions, quiet, trusted: bool) -> None:
    """Mark monitors whose KS or histogram test might fire at one of this batch's evaluation points
    (``windowed_compiled``: each window counted per reference position, both tests in one walk)."""
    w = settings.window
    k, n = positions.shape
    # The windows reach back this far into the recent positions (the group's rings are equally full).
    old = max(0, w - 1 - points[0])
    # Positions below 2**15 are kept as int16: the recent positions' copy is half the size.
    ext = np.empty((k, old + n), dtype=np.int16 if tables.width < 1 << 15 else np.int64)
    recent = tables.recent
    if recent is None or not (trusted or recent.valid_for(monitors)):
        recent = tables.recent = _RecentPositions.of(monitors, ext.dtype)
    if recent is not None:
        recent.last(old, ext)
    else:
        for i, m in enumerate(monitors):
            m.recent_positions.last(old, ext[i, :old])
    ext[:, old:] = positions
    windowed_quiet(ext, old, np.asarray(points, dtype=np.int64), w, "ks" in active, "histogram" in active,
                   tables.row_start, tables.below, tables.at_or_below, tables.size, tables.critical, tables.cell,
                   tables.width, tables.cells, tables.hist_reference, tables.hist_critical, MARGIN, quiet)
