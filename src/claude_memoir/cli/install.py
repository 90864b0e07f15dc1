"""Merge claude-memoir's hooks into a Claude Code ``settings.json``, and take them out.

Claude Code's hook format is a list of matcher groups per event::

    {"hooks": {"PostToolUse": [{"matcher": "*",
                                "hooks": [{"type": "command",
                                           "command": "...",
                                           "timeout": 10}]}]}}

``install`` adds one group holding our single hook per event and ``uninstall``
removes only our entries. Everything else in the file (the user's own hooks,
other keys, their order) is kept as it was. A file we cannot parse is never
rewritten, every write is atomic, and the previous content is kept in
``settings.json.memoir-backup``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shlex
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal

from ..errors import InstallError, InvalidInput
from ..log import get_logger
from ..values import Record

log = get_logger(__name__)

# Claude Code hook event -> the argument our hook runner takes. Claude Code
# fires PostToolUseFailure instead of PostToolUse when a tool fails, so both
# feed the same handler.
EVENTS: dict[str, str] = {
    "SessionStart": "session-start",
    "UserPromptSubmit": "user-prompt-submit",
    "PostToolUse": "post-tool-use",
    "PostToolUseFailure": "post-tool-use",
    "Stop": "stop",
    "SessionEnd": "session-end",
}

# Seconds Claude Code waits for our hook before killing it.
_TIMEOUTS: dict[str, int] = {
    "SessionStart": 10,
    "UserPromptSubmit": 10,
    "PostToolUse": 10,
    "PostToolUseFailure": 10,
    "Stop": 10,
    "SessionEnd": 5,
}

# Only tool events look at ``matcher``; "*" matches every tool. The other
# events get no matcher at all (for SessionStart that means every source).
_TOOL_EVENTS = frozenset({"PostToolUse", "PostToolUseFailure"})

# A command containing one of these is one of our hooks: the form ``install``
# writes, the module form earlier versions wrote, and the plugin's hook runner.
_MARKERS = ("from claude_memoir.hook import", "-m claude_memoir.hook", "memoir-hook")

BACKUP_SUFFIX = ".memoir-backup"


class InstallResult(Record):
    """What ``install`` or ``uninstall`` did to one settings file."""

    path: Path
    added: list[str] = []
    removed: list[str] = []
    changed: bool = False
    backup: Path | None = None


def hook_command(event_arg: str, python: str | None = None) -> str:
    """Return the shell command Claude Code runs for ``event_arg``.

    ``python`` defaults to the running interpreter as an absolute path. It is
    made absolute but not resolved: a venv's ``python`` is a symlink, and
    resolving it would run the base interpreter without the venv's packages.
    """
    if python is None:
        if not sys.executable:
            raise InstallError(
                "cannot tell which Python interpreter is running; pass python= explicitly",
                reason="no-interpreter",
            )
        # An absolute interpreter path on purpose: going through a shell shim
        # such as pyenv's costs ~160 ms on every hook call, i.e. on every tool
        # use of every session.
        python = os.path.abspath(sys.executable)
    # -I -S: no site (no .pth files, no site-packages scan) and no PYTHON*
    # variables: ~3 ms less per hook, and a user's PYTHONPATH cannot shadow
    # the package. -c instead of -m spares runpy and importlib.util (~4 ms).
    # The package's own directory goes last on sys.path, after the stdlib.
    code = (f"import sys; sys.path.append({package_parent()!r}); "
            "from claude_memoir.hook import entry; entry()")
    return shlex.join([python, "-I", "-S", "-c", code, event_arg])


def package_parent() -> str:
    """The directory holding the ``claude_memoir`` package (site-packages, or src/)."""
    import claude_memoir

    return os.path.dirname(os.path.dirname(os.path.abspath(claude_memoir.__file__)))


def precompile() -> bool:
    """Write the package's bytecode now, so no hook ever compiles a module.

    pip does this at install time, but an editable install used with
    PYTHONDONTWRITEBYTECODE=1 never gets any: each hook then recompiled a
    dozen modules (~18 ms). Returns False if the directory is not writable.
    """
    import compileall

    directory = os.path.join(package_parent(), "claude_memoir")
    try:
        return bool(compileall.compile_dir(directory, quiet=2, force=False))
    except OSError:
        return False


def settings_path(
    scope: Literal["user", "project"], project_dir: Path | None = None
) -> Path:
    """Return the ``settings.json`` Claude Code reads for ``scope``.

    User scope honours ``$CLAUDE_CONFIG_DIR`` (else ``~/.claude``); project
    scope is ``<project_dir or cwd>/.claude/settings.json``.
    """
    if scope == "user":
        raw = os.environ.get("CLAUDE_CONFIG_DIR")
        base = Path(raw).expanduser() if raw else Path.home() / ".claude"
        return base / "settings.json"
    if scope == "project":
        root = project_dir if project_dir is not None else Path.cwd()
        return root / ".claude" / "settings.json"
    raise InvalidInput(f"unknown settings scope {scope!r}", reason="bad-scope")


def is_ours(hook: dict[str, Any]) -> bool:
    """Whether a hook entry (``{"type": "command", "command": ...}``) is claude-memoir's."""
    command = hook.get("command") if isinstance(hook, dict) else None
    return isinstance(command, str) and any(marker in command for marker in _MARKERS)


