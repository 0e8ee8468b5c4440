"""Yokogawa WT-series precision power analyser (WT1800E, WT5000, WT500) as the bench's condition
monitor, and its integrator. VISA: VXI-11 (``TCPIP0::<host>::inst0::INSTR``), USB-TMC or GPIB.

Followed, by section:

- *WT1801E/WT1802E/WT1803E/WT1804E/WT1805E/WT1806E Precision Power Analyzer Communication Interface
  User's Manual* (IM WT1801E-17EN) and its predecessor for the WT1800 (IM WT1801-17EN): section 4.4
  "Data" (a response is NR1..NR3, the same form whatever the value); NUMeric group,
  ``:NUMeric:FORMat``, ``:NUMeric[:NORMal]:NUMber``, ``:NUMeric[:NORMal]:ITEM<x>
  <function>,<element>``, ``:NUMeric[:NORMal]:VALue?`` (items 1 to NUMber, comma separated, in item
  order) and "* Numeric Data Formats": ASCII values are NR3 (mantissa up to 5 digits; up to 6 for
  the Σ of P, S, Q, the integrated values and the distortion factors UTHD/ITHD), TIME is NR1 seconds,
  an item set to NONE or whose data does not exist ("---------") reads ``NAN``, and over-range
  ("---O L---"), overflow ("---O F---") and data over ("Error") read ``INF``.
- *WT5000 Precision Power Analyzer Communication Interface User's Manual* (IM WT5000-17EN), 4.2
  "Commands" (header interpretation: mnemonics are case-insensitive, the lower-case part may be
  omitted, a bracketed node may be omitted, an omitted ``<x>`` is 1), 4.3 "Responses" (query-only
  commands answer without a header; ``COMMunicate:HEADer`` drops the header from the others,
  ``COMMunicate:VERBose`` chooses full or abbreviated forms, character data included).
- COMMunicate, STATus and INTEGrate groups, as the WT series shares them: ``:COMMunicate:REMote``,
  ``:COMMunicate:HEADer``, ``:COMMunicate:VERBose``; ``:STATus:ERRor?`` gives the code and message of
  the oldest error, ``<code>,"<message>"`` (``0,"No error"`` when the queue is empty; with
  ``:STATus:QMESsage OFF`` the code alone), codes positive (the WT300 manual's error queue: 113
  "Undefined header", 350 "Queue overflow"); ``:INTEGrate:MODE NORMal``, ``:INTEGrate:TIMer
  h,m,s``, ``:INTEGrate:STARt|STOP|RESet``, ``:INTEGrate:STATe?``. These pages of the WT1800E manual
  were not in the copies read: the forms are the ones Yokogawa's own WT1800 and WT500 sample programs,
  intel/yoko-tool (WT310) and sunspec svp_energy_lab (WT1600/WT3000) send, and the driver takes the
  error code with or without its message.

Commands sent, in the manual's long form: ``*IDN?``, ``*CLS``, ``:COMMUNICATE:REMOTE ON;HEADER
OFF;VERBOSE OFF``, ``:HARMONICS:THD FUNDAMENTAL``, ``:NUMERIC:FORMAT ASCII;NORMAL:NUMBER <n>;ITEM1
<function>,<element>;...`` (all items in one line, as Yokogawa's own WT1800 sample program sends
them), ``:NUMERIC:NORMAL:VALUE?``, ``:INTEGRATE:MODE NORMAL``, ``:INTEGRATE:TIMER h,m,s`` (and ``?``),
``:INTEGRATE:START|STOP|RESET``, ``:INTEGRATE:STATE?``; ``:STATUS:ERROR?`` after every setting.

How it reads: the items are configured once, at open; every reading is ONE ``:NUMERIC:NORMAL:VALUE?``
(a single update of the instrument, so V, I, P, λ and f belong together). Elements 1..n give URMS,
IRMS and P; the power is the sum of the elements' P (independent of the wiring system set on the
instrument); the power factor is λΣ (``LAMBDA,SIGMA``: ΣP/ΣS of the wiring unit, so the instrument
must be wired 3P4W for a wye board); frequency is FU of element 1; THD is UTHD/ITHD of element 1,
computed against the fundamental (``:HARMONICS:THD FUNDAMENTAL``, as the bench defines THD); the
voltage angles are φU1-U2 and φU1-U3. Harmonic power by order is not read (``harmonic_power_w`` is
empty; the driver does not claim Capability.HARMONIC_POWER). A NAN or INF in an item the reading uses
is an error naming the item, never a number.

Left open by what was read, said here rather than guessed:

- UTHD, ITHD and φU1-U2/φU1-U3 need the harmonic measurement function (standard on the WT5000,
  option /G5 or /G6 on the WT1800E, /G5 on the WT500); without it the item settings are refused at
  open, with the instrument's error. The THD command (``:HARMonics[<x>]:THD {TOTal|FUNDamental}``)
  is the WT1800/WT3000 HARMonics group's; no page of it was read for this driver.
- φU1-U2 and φU1-U3: Yokogawa's WT1800 sample program gives them an element argument (its list
  offers 1..6 and SIGMA/SIGMB/SIGMC) and its WT500 sample none; the manual's function table was not
  read, so the driver sends the wiring unit, ``PHI_U1U2,SIGMA`` (set option ``voltage_angles`` false
  for a WT500, and the angles are left out). Their sign is taken as φ's (lag positive, as the manual
  states for φ in the 180° lead/lag display); the driver wraps any reading to -180..180, so the
  360° display gives the same angles.
- The integrated active energy is the function ``WH`` (display "Wp") in the WT1800/WT500 function
  lists; whether the WT5000 spells it ``WP`` was not confirmed: option ``energy_function``.
- ``:INTEGrate:STATe?`` values RESet, READy, STARt, STOP, ERRor, TIMeup (intel/yoko-tool reads the
  WT300's start/stop/reset/timeup/error; READy is the real-time modes' wait); both the full and the
  abbreviated forms are accepted.
- The WT's proprietary Ethernet socket (port 10001, user name and password, length-framed) is not
  spoken; use its VXI-11, USB-TMC or GPIB interface. The instrument is left in remote at close (the
  front panel's LOCAL key returns it).

Options: ``elements`` (1..3, default 3: the board's measuring elements on WT elements 1..n),
``voltage_angles`` (default true), ``energy_function`` (``WH`` default, or ``WP``).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from instruments.errors import InstrumentError, RangeError, ReplyError
from instruments.reference_standard import Readings
from instruments.registry import DriverError, DriverSettings
from instruments.roles import Capability
from instruments.scpi import Control, ScpiInstrument, parse_float
from instruments.transport import VisaLine

MANUAL = ("Yokogawa WT1801E..WT1806E Precision Power Analyzer Communication Interface User's Manual "
          "(IM WT1801E-17EN; WT1800: IM WT1801-17EN), 4.4 Data; COMMunicate, HARMonics, INTEGrate, NUMeric "
          "(Numeric Data Formats) and STATus groups; WT5000 Communication Interface User's Manual "
          "(IM WT5000-17EN), 4.2 Commands, 4.3 Responses")

VALUE_QUERY = ":NUMERIC:NORMAL:VALUE?"
STATE_QUERY = ":INTEGRATE:STATE?"
MAX_TIMER_S = 10000 * 3600  # the integration timer runs to 10000 hours
NO_DATA = "NAN"
DATA_OVER = ("INF", "+INF", "-INF")
MEANING = {"NAN": "no data (an item set to NONE, or data that does not exist: '---------')",
           "INF": "over-range, overflow or data over ('---O L---', '---O F---' or 'Error')"}
_ERROR = re.compile(r'([+-]?[0-9]+)(?:,"(.*)")?', re.S)
# :INTEGrate:STATe? replies, each in its full and abbreviated form (COMMunicate:VERBose).
INTEGRATION_STATES = ("RESet", "READy", "STARt", "STOP", "ERRor", "TIMeup")
_STATE_FORMS = {form: word.upper() for word in INTEGRATION_STATES
                for form in (word.upper(), word.rstrip("abcdefghijklmnopqrstuvwxyz"))}


@dataclass(frozen=True)
class Item:
    """One numeric data output item: a function of an element (1..6) or a wiring unit (SIGMA)."""

    function: str
    element: str

    def __str__(self) -> str:
        return f"{self.function},{self.element}"


def parse_integration_state(reply: str) -> str:
    """RESET, READY, START, STOP, ERROR or TIMEUP, from either form of the reply."""
    token = reply.strip().upper()
    if token not in _STATE_FORMS:
        raise ValueError(f"not one of {'|'.join(INTEGRATION_STATES)}")
    return _STATE_FORMS[token]


def parse_hms(reply: str) -> int:
    """``h,m,s`` (the integration timer) as whole seconds."""
    fields = reply.strip().split(",")
    if len(fields) != 3 or not all(re.fullmatch(r"[0-9]+", f) for f in fields):
        raise ValueError("not hours,minutes,seconds")
    hours, minutes, seconds = (int(f) for f in fields)
    if minutes > 59 or seconds > 59:
        raise ValueError("minutes or seconds above 59")
    return hours * 3600 + minutes * 60 + seconds


def hms(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours},{rest // 60},{rest % 60}"


class TimerControl(Control[int]):
    """The integration timer: whole seconds, sent as the manual's ``h,m,s``."""

    def check(self, instrument: ScpiInstrument, value: Any) -> None:
        if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value)
                                           and float(value).is_integer()):
            raise RangeError(instrument.name, instrument.address,
                             f"{self.name} {value!r} is not a whole number of seconds")
        super().check(instrument, value)

    def __set__(self, instrument: ScpiInstrument, value: Any) -> None:
        self.check(instrument, value)
        instrument.set(f"{self.command} {hms(int(value))}")


