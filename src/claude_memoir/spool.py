"""Payloads a hook could not record because the database stayed locked.

A hook waits on a locked database only a bounded time (it holds up Claude
Code). Past that it writes the payload here, atomically and privately, and
returns; the worker replays the spool into SQLite on its next tick. So a
locked database delays a record but never loses it.

    $MEMOIR_HOME/spool/<time_ns>-<pid>.json
        {"event": ..., "payload": ..., "project_dir": ..., "spooled_at": ...}

The payload is spooled already bounded and redacted (the caller cleans it): a
secret must not sit in a plain file because the database was busy. With it go
the project directory (the hook's CLAUDE_PROJECT_DIR, which a replaying worker
does not have) and the time it was spooled, so a replayed tool event or Stop
belongs to the prompt that was current then, not to whichever prompt is
current when it is replayed.

Several processes may replay at once (any worker, and a hook that finds the
spool non-empty): one ``flock`` on ``spool/.replay.lock`` lets one of them
through at a time; the others skip (the holder is on it). A file that vanished
under a replayer was taken by another one: skipped, never an error.

Files that cannot be replayed are moved aside as ``*.bad`` (reported by
``memoir doctor``, pruned after MEMOIR_KEEP_REJECTED_DAYS).

Standard library only. Hooks import this only when the database stayed locked
or a spool is waiting (pathlib is fine here, off the hot path).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import InvalidInput, StoreError
from .log import get_logger
from .paths import ensure_private_dir
from .values import Record

log = get_logger(__name__)

LOCK_NAME = ".replay.lock"


class SpoolItem(Record):
    """One spooled payload with what the hook knew when it spooled it."""

    event: str
    payload: dict[str, Any]
    # The hook's project directory (CLAUDE_PROJECT_DIR or the payload's cwd).
    project_dir: str | None = None
    # When it was spooled, in the store's timestamp format (UTC, ms).
    spooled_at: str | None = None


def spool_dir(home: str | os.PathLike[str]) -> Path:
    """Where spooled payloads wait."""
    return Path(home) / "spool"


def timestamp(ns: int | None = None) -> str:
    """``ns`` (default now) in the store's timestamp format: ``2026-01-31T12:00:00.123Z``."""
    ns = time.time_ns() if ns is None else ns
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1_000_000:03d}Z"


def write(home: str | os.PathLike[str], event: str, payload: dict[str, Any], *,
          project_dir: str | None = None) -> Path:
    """Spool one (already cleaned) hook payload: temp file + fsync + rename, mode 0600."""
    directory = Path(ensure_private_dir(spool_dir(home)))
    now = time.time_ns()
    name = f"{now:020d}-{os.getpid()}"
    tmp = directory / f".{name}.tmp"
    item = {"event": event, "payload": payload, "project_dir": project_dir,
            "spooled_at": timestamp(now)}
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(item, fh, ensure_ascii=False)
        fh.flush()
        os.fsync(fh.fileno())
    path = directory / f"{name}.json"
    os.replace(tmp, path)
    log.warning("database busy: %s payload spooled to %s", event, path)
    return path


def _files(home: str | os.PathLike[str], suffix: str) -> list[Path]:
    try:
        return sorted(p for p in spool_dir(home).iterdir() if p.suffix == suffix)
    except FileNotFoundError:
        return []


def pending(home: str | os.PathLike[str]) -> list[Path]:
    """Spooled payloads, oldest first."""
    return _files(home, ".json")


def rejected(home: str | os.PathLike[str]) -> list[Path]:
    """Spool files moved aside because they could not be replayed (``*.bad``)."""
    return _files(home, ".bad")


def _read(path: Path) -> SpoolItem:
    """Parse one spool file; ValueError if it is not one (FileNotFoundError passes)."""
    item = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(item, dict):
        raise ValueError("not a JSON object")
    event, payload = item.get("event"), item.get("payload")
    if not isinstance(event, str) or not isinstance(payload, dict):
        raise ValueError("not an event and a payload")
    project, at = item.get("project_dir"), item.get("spooled_at")
    return SpoolItem(event=event, payload=payload,
                     project_dir=project if isinstance(project, str) else None,
                     spooled_at=at if isinstance(at, str) else None)


def _move_aside(path: Path) -> None:
    try:
        os.replace(path, path.with_suffix(".bad"))
    except FileNotFoundError:
        pass  # another replayer dealt with it


class _ReplayLock:
    """Non-blocking exclusive flock on the spool's lock file (one replayer at a time)."""

    def __init__(self, home: str | os.PathLike[str]) -> None:
        self.path = spool_dir(home) / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            return False  # no spool directory: nothing was ever spooled
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        self.fd = fd
        return True

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def replay(home: str | os.PathLike[str], record: Callable[[SpoolItem], str | None], *,
           limit: int = 0) -> list[str] | None:
    """Feed spooled payloads to ``record(item)`` in order; return the sessions touched.

    Returns None when another process holds the replay lock (it replays them).
    ``record`` returns the session id it wrote to (or None). A payload that
    is invalid is dropped with a log line; one that cannot be read is moved
    aside (``.bad``) for inspection, as is one the store refuses for another
    reason; a still-busy database stops the replay (the files stay for the
    next try). ``limit`` > 0 replays at most that many files (a hook's bound).

    A file is unlinked only after ``record`` committed it: a crash in between
    replays it again, which the recorders absorb (tool calls by their id,
    prompts by their text and spool time, Stop and SessionEnd are idempotent).
    """
    touched: list[str] = []
    with _ReplayLock(home) as locked:
        if not locked:
            return None
        for done, path in enumerate(pending(home)):
            if limit and done >= limit:
                break
            try:
                item = _read(path)
            except FileNotFoundError:
                continue  # replayed by a process that held the lock before us
            except (OSError, ValueError) as e:
                log.error("unreadable spool file %s (%s); moved aside", path, e)
                _move_aside(path)
                continue
            try:
                session = record(item)
            except InvalidInput as e:
                log.warning("spooled %s payload dropped: %s", item.event, e)
            except StoreError as e:
                if e.reason == "busy":
                    log.info("spool replay paused, database still busy: %s", e)
                    break
                log.error("spooled %s payload could not be recorded (%s); moved aside to %s",
                          item.event, e, path.with_suffix(".bad"))
                _move_aside(path)
                continue
            else:
                if session and session not in touched:
                    touched.append(session)
            path.unlink(missing_ok=True)
    return touched
