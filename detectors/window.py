"""The recent window of a feature: a fixed-size numpy ring that keeps the last ``size`` items."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from .detection import Hit
from .monitor import evaluation_points
from .owed import owed_attribute


class Ring:
    """Last ``size`` items of a stream, in arrival order.

    >>> r = Ring(3, np.int32)
    >>> r.extend(np.array([1, 2])); r.extend(np.array([3, 4])); r.items().tolist()
    [2, 3, 4]
    """

    #: Items ever added since the last clear; the cross-model path may owe it (``detectors.owed``).
    count = owed_attribute("count")

    def __init__(self, size: int, dtype) -> None:
        self.size = int(size)
        self.buffer = np.zeros(self.size, dtype=dtype)
        self.count = 0

    def clear(self) -> None:
        self.count = 0

    def __len__(self) -> int:
        return min(self.count, self.size)

    def extend(self, items: np.ndarray) -> None:
        items = np.asarray(items)
        if items.size >= self.size:
            # Keep the invariant that the oldest kept item sits at count % size.
            self.count += items.size
            tail = items[-self.size:]
            start = self.count % self.size
            self.buffer[start:] = tail[:self.size - start]
            self.buffer[:start] = tail[self.size - start:]
            return
        start = self.count % self.size
        end = start + items.size
        if end <= self.size:
            self.buffer[start:end] = items
        else:
            split = self.size - start
            self.buffer[start:] = items[:split]
            self.buffer[:end - self.size] = items[split:]
        self.count += items.size

    def fill(self, value, count: int) -> None:
        """``extend`` with ``count`` copies of ``value``, without making them.

        >>> r = Ring(3, np.bool_)
        >>> r.extend(np.array([True])); r.fill(False, 3); r.items().tolist()
        [False, False, False]
        """
        if count >= self.size:
            self.buffer[:] = value
        else:
            start = self.count % self.size
            end = start + count
            self.buffer[start:min(end, self.size)] = value
            if end > self.size:
                self.buffer[:end - self.size] = value
        self.count += count

    def last(self, count: int, out: np.ndarray) -> None:
        """Copy the last ``count`` kept items (at most ``len(self)``), oldest first, into ``out``;
        the fast path's windows are filled this way, without a copy of the whole ring.

        >>> r = Ring(4, np.int64)
        >>> r.extend(np.arange(6)); out = np.zeros(3, dtype=np.int64); r.last(3, out); out.tolist()
        [3, 4, 5]
        """
        end = self.count % self.size
        if count <= end:
            out[:count] = self.buffer[end - count:end]
        else:
            head = count - end
            out[:head] = self.buffer[self.size - head:]
            out[head:count] = self.buffer[:end]

    def items(self) -> np.ndarray:
        """The kept items, oldest first (a copy)."""
        if self.count < self.size:
            return self.buffer[:self.count].copy()
        start = self.count % self.size
        return np.concatenate((self.buffer[start:], self.buffer[:start]))

    def get_state(self) -> dict:
        return {"items": self.items(), "count": self.count}

    def set_state(self, state: dict) -> None:
        items = np.asarray(state["items"], dtype=self.buffer.dtype)
        self.count = 0
        self.extend(items)
        self.count = int(state["count"])
        if len(items) == self.size:
            start = self.count % self.size
            self.buffer[start:] = items[:self.size - start]
            self.buffer[:start] = items[self.size - start:]


class RecentWindow:
    """The recent items a detector keeps for its own ``update`` (a monitor keeps one window for
    all its detectors and never calls it): a ``Ring`` of the last ``size`` items, which may start
    with ``before`` (items that precede the stream), and ``seen``, the items given since.

    >>> recent = RecentWindow(4, np.int64)
    >>> [hit.index for hit in recent.update(np.arange(6), 2, 3, lambda upto: Hit(index=-1, direction=None,
    ...                                      statistic=float(upto[-3:].sum()), threshold=0.0))]
    [3, 5]
    >>> recent.get_state()["seen"], recent.ring.items().tolist()
    (6, [2, 3, 4, 5])
    """

    def __init__(self, size: int, dtype, before: np.ndarray | None = None) -> None:
        self.ring = Ring(size, dtype)
        if before is not None:
            self.ring.extend(before)
        self.seen = 0

    def update(self, items: np.ndarray, every: int, first_at: int,
               test: Callable[[np.ndarray], Hit | None]) -> list[Hit]:
        """Add ``items``; at each of their ``evaluation_points`` call ``test`` with all kept
        items up to and including that one (the ring's, then the new ones) and return the hits,
        each at its offset in ``items``."""
        hits = []
        points = evaluation_points(self.seen, items.size, every, first_at)
        if points:
            old = self.ring.items()
            ext = np.concatenate((old, items))
            for t in points:
                hit = test(ext[:old.size + t + 1])
                if hit is not None:
                    hits.append(replace(hit, index=t))
        self.ring.extend(items)
        self.seen += items.size
        return hits

    def get_state(self) -> dict:
        return {"recent": self.ring.get_state(), "seen": self.seen}

    def set_state(self, state: dict) -> None:
        self.ring.set_state(state["recent"])
        self.seen = int(state["seen"])
