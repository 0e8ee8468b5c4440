"""The counter board: its protocol document's exchanges, the timebase wrap, the glitch filter,
missed pulses, noise on the line, and strict parsing of every reply."""
from __future__ import annotations

import os
import re
from collections import deque
from pathlib import Path

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.metrology.uncertainty import gated_error_pct
from bench.sim import SimulatedBench
from instruments.errors import InstrumentError, RangeError, ReplyError
from instruments.pulse_counter import GATE_STATES, LINE_BYTES, GateResult, SerialPulseCounter, resolve_duration
from instruments.sim_control import SimControlClient
from instruments.transport import TransportError

PROTOCOL = Path(__file__).resolve().parent.parent / "instruments" / "PULSE_COUNTER.md"
WRAP = 2 ** 32
HZ = 10_000_000


def protocol_examples() -> dict[str, list[tuple[str, str | None]]]:
    """Each '### Example: title' block of the protocol document as (command, reply or None); a
    command answered by several lines has them in one reply, separated by LF."""
    examples = {}
    for title, block in re.findall(r"^### Example: (.+?)\n.*?```\n(.*?)```", PROTOCOL.read_text(), re.S | re.M):
        exchange: list[tuple[str, str | None]] = []
        for line in block.splitlines():
            if line.startswith(">"):
                exchange.append((line[2:], None))
            elif line.startswith("< "):
                command, earlier = exchange[-1]
                exchange[-1] = (command, line[2:] if earlier is None else f"{earlier}\n{line[2:]}")
        examples[title] = exchange
    return examples


EXAMPLES = protocol_examples()
# The bare LF that opens the exchange is the serial transport's (SerialLine.resynchronise): it is
# proved on the pty by test_noise_left_on_the_line_does_not_stop_the_counter_opening.
OPENING = [(command, reply) for command, reply in EXAMPLES["opening"] if command]


class ScriptedLine:
    """An in-memory line transport that checks each command the driver sends against a script of
    (command, reply or None), and answers from it (like PyMeasure's expected_protocol)."""

    address = "scripted"

    def __init__(self, exchange: list[tuple[str, str | None]]) -> None:
        self.script = deque(exchange)
        self.replies: deque[str] = deque()

    def write(self, line: str) -> None:
        assert self.script, f"the driver sent {line!r} after the end of the script"
        command, reply = self.script.popleft()
        assert line == command
        if reply is not None:
            self.replies.extend(reply.split("\n"))

    def read(self) -> str:
        if not self.replies:
            raise TransportError("no reply before the timeout")
        return self.replies.popleft()

    def close(self) -> None:
        pass


class ScriptedCounter(SerialPulseCounter):
    def __init__(self, line: ScriptedLine) -> None:
        super().__init__("scripted")
        self.line = line

    def _open_line(self) -> ScriptedLine:
        return self.line


def scripted(*exchanges: list[tuple[str, str | None]]) -> tuple[ScriptedCounter, ScriptedLine]:
    """A counter opened through the document's opening exchange, then expecting ``exchanges``."""
    line = ScriptedLine(OPENING + [step for exchange in exchanges for step in exchange])
    return ScriptedCounter(line).open(), line


# -- the protocol document's examples, replayed ------------------------------------------------

def test_opening_exchange_of_the_protocol_document():
    counter, line = scripted()
    assert (counter.idn, counter.timebase_hz, counter.wrap_ticks, counter.channels) == \
        ("MeterBench,PC-2,PC0002,1.1", 10_000_000, WRAP, 2)
    assert not line.script


def test_glitch_filter_exchange_of_the_protocol_document():
    counter, line = scripted(EXAMPLES["glitch filter"])
    counter.min_pulse_width_s = 0.002
    assert counter.min_pulse_width_s == 0.002
    with pytest.raises(RangeError, match="outside the instrument range 0..0.1 s"):
        counter.min_pulse_width_s = 0.5  # refused before anything is sent
    with pytest.raises(InstrumentError, match=r"^counter @ scripted: rejected 'CONF:FILT 0.5': -222"):
        counter.set("CONF:FILT 0.5")
    assert not line.script


