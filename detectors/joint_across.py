"""Many models' multivariate monitors advanced at once: the fast path across models.

``MultivariateMonitor.update`` runs each of its e-detectors (``joint.JointShift``) in a few
dozen numpy calls per run. At the batch sizes of a lightly loaded worker (a few events per model)
those calls cost ~150 us per model and batch, whatever the number of events, which at a few
events per model is most of the monitor's cost. ``update_jointly`` takes the short runs of many
models at once and advances the common, quiet case of all of them in one set of numpy calls per
kind of detector:

- every event of every model standardised, made into coordinates and scored (weights times
  coordinates) on one array, each row with its own model's reference, weights and steps;
- each score ranked among its own model's reference scores by one ``searchsorted`` over all
  models' ranked scores, keyed by (model, score) as complex numbers (their order is
  lexicographic: real part, then imaginary part; both exact);
- every model's e-CUSUMs (one per bet size) on one ragged array (``across._segmented_cusum``).

The arithmetic is the per-model path's, operation by operation on the same values (exact
integers where it sums), so the detections and state are identical. Only the quiet case is
taken: a monitor that is warming up, collecting a new reference, held after an alarm, whose
run is not all numbers in its watched features, crosses a block boundary (its weights would
change inside the run), or whose wealth crosses its threshold in this run is left untouched
here and updated by its own ``update``, which keeps every rare path in one implementation.

>>> from streamdrift.detectors import MultivariateMonitor, MultivariateSettings
>>> rng = np.random.default_rng(5)
>>> settings = MultivariateSettings(reference_size=400, rearm_size=400, block=50)
>>> together = [MultivariateMonitor(settings) for _ in range(3)]
>>> alone = [MultivariateMonitor(settings) for _ in range(3)]
>>> for batch in range(120):
...     runs = []
...     for m in range(3):
...         rows = rng.normal(size=(int(rng.integers(0, 30)), 4))
...         if m == 1 and batch > 40:
...             rows[:, 1] = 0.9 * rows[:, 0] + 0.3 * rows[:, 1]   # model 1: two features now correlate
...         runs.append({f"x{k}": rows[:, k] for k in range(4)})
...     found = update_jointly([(monitor, run, None) for monitor, run in zip(together, runs)])
...     assert found == [monitor.update(run) for monitor, run in zip(alone, runs)]
>>> [m.calibrations for m in together]       # model 1 alarmed and took a new reference
[1, 2, 1]
>>> all(str(a.get_state()) == str(b.get_state()) for a, b in zip(together, alone))
True
"""

from __future__ import annotations

import numpy as np

from .across import _segmented_cusum
from .detection import Detection
from .joint import JointShift, pair_products, quantised, standardised
from .multivariate import MultivariateMonitor


def update_jointly(calls: list[tuple[MultivariateMonitor, dict, dict | None]]) -> list[list[Detection]]:
    """``[monitor.update(columns, kinds) for monitor, columns, kinds in calls]``, with the same
    results and the same state afterwards, the quiet monitors advanced together. The monitors
    must be distinct (a model's monitor appears once per call)."""
    results: list[list[Detection] | None] = [None] * len(calls)
    plans: dict[tuple, list[_Plan]] = {}
    for index, (monitor, columns, kinds) in enumerate(calls):
        plan = _plan(index, monitor, columns, kinds)
        if plan is not None:
            plans.setdefault(plan.key, []).append(plan)
    for members in plans.values():
        for chunk in _chunks(members):
            for plan in _advance(chunk):
                results[plan.index] = []
    for index, (monitor, columns, kinds) in enumerate(calls):
        if results[index] is None:
            results[index] = monitor.update(columns, kinds)
    return results


#: A run longer than this is left to its monitor's ``update``. Pooling pays for itself where
#: the calls dominate: the pooled arrays repeat each model's term means, steps and weights along
#: its events, passes the per-model path does not make. Measured (64 models of 20 features,
#: ``DriftPipeline.process``): 8 events per model, 35-40 against 47-48 ms per batch; 39 per
#: model, equal (81-88 against 69-92 ms, within the machine's noise); 150 per model (the
#: monitors alone), 30 against 20 ms. A pooled call takes at most ``POOLED_EVENTS`` events.
LONG_RUN = 32
POOLED_EVENTS = 4096


def _chunks(plans: list["_Plan"]) -> list[list["_Plan"]]:
    chunks, chunk, events = [], [], 0
    for plan in plans:
        if chunk and events + plan.n > POOLED_EVENTS:
            chunks.append(chunk)
            chunk, events = [], 0
        chunk.append(plan)
        events += plan.n
    if chunk:
        chunks.append(chunk)
    return chunks


class _Plan:
    """One monitor's run as this path sees it: its rows (features x events) and its parts."""

    __slots__ = ("index", "monitor", "rows", "n", "parts", "key")

    def __init__(self, index, monitor, rows, parts, key):
        self.index, self.monitor, self.rows, self.parts, self.key = index, monitor, rows, parts, key
        self.n = rows.shape[1]


