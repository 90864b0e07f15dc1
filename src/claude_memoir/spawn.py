"""Starting a detached process (worker, reaper, plugin installer) from a hook.

Its own light module because both ``launch`` (workers and reapers) and
``bootstrap`` (the plugin's installer, which then starts workers) spawn, and
neither may import the other.
"""

from __future__ import annotations

import os

from .log import get_logger

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


def spawn_detached(argv: list[str], what: str) -> int | None:
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
