"""Simulated ZERA COM5003: its SCPI dialect and labelled replies, measuring the simulated world.

Speaks what instruments/vendors/zera_com5003.py cites (ZERA, *SCPI commands COM5003 - Default
session*, release-4.9.13) the way ZERA's SCPI server does it (zera-classes ``scpimodule``):

- '|' separates the commands of a line; a parameter is taken only when a ';' ends it, so
  ``MRATE 10`` (no ';') is -100 "Command error", as is an unknown header or a parameter a query
  does not take. A value the COM5003 refuses is -120 "Numeric data error". The error list holds 50
  entries (a full list turns its last into -350 "Queue overflow"); ``SYSTEM:ERROR?`` answers
  ``<code>,<message>`` without quotes (``+0,No error``). A rejected query answers nothing.
- ``MEASURE`` queries answer ``MODULE:NAME:[unit]:values;`` with 8 significant digits, at once
  (the real COM5003 waits for the module's next value; the simulated world holds still between
  commands). Parameter queries answer the bare value, doubles in their shortest exact form.

It measures as the house reference twin does (bench/sim/instruments.py SimReference): the world's
element phasors synthesised into waves; V and I true RMS; active power (every order) through the
reference's own error (``world.reference.error_pct``). Channels 1..3 are the world's elements
(channels beyond them read zero). DFT vectors are peak-valued, referred to UL1 and counted in the
COM5003's lagging sense; LAMBDA1..3 are P/S per phase and LAMBDA4 ΣP/ΣS (S = U·I, true RMS);
PW31 lists orders 0..40. ``CONFIGURATION:POW1:M0CONSTANT`` is the world's reference pulse output
(1000 / ``world.reference.pulse_constant_wh`` impulses per kWh, fixed: the simulated reference has
no ranges). Integration times are kept (1..100 s) for the driver's timeout check. The fault
OVERRANGE sets ``SENSE:RNG1:OVERLOAD?`` to 1.

The energy register (EM01) keeps its own start mark on the world's reference pulse output
(``world.reference.total_wh``, which drives that output and is never reset) rather than the house
twin's ``accumulator_wh``, so nothing another twin resets moves it: ENERGY is the reference pulses
counted since START 1 times their energy, in TXUNIT. Only active energy is simulated (REFSOURCE P;
Q and S are refused, -120), and only MODE 0 runs (START 1 in MODE 1, the COM5003's default
"duration", is refused with -200: the twin, seeing the world only at commands, cannot stop the
count at MTIME).

The error calculator (EC01:0001) counts the pulses of the meter its scanning-head input SC1 is
wired to (board position 1; HK1 is wired to nothing, so it waits forever): STATUS 1 after START 1,
2 at the meter's next pulse, 4 once MRATE more pulses have come. The reference pulses a comparator
would have counted meanwhile are MRATE x Kh x (1 + reference error) / (1 + DUT error) over the
reference pulse energy, rounded to a whole pulse (a real count is off by at most one), the errors
being the world's truths (``meters[k].true_error_pct``) as last seen while the meter had power;
RESULT is the manual's (TARGET - counted) / counted with TARGET = floor(MRATE x REFCONSTANT /
DUTCONSTANT). So RESULT is the error under the conditions the twin last saw during the gate, not an
energy-weighted average over a gate whose conditions changed. Only REFSOURCE P is simulated.
"""
from __future__ import annotations

import logging
import math
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np

from bench.metrology.harmonics import active_power, analyse, power_by_order, synthesize, thd_pct
from bench.servers.scpi import LINK_FAULTS, ScpiError, ScpiServer
from bench.sim.instruments import WorldDevice
from bench.sim.meter_model import MeterModel
from bench.sim.twins import Served
from bench.sim.world import World

_log = logging.getLogger(__name__)

