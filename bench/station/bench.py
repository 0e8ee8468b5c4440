"""The bench: opens each role of a profile, energises only within limits, and always returns to
safe state, on every exit path (the safety section of the README; the helpers that do not need
a bench are in ``bench.station.safety``).
"""
from __future__ import annotations

import atexit
import dataclasses
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection
from types import FrameType
from typing import Any

from bench.metrology.forms import forms
from bench.metrology.quantities import ACTIVE, Quantity
from bench.metrology.stimulus import Stimulus
from bench.metrology.uncertainty import BenchSpec
from bench.operator.events import READINGS, STEP, STIMULUS, EventStream, finite
from bench.station.clock import Clock, SimClock, WallClock
from bench.station.intervals import CLOCK_REGISTERS, IntervalJournal, start_journal
from bench.station.meter_reads import MeterReads
from bench.station.profile import Profile
from bench.station.safety import (
    REPEAT_GRACE_S,
    TERMINATING_SIGNALS,
    SafetyError,
    SignalHandler,
    Terminated,
    make_output_safe,
    refuse_non_finite,
    signals_held,
)
from bench.station.test_mode import (
    PulseOutputs,
    TestModeState,
    meters_into_test_mode,
    meters_out_of_test_mode,
    not_in_test_mode,
)
from instruments.errors import InstrumentError, RangeError
from instruments.meter_modbus import MeterIdentity
from instruments.reference_standard import Readings
from instruments.registry import DriverSettings, driver
from instruments.roles import STANDARD_ANGLES_DEG, Capability, PhaseCurrent, PhaseVoltage
from instruments.sim_control import SimControlClient

WAIT_SLICE_WALL_S = 1.0  # the longest a wait goes unwatched in wall time (a real or scaled clock)
LONG_WAIT_S = 10.0  # bench seconds: a wait this long (a settle, interval records, a sag) says how far it is