class Sample:
    """One ``:NUMERIC:NORMAL:VALUE?`` reply, by item; a NAN or INF is an error only when it is used."""

    def __init__(self, instrument: YokogawaWt, fields: Mapping[Item, float | str]) -> None:
        self._instrument = instrument
        self._fields = fields

    def check(self, items: list[Item]) -> None:
        """Every one of ``items`` holds a number; otherwise one error naming each that does not."""
        unusable = [f"item {item} reads {value} ({MEANING['NAN' if value == NO_DATA else 'INF']})"
                    for item in items if isinstance(value := self._fields[item], str)]
        if unusable:
            raise ReplyError(self._instrument.name, self._instrument.address,
                             f"{'; '.join(unusable)} in reply to '{VALUE_QUERY}'")

    def __getitem__(self, item: Item) -> float:
        self.check([item])
        value = self._fields[item]
        assert not isinstance(value, str)
        return value


class YokogawaWt(ScpiInstrument):
    """The board's elements on WT elements 1..n; every reading is one VALue? of items set at open."""

    ROLES = frozenset({"monitor"})
    CAPABILITIES: frozenset[Capability] = frozenset()
    MANUAL = MANUAL
    # <maker>,<model>,<serial>,<firmware>: the model as "WT1806E-50..." (WT1800E) or "760203" (WT500).
    IDN_PATTERN = re.compile(r"YOKOGAWA,[\x21-\x2b\x2d-\x7e]+,[\x20-\x2b\x2d-\x7e]*,[\x20-\x2b\x2d-\x7e]+")
    ERROR_QUERY = ":STATUS:ERROR?"

    integration_timer_s = TimerControl(":INTEGRATE:TIMER?", ":INTEGRATE:TIMER",
                                       "Integration timer (NORMal mode stops when it runs out; 0: manual)",
                                       parse=parse_hms, low=0, high=MAX_TIMER_S, unit="s")

    def __init__(self, address: str, *, name: str = "monitor", timeout_s: float = 2.0,
                 ranges: dict[str, tuple[float, float]] | None = None, elements: int = 3,
                 voltage_angles: bool = True, energy_function: str = "WH") -> None:
        super().__init__(name, lambda: VisaLine(address, timeout_s), address, ranges)
        if type(elements) is not int or elements not in (1, 2, 3):
            raise DriverError(f"{name}: option elements must be 1, 2 or 3 (the board's measuring elements), "
                              f"not {elements!r}")
        if energy_function not in ("WH", "WP"):
            raise DriverError(f"{name}: option energy_function must be WH or WP, not {energy_function!r}")
        numbers = [str(e) for e in range(1, elements + 1)]
        self.elements = elements
        self.voltages = [Item("URMS", e) for e in numbers]
        self.currents = [Item("IRMS", e) for e in numbers]
        self.powers = [Item("P", e) for e in numbers]
        self.power_factor = Item("LAMBDA", "SIGMA" if elements > 1 else "1")
        self.frequency = Item("FU", "1")
        self.thd = (Item("UTHD", "1"), Item("ITHD", "1"))
        self.angles = [Item(f"PHI_U1U{e}", "SIGMA") for e in numbers[1:]] if voltage_angles else []
        self.energies = [Item(energy_function, e) for e in numbers]
        self.elapsed = Item("TIME", "1")
        self.items = [*self.voltages, *self.currents, *self.powers, self.power_factor, self.frequency,
                      *self.thd, *self.angles, *self.energies, self.elapsed]

    @classmethod
    def from_settings(cls, settings: DriverSettings) -> YokogawaWt:
        options = dict(settings.options)
        unknown = set(options) - {"elements", "voltage_angles", "energy_function"}
        if unknown:
            raise DriverError(f"{settings.name}: unknown option(s) {', '.join(sorted(unknown))} "
                              f"(known: elements, voltage_angles, energy_function)")
        angles = options.get("voltage_angles", True)
        if not isinstance(angles, bool):
            raise DriverError(f"{settings.name}: option voltage_angles must be true or false, not {angles!r}")
        return cls(settings.address, name=settings.name, timeout_s=settings.timeout_s, ranges=dict(settings.ranges),
                   elements=options.get("elements", 3), voltage_angles=angles,
                   energy_function=options.get("energy_function", "WH"))

    def open(self) -> YokogawaWt:
        """Identify, then configure once: remote, bare replies, THD against the fundamental, the items."""
        if self.is_open:
            return self
        super().open()
        try:
            self.set(":COMMUNICATE:REMOTE ON;HEADER OFF;VERBOSE OFF")
            self.set(":HARMONICS:THD FUNDAMENTAL")
            items = ";".join(f"ITEM{k} {item}" for k, item in enumerate(self.items, start=1))
            self.set(f":NUMERIC:FORMAT ASCII;NORMAL:NUMBER {len(self.items)};{items}")
        except InstrumentError:
            self.close()
            raise
        return self

    # -- Monitor role ----------------------------------------------------------------------------

    def sample(self) -> Sample:
        """Every item from one update: ``:NUMERIC:NORMAL:VALUE?``, checked field by field."""
        reply = self.query(VALUE_QUERY)
        fields = [f.strip() for f in reply.split(",")]
        if len(fields) != len(self.items):
            raise ReplyError(self.name, self.address, f"garbled reply to '{VALUE_QUERY}': {len(fields)} values "
                                                      f"for {len(self.items)} items: {reply!r}")
        values: dict[Item, float | str] = {}
        for item, text in zip(self.items, fields):
            if text == NO_DATA or text in DATA_OVER:
                values[item] = text
                continue
            try:
                values[item] = parse_float(text)
            except ValueError as error:
                raise ReplyError(self.name, self.address, f"garbled reply to '{VALUE_QUERY}': item {item} "
                                                          f"is {text!r} ({error})") from None
        return Sample(self, values)

    def readings(self) -> Readings:
        """With no current on any element λ does not exist, and with none on element 1 its
        current THD does not (the WT shows them as errors): they are reported as 1 and 0, what an
        unloaded board or element has, and only then; any other missing item is an error."""
        s = self.sample()
        s.check([*self.voltages, *self.currents, *self.powers, self.frequency, self.thd[0], *self.angles])
        unloaded = all(s[i] == 0.0 for i in self.currents)
        element_1_unloaded = s[self.currents[0]] == 0.0
        s.check(([] if unloaded else [self.power_factor]) + ([] if element_1_unloaded else [self.thd[1]]))
        angles = (0.0, *(_wrap(-s[item]) for item in self.angles)) if self.angles else ()
        return Readings(voltages_v=tuple(s[i] for i in self.voltages), currents_a=tuple(s[i] for i in self.currents),
                        power_w=math.fsum(s[i] for i in self.powers),
                        power_factor=1.0 if unloaded else s[self.power_factor],
                        frequency_hz=s[self.frequency], thd_voltage_pct=s[self.thd[0]],
                        thd_current_pct=0.0 if element_1_unloaded else s[self.thd[1]], harmonic_power_w=(),
                        voltage_angles_deg=angles)

    # -- Integrator ------------------------------------------------------------------------------

    def configure_integration(self, timer_s: int) -> None:
        """Normal mode with a timer (0: manual, runs until STOP); refused while integrating."""
        self.check("integration_timer_s", timer_s)
        self.set(":INTEGRATE:MODE NORMAL")
        self.integration_timer_s = timer_s

    def start_integration(self) -> None:
        self.set(":INTEGRATE:START")

    def stop_integration(self) -> None:
        self.set(":INTEGRATE:STOP")

    def reset_integration(self) -> None:
        self.set(":INTEGRATE:RESET")

    def integration_state(self) -> str:
        """RESET, READY, START, STOP, ERROR or TIMEUP."""
        return self.query_as(STATE_QUERY, parse_integration_state)

    def energy_wh(self) -> float:
        """Active energy integrated since the last reset, every element together (the WH items)."""
        s = self.sample()
        s.check(self.energies)
        return math.fsum(s[item] for item in self.energies)

    def integration_time_s(self) -> float:
        """Elapsed integration time (TIME, whole seconds)."""
        return self.sample()[self.elapsed]

    # -- error queue -----------------------------------------------------------------------------

    def parse_error(self, reply: str) -> tuple[int, str]:
        """``<code>,"<message>"``, or the code alone (``:STATus:QMESsage OFF``)."""
        match = _ERROR.fullmatch(reply.strip())
        if not match:
            raise ValueError("not an error-queue entry")
        return int(match.group(1)), match.group(2) or ""


def _wrap(angle_deg: float) -> float:
    """-180..180, whichever phase display (180° or 360°) the instrument is set to."""
    return (angle_deg + 180.0) % 360.0 - 180.0
