"""Tolerant parser for the memory agent's replies.

The agent answers in the XML blocks described in DESIGN.md ("The agent's output
format"). Its output is written by a small LLM, so it is XML only in spirit:
stray ``&`` and ``<`` inside code, prose around the blocks, unclosed tags when a
reply is cut off, odd capitalisation. An XML parser would reject most of that,
so this module scans with regular expressions and never raises on bad input:
missing fields come back empty, unparseable text gives no observations.

Everything is capped (see the ``MAX_*`` constants) because a runaway model must
not be able to write megabytes into the store through one reply.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator

from ..values import Record
from .models import (
    DEFAULT_OBSERVATION_TYPE,
    OBSERVATION_TYPES,
    Observation,
    ObservationType,
    Summary,
)

MAX_TITLE_CHARS = 200
MAX_SUBTITLE_CHARS = 300
#: Cap for every other text field and for each list item.
MAX_TEXT_CHARS = 10_000
MAX_LIST_ITEMS = 50
MAX_OBSERVATIONS = 50


# --------------------------------------------------------------------------- #
# Scanning primitives
# --------------------------------------------------------------------------- #

# Attributes are bounded and may not contain '<' or '>' so that a stray "<title"
# in prose cannot make the pattern run across the rest of the reply.
_ATTRS = r"(?=[\s/>])[^<>]{0,1000}>"


def _open_re(names: Iterable[str]) -> re.Pattern[str]:
    """Pattern for an opening (or self-closing) tag of any of ``names``."""
    alternatives = "|".join(re.escape(n) for n in names)
    return re.compile(rf"<\s*(?:{alternatives}){_ATTRS}", re.IGNORECASE)


def _close_re(names: Iterable[str]) -> re.Pattern[str]:
    """Pattern for a closing tag of any of ``names``, whitespace tolerated."""
    alternatives = "|".join(re.escape(n) for n in names)
    return re.compile(rf"<\s*/\s*(?:{alternatives})\s*>", re.IGNORECASE)


def _spans(
    text: str,
    open_re: re.Pattern[str],
    close_re: re.Pattern[str],
    stop_re: re.Pattern[str] | None,
    start: int,
    end: int,
) -> Iterator[tuple[int, int]]:
    """Yield ``(body_start, body_end)`` of each element found in ``text[start:end]``.

    A body ends at its closing tag, searched only up to the next opening tag of
    the same element so one unclosed element cannot swallow its successors.
    Without a closing tag (a truncated reply, a forgotten ``</title>``) the body
    ends at the next ``stop_re`` match (a sibling's opening tag), the next
    opening of the same element, or ``end``. Every search is bounded by the
    next opening, so the scan stays linear even on adversarial input.
    """
    pos = start
    while pos < end:
        opening = open_re.search(text, pos, end)
        if opening is None:
            return
        body_start = opening.end()
        if opening.group().endswith("/>"):
            # <facts/> and friends: present but empty.
            yield body_start, body_start
            pos = body_start
            continue
        following = open_re.search(text, body_start, end)
        same_limit = following.start() if following else end
        closing = close_re.search(text, body_start, same_limit)
        if closing is not None:
            yield body_start, closing.start()
            pos = closing.end()
            continue
        body_end = same_limit
        if stop_re is not None:
            stop = stop_re.search(text, body_start, same_limit)
            if stop is not None:
                body_end = stop.start()
        yield body_start, body_end
        pos = body_end


_CDATA = re.compile(r"<!\[CDATA\[(.*?)(?:\]\]>|\Z)", re.DOTALL)


def _neutralize_cdata(text: str) -> str:
    """Replace CDATA sections by their escaped content.

    Escaping (rather than just dropping the wrapper) keeps tag-like text inside
    CDATA from being read as structure, and the later ``html.unescape`` of
    every value turns it back into exactly the literal CDATA content.
    """
    if "<![" not in text:
        return text
    return _CDATA.sub(lambda m: html.escape(m.group(1), quote=False), text)


def _clean(raw: str, cap: int) -> str:
    """Unescape entities, strip, and cap a single value."""
    value = html.unescape(raw).strip()
    if len(value) > cap:
        # Re-strip: the cut may land just after whitespace.
        value = value[:cap].rstrip()
    return value


_BULLET = re.compile(r"^(?:[-*\u2022]\s+)")


class _Element:
    """Precompiled patterns for one element name inside a known parent."""

    __slots__ = ("name", "open", "close")

    def __init__(self, name: str, *aliases: str) -> None:
        self.name = name
        self.open = _open_re((name, *aliases))
        self.close = _close_re((name, *aliases))

    def first(self, text: str, stop_re: re.Pattern[str] | None) -> str | None:
        """Raw body of the first occurrence in ``text``, or None if absent."""
        for body_start, body_end in _spans(text, self.open, self.close, stop_re, 0, len(text)):
            return text[body_start:body_end]
        return None


def _text_field(body: str, element: _Element, stop_re: re.Pattern[str], cap: int) -> str:
    """Cleaned text of ``element`` in ``body``; empty when missing."""
    raw = element.first(body, stop_re)
    return "" if raw is None else _clean(raw, cap)


def _list_field(
    body: str,
    container: _Element,
    child: _Element,
    stop_re: re.Pattern[str],
) -> list[str]:
    """Items of a list container such as ``<facts><fact>..</fact></facts>``.

    When the container has no child tags but has text, the model wrote a plain
    list, so each non-empty line (bullet stripped) is an item.
    """
    raw = container.first(body, stop_re)
    if not raw:
        return []
    items: list[str] = []
    spans = list(_spans(raw, child.open, child.close, None, 0, len(raw)))
    if spans:
        candidates: Iterable[str] = (raw[s:e] for s, e in spans)
        items = _unique_capped(_clean(c, MAX_TEXT_CHARS) for c in candidates)
    else:
        lines = (_BULLET.sub("", line.strip()) for line in raw.splitlines())
        items = _unique_capped(_clean(line, MAX_TEXT_CHARS) for line in lines)
    return items


def _unique_capped(values: Iterable[str]) -> list[str]:
    """Non-empty values, first occurrence kept, at most ``MAX_LIST_ITEMS``."""
    seen: set[str] = set()
    out: list[str] = []
    for value in values:
        if not value or value in seen:
            continue
        seen.add(value)
        out.append(value)
        if len(out) >= MAX_LIST_ITEMS:
            break
    return out


# --------------------------------------------------------------------------- #
# Observations
# --------------------------------------------------------------------------- #

_OBSERVATION = _Element("observation")
_SUMMARY = _Element("summary")
# An unclosed observation must not run into a summary that follows it (and the
# other way round), so each stops at the other's opening tag.
_OBSERVATION_STOP = _open_re(("observation", "summary"))
_SUMMARY_STOP = _OBSERVATION_STOP

_TYPE = _Element("type")
_TITLE = _Element("title")
_SUBTITLE = _Element("subtitle")
_FACTS = _Element("facts")
_NARRATIVE = _Element("narrative")
_CONCEPTS = _Element("concepts")
_FILES_READ = _Element("files_read")
_FILES_MODIFIED = _Element("files_modified")
# Children: the documented name first, then names models drift to.
_FACT = _Element("fact", "item")
_CONCEPT = _Element("concept", "item")
_FILE = _Element("file", "path", "item")

_OBSERVATION_FIELDS_STOP = _open_re(
    (
        "type",
        "title",
        "subtitle",
        "facts",
        "narrative",
        "concepts",
        "files_read",
        "files_modified",
    )
)


def _normalize_type(raw: str) -> ObservationType:
    """Map the agent's type to an ``ObservationType``; unknown -> "change"."""
    # "Bug-Fix", " bugfix " and "bug_fix" all mean bugfix.
    key = re.sub(r"[^a-z]", "", html.unescape(raw).lower())
    if key in OBSERVATION_TYPES:
        return key  # type: ignore[return-value]
    return DEFAULT_OBSERVATION_TYPE


def _parse_observation(body: str) -> Observation | None:
    """Build an observation from a block body; None when it says nothing."""
    stop = _OBSERVATION_FIELDS_STOP
    title = _text_field(body, _TITLE, stop, MAX_TITLE_CHARS)
    narrative = _text_field(body, _NARRATIVE, stop, MAX_TEXT_CHARS)
    facts = _list_field(body, _FACTS, _FACT, stop)
    if not (title or narrative or facts):
        return None
    raw_type = _TYPE.first(body, stop)
    return Observation(
        type=_normalize_type(raw_type or ""),
        title=title,
        subtitle=_text_field(body, _SUBTITLE, stop, MAX_SUBTITLE_CHARS),
        facts=facts,
        narrative=narrative,
        concepts=_list_field(body, _CONCEPTS, _CONCEPT, stop),
        files_read=_list_field(body, _FILES_READ, _FILE, stop),
        files_modified=_list_field(body, _FILES_MODIFIED, _FILE, stop),
    )


def parse_observations(text: str) -> list[Observation]:
    """Return every non-empty ``<observation>`` block of ``text``, in order.

    Tags are matched case-insensitively, attributes and whitespace are allowed,
    prose between blocks is ignored, and a final block cut off without its
    closing tag is read up to the end of the text. Blocks with no title, no
    narrative and no facts are dropped as noise. At most ``MAX_OBSERVATIONS``
    are returned. Never raises on malformed input.
    """
    if not text or not isinstance(text, str):
        return []
    text = _neutralize_cdata(text)
    found: list[Observation] = []
    spans = _spans(text, _OBSERVATION.open, _OBSERVATION.close, _OBSERVATION_STOP, 0, len(text))
    for body_start, body_end in spans:
        observation = _parse_observation(text[body_start:body_end])
        if observation is None:
            continue
        found.append(observation)
        if len(found) >= MAX_OBSERVATIONS:
            break
    return found


# --------------------------------------------------------------------------- #
# Summaries
# --------------------------------------------------------------------------- #

_SUMMARY_FIELDS: tuple[_Element, ...] = tuple(
    _Element(name)
    for name in ("request", "investigated", "learned", "completed", "next_steps", "notes")
)
_SUMMARY_FIELDS_STOP = _open_re(e.name for e in _SUMMARY_FIELDS)


def _parse_summary_body(body: str) -> Summary | None:
    """Build a summary from a block body; None when every field is empty."""
    values = {
        element.name: _text_field(body, element, _SUMMARY_FIELDS_STOP, MAX_TEXT_CHARS)
        for element in _SUMMARY_FIELDS
    }
    if not any(values.values()):
        return None
    return Summary(**values)


def parse_summary(text: str) -> Summary | None:
    """Return the last non-empty ``<summary>`` block of ``text``, or None.

    The agent may restate its summary, so the last version wins. A block whose
    fields are all empty (or ``<skip_summary/>``, or no block at all) yields
    None; an empty restatement does not discard an earlier real summary.
    Same tolerance as ``parse_observations``; never raises on malformed input.
    """
    if not text or not isinstance(text, str):
        return None
    text = _neutralize_cdata(text)
    chosen: Summary | None = None
    for body_start, body_end in _spans(
        text, _SUMMARY.open, _SUMMARY.close, _SUMMARY_STOP, 0, len(text)
    ):
        summary = _parse_summary_body(text[body_start:body_end])
        if summary is not None:
            chosen = summary
    return chosen


# --------------------------------------------------------------------------- #
# A whole reply
# --------------------------------------------------------------------------- #

_SKIP_SUMMARY = re.compile(r"<\s*skip_summary\b", re.IGNORECASE)


class Reply(Record):
    """Everything one agent reply holds: observations, and a summary if asked for."""

    observations: list[Observation] = []
    summary: Summary | None = None
    # The agent said there was nothing to summarize (<skip_summary/>).
    skipped_summary: bool = False


def parse_reply(text: str) -> Reply:
    """Parse a reply to a batch: its observations, then its summary (if any).

    A reply to a finished prompt's batch carries both; ``parse_summary`` and
    ``parse_observations`` already keep each other's blocks apart, so one
    reply yields both as if they had come in separate replies.
    """
    if not text or not isinstance(text, str):
        return Reply()
    summary = parse_summary(text)
    return Reply(observations=parse_observations(text), summary=summary,
                 skipped_summary=summary is None and bool(_SKIP_SUMMARY.search(text)))
