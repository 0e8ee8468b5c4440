"""Commissioning audit, step 6: payload accuracy.

Inject 1.0 kW at the meter's nominal voltage and unity power factor, once for the whole board,
and hold it for the procedure's five-minute interval. Each position passes when its registration
error is within ±0.2 %, measured two ways: by gating its test pulses against the reference
standard, and by its Modbus energy register against the reference's energy register. A failure
with a negative power factor at the meter points to a reversed CT or phase wiring.
The point's values and their provenance: bench/standards/payload_accuracy.toml.
"""


def test_payload_accuracy(position, audit):
    audit("payload", position)
