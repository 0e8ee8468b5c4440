"""ZERA COM5003 reference standard (three voltage, three current channels) with its error
calculator and energy register, over its SCPI port: TCP 6320 (``TCPIP0::<host>::6320::SOCKET``) or
its serial port (9600 baud, 8 data bits, 1 stop bit, no parity, per the manual; a VISA ``ASRL``
address).

Followed: ZERA GmbH, *SCPI commands COM5003 - Default session* (zenux-data
``scpi-documentation/com5003-meas-session.html``, created with operating system release-4.9.13),
by section:

- 1 "SCPI Standard": program messages end with a line feed; a semicolon ends a command's
  parameter; queries answer with a response message. 2 "Device connection": port 6320; serial
  9600 8N1. 5 "System commands" / "Error information": ``SYSTEM:ERROR?`` reads one entry of the
  error list. 6 "Standard SCPI commands": ``*IDN``, ``*CLS``.
- 7 "Measurement systems": ``MEASURE`` is CONFigure, INITiate and FETCh in one: it waits for the
  module's next value. A fully specified query answers with one labelled value, ``MEASURE:RMS1:UL1?``
  -> ``RMS1:UL1:[V]:value;``. Read here: 7.2 ``MEASURE:DFT1:UL1..3?`` (cartesian ``re,im``),
  7.3 ``MEASURE:POW1:PS?`` (Power 1, active power, sum of all phases; Power 1 is connected to
  frequency output fout1), 7.5 ``MEASURE:RMS1:UL1..3?`` / ``IL1..3?``, 7.6 ``MEASURE:THD1:UL1?`` /
  ``IL1?`` (THD1: against the fundamental, in %), 7.7 ``MEASURE:LAM1:LAMBDA4?``, 7.8
  ``MEASURE:PW31:P1..3?`` (harmonic active power values), 8 "Ranges" ``MEASURE:RNG1:F?`` (frequency)
  and ``SENSE:RNG1:OVERLOAD?`` ("1 if there is an overload condition on any measurement channel").
  7.3 "Power 1": ``CONFIGURATION:POW1:M0CONSTANT`` (frequency output constant), and the
  ``TINTEGRATION`` of RMS1, POW1, DFT1 and THD1 (1..100 s).
- 9 "Comparison Measurements", "Pulse comparison" (``CALCULATE:EC01:0001``): ``DUTSOURCE`` (SC1,
  HK1), ``REFSOURCE`` (P, Q, S), ``DCUNIT`` (I/kWh, Wh/I for P), ``DUTCONSTANT`` (1e-6..1e20),
  ``MRATE`` (pulses to measure, 1..4294967295), ``CONTINUOUS``, ``MCOUNT``, ``RESULTUNIT`` (%, ppm),
  ``START`` (1 start, 0 stop), ``STATUS`` (0 idle, 1 waiting for first pulse, 2 started, 4 ready,
  8 aborted), ``RESULT`` ("error value of the last measurement completed"). "Energy register"
  (``CALCULATE:EM01:0001``): ``REFSOURCE``, ``TXUNIT`` (MWh, kWh, Wh for P), ``MODE`` (0 start/stop,
  stopped by hand; 1 duration, stopped after ``MTIME``), ``START``, ``STATUS``, ``ENERGY`` ("energy
  since last start").

What the manual leaves open, and where it was settled (ZERA's published SCPI server, the
zera-classes repository, module ``scpimodule``, and ZERA's notes of replies captured on a COM5003,
zera-scpi ``doc/istwertabfrage-scpi-ac.txt``):

- Several commands on one line are separated by ``|`` (not ``;``), and a setting's parameter must
  end with ``;`` (``CALCULATE:EC01:0001:MRATE 10;``; without it the COM5003 answers -100). The
  house ``ScpiInstrument.set`` (``<command>;:<error query>``) would be one malformed command here,
  so this driver sends ``<command>;|SYSTEM:ERROR?``. Replies end with a line feed over TCP (over the
  serial port, with the terminator the command came with: the driver sends LF).
- A query the COM5003 rejects gets no reply at all (the error goes to the list), so it shows as a
  timeout; and a ``MEASURE`` query waits for the module's next value, so the driver's timeout must
  exceed the longest integration time: checked at open.
- ``SYSTEM:ERROR?`` answers ``<code>,<message>`` without quotes: ``+0,No error``,
  ``-100,Command error``, ``-120,Numeric data error`` (a value the COM5003 refuses). ``*IDN?``
  answers ``ZERA GmbH Koenigswinter, COM5003, <serial>, <release>``.
- Measured values are printed with 8 significant digits (older releases: 17, as in the captured
  replies); a parameter query (``...:STATUS?``, ``...:M0CONSTANT?``) answers the bare value.
  A reply's label is checked against the query (case aside: the COM5003 answers
  ``MEASURE:LAM1:LAMBDA4?`` with ``LAM1:Lambda4:[]:...;``), so is its unit.
- Angles: the DFT vectors are referred to the DFT reference channel (UL1 by default), and a
  positive-sequence system reads UL2 at +120° and UL3 at +240° (the captured reply; the DFT module
  reports phase sequence "123" when the angles of UL1, UL2, UL3 increase): the COM5003 counts angles
  in the lagging sense. ``voltage_angles_deg`` is the bench's convention (positive leading, from
  element 1, -180..180), so the driver negates.
- ``LAMBDA4`` is the total power factor: the lambda module computes it as the sum of P over the sum
  of the phases' apparent powers (1..3 are the phases'). ``PW31:P1..3`` list the active power of
  orders 0 (DC) to 40, one phase each; ``harmonic_power_w`` sums the elements' lists by order.
- ``M0CONSTANT`` (impulses per kWh, query only) is not a setting: the COM5003 derives it from
  ``CONFIGURATION:POW1:NOMINAL_FREQ`` (10..200 kHz) over the active systems times the voltage and
  current ranges' maxima, so every range change (automatic ranging included) changes the constant of
  fout1. ``pulse_constant_wh`` reads it afresh at every call: fix the ranges on the COM5003 (or
  read the constant before and after a dwell) when fout1 feeds the bench's counter.
- The energy register's ``ENERGY`` is in the ``TXUNIT`` unit (the manual's table says kWh), counted
  from the reference pulses of the selected power module and refreshed by the COM5003 about once a
  second. Its default mode is "duration" (MODE 1, 120 s), which would stop it.

The energy register (Reference.energy_wh): at open the driver leaves a register that already runs
as a running total of active energy (START 1, MODE 0, REFSOURCE P, running); otherwise it
(re)starts it (``reset_energy``: stop, REFSOURCE P, TXUNIT Wh, MODE 0, START 1). So a reopen after
a lost link keeps the running total; ``reset_energy()`` zeroes it on demand. ``energy_wh`` refuses a
register that is not running (someone stopped it at the front panel), rather than return a frozen
total.

The error calculator (``configure_error_calculator``, ``start_error_calculator``,
``stop_error_calculator``, ``error_calculator_status``, ``error_calculator_result``) is an extra
capability, not the bench's counter role: the COM5003 gates its reference pulses between the DUT's
pulses itself and gives one number (RESULT); the counter role needs the raw evidence (reference
pulses counted between MUT edges, and the edges' timestamps) from which the bench computes the
error, checks the pulse timing and states the uncertainty, and that the EC does not give out.
``DUTSOURCE`` SC1 and HK1 are the manual's valid strings for EC01:0001; the manual does not
describe them further.

Options: ``elements`` (1..3, default 3: the board's measuring elements on COM5003 channels 1..n;
the power is still Power 1's sum of all three, so leave the channels beyond them unconnected).
"""
from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from instruments.errors import RangeError, ReplyError
from instruments.reference_standard import Readings
from instruments.registry import DriverError, DriverSettings
from instruments.roles import Capability
from instruments.scpi import ScpiInstrument, control, parse_float, parse_floats, parse_int
from instruments.transport import TransportError, VisaLine

