"""What the cross-model path owes the detectors' objects (``detectors.owed``): the CUSUMs' sums,
counts and run starts, the rings' counts and ADWIN's buckets and pending values are written when
first read (an encoding reads ADWIN's state from the group's vectors without writing it),
and whatever reads them (an encoding, the per-model path, a restore) sees exactly what updating
each monitor one by one leaves."""

from __future__ import annotations

import numpy as np

from streamdrift.detectors import MonitorSettings, NumericMonitor, decode_monitor, encode_monitor
from streamdrift.detectors.across import update_groups_together
from streamdrift.detectors.together import FastPath

SETTINGS = MonitorSettings(reference_size=300, window=100, evaluate_every=50, adwin_block=32)


def models(count: int, k: int = 3):
    return [[NumericMonitor(SETTINGS) for _ in range(k)] for _ in range(count)]


def feed(rng, together, paths, alone, batches: int, size: int = 5):
    for _ in range(batches):
        values = [rng.normal(0, 1, (len(ms), size)) for ms in together]
        update_groups_together(list(zip(together, values, paths)))
        for ms, v in zip(alone, values):
            for m, row in zip(ms, v):
                m.update(row)


def owed(monitor: NumericMonitor) -> list[str]:
    """The attributes of ``monitor``'s parts that are owed a write now."""
    parts = {"page_hinkley": monitor.page_hinkley, "scale": monitor.scale, "adwin": monitor.adwin,
             "recent_values": monitor.recent_values}
    return sorted(name for name, part in parts.items()
                  if getattr(part.__dict__.get("_owed"), "write", None) is not None)


def test_quiet_batches_owe_their_writes_and_a_read_settles_them():
    rng = np.random.default_rng(3)
    together, alone, paths = models(4), models(4), [FastPath() for _ in range(4)]
    feed(rng, together, paths, alone, 120)  # past the warm-up: the cross-model path takes them
    assert all(owed(m) == ["adwin", "page_hinkley", "recent_values", "scale"] for ms in together for m in ms)
    stale = together[0][0].page_hinkley.__dict__["_count"]
    assert stale != alone[0][0].page_hinkley.count  # the object itself is behind ...
    assert together[0][0].page_hinkley.count == alone[0][0].page_hinkley.count  # ... until it is read
    assert owed(together[0][1]) == ["adwin", "recent_values"]  # one write settles the model's CUSUMs
    assert [encode_monitor(m) for ms in together for m in ms] == [encode_monitor(m) for ms in alone for m in ms]
    # An encoding settles every write but ADWIN's, whose state it reads from the group's vectors
    # (``owed_state``): the lists stay owed, and are written when ADWIN itself is read.
    assert all(owed(m) == ["adwin"] for ms in together for m in ms)
    assert [m.adwin.levels for ms in together for m in ms] == [m.adwin.levels for ms in alone for m in ms]
    assert not any(owed(m) for ms in together for m in ms)
    assert [encode_monitor(m) for ms in together for m in ms] == [encode_monitor(m) for ms in alone for m in ms]


def test_the_per_model_path_and_later_batches_read_what_was_owed():
    rng = np.random.default_rng(4)
    together, alone, paths = models(3), models(3), [FastPath() for _ in range(3)]
    feed(rng, together, paths, alone, 100)
    # A missing value takes model 1 to the per-model path, which reads its owed state.
    values = [rng.normal(0, 1, (3, 6)) for _ in range(3)]
    values[1][0, 2] = np.nan
    update_groups_together(list(zip(together, values, paths)))
    for ms, v in zip(alone, values):
        for m, row in zip(ms, v):
            m.update(row)
    feed(rng, together, paths, alone, 60, size=7)
    assert [encode_monitor(m) for ms in together for m in ms] == [encode_monitor(m) for ms in alone for m in ms]


def test_a_restore_is_not_overwritten_by_an_older_owed_write():
    rng = np.random.default_rng(5)
    together, alone, paths = models(2), models(2), [FastPath() for _ in range(2)]
    feed(rng, together, paths, alone, 100)
    saved = [encode_monitor(m) for m in together[0]]
    feed(rng, together, paths, alone, 10)  # model 0 owes this batch's writes again
    assert owed(together[0][0])
    for m, state in zip(together[0], saved):
        m.set_state(decode_monitor(state).get_state())
    assert [encode_monitor(m) for m in together[0]] == saved


def test_an_unset_owed_attribute_is_an_attribute_error():
    from streamdrift.detectors.owed import owed_attribute

    class Box:
        value = owed_attribute("value")

    box = Box()
    assert not hasattr(box, "value") and getattr(box, "value", 3) == 3
    box.value = 4
    assert box.value == 4
