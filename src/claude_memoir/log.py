"""Logging: per-module loggers, configured only in a process's ``main``.

Everything goes to ``$MEMOIR_HOME/logs/memoir.log`` (0600), never to stdout: a
hook's stdout is parsed by Claude Code, and a worker has no terminal.

Two set-ups share one file and one line format. Long-lived processes (worker,
CLI) use the standard ``logging`` package: :func:`setup_logging`. A hook is a
process that lives ~30 ms on every tool call, and importing ``logging`` alone
costs it ~6 ms, so a hook calls :func:`setup_hook_logging` instead, and the
modules it runs log through :func:`get_logger`, whose records go straight to
the file (one ``os.write`` per line, O_APPEND) until someone configures
``logging``, and to ``logging`` after that (or when nothing was configured, so
tests' log capture sees them).

The file rotates by size (``log_max_bytes``, MEMOIR_LOG_MAX_BYTES): past it,
the process about to write renames it to ``memoir.log.1`` (replacing the
previous generation) and starts a fresh one, so the logs hold at most twice
the limit. Hooks check once, when they open the file; long-lived processes
before each record, and reopen the file when another process rotated it.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from typing import Any

_FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
_NAMES = {number: name for name, number in _LEVELS.items()}


def _open_log(home: str | os.PathLike[str]) -> tuple[str, int]:
    """Create the log directory (0700) and open ``memoir.log`` for appending; (path, fd).

    O_CREAT with 0600 so the file is private even under a loose umask. Raises
    on a read-only or full disk; both callers fall back to stderr.
    """
    from .paths import ensure_private_dir, log_dir

    path = os.path.join(ensure_private_dir(log_dir(home)), "memoir.log")
    return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


DEFAULT_MAX_BYTES = 10_000_000


def rotate_if_full(path: str, fd: int, max_bytes: int) -> bool:
    """Rotate ``path`` to ``path.1`` if the file open as ``fd`` reached ``max_bytes``.

    Returns True when ``fd`` no longer names the current log (rotated now, or
    by another process before): the caller reopens. Several processes may
    find the file full at once; an exclusive flock on it and a check that
    ``path`` still is that file make exactly one of them rename it, so a
    fresh log is never renamed over the full one.
    """
    if max_bytes <= 0:
        return False
    try:
        info = os.fstat(fd)
        if info.st_size < max_bytes:
            return False
        import fcntl  # only once the log is full

        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            try:
                current = os.stat(path)
            except FileNotFoundError:
                return True
            if (current.st_ino, current.st_dev) != (info.st_ino, info.st_dev):
                return True  # another process rotated it first
            os.replace(path, path + ".1")
            return True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        return False  # a full or read-only disk: keep appending where we can


class _HookSink:
    """Appends formatted lines to the log file without the ``logging`` package."""

    def __init__(self, home: str, threshold: int, max_bytes: int) -> None:
        self.home = home
        self.threshold = threshold
        self.max_bytes = max_bytes
        self.fd: int | None = None

    def _open(self) -> int:
        try:
            path, fd = _open_log(self.home)
            if rotate_if_full(path, fd, self.max_bytes):
                os.close(fd)
                path, fd = _open_log(self.home)
            return fd
        except Exception:  # noqa: BLE001 - a read-only or full disk must not break a hook
            return 2  # stderr: Claude Code shows it in debug mode

    def write(self, level: int, name: str, msg: str, args: tuple[object, ...],
              exc_info: bool) -> None:
        if level < self.threshold:
            return
        try:
            text = msg % args if args else msg
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            text = f"{msg} {args!r}"
        if exc_info:
            import traceback  # the error path only

            text = f"{text}\n{traceback.format_exc().rstrip()}"
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        line = (f"{stamp},{int(now % 1 * 1000):03d} {os.getpid()} {name} "
                f"{_NAMES.get(level, str(level))} {text}\n")
        if self.fd is None:
            self.fd = self._open()
        try:
            os.write(self.fd, line.encode("utf-8", "replace"))
        except OSError:
            pass


_sink: _HookSink | None = None


class Logger:
    """A module's logger (``%``-style arguments) that imports ``logging`` only if it must."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def _log(self, level: int, msg: str, args: tuple[object, ...], exc_info: bool) -> None:
        if _sink is not None:
            _sink.write(level, self.name, msg, args, exc_info)
            return
        import logging

        logging.getLogger(self.name).log(level, msg, *args, exc_info=exc_info)

    def debug(self, msg: str, *args: object) -> None:
        """Log at DEBUG."""
        self._log(10, msg, args, False)

    def info(self, msg: str, *args: object) -> None:
        """Log at INFO."""
        self._log(20, msg, args, False)

    def warning(self, msg: str, *args: object) -> None:
        """Log at WARNING."""
        self._log(30, msg, args, False)

    def error(self, msg: str, *args: object) -> None:
        """Log at ERROR."""
        self._log(40, msg, args, False)

    def exception(self, msg: str, *args: object) -> None:
        """Log at ERROR with the traceback of the exception being handled."""
        self._log(40, msg, args, True)


def get_logger(name: str) -> Logger:
    """The logger for module ``name`` (use ``get_logger(__name__)`` at module level)."""
    return Logger(name)


def setup_hook_logging(home: str, level: str = "INFO",
                       max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """A hook process's set-up: records go to the log file without ``logging``.

    The file is opened on the first record at or above ``level``, so a hook
    that has nothing to say never touches it; a full one is rotated then.
    """
    global _sink
    _sink = _HookSink(home, _LEVELS.get(level.upper(), 20), max_bytes)


def _rotating_handler(home: str | os.PathLike[str], path: str,
                      max_bytes: int) -> logging.Handler:
    """A handler for long-lived processes: rotates the shared file by size, follows others'."""
    import logging.handlers

    class Handler(logging.handlers.WatchedFileHandler):
        # WatchedFileHandler reopens the file when its inode changed (another
        # process rotated it); this one also rotates it when it is full.
        def emit(self, record: logging.LogRecord) -> None:
            if self.stream is not None and rotate_if_full(path, self.stream.fileno(),
                                                          max_bytes):
                self.stream.close()
                self.stream = self._open()
                self._statstream()
            super().emit(record)

        def _open(self) -> Any:
            # Private however loose the umask (logging's open() honours it).
            return os.fdopen(_open_log(home)[1], "a", encoding="utf-8")

    return Handler(path, encoding="utf-8")


def setup_logging(home: str | os.PathLike[str], level: str = "INFO",
                  max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Send this process's log records to the shared log file (worker, CLI).

    Never raises: a read-only or full disk must not break a process, so on
    failure logging falls back to stderr.
    """
    import logging

    global _sink
    _sink = None  # from now on records go through logging
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    sink: logging.Handler
    try:
        path, fd = _open_log(home)
        os.close(fd)  # created private; the handler reopens it by name
        sink = _rotating_handler(home, path, max_bytes)
    except Exception:  # noqa: BLE001 - see the docstring
        sink = logging.StreamHandler(sys.stderr)
    sink.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(sink)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
