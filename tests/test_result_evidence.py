"""A result's evidence in the record is ``dataclasses.asdict`` of it, converted without asdict's deep
copy of every number and string: the same dict, item for item and type for type, for every shape
of result a run makes (issue 13: the copying was most of a 40-position run's record)."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from bench.plans.limits import load_table
from bench.procedures import results
from bench.procedures.results import FaultResult, Result
from bench.procedures.runner import Certification
from bench.records.store import canonical_json
from bench.sim import SimulatedBench
from bench.station.bench import Bench


@pytest.fixture(scope="module")
def every_kind() -> Iterator[list[Result]]:
    """Every point of the default table measured on the simulated board (checks, counts, gated
    errors, shifts, harmonics), and a point that could not be measured."""
    table = load_table()
    with SimulatedBench() as sim, Bench(sim.profile()) as bench:
        points = table.points(sim.meter_type())
        certification = Certification(bench, {p.id: p for p in points})
        found = [result for point in points for result in certification.run(point).values()]
        position = bench.profile.positions[0]
        yield [*found, FaultResult("FL-PF1", "FL-PF1 full load", position, "source did not settle")]


def test_every_kind_of_result_is_measured(every_kind):
    assert {type(r).__name__ for r in every_kind} == {"CheckResult", "CountResult", "PositionResult",
                                                      "ShiftResult", "FaultResult"}
    assert any(isinstance(r, results.ShiftResult) and r.measured.stimulus.harmonics for r in every_kind)


def test_each_results_evidence_is_what_asdict_gives(every_kind, monkeypatch):
    converted = [r.to_dict() for r in every_kind]
    monkeypatch.setattr(results, "_plain", dataclasses.asdict)
    by_asdict = [r.to_dict() for r in every_kind]
    for result, ours, theirs in zip(every_kind, converted, by_asdict):
        assert repr(ours) == repr(theirs), result.summary()  # repr: a tuple is not a list, an enum not its value
        assert canonical_json(ours) == canonical_json(theirs)


def test_editing_a_records_evidence_never_edits_the_result(every_kind):
    """Each conversion is a fresh dict all the way down, as asdict's copy was."""
    shift = next(r for r in every_kind if isinstance(r, results.ShiftResult) and r.measured.stimulus.harmonics)
    before = canonical_json(shift.to_dict())
    evidence = shift.to_dict()
    evidence["measured"]["stimulus"]["harmonics"]["current"] = []
    evidence["reference"]["gate"]["gate_time_s"] = -1.0
    assert canonical_json(shift.to_dict()) == before != canonical_json(evidence)
