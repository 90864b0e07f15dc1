"""The worker's side of the socket: one request line in, one ack line out.

Serving is all this module does; what a request means is the handler's
business (:meth:`claude_memoir.worker.service.Worker.handle`). The handler runs
on the event loop and must not block: every store call of the worker runs in
its own thread (``service.StoreThread``) so a ping is answered even while
another process holds SQLite's write lock.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

from .. import ipc
from ..errors import IPCError
from ..log import get_logger

log = get_logger("claude_memoir.worker")

Handler = Callable[[dict[str, Any]], "ipc.Ack"]

# Seconds a connected client has to send its request line.
READ_TIMEOUT = 5.0


def peer_uid(writer: asyncio.StreamWriter) -> int | None:
    """The uid of the process at the other end (``SO_PEERCRED``), None if unknown."""
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


async def serve_client(handler: Handler, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
    """Answer one client: refuse other users, cap the message, ack exactly once."""
    try:
        uid = peer_uid(writer)
        if uid is not None and uid != os.getuid():
            log.warning("refused connection from uid %d", uid)
            return
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=READ_TIMEOUT)
        except (asyncio.LimitOverrunError, ValueError):
            ack: ipc.Ack = {"ok": False, "error": "message too large"}
        else:
            try:
                ack = handler(ipc.decode(line.strip()))
            except IPCError as e:
                ack = {"ok": False, "error": str(e)}
        writer.write(ipc.encode(dict(ack)))
        await writer.drain()
    except (TimeoutError, ConnectionError, OSError) as e:
        log.debug("client connection dropped: %s", e)
    except Exception:  # the server must outlive any one client
        log.exception("error serving a client")
    finally:
        writer.close()


async def start_server(listener: socket.socket, handler: Handler) -> asyncio.AbstractServer:
    """Serve ``handler`` on ``listener`` (already bound and listening)."""

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_client(handler, reader, writer)

    return await asyncio.start_unix_server(client, sock=listener, limit=ipc.MAX_MESSAGE)
