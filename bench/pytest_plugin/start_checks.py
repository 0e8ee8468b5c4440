"""Everything that can refuse a run, settled before any instrument is touched: an expired
calibration, a broken certificate template, a register the plans need and the profile lacks, a
point beyond the source's or load's range, an unknown approver, a missing signing key, an
unusable baseline. Each refusal is one line."""
from __future__ import annotations

import datetime as dt
from typing import NoReturn

import pytest
from sqlalchemy.engine import Engine

from bench.datafiles import ConfigError
from bench.plans.limits import LimitTable, beyond_ranges
from bench.procedures.runner import Point
from bench.pytest_plugin.baseline_check import AgainstRun, BaselineCheck, NoBaseline
from bench.pytest_plugin.options import Options
from bench.pytest_plugin.scope import PLAN_NAMES, PLAN_REGISTERS
from bench.pytest_plugin.terminal import say
from bench.records import documents, plots, store
from bench.records.baseline import load_baseline
from bench.records.signing import Signer, SigningKeyError, default_key_path
from bench.station.profile import Profile, Signatory


def refuse(why: str, returncode: pytest.ExitCode = pytest.ExitCode.USAGE_ERROR) -> NoReturn:
    pytest.exit(f"bench cannot start: {why}", returncode=returncode)


def check_calibration(profile: Profile, override: str | None) -> None:
    past = profile.past_due(dt.date.today())
    if past and not override:
        overdue = "; ".join(f"{role} calibration {cal.certificate} was due {cal.due}" for role, cal in past.items())
        refuse(f"{overdue}: certification is blocked "
               f"(--allow-expired-calibration REASON overrides it, and the reason is recorded)")


def check_template(profile: Profile) -> None:
    """A lab's broken certificate template is found before anything is measured, not at publish."""
    if profile.lab.template is not None:
        try:
            documents.check_template(profile.lab.template)
        except ConfigError as error:
            refuse(str(error))


def load_chart_library(points: list[Point], plans: set[str]) -> None:
    """A selected accuracy plan with distortion points draws a spectrum on every certificate: its
    chart library is loaded now (half a second, otherwise spent after the last point while the
    board waits), and a missing one refuses the run before anything is measured. Other runs (an
    audit alone) draw none and load nothing."""
    if "accuracy" in plans and any(point.family == "harmonics" for point in points):
        try:
            plots.load_chart_library()
        except ImportError as error:
            refuse(f"the certificates' spectrum chart cannot be drawn: {error}")


def check_registers(config: pytest.Config, profile: Profile, plans: set[str]) -> None:
    """Every register the selected plans read or write is in the profile's register map: a gap
    is one line per register before anything is energised, not an error in the middle of a run."""
    declared = profile.meter_type.registers
    gaps = [f"{profile.source_file}: meter_type.registers has no {'writable ' if writable else ''}'{name}' "
            f"(the {PLAN_NAMES[plan]} {'writes' if writable else 'reads'} it)"
            for plan, needs in PLAN_REGISTERS.items() if plan in plans
            for name, writable in needs.items()
            if name not in declared or (writable and not declared[name].writable)]
    if gaps:
        for gap in gaps:
            say(config, gap, red=True)
        refuse(f"the profile's register map lacks {len(gaps)} register(s) the selected plans need (listed above)")


def check_ranges(config: pytest.Config, profile: Profile, points: list[Point], plans: set[str]) -> None:
    """Every point of the selected accuracy plan within the source's and load's ranges the profile
    states: a bench that cannot reach a point is refused at start, not stopped after the points it
    could reach."""
    gaps = beyond_ranges(profile, points) if "accuracy" in plans else []
    if gaps:
        for gap in gaps:
            say(config, gap, red=True)
        refuse(f"the source or load cannot reach {len(gaps)} point(s) of the plan (listed above): "
               f"a bench with the range, or --limits without those points")


def approver(profile: Profile, name: str | None) -> Signatory:
    """The signatory named by ``--approved-by``, else the lab's first."""
    lab = profile.lab
    found = next((s for s in lab.signatories if s.name == name), None) if name else lab.signatories[0]
    if found is None:
        refuse(f"--approved-by {name!r} is not a signatory of {lab.name} (the profile's "
               f"[lab] signatories: {', '.join(s.name for s in lab.signatories)})")
    return found


def signer(profile: Profile) -> Signer:
    try:
        return Signer.load(profile.lab.signing_key or default_key_path())
    except SigningKeyError as error:
        refuse(str(error))


def baseline(records: Engine, options: Options, table: LimitTable, profile: Profile) -> BaselineCheck:
    """The run to compare with, refused unless it is a complete run of this plan on this meter
    type that holds enough of this board's meters to compare; without ``--baseline``, none."""
    if not options.baseline:
        return NoBaseline()
    plan = f"{table.name} {table.version}"
    try:
        found = load_baseline(records, options.baseline, plan, profile.meter_type.__dict__)
    except store.RecordsError as error:
        refuse(f"baseline: {error}")
    ours = {p.serial for p in profile.positions}
    shared = ours & found.serials
    if len(shared) < options.baseline_min_overlap * len(ours):
        refuse(f"baseline: run {found.run_id[:8]} holds {len(shared)} of this board's {len(ours)} meters "
               f"(--baseline-min-overlap {options.baseline_min_overlap:g}): nothing to compare them with")
    return AgainstRun(found, options.baseline_min_overlap, options.regression_margin)
