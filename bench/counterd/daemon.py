"""`bench counterd` running: one thread reads the GPIO edges into the gate logic, a server thread
answers the protocol, and one lock keeps them apart."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import ModuleType

from bench.counterd.config import CounterdConfig
from bench.counterd.device import CounterDevice
from bench.counterd.gpio import GpioBoard
from bench.servers.scpi import ScpiServer
from bench.servers.serial_line import PtySerialServer

FIRMWARE = "1.0"  # the fourth field of *IDN?
POLL_S = 0.02  # the edge reader wakes at least this often: the glitch filter settles, lost events show

_log = logging.getLogger(__name__)


class Daemon:
    """The board on its GPIO chip, served on a pty or a TCP port until ``stop``.

    ``done`` is set when the edge reader fails (``failure`` says why; the protocol must not go on
    answering from inputs no longer read) or when the owner wants it to stop.
    """

    def __init__(self, config: CounterdConfig, gpiod: ModuleType | None = None,
                 clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.board = GpioBoard(config, gpiod, clock_ns)
        # Each command first takes in the edges waiting, so a reply is as fresh as the inputs.
        self.device = CounterDevice(self.board, f"MeterBench,counterd,{config.serial},{FIRMWARE}", self.lock,
                                    self.board.process)
        self.done = threading.Event()
        self.failure = ""
        self.address = ""
        self._stopping = threading.Event()
        self._reader = threading.Thread(target=self._read_edges, name="counterd-edges", daemon=True)
        self._server: ScpiServer | PtySerialServer | None = None

    def start(self, *, tcp: tuple[str, int] | None = None) -> Daemon:
        """Request the lines, then serve on ``tcp`` (host, port; port 0 picks one) or else on a pty;
        ``address`` is what the driver opens (a pty path, or a pyserial ``socket://`` URL)."""
        self.board.open()
        try:
            self._reader.start()
            if tcp is None:
                pty = PtySerialServer(self.device).start()
                self._server, self.address = pty, pty.port
            else:
                server = ScpiServer(self.device, *tcp).start()
                self._server, self.address = server, f"socket://{tcp[0]}:{server.port}"
        except BaseException:
            self.stop()
            raise
        return self

    def _read_edges(self) -> None:
        try:
            while not self._stopping.is_set():
                self.board.wait(POLL_S)
                with self.lock:
                    self.board.process()
        except Exception as error:  # noqa: BLE001 - any failure ends the daemon, said in one line
            _log.exception("reading edge events failed")
            self.failure = f"{self.config.chip}: reading edge events failed: {error}"
            self.done.set()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        self._stopping.set()
        if self._reader.is_alive():
            self._reader.join(timeout=2)
        with self.lock:
            self.board.close()
        self.done.set()
