"""Registration error by gating, its uncertainty budget, the dwell planner and the decision rule.

Gating: reference pulses are counted between two MUT pulse edges, so the meter's energy is
exactly N x Kh and the quantization moves to the reference count (±1 in n_ref, tiny).
Uncertainties follow the GUM: standard uncertainties combined in quadrature, expanded with k=2.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

COVERAGE_K = 2.0


class PlanError(ValueError):
    """The requested uncertainty cannot be reached on this bench."""


def gated_error_pct(mut_pulses: int, kt: float, ref_pulses: int, ref_constant_wh: float) -> float:
    """Percent error = (E_mut - E_ref) / E_ref x 100 with E_mut = N Kt (the meter's test-output
    constant for the quantity) and E_ref = n_ref K_ref."""
    if mut_pulses <= 0 or ref_pulses <= 0:
        raise ValueError("a gated measurement needs at least one MUT pulse and one reference pulse")
    e_mut, e_ref = mut_pulses * kt, ref_pulses * ref_constant_wh
    return (e_mut - e_ref) / e_ref * 100.0


def energy_error_pct(meter_wh: float, reference_wh: float) -> float:
    if reference_wh <= 0:
        raise ValueError("reference energy must be positive")
    return (meter_wh - reference_wh) / reference_wh * 100.0


@dataclass(frozen=True)
class Component:
    """One line of a budget: a standard uncertainty in percent of reading, and how it was got."""

    name: str
    u_pct: float
    basis: str


@dataclass(frozen=True)
class Budget:
    components: tuple[Component, ...]

    @property
    def combined_pct(self) -> float:
        return math.sqrt(sum(c.u_pct ** 2 for c in self.components))

    @property
    def expanded_pct(self) -> float:
        """U with coverage factor k=2 (about 95 %)."""
        return COVERAGE_K * self.combined_pct


@dataclass(frozen=True)
class CertifiedUncertainty:
    """A calibration certificate's expanded (k=2) uncertainty of active energy by power factor
    (or of reactive energy by sin φ), as (factor, U %) rows with the factor descending; a single
    row with factor 0 covers every one."""

    by_pf: tuple[tuple[float, float], ...]
    against: str = "PF"  # "sin φ" for reactive energy

    def at(self, power_factor: float) -> float:
        """U at the nearest certified factor at or below this one: U grows as it falls, so this
        never understates it. A factor below every certified one is refused."""
        pf = abs(power_factor)
        for certified, value in self.by_pf:
            if certified <= pf + 1e-9:
                return value
        raise PlanError(f"the reference standard's certificate does not cover {self.against} {pf:.3g} "
                        f"(lowest certified {self.against} {self.by_pf[-1][0]:g})")

    def describe(self) -> str:
        if len(self.by_pf) == 1 and self.by_pf[0][0] == 0.0:
            return f"U = {self.by_pf[0][1]:g} % (k=2)"
        return ", ".join(f"U = {u:g} % at {self.against} {pf:g}" for pf, u in self.by_pf) + " (k=2)"


@dataclass(frozen=True)
class BenchSpec:
    """What the instruments' certificates and datasheets say, as the budget needs it."""

    reference_u: CertifiedUncertainty  # reference standard calibration certificate
    reference_constant_wh: float  # Wh per reference output pulse
    counter_timing_s: float  # counter timebase / input-capture uncertainty per edge (standard)
    mut_jitter_s: float  # meter test-output edge jitter (standard)
    source_stability_pct: float  # source output stability over a dwell, rectangular half-width
    reactive_u: CertifiedUncertainty | None = None  # the certificate's reactive energy rows, if it has them


def fixed_components(spec: BenchSpec, power_factor: float, reactive: bool = False) -> list[Component]:
    """Terms that do not shrink with a longer dwell. ``power_factor`` is sin φ for reactive energy."""
    certificate = spec.reactive_u if reactive else spec.reference_u
    if certificate is None:
        raise PlanError("the reference standard's certificate states no uncertainty of reactive energy")
    reference_u = certificate.at(power_factor)
    return [
        Component("reference standard", reference_u / COVERAGE_K,
                  f"calibration certificate U={reference_u:g} % (k=2) at {certificate.against} "
                  f"{abs(power_factor):.3g}"),
        # Gating makes MUT and reference see the same power; drift reaches the result only through
        # the meter's load dependence. Sensitivity 1 is a deliberately conservative bound.
        Component("source stability", spec.source_stability_pct / math.sqrt(3),
                  f"±{spec.source_stability_pct:g} % rectangular, sensitivity 1 (conservative)"),
    ]


