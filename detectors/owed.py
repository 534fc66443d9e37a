"""State the cross-model path owes to the detectors' objects, written when first read.

``across`` advances every quiet model of a batch on arrays and keeps the results on the model's
tables, which are the truth for its next batch. Writing them back to each detector object
(three or five attributes of each of 40 CUSUMs per model and batch) cost about a tenth of a
small batch, and most batches nothing reads them. So a model's CUSUMs share one ``Owed``: the
write of the latest batch the path took, done the first time anything reads or sets one of those
attributes (a checkpoint, the per-model path, a fit), through the ``owed_attribute`` properties.
Until then the objects hold the state of an earlier batch, which nothing can see. (A shallow
``copy.copy`` of such an object would share its ``Owed`` and read its own stale slots: nothing
copies them so; ``deepcopy`` copies the write with the object and is safe.)

>>> class Sums:
...     up = owed_attribute("up")
...     def __init__(self):
...         self.up = 0
>>> a, b = Sums(), Sums()
>>> owed = Owed()
>>> attach([a, b], owed)
>>> owed.write = lambda: (setattr(a, "_up", 5), setattr(b, "_up", 7))
>>> a.__dict__["_up"], a.up, b.__dict__["_up"]      # the first read settles the write
(0, 5, 7)
"""

from __future__ import annotations


class Owed:
    """One group's pending write-back: ``write`` (a callable, or ``None`` when nothing is owed),
    settled by the first read of an attribute of any object attached to it."""

    __slots__ = ("write", "objects")

    def __init__(self):
        self.write = None
        self.objects = None  # what ``owe`` attached last

    def owe(self, objects, write) -> None:
        """Owe ``write`` (replacing what was owed) to ``objects``, attached first unless they are
        the very list attached last time."""
        if objects is not self.objects:
            attach(objects, self)
            self.objects = objects
        self.write = write

    def settle(self) -> None:
        write, self.write = self.write, None
        if write is not None:
            write()


def owed_attribute(name: str) -> property:
    """An attribute kept in ``_<name>`` whose reads and writes first settle what the object's
    ``Owed`` (if any) still has to write."""
    slot = "_" + name

    def get(self):
        values = self.__dict__
        owed = values.get("_owed")
        if owed is not None and owed.write is not None:
            owed.settle()
        try:
            return values[slot]
        except KeyError:  # not set yet: what a plain attribute raises
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}") from None

    def set(self, value) -> None:
        values = self.__dict__
        owed = values.get("_owed")
        if owed is not None and owed.write is not None:
            owed.settle()
        values[slot] = value

    return property(get, set, doc=f"``{name}`` (see ``detectors.owed``)")


def attach(objects, owed: Owed) -> None:
    """Make ``owed`` the write-back of ``objects``; an object attached to another one first has
    that one settled, so no older write can land after a newer one."""
    for target in objects:
        values = target.__dict__
        before = values.get("_owed")
        if before is not owed:
            if before is not None:
                before.settle()
            values["_owed"] = owed


def settle_all(objects) -> None:
    """Settle whatever ``objects`` are owed (e.g. before reading their slots directly)."""
    for target in objects:
        owed = target.__dict__.get("_owed")
        if owed is not None:
            owed.settle()


def owed_state(target):
    """The state ``target`` will have once what it is owed is written, if the pending write can
    tell it without writing (a write with a ``state_of(target)`` method), else ``None``.

    >>> class Write:
    ...     def __call__(self): pass
    ...     def state_of(self, target): return {"up": 9}
    >>> a = type("Sums", (), {})()
    >>> owed = Owed()
    >>> attach([a], owed)
    >>> owed_state(a) is None
    True
    >>> owed.write = Write()
    >>> owed_state(a)
    {'up': 9}
    """
    owed = target.__dict__.get("_owed")
    write = owed.write if owed is not None else None
    state_of = getattr(write, "state_of", None)
    return state_of(target) if state_of is not None else None
