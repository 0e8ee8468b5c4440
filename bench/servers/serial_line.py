"""Serve a ScpiDevice on a pseudo-terminal, as a board on a USB-serial adapter would appear."""
from __future__ import annotations

import os
import select
import threading
import time
import tty

from bench.servers.scpi import (
    NOISE,
    LineBuffer,
    ScpiDevice,
    input_overrun,
    reply_delay_s,
    reply_on_link,
)


def write_within(fd: int, data: bytes, timeout_s: float) -> None:
    """Write to a non-blocking pty master within ``timeout_s``: what a client leaves unread past
    it is lost, as on a real UART (and a closed pty loses it all)."""
    deadline = time.monotonic() + timeout_s
    while data:
        try:
            data = data[os.write(fd, data):]
        except BlockingIOError:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([], [fd], [], remaining)[1]:
                return
        except OSError:
            return


class PtySerialServer:
    """The simulator keeps the master end; clients open ``port`` (the slave) with pyserial.

    Link faults as a serial line has them: DROP loses one line, DEAD is an unplugged cable (what
    the client sends is lost, nothing is answered), NOISE leaves a partial line on the wire.
    """

    WRITE_TIMEOUT_S = 1.0  # a client that never reads loses replies, as on a real UART

    def __init__(self, device: ScpiDevice) -> None:
        self.device = device
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # before anything is written: no echo, no CR/LF translation
        tty.setraw(self._master)
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        self._lines = LineBuffer(input_overrun(device), device.max_line_bytes)
        self._wake_in, self._wake_out = os.pipe()
        for fd in (self._wake_in, self._wake_out):
            os.set_blocking(fd, False)
        self._unwatch = device.watch_faults(self._wake)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="pty-counter", daemon=True)

    def start(self) -> PtySerialServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._unwatch()
        self._stop.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        for fd in (self._master, self._slave, self._wake_in, self._wake_out):
            try:
                os.close(fd)
            except OSError:
                pass

    def _wake(self) -> None:
        try:
            os.write(self._wake_out, b"!")
        except OSError:  # already pending, or stopped
            pass

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master, self._wake_in], [], [])
            if self._wake_in in ready:
                self._woken()
            if self._master in ready and not self._stop.is_set() and not self._receive():
                return

    def _woken(self) -> None:
        try:
            os.read(self._wake_in, 4096)
        except OSError:
            pass
        if self.device.consume_fault("NOISE"):
            self._write(NOISE)

    def _receive(self) -> bool:
        """Read and answer what arrived; False when the pty is gone."""
        try:
            chunk = os.read(self._master, 65536)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if self.device.fault == "DEAD":  # unplugged: the bytes never reach the board
            self._lines.clear()
            return True
        for line in self._lines.feed(chunk):
            self._answer(line)
        return True

    def _answer(self, line: str) -> None:
        device = self.device
        if device.consume_fault("DROP"):  # a board reset: this line is lost, the next one is answered
            return
        for reply in device.handle_line(line):
            data = reply_on_link(device, reply)
            if data is None:
                continue
            if self._stop.wait(reply_delay_s(device)):
                return
            self._write(data)

    def _write(self, data: bytes) -> None:
        write_within(self._master, data, self.WRITE_TIMEOUT_S)
