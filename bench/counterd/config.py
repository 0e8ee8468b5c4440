"""The daemon's TOML file: which GPIO chip and lines are the board's inputs, and how they are wired.

Every line is one opto-isolated input with a pull-up: an open-collector output pulls it low while
its pulse lasts, so ``active_low = true`` (the default) makes the pulse's leading edge the rising
edge the protocol gates on. Kernel debouncing delays an edge's timestamp to the end of the debounce
period plus workqueue latency, which would move every MUT edge against the reference pulses: it is
allowed on the interlock only; the counting inputs use the board's glitch filter, which measures
pulse width from the true edge timestamps instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.counterd.gate import MAX_FILTER_S, NS_PER_S, Timebase
from bench.datafiles import Section, load_toml

BIASES = ("pull-up", "pull-down", "disabled", "as-is")
MAX_LINES = 64  # GPIO_V2_LINES_MAX: the kernel's limit on the lines of one request
MAX_EVENT_BUFFER = MAX_LINES * 16  # the kernel clamps a request's event buffer to this (gpiolib-cdev)
MAX_DEBOUNCE_S = 1.0


@dataclass(frozen=True)
class LineConfig:
    offset: int
    active_low: bool = True
    bias: str = "pull-up"
    debounce_s: float = 0.0


@dataclass(frozen=True)
class CounterdConfig:
    """A board: the chip, its counting lines and interlock, the timebase the protocol shows."""

    chip: str
    channels: tuple[LineConfig, ...]  # channel 1 first
    reference: LineConfig
    interlock: LineConfig
    serial: str = "0"
    consumer: str = "bench-counterd"
    timebase: Timebase = Timebase()
    filter_s: float = 0.0005  # the glitch filter at start-up (CONF:FILT changes it)
    event_buffer_size: int = MAX_EVENT_BUFFER
    reorder_s: float = 0.05  # how long a missing sequence number is waited for before it is lost

    @property
    def reorder_ns(self) -> int:
        return round(self.reorder_s * NS_PER_S)


def _line(section: Section, debounce: bool) -> LineConfig:
    allowed = {"line", "active_low", "bias"} | ({"debounce_s"} if debounce else set())
    if not debounce and "debounce_s" in section:
        raise section.error("debounce_s", "only the interlock may be debounced: the kernel would timestamp a "
                                          "counting edge when its debounce period ends; the glitch filter "
                                          "(CONF:FILT) rejects short pulses instead")
    section.unknown(allowed)
    return LineConfig(offset=section.integer("line", low=0, high=65535),
                      active_low=section.boolean("active_low", True),
                      bias=section.text("bias", "pull-up", choices=BIASES),
                      debounce_s=section.number("debounce_s", 0.0, low=0.0, high=MAX_DEBOUNCE_S))


def load_config(path: Path) -> CounterdConfig:
    """The file, checked: a bad value is a ConfigError naming the file and the key."""
    data = load_toml(path)
    data.unknown({"chip", "serial", "consumer", "timebase_hz", "filter_s", "event_buffer_size", "reorder_s",
                  "channel", "reference", "interlock"})
    channels = tuple(_line(c, debounce=False) for c in data.tables("channel"))
    reference, interlock = _line(data.table("reference"), False), _line(data.table("interlock"), True)
    lines = [*channels, reference, interlock]
    if len(lines) > MAX_LINES:
        raise data.error("channel", f"{len(channels)} channels and two more lines: one request holds at most "
                                    f"{MAX_LINES} lines")
    offsets = [line.offset for line in lines]
    if len(set(offsets)) != len(offsets):
        raise data.error("channel", f"a line serves two inputs (offsets {offsets}: channels, reference, interlock)")
    serial = data.text("serial", "0")
    if "," in serial or not serial.isascii() or not serial.isprintable():
        raise data.error("serial", f"the *IDN? serial field is printable ASCII without commas, not {serial!r}")
    return CounterdConfig(
        chip=data.text("chip"), channels=channels, reference=reference, interlock=interlock, serial=serial,
        consumer=data.text("consumer", "bench-counterd"),
        timebase=Timebase(data.integer("timebase_hz", 10_000_000, low=1, high=NS_PER_S)),
        filter_s=data.number("filter_s", 0.0005, low=0.0, high=MAX_FILTER_S),
        event_buffer_size=data.integer("event_buffer_size", MAX_EVENT_BUFFER, low=1, high=MAX_EVENT_BUFFER),
        reorder_s=data.number("reorder_s", 0.05, low=0.001, high=1.0))

