"""Shared fixtures: one real embedded broker per test session, and per-test topic names."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator

import pytest

from streamdrift.stream.broker import EmbeddedBroker
from streamdrift.stream.topics import ensure_topics_sync

# Session-wide, so two tests with the same name (in different modules) still get distinct topics.
_topic_numbers = itertools.count()


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """The Tansu broker every integration test talks to (``broker.bootstrap``).

    Started lazily by the first test that asks for it, so unit tests never pay for it. If it
    cannot start, the error (with the broker's log) fails those tests; nothing is skipped.
    """
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest, broker: EmbeddedBroker) -> Callable[..., str]:
    """A factory of topic names no other test uses: ``unique_topic("in", partitions=4)``.

    With ``partitions`` the topic is also created (``compacted=True`` for a compacted one);
    without, only the name is returned, for tests that create topics themselves.
    """
    # Kafka allows [a-zA-Z0-9._-] and 249 characters; the test's name helps when reading logs.
    test_name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:100]

    def make(label: str = "t", partitions: int | None = None, *, compacted: bool = False) -> str:
        name = f"{test_name}.{label}.{next(_topic_numbers)}"
        if partitions is not None:
            ensure_topics_sync(
                broker.bootstrap, {name: partitions}, compacted={name} if compacted else set()
            )
        return name

    return make
