"""Bounding text: head and tail kept, with a marker saying how much was cut.

Its own light module because both sides need it: hooks bound what they store
(on every tool call, so no dataclasses or typing here) and the agent's prompts
bound what the agent is shown.
"""

from __future__ import annotations

# `re` is loaded by every hook anyway (hooks.entry): importing it here is free.
import re


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



# A run of letters/digits (underscores split words, as FTS5's unicode61 does).
_WORD = re.compile(r"[^\W_]+")
# A camelCase / PascalCase boundary: "reconcileLedger", "HTTPServer" -> "HTTP|Server".
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
# Most identifiers one text contributes: bounds the work on a huge prompt.
_MAX_IDENTIFIERS = 2000


def code_terms(*texts: object) -> str:
    """The camelCase / PascalCase identifiers of ``texts`` split into lower-case words.

    Stored in each searchable row's ``terms`` column (migration m0004) so that
    FTS5's unicode61 tokenizer, which keeps ``ReconcileLedger`` as one token
    (while it already splits ``reconcile_ledger`` and ``src/app/ledger.py`` at
    the punctuation), also finds ``ReconcileLedger`` for "reconcile ledger".
    Only identifiers with a case boundary contribute, each once, one per line.
    """
    seen: set[str] = set()
    out: list[str] = []
    for text in texts:
        if not isinstance(text, str):
            continue  # a NULL reaches the store's NOT NULL check, which says what is wrong
        for match in _WORD.finditer(text):
            word = match.group()
            if word in seen or word.islower() or word.isupper():
                continue
            seen.add(word)
            parts = [p for p in _CAMEL.split(word) if p]
            if len(parts) > 1:
                out.append(" ".join(parts).lower())
            if len(seen) >= _MAX_IDENTIFIERS:
                return "\n".join(out)
    return "\n".join(out)
