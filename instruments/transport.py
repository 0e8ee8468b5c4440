"""Line transports for text protocols: VISA (pyvisa, any backend) and serial (pyserial)."""
from __future__ import annotations

import functools
import time
from typing import Protocol

import pyvisa
import serial
from pyvisa.resources import MessageBasedResource


class LineTransport(Protocol):
    address: str

    def write(self, line: str) -> None: ...
    def read(self) -> str: ...
    def close(self) -> None: ...


class TransportError(OSError):
    """The transport failed: nothing reached the instrument, or nothing came back."""


@functools.cache
def resource_manager(backend: str = "@py") -> pyvisa.ResourceManager:
    return pyvisa.ResourceManager(backend)


class VisaLine:
    """A VISA resource (``TCPIP0::host::port::SOCKET``, ``...::INSTR``, ``ASRL...``)."""

    def __init__(self, address: str, timeout_s: float, backend: str = "@py") -> None:
        self.address = address
        timeout_ms = max(1, int(timeout_s * 1000))
        try:
            resource = resource_manager(backend).open_resource(
                address, read_termination="\n", write_termination="\n", timeout=timeout_ms, open_timeout=timeout_ms
            )
        except Exception as error:  # noqa: BLE001 - pyvisa-py raises a bare Exception when connect times out
            if str(pyvisa.constants.StatusCode.error_timeout.value) in str(error):
                raise TransportError(f"cannot open: connection not accepted within {timeout_s:g} s") from None
            raise TransportError(f"cannot open: {_describe(error)}") from None
        if not isinstance(resource, MessageBasedResource):  # e.g. a GPIB interface or a USB RAW resource
            resource.close()
            raise TransportError(f"cannot open: a {type(resource).__name__} does not read and write lines")
        self._resource = resource

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

    def resynchronise(self, quiet_s: float = 0.05, limit_s: float = 0.5) -> SerialLine:
        """Start from a clean line: a serial line keeps what noise or an earlier session left.

        Drops what waits in the input buffer, ends any partial line the device holds with a bare
        LF (an empty line, ignored), then drops whatever arrives until the line has been quiet
        for ``quiet_s`` (at most ``limit_s`` in all, so a babbling line cannot hold up opening).
        """
        deadline = time.monotonic() + limit_s
        try:
            self._port.reset_input_buffer()
            self._buffer = b""
            self._port.write(b"\n")
            self._port.timeout = quiet_s
            while self._port.read(4096) and time.monotonic() < deadline:
                pass
            self._port.timeout = self._timeout
        except (serial.SerialException, OSError) as error:
            self._port.close()
            raise TransportError(f"cannot resynchronise the line ({error})") from None
        return self

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
