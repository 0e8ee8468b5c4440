"""Driver for the simulated bench's control channel (SCPI on loopback): its clock, ground truth and
fault injection. A driver like the others, so the bench core never imports the simulator."""
from __future__ import annotations

from instruments.scpi import ScpiInstrument, parse_float, parse_int
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

    def true_error_pct(self, position: int, quantity: str = "Wh") -> float:
        """The meter's true error of a quantity (bench/metrology/quantities.py names) as it stands now."""
        return self.query_as(f"SIM:TRUT:ERR? {position},{quantity}", parse_float)

    def set_reference_error(self, pct: float) -> None:
        """The reference standard's true error (tests draw it from its certificate's distribution)."""
        self.set(f"SIM:REF:ERR {float(pct)!r}")

    def outputs_on(self) -> tuple[bool, bool]:
        """(source output, load output) as the simulated instruments really are."""
        source, _, load = self.query("SIM:TRUT:OUTP?").partition(",")
        return source == "1", load == "1"

    def fault(self, instrument: str, kind: str, arg: float | int | None = None) -> None:
        """Inject ``kind`` (SLOW takes seconds, ERRQ an error code) on SOURCE, LOAD, REFERENCE or COUNTER."""
        self.set(f"SIM:FAUL {instrument},{kind}" + ("" if arg is None else f",{arg}"))

    def trip_source(self) -> None:
        """The source's output protection trips (output off until cleared)."""
        self.set("SIM:SOUR:TRIP")

    def schedule(self, delay_s: float, command: str) -> None:
        """Run a control command (no ';') when simulated time has advanced ``delay_s`` from now."""
        self.set(f"SIM:SCH {float(delay_s)!r},{command}")

    def clear_schedule(self) -> None:
        self.set("SIM:SCH:CLE")

    def pending(self) -> int:
        """How many scheduled commands have not run yet."""
        return self.query_as("SIM:SCH?", parse_int)

    def interlock(self, closed: bool) -> None:
        self.set(f"SIM:INT {'CLOSED' if closed else 'OPEN'}")
