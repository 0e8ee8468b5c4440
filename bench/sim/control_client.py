"""Client of the simulator's control channel: its clock, ground truth and fault injection."""
from __future__ import annotations

from instruments.scpi import ScpiInstrument, parse_float
from instruments.transport import VisaLine


class SimControlClient(ScpiInstrument):
    def __init__(self, address: str, *, timeout_s: float = 5.0) -> None:
        super().__init__("sim-control", lambda: VisaLine(address, timeout_s), address)

    def mode(self) -> tuple[str, float | None]:
        """("STEP", None) or ("SCALE", simulated seconds per wall second)."""
        reply = self.query("SIM:MODE?")
        kind, _, factor = reply.partition(",")
        return (kind, parse_float(factor)) if kind == "SCALE" else (kind, None)

    def time(self) -> float:
        return self.query_as("SIM:TIME?", parse_float)

    def advance(self, seconds: float) -> None:
        self.set(f"SIM:ADV {float(seconds)!r}")

    def true_error_pct(self, position: int) -> float:
        return self.query_as(f"SIM:TRUT:ERR? {position}", parse_float)

    def set_reference_error(self, pct: float) -> None:
        """The reference standard's true error (tests draw it from its certificate's distribution)."""
        self.set(f"SIM:REF:ERR {float(pct)!r}")

    def outputs_on(self) -> tuple[bool, bool]:
        """(source output, load output) as the simulated instruments really are."""
        source, _, load = self.query("SIM:TRUT:OUTP?").partition(",")
        return source == "1", load == "1"

    def fault(self, instrument: str, kind: str) -> None:
        self.set(f"SIM:FAUL {instrument},{kind}")

    def interlock(self, closed: bool) -> None:
        self.set(f"SIM:INT {'CLOSED' if closed else 'OPEN'}")
