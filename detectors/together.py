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
>>> found = [update_together(together, data[:, i:i + 700]) for i in range(0, 30_000, 700)]
>>> [sorted({d.detector for batch in found for d in batch[k]}) for k in range(3)]
[[], ['adwin', 'histogram', 'ks', 'page_hinkley'], []]
>>> expected = [[d for i in range(0, 30_000, 700) for d in m.update(data[k, i:i + 700])] for k, m in enumerate(alone)]
>>> [[d.index for batch in found for d in batch[k]] for k in range(3)] == [[d.index for d in e] for e in expected]
True
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtri

from .cusum import QUANTUM
from .detection import Detection
from .monitor import evaluation_points
from .numeric import NumericMonitor
from .settings import NUMERIC_DETECTORS

#: A vectorised statistic this close (relative) to its threshold is decided by the one-by-one path.
MARGIN = 1e-9

_KNOWN = frozenset(NUMERIC_DETECTORS)


def update_together(monitors: list[NumericMonitor], values: np.ndarray) -> list[list[Detection]]:
    """Feed row ``k`` of ``values`` (features x values, ``NaN`` = missing) to ``monitors[k]``;
    return each monitor's detections, exactly as ``monitors[k].update(values[k])`` would."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != len(monitors):
        raise ValueError("values must be a (monitors x values) array")
    n = values.shape[1]
    results: list[list[Detection] | None] = [None] * len(monitors)
    if n == 0:
        return [[] for _ in monitors]
    clean = np.isfinite(values).all(axis=1)
    groups: dict[tuple, list[int]] = {}
    for k, monitor in enumerate(monitors):
        if clean[k] and _quiet_candidate(monitor):
            groups.setdefault(_schedule(monitor, n), []).append(k)
    for key, members in groups.items():
        quiet = _advance(key, [monitors[k] for k in members], values[members])
        for k, ok in zip(members, quiet):
            if ok:
                results[k] = []
    for k, monitor in enumerate(monitors):
        if results[k] is None:
            results[k] = monitor.update(values[k])
    return results


def _quiet_candidate(monitor: NumericMonitor) -> bool:
    return (type(monitor) is NumericMonitor and monitor.fitted and not monitor.collecting and not monitor.muted
            and not monitor.settings.sliding_reference and _KNOWN.issuperset(monitor.active))


def _schedule(monitor: NumericMonitor, n: int) -> tuple:
    """Monitors with equal keys run the same numpy calls on the same positions."""
    s = monitor.settings
    adwin = monitor.adwin
    shape = tuple(len(level) for level in adwin.levels) if "adwin" in monitor.active else ()
    points = evaluation_points(monitor.watched, n, s.evaluate_every, s.window)
    return (_settings_key(monitor), monitor.active, points, min(monitor.watched, s.window), shape, adwin.width, adwin.blocks_seen % adwin.clock, len(adwin.pending),
            adwin.delta)


#: Equal settings objects share one small integer, so that features configured alike (each with
#: its own settings object, e.g. from a ``[[features]]`` rule) advance together.
_SETTINGS_KEYS: dict = {}


def _settings_key(monitor: NumericMonitor) -> int:
    key = monitor.__dict__.get("_settings_key")
    if key is None:  # once per monitor: hashing a settings dataclass costs microseconds
        key = monitor._settings_key = _SETTINGS_KEYS.setdefault(monitor.settings, len(_SETTINGS_KEYS))
    return key


def _advance(key: tuple, monitors: list[NumericMonitor], x: np.ndarray) -> np.ndarray:
    """Advance a group that shares one schedule; returns which monitors were quiet (and so were
    updated here). The others are left exactly as they were."""
    settings, active, points = monitors[0].settings, key[1], key[2]
    k, n = x.shape
    quiet = np.ones(k, dtype=bool)
    refs = [m.reference for m in monitors]
    positions = np.empty((k, n), dtype=np.int64)
    bins = np.empty((k, n), dtype=np.int16)
    u = np.empty((k, n), dtype=np.float64)
    for i, (m, ref) in enumerate(zip(monitors, refs)):
        row = x[i]
        j = ref.distinct.searchsorted(row)  # the method: no np.searchsorted dispatch, same result
        p = j + j
        p += ref.distinct.take(j, mode="clip") == row  # Reference.positions, in fewer calls
        positions[i] = p
        u[i] = (ref.position_below[p] + ref.position_at_or_below[p] + 1) / (2.0 * (ref.size + 1))
        bins[i] = _position_bins(m)[p]
    commit = []
    if "missing_rate" in active:
        commit.append(_missing_rate(monitors, n, quiet))
    if "page_hinkley" in active:
        commit.append(_page_hinkley(monitors, ndtri(u), quiet))
    if "adwin" in active:
        commit.append(_adwin(monitors, u, quiet))
    if points and ("ks" in active or "histogram" in active):
        _windowed(monitors, settings, active, points, positions, bins, quiet)
    for apply in commit:
        apply()
    none_missing = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(quiet).tolist():
        m = monitors[i]
        m.recent_values.extend(x[i])
        m.recent_positions.extend(positions[i])
        m.recent_bins.extend(bins[i])
        m.recent_missing.extend(none_missing)
        m.watched += n
        m.seen += n
    return quiet


def _missing_rate(monitors, n: int, quiet: np.ndarray):
    """No value is missing here: each side adds its "present" step ``n`` times."""
    sums = []
    for i, m in enumerate(monitors):
        mr = m.missing_rate
        new = list(mr.sums)
        for side in (0, 1):
            if not mr.enabled[side]:
                continue
            step, start, threshold = int(mr.steps[side][0]), mr.sums[side], int(mr.threshold[side])
            if step >= 0:
                new[side] = start + n * step
                if new[side] > threshold:
                    quiet[i] = False
            else:  # falling towards 0: only its first step can be the highest
                new[side] = max(0, start + n * step)
                if max(0, start + step) > threshold:
                    quiet[i] = False
        sums.append(new)

    def apply():
        for i in np.flatnonzero(quiet).tolist():
            monitors[i].missing_rate.sums = sums[i]
    return apply


def _cusum(increments: np.ndarray, start: np.ndarray, threshold: np.ndarray):
    """Column-wise ``cusum.first_crossing`` without the crossing index: (crossed, final sum,
    last index where the sum was 0 or -1)."""
    c = np.cumsum(increments, axis=1)
    s = c - np.minimum(np.minimum.accumulate(c, axis=1), -start[:, None])
    crossed = (s > threshold[:, None]).any(axis=1)
    zero = s == 0
    last_zero = np.where(zero.any(axis=1), s.shape[1] - 1 - np.argmax(zero[:, ::-1], axis=1), -1)
    return crossed, s[:, -1], last_zero


def _page_hinkley(monitors, z: np.ndarray, quiet: np.ndarray):
    phs = [m.page_hinkley for m in monitors]
    allowance = phs[0].shift / 2.0
    threshold = np.array([ph.threshold for ph in phs], dtype=np.int64)
    up = np.array([ph.up for ph in phs], dtype=np.int64)
    down = np.array([ph.down for ph in phs], dtype=np.int64)
    up_crossed, up_sum, up_zero = _cusum(np.rint((z - allowance) * QUANTUM).astype(np.int64), up, threshold)
    down_crossed, down_sum, down_zero = _cusum(np.rint((-z - allowance) * QUANTUM).astype(np.int64), down,
                                               threshold)
    quiet &= ~(up_crossed | down_crossed)
    n = z.shape[1]

    def apply():
        for i in np.flatnonzero(quiet).tolist():
            ph = phs[i]
            ph.up, ph.down = int(up_sum[i]), int(down_sum[i])
            if up_zero[i] >= 0:
                ph.up_since = ph.count + int(up_zero[i]) + 1
            if down_zero[i] >= 0:
                ph.down_since = ph.count + int(down_zero[i]) + 1
            ph.count += n
    return apply


def _adwin(monitors, u: np.ndarray, quiet: np.ndarray):
    """ADWINs of one bucket structure, as ``ADWIN.update`` with buckets as vectors over monitors."""
    adwins = [m.adwin for m in monitors]
    a0 = adwins[0]
    block, clock, mwl, max_buckets = a0.block, a0.clock, a0.min_window_length, a0.max_buckets
    k, n = u.shape
    if len(a0.pending) + n < block:  # no block completes: the values only wait in ``pending``
        rows = u.tolist()

        def wait():
            for j in np.flatnonzero(quiet).tolist():
                adwins[j].pending.extend(rows[j])
        return wait
    # levels[l] = list of (total, variance) vectors, oldest first - as ADWIN.levels, transposed.
    flat = np.array([[v for level in a.levels for bucket in level for v in bucket] for a in adwins],
                    dtype=np.float64).reshape(k, -1, 2)
    levels, b = [], 0
    for level in a0.levels:
        levels.append([(flat[:, b + j, 0], flat[:, b + j, 1]) for j in range(len(level))])
        b += len(level)
    width = a0.width
    total = np.array([a.total for a in adwins], dtype=np.float64)
    variance = np.array([a.variance for a in adwins], dtype=np.float64)
    blocks_seen = a0.blocks_seen
    cut = np.zeros(k, dtype=bool)

    def add(t: np.ndarray, v: np.ndarray) -> None:
        nonlocal width, total, variance, blocks_seen
        if width:
            d = total / width - t / block
            variance = variance + (v + width * block * (d * d) / (width + block))
        else:
            variance = variance + v
        width += block
        total = total + t
        levels[0].append((t, v))
        level = 0
        while len(levels[level]) > max_buckets:
            (t1, v1), (t2, v2) = levels[level][0], levels[level][1]
            size = block << level
            d = t1 / size - t2 / size
            merged = (t1 + t2, v1 + v2 + size * size * (d * d) / (2 * size))
            del levels[level][:2]
            if level + 1 == len(levels):
                levels.append([])
            levels[level + 1].append(merged)
            level += 1
        blocks_seen += 1
        if blocks_seen % clock == 0 and width > 2 * mwl:
            cut[:] |= _adwin_cut(levels, block, width, total, variance, a0.delta, mwl)

    pending = np.array([a.pending for a in adwins], dtype=np.float64).reshape(k, -1)
    i = 0
    if pending.shape[1]:
        take = u[:, :block - pending.shape[1]]
        pending = np.concatenate((pending, take), axis=1)
        i = take.shape[1]
        if pending.shape[1] == block:
            t = pending.sum(axis=1)
            add(t, ((pending - (t / block)[:, None]) ** 2).sum(axis=1))
            pending = pending[:, :0]
    full = (n - i) // block
    if full:
        blocks = np.ascontiguousarray(u[:, i:i + full * block]).reshape(k, full, block)
        totals = blocks.sum(axis=2)
        variances = ((blocks - (totals / block)[:, :, None]) ** 2).sum(axis=2)
        for j in range(full):
            add(totals[:, j], variances[:, j])
        i += full * block
    if i < n:
        pending = np.concatenate((pending, u[:, i:]), axis=1)
    quiet &= ~cut

    def apply():
        counts = [len(level) for level in levels]
        rows = np.stack([np.stack(bucket, axis=1) for level in levels for bucket in level], axis=1).tolist() \
            if sum(counts) else [[] for _ in range(k)]
        pend = pending.tolist()
        tot, var = total.tolist(), variance.tolist()
        for j in np.flatnonzero(quiet).tolist():
            a = adwins[j]
            row, start = rows[j], 0
            new_levels = []
            for count in counts:
                new_levels.append(row[start:start + count])
                start += count
            a.levels = new_levels
            a.width, a.total, a.variance, a.blocks_seen = width, tot[j], var[j], blocks_seen
            a.pending = pend[j]
    return apply


def _adwin_cut(levels, block, width, total, variance, delta, mwl) -> np.ndarray:
    """Which ADWINs the cut test might fire for (``ADWIN._detect_change``'s first pass)."""
    sizes = np.array([float(block << lv) for lv in range(len(levels) - 1, -1, -1) for _ in levels[lv]])
    totals = np.stack([bucket[0] for lv in range(len(levels) - 1, -1, -1) for bucket in levels[lv]], axis=1)
    n0 = np.cumsum(sizes[:-1])
    u0 = np.cumsum(totals[:, :-1], axis=1)
    n1 = width - n0
    u1 = total[:, None] - u0
    if mwl > block:
        ok = (n0 >= mwl) & (n1 >= mwl)
        n0, n1, u0, u1 = n0[ok], n1[ok], u0[:, ok], u1[:, ok]
    if not n0.size:
        return np.zeros(total.size, dtype=bool)
    delta_mean = u0 / n0 - u1 / n1
    dd = math.log(2.0 * math.log(width) / delta)
    m = 1.0 / (n0 - mwl + 1) + 1.0 / (n1 - mwl + 1)
    epsilon = np.sqrt(2.0 * m * (variance / width)[:, None] * dd) + 2.0 / 3.0 * dd * m
    return (np.abs(delta_mean) >= epsilon * (1 - MARGIN)).any(axis=1)


def _position_bins(monitor: NumericMonitor) -> np.ndarray:
    """Histogram bin of every reference position (``searchsorted(edges, value, "right")``).

    Edges are reference values, so no edge lies strictly inside a gap between two distinct
    reference values: a gap's bin is the bin of the value below it. Cached on the reference
    (2 bytes per position).
    """
    ref = monitor.reference
    cached = getattr(ref, "position_bins", None)
    if cached is None or cached[0] is not monitor.edges:
        at = np.searchsorted(monitor.edges, ref.distinct, side="right").astype(np.int16)
        table = np.zeros(ref.n_positions, dtype=np.int16)
        table[1::2] = at
        table[2::2] = at
        cached = ref.position_bins = (monitor.edges, table)
    return cached[1]


def _windowed(monitors, settings, active, points, positions, bins, quiet) -> None:
    """Mark monitors whose KS or histogram test might fire at one of this batch's evaluation points."""
    w = settings.window
    k, n = positions.shape
    old_p = np.stack([m.recent_positions.items()[-w:] for m in monitors])
    ext_p = np.concatenate((old_p, positions), axis=1)
    off = old_p.shape[1]
    ks_on, hist_on = "ks" in active, "histogram" in active
    if ks_on:
        refs = [m.reference for m in monitors]
        size = np.array([r.size for r in refs], dtype=np.int64)
        critical = np.array([m.ks.critical for m in monitors])
        at = np.empty((k, w), dtype=np.int64)
        before = np.empty((k, w), dtype=np.int64)
        rank = np.arange(1, w + 1, dtype=np.int64)
    if hist_on:
        old_b = np.stack([m.recent_bins.items()[-w:] for m in monitors])
        ext_b = np.concatenate((old_b, bins), axis=1)
        tests = [m.histogram for m in monitors]
        cells = max(t.reference_counts.size for t in tests)
        cell_offset = np.concatenate(([0], np.cumsum([t.cell_of.size for t in tests])[:-1])).astype(np.int64)
        cell_of = np.concatenate([t.cell_of for t in tests])
        reference = np.zeros((k, cells))
        for i, t in enumerate(tests):
            reference[i, :t.reference_counts.size] = t.reference_counts
        hist_critical = np.array([t.critical for t in tests])
    rows = np.arange(k, dtype=np.int64)[:, None]
    for t in points:
        lo, hi = off + t + 1 - w, off + t + 1
        if ks_on:
            s = np.sort(ext_p[:, lo:hi], axis=1)
            for i, ref in enumerate(refs):  # reference count at or below / strictly below each value
                ref.position_at_or_below.take(s[i], out=at[i])
                ref.position_below.take(s[i], out=before[i])
            down = (rank * size[:, None] - at * w).max(axis=1)
            up = (before * w - (rank - 1) * size[:, None]).max(axis=1)
            scale = size * w
            d = np.maximum(np.maximum(up, 0) / scale, np.maximum(down, 0) / scale)
            quiet &= ~(d > critical * (1 - MARGIN))
        if hist_on:
            codes = cell_of[cell_offset[:, None] + ext_b[:, lo:hi]]
            counts = np.bincount((codes + rows * cells).ravel(), minlength=k * cells).reshape(k, cells)
            g = _g_statistics(reference, counts.astype(np.float64))
            quiet &= ~(g > hist_critical * (1 - MARGIN))


def _g_statistics(r: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Row-wise ``frequency.g_statistic``."""
    n_r, n_w = r.sum(axis=1, keepdims=True), w.sum(axis=1, keepdims=True)
    column = r + w
    total = n_r + n_w
    g = np.zeros(r.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        for row, n_row in ((r, n_r), (w, n_w)):
            terms = np.where(row > 0, row * np.log(row * total / (n_row * column)), 0.0)
            g += terms.sum(axis=1)
    return 2.0 * g
