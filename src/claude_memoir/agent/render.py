"""Tool-aware, compact rendering of one tool event for the memory agent.

Claude Code's PostToolUse payloads repeat themselves: a ``Write`` carries the
file's content in its input and again in its response, an ``Edit`` response
carries the whole original file next to the two strings that changed, a
``Read`` wraps the file in JSON (every newline escaped, so a field limit cut
mid-JSON kept less of the file). Sending them as they come cost about twice
what the event says. Here each known tool is reduced to what it tells:

* ``Write``: the path and the content, once; the outcome (created/updated);
* ``Edit``/``MultiEdit``: the path and the old and new strings, never the file;
* ``Read``: the path and the file's text, head and tail within the field limit,
  with how many lines it has;
* ``Bash``: the command (and its description), stdout, stderr when not empty;
* ``Grep``/``Glob``: the query and the matches as plain lines;
* anything else, or a shape we do not know (a response stored as bounded
  JSON text, a future field): input and output as compact JSON, as before.

Every field is cut to ``limit`` characters in the middle (``truncate_middle``);
:func:`event_fields` returns them as ``(tag, text)`` pairs, unescaped (the
prompt escapes them), ``repeatable`` marking those that may be referenced
instead of resent when an identical one was shown earlier in the message.
"""

from __future__ import annotations

import json
from typing import Any

from ..text import truncate_middle

# Fields whose text, when identical to an earlier event's in the same message
# (a file read twice, a Write then a Read of the same file, a test run that
# printed the same), is sent as a reference. Short ones are cheaper resent.
REPEATABLE = frozenset({"output", "content", "stdout"})
MIN_REFERENCE_CHARS = 120

Field = tuple[str, str]


