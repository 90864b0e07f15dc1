"""Retention: what keeps ``$MEMOIR_HOME`` from growing without bound.

=========================  =============================================  ==================
what                       rule                                           who
=========================  =============================================  ==================
raw tool event bodies      emptied MEMOIR_KEEP_EVENTS_DAYS after they     :func:`sweep`
                           were processed (observations, summaries kept)
events of one session      at most MEMOIR_MAX_EVENTS keep their bodies;   the store, as each
                           the oldest make room for the newest            event is queued
memoir.log                 rotated to memoir.log.1 at MEMOIR_LOG_MAX_     whoever writes it
                           BYTES (one generation kept)                    (:mod:`.log`)
rejected spool files,      deleted MEMOIR_KEEP_REJECTED_DAYS after they   :func:`sweep`
damaged databases aside    were set aside
lock files                 removed by a worker as it exits; leftovers     worker,
                           (a killed worker's) when nobody holds them     :func:`sweep`
the agent's transcripts    removed when its session ends; others once     worker,
                           no session may resume them (a day idle)        :func:`sweep`
                           (:mod:`.agent.transcripts`)
search index segments      merged level by level, at most one left per    :func:`sweep`,
                           level (short steps, SEARCH_MERGE_BUDGET         worker as it
                           seconds at most)                               exits
=========================  =============================================  ==================

:func:`sweep` runs when a worker finishes its session (so it happens for a
user who never types a command) and in ``memoir cleanup-sessions``.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import TypedDict

from . import spool
from .agent.transcripts import prune_transcripts
from .config import Settings
from .log import get_logger
from .paths import db_path, log_dir, run_dir
from .store import Store
from .worker.lock import remove_lock_file

log = get_logger(__name__)

DAY = 86400.0
#: Seconds a sweep spends merging the search index's segments (a merge cut
#: short resumes at the next sweep): ~1 s of merging brought a
#: 200,000-observation index from 18 segments to 3, and the sweep after a
#: session usually merges a few small ones in milliseconds.
SEARCH_MERGE_BUDGET = 3.0


class RetentionReport(TypedDict):
    """What one sweep did (keys documented in README, ``cleanup-sessions --json``)."""

    event_bodies_pruned: int
    rejected_removed: list[str]
    lock_files_removed: list[str]
    agent_transcripts_removed: list[str]
    search_index_merge_steps: int


class Usage(TypedDict):
    """What ``$MEMOIR_HOME`` holds on disk, in bytes (``memoir status``)."""

    database_bytes: int
    database_free_bytes: int
    log_bytes: int
    spool_files: int
    spool_bytes: int
    rejected_files: int


def quarantined(home: str | os.PathLike[str]) -> list[Path]:
    """Damaged databases moved aside (``memoir.db.corrupt-*``, without their -wal/-shm)."""
    return sorted(p for p in Path(home).glob("memoir.db.corrupt-*")
                  if not p.name.endswith(("-wal", "-shm")))


def _older_than(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


def prune_rejected(home: str | os.PathLike[str], keep_days: float, *,
                   dry_run: bool = False) -> list[str]:
    """Delete rejected spool files and damaged databases set aside over ``keep_days`` ago."""
    if keep_days <= 0:
        return []
    cutoff = time.time() - keep_days * DAY
    removed = []
    for path in [*spool.rejected(home), *quarantined(home)]:
        if not _older_than(path, cutoff):
            continue
        companions = [Path(f"{path}{s}") for s in ("-wal", "-shm")] \
            if path.name.startswith("memoir.db.corrupt-") else []
        if not dry_run:
            for victim in (path, *companions):
                with contextlib.suppress(FileNotFoundError):
                    victim.unlink()
        removed.append(str(path))
    if removed:
        log.info("retention: removed %d rejected spool file(s) / damaged database(s) older "
                 "than %g days", len(removed), keep_days)
    return removed


def prune_spool_temp_files(home: str | os.PathLike[str], *, dry_run: bool = False) -> list[str]:
    """Remove half-written spool files (``.*.tmp``) a hook left when it died mid-write.

    A live hook renames its temp file within milliseconds; one an hour old
    was abandoned (its payload never reached the spool proper).
    """
    cutoff = time.time() - 3600
    removed = []
    for path in sorted(spool.spool_dir(home).glob(".*.tmp")):
        if _older_than(path, cutoff):
            if not dry_run:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            removed.append(str(path))
    return removed


def prune_lock_files(home: str | os.PathLike[str], *, dry_run: bool = False) -> list[str]:
    """Remove lock files (``run/*.lock``, ``run/*.reap``) no process holds."""
    run = Path(run_dir(home))
    if not run.exists():
        return []
    removed = []
    for path in sorted([*run.glob("*.lock"), *run.glob("*.reap")]):
        if remove_lock_file(path, dry_run=dry_run):
            removed.append(str(path))
    return removed


def sweep(settings: Settings, store: Store, *, dry_run: bool = False,
          merge_index: bool = True) -> RetentionReport:
    """Apply every retention rule that is not applied on the way (see the module docstring).

    ``merge_index=False`` leaves the search index's merge to the caller: a
    finishing worker runs it once its socket is gone (a resumed session's
    new worker must not find it still answering).
    """
    pruned = 0 if dry_run else store.prune_event_bodies(settings.keep_events_days)
    if pruned:
        log.info("retention: emptied the bodies of %d event(s) processed over %d days ago",
                 pruned, settings.keep_events_days)
    return {
        "event_bodies_pruned": pruned,
        "rejected_removed": prune_rejected(settings.home, settings.keep_rejected_days,
                                           dry_run=dry_run)
        + prune_spool_temp_files(settings.home, dry_run=dry_run),
        "lock_files_removed": prune_lock_files(settings.home, dry_run=dry_run),
        "agent_transcripts_removed": prune_transcripts(
            settings.home, store.resumable_agent_sessions(), dry_run=dry_run),
        # Not retention but upkeep that must run somewhere without a user
        # command: each word recall looks up seeks every segment of the index.
        "search_index_merge_steps": store.merge_search_index(SEARCH_MERGE_BUDGET)
        if merge_index and not dry_run else 0,
    }


def _size(path: str | os.PathLike[str]) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def usage(home: str | os.PathLike[str], store: Store | None = None) -> Usage:
    """Bytes on disk: database (with its WAL), logs, spool."""
    db = db_path(home)
    free = store.storage_sizes()["free_bytes"] if store is not None else 0
    logs = Path(log_dir(home))
    queued = spool.pending(home)
    return {
        "database_bytes": _size(db) + _size(db + "-wal"),
        "database_free_bytes": free,
        "log_bytes": sum(_size(p) for p in logs.glob("memoir.log*")) if logs.exists() else 0,
        "spool_files": len(queued),
        "spool_bytes": sum(_size(p) for p in queued),
        "rejected_files": len(spool.rejected(home)) + len(quarantined(home)),
    }


def human(size: int) -> str:
    """``size`` bytes for people: 512 B, 3.4 KB, 12.0 MB."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