def dwell_components(spec: BenchSpec, ref_pulses: float, gate_time_s: float) -> list[Component]:
    """Terms that shrink as the gate grows: reference-count quantization and edge timing."""
    edge_s = math.hypot(spec.counter_timing_s, spec.mut_jitter_s)
    return [
        # For a gate holding n + p reference periods the count is n or n + 1: its error has standard
        # deviation sqrt(p(1-p)) <= 1/2 for the unknown fraction p. Rectangular ±1 (1/sqrt(3))
        # bounds every p; triangular (1/sqrt(6)) would hold only on average over p.
        Component("reference quantization", 100.0 / (ref_pulses * math.sqrt(3)),
                  f"±1 of {ref_pulses:.0f} reference pulses, rectangular"),
        Component("edge timing", 100.0 * math.sqrt(2) * edge_s / gate_time_s,
                  f"2 edges x {edge_s * 1e6:.3g} µs (counter and MUT jitter) over {gate_time_s:.4g} s"),
    ]


def gated_budget(spec: BenchSpec, ref_pulses: float, gate_time_s: float, power_factor: float,
                 reactive: bool = False) -> Budget:
    return Budget(tuple(fixed_components(spec, power_factor, reactive)
                        + dwell_components(spec, ref_pulses, gate_time_s)))


@dataclass(frozen=True)
class DwellPlan:
    mut_pulses: int
    expected_s: float
    expected_u_pct: float  # expanded, k=2
    reason: str


def plan_dwell(spec: BenchSpec, power_w: float, kt: float, *, power_factor: float, target_u_pct: float,
               min_pulses: int, min_dwell_s: float, reactive: bool = False) -> DwellPlan:
    """Fewest MUT pulses meeting the target expanded uncertainty, the minimum count and dwell."""
    if power_w <= 0:
        raise PlanError("no power: a gated measurement needs the meter to pulse")
    period_s = kt * 3600.0 / power_w

    def expanded(pulses: int) -> float:
        ref_pulses = pulses * kt / spec.reference_constant_wh
        return gated_budget(spec, ref_pulses, pulses * period_s, power_factor, reactive).expanded_pct

    floor_u = Budget(tuple(fixed_components(spec, power_factor, reactive))).expanded_pct
    if floor_u >= target_u_pct:
        raise PlanError(f"target U {target_u_pct:g} % is below what the reference standard and source "
                        f"alone allow ({floor_u:.4g} %)")
    pulses = 1
    while expanded(pulses) > target_u_pct:  # U falls monotonically with pulses: double, then bisect
        pulses *= 2
    low = pulses // 2
    while pulses - low > 1:
        mid = (low + pulses) // 2
        low, pulses = (low, mid) if expanded(mid) <= target_u_pct else (mid, pulses)
    by_dwell = math.ceil(min_dwell_s / period_s - 1e-9)
    candidates = [(pulses, f"target U {target_u_pct:g} %"), (min_pulses, f"minimum {min_pulses} pulses"),
                  (by_dwell, f"minimum dwell {min_dwell_s:g} s")]
    chosen, reason = max(candidates, key=lambda c: c[0])  # the first named wins a tie
    return DwellPlan(chosen, chosen * period_s, expanded(chosen), reason)


class Rule(str, Enum):
    SIMPLE = "simple"  # pass when |error| <= limit (ILAC-G8 simple acceptance)
    GUARDED = "guarded"  # pass when |error| + U <= limit; fail when |error| - U > limit


class Verdict(str, Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    INDETERMINATE = "INDETERMINATE"
    ERROR = "ERROR"  # the point could not be measured: a statement about the bench, not the meter


# Worst first: a failure of the meter outranks a point the bench could not measure, which outranks
# an undecided one.
SEVERITY = (Verdict.FAIL, Verdict.ERROR, Verdict.INDETERMINATE, Verdict.PASS)


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The one verdict that sums up several (a point's pulse and register checks, a meter's
    points, a document's results): the worst of them by ``SEVERITY``. No verdicts at all is PASS;
    a caller for whom "nothing" means something else (a meter with no results) says so itself."""
    found = set(verdicts)
    return next((v for v in SEVERITY if v in found), Verdict.PASS)


RULE_TEXT = {
    Rule.SIMPLE: "simple acceptance: pass when |error| <= limit; U is reported, not subtracted",
    Rule.GUARDED: "guard-banded: pass when |error| + U <= limit, fail when |error| - U > limit, "
                  "otherwise indeterminate",
}


def decide(error_pct: float, u_pct: float, limit_pct: float, rule: Rule) -> Verdict:
    if not all(math.isfinite(x) for x in (error_pct, u_pct, limit_pct)):
        raise ValueError(f"no verdict on non-finite numbers: error {error_pct!r} %, U {u_pct!r} %, "
                         f"limit {limit_pct!r} %")
    if rule is Rule.SIMPLE:
        return Verdict.PASS if abs(error_pct) <= limit_pct else Verdict.FAIL
    if abs(error_pct) + u_pct <= limit_pct:
        return Verdict.PASS
    if abs(error_pct) - u_pct > limit_pct:
        return Verdict.FAIL
    return Verdict.INDETERMINATE
