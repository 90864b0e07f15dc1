"""Starting a session's worker and waking it, from a hook.

The database, not the socket, carries the work: events, finished prompts and end
requests are committed before anyone is notified. A notification is only a
wake-up, so when no worker answers, spawning one is enough: it drains whatever is
pending when it starts. Standard library only (hooks import this).
"""

from __future__ import annotations

import os
import sys
import time

from . import ipc
from .errors import IPCError
from .log import get_logger
from .paths import ensure_private_dir, run_dir, socket_path

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs a hook ~3 ms of imports
    from typing import Literal

    Outcome = Literal["acked", "spawned", "not-started", "absent", "refused", "unanswered"]

log = get_logger(__name__)

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


def _spawn_detached(argv: list[str], what: str) -> int | None:
    """Start ``argv`` in a new process session with /dev/null stdio; return its pid.

    New session and no inherited stdio: a child holding the hook's stdout open
    makes Claude Code wait for it, and a child in the hook's process group
    would get the signals meant for the hook. ``os.posix_spawn`` rather than
    ``subprocess``: importing subprocess costs a hook ~6 ms, and the
    descriptors Python opens are close-on-exec already. The child chdirs
    itself (posix_spawn has no cwd).
    """
    env = worker_env()
    try:
        try:
            actions = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
            pid = os.posix_spawn(argv[0], argv, env, file_actions=actions, setsid=True)
        except (AttributeError, NotImplementedError):  # no posix_spawn setsid here
            import subprocess

            pid = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, close_fds=True,
                                   start_new_session=True, env=env).pid
    except OSError as e:
        log.error("cannot spawn %s: %s", what, e)
        return None
    log.info("spawned %s: pid %d", what, pid)
    return pid


def worker_python(home: str | os.PathLike[str]) -> str | None:
    """The interpreter a worker runs with; None while the plugin's is being installed.

    This hook's own interpreter, except in the plugin form (without
    ``MEMOIR_PYTHON``): there the hooks may run on a bare ``python3`` and the
    worker uses the plugin's venv, installed in the background on first need
    (``bootstrap``). Until it is ready no worker is started: the work waits
    in SQLite and the installer starts the workers when it is done.
    """
    if not os.environ.get("CLAUDE_PLUGIN_DATA"):
        return sys.executable  # not the plugin form: no import at all
    from . import bootstrap

    plugin = bootstrap.plugin_from_env()
    if plugin is None:
        return sys.executable
    ready = bootstrap.ready_python(plugin)
    if ready is None and bootstrap.start(plugin, home):
        log.info("installing the plugin's worker dependencies in the background; "
                 "events queue meanwhile")
    return ready


def spawn_worker(home: str | os.PathLike[str], session_id: str,
                 python: str | None = None) -> int | None:
    """Start ``python -m claude_memoir.worker --session ID`` detached; return its pid.

    The worker's own lock decides which of several racing spawns survives, so
    no check is needed here. None also when no interpreter is ready yet
    (:func:`worker_python`).
    """
    python = python or worker_python(home)
    if python is None:
        return None
    ensure_private_dir(run_dir(home))
    return _spawn_detached(
        [python, "-m", "claude_memoir.worker", "--session", session_id],
        f"worker for session {session_id}")


def spawn_reaper(home: str | os.PathLike[str], session_id: str) -> int | None:
    """Start ``python -m claude_memoir.worker.reaper SESSION`` detached; return its pid.

    A worker whose socket accepts but does not answer is either busy or hung
    (SIGSTOPped, deadlocked). Telling which takes a second of patience that
    no hook can afford, so a reaper does it in the background: it pings with a
    real timeout and, if still silent, ends the worker (only if provably ours)
    and starts a fresh one for whatever is pending. Concurrent reapers of one
    session exit at once (a lock).
    """
    python = worker_python(home)
    if python is None:
        return None
    ensure_private_dir(run_dir(home))
    return _spawn_detached([python, "-m", "claude_memoir.worker.reaper", session_id],
                           f"reaper for session {session_id}")


def notify(
    home: str | os.PathLike[str],
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
    (it drains everything pending, no message needed). ``not-started``: there
    was none and none could be started yet (the plugin's dependencies are
    being installed; the installer starts it). ``absent``: none, and
    ``spawn`` was False. ``refused``: the worker answered with an error.
    ``unanswered``: a worker accepted the connection but did not answer within
    ``timeout``; a reaper is started to find out whether it hangs (see
    :func:`spawn_reaper`). A transient socket error (a full listen backlog
    in a burst, a worker closing mid-answer) is retried with exponential
    backoff (100 ms doubling, capped at 400 ms); waiting longer on a silent
    worker is not, since the work is in SQLite already and the worker reads
    it from there on its next tick whatever happens to this message.
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
                # None: the spawn failed, or the plugin's worker environment is
                # still being installed; the work waits in SQLite either way.
                return "spawned" if spawn_worker(home, session_id) else "not-started"
            if e.reason == "timeout":
                log.info("worker of %s did not answer within %.3fs; a reaper checks on it",
                            session_id, timeout)
                spawn_reaper(home, session_id)
                return "unanswered"
            log.info("worker of %s: %s (attempt %d)", session_id, e, attempt + 1)
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
    spawn_reaper(home, session_id)
    return "unanswered"
