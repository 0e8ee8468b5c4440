"""Harmonic profiles as data, and the numpy synthesis and analysis the bench and simulator share.

A profile lists harmonics as (order, magnitude in % of the fundamental RMS, phase in degrees).
Phases are referred to the fundamental in the waveform's own time base, so a shape keeps its
form when the fundamental is shifted. Order 0 is DC (current only).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.datafiles import Section, load_toml

SAMPLES_PER_CYCLE = 512  # enough for order 50 without aliasing (Nyquist: 256)


@dataclass(frozen=True)
class Harmonic:
    order: int
    pct: float
    phase_deg: float


@dataclass(frozen=True)
class HarmonicProfile:
    name: str
    description: str
    voltage: tuple[Harmonic, ...]
    current: tuple[Harmonic, ...]
    provenance: str

    @property
    def thd_voltage_pct(self) -> float:
        return thd_pct(self.voltage)

    @property
    def thd_current_pct(self) -> float:
        return thd_pct(self.current)

    def rms_factor(self, quantity: str) -> float:
        """RMS of the distorted wave over the RMS of its fundamental."""
        harmonics = self.voltage if quantity == "voltage" else self.current
        return float(np.sqrt(1.0 + sum((h.pct / 100.0) ** 2 for h in harmonics)))

    def harmonic_power_ratio(self) -> float:
        """Harmonic active power over V1 I1, per element, with the current fundamental in phase
        with the voltage: sum over orders in both waves of a_h b_h cos(psi_v - psi_i)."""
        currents = {h.order: h for h in self.current}
        return sum(v.pct / 100 * currents[v.order].pct / 100
                   * np.cos(np.radians(v.phase_deg - currents[v.order].phase_deg))
                   for v in self.voltage if v.order in currents)


def thd_pct(harmonics: tuple[Harmonic, ...]) -> float:
    """THD = sqrt(sum over h >= 2 of X_h^2) / X_1, in percent (DC is not distortion)."""
    return float(100.0 * np.sqrt(sum((h.pct / 100.0) ** 2 for h in harmonics if h.order >= 2)))


def synthesize(fundamental_rms: float, phase_deg: float, harmonics: tuple[Harmonic, ...],
               cycles: int = 1) -> np.ndarray:
    """Samples of x(t) over whole cycles: the fundamental at ``phase_deg`` plus each harmonic."""
    theta = 2 * np.pi * np.arange(cycles * SAMPLES_PER_CYCLE) / SAMPLES_PER_CYCLE
    phi = np.radians(phase_deg)
    wave = np.sqrt(2) * fundamental_rms * np.sin(theta + phi)
    for h in harmonics:
        amplitude = fundamental_rms * h.pct / 100.0
        if h.order == 0:
            wave = wave + amplitude
        else:
            wave = wave + np.sqrt(2) * amplitude * np.sin(h.order * (theta + phi) + np.radians(h.phase_deg))
    return wave


def spectrum(wave: np.ndarray, cycles: int = 1) -> np.ndarray:
    """Complex RMS phasor of each harmonic order (index = order; index 0 = DC value), sine-referred."""
    bins = np.fft.rfft(wave) / len(wave)
    orders = bins[::cycles]
    phasors = orders * np.sqrt(2) * 1j  # a sine of RMS X and phase p has bin (X/sqrt2) e^{j(p - 90°)}
    phasors[0] = bins[0].real
    return phasors


def analyse(wave: np.ndarray, cycles: int = 1) -> tuple[float, tuple[Harmonic, ...]]:
    """(fundamental RMS, harmonics relative to it) recovered from samples, orders 0 and 2..50."""
    phasors = spectrum(wave, cycles)
    fundamental = phasors[1]
    base = np.angle(fundamental)
    found = []
    for order in [0, *range(2, min(51, len(phasors)))]:
        magnitude = abs(phasors[order]) / abs(fundamental) * 100
        if magnitude > 1e-6:
            phase = 0.0 if order == 0 else np.degrees(np.angle(phasors[order]) - order * base)
            found.append(Harmonic(order, float(magnitude), float((phase + 180) % 360 - 180)))
    return float(abs(fundamental)), tuple(found)


def power_by_order(voltage: np.ndarray, current: np.ndarray, cycles: int = 1) -> dict[int, float]:
    """Active power carried by each harmonic order, Re(V_h I_h*) from the two spectra (order 0:
    DC voltage x DC current). Their sum is the sampled mean(v i)."""
    v, i = spectrum(voltage, cycles), spectrum(current, cycles)
    powers = {0: float(v[0].real * i[0].real)}
    powers.update({order: float((v[order] * np.conj(i[order])).real) for order in range(1, min(51, len(v)))})
    return {order: p for order, p in powers.items() if abs(p) > 1e-9}


def active_power(voltage: np.ndarray, current: np.ndarray) -> float:
    """Mean of v(t) i(t) over whole cycles: every harmonic's power, as a sampling wattmeter sees it."""
    return float(np.mean(voltage * current))


def load_profiles(path: Path) -> dict[str, HarmonicProfile]:
    doc = load_toml(path)
    return {name: _profile(doc.table(name), name) for name in doc.data}


def _profile(section: Section, name: str) -> HarmonicProfile:
    section.unknown({"description", "provenance", "voltage", "current"})
    return HarmonicProfile(name, section.text("description"), _harmonics(section, "voltage", voltage=True),
                           _harmonics(section, "current", voltage=False), section.text("provenance"))


def _harmonics(section: Section, key: str, voltage: bool) -> tuple[Harmonic, ...]:
    rows = section.data.get(key, [])
    if not isinstance(rows, list):
        raise section.error(key, "expected a list of {order, pct, phase_deg}")
    found = []
    for i, row in enumerate(rows, start=1):
        entry = Section(row if isinstance(row, dict) else {}, section.source, f"{section.key(key)}[{i}]")
        entry.unknown({"order", "pct", "phase_deg"})
        order = entry.integer("order", low=1 if voltage else 0, high=50)
        if order == 1 or order > 50:
            raise entry.error("order", f"{order} is not a harmonic order (0 for DC, 2..50)")
        found.append(Harmonic(order, entry.number("pct", low=0, high=200),
                              entry.number("phase_deg", low=-360, high=360)))
    orders = [h.order for h in found]
    if len(set(orders)) != len(orders):
        raise section.error(key, "an order appears twice")
    return tuple(found)