def test_wrap_inside_the_gate_exchange_of_the_protocol_document():
    counter, line = scripted(EXAMPLES["a wrap inside the gate"])
    counter.arm(1, 10)
    assert [s.state for s in counter.states()] == ["GATING", "IDLE"]
    assert counter.states()[0].mut_pulses == 10
    gate = counter.result(1)
    assert gate.stop_ticks < gate.start_ticks and gate.duration_ticks == 360_000_000 and gate.gate_time_s == 36.0
    assert (gate.mut_pulses, gate.ref_pulses, gate.rejected_glitches) == (10, 1_000_312, 0)
    assert gate.min_period_s == 3.599987 and gate.max_period_s == 3.600016 and gate.irregularity() is None
    assert not line.script


def test_gate_longer_than_one_wrap_exchange_of_the_protocol_document():
    counter, line = scripted(EXAMPLES["a gate longer than one wrap"])
    counter.arm(1, 150)
    counter.states()
    assert counter.result(1, approx_duration_s=545.0).gate_time_s == 540.0
    assert not line.script
    # The same reply read without the caller's estimate, and with a caller's window held open
    # 300 s longer by a slow neighbour's gate: the gate's own MUT periods (150 of 3.6 s) admit one
    # whole number of wraps only, so both resolve to 540 s.
    for approx_s in (None, 845.0):
        line.script.append(EXAMPLES["a gate longer than one wrap"][-1])
        assert counter.result(1, approx_duration_s=approx_s).gate_time_s == 540.0


def test_missed_pulse_exchange_of_the_protocol_document():
    counter, line = scripted(EXAMPLES["a missed pulse"])
    counter.states()
    gate = counter.result(1)
    assert gate.gate_time_s == pytest.approx(39.6) and gate.rejected_glitches == 2
    assert re.fullmatch(r"irregular pulse train: MUT periods from 3\.5999\d* s to 7\.20001 s over 10 pulses "
                        r"\(more than 1\.5x apart: a missed or spurious pulse\); 2 glitches rejected",
                        gate.irregularity())
    assert gate.irregularity(max_ratio=2.5) is None
    assert not line.script


def test_gates_several_to_a_line_exchange_of_the_protocol_document():
    counter, line = scripted(EXAMPLES["a board's gates, several to a line"])
    counter.arm_each([1, 2], 10)
    assert [s.state for s in counter.states()] == ["DONE", "DONE"]
    first, second = counter.results([1, 2])
    assert (first.gate_time_s, second.gate_time_s, second.ref_pulses) == (36.0, 36.0, 1_000_290)
    counter.arm(2, 10)
    with pytest.raises(InstrumentError, match=r"^counter @ scripted: rejected 'GATE:RES\? 1;:GATE:RES\? 2;:SYST:ERR\?'"
                                              r": -221 Settings conflict;gate 2 is ARMED$"):
        counter.results([1, 2])
    assert not line.script  # the error queue was read to its end: the link is in step for the next query
    assert counter.is_open


class RecordingBoard(ScriptedLine):
    """Answers every line as a board with every gate DONE would, and keeps the lines sent."""

    def __init__(self) -> None:
        super().__init__([])
        self.sent: list[str] = []

    def write(self, line: str) -> None:
        self.sent.append(line)
        for command in line.split(";:"):
            if command.startswith("GATE:RES?"):
                channel = int(command.split()[1])
                self.replies.append(f"10,{1_000_000 + channel},0,36000000,0,3600000,3600000")
            elif command.startswith("COUN:MUT?"):
                self.replies.append(str(3 * int(command.split()[1])))
        if line.endswith("SYST:ERR?"):
            self.replies.append('0,"No error"')


def recording(channels: int) -> tuple[ScriptedCounter, RecordingBoard]:
    board = RecordingBoard()
    counter = ScriptedCounter(board)
    counter.channels, counter.timebase_hz, counter.wrap_ticks = channels, HZ, WRAP
    counter._transport = board
    return counter, board


