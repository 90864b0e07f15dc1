"""One worker per session: the session's ``flock``, and waiting out a finishing predecessor."""

from __future__ import annotations

import contextlib
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
        """Take the lock or raise AlreadyRunning.

        The lock file may be removed (:func:`remove_lock_file`, by a worker as
        it exits or by retention) while another process has it open: a flock
        won on a file no longer at ``path`` locks nothing anyone else will
        check, so it is dropped and taken again on the file that is there.
        """
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise AlreadyRunning("session lock is held", reason="locked") from e
                raise
            if _same_file(fd, self.path):
                self._fd = fd
                return
            os.close(fd)  # unlinked under us: lock the current file instead
        raise AlreadyRunning("session lock file keeps being replaced", reason="locked")

    def release(self, *, remove: bool = False) -> None:
        """Drop the lock (closing the descriptor releases it).

        ``remove``: unlink the lock file first, while still holding it, so an
        ended session leaves no file behind (a process waiting on the old
        file sees it is gone and locks a new one).
        """
        if self._fd is not None:
            if remove and _same_file(self._fd, self.path):
                with contextlib.suppress(OSError):  # else left for retention
                    os.unlink(self.path)
            os.close(self._fd)
            self._fd = None


def _same_file(fd: int, path: str | os.PathLike[str]) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_ino, here.st_dev) == (there.st_ino, there.st_dev)


def remove_lock_file(path: str | os.PathLike[str], *, dry_run: bool = False) -> bool:
    """Remove a lock file nobody holds; return whether it was (``dry_run``: would be) removed.

    Safe against a worker starting at that moment: the file is unlinked only
    while we hold its flock, and :meth:`SessionLock.acquire` re-checks that the
    file it locked is still the one at ``path``.
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False  # held: a live worker or reaper
    try:
        if not _same_file(fd, path):
            return False
        if not dry_run:
            os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


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
