"""Many models' numeric groups advanced at once: the fast path across models.

``update_together`` advances one model's numeric features in one set of numpy calls. At small
batches that is not enough: 250 events over 32 models give each model ~8 values per feature,
and a model's few dozen numpy calls on such tiny arrays cost ~450 us whatever their size, paid
once per model and batch. ``update_groups_together`` takes the calls of many models at once
(each model its own number of values) and advances the common, quiet case of all of them on
*ragged* flat arrays - one segment per (model, feature), one set of numpy calls per batch:

- the reference lookups and the Page-Hinkley and scale CUSUMs: every model's in one compiled
  call (``across_compiled``), each model's tables read where they are, their crossings, sums
  and run starts side by side for all models;
- the missing-rate CUSUM: its closed form over all (model, feature) rows at once;
- the detectors' write-back: owed to them (``owed``), done when one of them is first read.

Per model remain ADWIN (its pending values, or its blocks through ``together._adwin``), the
windowed tests at an evaluation point (``together._windowed``) and the rings: the same
functions, on the same arrays, as ``update_together``'s.

Only *trusted* groups are taken (``together._trusted``: the model's numeric features moved on
together and quietly last time, and none of them changed since) whose batch holds no missing
value. A model any of whose features might detect something in this batch (a CUSUM crossing,
an ADWIN cut, a windowed test near its threshold) is left untouched here and handed, with every
other model, to ``update_together`` - so detections and every rare path keep one implementation,
and the results are exactly what updating each monitor one by one gives.

>>> from streamdrift.detectors import MonitorSettings, encode_monitor
>>> rng = np.random.default_rng(5)
>>> settings = MonitorSettings(reference_size=300, window=100, evaluate_every=50)
>>> models = [[NumericMonitor(settings) for _ in range(3)] for _ in range(4)]
>>> paths = [FastPath() for _ in models]
>>> alone = [[NumericMonitor(settings) for _ in range(3)] for _ in models]
>>> for batch in range(60):
...     sizes = rng.integers(0, 20, len(models))
...     values = [rng.normal(0, 1, (3, size)) for size in sizes]
...     found = update_groups_together(list(zip(models, values, paths)))
...     expected = [[m.update(row) for m, row in zip(ms, v)] for ms, v in zip(alone, values)]
...     assert [[len(d) for d in f] for f in found] == [[len(d) for d in e] for e in expected]
>>> all(encode_monitor(a) == encode_monitor(b) for ms, bs in zip(models, alone) for a, b in zip(ms, bs))
True
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from functools import lru_cache, partial
from itertools import repeat
from operator import attrgetter, is_

import numpy as np

from .across_compiled import NO_PENDING, Plans, lookups_and_cusums, meta_rows
from .detection import Detection
from .numeric import NumericMonitor
from .rings_compiled import extend_rings
from .together import (_ALL, FastPath, _AdwinVectors, _adwin, _collected, _cusum_names, _evaluation_points,
                       _watching, counted_on, cusum_start, missing_present, missing_start, moved_on, ring_row,
                       runs_since, still_collecting, _trusted, _windowed, update_together)

def update_groups_together(groups: list[tuple[list[NumericMonitor], np.ndarray, FastPath]],
                           pools: "Pools | None" = None) -> list[Sequence[Sequence[Detection]]]:
    """``[update_together(monitors, values, fast_path) for monitors, values, fast_path in
    groups]``, with the same results and the same state afterwards, the quiet trusted groups
    advanced together. Each group is one model's numeric monitors and its (monitors x values)
    array; the groups' monitors must be distinct (a model appears once per call). ``pools``:
    what the caller keeps between its calls (``Pools``), if it makes them batch after batch.
    A model this path took whole, all quiet, gets a shared tuple of empty tuples (``_quiet``):
    its results are read, never changed."""
    results: list = [None] * len(groups)
    plans: dict[tuple, list[_Plan]] = {}
    for index, (monitors, values, fast_path) in enumerate(groups):
        for plan in _plans(index, monitors, values, fast_path):
            plans.setdefault(plan.active, []).append(plan)
    for members in plans.values():
        for plan in _advance_across(_finite(members), pools):
            index = plan.index
            found = results[index]
            if found is None and plan.k == len(groups[index][0]):  # the whole model, its one plan
                results[index] = _quiet(plan.k)
                continue
            if found is None:
                found = results[index] = [None] * len(groups[index][0])
            for row in plan.rows:
                found[row] = ()
    if pools is not None:
        pools.keep_only(plans)
    for index, (monitors, values, fast_path) in enumerate(groups):
        found = results[index]
        if found is None:  # none of its groups taken here
            results[index] = update_together(monitors, values, fast_path)
            continue
        if type(found) is tuple:  # all taken, all quiet
            continue
        left = [row for row, result in enumerate(found) if result is None]
        if left:  # the groups of the model this path did not take
            rows = np.asarray(values, dtype=np.float64)[left]
            for row, result in zip(left, update_together([monitors[r] for r in left], rows, fast_path)):
                found[row] = result
    return results


class _Plan:
    """One group of a model's call as this path sees it: its trusted tables, its schedule this
    batch, and which of the call's monitors and rows of values it has (``rows``)."""

    __slots__ = ("index", "rows", "monitors", "values", "tables", "n", "k", "active", "points", "names")

    def __init__(self, index, rows, monitors, values, tables, active, points):
        self.index, self.rows, self.monitors, self.values, self.tables = index, rows, monitors, values, tables
        self.k, self.n = values.shape
        self.active, self.points = active, points
        self.names = _cusum_names(active)


