"""The wire between hooks and a session's worker: one Unix socket per session.

Framing is one JSON object per line, at most ``MAX_MESSAGE`` bytes; every request
gets exactly one JSON line back (an ack), so a client knows it was received.
This module is imported by hooks: standard library only, and no asyncio here
(the worker's server side lives in ``worker.py``).
"""

from __future__ import annotations

import json
import os
import socket
import time

from .errors import IPCError

# A request is a few hundred bytes; the cap stops a confused or hostile peer
# from making the worker buffer without bound.
MAX_MESSAGE = 64 * 1024

REQUEST_TYPES: frozenset[str] = frozenset({"ping", "wake", "finalize", "shutdown"})

# The wire types, for type checkers only: hooks import this module on every
# tool call, and ``typing`` alone costs them ~3 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal, TypedDict

    RequestType = Literal["ping", "wake", "finalize", "shutdown"]

    class Request(TypedDict, total=False):
        """A message to the worker. ``prompt_number`` only for ``finalize``.

        ``claude_pid`` is the Claude Code process the sending hook runs under;
        the worker watches it and exits when it is gone.
        """

        type: RequestType
        prompt_number: int
        reason: str
        claude_pid: int

    class Ack(TypedDict, total=False):
        """The worker's one-line answer."""

        ok: bool
        type: str
        error: str
        state: dict[str, Any]


def encode(message: dict[str, Any]) -> bytes:
    """One framed line; raises IPCError if it exceeds the cap."""
    data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
    if len(data) > MAX_MESSAGE:
        raise IPCError("message too large", reason="too-large", size=len(data))
    return data


def decode(line: bytes) -> dict[str, Any]:
    """Parse one framed line into an object; raises IPCError on anything else."""
    if len(line) > MAX_MESSAGE:
        raise IPCError("message too large", reason="too-large", size=len(line))
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError) as e:
        raise IPCError("malformed message", reason="malformed") from e
    if not isinstance(value, dict):
        raise IPCError("message is not an object", reason="malformed")
    return value


def listening(path: str | os.PathLike[str], timeout: float = 0.5) -> bool:
    """True if a process accepts connections on the socket at ``path``.

    A connect test, not a request: it tells a live socket from one a killed
    worker left behind, whatever state the listener is in.
    """
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(timeout)
    try:
        probe.connect(os.fspath(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def request(path: str | os.PathLike[str], message: Request, timeout: float = 1.0) -> Ack:
    """Send one request and wait (at most ``timeout`` s) for its ack.

    Raises IPCError when there is no worker (no socket, refused), it does not
    answer in time, or the answer is not one JSON line.
    """
    data = encode(dict(message))
    deadline = time.monotonic() + timeout
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(os.fspath(path))
        sock.sendall(data)
        buf = b""
        while not buf.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise IPCError("worker did not answer in time", reason="timeout")
            sock.settimeout(remaining)
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
            if len(buf) > MAX_MESSAGE:
                raise IPCError("ack too large", reason="too-large")
    except FileNotFoundError as e:
        raise IPCError("no worker socket", reason="absent", path=str(path)) from e
    except ConnectionRefusedError as e:
        raise IPCError("worker socket refused", reason="refused", path=str(path)) from e
    except TimeoutError as e:
        raise IPCError("worker did not answer in time", reason="timeout") from e
    except OSError as e:
        raise IPCError(f"socket error: {e}", reason="os-error", path=str(path)) from e
    finally:
        sock.close()
    if not buf.endswith(b"\n"):
        raise IPCError("worker closed without an answer", reason="no-answer")
    ack = decode(buf.strip())
    return ack  # type: ignore[return-value]
