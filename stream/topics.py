"""Create the topics streamdrift reads and writes, before any client touches them.

Order matters: brokers that auto-create topics on first use (Tansu does, on a plain metadata
request) would otherwise create them with their default partition count.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

__all__ = ["TopicSetupError", "ensure_topics", "ensure_topics_sync"]

log = logging.getLogger(__name__)

# Three copies is the usual production choice; fewer when the cluster has fewer brokers.
MAX_DEFAULT_REPLICATION = 3


class TopicSetupError(RuntimeError):
    """A topic could not be created, or did not appear with its partitions in time."""


async def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    compacted: Collection[str] = frozenset(),
    security: Mapping[str, Any] | None = None,
    *,
    replication_factor: int | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics in ``topics`` (name -> partitions) that do not exist yet.

    Topics in ``compacted`` get ``cleanup.policy=compact``. ``security`` holds aiokafka client
    options (``security_protocol``, ``sasl_mechanism``, ``ssl_context``, ...).
    ``replication_factor=None`` means min(3, number of brokers). Existing topics are left as
    they are (a warning is logged if their partition count differs). Returns the names created.
    """
    for name, partitions in topics.items():
        if partitions < 1:
            raise ValueError(f"topic {name!r}: partitions must be >= 1, got {partitions}")
    unknown = set(compacted) - set(topics)
    if unknown:
        raise ValueError(f"compacted names topics that are not in topics: {sorted(unknown)}")

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000), **(security or {})
    )
    await admin.start()
    try:
        # list_topics asks for all topics, which never auto-creates; describing a missing topic
        # by name would create it on Tansu.
        existing = set(await admin.list_topics())
        missing = [name for name in topics if name not in existing]
        await _warn_on_partition_mismatch(admin, {n: topics[n] for n in topics if n in existing})
        if not missing:
            return []
        if replication_factor is None:
            brokers = (await admin.describe_cluster())["brokers"]
            replication_factor = max(1, min(MAX_DEFAULT_REPLICATION, len(brokers)))
        requests = [
            NewTopic(
                name,
                topics[name],
                replication_factor,
                topic_configs={"cleanup.policy": "compact"} if name in compacted else None,
            )
            for name in missing
        ]
        response = await admin.create_topics(requests, timeout_ms=int(timeout_s * 1000))
        created = _check_create_response(response)
        await _wait_for_partitions(admin, {name: topics[name] for name in created}, timeout_s)
    finally:
        await admin.close()
    log.info("created topics %s", ", ".join(f"{n}[{topics[n]}]" for n in created))
    return created


def ensure_topics_sync(
    bootstrap: str,
    topics: Mapping[str, int],
    compacted: Collection[str] = frozenset(),
    security: Mapping[str, Any] | None = None,
    *,
    replication_factor: int | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """:func:`ensure_topics` for callers without an event loop (CLI, test fixtures)."""
    return asyncio.run(
        ensure_topics(
            bootstrap,
            topics,
            compacted,
            security,
            replication_factor=replication_factor,
            timeout_s=timeout_s,
        )
    )


def _check_create_response(response: Any) -> list[str]:
    created: list[str] = []
    failures: list[str] = []
    for topic_error in response.topic_errors:
        name, code = topic_error[0], topic_error[1]
        message = topic_error[2] if len(topic_error) > 2 else None
        if code == 0:
            created.append(name)
        elif code == TopicAlreadyExistsError.errno:
            # Another worker created it between our listing and our request: that is fine.
            log.debug("topic %s was created concurrently", name)
        else:
            error = for_code(code)
            failures.append(f"{name!r}: {error.__name__} ({message or error.description})")
    if failures:
        raise TopicSetupError("could not create topics: " + "; ".join(failures))
    return created


async def _wait_for_partitions(
    admin: AIOKafkaAdminClient, expected: Mapping[str, int], timeout_s: float
) -> None:
    """Wait until metadata shows every new topic with all partitions led by a broker.

    Apache Kafka answers CreateTopics before every broker knows the topic; a consumer that
    subscribes in that window sees it as unknown and waits a metadata refresh.
    """
    deadline = time.monotonic() + timeout_s
    pending = dict(expected)
    while pending:
        for described in await admin.describe_topics(list(pending)):
            partitions = described["partitions"]
            ready = described["error_code"] == 0 and all(p["leader"] >= 0 for p in partitions)
            if ready and len(partitions) >= pending[described["topic"]]:
                del pending[described["topic"]]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TopicSetupError(
                f"topics {sorted(pending)} were created but their partitions did not get a "
                f"leader within {timeout_s:.0f}s; check the brokers' logs"
            )
        await asyncio.sleep(0.2)


async def _warn_on_partition_mismatch(
    admin: AIOKafkaAdminClient, expected: Mapping[str, int]
) -> None:
    if not expected:
        return
    for described in await admin.describe_topics(list(expected)):
        actual = len(described["partitions"])
        wanted = expected[described["topic"]]
        if actual != wanted:
            # Not fixed automatically: adding partitions moves keys (models) to other workers.
            log.warning(
                "topic %s exists with %d partitions, configuration asks for %d; leaving it as is",
                described["topic"],
                actual,
                wanted,
            )
