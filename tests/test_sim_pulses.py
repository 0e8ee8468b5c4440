"""A simulated meter's pulse edges, computed a step at a time with numpy: the very values a loop
placing one edge and drawing one jitter value after another gives (bench/sim/meter_model.py)."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench.sim.meter_model import ErrorCurve, MeterModel, new_pulses


def _meter(seed: int, jitter_s: float) -> MeterModel:
    return MeterModel(position=3, serial="S3", mac="00", firmware="AMI-Release-v4.2", kh_wh=7.2, test_amperes=30.0,
                      nominal_voltage=240.0, nominal_frequency=60.0, curve=ErrorCurve(), starting_current_a=0.01,
                      pulse_jitter_s=jitter_s, seed=seed)


def _per_pulse(meter: MeterModel, output: str, t0: float, dt: float, power: float) -> list[float]:
    """The edges as the model placed them before they were vectorised: one loop turn and one
    scalar jitter draw per edge."""
    kt, start_energy = meter.test_outputs[output], meter.output_energy[output]
    origin_wh, origin_pulses = meter._edge_origin[output]
    meter.output_energy[output] += power * dt / 3600.0
    edges: list[float] = []
    while origin_wh + (meter.output_pulses[output] - origin_pulses + 1) * kt <= meter.output_energy[output]:
        meter.output_pulses[output] += 1
        edge_wh = origin_wh + (meter.output_pulses[output] - origin_pulses) * kt
        crossing = t0 + (edge_wh - start_energy) * 3600.0 / power
        edges.append(crossing + meter._rng.normal(0.0, meter.pulse_jitter_s))
    return edges


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scale=st.floats(0.0, 1.0),
       chunks=st.lists(st.integers(0, 50), min_size=1, max_size=8))
def test_one_array_of_normal_draws_is_the_scalar_draws_in_turn(seed, scale, chunks):
    """Results must not depend on how time is stepped: however the edges are split into steps, and
    whether a step draws its jitter one edge at a time or as one array, the values are the same."""
    scalar = np.random.default_rng([seed, 1])
    one_by_one = [scalar.normal(0.0, scale) for _ in range(sum(chunks))]
    stepped = np.random.default_rng([seed, 1])
    in_chunks = np.concatenate([stepped.normal(0.0, scale, size=n) for n in chunks])
    assert in_chunks.tolist() == one_by_one
    assert stepped.normal(0.0, 1.0) == scalar.normal(0.0, 1.0)  # and the stream goes on in step


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**16), jitter_s=st.sampled_from([0.0, 5e-5, 0.003]),
       kt=st.floats(1e-4, 10.0), origin_wh=st.floats(0.0, 1e5), done=st.integers(0, 10**6),
       fraction=st.floats(0.0, 0.999), pulses=st.one_of(st.floats(0.0, 10.0), st.floats(0.0, 2000.0)),
       t0=st.floats(0.0, 1e5), dt=st.floats(1e-3, 600.0))
def test_a_steps_edges_are_the_per_pulse_loops_to_the_bit(seed, jitter_s, kt, origin_wh, done, fraction, pulses,
                                                            t0, dt):
    """Random output states (origin of the edges, edges so far, energy part way to the next edge)
    and steps of up to 2000 pulses, a few of them as often as many (a step of a scaled clock brings
    one or two): the same edges exactly, the same count, the same generator state."""
    vectorised, looped = _meter(seed, jitter_s), _meter(seed, jitter_s)
    for meter in (vectorised, looped):
        meter.test_outputs["Wh"] = kt
        meter._edge_origin["Wh"] = (origin_wh, 17)
        meter.output_pulses["Wh"] = 17 + done
        meter.output_energy["Wh"] = origin_wh + (done + fraction) * kt
    power = pulses * kt * 3600.0 / dt
    edges = vectorised._pulse("Wh", t0, dt, power)
    assert edges.tolist() == _per_pulse(looped, "Wh", t0, dt, power)
    assert vectorised.output_pulses == looped.output_pulses and vectorised.output_energy == looped.output_energy
    assert vectorised._rng.normal() == looped._rng.normal()


@settings(max_examples=300, deadline=None)
@given(origin_wh=st.floats(0.0, 1e4), kt=st.floats(1e-4, 10.0), done=st.integers(0, 10**5), more=st.integers(0, 3000),
       nudge=st.sampled_from([-2, -1, 0, 1, 2]))
@example(origin_wh=0.0, kt=0.1, done=0, more=3, nudge=-1)  # 0.3, an ulp under 3 x 0.1: two edges, not three
@example(origin_wh=0.0, kt=0.1, done=0, more=3, nudge=0)
def test_the_count_of_new_edges_is_the_loops_at_the_boundary(origin_wh, kt, done, more, nudge):
    """An energy at, or a few ulps either side of, an edge's: the division may round either way; the
    count is the one testing each edge in turn gives."""
    energy = origin_wh + (done + more) * kt
    for _ in range(abs(nudge)):
        energy = math.nextafter(energy, math.copysign(math.inf, nudge))
    k = 0
    while origin_wh + (done + k + 1) * kt <= energy:
        k += 1
    assert new_pulses(origin_wh, kt, done, energy) == k