T = TypeVar("T")

MANUAL = ("ZERA GmbH, SCPI commands COM5003 - Default session (zenux-data scpi-documentation/"
          "com5003-meas-session.html, release-4.9.13): 1 SCPI Standard; 2 Device connection; 5 System commands, "
          "error information; 6 Standard SCPI commands; 7 Measurement systems (7.2 DFT, 7.3 Power, 7.5 RMS, 7.6 THD, "
          "7.7 Lambda, 7.8 Harmonic power); 8 Ranges; 9 Comparison Measurements (pulse comparison, energy register)")

EC = "CALCULATE:EC01:0001"  # the pulse comparison (meter test) error calculator
EM = "CALCULATE:EM01:0001"  # the energy register
CHANNELS = 3
DUT_SOURCES = ("SC1", "HK1")
DUT_CONSTANT_UNITS = {"P": "I/kWh", "Q": "I/kVarh", "S": "I/kVAh"}  # by reference source, impulses per k-unit
MRATE_MAX = 4294967295
ENERGY_UNITS = {"Wh": 1.0, "kWh": 1e3, "MWh": 1e6}
RESULT_UNITS = {"%": 1.0, "ppm": 1e-4}  # to percent
INTEGRATING_MODULES = ("RMS1", "POW1", "DFT1", "THD1")
REPLY_MARGIN_S = 0.5  # beyond one integration time: the COM5003's processing and the link

