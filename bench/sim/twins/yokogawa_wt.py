"""Simulated Yokogawa WT1803E power analyser (three elements), from the *WT1801E..WT1806E
Communication Interface User's Manual* (IM WT1801E-17EN; WT1800: IM WT1801-17EN) and the *WT5000
Communication Interface User's Manual* (IM WT5000-17EN), sections 4.2-4.4: the COMMunicate,
HARMonics (THD), INTEGrate, NUMeric and STATus commands the driver uses, in short or long form,
with an omitted ``<x>`` read as 1.

It samples the world's conditions with no error of its own (a monitor's error is small beside the
meters'; the reference standard carries the bench's): element k of the board on WT element k, true
RMS including harmonics, P per element from the fundamental and harmonic phasors, ΣP and ΣS as a
3P4W wiring unit, λΣ = ΣP/ΣS. Replies follow "Numeric Data Formats": NR3 with a 5-digit mantissa
(6 for ΣP, ΣS, WH and UTHD/ITHD) on engineering exponents as in the manual's examples
(``104.75E+00``), TIME in NR1 seconds, ``NAN`` for NONE items and data that does not exist, ``INF``
for over-range or data over. Query-only commands answer without a header; the others carry one
while ``COMMunicate:HEADer`` is ON (the power-on state), abbreviated unless ``COMMunicate:VERBose``
is ON. The integrator adds each element's P over simulated time (world.time_s) while it runs.

What the manuals leave open is chosen here, and said: NAN for a frequency, THD or voltage angle
without a signal, INF for λ and φ when S is 0; the power-on THD form is TOTal, the power-on item
count 15 with every item NONE; φU1-U2/φU1-U3 take the wiring unit (SIGMA) or no element and are
positive when U2/U3 lags U1; FLOat output is refused (this link carries ASCII lines). Error codes
are the WT's positive ones (113 Undefined header, 141 Invalid character data, 222 Data out of range,
224 Illegal parameter value, 114 Header suffix out of range); the integrator's are those intel/yoko-
tool maps for the WT300 series (813 setting during integration, 842 already started, 844 not started,
845 reset while running).
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np

from bench.metrology.harmonics import thd_pct
from bench.servers.scpi import (
    LINK_FAULTS,
    ScpiError,
    ScpiServer,
    parse_bool,
    parse_whole,
    scpi,
    undefined_header,
)
from bench.sim.instruments import WorldDevice
from bench.sim.twins import Served
from bench.sim.world import World

ELEMENTS = 3  # a WT1803E
MAX_ITEMS = 255
MAX_TIMER_H = 10000
# Functions this twin computes: (the manual's mnemonic, takes an element 1..3, accepts SIGMA).
FUNCTIONS: dict[str, tuple[str, bool, bool]] = {
    "URMS": ("URMS", True, True), "IRMS": ("IRMS", True, True), "P": ("P", True, True),
    "S": ("S", True, True), "LAMBDA": ("LAMBda", True, True), "PHI": ("PHI", True, True),
    "FU": ("FU", True, False), "FI": ("FI", True, False), "UTHD": ("UTHD", True, False),
    "ITHD": ("ITHD", True, False), "PHI_U1U2": ("PHI_U1U2", False, True),
    "PHI_U1U3": ("PHI_U1U3", False, True), "WH": ("WH", True, True), "TIME": ("TIME", True, False),
}
SIX_DIGITS = {"UTHD", "ITHD", "WH"}  # and the Σ of P and S
_SUFFIXED = (
    (re.compile(r"NUM(?:ERIC)?(?::NORM(?:AL)?)?:ITEM([0-9]*)(\?)?", re.I), "item"),
    (re.compile(r"INTEG(?:RATE)?:TIM(?:ER)?([0-9]*)(\?)?", re.I), "timer"),
    (re.compile(r"HARM(?:ONICS)?([0-9]*):THD(\?)?", re.I), "thd"),
)
NAN, INF = "NAN", "INF"


def nr3(value: float, digits: int = 5) -> str:
    """The manual's NR3: ``digits`` significant digits, exponent a multiple of 3 (``49.868E+00``)."""
    if value == 0:
        return f"{0:.{digits - 1}f}E+00"
    exponent = 3 * math.floor(math.log10(abs(value)) / 3)
    for _ in range(2):  # rounding may carry the mantissa to 1000
        mantissa = value / 10.0 ** exponent
        text = f"{mantissa:.{max(0, digits - len(str(int(abs(mantissa)))))}f}"
        if abs(float(text)) < 1000:
            break
        exponent += 3
    return f"{text}E{exponent:+03d}"


