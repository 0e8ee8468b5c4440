"""Property-based tests: every parser of instrument replies and data files, given arbitrary
input, yields a value or one of the project's typed errors, never anything else."""
from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.datafiles import ConfigError, Section, load_toml
from bench.plans.inspection import load_inspection
from bench.plans.limits import DEFAULT_TABLE, load_table
from bench.sim import board_path
from bench.sim.board import load_board
from bench.station.profile import parse_profile
from instruments.errors import InstrumentError
from instruments.reference_standard import ScpiReferenceStandard
from instruments.scpi import (
    ScpiInstrument,
    parse_bool,
    parse_float,
    parse_floats,
    parse_int,
)
from tests.helpers import tomllib

EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REPLIES = st.one_of(st.text(max_size=60), st.from_regex(r"[+-]?\d{0,6}(\.\d{0,6})?([eE][+-]?\d{1,3})?", fullmatch=True),
                    st.sampled_from(["9.91E37", "-9.91E37", "nan", "inf", "1e400", "", ",", "0,\"No error\"",
                                     "-113,\"Undefined header\"", "1,2,3", "ON", "OFF"]))


class ScriptedLine:
    """A line transport that answers every query with the next scripted reply."""

    address = "scripted"

    def __init__(self, replies: list[str]) -> None:
        self.replies = replies

    def write(self, line: str) -> None:
        pass

    def read(self) -> str:
        return self.replies.pop(0) if self.replies else ""

    def close(self) -> None:
        pass


def scripted(cls: type, replies: list[str]) -> Any:
    instrument = cls.__new__(cls)
    ScpiInstrument.__init__(instrument, cls.__name__, lambda: ScriptedLine(list(replies)), "scripted")
    instrument._transport = ScriptedLine(list(replies))
    return instrument


@EXAMPLES
@given(REPLIES)
def test_number_parsers_give_a_finite_value_or_value_error(reply):
    for parse in (parse_float, parse_int, parse_bool):
        try:
            value = parse(reply)
        except ValueError:
            continue
        assert isinstance(value, (int, float, bool)) and math.isfinite(value)


@EXAMPLES
@given(st.lists(REPLIES, max_size=5).map(",".join))
def test_list_parser_gives_finite_values_or_value_error(reply):
    try:
        values = parse_floats(reply)
    except ValueError:
        return
    assert all(math.isfinite(v) for v in values)


@EXAMPLES
@given(st.lists(REPLIES, min_size=1, max_size=20))
def test_every_reference_reading_is_a_value_or_an_instrument_error(replies):
    reference = scripted(ScpiReferenceStandard, replies)
    for read in (lambda: reference.power, lambda: reference.voltages, reference.harmonic_powers,
                 lambda: reference.frequency):
        try:
            value = read()
        except InstrumentError as error:
            assert str(error).startswith("ScpiReferenceStandard @ scripted: ") and "\n" not in str(error)
            continue
        items = value if isinstance(value, (list, tuple)) else [value]
        flat = [x for item in items for x in (item if isinstance(item, tuple) else (item,))]
        assert all(math.isfinite(x) for x in flat)


@EXAMPLES
@given(st.lists(REPLIES, min_size=1, max_size=20))
def test_the_error_queue_check_passes_only_on_no_error(replies):
    instrument = scripted(ScpiReferenceStandard, replies)
    try:
        instrument.set("ENER:RES")
    except InstrumentError:
        return
    assert re.fullmatch(r'[+-]?0+,".*"', replies[0].strip(), re.S)  # SCPI's "no error", in ASCII digits


# -- data files --------------------------------------------------------------------------------
SCALARS = st.one_of(st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from(["false", "true", "nan", "", "each", "TA", "Imax", "16S", "0.2"]))
VALUES = st.recursive(SCALARS,
                      lambda inner: st.one_of(st.lists(inner, max_size=4),
                                              st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4)),
                      max_leaves=12)


def mutated(data: dict[str, Any], draw_path: list[str], value: Any) -> dict[str, Any]:
    """A deep copy of ``data`` with the value at a path of keys (and list indices) replaced."""
    copy = tomllib.loads(tomli_w.dumps(data))
    node: Any = copy
    for step in draw_path[:-1]:
        node = node[int(step)] if isinstance(node, list) else node[step]
    last = draw_path[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return copy


def leaf_paths(node: Any, prefix: tuple[str, ...] = ()) -> list[list[str]]:
    if isinstance(node, dict):
        return [p for key, child in node.items() for p in leaf_paths(child, prefix + (key,))] or [list(prefix)]
    if isinstance(node, list) and node:
        return [p for i, child in enumerate(node) for p in leaf_paths(child, prefix + (str(i),))]
    return [list(prefix)]


def only_typed_errors(load: Callable[[Path], Any], data: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "file.toml"
        path.write_text(tomli_w.dumps(data))
        try:
            load(path)
        except ConfigError as error:
            assert str(error).startswith(f"{path}: ") and "\n" not in str(error)


def mutation_test(source: Path, load: Callable[[Path], Any]) -> Callable:
    original = tomllib.loads(source.read_text())
    paths = [p for p in leaf_paths(original) if p]

    @pytest.mark.slow  # writes and loads a whole file for each of its examples
    @EXAMPLES
    @given(st.sampled_from(paths), VALUES)
    def check(path, value):
        only_typed_errors(load, mutated(original, path, value))

    return check


def load_profile_file(path: Path) -> Any:
    return parse_profile(load_toml(path))


PROFILE = Path(__file__).resolve().parent.parent / "bench" / "profiles" / "example_lab.toml"
test_any_value_anywhere_in_a_profile = mutation_test(PROFILE, load_profile_file)
test_any_value_anywhere_in_the_limits_table = mutation_test(DEFAULT_TABLE, load_table)
test_any_value_anywhere_in_a_board = mutation_test(board_path("mixed"), load_board)


@pytest.mark.slow
@EXAMPLES
@given(st.dictionaries(st.text(min_size=1, max_size=10), VALUES, max_size=4))
def test_any_inspection_file(data):
    only_typed_errors(load_inspection, data)


@EXAMPLES
@given(st.binary(max_size=300))
def test_any_bytes_are_a_section_or_a_config_error(raw):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "file.toml"
        path.write_bytes(raw)
        try:
            section = load_toml(path)
        except ConfigError as error:
            assert "\n" not in str(error)
            return
        assert isinstance(section, Section)
