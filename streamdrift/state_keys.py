"""The keys of the compacted state topic: one codec, ``format`` and ``parse``, for every record.

A key is the fields of a ``StateKey`` joined by the unit separator (``\\x1f``, which model,
segment and feature names are refused for containing, see ``events.py``):

- a model (its types, retrain incident, input position): ``model␟segment``
- a monitor of one stream: ``model␟segment␟kind␟name``
- a numeric monitor's reference values, written apart: ``model␟segment␟kind␟name␟__reference__␟tag``
- a model's predictions waiting for labels: ``model␟␟__pending__``
- a model's versions and their comparisons (``model_version``): ``model␟␟__versions__``

(``segment`` is empty for events without one.) The monitors of a model version (events with a
``model_version``) end their model, monitor and reference keys with ``␟__version__␟version``;
keys of events without one are as they always were.

>>> key = StateKey.reference("fraud-v3", None, ("feature", "amount"), "ab12")
>>> text = key.format()
>>> text.split(SEPARATOR)
['fraud-v3', '', 'feature', 'amount', '__reference__', 'ab12']
>>> StateKey.parse(text) == key, StateKey.parse("fraud-v3\\x1f").what
(True, 'model')
>>> versioned = StateKey.monitor("fraud-v3", None, ("concept", "error"), version="v2")
>>> versioned.format().split(SEPARATOR), StateKey.parse(versioned.format()) == versioned
(['fraud-v3', '', 'concept', 'error', '__version__', 'v2'], True)
"""

from __future__ import annotations

from dataclasses import dataclass

from .events import SEPARATOR

#: The part of a reference record's key after its stream.
REFERENCE = "__reference__"
#: The part of a waiting-predictions record's key after its model.
PENDING = "__pending__"
#: The part of a model-versions record's key after its model.
VERSIONS = "__versions__"
#: The part of a key before the model version of the state it holds.
VERSION = "__version__"


class StateKeyError(ValueError):
    """A state-topic key that no record of this version writes."""


@dataclass(frozen=True)
class StateKey:
    """What one state record holds: ``what`` is ``model``, ``monitor``, ``reference``, ``pending``
    or ``versions``."""

    what: str
    model: str
    segment: str | None = None
    stream: tuple[str, str] | None = None
    tag: str | None = None
    #: The model version of a model, monitor or reference record (``None``: events without one).
    version: str | None = None

    @classmethod
    def of_model(cls, model: str, segment: str | None, version: str | None = None) -> "StateKey":
        return cls("model", model, segment, version=version)

    @classmethod
    def monitor(cls, model: str, segment: str | None, stream: tuple[str, str], version: str | None = None) -> "StateKey":
        return cls("monitor", model, segment, tuple(stream), version=version)

    @classmethod
    def reference(cls, model: str, segment: str | None, stream: tuple[str, str], tag: str,
                  version: str | None = None) -> "StateKey":
        return cls("reference", model, segment, tuple(stream), tag, version)

    @classmethod
    def pending(cls, model: str) -> "StateKey":
        return cls("pending", model)

    @classmethod
    def versions(cls, model: str) -> "StateKey":
        return cls("versions", model)

    def format(self) -> str:
        head = [self.model, self.segment or ""]
        if self.what == "model":
            parts = head
        elif self.what == "monitor":
            parts = head + list(self.stream)
        elif self.what == "reference":
            parts = head + list(self.stream) + [REFERENCE, self.tag]
        elif self.what == "pending":
            parts = [self.model, "", PENDING]
        elif self.what == "versions":
            parts = [self.model, "", VERSIONS]
        else:
            raise StateKeyError(f"no state record is a {self.what!r}")
        if self.version is not None and self.what in ("model", "monitor", "reference"):
            parts = parts + [VERSION, self.version]
        return SEPARATOR.join(parts)

    @classmethod
    def parse(cls, key: str) -> "StateKey":
        parts = key.split(SEPARATOR)
        version = None
        # A versioned key ends with __version__ and the version; no unversioned key has
        # __version__ there (kinds are fixed names, and a reference's fifth part is __reference__).
        if len(parts) in (4, 6, 8) and parts[-2] == VERSION:
            version, parts = parts[-1], parts[:-2]
        model, segment = parts[0], (parts[1] or None) if len(parts) > 1 else None
        if len(parts) == 2:
            return cls.of_model(model, segment, version)
        if len(parts) == 3 and segment is None and version is None:
            if parts[2] == PENDING:
                return cls.pending(model)
            if parts[2] == VERSIONS:
                return cls.versions(model)
        if len(parts) == 4:
            return cls.monitor(model, segment, (parts[2], parts[3]), version)
        if len(parts) == 6 and parts[4] == REFERENCE:
            return cls.reference(model, segment, (parts[2], parts[3]), parts[5], version)
        raise StateKeyError(f"{key!r} is not a state-topic key of this version "
                            "(model, monitor, reference, pending or versions record)")


def is_reference_record(key: str) -> bool:
    """Whether a state-topic key is a monitor's reference record (without parsing all of it).

    >>> is_reference_record(StateKey.reference("m", None, ("feature", "x"), "ab12").format())
    True
    >>> is_reference_record(StateKey.monitor("m", None, ("feature", "x")).format())
    False
    """
    return f"{SEPARATOR}{REFERENCE}{SEPARATOR}" in key
