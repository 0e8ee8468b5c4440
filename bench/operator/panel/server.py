"""The panel served on a thread of the run's process (uvicorn). Loopback by default; any other
address only when asked for, and then every request must carry a token."""
from __future__ import annotations

import ipaddress
import secrets
import socket
import threading
from collections.abc import Callable
from urllib.parse import quote

import uvicorn

from bench.operator.events import Event
from bench.operator.panel.app import panel_app
from bench.operator.prompts import PromptDesk


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class PanelServer:
    """Started before the run measures, stopped when it ends; ``url`` is what the operator opens."""

    def __init__(self, events: Callable[[int], list[Event]], *, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None, abort: Callable[[], None] | None = None,
                 prompts: PromptDesk | None = None) -> None:
        if token is None and not is_loopback(host):
            token = secrets.token_urlsafe(16)  # off the machine: nobody without the printed address gets in
        self.token = token
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError as error:
            self._socket.close()
            raise OSError(f"panel: cannot listen on {host}:{port}: {error.strerror or error}") from None
        self._socket.listen(64)
        bound_port = self._socket.getsockname()[1]
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        self.url = f"http://{shown}:{bound_port}/" + (f"?token={quote(token)}" if token else "")
        self._closing = threading.Event()
        config = uvicorn.Config(panel_app(events, abort=abort, prompts=prompts, token=token, closing=self._closing),
                                log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="panel", daemon=True)

    def start(self) -> PanelServer:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Pages' streams end first (within one poll), so the server stops at once, pages open or not."""
        self._closing.set()
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._socket.close()
