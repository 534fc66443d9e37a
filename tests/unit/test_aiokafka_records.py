"""The batch consumer's replacement of aiokafka's private ``PartitionRecords``: it refuses an
aiokafka it was not written for, and on a supported one it yields what aiokafka's own path would.

The broker-level behaviour (positions, tombstones, other consumers untouched) is in
``tests/integration/test_broker.py``; here the record batches are built with aiokafka's own
builder, in Kafka's wire format.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import types
from itertools import islice

import aiokafka
import pytest
from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from streamdrift.events import Record
from streamdrift.stream.batch_consumer import (
    AS_RECORDS,
    SUPPORTED_AIOKAFKA,
    UnsupportedAiokafkaError,
    _PartitionRecords,
    check_aiokafka,
)

# aiokafka's own class, below the replacement (another copy of the module may sit in between).
AIOKAFKA_CLASS = next(c for c in _PartitionRecords.__mro__ if c.__module__ == fetcher.__name__)
INSTALL_HINT = f"pip install 'aiokafka{SUPPORTED_AIOKAFKA}'"


def test_the_installed_aiokafka_passes_and_its_fetcher_makes_our_records():
    check_aiokafka(aiokafka.__version__, AIOKAFKA_CLASS, fetcher)
    assert issubclass(fetcher.PartitionRecords, _PartitionRecords)


@pytest.mark.parametrize("version", ["0.10.0", "0.12.1", "0.14.0", "0.14.0b1", "0.14.2.dev0"])
def test_releases_in_the_supported_range_pass(version):
    check_aiokafka(version, AIOKAFKA_CLASS, fetcher)


@pytest.mark.parametrize("version", ["0.9.0", "0.15.0", "0.15.0rc1", "1.0.0", "", "unknown"])
def test_another_release_stops_with_the_version_the_range_and_what_to_do(version):
    with pytest.raises(UnsupportedAiokafkaError) as raised:
        check_aiokafka(version, AIOKAFKA_CLASS, fetcher)
    message = str(raised.value)
    assert f"aiokafka {version} is installed" in message
    assert f"supports aiokafka {SUPPORTED_AIOKAFKA}" in message and INSTALL_HINT in message


class _NoIteratorAttribute(AIOKAFKA_CLASS):
    def __next__(self):
        return next(self._records_generator)


class _NoCrcFlag(AIOKAFKA_CLASS):
    def __init__(self, tp, records, aborted_transactions, fetch_offset, key_deserializer,
                 value_deserializer, check_crcs, isolation_level):
        self._tp, self._records, self._isolation_level = tp, records, isolation_level
        self._value_deserializer, self.next_fetch_offset = value_deserializer, fetch_offset
        self._records_iterator = self._unpack_records()


class _ListNotGenerator(AIOKAFKA_CLASS):
    def _unpack_records(self):
        offsets = []
        while self._records.has_next():
            batch = self._records.next_batch()
            if batch.validate_crc() and not batch.is_control_batch and fetcher.READ_COMMITTED:
                offsets.append(batch.next_offset + self.next_fetch_offset + batch.offset)
        return offsets


class _KeywordOnly(AIOKAFKA_CLASS):
    def __init__(self, tp, records, *, aborted_transactions=None, fetch_offset=0, key_deserializer=None,
                 value_deserializer=None, check_crcs=True, isolation_level=0):
        super().__init__(tp, records, aborted_transactions, fetch_offset, key_deserializer,
                         value_deserializer, check_crcs, isolation_level)


@pytest.mark.parametrize("changed, named", [
    (_NoIteratorAttribute, "PartitionRecords.__next__ does not use _records_iterator"),
    (_NoCrcFlag, "PartitionRecords.__init__ does not use _check_crcs"),
    (_ListNotGenerator, "PartitionRecords._unpack_records is not a generator"),
    (_KeywordOnly, "PartitionRecords takes (self, tp, records, *, aborted_transactions=None,"),
    (object, "PartitionRecords takes (self, /, *args, **kwargs), not (self, tp, records,"),
    (None, "has no fetcher.PartitionRecords class"),
])
def test_a_supported_version_whose_class_differs_stops_naming_the_difference(changed, named):
    with pytest.raises(UnsupportedAiokafkaError) as raised:
        check_aiokafka("0.14.0", changed, fetcher)
    message = str(raised.value)
    assert named in message and "aiokafka 0.14.0" in message and INSTALL_HINT in message


def test_a_fetcher_module_that_differs_stops_naming_the_difference():
    without_constant = types.SimpleNamespace(**{k: v for k, v in vars(fetcher).items() if k != "READ_COMMITTED"})
    with pytest.raises(UnsupportedAiokafkaError, match="no fetcher.READ_COMMITTED"):
        check_aiokafka("0.14.0", AIOKAFKA_CLASS, without_constant)
    other_fetcher = types.SimpleNamespace(**{**vars(fetcher), "Fetcher": type("Fetcher", (), {})})
    with pytest.raises(UnsupportedAiokafkaError, match="does not make PartitionRecords by the module's name"):
        check_aiokafka("0.14.0", AIOKAFKA_CLASS, other_fetcher)


def test_importing_the_batch_consumer_under_another_aiokafka_release_fails_with_the_error():
    # A fresh interpreter: the check runs when the module is imported, before anything is patched.
    code = ("import aiokafka; aiokafka.__version__ = '0.15.0'\n"
            "from aiokafka.consumer import fetcher; original = fetcher.PartitionRecords\n"
            "try:\n    import streamdrift.stream.batch_consumer\n"
            "finally:\n    assert fetcher.PartitionRecords is original, 'patched anyway'\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("streamdrift.stream.batch_consumer.UnsupportedAiokafkaError: ")
    assert "aiokafka 0.15.0 is installed" in last and INSTALL_HINT in last


def record_batches(*sizes: int) -> bytes:
    """Kafka v2 record batches of the given sizes, back to back, offsets counting from 0; every
    fifth message a tombstone, every third without a key."""
    data, offset = b"", 0
    for size in sizes:
        builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                            producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
        for n in range(offset, offset + size):
            builder.append(n - offset, timestamp=1_700_000_000_000 + n, key=None if n % 3 == 0 else b"k%d" % n,
                           value=None if n % 5 == 4 else b"v%d" % n, headers=[])
        batch = bytearray(builder.build())
        struct.pack_into(">q", batch, 0, offset)  # the base offset, which the batch CRC leaves out
        data, offset = data + bytes(batch), offset + size
    return data


TP = TopicPartition("features", 3)


def unpack(cls: type, data: bytes, fetch_offset: int, deserializer: object, take: int | None = None):
    records = cls(TP, MemoryRecords(data), None, fetch_offset, None, deserializer, True, fetcher.READ_UNCOMMITTED)
    got = list(islice(records, take))
    return got, records.next_fetch_offset


@pytest.mark.parametrize("fetch_offset", [0, 4, 6])  # 4, 6: a fetch that starts inside the first batch
@pytest.mark.parametrize("take", [None, 1, 6])  # getall stops after max_records
def test_records_and_position_are_aiokafkas_for_the_same_batches(fetch_offset, take):
    data = record_batches(7, 1, 12)
    theirs, their_position = unpack(AIOKAFKA_CLASS, data, fetch_offset, None, take)
    ours, our_position = unpack(_PartitionRecords, data, fetch_offset, AS_RECORDS, take)
    assert all(type(r) is Record for r in ours)
    assert ours == [Record(m.value, m.key, m.topic, m.partition, m.offset, m.timestamp) for m in theirs]
    assert our_position == their_position
    assert ours and ours[0].offset == fetch_offset


def test_a_consumer_not_marked_as_records_gets_aiokafkas_own_records():
    data = record_batches(5)
    theirs, _ = unpack(AIOKAFKA_CLASS, data, 0, None)
    plain, _ = unpack(_PartitionRecords, data, 0, None)
    assert plain == theirs and type(plain[0]) is type(theirs[0]) is aiokafka.ConsumerRecord
