"""The bench's event stream. Every consumer (the panel's pages, the terminal display, the run's
event log) reads the same events in the same order, so what the operator saw is what was recorded."""
from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TextIO

# The kinds of event, and what each says (its data's keys are the panel's and the log's contract).
RUN = "run"  # the board and the plan: positions (number, serial), points planned, plans, operator
POINT = "point"  # a board point begins: id, name, family, n of total
STIMULUS = "stimulus"  # what the source and load were set to: per-phase V, I, angle; f; THD
READINGS = "readings"  # the reference standard's readings
GATE = "gate"  # gate progress: per position pulses gated of needed, bench seconds elapsed of expected
RESULT = "result"  # one position's result of one point: error, U, limit, verdict
STEP = "step"  # a long step under way (payload, interval records, demand): what, elapsed, expected
SAFETY = "safety"  # interlock open, safe state reached, instrument lost
PROMPT = "prompt"  # the bench asks the operator (the form's fields)
ANSWER = "answer"  # the operator answered a prompt (who, what)
END = "end"  # the run ended: status and why


@dataclass(frozen=True)
class Event:
    seq: int  # 1, 2, ... in the order emitted
    kind: str
    wall: float  # time.time() when emitted
    data: dict[str, Any]

    def to_json(self) -> str:
        return self._json

    @cached_property
    def _json(self) -> str:
        """Made once: the log and every page send the same text."""
        return json.dumps({"seq": self.seq, "kind": self.kind, "wall": self.wall, "data": self.data},
                          default=_plain, allow_nan=False)

    @classmethod
    def from_json(cls, line: str) -> Event:
        raw = json.loads(line)
        return cls(int(raw["seq"]), str(raw["kind"]), float(raw["wall"]), dict(raw["data"]))


def _plain(value: Any) -> Any:
    """What JSON has no type for: its text (an enum, a path)."""
    return str(value)


def finite(value: float | None) -> float | None:
    """A number for the page, or None where there is none (JSON has no NaN)."""
    return value if value is not None and math.isfinite(value) else None


@dataclass
class EventStream:
    """Emitted on the bench's thread, read by any thread: subscribers are called as each event is
    emitted (the terminal display, the log); the panel's pages read the history from where they are.
    A subscriber that fails is dropped with one line: what the operator sees never stops the bench."""

    history: list[Event] = field(default_factory=list)
    _subscribers: list[Callable[[Event], None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def emit(self, kind: str, **data: Any) -> Event:
        with self._lock:
            event = Event(len(self.history) + 1, kind, time.time(), data)
            self.history.append(event)
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception as error:  # noqa: BLE001 - the bench goes on (a safe state emits too); one line
                self._subscribers.remove(subscriber)
                print(f"bench: events: {subscriber!r} stopped after {type(error).__name__}: {error}", file=sys.stderr)
        return event

    def subscribe(self, subscriber: Callable[[Event], None]) -> None:
        self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Callable[[Event], None]) -> None:
        self._subscribers.remove(subscriber)

    def after(self, seq: int) -> list[Event]:
        """The events after ``seq`` (0: all of them)."""
        with self._lock:
            return self.history[seq:]


class EventLog:
    """The run's events as JSON lines beside its record (``run-<id>.events.jsonl``): what ``bench
    panel`` replays or follows, line by line as they happen."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._out: TextIO = path.open("a", encoding="utf-8")

    def __call__(self, event: Event) -> None:
        self._out.write(event.to_json() + "\n")
        self._out.flush()

    def close(self) -> None:
        self._out.close()


class LogFollower:
    """A run's event log as it grows (the run may still be writing it): the events after a sequence
    number, reading only what was appended since the last look; a line still being written waits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.events: list[Event] = []
        self._offset = 0
        self._lock = threading.Lock()

    def after(self, seq: int) -> list[Event]:
        with self._lock:
            with self.path.open("rb") as log:
                log.seek(self._offset)
                chunk = log.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            self._offset += len(complete)
            self.events.extend(Event.from_json(line) for line in complete.decode("utf-8").splitlines() if line)
            return self.events[seq:]