@pytest.mark.parametrize("channels", [1, 2, 17, 40, 160])
def test_a_boards_commands_share_lines_no_longer_than_a_board_takes(channels):
    counter, board = recording(channels)
    numbers = list(range(1, channels + 1))
    counter.arm_each(numbers, 25)
    assert all(line.endswith(";:SYST:ERR?") for line in board.sent)
    assert [c for line in board.sent for c in line.split(";:")[:-1]] == [f"GATE:ARM {n},25" for n in numbers]
    arms = list(board.sent)
    board.sent.clear()
    assert [g.ref_pulses for g in counter.results(numbers)] == [1_000_000 + n for n in numbers]
    results = list(board.sent)
    board.sent.clear()
    assert counter.mut_counts(numbers) == [3 * n for n in numbers]
    for sent in (arms, results, board.sent):
        assert all(len(line) + 1 <= LINE_BYTES for line in sent)  # the LF the transport adds included
        # As full as the limit allows: the next line's first command would not have fitted on the line before.
        for line, following in zip(sent, sent[1:]):
            assert len(line.replace(";:SYST:ERR?", f";:{following.split(';:')[0]};:SYST:ERR?")) + 1 > LINE_BYTES


@pytest.mark.parametrize("replies", [
    ["10,1,0,36000000,0,3600000,3600000", '0,"No error"'],  # one reply missing, yet no error queued
    ["10,1,0,36000000,0,3600000,3600000"] * 3 + ['0,"No error"'],  # one reply too many
])
def test_a_reply_count_that_does_not_add_up_closes_the_link(replies):
    counter, line = scripted([("GATE:RES? 1;:GATE:RES? 2;:SYST:ERR?", "\n".join(replies))])
    with pytest.raises(ReplyError, match=r"^counter @ scripted: garbled reply to 'SYST:ERR\?'"):
        counter.results([1, 2])
    assert not counter.is_open  # a reply left behind must never answer a later query


def test_a_boards_gates_several_to_a_line_on_the_simulated_board(make_board):
    """40 positions through the real pty: every gate armed and read in a few lines each."""
    board = make_board(positions=[{"serial": f"SIMLN{n:05d}", "mac": f"00:1B:C5:17:00:{n:02X}"} for n in range(1, 41)])
    with SimulatedBench(board) as sim:
        energise(sim.world)
        control = SimControlClient(sim.control.resource).open()
        counter = SerialPulseCounter(sim.counter_line.port, timeout_s=0.5).open()
        try:
            channels = list(range(1, 41))
            before = counter.mut_counts(channels)
            counter.arm_each(channels, 3)
            assert {s.state for s in counter.states()} == {"ARMED"}
            control.advance(20.0)
            gates = counter.results(channels, approx_duration_s=20.0)
            after = counter.mut_counts(channels)
        finally:
            counter.close()
            control.close()
        truth = [g.evidence() for g in sim.world.gates[:40]]
        assert [g.ref_pulses for g in gates] == [t.ref_pulses for t in truth]
        assert [g.mut_pulses for g in gates] == [3] * 40
        assert after == [g.total_edges for g in sim.world.gates[:40]]
        assert all(a - b >= 4 for a, b in zip(after, before))  # the gate's 3 edges after the one that opened it


def test_noise_glued_to_a_reply_is_a_reply_error_naming_the_counter():
    line = ScriptedLine([("*IDN?", "\x15#~%$noiseMeterBench,PC-2,PC0002,1.1"), ("*CLS", None)])
    with pytest.raises(ReplyError, match=r"^counter @ scripted: garbled reply to '\*IDN\?'"):
        ScriptedCounter(line).open()
    counter, _ = scripted([("GATE:STAT?", "\x15#~%$noiseDONE:10,IDLE:0")])
    with pytest.raises(ReplyError, match=r"^counter @ scripted: garbled reply to 'GATE:STAT\?'"):
        counter.states()


# -- on the simulated bench --------------------------------------------------------------------

def energise(world) -> None:
    """About 1 kW on the default board: a pulse every ~3.6 s from each Kh = 1 Wh meter."""
    world.source.voltage_v, world.source.output = 120.0, True
    world.load.currents_a, world.load.output = [1000.0 / 360.0] * 3, True


