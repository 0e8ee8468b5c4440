"""Serve a ScpiDevice on a pseudo-terminal, as a board on a USB-serial adapter would appear."""
from __future__ import annotations

import os
import select
import threading
import tty

from bench.sim.scpi import ScpiDevice


class PtySerialServer:
    """The simulator keeps the master end; clients open ``port`` (the slave) with pyserial."""

    def __init__(self, device: ScpiDevice) -> None:
        self.device = device
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # before anything is written: no echo, no CR/LF translation
        tty.setraw(self._master)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="pty-counter", daemon=True)

    def start(self) -> "PtySerialServer":
        self._thread.start()
        return self

    def _serve(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(self._master, 4096)
            except OSError:
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                self._answer(raw.decode("ascii", "replace").strip())

    def _answer(self, line: str) -> None:
        fault = self.device.fault
        if fault == "DROP":  # a board reset: this line is lost, the next one is answered
            self.device.fault = "NONE"
            return
        for reply in self.device.handle_line(line):
            if fault == "SILENT":
                continue
            if fault == "GARBLE":
                reply = "#\x15" + reply[::-1] + "?!"
            os.write(self._master, reply.encode("ascii", "replace") + b"\n")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
