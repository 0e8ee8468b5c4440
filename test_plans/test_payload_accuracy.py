"""Installation audit: payload accuracy.

Inject 1.0 kW at the meter's nominal voltage and unity power factor, once for the whole board,
and hold it for the procedure's five-minute interval. Each position passes when its registration
error is within ±0.2 %, measured two ways: by gating its test pulses against the reference
standard, and by its Modbus energy register against the reference's energy register.
The point's values and their provenance: bench/standards/payload_accuracy.toml.
"""
from bench.plans import payload_accuracy_point

POINT = payload_accuracy_point()


def test_payload_accuracy(position, certify):
    certify(POINT, position)
