"""Two pseudo-terminals wired back to back, as a null-modem cable (what ``socat pty pty`` makes).

A serial server that opens its port by name (pymodbus's RTU server does) and a client that opens
its own each get a port: what one writes, the other reads.
"""
from __future__ import annotations

import os
import select
import threading
import tty

from bench.servers.serial_line import write_within


class NullModem:
    """``server_port`` and ``client_port``: the two ends, each a pty slave pyserial can open."""

    WRITE_TIMEOUT_S = 1.0  # an end nobody reads loses what is sent to it, as on a real line

    def __init__(self) -> None:
        self._server_master, self._server_slave = os.openpty()
        self._client_master, self._client_slave = os.openpty()
        for fd in (self._server_master, self._server_slave, self._client_master, self._client_slave):
            tty.setraw(fd)  # no echo, no CR/LF translation: binary frames pass as they are
        for fd in (self._server_master, self._client_master):
            os.set_blocking(fd, False)
        self.server_port, self.client_port = os.ttyname(self._server_slave), os.ttyname(self._client_slave)
        self._wake_in, self._wake_out = os.pipe()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._carry, name="null-modem", daemon=True)

    def start(self) -> NullModem:
        self._thread.start()
        return self

    def _carry(self) -> None:
        other = {self._server_master: self._client_master, self._client_master: self._server_master}
        while not self._stop.is_set():
            ready, _, _ = select.select([*other, self._wake_in], [], [])
            for fd in ready:
                if fd == self._wake_in:
                    continue
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                except OSError:  # the slave end is held open here, so this is the modem being closed
                    return
                write_within(other[fd], data, self.WRITE_TIMEOUT_S)

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        os.write(self._wake_out, b"!")
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        for fd in (self._server_master, self._server_slave, self._client_master, self._client_slave,
                   self._wake_in, self._wake_out):
            try:
                os.close(fd)
            except OSError:
                pass