def install(path: Path, python: str | None = None) -> InstallResult:
    """Add claude-memoir's hook to every event in ``EVENTS`` of the settings at ``path``.

    Our previous entries are replaced (so a new interpreter never duplicates
    them), other hooks and keys are kept, and a second run changes nothing.
    A missing file (and its directory) is created. Raises InstallError if the
    file cannot be parsed or written; the file is then left untouched.
    """
    original, data = _load(path)
    new: dict[str, Any] = copy.deepcopy(data)
    if "hooks" not in new:
        new["hooks"] = {}
    hooks: dict[str, Any] = new["hooks"]
    added: list[str] = []
    removed: list[str] = []

    # Ours under an event we no longer register is stale: take it out.
    for event in [name for name in hooks if name not in EVENTS]:
        groups, dropped = _strip_ours(hooks[event])
        if dropped:
            removed.append(event)
            if groups:
                hooks[event] = groups
            else:
                del hooks[event]

    for event, arg in EVENTS.items():
        wanted = _group(event, hook_command(arg, python))
        groups = hooks.get(event, [])
        if [g for g in groups if _holds_ours(g)] == [wanted]:
            continue  # already exactly ours, and left where it is
        groups, _ = _strip_ours(groups)
        groups.append(wanted)
        hooks[event] = groups
        added.append(event)

    return _finish(path, original, data, new, added, removed)


def uninstall(path: Path) -> InstallResult:
    """Remove claude-memoir's hook entries from the settings at ``path``.

    Matcher groups and events left empty by that are dropped, and so is
    ``hooks`` if it ends up empty; nothing else is touched. A missing file is
    a no-op. Raises InstallError if the file cannot be parsed or written.
    """
    original, data = _load(path)
    if original is None or "hooks" not in data:
        return InstallResult(path=path)
    new: dict[str, Any] = copy.deepcopy(data)
    hooks: dict[str, Any] = new["hooks"]
    removed: list[str] = []
    for event in list(hooks):
        groups, dropped = _strip_ours(hooks[event])
        if not dropped:
            continue
        removed.append(event)
        if groups:
            hooks[event] = groups
        else:
            del hooks[event]
    if removed and not hooks:
        del new["hooks"]
    return _finish(path, original, data, new, [], removed)


def _group(event: str, command: str) -> dict[str, Any]:
    """The matcher group holding our single hook for ``event``."""
    hook = {"type": "command", "command": command, "timeout": _TIMEOUTS[event]}
    if event in _TOOL_EVENTS:
        return {"matcher": "*", "hooks": [hook]}
    return {"hooks": [hook]}


def _holds_ours(group: object) -> bool:
    """Whether a matcher group contains at least one of our hooks."""
    if not isinstance(group, dict) or not isinstance(group.get("hooks"), list):
        return False
    return any(is_ours(hook) for hook in group["hooks"])


