"""Harmonic profiles: the data, its synthesis and analysis with numpy, and its errors."""
import math

import numpy as np
import pytest

from bench.datafiles import ConfigError
from bench.metrology.harmonics import (
    SAMPLES_PER_CYCLE,
    Harmonic,
    active_power,
    analyse,
    load_profiles,
    power_by_order,
    synthesize,
    thd_pct,
)
from bench.plans.limits import HARMONICS_FILE

PROFILES = load_profiles(HARMONICS_FILE)
CYCLES = 4
THETA = 2 * np.pi * np.arange(SAMPLES_PER_CYCLE * CYCLES) / SAMPLES_PER_CYCLE


def ideal(name):
    sine = np.sin(THETA)
    if name == "half_wave":
        return np.where(sine > 0, sine, 0.0)
    return np.where((THETA % np.pi) >= np.pi / 2, sine, 0.0)  # phase-fired at 90°


@pytest.mark.parametrize("name", ["half_wave", "phase_fired"])
def test_derived_profiles_are_the_fourier_series_of_their_ideal_waveforms(name):
    _, found = analyse(ideal(name), CYCLES)
    by_order = {h.order: h for h in found}
    for h in PROFILES[name].current:
        assert by_order[h.order].pct == pytest.approx(h.pct, abs=0.005)
        if h.order:
            assert by_order[h.order].phase_deg == pytest.approx(h.phase_deg, abs=0.02)


def test_half_wave_matches_its_closed_form():
    by_order = {h.order: h.pct for h in PROFILES["half_wave"].current}
    assert by_order[0] == pytest.approx(100 * 2 * math.sqrt(2) / math.pi, abs=0.001)
    for h in (2, 4, 6, 8, 10):
        assert by_order[h] == pytest.approx(100 * 4 / (math.pi * (h * h - 1)), abs=0.001)


def test_synthesis_and_analysis_round_trip():
    harmonics = (Harmonic(0, 12.0, 0.0), Harmonic(3, 30.0, 45.0), Harmonic(7, 5.0, -120.0))
    fundamental, found = analyse(synthesize(10.0, 20.0, harmonics))
    assert fundamental == pytest.approx(10.0)
    assert ([(h.order, round(h.pct, 9), round(h.phase_deg, 6)) for h in found]
            == [(0, 12.0, 0.0), (3, 30.0, 45.0), (7, 5.0, -120.0)])


def test_thd_is_the_root_sum_square_of_the_harmonics_over_the_fundamental():
    assert thd_pct((Harmonic(3, 30.0, 0.0), Harmonic(5, 40.0, 0.0), Harmonic(0, 90.0, 0.0))) == pytest.approx(50.0)
    assert PROFILES["fifth_in_phase"].thd_current_pct == pytest.approx(40.0)


def test_sampled_power_is_every_harmonics_power():
    """A sampling wattmeter's mean(v i) equals the sum over orders of V_h I_h cos(phi_h):
    the same-order products survive, the cross products average out."""
    profile = PROFILES["fifth_in_phase"]
    v = synthesize(120.0, 0.0, profile.voltage)
    i = synthesize(10.0, -30.0, profile.current)
    expected = 120 * 10 * math.cos(math.radians(30)) + 12 * 4 * math.cos(math.radians(5 * 30))
    assert active_power(v, i) == pytest.approx(expected, rel=1e-9)
    by_order = power_by_order(v, i)
    assert set(by_order) == {1, 5}
    assert by_order[5] == pytest.approx(12 * 4 * math.cos(math.radians(150)))
    assert sum(by_order.values()) == pytest.approx(active_power(v, i), rel=1e-9)


def test_a_broken_profile_names_the_key(tmp_path):
    bad = tmp_path / "harmonics.toml"
    bad.write_text('[x]\ndescription = "d"\nprovenance = "p"\ncurrent = [{ order = 1, pct = 5.0, phase_deg = 0.0 }]\n')
    with pytest.raises(ConfigError, match=r"harmonics.toml: x.current\[1\].order: 1 is not a harmonic order"):
        load_profiles(bad)
    bad.write_text('[x]\ndescription = "d"\nprovenance = "p"\nvoltage = [{ order = 0, pct = 5.0, phase_deg = 0.0 }]\n')
    with pytest.raises(ConfigError, match=r"x.voltage\[1\].order: expected a whole number in \[1, 50\]"):
        load_profiles(bad)
