"""One worker per session: the session's ``flock``, and waiting out a finishing predecessor."""

from __future__ import annotations

import errno
import fcntl
import os
import time

from .. import ipc
from ..errors import IPCError, MemoirError
from ..log import get_logger

log = get_logger("claude_memoir.worker")

# Seconds a new worker waits for a finishing predecessor to release the lock.
LOCK_WAIT = 15.0


class AlreadyRunning(MemoirError):
    """Another worker holds this session's lock or answers on its socket."""


class SessionLock:
    """An exclusive ``flock`` on the session's lock file, held for the worker's life.

    flock, not check-then-act: two hooks racing to spawn a worker both start one,
    and exactly one gets the lock. The kernel drops it when the process dies,
    even by SIGKILL, so a crashed worker never blocks its successor.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise AlreadyRunning."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise AlreadyRunning("session lock is held", reason="locked") from e
            raise
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def acquire_or_defer(lock: SessionLock, sock: str | os.PathLike[str],
                     wait: float = LOCK_WAIT) -> bool:
    """Take the session lock; return False if a live worker already serves the session.

    While the holder answers on its socket, this worker is redundant and
    leaves. While it does not (it is still starting, or finishing and closing
    its agent after SessionEnd), wait for the lock up to ``wait`` seconds, so
    work submitted during a handoff is not left for the next hook to notice.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            lock.acquire()
            return True
        except AlreadyRunning:
            pass
        try:
            ipc.request(sock, {"type": "ping"}, timeout=0.5)
        except IPCError:
            pass
        else:
            log.info("a live worker already serves %s; exiting", os.path.basename(sock))
            return False
        if time.monotonic() >= deadline:
            log.info("session lock %s still held after %.0fs; exiting", lock.path, wait)
            return False
        time.sleep(0.2)
