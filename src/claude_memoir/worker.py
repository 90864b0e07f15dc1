"""The per-session worker process: ``python -m claude_memoir.worker --session ID``.

Started detached by a hook. In order, it: takes the session's lock (one worker
per session, ever), clears a stale socket and listens on the session's socket,
and only then imports the service (``service.py``: asyncio and the agent's
modules, ~70 ms) and the Agent SDK (~1 s, later still). A hook that arrives
meanwhile finds a live socket: its connection waits in the listen backlog
instead of seeing no worker and spawning a second one. This module therefore
imports only the standard library's light modules and this package's light ones.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import sys
import time

from . import ipc
from .config import load_settings
from .errors import InvalidInput, IPCError, MemoirError
from .log import get_logger, setup_hook_logging
from .paths import ensure_private_dir, lock_path, run_dir, socket_path, validate_session_id

log = get_logger("claude_memoir.worker")

# Seconds a new worker waits for a finishing predecessor to release the lock.
LOCK_WAIT = 15.0
# Connections the socket queues before the service accepts them (a burst of
# hooks while the worker is still loading).
BACKLOG = 128


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


def clear_stale_socket(path: str | os.PathLike[str]) -> None:
    """Remove ``path`` if no one listens on it; raise AlreadyRunning if someone does."""
    if not os.path.lexists(path):
        return
    if ipc.listening(path):
        raise AlreadyRunning(f"a worker already listens on {os.fspath(path)}",
                             reason="listening")
    log.info("removing stale socket %s", os.fspath(path))
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


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


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m claude_memoir.worker --session ID``."""
    # By hand, not argparse (~10 ms): time to listening is what a hook arriving
    # right after the first prompt depends on.
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "--session":
        print("usage: python -m claude_memoir.worker --session ID", file=sys.stderr)
        return 2
    settings = load_settings()
    # The light log writer until the socket listens; logging (~8 ms) after.
    setup_hook_logging(settings.home, settings.log_level)
    try:
        session_id = validate_session_id(args[1])
    except InvalidInput as e:
        log.error("worker not started: %s", e)
        return 2
    ensure_private_dir(run_dir(settings.home))
    # Started (by posix_spawn) in the hook's cwd, the user's project: a
    # long-lived process must not hold that directory (unmount, rm -rf).
    os.chdir(settings.home)
    lock = SessionLock(lock_path(settings.home, session_id))
    path = socket_path(settings.home, session_id)
    if not acquire_or_defer(lock, path):
        return 0
    try:
        listener = listen_on(path)
        import asyncio

        from .log import setup_logging
        from .service import Worker, serve

        setup_logging(settings.home, settings.log_level)
        return asyncio.run(serve(Worker(settings, session_id, listener=listener)))
    except AlreadyRunning as e:
        log.info("session %s: %s; exiting", session_id, e)
        return 0
    except Exception:
        log.exception("worker for session %s crashed", session_id)
        return 1
    finally:
        lock.release()


if __name__ == "__main__":
    sys.exit(main())
