"""What a hook reads from its payload, and how text is made safe to store.

Field access that tolerates any JSON (a wrong type is "absent", never an
exception), the project directory, MEMOIR_EXCLUDE, and the bound-then-redact
cleaning every stored string goes through.
"""

from __future__ import annotations

import json
import os

from ..text import truncate_middle

# Runs on every tool call: only the standard library's cheapest modules and this
# package's light ones at run time (no typing, logging, pathlib, dataclasses;
# tests/hooks/test_imports.py holds the line). Type names exist for checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..config import Settings

    Payload = dict[str, Any]



def project_dir(payload: Payload) -> str:
    # CLAUDE_PROJECT_DIR is where Claude Code was started; the payload's cwd
    # follows `cd` inside Bash, which must not split one project in two.
    raw = os.environ.get("CLAUDE_PROJECT_DIR") or payload.get("cwd")
    if not isinstance(raw, str) or not raw or "\x00" in raw:
        raw = os.getcwd()
    return raw


def str_field(payload: Payload, key: str) -> str:
    value = payload.get(key)
    return value if isinstance(value, str) else ""


def end_reason(payload: Payload) -> str:
    """SessionEnd's reason (clear, logout, ...), bounded for the store and the log."""
    return (str_field(payload, "reason") or "other")[:40]


def excluded(payload: Payload, settings: Settings) -> bool:
    """True if the payload's project matches a MEMOIR_EXCLUDE glob (never recorded)."""
    if not settings.exclude:
        return False
    import fnmatch

    project = os.path.realpath(project_dir(payload))
    return any(fnmatch.fnmatchcase(project, os.path.expanduser(glob))
               for glob in settings.exclude)


# Room kept for truncate_middle's elision marker, so a bounded text, marker
# included, is at most the limit: cleaning twice (a spooled payload is cleaned
# before it is spooled and again when it is replayed) then cuts nothing more.
_MARKER_ROOM = 64


def _bounded(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters (head and tail kept), if longer.

    Cut at whitespace: the text is redacted after the cut, and a token cut in
    two could hide a secret from the redaction rules.
    """
    if 0 < limit < len(text):
        return truncate_middle(text, max(limit - _MARKER_ROOM, 1), whole_words=True)
    return text


def clean_text(text: str, settings: Settings) -> str:
    """Bound one string to max_stored_chars, then redact it."""
    from ..redact import redact_text

    return redact_text(_bounded(text, settings.max_stored_chars), settings.redact)


def clean_value(value: Any, settings: Settings) -> Any:
    """Bound a tool input/response to max_stored_chars, then redact it.

    Bounded first: redacting a 20 MB Read would cost seconds in a hook, and
    the agent only ever sees max_field_chars of it anyway. A structure too
    big to keep is stored as its (bounded) JSON text.
    """
    from ..redact import redact_value

    limit = settings.max_stored_chars
    if limit > 0 and not isinstance(value, (str, int, float, bool, type(None))):
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (ValueError, RecursionError):
            text = repr(value)[: limit + 1]
        if len(text) > limit:
            value = text
    if isinstance(value, str):
        return clean_text(value, settings)
    return redact_value(value, settings.redact)




# What the recorders read of a payload: all a spooled payload keeps.
_TEXT_FIELDS = ("prompt", "last_assistant_message")
_VALUE_FIELDS = ("tool_input", "tool_response")
_SHORT_FIELDS = ("session_id", "cwd", "hook_event_name", "tool_name", "tool_use_id",
                 "reason", "source")
# An id, a name or a path longer than this is not one; bounded all the same.
_SHORT_LIMIT = 4096


def clean_payload(payload: Payload, settings: Settings) -> Payload:
    """The payload as the store would keep it: the recorders' fields, bounded and redacted.

    For the spool: a payload that waits in a file because the database was
    busy must not hold what the store never would (a secret, 20 MB of a
    Read). Cleaning is idempotent, so the replay's second pass changes nothing.
    """
    out: Payload = {}
    for key in _SHORT_FIELDS:
        value = payload.get(key)
        if isinstance(value, str):
            out[key] = value[:_SHORT_LIMIT]
    for key in _TEXT_FIELDS:
        value = payload.get(key)
        if isinstance(value, str):
            out[key] = clean_text(value, settings)
    for key in _VALUE_FIELDS:
        if key in payload:
            out[key] = clean_value(payload[key], settings)
    if "error" in payload:  # its presence alone marks a failed call
        error = payload["error"]
        if error is not None and not isinstance(error, str):
            error = json.dumps(error, default=str)
        out["error"] = clean_text(error, settings) if error else error
    return out