def _plans(index: int, monitors: list[NumericMonitor], values, fast_path: FastPath | None) -> list[_Plan]:
    """The call's ``_Plan`` s this path may take (none for an empty call: ``update_together``
    returns at once for it): one for a trusted group of all its monitors; else one per trusted
    group among them. A model's features part into several groups when their schedules part
    (one of them re-armed after an alert, say); the per-model path keeps each group's tables,
    and here each group is a plan of its own. A re-arming group (collecting the reference of its
    new regime after an alarm) is taken like any other, its muted detectors left out, unless its
    reference completes in this batch (``still_collecting``). Monitors in no trusted group (the
    batch after an alarm, say) are left to ``update_together``, the rest still taken here: one
    feature re-arming does not send its model's other features the slow way."""
    if fast_path is None or not monitors:
        return []
    values = np.ascontiguousarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != len(monitors) or values.shape[1] == 0:
        return []
    tables = _trusted(fast_path, monitors)
    n = values.shape[1]
    if tables is not None:
        return [_plan(index, range(len(monitors)), monitors, values, tables)] if still_collecting(monitors, n) else []
    return [_plan(index, rows, members, values.take(rows, axis=0), tables)
            for rows, members, tables in _parts(monitors, fast_path) if still_collecting(members, n)]


def _parts(monitors: list[NumericMonitor], fast_path: FastPath) -> list[tuple[list[int], list, object]]:
    """The trusted groups among ``monitors`` (not one group): each one's rows, members and
    tables. Kept on ``fast_path`` for the next batch, which usually has the same monitors in the
    same groups: then each group's trust is checked again (``_trusted``), and a group that lost it
    is left out, as when the parts are found afresh (a group is trusted only as it was left)."""
    kept = fast_path.parts
    if kept is not None and len(kept[0]) == len(monitors) and all(map(is_, kept[0], monitors)):
        return [part for part in kept[1] if _trusted(fast_path, part[1]) is part[2]]
    row_of = {id(m): row for row, m in enumerate(monitors)}
    parts, covered = [], set()
    for row, monitor in enumerate(monitors):
        if row in covered:
            continue
        tables = fast_path.tables_of(monitor)  # a group's tables are kept by its first monitor
        members = tables.members if tables is not None else None
        if not members or members[0] is not monitor:
            continue
        rows = [row_of.get(id(m), -1) for m in members]
        if min(rows) < 0 or covered.intersection(rows) or _trusted(fast_path, members) is not tables:
            continue
        parts.append((rows, members, tables))
        covered.update(rows)
    fast_path.parts = (list(monitors), parts)
    return parts