def true_period_s(sim: SimulatedBench, position: int = 1) -> float:
    meter = sim.world.meters[position - 1]
    return meter.kh_wh * 3600.0 / meter.registered_power_w(sim.world.conditions())


@pytest.fixture
def counter(sim):
    driver = SerialPulseCounter(sim.counter_line.port, timeout_s=0.5).open()
    yield driver
    driver.close()


def gate_on(sim: SimulatedBench, timebase_ticks: int | None, pulses: int, run_s: float,
            hint: bool = True) -> tuple[GateResult, float]:
    """Gate channel 1 for ``pulses`` pulses with the board's timebase set to ``timebase_ticks``
    first; (the driver's result, the simulated time between the gate's edges)."""
    energise(sim.world)
    control = SimControlClient(sim.control.resource).open()
    counter = SerialPulseCounter(sim.counter_line.port, timeout_s=0.5).open()
    try:
        if timebase_ticks is not None:
            control.set(f"SIM:COUN:TIM {timebase_ticks}")
        armed_at = control.time()
        counter.arm(1, pulses)
        control.advance(run_s)
        assert counter.states()[0].state == "DONE"
        result = counter.result(1, approx_duration_s=control.time() - armed_at if hint else None)
    finally:
        counter.close()
        control.close()
    gate = sim.world.gates[0]
    return result, gate.t_stop - gate.t_start


def test_a_wrap_inside_the_gate_changes_neither_duration_nor_error(sim):
    """The same board twice: once with its timebase 5 s before the wrap, once from 0."""
    wrapped, truth_s = gate_on(sim, WRAP - 5 * HZ, pulses=10, run_s=45.0, hint=False)
    with SimulatedBench() as fresh:
        plain, _ = gate_on(fresh, None, pulses=10, run_s=45.0, hint=False)
    assert wrapped.stop_ticks < wrapped.start_ticks and plain.stop_ticks > plain.start_ticks
    assert wrapped.duration_ticks == plain.duration_ticks
    assert wrapped.gate_time_s == pytest.approx(truth_s, abs=1.5 / HZ)
    errors = [gated_error_pct(g.mut_pulses, 1.0, g.ref_pulses, sim.world.reference.pulse_constant_wh)
              for g in (wrapped, plain)]
    assert errors[0] == errors[1]


def test_a_gate_longer_than_one_wrap_is_resolved_by_the_hint(sim):
    result, truth_s = gate_on(sim, WRAP - 100 * HZ, pulses=150, run_s=560.0)
    assert truth_s > WRAP / HZ
    assert result.gate_time_s == pytest.approx(truth_s, abs=1.5 / HZ)
    assert result.irregularity() is None


def test_a_gate_longer_than_one_wrap_without_the_hint_is_resolved_by_its_own_periods(sim):
    result, truth_s = gate_on(sim, None, pulses=150, run_s=560.0, hint=False)
    assert truth_s > WRAP / HZ
    assert result.gate_time_s == pytest.approx(truth_s, abs=1.5 / HZ)


def test_periods_that_admit_two_wrap_counts_leave_the_choice_to_the_estimate():
    raw = 1_000
    spread = (raw, raw + 2 * WRAP)  # irregular periods: k = 0, 1 and 2 all add up
    assert resolve_duration(raw, WRAP, None, spread) == raw  # no estimate: shorter than a wrap, then refused
    assert resolve_duration(raw, WRAP, raw + WRAP + 5.0, spread) == raw + WRAP


def test_glitches_narrower_than_the_filter_are_rejected_and_counted(sim, control, counter):
    energise(sim.world)
    counter.arm(1, 10)
    control.advance(4.0)  # the gate is open: the glitches land inside it
    assert counter.states()[0].state == "GATING"
    control.set("SIM:COUN:GLIT 1,5,0.0001,30")
    control.advance(45.0)
    gate = counter.result(1)
    assert (gate.mut_pulses, gate.rejected_glitches) == (10, 5)
    assert counter.mut_count(1) == sim.world.meters[0].pulses  # not one edge more
    assert gate.gate_time_s == pytest.approx(10 * true_period_s(sim), rel=1e-4)
    assert gate.irregularity() is None


