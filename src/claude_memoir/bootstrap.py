"""The plugin form's worker dependencies, installed once into ``${CLAUDE_PLUGIN_DATA}``.

A plugin user may have nothing but a ``python3`` on PATH. The hooks need only
the standard library, so they run with it; the worker needs claude-agent-sdk
and psutil. Before this, its workers crashed on ``import`` and events stayed
pending forever. Now the first hook that would start a worker finds no ready
environment and starts this module in the background instead:

1. take ``${CLAUDE_PLUGIN_DATA}/bootstrap.lock`` (one install at a time);
2. ``python3 -m venv --clear ${CLAUDE_PLUGIN_DATA}/venv``, then
   ``venv/bin/python -m pip install -r hooks/requirements.txt`` (pip honours the
   user's own pip configuration: index, proxy, ``PIP_*`` variables);
3. write ``venv/.memoir-ready`` (the requirements and the Python it was made
   for) atomically: a venv is ready exactly when that file matches;
4. start a worker for every session that has work waiting.

Meanwhile hooks keep recording into SQLite (the durable queue) and start no
worker. A changed ``requirements.txt`` or a new base Python makes the stamp
stale, so the next hook reinstalls. ``MEMOIR_PYTHON`` bypasses all of this: the
interpreter it names runs the worker as it is. Standard library only: the
hooks import it (only when they would start a worker).
"""

from __future__ import annotations

import os
import sys
import time

from .log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .store import Store

log = get_logger(__name__)

STAMP = ".memoir-ready"
# After a failed install, hooks wait this long before starting another: every
# tool call wants a worker, and without the pause an unreachable index would
# mean a pip run in the background after every tool call.
RETRY_AFTER = 600.0
# pip may download a few hundred MB (the SDK bundles Claude Code): a bound,
# not a hope, so a hung install does not hold the lock forever.
INSTALL_TIMEOUT = 1800.0


class Plugin:
    """Where the plugin lives (``root``) and may keep data (``data``)."""

    __slots__ = ("data", "root")

    def __init__(self, root: str, data: str) -> None:
        self.root = root
        self.data = data

    @property
    def venv(self) -> str:
        return os.path.join(self.data, "venv")

    @property
    def python(self) -> str:
        return os.path.join(self.venv, "bin", "python")

    @property
    def requirements(self) -> str:
        return os.path.join(self.root, "hooks", "requirements.txt")

    @property
    def lock(self) -> str:
        return os.path.join(self.data, "bootstrap.lock")

    @property
    def failed_marker(self) -> str:
        """Exists (its mtime: when) after a failed install; removed by a successful one."""
        return os.path.join(self.data, "bootstrap.failed")


def plugin_from_env() -> Plugin | None:
    """The plugin this hook runs from, if it should use the plugin's own venv.

    None outside the plugin form, and when ``MEMOIR_PYTHON`` names the
    interpreter to use (the override).
    """
    root = os.environ.get("CLAUDE_PLUGIN_ROOT")
    data = os.environ.get("CLAUDE_PLUGIN_DATA")
    if not root or not data or os.environ.get("MEMOIR_PYTHON"):
        return None
    return Plugin(root, data)


def _wanted(plugin: Plugin, base_python: str) -> str | None:
    """The stamp a ready venv carries: requirements + the Python it was built from."""
    try:
        with open(plugin.requirements, encoding="utf-8") as fh:
            requirements = fh.read()
    except OSError as e:
        log.error("plugin requirements %s unreadable: %s", plugin.requirements, e)
        return None
    return f"{requirements.strip()}\n# python {base_python}\n"


def ready_python(plugin: Plugin, base_python: str | None = None) -> str | None:
    """The venv's interpreter if it is installed for the current requirements, else None."""
    wanted = _wanted(plugin, base_python or sys.executable)
    try:
        with open(os.path.join(plugin.venv, STAMP), encoding="utf-8") as fh:
            have = fh.read()
    except OSError:
        return None
    return plugin.python if wanted is not None and have == wanted else None


