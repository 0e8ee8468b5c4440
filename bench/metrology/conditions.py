"""Reference conditions: is the board where the test point says it is, before the point counts?"""
from __future__ import annotations

from dataclasses import dataclass

from bench.datafiles import STANDARDS, Section, load_toml
from bench.metrology.stimulus import Stimulus
from instruments.reference_standard import Readings

DEFAULT_FILE = STANDARDS / "reference_conditions.toml"
PROGRAMMED_THD_TOLERANCE = 0.10  # a programmed distortion must be present within 10 % of itself


@dataclass(frozen=True)
class ReferenceConditions:
    voltage_pct: float
    frequency_pct: float
    thd_pct: float
    temperature_c: tuple[float, float]
    provenance: str

    def deviations(self, stimulus: Stimulus, readings: Readings) -> list[str]:
        """Every way the board is off the point's conditions (empty when it may count)."""
        found = []
        expected_v = stimulus.rms_voltage_v
        for element, volts in enumerate(readings.voltages_v, start=1):
            off = (volts / expected_v - 1) * 100
            if abs(off) > self.voltage_pct:
                found.append(f"voltage on element {element} {volts:.2f} V is {off:+.2f} % off {expected_v:.2f} V")
        off = (readings.frequency_hz / stimulus.frequency_hz - 1) * 100
        if abs(off) > self.frequency_pct:
            found.append(f"frequency {readings.frequency_hz:.3f} Hz is {off:+.2f} % off {stimulus.frequency_hz:g} Hz")
        programmed = stimulus.harmonics.thd_voltage_pct if stimulus.harmonics else 0.0
        if programmed == 0 and readings.thd_voltage_pct > self.thd_pct:
            found.append(f"voltage THD {readings.thd_voltage_pct:.2f} % is above {self.thd_pct:g} %")
        if programmed and abs(readings.thd_voltage_pct - programmed) > PROGRAMMED_THD_TOLERANCE * programmed:
            found.append(f"voltage THD {readings.thd_voltage_pct:.2f} % is not the programmed {programmed:.2f} %")
        low, high = self.temperature_c
        if readings.temperature_c is not None and not low <= readings.temperature_c <= high:
            found.append(f"temperature {readings.temperature_c:.1f} °C is outside {low:g}..{high:g} °C")
        return found


def parse_reference_conditions(section: Section) -> ReferenceConditions:
    section.unknown({"voltage_pct", "frequency_pct", "thd_pct", "temperature_c", "provenance"})
    temperature = section.numbers("temperature_c", length=2, low=-40.0, high=85.0)
    if not temperature[0] < temperature[1]:
        raise section.error("temperature_c", f"expected [low, high] in °C, got {list(temperature)!r}")
    return ReferenceConditions(section.number("voltage_pct", positive=True, high=20.0),
                               section.number("frequency_pct", positive=True, high=20.0),
                               section.number("thd_pct", positive=True, high=100.0), (temperature[0], temperature[1]),
                               section.text("provenance"))


def default_reference_conditions() -> ReferenceConditions:
    return parse_reference_conditions(load_toml(DEFAULT_FILE).table("reference_conditions"))
