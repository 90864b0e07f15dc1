"""Which processes are ours, and ending them without ever hitting someone else's.

A pid alone proves nothing: pids are reused. A worker is "provably ours" when
its pid file's pid is alive with the *same create time* and a command line of
``-m claude_memoir.worker --session ID``. An agent CLI is ours when it carries
``MEMOIR_WORKER=1`` and runs in our agent directory. Ending escalates:
SIGTERM to the worker's process group (the worker and its agent CLI), a short
wait, then SIGKILL.

psutil is imported inside the functions: hooks import this module only on the
rare path of a hung worker, never at start-up.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from .log import get_logger
from .paths import agent_dir, pid_path
from .values import Record

log = get_logger(__name__)

# Create times from psutil are floats rounded by the OS clock tick.
_TIME_SLACK = 0.05


class PidRecord(Record):
    """What a worker writes to its pid file."""

    pid: int
    create_time: float
    session_id: str
    agent_pids: tuple[int, ...] = ()


def write_pid_file(path: Path, record: PidRecord) -> None:
    """Write a pid file atomically (temp + rename), mode 0600."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"pid": record.pid, "create_time": record.create_time,
                   "session_id": record.session_id, "agent_pids": list(record.agent_pids)}, fh)
    os.replace(tmp, path)


def read_pid_file(path: str | os.PathLike[str]) -> PidRecord | None:
    """The record in a pid file, or None if missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        record = PidRecord(pid=int(data["pid"]), create_time=float(data["create_time"]),
                           session_id=str(data["session_id"]),
                           agent_pids=tuple(int(p) for p in data.get("agent_pids", [])))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    # A pid of 0 or below would address a process group, not a process.
    if record.pid <= 0 or any(p <= 0 for p in record.agent_pids):
        return None
    return record


def _process(pid: int) -> Any | None:
    """The psutil.Process for ``pid``, or None if there is none.

    Every lookup goes through here: a pid of 0 or below addresses a process
    group, not a process, and psutil raises ValueError rather than
    psutil.Error for it (a corrupt pid file once crashed cleanup that way).
    """
    import psutil

    if pid <= 0:
        return None
    try:
        return psutil.Process(pid)
    except (psutil.Error, ValueError):
        return None


def create_time(pid: int) -> float | None:
    """A process's create time, or None if it does not exist."""
    import psutil

    proc = _process(pid)
    try:
        return float(proc.create_time()) if proc else None
    except psutil.Error:
        return None


def is_alive(pid: int, started: float | None) -> bool:
    """True if ``pid`` runs and, when ``started`` is given, is the same process."""
    import psutil

    proc = _process(pid)
    if proc is None:
        return False
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(proc.create_time() - started) <= _TIME_SLACK
    except psutil.Error:
        return False


def our_worker(record: PidRecord) -> Any | None:
    """The psutil.Process of a pid file's worker if it is provably ours, else None."""
    import psutil

    proc = _process(record.pid)
    if proc is None:
        return None
    try:
        if abs(proc.create_time() - record.create_time) > _TIME_SLACK:
            return None  # the pid was reused by another process
        cmdline = proc.cmdline()
    except psutil.Error:
        return None
    # Whole arguments, not substrings: "-m claude_memoir.worker --session ID".
    if "claude_memoir.worker" not in cmdline or record.session_id not in cmdline:
        return None
    if proc.uids().real != os.getuid():
        return None
    return proc


def end_process_group(proc: Any, grace: float = 0.3) -> bool:
    """SIGTERM the process's group (it leads one), wait ``grace``, then SIGKILL.

    Workers start in their own session, so their group holds exactly the
    worker and its agent CLI. A process that does not lead its group gets the
    signals alone. Returns True if it is gone.
    """
    pid = proc.pid
    try:
        leads = os.getpgid(pid) == pid
    except OSError:
        return True

    def send(sig: int) -> None:
        try:
            if leads:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass

    # Poll rather than proc.wait(): the process is not our child, and once
    # dead it may linger as a zombie until its new parent reaps it, which
    # wait() would count as alive for its whole timeout.
    send(signal.SIGTERM)
    if wait_gone(pid, grace):
        return True
    # A hung (or stopped) worker cannot act on SIGTERM.
    send(signal.SIGKILL)
    return wait_gone(pid, 1.0)


def end_worker(home: str | os.PathLike[str], session_id: str, grace: float = 0.3) -> int | None:
    """End the session's worker if it is provably ours; return its pid if ended."""
    record = read_pid_file(pid_path(home, session_id))
    if record is None:
        return None
    proc = our_worker(record)
    if proc is None:
        log.info("pid file of %s names pid %d, which is not our worker; left alone",
                 session_id, record.pid)
        return None
    log.warning("ending unresponsive worker %d of session %s", record.pid, session_id)
    end_process_group(proc, grace)
    for pid in record.agent_pids:  # in case one left the group
        _end_agent(home, pid)
    return record.pid


def _is_our_agent(proc: Any, home: str | os.PathLike[str]) -> bool:
    import psutil

    try:
        if proc.uids().real != os.getuid():
            return False
        if proc.environ().get("MEMOIR_WORKER") != "1":
            return False
        cwd = proc.cwd()
    except psutil.Error:
        return False
    return bool(os.path.realpath(cwd) == os.path.realpath(agent_dir(home)))


def _end_agent(home: str | os.PathLike[str], pid: int) -> None:
    proc = _process(pid)
    if proc is not None and _is_our_agent(proc, home):
        end_process_group(proc, 0.3)


def orphaned_agents(home: str | os.PathLike[str]) -> list[Any]:
    """Agent CLIs of ours whose worker is gone (reparented, or parent not a worker)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "ppid"]):
        if proc.pid == os.getpid() or not _is_our_agent(proc, home):
            continue
        try:
            parent = proc.parent()
            parent_cmd = " ".join(parent.cmdline()) if parent else ""
        except psutil.Error:
            parent_cmd = ""
        if "claude_memoir.worker" not in parent_cmd:
            found.append(proc)
    return found


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` for ``pid`` to exit (a zombie counts as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid, None):
            return True
        time.sleep(0.02)
    return not is_alive(pid, None)
