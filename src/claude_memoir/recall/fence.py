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

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def data(text: str, limit: int) -> str:
    """Stored text made safe to show the model: one line, escaped, at most ``limit`` chars.

    Whitespace (newlines too) collapses to single spaces; ``&<>`` become
    entities. The cut happens before escaping, so it never splits an entity.
    """
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: max(limit - 1, 0)].rstrip() + "…"
    return flat.translate(_ESCAPES)
