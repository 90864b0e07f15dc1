"""Project identity: the key that groups sessions into one project's memory.

A project is its git repository. Sessions started anywhere inside the work tree
(``repo/src``), and in any linked worktree of the same repository
(``git worktree add ../repo-feature``), share one memory: the key is derived
from the repository's *common* git directory, which every worktree points at.
Outside git the key is the directory itself, resolved, as before.

Recording (every hook), SessionStart context, search, the MCP server and the
CLI all call :func:`project_key`, so a session is filed and found under the
same key. It runs in every hook, so it reads ``.git`` files and directories
directly with a few ``stat``/``open`` calls and never runs ``git`` (a fork and
exec of git costs 2-5 ms, more than the rest of a hook's own work).
"""

from __future__ import annotations

import os

# Hooks import this module on every tool call: stdlib ``os`` only.

# Directory levels walked up looking for a repository: deeper paths than this
# do not exist in practice, and the bound keeps a pathological path cheap.
_MAX_DEPTH = 64
# Bytes read from a ``.git`` file or ``commondir`` file ("gitdir: <path>\n").
_MAX_POINTER = 4096


def _read_pointer(path: str) -> str | None:
    """The first line of a small text file, or None if it cannot be read."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_MAX_POINTER)
    except OSError:
        return None
    line = raw.split(b"\n", 1)[0].strip()
    try:
        return line.decode("utf-8") or None
    except UnicodeDecodeError:
        return None


def _is_git_dir(path: str) -> bool:
    """Does ``path`` look like a git directory (what git itself checks: HEAD + objects)?"""
    return os.path.isfile(os.path.join(path, "HEAD")) and (
        os.path.isdir(os.path.join(path, "objects"))
        or os.path.isfile(os.path.join(path, "commondir")))


def _common_dir(git_dir: str) -> str:
    """The common git directory of ``git_dir`` (itself unless it is a linked worktree's)."""
    pointer = _read_pointer(os.path.join(git_dir, "commondir"))
    if pointer:
        return os.path.realpath(os.path.join(git_dir, pointer))
    return git_dir


def _git_dir_of(entry: str) -> str | None:
    """The git directory a ``.git`` entry names: the directory, or a ``gitdir:`` file's target."""
    if os.path.isdir(entry):
        return os.path.realpath(entry) if _is_git_dir(entry) else None
    pointer = _read_pointer(entry)
    if not pointer or not pointer.startswith("gitdir:"):
        return None
    target = pointer[len("gitdir:"):].strip()
    if not target:
        return None
    # A relative gitdir (submodules, `worktree add --relative-paths`) is
    # relative to the directory holding the .git file.
    resolved = os.path.realpath(os.path.join(os.path.dirname(entry), target))
    return resolved if _is_git_dir(resolved) else None


def repository_key(common_dir: str) -> str:
    """The project key of a repository, given its common git directory.

    ``/home/u/app/.git`` becomes ``/home/u/app`` (its main work tree: the same
    one-per-repository identity, and the path a user recognises in
    ``memoir sessions``); a bare repository or a submodule's git directory is
    its own key.
    """
    if os.path.basename(common_dir) == ".git":
        return os.path.dirname(common_dir)
    return common_dir


def project_key(path: str | os.PathLike[str]) -> str:
    """The key sessions of ``path`` are grouped by.

    Inside a git work tree (main or linked): :func:`repository_key` of the
    repository's common git directory. Outside git: ``path`` resolved. Never
    raises, never runs ``git``; idempotent (a key maps to itself), because some
    callers pass keys again.
    """
    start = os.path.realpath(os.fspath(path))
    current = start
    for _ in range(_MAX_DEPTH):
        git_dir = _git_dir_of(os.path.join(current, ".git"))
        if git_dir is None and _is_git_dir(current):
            # `current` is itself a git directory: a bare repository, or a key
            # such as a submodule's `.git/modules/name` passed in again.
            git_dir = current
        if git_dir is not None:
            return repository_key(_common_dir(git_dir))
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return start
