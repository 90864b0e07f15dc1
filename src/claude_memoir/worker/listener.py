"""The session's Unix socket: clear a stale one, bind a private one, listen."""

from __future__ import annotations

import contextlib
import os
import socket

from .. import ipc
from ..log import get_logger
from ..paths import ensure_private_dir
from .lock import AlreadyRunning

log = get_logger("claude_memoir.worker")

# Connections the socket queues before the service accepts them (a burst of
# hooks while the worker is still loading).
BACKLOG = 128


def clear_stale_socket(path: str | os.PathLike[str]) -> None:
    """Remove ``path`` if no one listens on it; raise AlreadyRunning if someone does."""
    if not os.path.lexists(path):
        return
    if ipc.listening(path):
        raise AlreadyRunning(f"a worker already listens on {os.fspath(path)}",
                             reason="listening")
    log.info("removing stale socket %s", os.fspath(path))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def listen_on(path: str | os.PathLike[str]) -> socket.socket:
    """Clear a stale socket at ``path`` and listen there (mode 0600); return the socket."""
    path = os.fspath(path)
    ensure_private_dir(os.path.dirname(path))
    clear_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # umask around bind: the socket file is created by bind() with the
    # process umask, and chmod afterwards would leave a window.
    old = os.umask(0o177)
    try:
        sock.bind(path)
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    finally:
        os.umask(old)
    return sock