_LABELLED = re.compile(r"([A-Za-z0-9_]+:[A-Za-z0-9_-]+):\[([^\]]*)\]:([^;]*);")


def parse_labelled(reply: str, label: str, unit: str, count: int | None = 1) -> list[float]:
    """``MODULE:NAME:[unit]:v1[,v2...];``: the label and unit must be the query's, every value strict."""
    match = _LABELLED.fullmatch(reply.strip())
    if not match:
        raise ValueError("not a labelled value 'MODULE:NAME:[unit]:value;'")
    if match.group(1).upper() != label.upper():
        raise ValueError(f"it is labelled {match.group(1)}, not {label}")
    if match.group(2) != unit:
        raise ValueError(f"its unit is [{match.group(2)}], not [{unit}]")
    values = parse_floats(match.group(3))
    if count is not None and len(values) != count:
        raise ValueError(f"{len(values)} values, not {count}")
    return values


def parse_flag(reply: str) -> bool:
    """A 0/1 parameter."""
    value = parse_int(reply)
    if value not in (0, 1):
        raise ValueError("not 0 or 1")
    return value == 1


@dataclass(frozen=True)
class CalculatorStatus:
    """STATUS of the error calculator or the energy register: bits 1 waiting for the first pulse,
    2 started, 4 ready (a result exists), 8 aborted; 0 idle. The firmware may set higher bits of
    its own (a pause between multiple measurements)."""

    code: int

    @classmethod
    def parse(cls, reply: str) -> CalculatorStatus:
        code = parse_int(reply)
        if code < 0:
            raise ValueError("a status is not negative")
        return cls(code)

    @property
    def waiting(self) -> bool:
        return bool(self.code & 1)

    @property
    def started(self) -> bool:
        return bool(self.code & 2)

    @property
    def ready(self) -> bool:
        return bool(self.code & 4)

    @property
    def aborted(self) -> bool:
        return bool(self.code & 8)

    @property
    def running(self) -> bool:
        return (self.waiting or self.started) and not self.aborted


