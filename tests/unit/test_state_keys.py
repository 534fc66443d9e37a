"""The state-topic key codec: every record's key formats and parses back, in the layout the
state topic has always had (so a worker of this version restores what an older one wrote)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamdrift.state_keys import SEPARATOR, StateKey, StateKeyError, is_reference_record

names = st.text(st.characters(blacklist_characters=SEPARATOR, blacklist_categories=("Cs",)), min_size=1, max_size=20)
segments = st.one_of(st.none(), names)
streams = st.tuples(st.sampled_from(["feature", "prediction", "label", "concept"]), names)


@given(names, segments, streams, st.text("0123456789abcdef", min_size=1, max_size=24))
def test_every_key_parses_back_to_itself(model, segment, stream, tag):
    for key in (StateKey.of_model(model, segment), StateKey.monitor(model, segment, stream),
                StateKey.reference(model, segment, stream, tag), StateKey.pending(model)):
        assert StateKey.parse(key.format()) == key
        assert is_reference_record(key.format()) == (key.what == "reference")


def test_the_layout_is_the_one_the_state_topic_has():
    assert StateKey.of_model("m", None).format() == "m\x1f"
    assert StateKey.of_model("m", "eu").format() == "m\x1feu"
    assert StateKey.monitor("m", None, ("feature", "x")).format() == "m\x1f\x1ffeature\x1fx"
    assert StateKey.reference("m", "eu", ("concept", "error"), "ab").format() == "m\x1feu\x1fconcept\x1ferror\x1f__reference__\x1fab"
    assert StateKey.pending("m").format() == "m\x1f\x1f__pending__"


@pytest.mark.parametrize("key", ["m", "m\x1f\x1ffeature", "m\x1f\x1ffeature\x1fx\x1f__other__\x1fab",
                                 "m\x1feu\x1f__pending__", "a\x1fb\x1fc\x1fd\x1fe"])
def test_a_key_no_record_writes_is_refused(key):
    with pytest.raises(StateKeyError, match="is not a state-topic key"):
        StateKey.parse(key)
