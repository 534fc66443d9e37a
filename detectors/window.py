"""The recent window of a feature: a fixed-size numpy ring that keeps the last ``size`` items."""

from __future__ import annotations

import numpy as np


class Ring:
    """Last ``size`` items of a stream, in arrival order.

    >>> r = Ring(3, np.int32)
    >>> r.extend(np.array([1, 2])); r.extend(np.array([3, 4])); r.items().tolist()
    [2, 3, 4]
    """

    def __init__(self, size: int, dtype) -> None:
        self.size = int(size)
        self.buffer = np.zeros(self.size, dtype=dtype)
        self.count = 0  # items ever added since the last clear

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