def _plan(index: int, rows, monitors: list[NumericMonitor], values: np.ndarray, tables) -> _Plan:
    first = monitors[0]
    s = first.settings
    # ``first.watched`` (trusted: as its tables keep it), without settling what counted_on owes
    points = _evaluation_points(tables.first_watched, values.shape[1], s.evaluate_every, s.window)
    # Its detectors but those muted while it re-arms (none otherwise: a trusted group that is
    # not collecting was a quiet candidate, unmuted).
    return _Plan(index, rows, monitors, values, tables, _watching(first), points)


def _finite(plans: list[_Plan]) -> list[_Plan]:
    """The plans whose values are all finite (a missing value takes the model to ``update_together``)."""
    if np.isfinite(np.concatenate([plan.values.ravel() for plan in plans])).all():
        return plans
    return [plan for plan in plans if np.isfinite(plan.values).all()]


def _advance_across(plans: list[_Plan], pools: "Pools | None" = None) -> list[_Plan]:
    """Advance every plan (one set of detectors, ``active``) whose features are all quiet this
    batch; return those. The others are left exactly as they were. ``pools``: the last batch's
    pooled state (``Pools``), used if these are its plans, and kept if all of them are quiet."""
    if not plans:
        return []
    active = plans[0].active
    quiet = np.ones(len(plans), dtype=bool)
    commit = []
    names = plans[0].names
    pool = None
    if pools is not None:
        pool, plans = pools.get(active, plans)  # in the pool's order if it is theirs
    rows = np.array([plan.k for plan in plans])
    lengths = np.repeat(np.array([plan.n for plan in plans]), rows)
    cusums = _Cusums(plans, names, lengths, pool)
    lookups, flat = _look_up(plans, cusums, "adwin" in active)
    if names:
        quiet &= ~_per_plan(cusums.crossed.any(axis=0), rows)
        commit.append(cusums.apply)
    missing = None
    if "missing_rate" in active:
        missing = _MissingRates(plans, lengths, pool)
        if missing.crossed is not None:
            quiet &= ~_per_plan(missing.crossed, rows)
        commit.append(missing.apply)
    applies = []
    for i, (plan, lookup) in enumerate(zip(plans, lookups)):
        applies.append(_model_steps(plan, lookup, quiet, i))
    done = [plan for plan, ok in zip(plans, quiet.tolist()) if ok]
    everyone = len(done) == len(plans)
    if everyone and pools is not None:  # pooled, and kept for the next batch
        pool = pool if pool is not None else _Pool(plans, names, cusums, missing)
    elif not everyone:
        pool = None  # the quiet plans' state kept plan by plan; the pool (if any) stays as it was
    cusums.pool = pool
    if missing is not None:
        missing.pool = pool
    if done:
        for apply in commit:
            apply(quiet)
        _finish(plans, lookups, applies, quiet, flat)
    if pools is not None:
        pools.keep(active, pool if everyone else None)
    return done


def _per_plan(flags: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Which plans have a flagged (model, feature) row (rows of plan ``i``: ``rows[i]`` of them)."""
    return np.logical_or.reduceat(flags, np.cumsum(rows) - rows)


class _Lookup:
    """A plan's values looked up in its tables: positions (as ``Reference.positions``) and, if
    the plan runs ADWIN, the values' uniform scores, each (features x values); where they start
    (``at``) in the call's flat values and positions (``_Flat``). The arrays are views of the
    call's, made when asked: most batches read neither (ADWIN's pending values are written in
    place, the windowed tests run at evaluation points only)."""

    __slots__ = ("all_positions", "all_u", "at", "k", "n")

    def __init__(self, all_positions: np.ndarray, all_u: np.ndarray | None, at: int, k: int, n: int):
        self.all_positions, self.all_u, self.at, self.k, self.n = all_positions, all_u, at, k, n

    @property
    def positions(self) -> np.ndarray:
        return self.all_positions[self.at:self.at + self.k * self.n].reshape(self.k, self.n)

    @property
    def u(self) -> np.ndarray | None:
        u = self.all_u
        return None if u is None else u[self.at:self.at + self.k * self.n].reshape(self.k, self.n)


class _Flat:
    """Every plan's values and positions of one lookup call, flat (plan after plan)."""

    __slots__ = ("values", "positions")

    def __init__(self, values, positions):
        self.values, self.positions = values, positions