def _lock(path: str) -> int | None:
    """Take the install lock without waiting; the fd holds it (None: someone else has it)."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def installing(plugin: Plugin) -> bool:
    """True while an install holds the lock."""
    if not os.path.exists(plugin.lock):
        return False
    fd = _lock(plugin.lock)
    if fd is None:
        return True
    os.close(fd)
    return False


def start(plugin: Plugin, home: str | os.PathLike[str]) -> bool:
    """Start the install in the background unless one runs; True if one was started."""
    from .launch import _spawn_detached
    from .paths import ensure_private_dir

    try:
        ensure_private_dir(plugin.data)
        if installing(plugin):
            return False
        try:
            if time.time() - os.stat(plugin.failed_marker).st_mtime < RETRY_AFTER:
                return False  # failed a moment ago: status says why; retry later
        except FileNotFoundError:
            pass
    except OSError as e:
        log.error("cannot prepare %s for the plugin's dependencies: %s", plugin.data, e)
        return False
    src = os.path.join(plugin.root, "src")
    argv = [sys.executable, "-I", "-S", "-c",
            "import sys; sys.path.append(sys.argv.pop(1)); "
            "from claude_memoir.bootstrap import main; sys.exit(main(sys.argv[1:]))",
            src, plugin.root, plugin.data]
    return _spawn_detached(argv, "plugin dependency install") is not None


def install(plugin: Plugin, base_python: str) -> None:
    """Build the venv and install the requirements into it (raises on failure)."""
    import subprocess

    wanted = _wanted(plugin, base_python)
    if wanted is None:
        raise OSError(f"cannot read {plugin.requirements}")
    stamp = os.path.join(plugin.venv, STAMP)
    try:
        os.unlink(stamp)  # not ready from here until the new stamp is written
    except FileNotFoundError:
        pass
    deadline = time.monotonic() + INSTALL_TIMEOUT
    steps = (
        [base_python, "-m", "venv", "--clear", plugin.venv],
        [plugin.python, "-m", "pip", "install", "--disable-pip-version-check",
         "--no-input", "--quiet", "-r", plugin.requirements],
    )
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the plugin's src/ is not for pip
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL,
                              timeout=max(1.0, deadline - time.monotonic()))
        if done.returncode != 0:
            # Both streams: `venv` explains a missing ensurepip (Debian's
            # python3-venv) on stdout and only fails on stderr.
            lines = [line for line in (done.stdout + "\n" + done.stderr).splitlines()
                     if line.strip()]
            tail = " | ".join(lines[-4:]) or f"exit {done.returncode}"
            raise OSError(f"`{' '.join(argv[:4])} …` failed: {tail}")
    tmp = f"{stamp}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(wanted)
    os.replace(tmp, stamp)


def sessions_with_work(store: Store) -> list[str]:
    """Active sessions with events, summaries or an end waiting and no worker."""
    found = []
    for session in store.active_sessions_without_worker():
        if (store.count_pending(session.id) or session.end_requested_at
                or store.prompts_to_summarize(session.id)):
            found.append(session.claude_session_id)
    return found


def main(argv: list[str]) -> int:
    """``bootstrap ROOT DATA``: install, record the outcome, start the waiting workers."""
    import subprocess

    from .config import load_settings
    from .launch import spawn_worker
    from .log import setup_hook_logging
    from .paths import ensure_private_dir
    from .store import Store

    settings = load_settings()
    setup_hook_logging(settings.home, settings.log_level)
    if len(argv) != 2:
        log.error("bootstrap: expected ROOT DATA, got %r", argv)
        return 2
    plugin = Plugin(argv[0], argv[1])
    try:
        ensure_private_dir(plugin.data)
        fd = _lock(plugin.lock)
    except OSError as e:
        return _failed(settings.home, f"cannot use {plugin.data}: {e}")
    if fd is None:
        return 0  # another install is under way
    try:
        base = sys.executable
        if ready_python(plugin, base) is None:
            started = time.monotonic()
            log.info("installing the plugin's worker dependencies into %s", plugin.venv)
            try:
                install(plugin, base)
            except (OSError, subprocess.SubprocessError) as e:
                _touch(plugin.failed_marker)
                return _failed(settings.home, str(e))
            try:
                os.unlink(plugin.failed_marker)
            except FileNotFoundError:
                pass
            log.info("plugin dependencies installed in %.1f s", time.monotonic() - started)
            with Store.open(settings.home) as store:
                store.record_ok("bootstrap")
        with Store.open(settings.home) as store:
            waiting = sessions_with_work(store)
        for session_id in waiting:
            spawn_worker(settings.home, session_id, python=plugin.python)
        return 0
    finally:
        os.close(fd)


def _failed(home: str, message: str) -> int:
    """Log and record a failed install where `memoir status` and `doctor` see it."""
    from .store import Store

    log.error("installing the plugin's dependencies failed: %s", message)
    try:
        with Store.open(home) as store:
            store.record_failure("bootstrap", "install-failed", message)
    except Exception as e:  # the process edge: the log line above stays
        log.error("cannot record the failed install: %s", e)
    return 1


def _touch(path: str) -> None:
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        os.utime(path)
    except OSError as e:
        log.warning("cannot write %s: %s", path, e)
