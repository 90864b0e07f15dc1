"""The memory agent's own transcripts, kept out of the user's Claude Code session lists.

The agent is a Claude Code process, and Claude Code saves every conversation
as ``<config>/projects/<its cwd, escaped>/<session id>.jsonl`` (config:
``$CLAUDE_CONFIG_DIR`` or ``~/.claude``). Its cwd is ``$MEMOIR_HOME/agent``,
so these files never mix with the user's projects, but they would still pile
up among the user's session lists. A transcript is needed only while its
conversation may be resumed (``sessions.agent_session_id``), so it is removed:

* when the conversation is replaced (a rollover, a rejected resume);
* when the worker finishes a session Claude Code ended (SessionEnd, or its
  process gone); the conversation is forgotten too, and a later worker of the
  session starts a fresh one with a recap;
* by the retention sweep, for one no session may resume any more (ended, or
  idle for a day) and untouched for :data:`ORPHAN_AGE` (a worker killed
  before it finished, an idle session never resumed, ``memoir doctor --live``).

Standard library only: computing the path needs no SDK import.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from ..errors import InvalidInput
from ..log import get_logger
from ..paths import agent_dir, validate_session_id

log = get_logger(__name__)

# An unreferenced transcript untouched this long belongs to no live
# conversation: an agent's first reply (which records its id) comes long before.
ORPHAN_AGE = 600.0

# Claude Code's escaping of a project path into a directory name: every
# character but ASCII letters and digits becomes '-'. Past this length it
# appends a hash this module does not reproduce (then nothing is removed).
_UNSAFE = re.compile(r"[^a-zA-Z0-9]")
_MAX_NAME = 200


def projects_dir() -> Path:
    """Claude Code's ``projects`` directory (``$CLAUDE_CONFIG_DIR`` or ``~/.claude``)."""
    config = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(config if config else Path.home() / ".claude") / "projects"


def transcript_dir(home: str | os.PathLike[str]) -> Path | None:
    """Where Claude Code keeps the memory agent's transcripts, or None if unknowable."""
    name = _UNSAFE.sub("-", os.path.realpath(agent_dir(home)))
    if len(name) > _MAX_NAME:
        return None
    return projects_dir() / name


def remove_transcript(home: str | os.PathLike[str], agent_session_id: str | None) -> bool:
    """Delete one conversation's transcript (and its subagent folder); True if one was there."""
    directory = transcript_dir(home)
    if directory is None or not agent_session_id:
        return False
    try:
        sid = validate_session_id(agent_session_id)
    except InvalidInput:
        return False
    removed = False
    try:
        (directory / f"{sid}.jsonl").unlink()
        removed = True
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("cannot remove the agent transcript %s: %s", sid, e)
    shutil.rmtree(directory / sid, ignore_errors=True)
    _remove_if_empty(directory)
    if removed:
        log.info("agent transcript %s removed", sid)
    return removed


def prune_transcripts(home: str | os.PathLike[str], keep: Iterable[str], *,
                      min_age: float = ORPHAN_AGE, dry_run: bool = False) -> list[str]:
    """Remove agent transcripts not in ``keep`` and untouched for ``min_age`` seconds."""
    directory = transcript_dir(home)
    if directory is None or not directory.is_dir():
        return []
    keep = set(keep)
    cutoff = time.time() - min_age
    removed = []
    for path in sorted(directory.glob("*.jsonl")):
        sid = path.stem
        try:
            if sid in keep or path.stat().st_mtime > cutoff:
                continue
        except FileNotFoundError:
            continue
        if dry_run or remove_transcript(home, sid):
            removed.append(sid)
    _remove_if_empty(directory)
    return removed


def _remove_if_empty(directory: Path) -> None:
    # rmdir only succeeds on an empty directory: nothing of anyone else's is touched.
    with contextlib.suppress(OSError):
        directory.rmdir()