def mnemonic(word: str, verbose: bool) -> str:
    """Character data as the manual spells it: full (VERBose ON) or its short form (upper-case part)."""
    return word.upper() if verbose else re.sub(r"[a-z].*", "", word)


def choose(arg: str | None, words: tuple[str, ...]) -> str:
    """The manual's mnemonic that ``arg`` names in its short or long form (141 otherwise)."""
    token = (arg or "").strip().upper()
    for word in words:
        if token in (word.upper(), mnemonic(word, verbose=False)):
            return word
    raise ScpiError(141, f"Invalid character data;{arg}")


class YokogawaWtTwin(WorldDevice):
    idn = "YOKOGAWA,WT1803E-50,SIM000001,F1.01"
    fault_kinds = (*LINK_FAULTS, "OVERRANGE")  # every item over range until NONE

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.remote = False
        self.header = True
        self.verbose = False
        self.messages = True  # :STATus:QMESsage
        self.number = 15
        self.items: dict[int, tuple[str, str | None]] = {}  # item -> (function, element); absent: NONE
        self.thd = "TOTal"
        self.mode = "NORMal"
        self.timer_s = 0
        self.state = "RESet"
        self.energy_wh = [0.0] * ELEMENTS
        self.elapsed_s = 0.0
        self._attached = True
        inner: Callable[[float], None] = world._integrate

        def integrate(dt: float) -> None:  # the world's conditions hold over dt: integrate them first
            self._integrate(dt)
            inner(dt)

        world._integrate = integrate  # type: ignore[method-assign]  # no public hook: see serve()

    def stop(self) -> None:
        """Detach from the world's clock (the wrapper stays, inert)."""
        self._attached = False

    # -- headers, replies and errors ---------------------------------------------------------------

    def _reply(self, syntax: str, data: str) -> str:
        """``data``, after the header while HEADer is ON: full with VERBose ON, else abbreviated
        (the short form of each node, bracketed nodes left out)."""
        if not self.header:
            return data
        nodes = re.findall(r"(\[?):?([A-Za-z0-9_]+)\]?", syntax)
        if self.verbose:
            return ":" + ":".join(node.upper() for _, node in nodes) + f" {data}"
        short = [re.sub(r"[a-z]+", "", node) for optional, node in nodes if not optional]
        return ":" + ":".join(short) + f" {data}"

    def _dispatch(self, header: str, argument: str | None) -> str | None:
        for pattern, name in _SUFFIXED:
            match = pattern.fullmatch(header)
            if match:
                suffix = int(match.group(1) or "1")
                handler = getattr(self, f"_{name}_query" if match.group(2) else f"_{name}_set")
                reply: str | None = handler(suffix, argument)
                return reply
        return super()._dispatch(header, argument)

    def _next_error(self, _: str | None) -> str:
        """Not a WT command: redefined without @scpi, so SYSTem:ERRor? is 113 like any unknown header."""
        raise undefined_header("SYSTem:ERRor?")

    @scpi("STATus:ERRor?")
    def error_query(self, _: str | None) -> str:
        if not self.errors:
            return '0,"No error"' if self.messages else "0"
        error = self.errors.popleft()
        code = abs(error.code)
        return f'{code},"{error.message.split(";")[0]}"' if self.messages else str(code)

    @scpi("STATus:QMESsage")
    def set_messages(self, arg: str | None) -> None:
        self.messages = parse_bool(arg)

    @scpi("STATus:QMESsage?")
    def get_messages(self, _: str | None) -> str:
        return self._reply("STATus:QMESsage", "1" if self.messages else "0")

    # -- COMMunicate ---------------------------------------------------------------------------------

    @scpi("COMMunicate:REMote")
    def set_remote(self, arg: str | None) -> None:
        self.remote = parse_bool(arg)

    @scpi("COMMunicate:REMote?")
    def get_remote(self, _: str | None) -> str:
        return self._reply("COMMunicate:REMote", "1" if self.remote else "0")

    @scpi("COMMunicate:HEADer")
    def set_header(self, arg: str | None) -> None:
        self.header = parse_bool(arg)

    @scpi("COMMunicate:HEADer?")
    def get_header(self, _: str | None) -> str:
        return self._reply("COMMunicate:HEADer", "1" if self.header else "0")

    @scpi("COMMunicate:VERBose")
    def set_verbose(self, arg: str | None) -> None:
        self.verbose = parse_bool(arg)

    @scpi("COMMunicate:VERBose?")
    def get_verbose(self, _: str | None) -> str:
        return self._reply("COMMunicate:VERBose", "1" if self.verbose else "0")

    # -- HARMonics -----------------------------------------------------------------------------------

    def _thd_set(self, suffix: int, arg: str | None) -> None:
        self._harmonics_group(suffix)
        self.thd = choose(arg, ("TOTal", "FUNDamental"))

    def _thd_query(self, suffix: int, _: str | None) -> str:
        self._harmonics_group(suffix)
        return self._reply(f"HARMonics{suffix}:THD", mnemonic(self.thd, self.verbose))

    @staticmethod
    def _harmonics_group(suffix: int) -> None:
        if suffix not in (1, 2):
            raise ScpiError(114, "Header suffix out of range")

    # -- NUMeric ----------------------------------------------------------------------------------------

    @scpi("NUMeric:FORMat")
    def set_format(self, arg: str | None) -> None:
        if choose(arg, ("ASCii", "FLOat")) == "FLOat":
            raise ScpiError(224, "Illegal parameter value;FLOat output is not simulated (ASCII lines only)")

    @scpi("NUMeric:FORMat?")
    def get_format(self, _: str | None) -> str:
        return self._reply("NUMeric:FORMat", mnemonic("ASCii", self.verbose))

    @scpi("NUMeric[:NORMal]:NUMber")
    def set_number(self, arg: str | None) -> None:
        if (arg or "").strip().upper() == "ALL":
            self.number = MAX_ITEMS
            return
        number = parse_whole(arg)
        if not 1 <= number <= MAX_ITEMS:
            raise ScpiError(222, f"Data out of range;{arg}")
        self.number = number

    @scpi("NUMeric[:NORMal]:NUMber?")
    def get_number(self, _: str | None) -> str:
        return self._reply("NUMeric[:NORMal]:NUMber", str(self.number))

    def _item_number(self, suffix: int) -> int:
        if not 1 <= suffix <= MAX_ITEMS:
            raise ScpiError(114, "Header suffix out of range")
        return suffix

    def _item_set(self, suffix: int, arg: str | None) -> None:
        number = self._item_number(suffix)
        fields = [f.strip().upper() for f in (arg or "").split(",")]
        if fields == ["NONE"]:
            self.items.pop(number, None)
            return
        function = next((key for key, (word, _, _) in FUNCTIONS.items()
                         if fields[0] in (key, mnemonic(word, verbose=False))), None)
        if function is None:
            raise ScpiError(141, f"Invalid character data;{fields[0]}")
        _, takes_element, sigma = FUNCTIONS[function]
        if len(fields) > 2:
            raise ScpiError(108, "Parameter not allowed")
        element = fields[1] if len(fields) == 2 else None
        if element is None and takes_element:
            raise ScpiError(109, "Missing parameter")
        if element is not None and not (element == "SIGMA" and sigma):
            if not takes_element or not element.isdigit() or not 1 <= int(element) <= ELEMENTS:
                raise ScpiError(222, f"Data out of range;{element}")
            element = str(int(element))
        self.items[number] = (function, element)

    def _item_query(self, suffix: int, _: str | None) -> str:
        number = self._item_number(suffix)
        if number not in self.items:
            return self._reply(f"NUMeric[:NORMal]:ITEM{number}", "NONE")
        function, element = self.items[number]
        data = mnemonic(FUNCTIONS[function][0], self.verbose) + ("" if element is None else f",{element}")
        return self._reply(f"NUMeric[:NORMal]:ITEM{number}", data)

    @scpi("NUMeric[:NORMal]:VALue?")
    def values(self, arg: str | None) -> str:
        numbers = range(1, self.number + 1)
        if arg is not None:
            number = parse_whole(arg)
            if not 1 <= number <= MAX_ITEMS:
                raise ScpiError(222, f"Data out of range;{arg}")
            numbers = range(number, number + 1)
        measured = _Measured(self)
        return ",".join(measured.item(self.items.get(n)) for n in numbers)

    # -- INTEGrate -----------------------------------------------------------------------------------

    def _refuse_while_integrating(self) -> None:
        if self.state != "RESet":
            raise ScpiError(813, "Execution error;integration is not reset")

    @scpi("INTEGrate:MODE")
    def set_mode(self, arg: str | None) -> None:
        mode = choose(arg, ("NORMal", "CONTinuous"))
        self._refuse_while_integrating()
        self.mode = mode

    @scpi("INTEGrate:MODE?")
    def get_mode(self, _: str | None) -> str:
        return self._reply("INTEGrate:MODE", mnemonic(self.mode, self.verbose))

    def _timer_set(self, suffix: int, arg: str | None) -> None:
        if not 1 <= suffix <= ELEMENTS:
            raise ScpiError(114, "Header suffix out of range")
        fields = (arg or "").split(",")
        if len(fields) != 3:
            raise ScpiError(109, "Missing parameter;hours,minutes,seconds")
        hours, minutes, seconds = (parse_whole(f) for f in fields)
        if not (0 <= hours <= MAX_TIMER_H and 0 <= minutes <= 59 and 0 <= seconds <= 59):
            raise ScpiError(222, f"Data out of range;{arg}")
        self._refuse_while_integrating()
        self.timer_s = hours * 3600 + minutes * 60 + seconds

    def _timer_query(self, suffix: int, _: str | None) -> str:
        if not 1 <= suffix <= ELEMENTS:
            raise ScpiError(114, "Header suffix out of range")
        hours, rest = divmod(self.timer_s, 3600)
        return self._reply(f"INTEGrate:TIMer{suffix}", f"{hours},{rest // 60},{rest % 60}")

    @scpi("INTEGrate:STARt")
    def start(self, _: str | None) -> None:
        if self.state not in ("RESet", "STOP"):
            raise ScpiError(842, "Execution error;integration cannot start now")
        if self.mode == "CONTinuous" and self.timer_s == 0:
            raise ScpiError(221, "Setting conflict;continuous integration needs a timer")
        self.state = "STARt"

    @scpi("INTEGrate:STOP")
    def stop_integration(self, _: str | None) -> None:
        if self.state != "STARt":
            raise ScpiError(844, "Execution error;integration is not running")
        self.state = "STOP"

    @scpi("INTEGrate:RESet")
    def reset(self, _: str | None) -> None:
        if self.state == "STARt":
            raise ScpiError(845, "Execution error;stop integration first")
        self.state = "RESet"
        self.energy_wh = [0.0] * ELEMENTS
        self.elapsed_s = 0.0

    @scpi("INTEGrate:STATe?")
    def get_state(self, _: str | None) -> str:
        return mnemonic(self.state, self.verbose)

    def _integrate(self, dt: float) -> None:
        """Each element's P over dt (the world holds its conditions over it); the timer ends a
        normal integration (TIMeup) and restarts a continuous one."""
        if not self._attached:
            return
        powers = _element_powers(self.world)
        while self.state == "STARt" and dt > 0:
            left = math.inf if self.timer_s == 0 else self.timer_s - self.elapsed_s
            step = min(dt, left)
            for k in range(ELEMENTS):
                self.energy_wh[k] += powers[k] * step / 3600.0
            self.elapsed_s = float(self.timer_s) if step == left else self.elapsed_s + step
            dt -= step
            if step == left:
                if self.mode == "NORMal":
                    self.state = "TIMeup"
                else:
                    self.energy_wh, self.elapsed_s = [0.0] * ELEMENTS, 0.0


