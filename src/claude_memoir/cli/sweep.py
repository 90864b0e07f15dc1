"""Maintenance by hand: ``memoir cleanup-sessions [--max-age 24h] [--dry-run] [--json]``.

What the hooks and watchdogs normally do, for whatever slipped through (a
machine that slept through its watchdogs, a kill -9 of everything):

* a pid file whose process is not our worker any more → removed;
* a worker that is provably ours but does not answer a ping → ended
  (its process group: the worker and its agent CLI), pid file and socket removed;
* a socket nobody listens on → removed;
* an agent CLI of ours whose worker is gone → ended;
* an active session untouched for longer than ``max_age`` and with no live
  worker → marked failed (reason ``stale``).

Then the retention rules (:func:`claude_memoir.retention.sweep`): event bodies
past MEMOIR_KEEP_EVENTS_DAYS, rejected spool files and damaged databases past
MEMOIR_KEEP_REJECTED_DAYS, and lock files nobody holds (removed under their
flock; a starting worker re-checks the file it locked, so it never runs
beside another one).

The reaper a hook starts when a worker accepted its message but did not answer
in time is :mod:`claude_memoir.worker.reaper`.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import TypedDict

from .. import ipc, retention
from ..config import load_settings
from ..errors import InvalidInput, IPCError
from ..log import get_logger
from ..paths import run_dir, socket_path
from ..store import Store

log = get_logger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])", re.ASCII)
# Longer than any session could be; past it time arithmetic overflows.
_MAX_DURATION = 100 * 365 * 86400.0


class CleanupReport(TypedDict):
    """What ``cleanup`` did (or, with ``dry_run``, would do). Keys documented in README."""

    dry_run: bool
    max_age_seconds: float
    sessions_failed: list[str]
    workers_ended: list[int]
    agents_ended: list[int]
    sockets_removed: list[str]
    pid_files_removed: list[str]
    live_workers: list[int]
    event_bodies_pruned: int
    rejected_removed: list[str]
    lock_files_removed: list[str]
    agent_transcripts_removed: list[str]
    search_index_merge_steps: int


def parse_duration(text: str) -> float:
    """``90m``, ``24h``, ``7d``, ``2w``, ``30s`` → seconds; anything else raises InvalidInput."""
    match = _DURATION.fullmatch(text.strip().lower()) if isinstance(text, str) else None
    if not match:
        raise InvalidInput(
            f"invalid duration {text!r}: use a number and a unit, e.g. 90m, 24h, 7d",
            reason="bad-duration")
    value = float(match.group(1)) * _UNITS[match.group(2)]
    if not 0 < value <= _MAX_DURATION:
        raise InvalidInput(f"invalid duration {text!r}: must be positive and at most 100 years",
                           reason="bad-duration")
    return value


def _answers(path: Path) -> bool:
    try:
        return bool(ipc.request(path, {"type": "ping"}, timeout=1.0).get("ok"))
    except IPCError:
        return False


def _remove(path: Path, dry_run: bool) -> bool:
    if dry_run:
        return True
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def cleanup(home: str | os.PathLike[str], max_age: float, *,
            dry_run: bool = False) -> CleanupReport:
    """Sweep ``home`` as described in the module docstring; return the report."""
    from .. import procs

    # Computed first: nothing may fail half-way through a sweep that has
    # already ended processes and removed files.
    cutoff = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - max_age))
    report: CleanupReport = {
        "dry_run": dry_run, "max_age_seconds": max_age, "sessions_failed": [],
        "workers_ended": [], "agents_ended": [], "sockets_removed": [],
        "pid_files_removed": [], "live_workers": [], "event_bodies_pruned": 0,
        "rejected_removed": [], "lock_files_removed": [], "agent_transcripts_removed": [],
        "search_index_merge_steps": 0,
    }
    live_sessions: set[str] = set()
    run = Path(run_dir(home))
    for pid_file in sorted(run.glob("*.pid")) if run.exists() else []:
        record = procs.read_pid_file(pid_file)
        proc = procs.our_worker(record) if record else None
        if record is None or proc is None:
            if _remove(pid_file, dry_run):
                report["pid_files_removed"].append(str(pid_file))
            continue
        sock = Path(socket_path(home, record.session_id))
        if _answers(sock):
            live_sessions.add(record.session_id)
            report["live_workers"].append(record.pid)
            continue
        log.warning("worker %d of %s does not answer; ending it", record.pid,
                    record.session_id)
        if not dry_run:
            procs.end_process_group(proc)
        report["workers_ended"].append(record.pid)
        if _remove(pid_file, dry_run):
            report["pid_files_removed"].append(str(pid_file))
        if sock.exists() and _remove(sock, dry_run):
            report["sockets_removed"].append(str(sock))

    socket_dirs = {run}
    with Store.open(home) as store:
        sessions = store.session_stats()
    for stats in sessions:
        socket_dirs.add(Path(socket_path(home, stats.session.claude_session_id)).parent)
    for directory in socket_dirs:
        for sock in sorted(directory.glob("*.sock")) if directory.exists() else []:
            if str(sock) in report["sockets_removed"] or ipc.listening(sock):
                continue
            if _remove(sock, dry_run):
                report["sockets_removed"].append(str(sock))

    for proc in procs.orphaned_agents(home):
        if not dry_run:
            procs.end_process_group(proc)
        report["agents_ended"].append(proc.pid)

    with Store.open(home) as store:
        for stats in sessions:
            s = stats.session
            if s.status != "active" or s.updated_at >= cutoff:
                continue
            if s.claude_session_id in live_sessions:
                continue
            if not dry_run:
                store.set_status(s.id, "failed", "stale", only_if="active")
                store.set_worker(s.id, None, None)
            report["sessions_failed"].append(s.claude_session_id)
        kept = retention.sweep(load_settings(), store, dry_run=dry_run)
    report.update(kept)  # type: ignore[typeddict-item]
    return report