def to_text(value: object) -> str:
    """A value as text: strings as they are, anything else as one-line JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, indent=None, default=str)
    except (TypeError, ValueError, RecursionError):
        try:
            return repr(value)
        except Exception:  # noqa: BLE001 - a broken __repr__ must not break a prompt
            return f"<unrepresentable {type(value).__name__}>"


def _str(mapping: dict[str, Any], key: str) -> str:
    value = mapping.get(key)
    return value if isinstance(value, str) else ""


def _is_empty(value: object) -> bool:
    """True for None and empty str/bytes/containers (without calling ``==``)."""
    if value is None:
        return True
    if isinstance(value, (str, bytes, dict, list, tuple)):
        return len(value) == 0
    return False


def _output(response: object, limit: int, failed: bool) -> list[Field]:
    """A response shown as it is: its text, "(no output)" when empty (a failed
    call's error says enough), or nothing."""
    if not _is_empty(response):
        return [("output", truncate_middle(to_text(response), limit))]
    return [] if failed else [("output", "(no output)")]


def _generic(tool_input: object, tool_response: object, limit: int,
             failed: bool) -> list[Field]:
    return [("input", truncate_middle(to_text(tool_input), limit)),
            *_output(tool_response, limit, failed)]


def _bash(tin: dict[str, Any], resp: object, limit: int, failed: bool) -> list[Field] | None:
    command = _str(tin, "command")
    if not command:
        return None
    fields = [("command", truncate_middle(command, limit))]
    if _str(tin, "description"):
        fields.append(("description", truncate_middle(_str(tin, "description"), limit)))
    if isinstance(resp, dict):
        stdout, stderr = _str(resp, "stdout"), _str(resp, "stderr")
        if stdout:
            fields.append(("stdout", truncate_middle(stdout, limit)))
        if stderr:
            fields.append(("stderr", truncate_middle(stderr, limit // 2 or limit)))
        if resp.get("interrupted") is True:
            fields.append(("note", "interrupted"))
        if not stdout and not stderr and not failed:
            fields.append(("output", "(no output)"))
    else:
        fields += _output(resp, limit, failed)
    return fields


def _read(tin: dict[str, Any], resp: object, limit: int, failed: bool) -> list[Field] | None:
    path = _str(tin, "file_path")
    if not path:
        return None
    fields = [("file", path)]
    window = {k: tin[k] for k in ("offset", "limit", "pages") if k in tin}
    if window:
        fields.append(("range", to_text(window)))
    file = resp.get("file") if isinstance(resp, dict) else None
    if isinstance(file, dict) and isinstance(file.get("content"), str):
        lines = file.get("numLines")
        total = file.get("totalLines")
        if isinstance(lines, int) and isinstance(total, int):
            start = file.get("startLine")
            shown = f"{lines} of {total} lines" + (
                f" from line {start}" if isinstance(start, int) and start > 1 else "")
            fields.append(("lines", shown))
        fields.append(("output", truncate_middle(file["content"], limit)))
    else:
        fields += _output(resp, limit, failed)
    return fields


def _write(tin: dict[str, Any], resp: object, limit: int, failed: bool) -> list[Field] | None:
    path, content = _str(tin, "file_path"), tin.get("content")
    if not path or not isinstance(content, str):
        return None
    fields = [("file", path), ("content", truncate_middle(content, limit))]
    if isinstance(resp, dict):
        kind = _str(resp, "type")
        fields.append(("output", {"create": "created", "update": "updated"}.get(kind, kind)
                       or "written"))
    elif not _is_empty(resp):
        fields.append(("output", truncate_middle(to_text(resp), limit)))
    return fields


def _edit_pair(old: str, new: str, limit: int) -> list[Field]:
    # Both strings share the field limit: an edit is what changed, never more
    # than one field's worth.
    half = max(limit // 2, 1)
    return [("old", truncate_middle(old, half)), ("new", truncate_middle(new, half))]


def _edit(tin: dict[str, Any], resp: object, limit: int, failed: bool) -> list[Field] | None:
    path = _str(tin, "file_path")
    if not path or not isinstance(tin.get("old_string"), str) or \
            not isinstance(tin.get("new_string"), str):
        return None
    fields = [("file", path), *_edit_pair(tin["old_string"], tin["new_string"], limit)]
    if tin.get("replace_all") is True:
        fields.append(("note", "replace all"))
    return fields + _edit_outcome(resp, failed)


def _multi_edit(tin: dict[str, Any], resp: object, limit: int,
                failed: bool) -> list[Field] | None:
    path, edits = _str(tin, "file_path"), tin.get("edits")
    if not path or not isinstance(edits, list) or not all(
            isinstance(e, dict) and isinstance(e.get("old_string"), str)
            and isinstance(e.get("new_string"), str) for e in edits):
        return None
    fields: list[Field] = [("file", path)]
    share = max(limit // max(len(edits), 1), 2)
    for edit in edits:
        fields += _edit_pair(edit["old_string"], edit["new_string"], share)
    return fields + _edit_outcome(resp, failed)


def _edit_outcome(resp: object, failed: bool) -> list[Field]:
    if failed:
        return []
    if isinstance(resp, dict):
        return [("output", "edited, then changed by the user" if resp.get("userModified")
                 is True else "edited")]
    return [("output", "edited")] if _is_empty(resp) else [("output", to_text(resp)[:200])]


def _search(tin: dict[str, Any], resp: object, limit: int,
            failed: bool) -> list[Field] | None:
    fields = [("input", truncate_middle(to_text(tin), limit))]
    if isinstance(resp, dict):
        content, names = resp.get("content"), resp.get("filenames")
        if isinstance(content, str) and content:
            fields.append(("output", truncate_middle(content, limit)))
            return fields
        if isinstance(names, list) and names:
            fields.append(("output", truncate_middle("\n".join(map(str, names)), limit)))
            return fields
        count = resp.get("numFiles")
        if isinstance(count, int) and not content and not names:
            fields.append(("output", "(no matches)"))
            return fields
    return None


_TOOLS = {
    "Bash": _bash,
    "Read": _read,
    "Write": _write,
    "Edit": _edit,
    "MultiEdit": _multi_edit,
    "Grep": _search,
    "Glob": _search,
}


def event_fields(tool_name: str, tool_input: object, tool_response: object, *,
                 failed: bool, error: str | None, limit: int) -> list[Field]:
    """The fields that describe one tool event, compactly (see the module docstring)."""
    fields: list[Field] | None = None
    renderer = _TOOLS.get(tool_name)
    if renderer is not None and isinstance(tool_input, dict):
        fields = renderer(tool_input, tool_response, limit, failed)
    if fields is None:
        fields = _generic(tool_input, tool_response, limit, failed)
    if failed:
        if error:
            message = truncate_middle(to_text(error), limit)
        elif not _is_empty(tool_response):
            # The failure's text came as the response: shown as the error.
            message = truncate_middle(to_text(tool_response), limit)
            fields = [f for f in fields if f[0] not in ("output", "stdout")]
        else:
            message = ""
        fields.append(("error", message or "(no error message)"))
    return fields
