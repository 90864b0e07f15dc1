"""Stored text shown to the model again, as data: escaped, one line, inside a fence.

Every recall path (SessionStart context, prompt- and file-time recall) puts
what sessions recorded (tool output, the agent's text) inside one
``<memoir-data>`` block whose header says it is data, not instructions. This
module makes that hold: :func:`data` flattens a stored string to one line and
escapes ``&``, ``<`` and ``>``, so it can neither close the block, open a tag,
nor start a line (a heading, a fake footer) of its own. Light on purpose: the
hooks of every prompt and file access import it.
"""

from __future__ import annotations

OPEN = "<memoir-data>"
CLOSE = "</memoir-data>"

# Control characters (C0 but whitespace, DEL, C1) become U+FFFD: terminal
# escape sequences from tool output must not reach a terminal or a model as
# anything but inert text.
_CONTROL_TABLE = str.maketrans({c: "\ufffd" for c in (*range(0x00, 0x09), 0x0B, 0x0C,
                                                       *range(0x0E, 0x20), *range(0x7F, 0xA0))})
_ESCAPES = {**_CONTROL_TABLE, **str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})}


def printable(text: str) -> str:
    """``text`` with control characters (escape sequences) made inert; newlines kept.

    For the CLI's output of stored text: a tool's ``\x1b]0;title\x07`` or
    ``\x1b[2J`` printed raw would retitle or clear the user's terminal.
    """
    return text.translate(_CONTROL_TABLE)


def data(text: str, limit: int) -> str:
    """Stored text made safe to show the model: one line, escaped, at most ``limit`` chars.

    Whitespace (newlines too) collapses to single spaces; ``&<>`` become
    entities and control characters U+FFFD. The cut happens before escaping,
    so it never splits an entity.
    """
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: max(limit - 1, 0)].rstrip() + "…"
    return flat.translate(_ESCAPES)