def _strip_ours(groups: list[Any]) -> tuple[list[Any], bool]:
    """Return ``groups`` without our hooks, and whether any were removed.

    A group emptied by the removal is dropped; every other group (including one
    the user left empty, or one we do not understand) is kept as it is.
    """
    kept_groups: list[Any] = []
    removed = False
    for group in groups:
        if not _holds_ours(group):
            kept_groups.append(group)
            continue
        removed = True
        kept = [hook for hook in group["hooks"] if not is_ours(hook)]
        if kept:
            kept_groups.append({**group, "hooks": kept})
    return kept_groups, removed


def _target(path: Path) -> Path:
    """The file to read and replace: a symlink's target, so dotfile links survive."""
    return path.resolve() if path.is_symlink() else path


def _load(path: Path) -> tuple[bytes | None, dict[str, Any]]:
    """Read and check ``path``: ``(raw bytes, parsed)``, or ``(None, {})`` if missing."""
    target = _target(path)
    try:
        raw = target.read_bytes()
    except FileNotFoundError:
        return None, {}
    except OSError as e:
        raise InstallError(
            f"cannot read {path}: {e}", reason="read-failed", path=str(path)
        ) from e
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as e:
        raise InstallError(
            f"{path} is not valid JSON ({e}); fix or move it, it was left unchanged",
            reason="bad-json",
            path=str(path),
        ) from e
    _check_shape(path, data)
    return raw, data


def _check_shape(path: Path, data: object) -> None:
    """Raise InstallError unless ``data`` has the shape of a Claude Code settings file."""

    def bad(what: str) -> InstallError:
        return InstallError(
            f"{path}: {what}; it was left unchanged", reason="bad-shape", path=str(path)
        )

    if not isinstance(data, dict):
        raise bad(f"the top level is a JSON {type(data).__name__}, not an object")
    hooks = data.get("hooks", {})
    if not isinstance(hooks, dict):
        raise bad('"hooks" is not an object')
    for event, groups in hooks.items():
        if not isinstance(groups, list):
            raise bad(f'"hooks"."{event}" is not a list')


def _finish(
    path: Path,
    original: bytes | None,
    data: dict[str, Any],
    new: dict[str, Any],
    added: list[str],
    removed: list[str],
) -> InstallResult:
    """Write ``new`` if it differs from ``data`` and build the result."""
    if original is not None and new == data:
        log.info("claude-memoir hooks in %s already up to date", path)
        return InstallResult(path=path)
    backup = _write(path, original, new)
    log.info(
        "updated %s: added %s, removed %s, backup %s",
        path,
        ",".join(added) or "-",
        ",".join(removed) or "-",
        backup,
    )
    return InstallResult(path=path, added=added, removed=removed, changed=True, backup=backup)


def _write(path: Path, original: bytes | None, data: dict[str, Any]) -> Path | None:
    """Atomically replace the settings file with ``data``; return the backup path.

    The previous content (if any) goes to ``<name>.memoir-backup`` first; both
    files keep the original's mode (0600 for a new file).
    """
    target = _target(path)
    payload = (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    backup: Path | None = None
    try:
        if original is None:
            target.parent.mkdir(parents=True, exist_ok=True)
            mode, owner = 0o600, None
        else:
            st = target.stat()
            mode, owner = stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)
            backup = path.with_name(path.name + BACKUP_SUFFIX)
            _atomic_write(_target(backup), original, mode, owner)
        _atomic_write(target, payload, mode, owner)
    except OSError as e:
        raise InstallError(
            f"cannot write {path}: {e}", reason="write-failed", path=str(path)
        ) from e
    return backup


