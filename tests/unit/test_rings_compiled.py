"""``rings_compiled.extend_rings`` against ``Ring.extend``: groups of several features, batches
shorter and longer than a ring, counts anywhere in it, int16 and int64 recent positions."""

from __future__ import annotations

import numpy as np
import pytest

from streamdrift.detectors import rings_compiled
from streamdrift.detectors.window import Ring


@pytest.mark.parametrize("recent_dtype", [None, np.int16, np.int64])
def test_every_ring_as_ring_extend(recent_dtype):
    rng = np.random.default_rng(4)
    groups = []
    for _ in range(6):
        k, size, n = int(rng.integers(1, 5)), int(rng.integers(1, 12)), int(rng.integers(0, 30))
        counts = [int(c) for c in rng.integers(0, 50, 3)]
        recent_count = int(rng.integers(0, 50))
        kinds = [np.asarray(rng.normal(size=(k, size + 3))), rng.integers(0, 99, (k, size)),
                 rng.random((k, size)) < 0.5]
        recent = None if recent_dtype is None else rng.integers(0, 99, (k, size)).astype(recent_dtype)
        groups.append((k, n, counts, recent_count, kinds, recent))
    values = [rng.normal(size=(k, n)) for k, n, *_ in groups]
    positions = [rng.integers(0, 99, (k, n)) for k, n, *_ in groups]
    expected = []
    for (k, n, counts, recent_count, kinds, recent), x, p in zip(groups, values, positions):
        rows = []
        for kind, (array, items, count) in enumerate(zip(kinds, (x, p, None), counts)):
            after = []
            for i in range(k):
                ring = Ring(array.shape[1], array.dtype)
                ring.buffer[:] = array[i]
                ring._count = count
                if kind == 2:
                    ring.fill(False, n)
                else:
                    ring.extend(items[i])
                after.append(ring.buffer.copy())
            rows.append(np.array(after))
        if recent is not None:
            after = []
            for i in range(k):
                ring = Ring(recent.shape[1], recent.dtype)
                ring.buffer[:] = recent[i]
                ring._count = recent_count
                ring.extend(p[i])
                after.append(ring.buffer.copy())
            rows.append(np.array(after))
        expected.append(rows)
    meta, at = [], 0
    for (k, n, counts, recent_count, kinds, recent) in groups:
        fixed = rings_compiled.rings_fixed(*kinds)
        recent_row = rings_compiled.NO_RECENT_ROW if recent is None else rings_compiled.recent_fixed(recent)
        meta.append(rings_compiled.row(k, n, at, counts, recent_count, fixed, recent_row))
        at += k * n
    rings_compiled.extend_rings(np.concatenate([x.ravel() for x in values]),
                                np.concatenate([p.ravel() for p in positions]).astype(np.int64),
                                np.array(meta, dtype=np.int64))
    for (k, n, counts, recent_count, kinds, recent), rows in zip(groups, expected):
        got = kinds + ([recent] if recent is not None else [])
        for array, want in zip(got, rows):
            assert np.array_equal(array, want)
