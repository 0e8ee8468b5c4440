"""CanonicalText gives canonical_json's text character for character, with texts remembered in
advance used as they are."""
from __future__ import annotations

import datetime as dt
import enum
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.records.canonical_text import CanonicalText, canonical_json


class Colour(enum.Enum):
    RED = "red"


class Grade(str, enum.Enum):
    PASS = "PASS"


LEAVES = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
          | st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
          | st.dates().map(lambda d: dt.datetime(d.year, d.month, d.day, 12, 30)) | st.just(Colour.RED)
          | st.just(Grade.PASS))
KEYS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)
VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=3).map(tuple)
                      | st.dictionaries(KEYS, inner, max_size=4), max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(value=VALUES)
def test_the_text_is_canonical_jsons(value):
    assert CanonicalText().text(value) == canonical_json(value)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.dictionaries(KEYS, VALUES, max_size=4), min_size=1, max_size=4), data=st.data())
def test_parts_shared_between_values_and_remembered_in_advance(parts, data):
    """Slices of one record share its dicts, some of whose texts are known: every slice's text is
    its own canonical_json."""
    encoder = CanonicalText()
    for part in data.draw(st.lists(st.sampled_from(parts), max_size=2)):
        encoder.remember(part, canonical_json(part))
    record = {"meters": [{"results": parts}], "plan": {"points": [p for p in parts[:1]]}}
    slices = [{"plan": record["plan"], "meter": {"results": [part]}} for part in parts]
    assert encoder.text(record) == canonical_json(record)
    assert [encoder.text(s) for s in slices] == [canonical_json(s) for s in slices]


def test_a_remembered_text_is_used_as_it_is_not_made_again():
    entry = {"point": "FL-PF1", "value_pct": 0.01}
    encoder = CanonicalText()
    encoder.remember(entry, '{"as":"stored"}')
    assert encoder.text({"results": [entry]}) == '{"results":[{"as":"stored"}]}'


def test_keys_other_than_text_sort_and_convert_as_json_does():
    value = {"meters": {10: "a", 9: "b", 1.5: None, True: 1}}
    assert CanonicalText().text(value) == canonical_json(value)


def test_a_value_that_contains_itself_is_refused_as_json_refuses_it():
    value: dict = {"a": []}
    value["a"].append(value)
    with pytest.raises(ValueError, match="Circular reference"):
        CanonicalText().text(value)
    with pytest.raises(ValueError, match="Circular reference"):
        canonical_json(value)


def test_non_finite_numbers_and_dates_as_canonical_json_writes_them():
    value = {"u": math.nan, "i": -math.inf, "at": dt.date(2026, 11, 22), "grade": Grade.PASS, "c": Colour.RED}
    assert CanonicalText().text(value) == canonical_json(value) == (
        '{"at":"2026-11-22","c":"Colour.RED","grade":"PASS","i":-Infinity,"u":NaN}')
