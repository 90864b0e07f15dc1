"""Running the viewer: a loopback socket, a fresh token, uvicorn."""

from __future__ import annotations

import secrets
import socket
import threading
from types import FrameType

import uvicorn

from ..log import get_logger
from .app import create_app

log = get_logger(__name__)

# The only address the viewer ever listens on: it serves one user's memory.
HOST = "127.0.0.1"
# Seconds uvicorn gives open pages (their live streams) to finish on Ctrl-C.
SHUTDOWN_GRACE = 2


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:``port`` (0: any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def new_token() -> str:
    """A random access token (256 bits)."""
    return secrets.token_urlsafe(32)


class _Server(uvicorn.Server):
    """uvicorn's server, telling the live streams when a signal asks it to stop."""

    def __init__(self, config: uvicorn.Config, stopping: threading.Event) -> None:
        super().__init__(config)
        self.stopping = stopping

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.stopping.set()
        super().handle_exit(sig, frame)


def serve(home: str, sock: socket.socket, token: str) -> None:
    """Serve the viewer on an already bound socket until SIGINT or SIGTERM."""
    port = sock.getsockname()[1]
    stopping = threading.Event()
    app = create_app(home, token=token, port=port, stopping=stopping)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=SHUTDOWN_GRACE, server_header=False,
                            proxy_headers=False)
    log.info("viewer serving %s on %s:%d", home, HOST, port)
    _Server(config, stopping).run(sockets=[sock])
