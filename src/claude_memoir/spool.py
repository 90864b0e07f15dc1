"""Payloads a hook could not record because the database stayed locked.

A hook waits on a locked database only a bounded time (it holds up Claude
Code). Past that it writes the payload here, atomically and privately, and
returns; the worker replays the spool into SQLite on its next tick. So a
locked database delays a record but never loses it.

    $MEMOIR_HOME/spool/<time_ns>-<pid>.json   {"event": ..., "payload": ...}

Standard library only. Hooks import this only when the database stayed locked
(pathlib is fine here, off the hot path).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import InvalidInput, StoreError
from .log import get_logger
from .paths import ensure_private_dir

log = get_logger(__name__)


def spool_dir(home: str | os.PathLike[str]) -> Path:
    """Where spooled payloads wait."""
    return Path(home) / "spool"


def write(home: str | os.PathLike[str], event: str, payload: dict[str, Any]) -> Path:
    """Spool one hook payload (temp file + fsync + rename, mode 0600)."""
    directory = Path(ensure_private_dir(spool_dir(home)))
    name = f"{time.time_ns():020d}-{os.getpid()}"
    tmp = directory / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"event": event, "payload": payload}, fh, ensure_ascii=False)
        fh.flush()
        os.fsync(fh.fileno())
    path = directory / f"{name}.json"
    os.replace(tmp, path)
    log.warning("database busy: %s payload spooled to %s", event, path)
    return path


def pending(home: str | os.PathLike[str]) -> list[Path]:
    """Spooled payloads, oldest first."""
    directory = spool_dir(home)
    try:
        return sorted(p for p in directory.iterdir() if p.suffix == ".json")
    except FileNotFoundError:
        return []


def replay(home: str | os.PathLike[str],
           record: Callable[[str, dict[str, Any]], str | None]) -> list[str]:
    """Feed spooled payloads to ``record(event, payload)`` in order; return touched sessions.

    ``record`` returns the session id it wrote to (or None). A payload that
    is invalid is dropped with a log line; one that cannot be read is moved
    aside (``.bad``) for inspection, as is one the store refuses for another
    reason; a still-busy database stops the replay (the files stay for the
    next try).
    """
    touched: list[str] = []
    for path in pending(home):
        try:
            item = json.loads(path.read_text(encoding="utf-8"))
            event, payload = item["event"], item["payload"]
            if not isinstance(event, str) or not isinstance(payload, dict):
                raise ValueError("not an event and a payload")
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.error("unreadable spool file %s (%s); moved aside", path, e)
            os.replace(path, path.with_suffix(".bad"))
            continue
        try:
            session = record(event, payload)
        except InvalidInput as e:
            log.warning("spooled %s payload dropped: %s", event, e)
        except StoreError as e:
            if e.reason == "busy":
                log.info("spool replay paused, database still busy: %s", e)
                break
            log.error("spooled %s payload could not be recorded (%s); moved aside to %s",
                      event, e, path.with_suffix(".bad"))
            os.replace(path, path.with_suffix(".bad"))
            continue
        else:
            if session and session not in touched:
                touched.append(session)
        path.unlink(missing_ok=True)
    return touched