def _atomic_write(
    target: Path, payload: bytes, mode: int, owner: tuple[int, int] | None
) -> None:
    """Write ``payload`` to a temp file beside ``target``, fsync it, rename it over."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            if owner is not None and owner != (os.geteuid(), os.getegid()):
                # Best effort (e.g. run under sudo): keep the file the user's.
                with contextlib.suppress(OSError):
                    os.fchown(fh.fileno(), *owner)
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # Make the rename itself durable; not every platform can fsync a directory.
    with contextlib.suppress(OSError):
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# -- the MCP server ---------------------------------------------------------------------

#: The name Claude Code lists the server under; its tools are ``mcp__memoir__search`` etc.
MCP_SERVER_NAME = "memoir"
# An MCP server entry whose command or arguments contain one of these is ours.
_MCP_MARKERS = ("claude_memoir", "memoir-mcp")


def mcp_config_path(scope: Literal["user", "project"], project_dir: Path | None = None) -> Path:
    """The file Claude Code reads MCP servers of ``scope`` from.

    User scope is the top-level ``mcpServers`` of ``~/.claude.json`` (or
    ``$CLAUDE_CONFIG_DIR/.claude.json``): where ``claude mcp add -s user``
    writes, checked against the bundled CLI (tests/cli/test_install_mcp.py).
    Project scope is ``<project>/.mcp.json``, which Claude Code asks the user
    to approve once.
    """
    if scope == "user":
        raw = os.environ.get("CLAUDE_CONFIG_DIR")
        base = Path(raw).expanduser() if raw else Path.home()
        return base / ".claude.json"
    if scope == "project":
        root = project_dir if project_dir is not None else Path.cwd()
        return root / ".mcp.json"
    raise InvalidInput(f"unknown settings scope {scope!r}", reason="bad-scope")


def mcp_server_entry(python: str | None = None) -> dict[str, Any]:
    """The ``mcpServers`` entry that starts ``memoir mcp`` with this interpreter.

    ``python -m claude_memoir.cli.main mcp`` rather than the ``memoir`` script:
    the interpreter's absolute path works whatever PATH Claude Code was started
    with, as the hooks do.
    """
    if python is None:
        if not sys.executable:
            raise InstallError("cannot tell which Python interpreter is running",
                               reason="no-interpreter")
        python = os.path.abspath(sys.executable)
    return {"type": "stdio", "command": python, "args": ["-m", "claude_memoir.cli.main", "mcp"],
            "env": {}}


def is_our_mcp_server(entry: object) -> bool:
    """Whether an ``mcpServers`` entry starts claude-memoir's server."""
    if not isinstance(entry, dict):
        return False
    parts = [entry.get("command")] + list(entry.get("args") or [])
    return any(isinstance(p, str) and any(m in p for m in _MCP_MARKERS) for p in parts)


def _load_mcp(path: Path) -> tuple[bytes | None, dict[str, Any]]:
    original, data = _load(path)
    servers = data.get("mcpServers", {})
    if not isinstance(servers, dict):
        raise InstallError(f'{path}: "mcpServers" is not an object; it was left unchanged',
                           reason="bad-shape", path=str(path))
    return original, data


def install_mcp(path: Path, python: str | None = None) -> InstallResult:
    """Register ``memoir mcp`` under ``mcpServers`` in ``path`` (idempotent).

    Every other key of the file (``~/.claude.json`` holds all of Claude Code's
    state) is kept as it was. A server of the same name that is not ours is
    never replaced: InstallError, nothing written.
    """
    original, data = _load_mcp(path)
    wanted = mcp_server_entry(python)
    current = data.get("mcpServers", {}).get(MCP_SERVER_NAME)
    if current == wanted:
        return InstallResult(path=path)
    if current is not None and not is_our_mcp_server(current):
        raise InstallError(f"{path}: an MCP server named {MCP_SERVER_NAME!r} that is not "
                           "claude-memoir's is already registered; it was left unchanged",
                           reason="mcp-name-taken", path=str(path))
    new = copy.deepcopy(data)
    new.setdefault("mcpServers", {})[MCP_SERVER_NAME] = wanted
    backup = _write(path, original, new)
    log.info("registered the MCP server in %s (backup %s)", path, backup)
    return InstallResult(path=path, added=[MCP_SERVER_NAME], changed=True, backup=backup)


def uninstall_mcp(path: Path) -> InstallResult:
    """Remove our ``mcpServers`` entry from ``path``; anything else stays."""
    original, data = _load_mcp(path)
    current = data.get("mcpServers", {}).get(MCP_SERVER_NAME)
    if original is None or not is_our_mcp_server(current):
        return InstallResult(path=path)
    new = copy.deepcopy(data)
    del new["mcpServers"][MCP_SERVER_NAME]
    backup = _write(path, original, new)
    log.info("removed the MCP server from %s (backup %s)", path, backup)
    return InstallResult(path=path, removed=[MCP_SERVER_NAME], changed=True, backup=backup)
