"""A clean pulse train taken in bulk (Channel.pulse_train) leaves the gate exactly as the pulses taken
one by one do, and the simulated head rounds edge times to ticks as the board's timebase does."""
from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.counterd.gate import GATE_STATES, Channel, Timebase
from bench.sim.world import Gate


def _state(channel: Channel) -> list[tuple[str, type, object]]:
    """Every field, with its type: a numpy integer where the per-pulse path keeps a Python int is a difference."""
    return [(f.name, type(getattr(channel, f.name)), getattr(channel, f.name)) for f in dataclasses.fields(channel)]


@st.composite
def channels(draw: st.DrawFn) -> Channel:
    target = draw(st.integers(1, 30))
    pending = draw(st.one_of(st.none(), st.tuples(st.integers(-10**6, 10**6), st.integers(0, 10**4), st.booleans())))
    return Channel(filter_ticks=draw(st.sampled_from([0, 1, 5000, 20_000, 100_000]) | st.integers(0, 200_000)),
                   state=draw(st.sampled_from(GATE_STATES)), target=target,
                   mut_edges=draw(st.integers(0, target + 2)), total_edges=draw(st.integers(0, 10**6)),
                   rejected=draw(st.integers(0, 5)), lost=draw(st.integers(0, 2)),
                   start_ticks=draw(st.integers(-10**6, 10**6)), stop_ticks=draw(st.integers(0, 10**7)),
                   ref_start=draw(st.integers(0, 10**4)), ref_stop=draw(st.integers(0, 10**4)),
                   period_min=draw(st.integers(0, 10**6)), period_max=draw(st.integers(0, 10**6)),
                   active=draw(st.booleans()) if pending is None else True, _rise=pending,
                   _last_edge=draw(st.integers(-10**6, 10**6)))


@st.composite
def trains(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    """Rising edges and one width: mostly apart, but also narrow, overlapping, tied or out-of-order pulses."""
    width = draw(st.sampled_from([0, 4999, 5000, 100_000]) | st.integers(0, 300_000))
    gaps = draw(st.lists(st.integers(width + 1, 4 * width + 10) | st.integers(-1000, 4 * width + 10), max_size=40))
    start = draw(st.integers(0, 10**12))
    return np.array([start, *gaps], dtype=np.int64).cumsum()[: draw(st.integers(0, len(gaps) + 1))], width


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(channel=channels(), train=trains(), ref_base=st.integers(0, 10**6))
def test_a_train_in_bulk_leaves_the_channel_as_pulse_by_pulse_does(channel, train, ref_base):
    rises, width = train
    bulk, one_by_one = dataclasses.replace(channel), dataclasses.replace(channel)
    asked: list[int] = []

    def ref_count_at(i: int) -> int:
        asked.append(i)
        return ref_base + 7 * i + i * i

    bulk.pulse_train(rises, width, ref_count_at)
    for i, ticks in enumerate(rises.tolist()):
        one_by_one.pulse(ticks, width, ref_base + 7 * i + i * i)
    assert _state(bulk) == _state(one_by_one)
    if not channel.active and width >= channel.filter_ticks:  # in bulk, overlapping or out of order or not
        assert len(asked) <= 2  # the reference count only where the gate opens or closes


def test_a_gate_opens_and_closes_inside_one_train():
    channel = Channel(filter_ticks=5000)
    channel.pulse_train(np.array([-50_000]), 10_000, lambda i: 99)  # before arming: counted, nothing else
    channel.arm(3)
    asked: list[int] = []
    channel.pulse_train(np.array([0, 10_000 + 1, 30_000, 60_000, 100_000]), 10_000,
                        lambda i: asked.append(i) or 100 * i + 5)
    gate = channel.evidence()
    assert (gate.mut_edges, gate.start_ticks, gate.stop_ticks, gate.ref_pulses) == (3, 0, 60_000, 300)
    assert (gate.period_min, gate.period_max, channel.total_edges, asked) == (10_001, 30_000, 6, [0, 3])


def test_narrow_pulses_in_a_train_are_rejected_one_by_one():
    channel = Channel(filter_ticks=5000)
    channel.arm(5)
    channel.pulse_train(np.array([0, 100_000]), 100_000, lambda i: i)  # opens; pulses touching are counted
    channel.pulse_train(np.array([200_000, 300_000, 400_000]), 4999, lambda i: i)
    assert (channel.state, channel.mut_edges, channel.rejected, channel.total_edges) == ("GATING", 1, 3, 2)


@settings(max_examples=500, deadline=None)
@given(seconds=st.lists(st.floats(-1e3, 9e11) | st.integers(-10**6, 9 * 10**18).map(lambda t: (t + 0.5) / 1e7),
                        max_size=30))
def test_ticks_of_an_array_round_as_ticks_from_s(seconds):
    """Half ticks go to even both ways, and tick counts beyond 2**53 (where doubles are whole) convert exactly."""
    timebase = Timebase()
    assert timebase.ticks_from_s_array(np.array(seconds, dtype=float)).tolist() == [
        timebase.ticks_from_s(s) for s in seconds]


@settings(max_examples=300, deadline=None)
@given(period_s=st.floats(0.02, 2.0), jitter_s=st.floats(0.0, 0.05), n=st.integers(0, 80),
       seed=st.integers(0, 2**16), target=st.integers(1, 40), width_s=st.sampled_from([0.010, 0.0004]),
       start_s=st.floats(0.0, 3000.0), armed=st.booleans(), split=st.integers(0, 80))
def test_the_heads_bulk_feed_is_the_per_pulse_feed(period_s, jitter_s, n, seed, target, width_s, start_s, armed,
                                                   split):
    """A jittered train (edges out of order, pulses touching at times) through Gate.feed against the
    head's per-pulse path: sorted by time, each pulse's ticks rounded and its reference count asked.
    Fed in two steps, as the world steps time: the second often reaches a gate already DONE, and
    an unarmed gate only counts (the trains Gate.feed does not time at all)."""
    times = start_s + period_s * np.arange(1, n + 1) + np.random.default_rng(seed).normal(0.0, jitter_s, size=n)
    fed, reference = Gate(pulse_width_s=width_s), Gate(pulse_width_s=width_s)
    if armed:
        for gate in (fed, reference):
            gate.arm(target)
    asked: list[float] = []

    def ref_count_at(t: float) -> int:
        asked.append(t)
        return int(t * 1234.5)

    boundary = start_s + period_s * (min(split, n) + 0.5)
    first, second = times[times <= boundary], times[times > boundary]  # edges jittered past it come next step
    fed.feed(first, boundary, ref_count_at)
    fed.feed(second, start_s + period_s * (n + 1), ref_count_at)
    ticks = Timebase().ticks_from_s
    for t in [*sorted(first.tolist()), *sorted(second.tolist())]:
        reference.pulse(ticks(t), ticks(width_s), int(t * 1234.5))
    assert _state(fed) == _state(reference)
    if width_s >= fed.filter_s:
        assert len(asked) <= 2
