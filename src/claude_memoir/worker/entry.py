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

import os
import sys

from ..config import load_settings
from ..errors import InvalidInput
from ..log import get_logger, setup_hook_logging
from ..paths import ensure_private_dir, lock_path, run_dir, socket_path, validate_session_id
from .listener import listen_on
from .lock import AlreadyRunning, SessionLock, acquire_or_defer

log = get_logger("claude_memoir.worker")


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
        try:
            # psutil first: every worker needs it (parent watch, agent pids),
            # and a Python without it must say so where `memoir status` looks.
            import asyncio

            import psutil  # noqa: F401

            from ..log import setup_logging
            from .service import Worker, serve
        except ImportError as e:
            log.error("worker for session %s cannot start: %s (python %s)", session_id, e,
                      sys.executable)
            _record_start_failure(settings.home, "missing-dependency",
                                  f"{e} (python {sys.executable})", session_id)
            return 1
        setup_logging(settings.home, settings.log_level)
        return asyncio.run(serve(Worker(settings, session_id, listener=listener)))
    except AlreadyRunning as e:
        log.info("session %s: %s; exiting", session_id, e)
        return 0
    except Exception as e:
        log.exception("worker for session %s crashed", session_id)
        _record_start_failure(settings.home, "crashed", f"{type(e).__name__}: {e}", session_id)
        return 1
    finally:
        lock.release()


def _record_start_failure(home: str, reason: str, message: str, session_id: str) -> None:
    """Record a worker that could not run where `memoir status`/`doctor` see it."""
    try:
        from ..store import Store

        with Store.open(home) as store:
            store.record_failure("worker", reason, message, session_id)
    except Exception as e:  # the process edge: the log line above stays
        log.error("cannot record the worker's failure: %s", e)