def test_glitches_as_wide_as_the_filter_are_spurious_pulses(sim, control, counter):
    energise(sim.world)
    counter.min_pulse_width_s = 0.002
    assert counter.min_pulse_width_s == 0.002 and sim.world.gates[0].filter_s == 0.002
    counter.arm(1, 10)
    control.advance(4.0)
    control.set("SIM:COUN:GLIT 1,2,0.002,20")
    control.advance(45.0)
    gate = counter.result(1)
    assert (gate.mut_pulses, gate.rejected_glitches) == (10, 0)
    assert counter.mut_count(1) == sim.world.meters[0].pulses + 2
    assert gate.gate_time_s == pytest.approx(8 * true_period_s(sim), rel=1e-4)  # two of the ten were glitches
    assert "irregular pulse train" in gate.irregularity()


def test_the_filter_range_and_a_filter_wider_than_the_meter_pulses(sim, control, counter):
    """The simulated meters' pulses are 10 ms wide: a 20 ms filter rejects every one of them."""
    with pytest.raises(InstrumentError, match=r"rejected 'CONF:FILT 0.2': -222 Data out of range"):
        counter.set("CONF:FILT 0.2")
    energise(sim.world)
    counter.min_pulse_width_s = 0.02
    control.advance(20.0)
    assert counter.mut_count(1) == 0 and sim.world.meters[0].pulses >= 5


def test_a_missed_pulse_is_an_irregularity_and_a_period_longer_gate(sim, control, counter):
    energise(sim.world)
    counter.arm(1, 10)
    control.advance(4.0)
    control.set("SIM:COUN:MISS 1,1")
    control.advance(50.0)
    gate, period = counter.result(1), true_period_s(sim)
    assert gate.mut_pulses == 10 and gate.gate_time_s == pytest.approx(11 * period, rel=1e-4)
    assert gate.max_period_s == pytest.approx(2 * period, rel=1e-4)
    assert gate.min_period_s == pytest.approx(period, rel=1e-4)
    assert "missed or spurious pulse" in gate.irregularity()


def leave_a_partial_line_on_the_board(sim: SimulatedBench) -> None:
    """What a host killed mid-command leaves: bytes without LF in the board's line buffer."""
    with serial.Serial(sim.counter_line.port, 115200, timeout=0.5) as host:
        host.write(b"GATE:AR")
        host.flush()


def test_a_partial_line_on_the_board_swallows_an_unprepared_identify(sim):
    """Why the driver ends the board's partial line before identifying: 'GATE:AR*IDN?' has no reply."""
    leave_a_partial_line_on_the_board(sim)
    with serial.Serial(sim.counter_line.port, 115200, timeout=0.3) as host:
        host.write(b"*IDN?\n")
        assert host.read_until(b"\n") == b""


def test_noise_left_on_the_line_does_not_stop_the_counter_opening(sim, monkeypatch):
    """Noise waiting for the host, noise arriving just after its input buffer is flushed (bytes in
    flight from a USB adapter), and a partial line in the board's buffer: the driver still opens."""
    noise = b"\x15#~%$noise"
    leave_a_partial_line_on_the_board(sim)
    os.write(sim.counter_line._master, noise)
    flush = serial.Serial.reset_input_buffer

    def flush_then_noise_arrives(port: serial.Serial) -> None:
        flush(port)
        os.write(sim.counter_line._master, noise)

    monkeypatch.setattr(serial.Serial, "reset_input_buffer", flush_then_noise_arrives)
    counter = SerialPulseCounter(sim.counter_line.port, timeout_s=0.5).open()
    try:
        assert counter.idn == sim.counter.idn and counter.wrap_ticks == WRAP
        counter.abort()  # and no error left queued: *CLS followed the partial line's rejection
        assert sim.counter.received[0] == "GATE:AR"
    finally:
        counter.close()


# -- strict parsing: arbitrary reply text gives a value or a ReplyError --------------------------

WHOLE = st.one_of(st.integers(0, 2 ** 64 + 2).map(str), st.integers(-3, 3).map(str),
                  st.sampled_from(["", " 1", "1 ", "+1", "1.0", "1e3", "\u0661", "0x10", "9" * 30]))
