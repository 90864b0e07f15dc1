"""Starting a session's worker and waking it, from a hook.

The database, not the socket, carries the work: events, finished prompts and end
requests are committed before anyone is notified. A notification is only a
wake-up, so when no worker answers, spawning one is enough: it drains whatever is
pending when it starts. Standard library only (hooks import this).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Literal

from . import ipc
from .errors import IPCError
from .paths import ensure_private_dir, run_dir, socket_path

log = logging.getLogger(__name__)

# Variables of the user's Claude Code session that must not leak into the
# worker's agent: they would make the agent's CLI believe it is a child of the
# user's session (nested-session checks, the user's messaging socket).
_SCRUB = (
    "CLAUDECODE",
    "CLAUDE_CODE_ENTRYPOINT",
    "CLAUDE_CODE_SESSION_ID",
    "CLAUDE_CODE_MESSAGING_SOCKET",
    "CLAUDE_CODE_MESSAGING_TOKEN",
    "CLAUDE_CODE_CHILD_SESSION",
    "CLAUDE_CODE_CHILD_NOTES_DIR",
    "CLAUDE_CODE_SESSION_ATTENDED",
    "CLAUDE_ENV_FILE",
    "CLAUDE_PROJECT_DIR",
    "CLAUDE_PLUGIN_ROOT",
    "CLAUDE_PLUGIN_DATA",
)


def worker_env() -> dict[str, str]:
    """The environment a worker starts with.

    Inherits the hook's (so ``ANTHROPIC_BASE_URL``, credentials and proxies of
    the user's session apply to the agent too), records Claude Code's pid for the
    parent watch, and drops the variables that tie a process to that session.
    """
    env = dict(os.environ)
    if "CLAUDE_PID" in env:
        env["MEMOIR_PARENT_PID"] = env["CLAUDE_PID"]
    for name in _SCRUB:
        env.pop(name, None)
    env.pop("CLAUDE_PID", None)
    return env


def spawn_worker(home: Path, session_id: str) -> int | None:
    """Start ``python -m claude_memoir.worker --session ID`` detached; return its pid.

    New process session and no inherited stdio: a child holding the hook's
    stdout open makes Claude Code wait for it. The worker's own lock decides
    which of several racing spawns survives, so no check is needed here.
    """
    import subprocess  # only on the (rare) spawn path: saves hooks ~3 ms

    ensure_private_dir(run_dir(home))
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "claude_memoir.worker", "--session", session_id],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            start_new_session=True,
            cwd=str(home),
            env=worker_env(),
        )
    except OSError as e:
        log.error("cannot spawn worker for session %s: %s", session_id, e)
        return None
    log.info("spawned worker pid %d for session %s", proc.pid, session_id)
    return proc.pid


Outcome = Literal["acked", "spawned", "absent", "refused", "unanswered"]


def notify(
    home: Path,
    session_id: str,
    message: ipc.Request,
    *,
    attempts: int = 4,
    first_delay: float = 0.1,
    max_delay: float = 0.4,
    timeout: float = 0.25,
    spawn: bool = True,
) -> Outcome:
    """Wake the session's worker and say how it went.

    ``acked``: the worker took it. ``spawned``: there was none, one was started
    (it drains everything pending, no message needed). ``absent``: none, and
    ``spawn`` was False. ``refused``: the worker answered with an error.
    ``unanswered``: a socket exists but nothing answered in time, after
    retries with exponential backoff (100 ms doubling, capped at 400 ms); the
    worst case is about ``attempts * timeout + 0.7 s`` ≈ 1.7 s. Whatever the
    outcome nothing is lost: the work is already in SQLite.
    """
    message = dict(message)  # type: ignore[assignment]
    claude_pid = os.environ.get("CLAUDE_PID", "")
    if claude_pid.isdigit():
        message["claude_pid"] = int(claude_pid)
    path = socket_path(home, session_id)
    delay = first_delay
    for attempt in range(attempts):
        try:
            ack = ipc.request(path, message, timeout=timeout)
        except IPCError as e:
            if e.reason in {"absent", "refused"}:
                if not spawn:
                    return "absent"
                spawn_worker(home, session_id)
                return "spawned"
            log.info("worker of %s did not answer (attempt %d): %s",
                     session_id, attempt + 1, e)
        else:
            if ack.get("ok"):
                return "acked"
            log.warning("worker of %s refused %s: %s", session_id,
                        message.get("type"), ack.get("error"))
            return "refused"
        if attempt + 1 < attempts:
            time.sleep(delay)
            delay = min(delay * 2, max_delay)
    log.warning("worker of %s unreachable after %d attempts; work stays queued",
                session_id, attempts)
    return "unanswered"
