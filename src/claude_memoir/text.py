"""Bounding text: head and tail kept, with a marker saying how much was cut.

Its own light module because both sides need it: hooks bound what they store
(on every tool call, so no dataclasses or typing here) and the agent's prompts
bound what the agent is shown.
"""

from __future__ import annotations

# `re` is loaded by every hook anyway (json.decoder imports it): importing it
# here is free; its patterns are compiled on first use, not at import.
import re

# How far a whole-word cut looks for whitespace before it gives up and drops
# that much instead.
WORD_SLACK = 512


def truncate_middle(text: str, limit: int, *, whole_words: bool = False) -> str:
    """Shorten ``text`` to about ``limit`` characters, keeping head and tail.

    The head (about two thirds) and tail (the rest) survive because both ends
    of tool output carry meaning (a command's start, an error at the end). An
    explicit marker says how much was cut so the agent does not mistake the
    gap for real content. The result is at most ``limit`` plus the marker's
    length. ``limit <= 0`` disables truncation.

    ``whole_words``: the cut edges move to whitespace (at most ``WORD_SLACK``
    characters; past that, that much is dropped), so no token survives in
    part. Text is cut before it is redacted (redacting 20 MB would cost a hook
    seconds), and a cut through ``password=hunter2-secret`` that kept
    ``d=hunter2-secret`` would hide the key from the redaction rules and store
    the secret.
    """
    if limit <= 0 or len(text) <= limit:
        return text
    head = (limit * 2) // 3
    start = len(text) - (limit - head)  # where the tail begins
    if whole_words:
        head = _word_end(text, head)
        start = _word_start(text, start)
    elided = start - head
    marker = f"\n…[memoir: {elided} characters elided]…\n"
    return text[:head] + marker + text[start:]


def _word_end(text: str, end: int) -> int:
    """``end`` moved back to just after the last whitespace before it."""
    floor = max(0, end - WORD_SLACK)
    for i in range(end, floor, -1):
        if text[i - 1].isspace():
            return i
    return floor


def _word_start(text: str, start: int) -> int:
    """``start`` moved forward to the first whitespace at or after it."""
    ceiling = min(len(text), start + WORD_SLACK)
    for i in range(start, ceiling):
        if text[i].isspace():
            return i
    return ceiling


# A run of letters/digits (underscores split words, as FTS5's unicode61 does).
_WORD = r"[^\W_]+"
# A camelCase / PascalCase boundary: "reconcileLedger", "HTTPServer" -> "HTTP|Server".
_CAMEL = r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])"
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
    # Compiled here (re caches them): most hooks never call this, and
    # compiling at import would cost each of them ~0.1 ms.
    word_re, camel_re = re.compile(_WORD), re.compile(_CAMEL)
    seen: set[str] = set()
    out: list[str] = []
    for text in texts:
        if not isinstance(text, str):
            continue  # a NULL reaches the store's NOT NULL check, which says what is wrong
        for match in word_re.finditer(text):
            word = match.group()
            if word in seen or word.islower() or word.isupper():
                continue
            seen.add(word)
            parts = [p for p in camel_re.split(word) if p]
            if len(parts) > 1:
                out.append(" ".join(parts).lower())
            if len(seen) >= _MAX_IDENTIFIERS:
                return "\n".join(out)
    return "\n".join(out)
