"""Summaries built without the LLM, from the raw events of a prompt.

Used when the memory agent stays unavailable at the end of a turn or session, so
the next session still learns what happened. Marked ``kind='fallback'`` in the
store; ``memoir reprocess`` can later replace it with the agent's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .models import Summary

_MAX_ITEMS = 12


def _paths(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return []
    found = []
    for key in ("file_path", "path", "notebook_path"):
        v = value.get(key)
        if isinstance(v, str) and v:
            found.append(v)
    return found


def _clip(items: list[str]) -> str:
    unique = list(dict.fromkeys(items))
    shown = unique[:_MAX_ITEMS]
    more = len(unique) - len(shown)
    return ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")


#: Notes of a fallback written because the agent chose to skip the summary:
#: not a sign of trouble (``memoir status`` does not count these).
NOTHING_TO_SUMMARIZE = "Built from raw events; the memory agent found nothing to summarize."
UNAVAILABLE = "Fallback summary built from raw events; the memory agent was unavailable."


def fallback_summary(prompt: str | None, response: str | None, events: Sequence[Any],
                     note: str = UNAVAILABLE) -> Summary:
    """Describe a prompt's work from its events: files, commands, failures."""
    read: list[str] = []
    modified: list[str] = []
    commands: list[str] = []
    failures: list[str] = []
    other: list[str] = []
    for ev in events:
        tool = str(ev.tool_name)
        tin = ev.tool_input if isinstance(ev.tool_input, dict) else {}
        if tool in {"Read", "Grep", "Glob", "LS", "NotebookRead"}:
            read.extend(_paths(tin) or [str(tin.get("pattern", tool))])
        elif tool in {"Write", "Edit", "MultiEdit", "NotebookEdit"}:
            modified.extend(_paths(tin))
        elif tool == "Bash":
            commands.append(str(tin.get("command", ""))[:120])
        else:
            other.append(tool)
        if ev.failed:
            failures.append(f"{tool}: {str(ev.error or '')[:120]}")
    investigated = []
    if read:
        investigated.append(f"Read/searched: {_clip(read)}")
    if other:
        investigated.append(f"Other tools: {_clip(other)}")
    completed = []
    if modified:
        completed.append(f"Modified: {_clip(modified)}")
    if commands:
        completed.append(f"Ran: {_clip(commands)}")
    notes = note
    if failures:
        notes += f" Failures: {_clip(failures)}"
    learned = (response or "").strip()[:600]
    return Summary(
        request=(prompt or "").strip()[:600],
        investigated="; ".join(investigated),
        learned=learned,
        completed="; ".join(completed) or f"{len(events)} tool call(s)",
        next_steps="",
        notes=notes,
    )
