"""`bench sim` serves instruments that independent clients can use: a plain pyvisa script, a raw
serial client, and mbpoll (libmodbus), none of which share code with the bench's drivers."""
import re
import subprocess

import pytest
import pyvisa
import serial

from bench.station.profile import load_profile
from tests.helpers import require_tool, start_bench_sim

pytestmark = pytest.mark.slow  # `bench sim` in a process of its own, and mbpoll


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    profile = tmp_path_factory.mktemp("sim") / "profile.toml"
    process, banner = start_bench_sim(profile)
    yield load_profile(profile), banner
    process.terminate()
    assert process.wait(timeout=10) == 0  # SIGTERM is a clean stop


def test_it_prints_every_address(standalone):
    profile, banner = standalone
    for address in (profile.source.address, profile.load.address, profile.reference.address,
                    profile.counter.address, profile.clock_address, *(p.address for p in profile.positions)):
        assert address in banner


def test_plain_pyvisa_script_drives_source_and_reads_reference(standalone):
    profile, _ = standalone
    rm = pyvisa.ResourceManager("@py")
    open_ = dict(read_termination="\n", write_termination="\n", timeout=2000)
    source, load = rm.open_resource(profile.source.address, **open_), rm.open_resource(profile.load.address, **open_)
    reference = rm.open_resource(profile.reference.address, **open_)
    control = rm.open_resource(profile.clock_address, **open_)
    try:
        assert source.query("*IDN?").startswith("MeterBench,")
        # *OPC? waits for each instrument to finish before time moves on another connection
        assert source.query("VOLT 120;:OUTP ON;*OPC?") == "1"
        assert load.query("CURR 2.5;:PHAS 0;:OUTP ON;*OPC?") == "1"
        assert control.query("SIM:ADV 3600;*OPC?") == "1"
        power = float(reference.query("MEAS:POW?"))
        # three elements of ~120 V x 2.5 A, through the source's and load's own setpoint errors
        # (+0.04 %, -0.03 %) and the reference's (+0.004 %)
        assert power == pytest.approx(3 * 300.0, rel=2e-3)
        assert float(reference.query("ENER?")) == pytest.approx(power, rel=1e-9)  # one hour of it
        source.write("OUTP OFF")
        load.write("OUTP OFF")
        assert source.query("SYST:ERR?") == '0,"No error"'
    finally:
        for resource in (source, load, reference, control):
            resource.close()


def test_raw_serial_client_talks_to_the_counter(standalone):
    profile, _ = standalone
    with serial.Serial(profile.counter.address, 115200, timeout=2) as port:
        port.write(b"*IDN?\nCONF:CHAN?\n")
        assert port.readline().startswith(b"MeterBench,")
        assert int(port.readline()) == len(profile.positions)


def test_mbpoll_reads_the_meter_registers(standalone):
    mbpoll = require_tool("mbpoll")
    profile, _ = standalone
    host, port = profile.positions[0].address.split(":")
    serial_register = profile.meter_type.registers["serial"]
    # mbpoll numbers registers from 1: reference = address + 1
    out = subprocess.run([mbpoll, "-m", "tcp", "-p", port, "-a", "1", "-t", "4:hex",
                          "-r", str(serial_register.address + 1), "-c", str(serial_register.words), "-1", host],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    words = [int(w, 16) for w in re.findall(r"\]:\s+0x([0-9A-Fa-f]{4})", out.stdout)]
    text = b"".join(w.to_bytes(2, "big") for w in words).rstrip(b"\0").decode()
    assert text == profile.positions[0].serial
