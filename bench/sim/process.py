"""The simulated bench served from a process of its own, as each instrument of a real bench is a box
of its own.

Served from the run's process, the simulator's servers and the bench's code took turns at one
interpreter lock, request after request: at 40 and 80 positions a plan run took 13 to 15 % longer
than with the simulator in a process of its own (runs of both taking turns, on two cores).

The process is forked from the run's once the simulated bench is built (board read, checked and
modelled, the modules imported), so it starts in about the time the servers take to bind, where a
fresh interpreter would import everything again. It leaves the run's session (a Ctrl-C at the
terminal reaches the run, which then makes the board safe through it) and ends when the run's end
of a pipe closes: when the run stops it, or when the run's process dies, even by SIGKILL.
"""
from __future__ import annotations

import faulthandler
import os
import pickle
import select
import signal
import sys
import tempfile
import time
import traceback
from typing import Any

from bench.sim.simbench import SimulatedBench

START_TIMEOUT_S = 30.0  # the servers bind in about 0.1 s; a process that takes this long is not coming
STOP_TIMEOUT_S = 5.0  # then it is killed
_MAX_FD = os.sysconf("SC_OPEN_MAX")  # POSIX, as os.fork is


class SimulatorProcessError(RuntimeError):
    """The simulator's process did not start; the message ends with what it wrote."""


class SimulatorProcess:
    """``start`` forks the process and returns the profile data of the bench it serves; ``stop``
    ends it. Fork while the run's process has one thread: a child gets only the forking thread,
    and a lock another thread held would stay held in it."""

    def __init__(self, sim: SimulatedBench) -> None:
        self.sim = sim
        self.pid: int | None = None
        self._lifeline: int | None = None  # the run's end of the pipe the child waits on
        self._log: int | None = None  # what the child writes: a file already unlinked, so none is left behind

    def start(self) -> dict[str, Any]:
        log_fd, log_path = tempfile.mkstemp(prefix="bench-sim-", suffix=".log")
        os.unlink(log_path)
        ready_r, ready_w = os.pipe()
        life_r, life_w = os.pipe()
        try:
            pid = os.fork()
        except OSError as error:
            for fd in (log_fd, ready_r, ready_w, life_r, life_w):
                os.close(fd)
            raise SimulatorProcessError(f"cannot start the simulated bench's process: {error}") from None
        if pid == 0:  # the simulator's process: never returns
            os.close(ready_r)
            os.close(life_w)
            _serve(self.sim, log_fd, ready_w, life_r)
        self.pid, self._lifeline, self._log = pid, life_w, log_fd
        os.close(ready_w)
        os.close(life_r)
        try:
            data = _read_all(ready_r, START_TIMEOUT_S)
        except TimeoutError as error:
            data, why = b"", str(error)
        else:
            why = "it ended before it served"
        finally:
            os.close(ready_r)
        if not data:  # the one line says why; the traceback before it is not repeated at stop
            last_words = (self._written().splitlines() or ["it wrote nothing"])[-1]
            os.close(log_fd)
            self._log = None
            self.stop()
            raise SimulatorProcessError(f"the simulated bench's process did not start ({why}): {last_words}")
        return pickle.loads(data)  # noqa: S301 - written by this process's own fork, on a pipe of its own

    def stop(self) -> None:
        """Close the lifeline, wait for the process to stop its servers, kill it if it does not.
        Anything it wrote (a server's error) goes to the run's standard error, as it would have
        from the run's own process."""
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None
        if self.pid is not None:
            if not _reaped(self.pid, STOP_TIMEOUT_S):
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            self.pid = None
        if self._log is not None:
            written = self._written()
            os.close(self._log)
            self._log = None
            if written:
                sys.stderr.write("".join(f"simulated bench: {line}\n" for line in written.splitlines()))

    def _written(self) -> str:
        assert self._log is not None
        size = os.fstat(self._log).st_size
        return os.pread(self._log, size, 0).decode(errors="replace").strip() if size else ""


def _serve(sim: SimulatedBench, log_fd: int, ready_w: int, life_r: int) -> None:
    """The child: out of the run's session, its output to the log, the bench started and described
    to the run, served until the lifeline closes; then out, without the run's exit handlers."""
    code = 1
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        _close_inherited(keep=(ready_w, life_r))
        # The run's streams may be pytest's captures, files the run goes on writing: this process's own.
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - for the life of the process
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        faulthandler.enable(sys.stderr)  # pytest's points at a descriptor closed above
        sim.start()
        try:
            with os.fdopen(ready_w, "wb") as ready:
                pickle.dump(sim.profile_data(), ready)
            while os.read(life_r, 4096):
                pass
        finally:
            sim.stop()
        code = 0
    except BaseException:  # noqa: BLE001 - anything at all: written to the log for the run to show
        traceback.print_exc()
    finally:
        os._exit(code)


def _close_inherited(keep: tuple[int, ...]) -> None:
    """Close every descriptor the fork copied from the run but the standard three and ``keep``:
    a copy of the run's output pipe (pytest keeps the original standard output under another
    number) would keep whoever reads the run's output waiting for this process too."""
    low = 3
    for fd in (*sorted(keep), _MAX_FD):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1


def _read_all(fd: int, timeout_s: float) -> bytes:
    """Everything written to the pipe until the writer closes it, within the time."""
    data, deadline = b"", time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError(f"no profile within {timeout_s:g} s")
        chunk = os.read(fd, 65536)
        if not chunk:
            return data
        data += chunk


def _reaped(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
        time.sleep(0.005)
    return False
