"""Bounding text: head and tail kept, with a marker saying how much was cut.

Its own light module because both sides need it: hooks bound what they store
(on every tool call, so no dataclasses or typing here) and the agent's prompts
bound what the agent is shown.
"""

from __future__ import annotations


def truncate_middle(text: str, limit: int) -> str:
    """Shorten ``text`` to about ``limit`` characters, keeping head and tail.

    The head (about two thirds) and tail (the rest) survive because both ends
    of tool output carry meaning (a command's start, an error at the end). An
    explicit marker says how much was cut so the agent does not mistake the
    gap for real content. The result is at most ``limit`` plus the marker's
    length. ``limit <= 0`` disables truncation.
    """
    if limit <= 0 or len(text) <= limit:
        return text
    head = (limit * 2) // 3
    tail = limit - head
    elided = len(text) - head - tail
    marker = f"\n…[memoir: {elided} characters elided]…\n"
    return text[:head] + marker + (text[-tail:] if tail > 0 else "")