CHANNELS = 3
HARMONIC_ORDERS = 41  # PW31: orders 0 (DC) to 40
ERROR_LIST_DEPTH = 50
SCANNING_HEAD_POSITION = 1  # the board position input SC1 is wired to
EC = "CALCulate:EC01:0001"
EM = "CALCulate:EM01:0001"
ARMED, STARTED, READY, ABORTED = 1, 2, 4, 8
ENERGY_UNITS = {"Wh": 1.0, "kWh": 1e3, "MWh": 1e6}
DUT_UNITS = ("I/kWh", "Wh/I")  # for REFSOURCE P
RESULT_FACTORS = {"%": 100.0, "ppm": 1e6}

Handler = Callable[..., "str | None"]


def command_error() -> ScpiError:
    return ScpiError(-100, "Command error")


def numeric_data_error() -> ScpiError:
    return ScpiError(-120, "Numeric data error")


def zera_header(pattern: str) -> re.Pattern[str]:
    """The manual's syntax, node by node: capitals and digits are the short form, lower case the
    optional rest (``MEASure:RMS1:UL1?``). The house compile_header drops digits (RMS1, EC01:0001)."""
    query = pattern.endswith("?")
    nodes = []
    for node in pattern.rstrip("?").split(":"):
        short = node.rstrip(string.ascii_lowercase)
        rest = node[len(short):].upper()
        nodes.append(re.escape(short) + (f"(?:{re.escape(rest)})?" if rest else ""))
    return re.compile(":".join(nodes) + (r"\?" if query else ""), re.IGNORECASE)


def split_command(command: str) -> tuple[str, list[str]]:
    """Header, and the parameters that a ';' ends (a trailing one without it is not taken)."""
    header = re.split(r"[ ;]", command.strip(), maxsplit=1)[0]
    rest = command.strip()[len(header):]
    return header, [piece.strip() for piece in rest.split(";")[:-1]]


def g8(value: float) -> str:
    """A measured value as the COM5003 prints it: 8 significant digits."""
    return format(value, ".8g")


def shortest(value: float) -> str:
    """A double parameter as the COM5003 prints it (QVariant::toString: Qt's 'g' with the fewest
    digits that read back exactly; fixed notation while the point is at most 4 places before the
    digits or 4 places beyond them, as printf's %g with Qt's allowance for the exponent's length)."""
    if not math.isfinite(value) or value == 0:
        return format(value, "g")
    for decimals in range(17):  # the fewest significant digits that read back exactly
        scientific = f"{value:.{decimals}e}"
        if float(scientific) == value:
            break
    digits, point = decimals + 1, int(scientific.split("e")[1]) + 1  # point: digits before the decimal point
    if (1 - point <= 4) if point <= 0 else (point <= digits + 4):
        return format(value, f".{max(0, digits - point)}f")
    mantissa, exponent = scientific.split("e")
    return f"{mantissa}e{int(exponent):+03d}"