def _look_up(plans: list[_Plan], cusums: "_Cusums", scores: bool) -> tuple[list[_Lookup], _Flat]:
    """Every plan's ``together._positions`` (and, with ``scores``, ADWIN's uniform scores) and
    its CUSUMs (kept by ``cusums``), in one compiled call for all of them
    (``across_compiled``: each search exact whatever the order of its keys, each CUSUM the
    per-model recurrence). One call per batch instead of two per model: at 8 values per row,
    the calls' own cost was a fixed ~12 us per model and batch."""
    names, pool = cusums.names, cusums.pool
    if pool is not None:  # the plans' rows of the call: what their tables fix is kept by the pool
        flat = np.concatenate([plan.values.ravel() for plan in plans])
        positions, u, crossed, sums, zeros = lookups_and_cusums(
            flat, pool.kernel_meta([plan.n for plan in plans], plans if scores else None), cusums.start,
            cusums.threshold, len(names), scores)
    else:
        pooled = Plans()
        for plan in plans:
            tables = plan.tables
            vectors = tables.adwin if scores else None  # trusted: the group's ADWINs (``together._adwin``)
            pooled.add(plan.values, tables.guard, tables.guard32, tables.coarse, tables.room, tables.row_start,
                       tables.u_rows, tables.cusum_steps_by_position(names), None, None, tables.kernel_row(names),
                       vectors.pending_row() if vectors is not None else NO_PENDING)
        positions, u, crossed, sums, zeros = pooled.run(scores, cusums.start, cusums.threshold)
        flat = pooled.flat
    cusums.found(crossed, sums, zeros)
    lookups, at = [], 0
    u = u if scores else None
    for plan in plans:
        k, n = plan.k, plan.n
        lookups.append(_Lookup(positions, u, at, k, n))
        at += k * n
    return lookups, _Flat(flat, positions)


def _model_steps(plan: _Plan, lookup: _Lookup, quiet: np.ndarray, i: int):
    """What stays per model before the commit: ADWIN (pending values, or blocks and cut tests)
    and, at an evaluation point, the windowed tests; clears ``quiet[i]`` if the model might
    detect something. Returns ADWIN's commit: the group's ``_AdwinVectors`` if its values only
    wait (``_AdwinVectors.took`` commits them), else ``_adwin``'s (or ``None``)."""
    if not quiet[i]:
        return None
    tables, active = plan.tables, plan.active
    mine = _all_quiet(plan.k)
    apply = None
    if "adwin" in active:
        kept = tables.adwin
        if kept is not None and kept.fits(plan.n):  # the usual batch: no block completes
            tables.adwin = None  # until the batch is applied (``_finish``), as ``_adwin`` leaves it
            apply = kept
        else:
            apply = _adwin(plan.monitors, tables, lookup.u, mine, True, in_buffer=True)
    if plan.points and ("ks" in active or "histogram" in active):
        _windowed(plan.monitors, tables, plan.monitors[0].settings, active, plan.points, lookup.positions, mine,
                  True)
    if not _ALL(mine):
        quiet[i] = False
    return apply


@lru_cache(maxsize=64)
def _quiet(k: int) -> tuple:
    """The results of ``k`` monitors that detected nothing: one tuple per size, kept."""
    return ((),) * k


def _all_quiet(k: int) -> np.ndarray:
    """A new array of ``k`` True: a copy of one kept per size (``np.ones`` is a Python function,
    four times the cost, paid per plan and batch)."""
    return _quiet_flags(k).copy()


@lru_cache(maxsize=64)
def _quiet_flags(k: int) -> np.ndarray:
    flags = np.ones(k, dtype=bool)
    flags.flags.writeable = False
    return flags