class Bench:
    def __init__(self, profile: Profile, notice: Callable[[str], None] | None = None, *,
                 test_mode: bool = False, events: EventStream | None = None) -> None:
        """``test_mode``: put the meters into their test mode once identified, where the meter
        type offers one (a run does; a bench opened for anything else leaves the meters alone).
        ``events``: the run's stream, where the bench tells what it applies and reads."""
        self.profile = profile
        self._use_test_mode = test_mode
        self.outputs = PulseOutputs.of(profile.meter_type, test_mode=False)  # the Kt each test output counts with
        self.test_mode = TestModeState(offered=profile.meter_type.test_mode is not None)
        self.notice = notice or _to_stderr
        self.clock: Clock = WallClock()
        self._last_time = 0.0
        self.stimulus: Stimulus | None = None
        self.identities: dict[int, MeterIdentity] = {}
        self.intervals: IntervalJournal | None = None  # where the meters' interval records close, once known
        self.meter_reads = MeterReads({})  # every position's register at once, once the meters are open
        self._opened: list = []
        self._outputs: list = []  # energised in this order, made safe in reverse
        self._by_address: dict[tuple[str, str], Any] = {}  # (driver, address) -> the one instance
        self._previous_handlers: dict[int, SignalHandler] = {}
        self.interrupted: str | None = None  # the first signal that ended the session, once it came
        self._interrupted_at = 0.0
        self.events = events or EventStream()  # what the bench does: the operator's panel, terminal, event log

    # lifecycle ---------------------------------------------------------------------------
    def open(self) -> Bench:
        p = self.profile
        try:
            if p.clock_kind == "sim":
                if p.clock_address is None:
                    raise ValueError(f"{p.source_file}: a simulated clock (clock.kind = sim) needs clock.address")
                self.sim_control = self._open(SimControlClient(p.clock_address))
                self.clock = SimClock(self.sim_control)
            self.reference = self._role("reference", p.reference.driver, p.reference.address)
            self.counter = self._role("counter", p.counter.driver, p.counter.address,
                                      options={"baudrate": p.counter.baudrate})
            wired = max(c for pos in p.positions for c in pos.channels.values())
            if self.counter.channels < wired:
                raise InstrumentError("counter", p.counter.address,
                                      f"has {self.counter.channels} channels, the profile's positions use channels "
                                      f"up to {wired} ({len(p.positions)} positions, test outputs "
                                      f"{', '.join(p.meter_type.test_outputs)})")
            self.meters = {pos.number: self._role("meter", p.meters_driver, pos.address, name=f"position {pos.number}",
                                                  options={"register_map": p.meter_type.registers,
                                                           "device_id": p.meters_device_id})
                           for pos in p.positions}
            self.meter_reads = MeterReads(self.meters, in_order=p.meters_read_in_order)
            self.thermometer = (self._role("environment", p.environment_driver, p.environment_address)
                                if p.environment_driver and p.environment_address else None)
            self.monitor = (self._role("monitor", p.monitor.driver, p.monitor.address,
                                       options={"elements": p.meter_type.elements}) if p.monitor else None)
            self.source = self._output("source", p.source.driver, p.source.address,
                                       ranges={"voltage": (0.0, p.source.max_voltage_v)})
            self.load = self._output("load", p.load.driver, p.load.address,
                                     ranges={"current": (0.0, p.load.max_current_a)})
            if self.source.phases < p.meter_type.elements:
                raise SafetyError(f"source @ {self.source.address} has {self.source.phases} phase(s); "
                                  f"meter_type.elements = {p.meter_type.elements} needs as many")
            form = forms()[p.meter_type.form]
            if form.shared_circuits():
                raise SafetyError(f"meter_type.form = {form.name}: current circuit(s) "
                                  f"{', '.join(map(str, form.shared_circuits()))} feed more than one element or "
                                  f"against one; this bench drives each circuit from one load phase into one element")
            if self.load.phases < form.circuits:
                raise SafetyError(f"load @ {self.load.address} has {self.load.phases} phase(s); Form {form.name} "
                                  f"has {form.circuits} current circuit(s) and needs as many")
            self.make_safe_if_energised()
            self.spec = BenchSpec(
                reference_u=p.reference.calibration.uncertainty,
                reference_constant_wh=self.reference.pulse_constant_wh(),
                counter_timing_s=p.counter.timing_uncertainty_s,
                mut_jitter_s=p.meter_type.pulse_jitter_s,
                source_stability_pct=p.source.stability_pct,
                reactive_u=p.reference.calibration.reactive_uncertainty,
            )
            self._identify_meters()
            if self._use_test_mode:
                self.enter_test_mode()
            self.intervals = self._journal_intervals()
        except BaseException as error:
            try:
                self.close()
            except SafetyError as unsafe:
                raise SafetyError(f"{error}; then {unsafe}") from error
            raise
        atexit.register(self.close)
        return self

    def _role(self, role: str, driver_name: str, address: str, *, name: str | None = None,
              options: dict | None = None, ranges: dict | None = None, output: bool = False) -> Any:
        """The instrument of a role, opened once: roles naming the same driver and address (one
        power standard as source, load and reference) share one instance, its ranges narrowed
        by every role's. An output is listed before it opens: a half-open output still gets made safe."""
        instrument = self._by_address.get((driver_name, address))
        if instrument is None:
            settings = DriverSettings(address, name or role, ranges=dict(ranges or {}), options=dict(options or {}))
            instrument = driver(driver_name, role).create(settings)
            self._by_address[(driver_name, address)] = instrument
            if output:
                self._outputs.append(instrument)
            return self._open(instrument)
        driver(driver_name, role)  # the shared driver must be able to fill this role too
        instrument.name = f"{instrument.name}+{role}"
        for control, (low, high) in (ranges or {}).items():
            known_low, known_high = instrument.ranges.get(control, (low, high))
            instrument.ranges[control] = (max(low, known_low), min(high, known_high))
        if output and instrument not in self._outputs:
            self._outputs.append(instrument)
        return instrument

    def _output(self, role: str, driver_name: str, address: str, *, ranges: dict) -> Any:
        """An instrument that can energise the board: made safe on every exit path, in reverse order."""
        return self._role(role, driver_name, address, ranges=ranges, output=True)

    def lacks(self, stimulus: Stimulus) -> str | None:
        """Why this bench cannot apply a stimulus (a capability its source or load does not
        declare), or None."""
        form_angles = forms()[self.profile.meter_type.form].voltage_angles_deg
        missing = []
        for capability, why in stimulus.needs(form_angles).items():
            role = self.source if capability.value.startswith("voltage") else self.load
            if capability not in role.CAPABILITIES:
                missing.append(f"{why}: {role.name} ({type(role).__name__}) lacks '{capability}'")
        return "this bench cannot apply " + "; ".join(missing) if missing else None

    def lacks_quantity(self, quantity: Quantity) -> str | None:
        """Why this bench cannot measure a quantity (the meter type, the reference or its
        certificate cannot), or None."""
        missing = [why for why in (
            self.profile.meter_type.lacks(quantity),
            f"the reference ({type(self.reference).__name__}) lacks '{Capability.REACTIVE_ENERGY}'"
            if quantity.reactive and Capability.REACTIVE_ENERGY not in self.reference.CAPABILITIES else None,
            f"the reference ({type(self.reference).__name__}) lacks '{Capability.RECEIVED_ENERGY}'"
            if quantity.received and Capability.RECEIVED_ENERGY not in self.reference.CAPABILITIES else None,
            f"{self.profile.source_file}: reference.calibration states no reactive_uncertainty_pct_k2"
            if quantity.reactive and self.spec.reactive_u is None else None) if why]
        return f"this bench cannot measure {quantity.name}: " + "; ".join(missing) if missing else None

    def gate_on(self, quantity: Quantity) -> BenchSpec:
        """Point the reference's pulse output at the quantity's kind of energy; the budget's
        figures for it (its pulse constant as the reference now states it)."""
        if Capability.REACTIVE_ENERGY not in self.reference.CAPABILITIES:
            return self.spec
        self.reference.select_pulses(quantity.reactive)
        return dataclasses.replace(self.spec, reference_constant_wh=self.reference.pulse_constant_wh())

    def reference_energy(self, quantity: Quantity) -> float:
        """The reference's energy of this quantity's kind, counted the way it flows (a received
        quantity's grows as energy flows back)."""
        if quantity.reactive:
            return quantity.direction * float(self.reference.reactive_energy_varh())
        if Capability.ENERGY_REGISTER in self.reference.CAPABILITIES:
            return quantity.direction * float(self.reference.energy_wh())
        return self.counter.reference_count() * self.spec.reference_constant_wh

    def instruments(self) -> list:
        """Every instrument opened, in the order it was opened."""
        return list(self._opened)

    def _open(self, instrument):
        instrument.open()
        self._opened.append(instrument)
        return instrument

    def _identify_meters(self) -> None:
        """A meter on the wrong position would be certified under another serial: refuse."""
        for pos in self.profile.positions:
            identity = self.meters[pos.number].identity()
            if identity.serial != pos.serial:
                raise SafetyError(f"{self.profile.source_file}: positions[{pos.number}].serial: profile says "
                                  f"{pos.serial}, the meter on that position reports {identity.serial}")
            self.identities[pos.number] = identity

    def _journal_intervals(self) -> IntervalJournal | None:
        """Start noting the meters' interval boundaries, where their register maps say where they are."""
        if not all(name in self.profile.meter_type.registers for name in CLOCK_REGISTERS):
            return None
        return start_journal((pos.number for pos in self.profile.positions), self._read_board,
                             lambda seconds: self.wait(seconds, "reading the meters' clocks"), self.now)

    def _read_board(self, positions: Collection[int], name: str) -> dict[int, float | int | str]:
        """One register from these positions' meters, all at once where the transport allows; a
        position that could not be read is read once more on its own, so it raises its own error."""
        board = self.meter_reads.read(name, positions)
        values = {n: read.value for n, read in board.reads.items()}
        values.update({n: self.meters[n].read(name) for n in board.failed})
        return dict(sorted(values.items()))

    def close(self) -> None:
        """Safe state first; then the meters back to normal mode (best effort); then every link."""
        try:
            if self._outputs:
                self.safe_state()
        finally:
            try:
                self.leave_test_mode()
            finally:
                self.release()

    # test mode ----------------------------------------------------------------------------
    def enter_test_mode(self) -> None:
        """Every meter into its test mode, read back, where the meter type offers one: from then
        on the test mode's Kt is the one in force (``outputs``)."""
        mode = self.profile.meter_type.test_mode
        if mode is None:
            return
        self.test_mode.used = True  # before the first write: a meter half-way in is taken out again
        meters_into_test_mode(self.meters, self.meter_reads, mode)
        self.outputs = PulseOutputs.of(self.profile.meter_type, test_mode=True)

    def out_of_test_mode(self) -> dict[int, str]:
        """Position -> why its meter is not known to be in the test mode in force ({} outside test
        mode): a meter that dropped out pulses at its normal Kt, and a count judged at the test
        mode's would pass a creeping meter."""
        mode = self.profile.meter_type.test_mode
        return not_in_test_mode(self.meter_reads, mode) if mode is not None and self.outputs.test_mode else {}

    def leave_test_mode(self) -> None:
        """Every meter still in test mode back to normal mode, read back; never raises (safe state
        comes first, and a meter left in test mode is told, not a reason to stop closing)."""
        mode, state = self.profile.meter_type.test_mode, self.test_mode
        if mode is None or not state.used or state.left:
            return
        pending = {n: m for n, m in self.meters.items() if not state.not_left or n in state.not_left}
        state.not_left = meters_out_of_test_mode(pending, mode, self.notice)
        state.left = not state.not_left
        self.outputs = PulseOutputs.of(self.profile.meter_type, test_mode=False)

    def release(self) -> None:
        """Close every link without touching an output (``close`` makes the bench safe first)."""
        self.meter_reads.close()
        while self._opened:
            self._opened.pop().close()
        self._outputs = []
        self._by_address = {}
        atexit.unregister(self.close)

    def __enter__(self) -> Bench:
        if threading.current_thread() is threading.main_thread():
            self._previous_handlers = {number: signal.signal(number, self._on_signal)
                                       for number in (signal.SIGINT, *TERMINATING_SIGNALS)}
        try:
            return self.open()
        except BaseException:
            self._restore_signals()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            self.close()
        finally:
            self._restore_signals()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """Every exit signal unwinds through safe state. The first is remembered (the run is not
        complete, whatever exit status follows); a repeat within seconds, while the bench is
        already stopping, is not raised again in the middle of that."""
        name = signal.Signals(signum).name
        if self.interrupted is not None and time.monotonic() - self._interrupted_at < REPEAT_GRACE_S:
            return
        self.interrupted, self._interrupted_at = name, time.monotonic()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt(name)
        raise Terminated(name)

    def _restore_signals(self) -> None:
        for number, handler in self._previous_handlers.items():
            signal.signal(number, handler)
        self._previous_handlers = {}

    # energising -------------------------------------------------------------------------
    def check(self, stimulus: Stimulus) -> None:
        """Refuse a stimulus outside the meter's rating, the instruments' ranges or with the
        interlock open. Nothing is sent to the source or load."""
        mt = self.profile.meter_type
        refuse_non_finite(stimulus, mt)
        refuse = f"refusing to energise ({stimulus.describe()})"
        if stimulus.rms_voltage_v > mt.max_voltage_v:
            raise SafetyError(f"{refuse}: {stimulus.rms_voltage_v:g} V RMS exceeds the meter rating "
                              f"meter_type.max_voltage_v = {mt.max_voltage_v:g} V")
        if stimulus.rms_current_a > mt.max_current_a:
            raise SafetyError(f"{refuse}: {stimulus.rms_current_a:g} A RMS exceeds the meter rating "
                              f"meter_type.max_current_a = {mt.max_current_a:g} A")
        if stimulus.elements != mt.elements:
            raise SafetyError(f"{refuse}: stimulus for {stimulus.elements} elements, "
                              f"meter_type.elements = {mt.elements}")
        if len(stimulus.element_voltages_v) != mt.elements or len(stimulus.element_lags_deg) != mt.elements:
            raise SafetyError(f"{refuse}: per-element settings for other than meter_type.elements = {mt.elements}")
        form = forms()[mt.form]
        if stimulus.circuit_map != form.circuit_map or len(stimulus.circuit_currents_a) != form.circuits:
            raise SafetyError(f"{refuse}: current circuits other than Form {form.name}'s {form.circuits}")
        try:
            self.source.check_voltage(stimulus.rms_voltage_v, stimulus.frequency_hz)
            for lag in stimulus.element_lags_deg:
                self.load.check_current(stimulus.rms_current_a, lag)
        except RangeError as error:
            raise SafetyError(f"{refuse}: {error}") from None
        lacking = self.lacks(stimulus)
        if lacking:
            raise SafetyError(f"{refuse}: {lacking}")
        if self.profile.interlock == "counter" and not self.counter.interlock_closed():
            raise SafetyError(f"{refuse}: interlock is OPEN (counter @ {self.counter.address})")

    def apply(self, stimulus: Stimulus) -> None:
        """Voltage first, then current, phase by phase; any failure on the way ends in safe state."""
        self.check(stimulus)
        harmonics = stimulus.harmonics
        voltages, currents = self.phase_settings(stimulus)
        try:
            self.source.program_voltages(voltages, stimulus.frequency_hz, harmonics.voltage if harmonics else ())
            self.source.switch_on()
            self.load.program_currents(currents, harmonics.current if harmonics else ())
            self.load.switch_on()
        except BaseException:
            self.safe_state()
            raise
        self.stimulus = stimulus
        if self.intervals is not None:
            self.intervals.note_stimulus(stimulus)
        phases = [{"v": v.voltage_v, "v_angle": v.angle_deg, "i": c.current_a, "lag": c.lag_deg}
                  for v, c in zip(voltages, currents)]
        self.events.emit(STIMULUS, phases=phases,
                         f=stimulus.frequency_hz, power_w=finite(stimulus.power_w),
                         thd_v_pct=finite(harmonics.thd_voltage_pct) if harmonics else 0.0,
                         thd_i_pct=finite(harmonics.thd_current_pct) if harmonics else 0.0)

    def phase_settings(self, stimulus: Stimulus) -> tuple[list[PhaseVoltage], list[PhaseCurrent]]:
        """Source phase k feeds element k, load phase c current circuit c. Phases nothing uses
        carry element 1's voltage at their standard angle and no current."""
        angles = stimulus.voltage_angles_deg or forms()[self.profile.meter_type.form].voltage_angles_deg
        voltages = [PhaseVoltage(v, a) for v, a in zip(stimulus.element_voltages_v, angles)]
        voltages += [PhaseVoltage(stimulus.element_voltages_v[0], STANDARD_ANGLES_DEG[k % 3])
                     for k in range(len(voltages), self.source.phases)]
        currents = [PhaseCurrent(i, lag) for i, lag in zip(stimulus.circuit_currents_a, stimulus.circuit_lags_deg)]
        currents += [PhaseCurrent(0.0, stimulus.element_lags_deg[0])] * (self.load.phases - len(currents))
        return voltages, currents

    def wait(self, seconds: float, during: str) -> None:
        """The one way to let time pass while energised: the interlock and the source's own
        protection are checked after every step, so a point never goes on across either. Where
        the meters' interval boundaries are known, the wait stops at each to read the reference."""
        journal, end = self.intervals, None
        total, done = seconds, 0.0
        while True:
            due = None
            if journal is not None:
                now = self.now()
                journal.mark(now, self._boundary_energy_wh, self.stimulus.power_w if self.stimulus else 0.0)
                end = now + seconds if end is None else end
                due = journal.next_due(now, end)
                seconds = (end if due is None else due) - now
            self._sleep_watched(seconds, during, done, total)
            done += seconds
            if due is None:
                return

    def _sleep_watched(self, seconds: float, during: str, done: float, total: float) -> None:
        """A wait that takes wall time goes in slices of a second or so: the interlock and the source's
        protection are watched after each, so an hour's wait neither hides an open interlock for the
        hour nor looks hung (a long wait's step event after each: ``done`` of the whole wait's
        ``total``, bench seconds). A stepped simulation takes it in one step."""
        wall = self.clock.wall_s(seconds)
        if wall <= WAIT_SLICE_WALL_S:
            self.clock.sleep(seconds)
            self._watch(during)
            return
        # Slices end on the clock, not by adding up sleeps: the watching between them takes time
        # too, and a wait that ends at an interval boundary has to end there.
        piece, end = seconds * WAIT_SLICE_WALL_S / wall, self.clock.now() + seconds
        while (left := end - self.clock.now()) > 0:
            self.clock.sleep(min(piece, left))
            self._watch(during)
            if total >= LONG_WAIT_S:  # a gate's or count's poll is part of a step that says its own progress
                elapsed = done + seconds - max(end - self.clock.now(), 0.0)
                self.events.emit(STEP, name=during, detail="waiting", elapsed_s=elapsed, expected_s=total)

    def _watch(self, during: str) -> None:
        if self.profile.interlock == "counter" and not self.counter.interlock_closed():
            raise SafetyError(f"interlock opened during '{during}' (counter @ {self.counter.address})")
        if (self.stimulus is not None and Capability.PROTECTION_READBACK in self.source.CAPABILITIES
                and self.source.protection_tripped()):
            raise SafetyError(f"source @ {self.source.address}: protection tripped during '{during}' "
                              f"(output switched itself off; find the cause on the board before going on)")

    def _boundary_energy_wh(self) -> float | None:
        """The reference's energy at an interval boundary; a failed read loses that boundary
        only (the interval check says so), never the wait."""
        try:
            return self.reference_energy_wh()
        except InstrumentError:
            return None

    def now(self) -> float:
        """The bench clock; once its link is lost, the last time it was read (a record and its
        report still need one)."""
        try:
            self._last_time = self.clock.now()
        except InstrumentError:
            pass
        return self._last_time

    def make_safe_if_energised(self) -> list[str]:
        """Read each output; if any is on (a run killed with SIGKILL leaves it so), say so and make
        the whole bench safe. Outputs that read off are not touched."""
        energised = [f"{instrument.name} @ {instrument.address}" for instrument in self._outputs
                     if instrument.output_on()]
        if energised:
            self.notice(f"bench: found {' and '.join(energised)} ENERGISED at open (a previous run did not end "
                        f"cleanly): switching to safe state")
            self.safe_state()
        return energised

    def reconnect(self) -> list[str]:
        """Reopen every instrument whose link a fault closed; returns their names. A link that will
        not come back raises InstrumentError, which stops the session."""
        reopened = []
        for instrument in self._opened:
            if not instrument.is_open:
                instrument.reopen()
                reopened.append(instrument.name)
        return reopened

    def reference_energy_wh(self) -> float:
        """The reference's delivered active energy now: its register, or where it keeps none (a
        power standard), the reference pulses the counter has counted times their constant."""
        return self.reference_energy(ACTIVE)

    def readings(self) -> Readings:
        """The board's conditions now: the reference standard's readings and the temperature."""
        readings = (self.monitor or self.reference).readings()
        if self.thermometer is not None:
            readings = dataclasses.replace(readings, temperature_c=self.thermometer.temperature)
        self.events.emit(READINGS, V=[finite(v) for v in readings.voltages_v],
                         A=[finite(a) for a in readings.currents_a], W=finite(readings.power_w),
                         PF=finite(readings.power_factor), Hz=finite(readings.frequency_hz),
                         **{"THD V %": finite(readings.thd_voltage_pct), "THD I %": finite(readings.thd_current_pct)})
        return readings

    def safe_state(self) -> None:
        """Every output off, in reverse order, read back; a lost link is reopened once.

        Ctrl-C and SIGTERM wait until it is done (they are delivered afterwards), and a failure
        on one output never stops the next from being made safe.
        """
        failures: list[str] = []
        interrupted: BaseException | None = None
        with signals_held():
            for instrument in reversed(self._outputs):
                try:
                    make_output_safe(instrument)
                except InstrumentError as error:
                    failures.append(str(error))
                except BaseException as error:  # noqa: BLE001 - finish the others first
                    failures.append(f"{instrument.name}: {error!r}")
                    interrupted = interrupted or error
        self.stimulus = None
        if self.intervals is not None:
            self.intervals.note_stimulus(None)
        if interrupted is not None:
            raise interrupted
        if failures:
            raise SafetyError("could not confirm safe state: " + "; ".join(failures))
        self.events.emit(STIMULUS, phases=[], f=None, power_w=0.0, thd_v_pct=None, thd_i_pct=None, off=True)


def make_safe_if_energised(profile: Profile, notice: Callable[[str], None] | None = None) -> list[str]:
    """What every invocation that can reach a bench does before anything else: a run killed with
    SIGKILL leaves the board energised. Opens only the source and load; touches an output only
    if it is on."""
    bench = Bench(profile, notice)
    try:
        bench.source = bench._output("source", profile.source.driver, profile.source.address,
                                     ranges={"voltage": (0.0, profile.source.max_voltage_v)})
        bench.load = bench._output("load", profile.load.driver, profile.load.address,
                                   ranges={"current": (0.0, profile.load.max_current_a)})
        return bench.make_safe_if_energised()
    finally:
        bench.release()


def _to_stderr(message: str) -> None:
    print(message, file=sys.__stderr__, flush=True)