def _number(argument: str, low: float, high: float) -> float:
    try:
        value = float(argument)
    except ValueError:
        raise numeric_data_error() from None
    if not re.fullmatch(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", argument) or not low <= value <= high:
        raise numeric_data_error()
    return value


def _whole(argument: str, low: int, high: int) -> int:
    if not re.fullmatch(r"[+-]?\d+", argument) or not low <= int(argument) <= high:
        raise numeric_data_error()
    return int(argument)


def _choice(argument: str, allowed: tuple[str, ...]) -> str:
    if argument not in allowed:
        raise numeric_data_error()
    return argument


def _active_only(argument: str) -> None:
    """REFSOURCE: the simulated reference has an active-energy pulse output only (P; Q, S refused)."""
    _choice(argument, ("P",))


@dataclass
class ErrorCalculator:
    """EC01:0001 as the twin keeps it (defaults: ZERA's com5003 sec1module configuration)."""

    dut_source: str = "SC1"
    dc_unit: str = "I/kWh"
    dut_constant: float = 10000.0
    mrate: int = 10
    result_unit: str = "%"
    continuous: int = 0
    mcount: int = 1
    start: int = 0
    status: int = 0
    result: float = 0.0
    done: int = 0  # measurements completed since START 1
    armed_at: int = 0  # the DUT's pulse count when armed: the gate opens at the next one
    gate_start: int = 0  # the DUT's pulse count at the gate's opening edge
    ratio: float | None = None  # (1 + reference error) / (1 + DUT error), last seen with power on


@dataclass
class EnergyRegister:
    """EM01:0001: a start mark on the world's reference pulse output."""

    tx_unit: str = "kWh"
    mode: int = 1
    mtime_s: int = 120
    start: int = 0
    status: int = 0
    start_pulses: int = 0
    final_pulses: int = 0


class ZeraCom5003Twin(WorldDevice):
    idn = "ZERA GmbH Koenigswinter, COM5003, simulated, release-4.9.13"
    fault_kinds = (*LINK_FAULTS, "OVERRANGE")  # the channels overloaded until NONE

    def __init__(self, world: World, dut_position: int = SCANNING_HEAD_POSITION) -> None:
        super().__init__(world)
        self.dut_position = dut_position
        self.integration_s = {module: 1.0 for module in ("RMS1", "POW1", "DFT1", "THD1")}
        self.ec = ErrorCalculator()
        self.em = EnergyRegister()
        self._table: list[tuple[re.Pattern[str], str, Handler]] = []
        self._declare_common()
        self._declare_measurements()
        self._declare_configuration()
        self._declare_error_calculator()
        self._declare_energy_register()

    # -- the dialect -------------------------------------------------------------------------------

    def handle_line(self, line: str) -> Iterator[str]:
        """Execute the '|'-separated commands of a line; yield the replies of its queries."""
        for command in filter(None, (c.strip() for c in line.split("|"))):
            self.received.append(command)
            header, parameters = split_command(command)
            try:
                with self.lock:
                    self.before_command()
                    reply = self._execute(header, parameters)
            except ScpiError as error:
                self.push_error(error)
                continue
            except Exception:  # noqa: BLE001 - a simulator bug must not take the link down
                _log.exception("%s failed on %r", type(self).__name__, command)
                self.push_error(ScpiError(-300, "Device-specific error"))  # ZERA's text; the log has the cause
                continue
            if reply is not None:
                yield reply

    def knows(self, header: str) -> bool:
        return self._entry(header.lstrip(":")) is not None

    def _entry(self, header: str) -> tuple[str, Handler] | None:
        return next(((kind, run) for regex, kind, run in self._table if regex.fullmatch(header)), None)

    def _execute(self, header: str, parameters: list[str]) -> str | None:
        self._follow_world()
        entry = self._entry(header)
        if entry is None:
            raise command_error()
        kind, run = entry
        if kind == "set":
            if len(parameters) != 1:
                raise command_error()
            return run(parameters[0])
        if parameters:
            raise command_error()
        return run()

    def _queue(self, error: ScpiError, depth: int = ERROR_LIST_DEPTH) -> None:
        if len(self.errors) >= depth:
            self.errors.pop()
            error = ScpiError(-350, "Queue overflow")
        self.errors.append(error)

    def _add(self, pattern: str, kind: str, run: Handler) -> None:
        self._table.append((zera_header(pattern), kind, run))

    def _parameter(self, pattern: str, read: Callable[[], str], write: Callable[[str], None] | None = None) -> None:
        self._add(f"{pattern}?", "query", read)
        if write is not None:
            self._add(pattern, "set", write)

    def _declare_common(self) -> None:
        self._add("*IDN?", "query", lambda: self.idn)
        self._add("*CLS", "action", self.errors.clear)
        self._add("*OPC?", "query", lambda: "+1")
        self._add("SYSTem:ERRor?", "query", self._next_error)
        self._add("SYSTem:ERRor:COUNt?", "query", lambda: str(len(self.errors)))
        self._add("SYSTem:ERRor:ALL?", "query", self._all_errors)

    def _next_error(self) -> str:
        if not self.errors:
            return "+0,No error"
        error = self.errors.popleft()
        return f"{error.code},{error.message}"

    def _all_errors(self) -> str:
        if not self.errors:
            return self._next_error()
        return ";".join(self._next_error() for _ in range(len(self.errors)))

    # -- measurements ------------------------------------------------------------------------------

    def _declare_measurements(self) -> None:
        for k in range(CHANNELS):
            n = k + 1
            self._measure(f"RMS1:UL{n}", "V", partial(self._rms, k, 0))
            self._measure(f"RMS1:IL{n}", "A", partial(self._rms, k, 1))
            self._measure(f"DFT1:UL{n}", "V", partial(self._dft, k, 0))
            self._measure(f"DFT1:IL{n}", "A", partial(self._dft, k, 1))
            self._measure(f"POW1:P{n}", "W", partial(self._phase_powers_w, k))
            self._measure(f"LAM1:Lambda{n}", "", partial(self._lambda, k))
            self._measure(f"THD1:UL{n}", "%", partial(self._thd, k, 0))
            self._measure(f"THD1:IL{n}", "%", partial(self._thd, k, 1))
            self._measure(f"PW31:P{n}", "W", partial(self._power_by_order, k))
        self._measure("POW1:PS", "W", lambda: [sum(self._phase_powers_w(k)[0] for k in range(CHANNELS))])
        self._measure("LAM1:Lambda4", "", self._total_lambda)
        self._measure("RNG1:F", "Hz", lambda: [self.world.conditions().frequency_hz])
        self._parameter("SENSe:RNG1:OVERLOAD", lambda: "1" if self.fault == "OVERRANGE" else "0")

    def _measure(self, label: str, unit: str, values: Callable[[], list[float]]) -> None:
        def reply() -> str:
            return f"{label}:[{unit}]:{','.join(g8(v) for v in values())};"

        self._add(f"MEASure:{label.upper()}?", "query", reply)

    def _waves(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Channel k's voltage and current waves (zero beyond the world's elements)."""
        c = self.world.conditions()
        if k >= c.elements:
            zero = synthesize(0.0, 0.0, ())
            return zero, zero
        v, i = c.voltages[k], c.currents[k]
        return (synthesize(abs(v), math.degrees(np.angle(v)), c.voltage_harmonics),
                synthesize(abs(i), math.degrees(np.angle(i)), c.current_harmonics))

    def _gain(self) -> float:
        return 1.0 + self.world.reference.error_pct / 100.0

    def _rms(self, k: int, which: int) -> list[float]:
        return [float(np.sqrt(np.mean(self._waves(k)[which] ** 2)))]

    def _dft(self, k: int, which: int) -> list[float]:
        """Peak-valued fundamental, referred to UL1 and turned to the lagging sense: √2 conj(X) U1/|U1|."""
        c = self.world.conditions()
        if k >= c.elements:
            return [0.0, 0.0]
        phasor = (c.voltages if which == 0 else c.currents)[k]
        reference = c.voltages[0] / abs(c.voltages[0]) if abs(c.voltages[0]) > 0 else 1.0
        vector = math.sqrt(2) * np.conj(phasor) * reference
        return [float(vector.real), float(vector.imag)]

    def _phase_powers_w(self, k: int) -> list[float]:
        v, i = self._waves(k)
        return [active_power(v, i) * self._gain()]

    def _true_power_and_apparent(self, k: int) -> tuple[float, float]:
        v, i = self._waves(k)
        return active_power(v, i), float(np.sqrt(np.mean(v ** 2)) * np.sqrt(np.mean(i ** 2)))

    def _lambda(self, k: int) -> list[float]:
        p, s = self._true_power_and_apparent(k)
        return [math.nan if abs(s) < 1e-15 else max(-1.0, min(1.0, p / s))]

    def _total_lambda(self) -> list[float]:
        pairs = [self._true_power_and_apparent(k) for k in range(CHANNELS)]
        p, s = sum(p for p, _ in pairs), sum(s for _, s in pairs if abs(s) >= 1e-15)
        if p == 0:
            return [0.0]
        return [math.nan if s == 0 else max(-1.0, min(1.0, p / s))]

    def _thd(self, k: int, which: int) -> list[float]:
        wave = self._waves(k)[which]
        return [thd_pct(analyse(wave)[1]) if np.any(wave) else 0.0]

    def _power_by_order(self, k: int) -> list[float]:
        powers = power_by_order(*self._waves(k))
        return [powers.get(order, 0.0) * self._gain() for order in range(HARMONIC_ORDERS)]

    # -- configuration -----------------------------------------------------------------------------

    def _declare_configuration(self) -> None:
        self._parameter("CONFiguration:POW1:M0CONSTANT",
                        lambda: shortest(1000.0 / self.world.reference.pulse_constant_wh))
        for module in self.integration_s:
            self._parameter(f"CONFiguration:{module}:TINTEGRATION", partial(self._integration, module),
                            partial(self._set_integration, module))

    def _integration(self, module: str) -> str:
        return shortest(self.integration_s[module])

    def _set_integration(self, module: str, argument: str) -> None:
        self.integration_s[module] = _number(argument, 1.0, 100.0)

    # -- the error calculator ----------------------------------------------------------------------

    def _declare_error_calculator(self) -> None:
        ec = self.ec
        self._parameter(f"{EC}:DUTSOURCE", lambda: ec.dut_source,
                        lambda a: setattr(ec, "dut_source", _choice(a, ("SC1", "HK1"))))
        self._parameter(f"{EC}:REFSOURCE", lambda: "P", _active_only)
        self._parameter(f"{EC}:DCUNIT", lambda: ec.dc_unit, lambda a: setattr(ec, "dc_unit", _choice(a, DUT_UNITS)))
        self._parameter(f"{EC}:DUTCONSTANT", lambda: shortest(ec.dut_constant),
                        lambda a: setattr(ec, "dut_constant", _number(a, 1e-6, 1e20)))
        self._parameter(f"{EC}:MRATE", lambda: str(ec.mrate),
                        lambda a: setattr(ec, "mrate", _whole(a, 1, 4294967295)))
        self._parameter(f"{EC}:RESULTUNIT", lambda: ec.result_unit,
                        lambda a: setattr(ec, "result_unit", _choice(a, tuple(RESULT_FACTORS))))
        self._parameter(f"{EC}:CONTINUOUS", lambda: str(ec.continuous),
                        lambda a: setattr(ec, "continuous", _whole(a, 0, 1)))
        self._parameter(f"{EC}:MCOUNT", lambda: str(ec.mcount), lambda a: setattr(ec, "mcount", _whole(a, 1, 400)))
        self._parameter(f"{EC}:START", lambda: str(ec.start), self._start_error_calculator)
        self._parameter(f"{EC}:STATUS", lambda: str(ec.status))
        self._parameter(f"{EC}:RESULT", lambda: shortest(ec.result))
        self._parameter(f"{EC}:REFCONSTANT", lambda: shortest(self._reference_constant()))
        self._parameter(f"{EC}:TARGET", lambda: str(self._target()))

    def _reference_constant(self) -> float:
        """Impulses per kWh of the reference pulse output (fout1)."""
        return 1000.0 / self.world.reference.pulse_constant_wh

    def _target(self) -> int:
        """Reference pulses expected for 0 % error: MRATE x REFCONSTANT / DUTCONSTANT (per kWh)."""
        ec = self.ec
        per_kwh = ec.dut_constant if ec.dc_unit == "I/kWh" else 1000.0 / ec.dut_constant
        return math.floor(ec.mrate * self._reference_constant() / per_kwh)

    def _dut(self) -> MeterModel | None:
        return self.world.meters[self.dut_position - 1] if self.ec.dut_source == "SC1" else None

    def _start_error_calculator(self, argument: str) -> None:
        ec, start = self.ec, _whole(argument, 0, 1)
        running = ec.status & (ARMED | STARTED) and not ec.status & ABORTED
        if start and not running:
            dut = self._dut()
            ec.start, ec.status, ec.done, ec.ratio = 1, ARMED, 0, None
            ec.armed_at = dut.pulses if dut is not None else 0
        elif not start:
            if running:
                ec.status = ABORTED
            ec.start = 0

    def _follow_world(self) -> None:
        """Bring the error calculator and energy register up to the world's present."""
        ec, dut = self.ec, self._dut()
        if dut is None or not ec.status & (ARMED | STARTED) or ec.status & ABORTED:
            return
        c = self.world.conditions()
        if dut.registered_power_w(c) > 0 and c.active_power_w > 0:
            ec.ratio = (1.0 + self.world.reference.error_pct / 100.0) / (1.0 + dut.true_error_pct(c) / 100.0)
        while ec.status & (ARMED | STARTED):
            if ec.status & ARMED:
                if dut.pulses <= ec.armed_at:
                    return
                ec.gate_start, ec.status = ec.armed_at + 1, (ec.status & READY) | STARTED
            if dut.pulses < ec.gate_start + ec.mrate:
                return
            self._complete_gate(dut)

    def _complete_gate(self, dut: MeterModel) -> None:
        ec = self.ec
        closing = ec.gate_start + ec.mrate
        if ec.ratio is None:
            ec.result = math.nan
        else:
            counted = round(ec.mrate * dut.test_outputs["Wh"] * ec.ratio / self.world.reference.pulse_constant_wh)
            ec.result = (self._target() - counted) * RESULT_FACTORS[ec.result_unit] / counted
        ec.done += 1
        if ec.continuous:
            ec.status, ec.gate_start = STARTED | READY, closing
        elif ec.done < ec.mcount:
            ec.status, ec.armed_at = ARMED | READY, closing
        else:
            ec.status, ec.start = READY, 0

    # -- the energy register -----------------------------------------------------------------------

    def _declare_energy_register(self) -> None:
        em = self.em
        self._parameter(f"{EM}:REFSOURCE", lambda: "P", _active_only)
        self._parameter(f"{EM}:TXUNIT", lambda: em.tx_unit,
                        lambda a: setattr(em, "tx_unit", _choice(a, tuple(ENERGY_UNITS))))
        self._parameter(f"{EM}:MODE", lambda: str(em.mode), lambda a: setattr(em, "mode", _whole(a, 0, 1)))
        self._parameter(f"{EM}:MTIME", lambda: str(em.mtime_s), lambda a: setattr(em, "mtime_s", _whole(a, 1, 4294967)))
        self._parameter(f"{EM}:START", lambda: str(em.start), self._start_energy_register)
        self._parameter(f"{EM}:STATUS", self._energy_status)
        self._parameter(f"{EM}:ENERGY", lambda: shortest(self._counted_pulses() * self.world.reference.pulse_constant_wh
                                                         / ENERGY_UNITS[em.tx_unit]))

    def _reference_pulses(self) -> int:
        return self.world.reference.pulses_at(self.world.reference.total_wh)

    def _counted_pulses(self) -> int:
        em = self.em
        return self._reference_pulses() - em.start_pulses if em.start else em.final_pulses

    def _energy_status(self) -> str:
        em = self.em
        if em.start:
            return str(STARTED if self._counted_pulses() > 0 else ARMED)
        return str(em.status)

    def _start_energy_register(self, argument: str) -> None:
        em, start = self.em, _whole(argument, 0, 1)
        if start and not em.start:
            if em.mode != 0:
                raise ScpiError(-200, "Execution error")
            em.start, em.start_pulses, em.final_pulses = 1, self._reference_pulses(), 0
        elif not start and em.start:
            em.final_pulses, em.start, em.status = self._counted_pulses(), 0, READY


def serve(world: World) -> Served:
    """The twin on a loopback port (the real COM5003 listens on 6320)."""
    device = ZeraCom5003Twin(world)
    server = ScpiServer(device).start()
    return Served(server.resource, device, [server])