def _finish(plans: list[_Plan], lookups: list[_Lookup], adwin_applies: list, quiet: np.ndarray, flat: _Flat) -> None:
    """The rest of ``together._advance``'s commit for the plans all of whose features were
    quiet: ADWIN, then the rings and cached recent positions of them all in one compiled call
    (``rings_compiled``), counts and the groups' trust."""
    rows, extended = [], []
    for plan, lookup, adwin_apply, ok in zip(plans, lookups, adwin_applies, quiet.tolist()):
        if not ok:
            continue
        if type(adwin_apply) is _AdwinVectors:
            adwin_apply.took(plan.tables, plan.n)
        elif adwin_apply is not None:
            adwin_apply(range(plan.k), True)
        if plan.monitors[0].collecting:  # a re-arming group: its reference does not complete (``_plans``)
            _collected(plan.monitors, range(plan.k), plan.values)
        found = ring_row(plan.tables, plan.monitors, lookup.at, plan.n)
        if found is None:  # rings of unequal counts: one by one
            moved_on(plan.tables, plan.monitors, range(plan.k), plan.values, lookup.positions, True, True)
            continue
        rows.append(found[0])
        extended.append((plan, found[1]))
    if rows:
        extend_rings(flat.values, flat.positions, np.array(rows, dtype=np.int64))
        for plan, rings in extended:
            counted_on(plan.tables, plan.monitors, rings, plan.n)


class _Cusums:
    """Every plan's Page-Hinkley-type CUSUMs (``names``) on one ragged array: row ``side *
    len(names) + name``, one segment of columns per (model, feature). Made with their starts
    (``start``, ``threshold``: from each plan's, or the ``pool`` of these very plans); their
    crossings, sums and last zeros come from ``_look_up``'s call (``found``)."""

    def __init__(self, plans: list[_Plan], names: tuple, lengths: np.ndarray, pool: "_Pool | None" = None):
        self.plans, self.names, self.lengths, self.pool = plans, names, lengths, pool
        c = len(names)
        if pool is not None:
            self.detectors, self.start, self.threshold = pool.detectors, pool.sums, pool.thresholds
            self.counts, self.since = pool.counts, pool.since
            return
        starts, thresholds, counts, since, self.detectors = [], [], [], [], []
        for plan in plans:
            k = plan.k
            if not c:
                starts.append(np.zeros((0, k), np.int64))
                thresholds.append(np.zeros((0, k), np.int64))
                continue
            detectors, start, count, runs = cusum_start(plan.tables, plan.monitors, names, True)
            self.detectors.append(detectors)
            starts.append(start.reshape(-1, k))
            thresholds.append(plan.tables.cusum_threshold(names).reshape(-1, k))
            counts.append(count.reshape(c, k))
            since.append(runs.reshape(2 * c, k))
        self.start, self.threshold = np.concatenate(starts, axis=1), np.concatenate(thresholds, axis=1)
        if c:
            self.counts, self.since = np.concatenate(counts, axis=1), np.concatenate(since, axis=1)

    def found(self, crossed: np.ndarray, sums: np.ndarray, zeros: np.ndarray) -> None:
        self.crossed, self.sums, self.zeros = crossed, sums, zeros

    def apply(self, quiet: np.ndarray) -> None:
        """Keep each quiet plan's sums, counts and run starts for its next batch, and owe them to
        its detectors (``detectors.owed``: written when first read, as ``together._cusums``'
        commit writes them). With a ``pool`` (every plan quiet): kept there, each plan's
        ``cusum_sums`` its slot of it."""
        everyone = bool(_ALL(quiet))
        plans = self.plans if everyone else [p for p, ok in zip(self.plans, quiet.tolist()) if ok]
        columns = None if everyone else np.repeat(quiet, [p.k for p in self.plans])
        sums, zeros, counts, since, lengths = self.sums, self.zeros, self.counts, self.since, self.lengths
        if columns is not None:
            sums, zeros, counts, since, lengths = (sums[:, columns], zeros[:, columns], counts[:, columns],
                                                   since[:, columns], lengths[columns])
        after = counts + lengths
        runs = runs_since(zeros, counts, since)
        if self.pool is not None:
            self.pool.moved_on(sums, after, runs)
            return
        mine = self.detectors if everyone else [d for d, ok in zip(self.detectors, quiet.tolist()) if ok]
        start = 0
        for plan, d in zip(plans, mine):
            end = start + plan.k
            kept = (self.names, d, sums[:, start:end].ravel(), after[:, start:end].ravel(), runs[:, start:end].ravel())
            plan.tables.cusum_sums = kept
            plan.tables.owed.owe(d, partial(_write_cusums, kept))
            start = end