def _element_powers(world: World) -> list[float]:
    """P of each WT element (0 where the board has no such element)."""
    c = world.conditions()
    powers = list(c.element_fundamental_power_w() + c.element_harmonic_power_w())
    return (powers + [0.0] * ELEMENTS)[:ELEMENTS]


class _Measured:
    """One update of every function, from the world's conditions now."""

    def __init__(self, twin: YokogawaWtTwin) -> None:
        c = twin.world.conditions()
        self.twin = twin
        self.frequency_hz = c.frequency_hz
        voltage_factor = math.sqrt(1 + sum((h.pct / 100) ** 2 for h in c.voltage_harmonics))
        current_factor = math.sqrt(1 + sum((h.pct / 100) ** 2 for h in c.current_harmonics))
        pad = [0j] * max(0, ELEMENTS - c.elements)
        self.u = np.array([*c.voltages, *pad][:ELEMENTS])
        self.i = np.array([*c.currents, *pad][:ELEMENTS])
        self.urms = np.abs(self.u) * voltage_factor
        self.irms = np.abs(self.i) * current_factor
        self.p = np.array(_element_powers(twin.world))
        self.s = self.urms * self.irms
        self.thd_u = self._thd(thd_pct(c.voltage_harmonics))
        self.thd_i = self._thd(thd_pct(c.current_harmonics))

    def _thd(self, of_fundamental_pct: float) -> float:
        """THD against the fundamental, or against the total RMS (THD TOTal)."""
        if self.twin.thd == "FUNDamental":
            return of_fundamental_pct
        ratio = of_fundamental_pct / 100
        return 100 * ratio / math.sqrt(1 + ratio ** 2)

    def item(self, item: tuple[str, str | None] | None) -> str:
        if item is None:
            return NAN
        if self.twin.fault == "OVERRANGE":
            return INF
        function, element = item
        value = self.value(function, element)
        if isinstance(value, str):
            return value
        if function == "TIME":
            return str(math.floor(value + 1e-9))  # NR1 seconds; float sums stay a hair below
        digits = 6 if function in SIX_DIGITS or (element == "SIGMA" and function in ("P", "S")) else 5
        return nr3(value, digits)

    def value(self, function: str, element: str | None) -> float | str:
        k = None if element in (None, "SIGMA") else int(element) - 1
        if function == "URMS":
            return float(np.mean(self.urms) if k is None else self.urms[k])
        if function == "IRMS":
            return float(np.mean(self.irms) if k is None else self.irms[k])
        if function == "P":
            return float(np.sum(self.p) if k is None else self.p[k])
        if function == "S":
            return float(np.sum(self.s) if k is None else self.s[k])
        if function in ("LAMBDA", "PHI"):
            p, s = (float(np.sum(self.p)), float(np.sum(self.s))) if k is None else (self.p[k], self.s[k])
            if s == 0:
                return INF
            if function == "LAMBDA":
                return p / s
            q = np.sum(self.u * np.conj(self.i)).imag if k is None else (self.u[k] * np.conj(self.i[k])).imag
            return math.copysign(math.degrees(math.acos(max(-1.0, min(1.0, p / s)))), q)
        if function in ("FU", "UTHD"):
            assert k is not None
            if self.urms[k] == 0:
                return NAN
            return self.frequency_hz if function == "FU" else self.thd_u
        if function in ("FI", "ITHD"):
            assert k is not None
            if self.irms[k] == 0:
                return NAN
            return self.frequency_hz if function == "FI" else self.thd_i
        if function in ("PHI_U1U2", "PHI_U1U3"):
            other = self.u[int(function[-1]) - 1]
            if self.u[0] == 0 or other == 0:
                return NAN
            return (math.degrees(float(np.angle(self.u[0] / other))) + 180.0) % 360.0 - 180.0
        if function == "WH":
            return math.fsum(self.twin.energy_wh) if k is None else self.twin.energy_wh[k]
        return self.twin.elapsed_s  # TIME


def serve(world: World) -> Served:
    """The twin on a loopback socket. Its integrator rides on the world's time steps: the world has
    no public hook for an instrument that integrates, so the twin wraps ``World._integrate`` (and
    stops integrating when stopped); a hook in bench/sim/world.py would replace that."""
    device = YokogawaWtTwin(world)
    server = ScpiServer(device).start()
    return Served(server.resource, device, [device, server])
