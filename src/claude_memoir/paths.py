"""Where claude-memoir keeps things, and the checks before a name becomes a path.

Layout under ``$MEMOIR_HOME`` (0700)::

    memoir.db          SQLite store (WAL)
    logs/memoir.log    one log for hooks, workers and the CLI
    run/               per-session sockets, pid files and lock files (0700)
    agent/             the memory agent's working directory, so its own Claude
                       Code transcripts never appear among the user's projects
"""

from __future__ import annotations

import os
import stat

from .errors import InvalidInput

try:  # the builtin implementation: hashlib's OpenSSL load costs a hook ~2.5 ms
    from _sha256 import sha256 as _sha256  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - depends on the interpreter
    try:
        from _sha2 import sha256 as _sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
    except ImportError:
        from hashlib import sha256 as _sha256



def digest(data: bytes) -> str:
    """SHA-256 hex digest (socket names, event dedupe hashes) without importing hashlib."""
    return str(_sha256(data).hexdigest())


# Every function here takes the home directory as str or os.PathLike and returns
# str: pathlib costs a hook process ~3.5 ms of imports, on every tool call.

# Claude Code session ids are UUIDs; accept a conservative superset (letters,
# digits, '-' and '_', at most 128) so nothing like '../' or '/' ever reaches a
# path, a socket name or a log line unescaped.
# Checked without a regex: compiling one cost every hook ~0.1 ms.
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")

# sun_path is 108 bytes on Linux (104 on macOS) including the NUL.
_MAX_SOCKET_PATH = 100


def validate_session_id(value: object) -> str:
    """Return ``value`` if it is an acceptable session id, else raise InvalidInput."""
    if (isinstance(value, str) and 0 < len(value) <= 128 and value[0] not in "_-"
            and _ID_CHARS.issuperset(value)):
        return value
    shown = repr(value)[:80]
    raise InvalidInput(f"invalid session id {shown}", reason="bad-session-id")


def ensure_private_dir(path: str | os.PathLike[str]) -> str:
    """Create ``path`` (and missing parents) as directories of ours, mode 0700; return it.

    chmod after mkdir because mkdir's mode is filtered by the umask. Raises
    InvalidInput if the path is a symlink or belongs to another user: the socket
    fallback lives in a shared temp directory under a predictable name, and a
    directory planted there by someone else must not receive our socket.
    """
    # Create missing parents one by one, private as well: mkdir(parents=True)
    # gives them the umask's mode, so a fresh $MEMOIR_HOME made on the way to
    # $MEMOIR_HOME/logs came out 0755. Existing ancestors are left alone.
    path = os.path.abspath(os.fspath(path))
    missing = []
    probe = path
    while not os.path.lexists(probe):
        missing.append(probe)
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass  # a concurrent process made it; checked below for the leaf
        else:
            os.chmod(directory, 0o700)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise InvalidInput(f"{path} is not a plain directory", reason="unsafe-dir")
    if info.st_uid != os.getuid():
        raise InvalidInput(f"{path} belongs to uid {info.st_uid}, not us", reason="unsafe-dir")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def db_path(home: str | os.PathLike[str]) -> str:
    """The SQLite store."""
    return os.path.join(home, "memoir.db")


def log_dir(home: str | os.PathLike[str]) -> str:
    """Directory of ``memoir.log``."""
    return os.path.join(home, "logs")


def run_dir(home: str | os.PathLike[str]) -> str:
    """Directory of sockets, pid files and lock files."""
    return os.path.join(home, "run")


def agent_dir(home: str | os.PathLike[str]) -> str:
    """The memory agent's cwd (keeps its transcripts out of the user's projects)."""
    return os.path.join(home, "agent")


def _short(session_id: str) -> str:
    # A short stable name keeps socket paths under the OS limit however long
    # MEMOIR_HOME is; 16 hex chars of sha256 make collisions irrelevant.
    return digest(session_id.encode())[:16]


def socket_path(home: str | os.PathLike[str], session_id: str) -> str:
    """The worker's Unix socket for ``session_id``.

    Falls back to a private directory under the system temp dir when
    ``$MEMOIR_HOME/run`` would make the path too long for ``sun_path``.
    """
    name = f"{_short(session_id)}.sock"
    path = os.path.join(run_dir(home), name)
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        return path
    home_tag = digest(os.fsencode(os.fspath(home)))[:12]
    directory = f"memoir-{os.getuid()}-{home_tag}"
    fallback = os.path.join(os.environ.get("TMPDIR") or "/tmp", directory, name)
    if len(os.fsencode(fallback)) > _MAX_SOCKET_PATH:
        fallback = os.path.join("/tmp", directory, name)
    return fallback


def pid_path(home: str | os.PathLike[str], session_id: str) -> str:
    """The worker's pid file (``pid create_time`` on one line)."""
    return os.path.join(run_dir(home), f"{_short(session_id)}.pid")


def lock_path(home: str | os.PathLike[str], session_id: str) -> str:
    """The worker's single-instance lock file."""
    return os.path.join(run_dir(home), f"{_short(session_id)}.lock")