def _write_cusums(kept: tuple) -> None:
    """What ``_Cusums.apply`` owes a plan's detectors: their sums, counts and run starts."""
    _, detectors, sums, counts, since = kept
    m = len(detectors)
    _set_all(detectors, "_up", sums[:m].tolist())
    _set_all(detectors, "_down", sums[m:].tolist())
    _set_all(detectors, "_count", counts.tolist())
    _set_all(detectors, "_up_since", since[:m].tolist())
    _set_all(detectors, "_down_since", since[m:].tolist())


def _set_all(objects: list, name: str, values: list) -> None:
    """``setattr(o, name, v)`` for each pair, in C."""
    deque(map(setattr, objects, repeat(name), values), maxlen=0)


class _MissingRates:
    """Every plan's missing-rate CUSUMs at once: no value is missing, so each side adds its
    "present" step ``n`` times (``together._missing_rate``'s closed form, over all rows)."""

    def __init__(self, plans: list[_Plan], lengths: np.ndarray, pool: "_Pool | None" = None):
        self.plans, self.pool = plans, pool
        if pool is not None:
            (step, threshold, on), start = pool.missing_sides, pool.missing
        else:
            steps, thresholds, enabled, starts = [], [], [], []
            for plan in plans:
                tables = plan.tables
                step, threshold, on = tables.missing_sides
                steps.append(step)
                thresholds.append(threshold)
                enabled.append(on)
                starts.append(missing_start(tables, plan.monitors, True))
            step, threshold, on = np.concatenate(steps), np.concatenate(thresholds), np.concatenate(enabled)
            start = np.concatenate(starts)
            #: Each side's "present" step, threshold and whether it is on, row by row (fixed by the fits).
            self.sides = (step, threshold, on)
        self.start = start
        if pool is not None and pool.missing_at_rest():
            # Present values leave every sum where it is and cross nothing: ``new`` is ``start``
            # itself, and ``crossed`` is ``None`` (no row crosses).
            self.new, self.crossed = start, None
        else:
            self.new, self.crossed = missing_present(start, lengths[:, None], step, threshold, on)

    def apply(self, quiet: np.ndarray) -> None:
        """Write back the changed sums of the quiet plans; keep each plan's for its next batch
        (in the ``pool``, if there is one: every plan is quiet)."""
        new, start = self.new, self.start
        row = 0
        changed = values = None
        if new is not start:  # (at rest nothing moved)
            changed = (new != start).any(axis=1)
            values = new.tolist() if changed.any() else None
        if self.pool is not None:
            if values is not None:
                for j in np.flatnonzero(changed).tolist():
                    self.pool.monitors[j].missing_rate.sums = values[j]
            self.pool.missing_moved_on(new)
            return
        for plan, ok in zip(self.plans, quiet.tolist()):
            end = row + plan.k
            if ok:
                if values is not None:
                    for j in np.flatnonzero(changed[row:end]).tolist():
                        plan.monitors[j].missing_rate.sums = values[row + j]
                plan.tables.missing_sums = new[row:end]
            row = end


