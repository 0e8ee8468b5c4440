"""What the bench asks of each role, in capabilities rather than command strings.

A role (source, load, reference, counter, meter, environment, monitor) is a small Protocol; a
driver is any class that satisfies the Protocols of the roles it declares and says, in
``CAPABILITIES``, which optional abilities it has. The bench asks for a capability where a test
point needs one (a per-phase voltage angle, harmonics, DC in the current) and skips the point,
with the reason, on a bench that lacks it. One physical instrument may fill several roles (an
electrical power standard is source, phantom load and reference at once): the profile names
the same driver and address for each, and the bench opens it once.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from instruments.pulse_counter import GateResult, GateState
    from instruments.reference_standard import Readings


class Capability(str, Enum):
    """An optional ability a plan point may need; a driver lists those it has."""

    VOLTAGE_PER_PHASE = "voltage-per-phase"  # a different magnitude on each phase (voltage unbalance)
    VOLTAGE_ANGLE_PER_PHASE = "voltage-angle-per-phase"  # any angle per phase (reversed sequence)
    VOLTAGE_HARMONICS = "voltage-harmonics"  # harmonic content in the voltage, by order or as a waveform
    CURRENT_PER_PHASE = "current-per-phase"  # a different current on each phase (element alone, unbalance)
    CURRENT_ANGLE_PER_PHASE = "current-angle-per-phase"  # a different lag on each phase
    CURRENT_HARMONICS = "current-harmonics"  # harmonic content in the current
    CURRENT_DC = "current-dc"  # a DC component in the current (half-wave rectified loads)
    PROTECTION_READBACK = "protection-readback"  # the source says when its own protection tripped
    GATED_COUNT = "gated-count"  # counter: reference pulses between MUT edges, with edge timestamps
    FREE_COUNT = "free-count"  # counter: MUT edges since power-up (creep and starting tests)
    INTERLOCK = "interlock"  # counter: a safety interlock input the bench reads before energising
    HARMONIC_POWER = "harmonic-power"  # reference or monitor: active power by harmonic order
    ENERGY_REGISTER = "energy-register"  # reference: a running energy register (else: counted reference pulses)
    REACTIVE_ENERGY = "reactive-energy"  # reference: var, a varh register, and its pulse output switched to varh
    RECEIVED_ENERGY = "received-energy"  # reference: its register and pulse output count energy flowing back

    def __str__(self) -> str:
        return self.value


ROLES = ("source", "load", "reference", "counter", "meter", "environment", "monitor")
STANDARD_ANGLES_DEG = (0.0, -120.0, 120.0)  # phases 1, 2, 3 of a positive-sequence source


@dataclass(frozen=True)
class PhaseVoltage:
    """One source phase: RMS of the fundamental, and its angle from phase 1 (degrees, positive leading)."""

    voltage_v: float
    angle_deg: float


@dataclass(frozen=True)
class PhaseCurrent:
    """One load phase: RMS of the fundamental, and the angle by which it lags its phase's voltage
    (degrees; negative leads). A driver whose instrument takes absolute angles adds the voltage's."""

    current_a: float
    lag_deg: float


class Harmonic(Protocol):
    """One harmonic to program: order (0 = DC), magnitude in % of the fundamental, phase in degrees."""

    @property
    def order(self) -> int: ...
    @property
    def pct(self) -> float: ...
    @property
    def phase_deg(self) -> float: ...


@runtime_checkable
class Instrument(Protocol):
    """Every driver: a name and address for messages, the roles and capabilities it declares, and
    an explicit life cycle (open identifies the instrument; a lost link closes it)."""

    name: str
    address: str
    CAPABILITIES: frozenset[Capability]

    def open(self) -> Any: ...
    def close(self) -> None: ...
    def reopen(self) -> None: ...
    @property
    def is_open(self) -> bool: ...


class Output(Instrument, Protocol):
    """An instrument that can energise the board: its output state, read back, and an idempotent
    safe state (output off, read back) that the bench drives on every exit path."""

    def output_on(self) -> bool: ...
    def safe_state(self) -> None: ...


class Source(Output, Protocol):
    """Voltage on the meters' voltage circuits, phase by phase."""

    phases: int  # known once open

    def check_voltage(self, rms_v: float, frequency_hz: float) -> None:
        """Refuse (RangeError) a setting outside the instrument's range, before anything is sent."""

    def program_voltages(self, phases: Sequence[PhaseVoltage], frequency_hz: float,
                         harmonics: Sequence[Harmonic]) -> None:
        """Set every phase (one entry per source phase) and the harmonic content; output unchanged."""

    def switch_on(self) -> None: ...
    def protection_tripped(self) -> bool: ...


class Load(Output, Protocol):
    """Current in the meters' current circuits (a phantom load), phase by phase."""

    phases: int

    def check_current(self, rms_a: float, lag_deg: float) -> None:
        """Refuse (RangeError) a setting outside the instrument's range, before anything is sent."""

    def program_currents(self, phases: Sequence[PhaseCurrent], harmonics: Sequence[Harmonic]) -> None:
        """Set every phase (one entry per load phase) and the harmonic content; output unchanged."""

    def switch_on(self) -> None: ...


class Reference(Instrument, Protocol):
    """The reference standard: the board's true conditions, and the energy per pulse of the
    high-frequency pulse output wired to the counter's reference input."""

    def readings(self) -> Readings:
        """Per element V, I (true RMS) and voltage angle; total P, PF, f; THD; power by order."""

    def pulse_constant_wh(self) -> float:
        """Energy per pulse of the output wired to the counter's reference input."""

    def energy_wh(self) -> float:
        """Active energy registered since the instrument's register was last reset (a running
        total read before and after the meters, to cross-check their registers)."""


class Monitor(Instrument, Protocol):
    """A power analyser watching the board's conditions independently of the reference."""

    def readings(self) -> Readings: ...


class Counter(Instrument, Protocol):
    """Pulse counter / error calculator: one channel per position, gating the reference pulses
    between MUT edges on the counter's own timebase."""

    channels: int

    def arm_each(self, channels: Sequence[int], pulses: int) -> None: ...
    def abort(self) -> None: ...
    def states(self) -> list[GateState]: ...
    def results(self, channels: Sequence[int], approx_duration_s: float | None = None) -> list[GateResult]: ...
    def mut_counts(self, channels: Sequence[int]) -> list[int]: ...
    def reference_count(self) -> int: ...
    def interlock_closed(self) -> bool: ...


class Environment(Instrument, Protocol):
    """A thermometer at the board."""

    @property
    def temperature(self) -> float: ...


ROLE_PROTOCOLS: dict[str, type] = {"source": Source, "load": Load, "reference": Reference, "counter": Counter,
                                   "environment": Environment, "monitor": Monitor}


def missing_members(driver: type, role: str) -> list[str]:
    """What a driver class lacks to fill a role (its Protocol's methods and attributes)."""
    protocol = ROLE_PROTOCOLS.get(role)
    if protocol is None:
        return []
    wanted: list[str] = []
    for klass in protocol.__mro__:
        if getattr(klass, "_is_protocol", False) and klass is not Protocol:
            wanted += [n for n in (*vars(klass), *getattr(klass, "__annotations__", {}))
                       if not n.startswith("_") and n not in wanted]
    instance_attributes = {"name", "address", "phases", "channels"}  # set in __init__ or at open
    return [n for n in wanted if not hasattr(driver, n) and n not in instance_attributes]
