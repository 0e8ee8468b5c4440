"""ANSI C12.20 effect of waveform distortion (harmonics).

At half of Imax, the source and load program harmonic profiles (bench/standards/harmonics.toml):
the 5th harmonic in phase (10 % of the voltage, 40 % of the current), the odd harmonics of a
phase-fired current, and the DC and even harmonics of a half-wave rectified current. The
reference standard's power includes every harmonic; each meter's error may shift from its error
with sinusoidal waveforms by at most the class's allowance.
Points and limits: the limits table the run uses (bench/standards/, or the lab's own with --limits).
"""
FAMILY = "harmonics"


def test_waveform_distortion(point, position, certify):
    certify(point, position)
