"""The operator's event stream, its log, the inspection form's validation and the questions that
wait for the panel: what the panel, the terminal and the record all rely on."""
import math
import threading

import pytest

from bench.metrology.forms import forms
from bench.operator import inspection_form
from bench.operator.events import Event, EventLog, EventStream, LogFollower, finite
from bench.operator.inspection_form import InvalidAnswer
from bench.operator.prompts import PromptDesk
from bench.plans.inspection import terminals
from bench.station.profile import Position

POSITIONS = (Position(1, "SIM16A00001", "127.0.0.1:1", {"Wh": 1}), Position(2, "SIM16A00002", "127.0.0.1:2", {"Wh": 2}))
TERMINALS = terminals(forms()["16S"])  # I1 line, I1 load, ... I3 load


def test_events_are_numbered_in_order_and_read_from_where_a_reader_is():
    stream, seen = EventStream(), []
    stream.subscribe(seen.append)
    for k in range(5):
        stream.emit("gate", k=k)
    assert [e.seq for e in stream.after(0)] == [1, 2, 3, 4, 5]
    assert [e.data["k"] for e in stream.after(3)] == [3, 4]
    assert seen == stream.history


def test_a_failing_subscriber_is_dropped_with_one_line_and_the_bench_goes_on(tmp_path, capsys):
    """The run's log closed (or its disk full) must not turn a safe state's event into an exception."""
    stream, seen, log = EventStream(), [], EventLog(tmp_path / "run-x.events.jsonl")
    stream.subscribe(log)
    stream.subscribe(seen.append)
    log.close()
    stream.emit("stimulus", off=True)
    stream.emit("stimulus", off=True)
    assert len(seen) == 2 and len(stream.history) == 2
    assert capsys.readouterr().err.count("stopped after ValueError: I/O operation on closed file") == 1


def test_an_event_round_trips_through_json_and_never_carries_nan():
    event = Event(7, "result", 1.5, {"error_pct": finite(math.nan), "u_pct": finite(0.012), "x": finite(None)})
    again = Event.from_json(event.to_json())
    assert again == event and again.data["error_pct"] is None
    with pytest.raises(ValueError):
        Event(1, "result", 0.0, {"error_pct": math.inf}).to_json()  # a number never reaches the page as inf


def test_the_log_follower_reads_what_was_appended_and_waits_for_a_half_written_line(tmp_path):
    stream, path = EventStream(), tmp_path / "run-x.events.jsonl"
    log = EventLog(path)
    stream.subscribe(log)
    stream.emit("run", positions=[])
    follower = LogFollower(path)
    assert [e.kind for e in follower.after(0)] == ["run"]
    stream.emit("point", n=1)
    with path.open("a") as raw:
        raw.write('{"seq": 3, "kind": "gate"')  # the run is still writing this line
    assert [e.kind for e in follower.after(1)] == ["point"]
    with path.open("a") as raw:
        raw.write(', "wall": 1.0, "data": {}}\n')
    assert [e.seq for e in follower.after(1)] == [2, 3]
    log.close()


@pytest.mark.parametrize(("text", "why"), [
    ("abc", "position 1 SIM16A00001: torque 'abc' is not a number of in-lb"),
    ("nan", "position 1 SIM16A00001: torque 'nan' is outside 0..1000 in-lb"),
    ("-3", "position 1 SIM16A00001: torque '-3' is outside 0..1000 in-lb"),
    ("1e9", "position 1 SIM16A00001: torque '1e9' is outside 0..1000 in-lb"),
])
def test_a_bad_torque_is_refused_naming_the_position(text, why):
    with pytest.raises(InvalidAnswer) as refused:
        inspection_form.torques(text, "position 1 SIM16A00001", TERMINALS)
    assert str(refused.value) == why