class Pools:
    """What the cross-model path keeps between the batches of one caller (a pipeline): for each
    set of detectors, the CUSUM and missing-rate state of the last batch's plans as one array
    per kind (``_Pool``), when all of them took it quietly. The next batch usually brings the
    same models, each again trusted: then their starts are those arrays as they are, not read
    plan by plan and joined, and what is kept and owed is the pool's arrays, not a slice per
    plan. Each plan's tables point at their slot of the pool (``cusum_sums``, ``missing_sums``),
    so a plan that anything else moves on (``update_together``) leaves it, and the pool is made
    afresh.

    >>> pools = Pools()
    >>> pools.get(("page_hinkley",), [])
    (None, [])
    """

    __slots__ = ("kept",)

    def __init__(self):
        self.kept: dict[tuple, _Pool] = {}

    def get(self, active: tuple, plans: list[_Plan]) -> tuple["_Pool | None", list[_Plan]]:
        """The pool of ``active`` kept last if it is these plans' (the same groups, none moved on
        elsewhere since), and the plans in its order (a batch brings its models in the order of
        their first events); else ``None`` and the plans as they are."""
        pool = self.kept.get(active)
        if pool is None or len(plans) != len(pool.tables):
            return None, plans
        where = pool.where
        order = [where.get(id(plan.tables), -1) for plan in plans]
        if order != pool.counting:
            if -1 in order:
                return None, plans
            ordered = [None] * len(plans)
            for plan, i in zip(plans, order):
                ordered[i] = plan
            if None in ordered:
                return None, plans
            plans = ordered
        return (pool, plans) if pool.fits(plans) else (None, plans)

    def keep(self, active: tuple, pool: "_Pool | None") -> None:
        if pool is None:
            self.kept.pop(active, None)
        else:
            self.kept[active] = pool

    def keep_only(self, actives) -> None:
        """Forget the pools of the sets of detectors not in ``actives`` (no plan of theirs came):
        a pool holds its models' tables."""
        if len(self.kept) > len(actives) or not all(active in actives for active in self.kept):
            self.kept = {active: pool for active, pool in self.kept.items() if active in actives}


_CUSUM_SUMS, _MISSING_SUMS, _TABLES = attrgetter("cusum_sums"), attrgetter("missing_sums"), attrgetter("tables")


