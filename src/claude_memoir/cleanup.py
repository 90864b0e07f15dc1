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

Lock files are left alone on purpose: unlinking one that a starting worker has
just opened could let two workers run for one session.

``python -m claude_memoir.cleanup SESSION`` is the reaper a hook starts when a
worker accepted its message but did not answer in time (:func:`end_unresponsive`).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import TypedDict

from . import ipc
from .errors import InvalidInput, IPCError
from .paths import run_dir, socket_path, validate_session_id
from .store import Store

log = logging.getLogger(__name__)

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


# Seconds the reaper waits for a ping before it calls a worker hung: far more
# than a live worker needs (~1 ms, ~10 ms on a loaded machine), and more than
# any hook could wait.
REAPER_WAIT = 1.0


def end_unresponsive(home: str | os.PathLike[str], session_id: str,
                     wait: float = REAPER_WAIT) -> str:
    """End the session's worker if it does not answer a ping within ``wait`` s, twice.

    Returns ``answered`` (alive, left alone), ``busy`` (another reaper is at
    it), ``absent`` (no worker listens), ``unclear`` (the socket failed in
    another way than silence; left alone) or ``ended``. A worker is ended only if
    provably ours (pid file, create time, command line, uid); then its socket
    is removed, a session whose end was requested is marked failed
    (``worker-unresponsive``), and a fresh worker is started if work is left,
    so nothing pending is dropped.
    """
    from . import launch, procs
    from .paths import ensure_private_dir
    from .worker import AlreadyRunning, SessionLock

    session_id = validate_session_id(session_id)
    sock = socket_path(home, session_id)
    if not os.path.exists(sock):
        return "absent"  # gone meanwhile: nothing to check, and no file to leave behind
    ensure_private_dir(run_dir(home))
    lock = SessionLock(os.path.join(run_dir(home), f"{Path(sock).stem}.reap"))
    try:
        lock.acquire()
    except AlreadyRunning:
        return "busy"
    try:
        for _ in range(2):
            try:
                if ipc.request(sock, {"type": "ping"}, timeout=wait).get("ok") is not None:
                    return "answered"
            except IPCError as e:
                if e.reason in {"absent", "refused"}:
                    return "absent"
                if e.reason != "timeout":
                    # Closed on us, or another socket error: not a hang, and a
                    # worker finishing its session must not be killed for it.
                    return "unclear"
        ended = procs.end_worker(home, session_id)
        try:
            os.unlink(sock)
        except FileNotFoundError:
            pass
        with Store.open(home) as store:
            session = store.get_session(session_id)
            has_work = False
            if session is not None:
                if session.end_requested_at:
                    store.set_status(session.id, "failed", "worker-unresponsive")
                store.set_worker(session.id, None, None)
                # Pending events or summaries, or a session still going on
                # (its next events need a worker anyway).
                has_work = bool(store.count_pending(session.id)
                                or store.prompts_to_summarize(session.id, include_open=True)
                                or not session.end_requested_at)
        log.warning("session %s: worker did not answer for %.1fs; ended pid %s%s", session_id,
                    2 * wait, ended, ", session marked failed" if session is not None
                    and session.end_requested_at else "")
        if has_work:
            launch.spawn_worker(home, session_id)
        return "ended"
    finally:
        # Removed while still held: a reaper that opened it meanwhile fails its
        # flock and leaves, so at worst two reapers overlap, harmlessly.
        try:
            os.unlink(lock.path)
        except FileNotFoundError:
            pass
        lock.release()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the reaper: ``python -m claude_memoir.cleanup SESSION``."""
    from .config import load_settings
    from .log import setup_logging

    args = sys.argv[1:] if argv is None else argv
    settings = load_settings()
    setup_logging(settings.home, settings.log_level)
    os.chdir(settings.home)  # started by posix_spawn in the hook's cwd; hold no project dir
    try:
        outcome = end_unresponsive(settings.home, args[0] if args else "")
    except Exception:  # a process edge: log with the reason, never a traceback on a tty
        log.exception("reaper for session %r failed", (args or [""])[0][:80])
        return 1
    log.info("reaper for session %s: %s", args[0], outcome)
    return 0


def _remove(path: Path, dry_run: bool) -> bool:
    if dry_run:
        return True
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def cleanup(home: Path, max_age: float, *, dry_run: bool = False) -> CleanupReport:
    """Sweep ``home`` as described in the module docstring; return the report."""
    from . import procs

    # Computed first: nothing may fail half-way through a sweep that has
    # already ended processes and removed files.
    cutoff = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - max_age))
    report: CleanupReport = {
        "dry_run": dry_run, "max_age_seconds": max_age, "sessions_failed": [],
        "workers_ended": [], "agents_ended": [], "sockets_removed": [],
        "pid_files_removed": [], "live_workers": [],
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
    return report


if __name__ == "__main__":
    sys.exit(main())