def test_torques_are_one_for_every_terminal_or_one_each():
    assert TERMINALS == ("I1 line", "I1 load", "I2 line", "I2 load", "I3 line", "I3 load")
    assert inspection_form.torques(" 50 ", "p", TERMINALS) == (50.0,) * 6
    assert inspection_form.torques("50, 49.5 51,50 50 38", "p", TERMINALS) == (50.0, 49.5, 51.0, 50.0, 50.0, 38.0)
    assert inspection_form.torques("  ", "p", TERMINALS) is None  # not inspected
    with pytest.raises(InvalidAnswer, match=r"^p: 2 torques for 6 terminals \(I1 line, I1 load, .*\): give one "):
        inspection_form.torques("50 50", "p", TERMINALS)


@pytest.mark.parametrize(("text", "why"), [
    ("", "p: give the seal number(s) fitted"),
    (" , ", "p: give the seal number(s) fitted"),
    ("S-1, " + "9" * 65, f"p: '{'9' * 65}' is not a seal number (printable, at most 64 chars)"),
    ("S-1\x07", "p: 'S-1\\x07' is not a seal number (printable, at most 64 chars)"),
])
def test_a_bad_seal_answer_is_refused(text, why):
    with pytest.raises(InvalidAnswer) as refused:
        inspection_form.seals(text, "p")
    assert str(refused.value) == why


def test_the_form_takes_the_whole_board_or_nothing():
    form = {"operator": "  Dana  Ruiz ", "torque_1": "50", "jaws_1": "yes", "seals_1": "S-0041, S-0042",
            "torque_2": "", "jaws_2": "yes"}
    found = inspection_form.from_form(POSITIONS, TERMINALS, form)
    assert list(found) == ["SIM16A00001"]  # position 2: empty torque, not inspected
    assert found["SIM16A00001"].data == {"torque_in_lb": [50.0] * 6, "jaw_tension_ok": True,
                                         "seals": ["S-0041", "S-0042"], "technician": "Dana Ruiz"}
    with pytest.raises(InvalidAnswer, match="operator: give the name"):
        inspection_form.from_form(POSITIONS, TERMINALS, {**form, "operator": " "})
    with pytest.raises(InvalidAnswer, match="position 2 SIM16A00002: jaw tension 'maybe'"):
        inspection_form.from_form(POSITIONS, TERMINALS, {**form, "torque_2": "48", "jaws_2": "maybe"})
    with pytest.raises(InvalidAnswer, match=r"position 2 SIM16A00002: give the seal number\(s\) fitted"):
        inspection_form.from_form(POSITIONS, TERMINALS, {**form, "torque_2": "48", "jaws_2": "yes"})


def test_a_question_stays_open_until_a_valid_answer_and_the_answer_is_an_event():
    stream = EventStream()
    desk = PromptDesk(stream)
    got = []
    asking = threading.Thread(target=lambda: got.append(desk.ask(
        "Physical inspection", inspection_form.fields(POSITIONS, TERMINALS),
        lambda f: inspection_form.from_form(POSITIONS, TERMINALS, f))))
    asking.start()
    while not any(e.kind == "prompt" for e in stream.history):
        asking.join(0.01)
    [prompt] = [e for e in stream.history if e.kind == "prompt"]
    assert [f["name"] for f in prompt.data["fields"]] == ["operator", "torque_1", "jaws_1", "seals_1", "torque_2",
                                                          "jaws_2", "seals_2"]
    bad = desk.answer(prompt.data["id"], {"operator": "Dana", "torque_1": "abc", "jaws_1": "yes"})
    assert bad == "position 1 SIM16A00001: torque 'abc' is not a number of in-lb" and asking.is_alive()
    answer = {"operator": "Dana", "torque_1": "50", "jaws_1": "no", "seals_1": "S-9"}
    assert desk.answer(prompt.data["id"], answer) is None
    asking.join(5)
    assert got[0]["SIM16A00001"].data["jaw_tension_ok"] is False
    assert stream.history[-1].kind == "answer" and stream.history[-1].data["operator"] == "Dana"
    assert desk.answer(prompt.data["id"], {}) == f"no open question {prompt.data['id']!r} (answered already?)"