def _plan(index: int, monitor: MultivariateMonitor, columns: dict, kinds: dict | None) -> "_Plan | None":
    """The run's ``_Plan`` if this path may take it, else ``None`` (then ``update`` does all)."""
    if type(monitor) is not MultivariateMonitor or monitor.collecting or not monitor.parts:
        return None
    if kinds and not monitor.kinds.keys() >= kinds.keys():
        return None  # a feature's kind to learn first: ``update`` does that
    if not monitor.kinds.keys() >= columns.keys():
        return None
    plain = [columns.get(name) for name in monitor.names]
    if not plain or not all(type(c) is np.ndarray and c.dtype == np.float64 for c in plain):
        return None  # not the hot path of ``MultivariateMonitor._encode``
    rows = np.array(plain)
    n = rows.shape[1]
    if n == 0 or n > LONG_RUN:
        return None
    parts = tuple(monitor.parts.values())
    for part in parts:
        if type(part) is not JointShift:
            return None  # ``PcaShift``: left to ``update``
        if part.held or part.weights is None or part.watched % part.block + n > part.block:
            return None
        if part.terms == "covariance" and part.pairs is None:
            return None  # random projections: left to ``update``
    key = (rows.shape[0], tuple(monitor.parts), tuple((p.block, p._steps.shape) for p in parts))
    return _Plan(index, monitor, rows, parts, key)


def _advance(plans: list[_Plan]) -> list[_Plan]:
    """Advance every plan none of whose parts alarms in its run; return those. The others are
    left exactly as they were."""
    lengths = np.array([plan.n for plan in plans])
    rows = np.concatenate([plan.rows for plan in plans], axis=1)  # features x all events
    first = [plan.parts[0] for plan in plans]  # one standardisation serves every part of a monitor
    z = standardised(rows, np.repeat(np.array([p.center for p in first]).T, lengths, axis=1),
                     np.repeat(np.array([p.scale for p in first]).T, lengths, axis=1))
    missing = bool(np.isnan(rows).any())
    quiet = np.ones(len(plans), dtype=bool)
    commits = []
    for k in range(len(plans[0].parts)):
        commit = _Bets([plan.parts[k] for plan in plans], z, lengths, missing)
        quiet &= ~commit.crossed
        commits.append(commit)
    done = [plan for plan, ok in zip(plans, quiet.tolist()) if ok]
    if done:
        for commit in commits:
            commit.apply(quiet)
        for plan in done:
            monitor = plan.monitor
            monitor.version += 1
            monitor.seen += plan.n
    return done


class _Bets:
    """One kind of part (``terms``) of every plan: coordinates, scores and e-CUSUMs of all their
    events at once."""

    def __init__(self, parts: list[JointShift], z: np.ndarray, lengths: np.ndarray, missing: bool):
        self.parts, self.lengths = parts, lengths
        u = _coordinates(parts, z, lengths, missing)  # terms x all events, integers
        self.u = u
        weights = np.repeat(np.array([p.weights_exact for p in parts]).T, lengths, axis=1)
        weights *= u
        score = weights.sum(axis=0)  # exact: integers whose every partial sum stays below 2^53
        # Each score's place among its own model's ranked reference scores.
        ranked = [p.ranked_scores for p in parts]
        sizes = np.array([r.size for r in ranked])
        table = np.concatenate([m + 1j * r for m, r in enumerate(ranked)])
        model = np.repeat(np.arange(len(parts)), lengths)
        keys = model + 1j * score
        base = np.repeat(np.cumsum(sizes) - sizes, lengths)
        where = table.searchsorted(keys, "left") + table.searchsorted(keys, "right") - 2 * base
        # Every model's steps side by side: model m's half-rank positions at its own offset.
        steps = [p._steps for p in parts]
        widths = np.array([s.shape[1] for s in steps])
        where += np.repeat(np.cumsum(widths) - widths, lengths)
        increments = np.concatenate(steps, axis=1).take(where, axis=1)  # bet sizes x all events
        start = np.array([p.wealth for p in parts]).T
        threshold = np.repeat(np.array([[p._limit for p in parts]]), increments.shape[0], axis=0)
        found = _segmented_cusum(increments, lengths, start, threshold)
        if found is None:  # offsets beyond int64: every plan to its own update
            self.crossed = np.ones(len(parts), dtype=bool)
            return
        crossed, self.wealth, self.zeros = found
        self.crossed = crossed.any(axis=0)

    def apply(self, quiet: np.ndarray) -> None:
        """``update_coordinates``' commit for the quiet plans: block sums, counts, wealth and the
        runs' starts, and the block closed where the run ends on its boundary."""
        lengths = self.lengths
        starts = np.cumsum(lengths) - lengths
        sums = np.add.reduceat(self.u, starts, axis=1)  # terms x plans: exact integer sums
        for m, (part, ok) in enumerate(zip(self.parts, quiet.tolist())):
            if not ok:
                continue
            watched = part.watched
            part.block_sum += sums[:, m]
            part.wealth[:] = self.wealth[:, m]
            zeros = self.zeros[:, m]
            part.since = np.where(zeros >= 0, watched + zeros + 1, part.since)
            part.watched = watched + int(lengths[m])
            if part.watched % part.block == 0:
                part._close_block()
            part._drift = False


def _coordinates(parts: list[JointShift], z: np.ndarray, lengths: np.ndarray, missing: bool) -> np.ndarray:
    """``JointShift._coordinates_of`` of every plan's rows (``z``: features x all events), each
    with its own model's term means and steps: terms x all events."""
    terms = z if parts[0].terms == "mean" else pair_products(z)
    return quantised(terms, np.repeat(np.array([p.phi_mean for p in parts]).T, lengths, axis=1),
                     np.repeat(np.array([p._per_step for p in parts]).T, lengths, axis=1), missing, terms is not z)
