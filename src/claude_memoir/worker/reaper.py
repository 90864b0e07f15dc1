"""The reaper: ``python -m claude_memoir.worker.reaper SESSION``.

A hook whose worker accepted a message but did not answer in time starts this
in the background (``launch.spawn_reaper``): it pings with the patience no hook
can afford and, only if the worker stays silent and is provably ours, ends it,
removes its socket and starts a fresh worker for whatever is pending.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Literal

from .. import ipc, launch, procs
from ..config import load_settings
from ..errors import IPCError
from ..log import get_logger, setup_logging
from ..paths import ensure_private_dir, run_dir, socket_path, validate_session_id
from ..store import Store
from .lock import AlreadyRunning, SessionLock

log = get_logger(__name__)

ReaperOutcome = Literal["answered", "busy", "absent", "unclear", "unidentified", "ended"]

# Seconds the reaper waits for a ping before it calls a worker hung: far more
# than a live worker needs (~1 ms, ~10 ms on a loaded machine), and more than
# any hook could wait.
REAPER_WAIT = 1.0


def end_unresponsive(home: str | os.PathLike[str], session_id: str,
                     wait: float = REAPER_WAIT) -> ReaperOutcome:
    """End the session's worker if it does not answer a ping within ``wait`` s, twice.

    Returns ``answered`` (alive, left alone), ``busy`` (another reaper is at
    it), ``absent`` (no worker listens), ``unclear`` (the socket failed in
    another way than silence; left alone), ``unidentified`` (silent, but no
    process of ours could be named: left alone, socket kept) or ``ended``. A worker is ended only if
    provably ours (pid file, create time, command line, uid); then its socket
    is removed, a session whose end was requested is marked failed
    (``worker-unresponsive``), and a fresh worker is started if work is left,
    so nothing pending is dropped.
    """
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
        if ended is None:
            # Not provably ours (no pid file yet, a reused pid): its socket
            # may belong to a live worker still starting up. Unlinking it would
            # leave that worker running but unreachable, and every later hook
            # spawning one more; leave both alone.
            log.warning("session %s: worker did not answer for %.1fs, but no worker of ours "
                        "could be identified; left alone", session_id, 2 * wait)
            return "unidentified"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sock)
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
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock.path)
        lock.release()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the reaper: ``python -m claude_memoir.worker.reaper SESSION``."""
    args = sys.argv[1:] if argv is None else argv
    settings = load_settings()
    setup_logging(settings.home, settings.log_level, settings.log_max_bytes)
    os.chdir(settings.home)  # started by posix_spawn in the hook's cwd; hold no project dir
    try:
        outcome = end_unresponsive(settings.home, args[0] if args else "")
    except Exception:  # a process edge: log with the reason, never a traceback on a tty
        log.exception("reaper for session %r failed", (args or [""])[0][:80])
        return 1
    log.info("reaper for session %s: %s", args[0], outcome)
    return 0




if __name__ == "__main__":
    sys.exit(main())