FIELDS = st.lists(WHOLE, max_size=9).map(",".join)
STATES = st.lists(st.tuples(st.sampled_from(GATE_STATES + ("done", "")), WHOLE).map(":".join), max_size=4).map(",".join)
VALID = [line for exchange in EXAMPLES.values() for _, reply in exchange if reply for line in reply.split("\n")]
GATE_REPLIES = sorted({reply for reply in VALID if re.fullmatch(r"[0-9]+(,[0-9]+){6}", reply)})
NOISY = st.tuples(st.text(max_size=6), st.sampled_from(VALID), st.text(max_size=3)).map("".join)
REPLIES = st.one_of(st.text(max_size=60), FIELDS, STATES, NOISY, st.sampled_from(VALID))

PARSERS = {
    "*IDN?": lambda c: c.open(),
    "CONF:TIM?": lambda c: c.open(),
    "CONF:TIM:WRAP?": lambda c: c.open(),
    "CONF:CHAN?": lambda c: c.open(),
    "GATE:STAT?": lambda c: c.states(),
    "GATE:RES? 1": lambda c: c.result(1),
    "COUN:MUT? 1": lambda c: c.mut_count(1),
    "INT?": lambda c: c.interlock_closed(),
    "CONF:FILT?": lambda c: c.min_pulse_width_s,
    "GATE:ARM 1,10;:SYST:ERR?": lambda c: c.arm(1, 10),
    "GATE:RES? 1;:SYST:ERR?": lambda c: c.results([1]),
    "COUN:MUT? 1;:SYST:ERR?": lambda c: c.mut_counts([1]),
}


def counter_answering(command: str, reply: str) -> ScriptedCounter:
    """A counter whose reply to ``command`` is ``reply``: opened first unless that is an opening query."""
    opening = [(c, reply if c == command else r) for c, r in OPENING]
    if command in dict(OPENING):
        return ScriptedCounter(ScriptedLine(opening))
    if command.split(";")[0].endswith("?") and command.endswith(";:SYST:ERR?"):  # queries sharing a line
        reply = f'{reply}\n0,"No error"'
    return ScriptedCounter(ScriptedLine(opening + [(command, reply)] + [("SYST:ERR?", '0,"No error"')] * 16)).open()


@pytest.mark.parametrize("command", PARSERS)
@settings(max_examples=200, deadline=None)
@given(reply=REPLIES)
def test_any_reply_gives_a_value_or_a_reply_error(command, reply):
    counter = counter_answering(command, reply)
    try:
        value = PARSERS[command](counter)
    except InstrumentError as error:  # ReplyError, or the error queue's rejection for SYST:ERR?
        assert str(error).startswith("counter @ scripted: ")
        return
    if command.endswith(";:SYST:ERR?") and isinstance(value, list):  # the one query of a shared line
        [value] = value
    if isinstance(value, GateResult):
        assert re.fullmatch(r"[0-9]+(,[0-9]+){6}", reply)
        assert value.mut_pulses >= 1 and value.min_period_ticks <= value.max_period_ticks
        assert value.gate_time_s >= 0 and isinstance(value.irregularity(), (str, type(None)))
    elif isinstance(value, int) and not isinstance(value, bool):
        assert re.fullmatch(r"[0-9]+", reply) and 0 <= value < 2 ** 64


@settings(max_examples=200, deadline=None)
@given(reply=st.one_of(FIELDS, st.sampled_from(GATE_REPLIES)), approx_s=st.floats(0, 1e6))
def test_any_gate_result_with_any_estimate_gives_a_value_or_a_reply_error(reply, approx_s):
    counter = counter_answering("GATE:RES? 1", reply)
    try:
        gate = counter.result(1, approx_duration_s=approx_s)
    except ReplyError:
        return
    assert gate.mut_pulses * gate.min_period_ticks - gate.mut_pulses <= gate.duration_ticks
    assert gate.duration_ticks <= gate.mut_pulses * gate.max_period_ticks + gate.mut_pulses
    assert gate.duration_ticks % WRAP == (gate.stop_ticks - gate.start_ticks) % WRAP
