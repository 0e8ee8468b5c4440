"""Line transports for text protocols: VISA (pyvisa, any backend) and serial (pyserial)."""
from __future__ import annotations

import functools
from typing import Protocol

import pyvisa
import serial


class LineTransport(Protocol):
    address: str

    def write(self, line: str) -> None: ...
    def read(self) -> str: ...
    def close(self) -> None: ...


class TransportError(OSError):
    """The transport failed: nothing reached the instrument, or nothing came back."""


@functools.lru_cache(maxsize=None)
def resource_manager(backend: str = "@py") -> pyvisa.ResourceManager:
    return pyvisa.ResourceManager(backend)


class VisaLine:
    """A VISA resource (``TCPIP0::host::port::SOCKET``, ``...::INSTR``, ``ASRL...``)."""

    def __init__(self, address: str, timeout_s: float, backend: str = "@py") -> None:
        self.address = address
        try:
            self._resource = resource_manager(backend).open_resource(
                address, read_termination="\n", write_termination="\n", timeout=int(timeout_s * 1000)
            )
        except (pyvisa.Error, OSError, ValueError) as error:
            raise TransportError(f"cannot open: {error}") from None

    def write(self, line: str) -> None:
        try:
            self._resource.write(line)
        except (pyvisa.Error, OSError) as error:
            raise TransportError(f"write failed ({_describe(error)})") from None

    def read(self) -> str:
        try:
            return self._resource.read()
        except pyvisa.errors.VisaIOError as error:
            if error.error_code == pyvisa.constants.StatusCode.error_timeout:
                raise TransportError("no reply before the timeout (connection lost?)") from None
            raise TransportError(f"read failed ({_describe(error)})") from None
        except (OSError, UnicodeDecodeError) as error:
            raise TransportError(f"read failed ({_describe(error)})") from None

    def close(self) -> None:
        try:
            self._resource.close()
        except (pyvisa.Error, OSError):
            pass


class SerialLine:
    """A serial port or pyserial URL (``/dev/ttyUSB0``, ``socket://host:port``, ``rfc2217://...``)."""

    def __init__(self, address: str, timeout_s: float, baudrate: int = 115200) -> None:
        self.address = address
        self._timeout = timeout_s
        self._buffer = b""
        try:
            self._port = serial.serial_for_url(address, baudrate=baudrate, timeout=timeout_s)
        except (serial.SerialException, OSError, ValueError) as error:
            raise TransportError(f"cannot open: {error}") from None

    def write(self, line: str) -> None:
        try:
            self._port.write(line.encode("ascii") + b"\n")
        except (serial.SerialException, OSError) as error:
            raise TransportError(f"write failed ({error})") from None

    def read(self) -> str:
        # Chunked reads: readline() costs ~60x more per line on a pty.
        while b"\n" not in self._buffer:
            try:
                chunk = self._port.read(self._port.in_waiting or 1)
            except (serial.SerialException, OSError) as error:
                raise TransportError(f"read failed ({error})") from None
            if not chunk:
                raise TransportError("no reply before the timeout (cable or board?)")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("ascii", "replace").rstrip("\r")

    def close(self) -> None:
        self._port.close()


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0]