class ZeraCom5003(ScpiInstrument):
    """The COM5003 as the bench's reference standard, with its error calculator as an extra."""

    ROLES = frozenset({"reference"})
    CAPABILITIES = frozenset({Capability.HARMONIC_POWER, Capability.ENERGY_REGISTER})
    MANUAL = MANUAL
    IDN_PATTERN = re.compile(r"[^,]*ZERA[^,]*, ?COM5003, ?[^,]+, ?[^,]+")
    ERROR_QUERY = "SYSTEM:ERROR?"

    ec_dut_constant = control(f"{EC}:DUTCONSTANT?", f"{EC}:DUTCONSTANT",
                              "Meter constant of the device under test, in the DCUNIT configure_error_calculator "
                              "sets (impulses per kWh, kVarh, kVAh)",
                              low=1e-6, high=1e20, unit="I/kWh", fmt="{:.10g}")

    def __init__(self, address: str, *, name: str = "reference", timeout_s: float = 2.0, elements: int = CHANNELS,
                 ranges: dict[str, tuple[float, float]] | None = None) -> None:
        if isinstance(elements, bool) or not isinstance(elements, int) or not 1 <= elements <= CHANNELS:
            raise DriverError(f"{name}: option elements must be 1, 2 or 3 (the board's measuring elements), "
                              f"not {elements!r}")
        super().__init__(name, lambda: VisaLine(address, timeout_s), address, ranges)
        self.timeout_s = timeout_s
        self.elements = elements

    @classmethod
    def from_settings(cls, settings: DriverSettings) -> ZeraCom5003:
        unknown = set(settings.options) - {"elements"}
        if unknown:
            raise DriverError(f"{settings.name}: unknown option(s) {', '.join(sorted(unknown))} (known: elements)")
        return cls(settings.address, name=settings.name, timeout_s=settings.timeout_s, ranges=dict(settings.ranges),
                   elements=settings.options.get("elements", CHANNELS))

    # -- the dialect -------------------------------------------------------------------------------

    def open(self) -> ZeraCom5003:
        """Identify; check that the timeout covers a MEASURE query; keep or start the energy register."""
        if self.is_open:
            return self
        super().open()
        try:
            self._check_integration_times()
            self._keep_or_start_energy_register()
        except BaseException:
            self.close()
            raise
        return self

    def set(self, command: str) -> None:
        """One setting and the error query on one line (see the module docstring)."""
        self.set_all([command])

    def set_all(self, commands: Sequence[str]) -> None:
        """Settings on one line, each parameter ended with ';', then the error query: one round trip."""
        line = "|".join(f"{command};" for command in commands)
        self._check_errors(line, self.query(f"{line}|{self.ERROR_QUERY}"))

    def parse_error(self, reply: str) -> tuple[int, str]:
        """``+0,No error``, ``-100,Command error``: code and message, no quotes."""
        match = re.fullmatch(r"([+-]?[0-9]+),([\x20-\x7e]+)", reply.strip())
        if not match:
            raise ValueError("not an error-list entry")
        return int(match.group(1)), match.group(2)

    def query_lines(self, queries: Sequence[str]) -> list[str]:
        """Queries on one line, one reply line each, in order. After a missing reply the link is
        closed: the late reply would otherwise answer the next query."""
        line = "|".join(queries)
        self.write(line)
        transport = self._link(line)
        replies: list[str] = []
        try:
            for _ in queries:
                replies.append(transport.read())
        except TransportError as error:
            self.close()
            missing = queries[len(replies)]
            raise self.error(f"'{missing}' (reply {len(replies) + 1} of {len(queries)}): {error} "
                             f"(the COM5003 does not answer a query it rejects)") from None
        return replies

    def parsed(self, query: str, reply: str, parse: Callable[[str], T]) -> T:
        try:
            return parse(reply)
        except ValueError as error:
            raise ReplyError(self.name, self.address, f"garbled reply to '{query}': {reply!r} ({error})") from None

    def _check_integration_times(self) -> None:
        queries = [f"CONFIGURATION:{module}:TINTEGRATION?" for module in INTEGRATING_MODULES]
        times = [self.parsed(q, r, parse_float) for q, r in zip(queries, self.query_lines(queries))]
        longest = max(times)
        module = INTEGRATING_MODULES[times.index(longest)]
        if self.timeout_s < longest + REPLY_MARGIN_S:
            raise self.error(f"timeout {self.timeout_s:g} s does not cover the {module} integration time {longest:g} s "
                             f"(a MEASURE query waits for the next value): give the reference at least "
                             f"{longest + REPLY_MARGIN_S:g} s")

    # -- Reference role ----------------------------------------------------------------------------

    def readings(self) -> Readings:
        """One line of MEASURE queries (each answers with its module's next value), then the
        overload flag, so an overload while they were measured refuses the readings."""
        channels = range(1, self.elements + 1)
        wanted: list[tuple[str, str, str, int | None]] = (  # query, label, unit, number of values
            [(f"MEASURE:RMS1:UL{k}?", f"RMS1:UL{k}", "V", 1) for k in channels]
            + [(f"MEASURE:RMS1:IL{k}?", f"RMS1:IL{k}", "A", 1) for k in channels]
            + [(f"MEASURE:DFT1:UL{k}?", f"DFT1:UL{k}", "V", 2) for k in channels]
            + [("MEASURE:POW1:PS?", "POW1:PS", "W", 1), ("MEASURE:LAM1:LAMBDA4?", "LAM1:LAMBDA4", "", 1),
               ("MEASURE:RNG1:F?", "RNG1:F", "Hz", 1), ("MEASURE:THD1:UL1?", "THD1:UL1", "%", 1),
               ("MEASURE:THD1:IL1?", "THD1:IL1", "%", 1)]
            + [(f"MEASURE:PW31:P{k}?", f"PW31:P{k}", "W", None) for k in channels])
        overload_query = "SENSE:RNG1:OVERLOAD?"
        replies = self.query_lines([q for q, _, _, _ in wanted] + [overload_query])
        values = [self.parsed(q, r, partial(parse_labelled, label=label, unit=unit, count=count))
                  for (q, label, unit, count), r in zip(wanted, replies)]
        if self.parsed(overload_query, replies[-1], parse_flag):
            raise self.error("a measuring channel is overloaded (SENSE:RNG1:OVERLOAD? 1): its values are not "
                             "measurements; readings refused")
        n = self.elements
        voltages, currents, vectors = values[:n], values[n:2 * n], values[2 * n:3 * n]
        power, power_factor, frequency, thd_voltage, thd_current = (v[0] for v in values[3 * n:3 * n + 5])
        by_order = values[3 * n + 5:]
        if len({len(powers) for powers in by_order}) != 1:
            raise ReplyError(self.name, self.address, "garbled replies to 'MEASURE:PW31:Pn?': the phases list "
                                                      "different numbers of orders")
        lagging = [math.degrees(math.atan2(im, re)) for re, im in vectors]  # the COM5003's sense
        angles = tuple((lagging[0] - a + 180.0) % 360.0 - 180.0 for a in lagging)
        harmonics = tuple((order, total) for order, total in enumerate(map(sum, zip(*by_order))) if total != 0.0)
        return Readings(tuple(v[0] for v in voltages), tuple(i[0] for i in currents), power, power_factor, frequency,
                        thd_voltage, thd_current, harmonics, voltage_angles_deg=angles)

    def pulse_constant_wh(self) -> float:
        """Energy per pulse of fout1 (Power 1, active power), from its constant in impulses per kWh."""
        constant = self.query_as("CONFIGURATION:POW1:M0CONSTANT?", parse_float)
        if constant <= 0:
            raise self.error(f"fout1 has no valid constant (CONFIGURATION:POW1:M0CONSTANT? {constant:g})")
        return 1000.0 / constant

    def energy_wh(self) -> float:
        """The energy register's total since it was last (re)started, in Wh whatever its TXUNIT."""
        queries = [f"{EM}:STATUS?", f"{EM}:TXUNIT?", f"{EM}:ENERGY?"]
        status_reply, unit_reply, energy_reply = self.query_lines(queries)
        status = self.parsed(queries[0], status_reply, CalculatorStatus.parse)
        if not status.running:
            raise self.error(f"the energy register is not running (EM01 STATUS {status.code}): "
                             f"reset_energy() starts it again")
        factor = self.parsed(queries[1], unit_reply, lambda text: _lookup(ENERGY_UNITS, text, "an active energy unit"))
        return self.parsed(queries[2], energy_reply, parse_float) * factor

    def reset_energy(self) -> None:
        """Restart the register from zero as a running total of active energy: stop it (and wait
        until it has), REFSOURCE P, TXUNIT Wh, MODE 0 (runs until stopped), START 1."""
        self._restart_energy(self.query_as(f"{EM}:START?", parse_flag))

    def _restart_energy(self, started: bool) -> None:
        if started:
            self.set(f"{EM}:START 0")
            self._wait_for(EM, lambda status: not status.running, "stop")
        self.set_all([f"{EM}:REFSOURCE P", f"{EM}:TXUNIT Wh", f"{EM}:MODE 0"])
        self.set(f"{EM}:START 1")

    def _keep_or_start_energy_register(self) -> None:
        queries = [f"{EM}:START?", f"{EM}:MODE?", f"{EM}:REFSOURCE?", f"{EM}:STATUS?"]
        start, mode, source, status = self.query_lines(queries)
        started = self.parsed(queries[0], start, parse_flag)
        if not (started and self.parsed(queries[1], mode, parse_int) == 0 and source.strip() == "P"
                and self.parsed(queries[3], status, CalculatorStatus.parse).running):
            self._restart_energy(started)

    def _wait_for(self, node: str, done: Callable[[CalculatorStatus], bool], what: str) -> None:
        """Poll STATUS (bounded by the timeout): a stop finishes inside the COM5003 after the setting."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            status = self.query_as(f"{node}:STATUS?", CalculatorStatus.parse)
            if done(status):
                return
            if time.monotonic() > deadline:
                raise self.error(f"{node} did not {what} within {self.timeout_s:g} s (STATUS {status.code})")
            time.sleep(0.05)

    # -- the error calculator (an extra: not the counter role) -------------------------------------

    def configure_error_calculator(self, dut_source: str, dut_constant: float, pulses: int,
                                   reference_source: str = "P") -> None:
        """DUT input, reference power module, DUT constant (impulses per kWh, or kVarh / kVAh for
        Q / S), pulses to measure; one measurement per start (CONTINUOUS 0, MCOUNT 1), result in %.
        Everything is checked before anything is sent."""
        if dut_source not in DUT_SOURCES:
            raise RangeError(self.name, self.address, f"DUT source {dut_source!r} is not one of "
                                                      f"{', '.join(DUT_SOURCES)}")
        if reference_source not in DUT_CONSTANT_UNITS:
            raise RangeError(self.name, self.address, f"reference source {reference_source!r} is not one of "
                                                      f"{', '.join(DUT_CONSTANT_UNITS)}")
        self.check("ec_dut_constant", dut_constant)
        if isinstance(pulses, bool) or not isinstance(pulses, int) or not 1 <= pulses <= MRATE_MAX:
            raise RangeError(self.name, self.address, f"pulses to measure {pulses!r} is not a whole number "
                                                      f"1..{MRATE_MAX}")
        self.set_all([f"{EC}:DUTSOURCE {dut_source}", f"{EC}:REFSOURCE {reference_source}",
                      f"{EC}:DCUNIT {DUT_CONSTANT_UNITS[reference_source]}",
                      f"{EC}:DUTCONSTANT {dut_constant:.10g}", f"{EC}:MRATE {pulses}",
                      f"{EC}:CONTINUOUS 0", f"{EC}:MCOUNT 1", f"{EC}:RESULTUNIT %"])

    def start_error_calculator(self) -> None:
        """Arm: the measurement starts at the DUT's next pulse (STATUS 1, then 2, then 4)."""
        self.set(f"{EC}:START 1")

    def stop_error_calculator(self) -> None:
        """Abort a measurement under way (STATUS 8)."""
        self.set(f"{EC}:START 0")

    def error_calculator_status(self) -> CalculatorStatus:
        return self.query_as(f"{EC}:STATUS?", CalculatorStatus.parse)

    def error_calculator_result(self) -> float:
        """The error of the last measurement completed, in percent; an error if there is none."""
        queries = [f"{EC}:STATUS?", f"{EC}:RESULTUNIT?", f"{EC}:RESULT?"]
        status_reply, unit_reply, result_reply = self.query_lines(queries)
        status = self.parsed(queries[0], status_reply, CalculatorStatus.parse)
        if not status.ready:
            raise self.error(f"the error calculator has no result (EC01 STATUS {status.code})")
        if result_reply.strip().lower() == "nan":
            raise self.error("the error calculator counted no reference pulses (EC01 RESULT nan)")
        factor = self.parsed(queries[1], unit_reply, lambda text: _lookup(RESULT_UNITS, text, "a result unit"))
        return self.parsed(queries[2], result_reply, parse_float) * factor


def _lookup(table: dict[str, float], reply: str, what: str) -> float:
    if reply.strip() not in table:
        raise ValueError(f"not {what} ({', '.join(table)})")
    return table[reply.strip()]