class _Pool:
    """The CUSUM and missing-rate state of a batch's plans (one set of detectors), as arrays
    over all their (model, feature) columns: ``sums`` (2 sides x names), ``counts``, ``since``
    (as ``_Cusums``), ``missing`` (rows x sides), with what the fits fix (thresholds, the
    missing-rate sides). Each array is replaced, never changed, when the plans move on
    (``moved_on``), so a slot read later reads the state it was left in. Plan ``i``'s tables
    keep ``cusum_sums = _CusumSlot`` and ``missing_sums = _MissingSlot`` of it, which give its
    part as ``together`` keeps it (``cusum_start``, ``missing_start``), and its detectors owe
    the slot's write."""

    __slots__ = ("tables", "where", "counting", "names", "detectors", "thresholds", "sums", "counts", "since",
                 "missing_sides", "missing", "monitors", "cusum_slots", "missing_slots", "owed", "ks", "fixed",
                 "rest")

    def __init__(self, plans: list[_Plan], names: tuple, cusums: _Cusums, missing: "_MissingRates | None"):
        self.tables = list(map(_TABLES, plans))
        #: Each plan's place, by its tables (held here: their ids stay theirs); ``range`` as a list.
        self.where = {id(tables): i for i, tables in enumerate(self.tables)}
        self.counting = list(range(len(plans)))
        self.names = names
        self.detectors, self.thresholds = cusums.detectors, cusums.threshold
        self.sums, self.counts, self.since = cusums.start, getattr(cusums, "counts", None), getattr(cusums, "since", None)
        bounds = np.cumsum([0] + [plan.k for plan in plans]).tolist()
        spans = list(zip(bounds[:-1], bounds[1:]))
        self.cusum_slots = [_CusumSlot(self, i, a, b) for i, (a, b) in enumerate(spans)] if names else []
        self.owed = [tables.owed for tables in self.tables]
        self.ks = np.array([plan.k for plan in plans], dtype=np.int64)
        self.fixed = None  # ``kernel_meta``'s columns that the tables fix, made when first asked
        self.rest = (None, False)  # ``missing_at_rest``: the sums it was found for, and the answer
        if missing is not None:
            self.missing_sides, self.missing = missing.sides, missing.start
            self.monitors = [m for plan in plans for m in plan.monitors]
            self.missing_slots = [_MissingSlot(self, a, b) for a, b in spans]
        else:
            self.missing_slots = None

    def kernel_meta(self, ns: list[int], plans: list[_Plan] | None) -> np.ndarray:
        """``across_compiled.Plans``' rows for the plans (``ns``: each one's values per feature;
        ``plans``: given to write the uniform scores after their ADWINs' pending values, as
        ``_look_up`` does plan by plan). The tables are the pool's, held by it."""
        if self.fixed is None:
            self.fixed = np.array([tables.kernel_row(self.names) for tables in self.tables], dtype=np.int64)
        pending = None if plans is None else \
            [tables.adwin.pending_row() if tables.adwin is not None else NO_PENDING for tables in self.tables]
        return meta_rows(self.ks, ns, self.fixed, pending)

    def fits(self, plans: list[_Plan]) -> bool:
        tables = self.tables
        if len(plans) != len(tables) or not all(map(is_, map(_TABLES, plans), tables)):
            return False
        if self.cusum_slots and not all(map(is_, map(_CUSUM_SUMS, tables), self.cusum_slots)):
            return False
        return self.missing_slots is None or all(map(is_, map(_MISSING_SUMS, tables), self.missing_slots))

    def moved_on(self, sums: np.ndarray, counts: np.ndarray, since: np.ndarray) -> None:
        """Every plan took its batch: the CUSUMs' new state, kept here and owed to the detectors."""
        self.sums, self.counts, self.since = sums, counts, since
        for tables, slot, owed, detectors in zip(self.tables, self.cusum_slots, self.owed, self.detectors):
            if owed.write is not slot:
                tables.cusum_sums = slot
                owed.owe(detectors, slot)

    def missing_at_rest(self) -> bool:
        """Whether the missing-rate sums are where a batch of present values leaves them: every
        side that is on at 0, with a "present" step of at most 0 and a threshold of at least 0
        (``missing_present`` then gives the same sums and no crossing). The usual state of a
        model that misses nothing; found once per array of sums (they are replaced, never
        changed: at rest, the same array goes on).

        >>> pool = _Pool.__new__(_Pool)
        >>> pool.rest, pool.missing = (None, False), np.zeros((1, 2), np.int64)
        >>> pool.missing_sides = (np.array([[-3, 5]]), np.array([[40, 40]]), np.array([[True, False]]))
        >>> pool.missing_at_rest()
        True
        >>> pool.missing = np.array([[6, 0]])
        >>> pool.missing_at_rest()
        False
        """
        missing = self.missing
        found_for, at_rest = self.rest
        if found_for is not missing:
            step, threshold, on = self.missing_sides
            at_rest = bool((~on | ((missing == 0) & (step <= 0) & (threshold >= 0))).all())
            self.rest = (missing, at_rest)
        return at_rest

    def missing_moved_on(self, missing: np.ndarray) -> None:
        self.missing = missing
        for tables, slot in zip(self.tables, self.missing_slots):
            if tables.missing_sums is not slot:
                tables.missing_sums = slot


class _CusumSlot:
    """A plan's part of a ``_Pool``'s CUSUMs, as ``together`` keeps a group's (``kept()``); called,
    it writes them to the plan's detectors (what they are owed, ``_write_cusums``)."""

    __slots__ = ("pool", "index", "start", "end")

    def __init__(self, pool: _Pool, index: int, start: int, end: int):
        self.pool, self.index, self.start, self.end = pool, index, start, end

    def kept(self) -> tuple:
        pool, a, b = self.pool, self.start, self.end
        return (pool.names, pool.detectors[self.index], pool.sums[:, a:b].ravel(), pool.counts[:, a:b].ravel(),
                pool.since[:, a:b].ravel())

    def __call__(self) -> None:
        _write_cusums(self.kept())


class _MissingSlot:
    """A plan's rows of a ``_Pool``'s missing-rate sums (``kept()``)."""

    __slots__ = ("pool", "start", "end")

    def __init__(self, pool: _Pool, start: int, end: int):
        self.pool, self.start, self.end = pool, start, end

    def kept(self) -> np.ndarray:
        return self.pool.missing[self.start:self.end]
