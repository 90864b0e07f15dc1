"""The store's rows as small immutable values, and their conversion from SQLite rows."""

from __future__ import annotations

import json
import sqlite3

from ..values import Record

# Hooks import the store on every tool call: no typing, dataclasses, contextlib
# or pathlib at run time (~15 ms of imports together); type names are for
# type checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    SessionStatus = Literal["active", "completed", "failed"]
    EventStatus = Literal["pending", "processed", "failed"]
    SummaryKind = Literal["agent", "fallback"]


class SessionRow(Record):
    """One Claude Code session as stored."""

    id: int
    claude_session_id: str
    project: str
    cwd: str
    status: SessionStatus
    started_at: str
    updated_at: str
    ended_at: str | None
    end_reason: str | None
    worker_pid: int | None
    worker_create_time: float | None
    agent_session_id: str | None
    end_requested_at: str | None
    reprocess_requested_at: str | None
    agent_context_chars: int = 0


class EventRow(Record):
    """One raw tool event from PostToolUse / PostToolUseFailure."""

    id: int
    session_id: int
    prompt_number: int
    tool_name: str
    tool_use_id: str | None
    tool_input: Any
    tool_response: Any
    failed: bool
    error: str | None
    status: EventStatus
    attempts: int
    created_at: str
    hash: str | None = None
    # When its bodies were dropped (tool_input/tool_response are then None).
    pruned_at: str | None = None


class ObservationRow(Record):
    """One observation the agent made."""

    id: int
    session_id: int
    prompt_number: int
    event_ids: list[int]
    type: str
    title: str
    subtitle: str
    facts: list[str]
    narrative: str
    concepts: list[str]
    files_read: list[str]
    files_modified: list[str]
    created_at: str
    # Set when the user corrected it (viewer or `memoir edit`); the agent
    # never overwrites such an observation.
    edited_at: str | None = None


class SummaryRow(Record):
    """The summary of one finished prompt."""

    id: int
    session_id: int
    prompt_number: int
    request: str
    investigated: str
    learned: str
    completed: str
    next_steps: str
    notes: str
    kind: SummaryKind
    created_at: str


class SessionStats(Record):
    """A session with the counts ``memoir sessions`` shows."""

    session: SessionRow
    prompts: int
    events_total: int
    events_pending: int
    observations: int
    summaries: int


def _loads_list(raw: str | None) -> list[Any]:
    try:
        value = json.loads(raw or "[]")
    except ValueError:
        return []
    return value if isinstance(value, list) else []


#: Decode a JSON list column (anything else is []), for the query modules.
loads_list = _loads_list


def _loads_any(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def columns(row: sqlite3.Row) -> dict[str, Any]:
    """A row as {column: value}."""
    # Not `for k in row`: a sqlite3.Row iterates over its values, not its keys.
    return dict(zip(row.keys(), tuple(row), strict=True))


def session_row(row: sqlite3.Row) -> SessionRow:
    return SessionRow(**columns(row))


def event_row(row: sqlite3.Row) -> EventRow:
    data = columns(row)
    del data["processed_at"]
    data["tool_input"] = _loads_any(row["tool_input"])
    data["tool_response"] = _loads_any(row["tool_response"])
    data["failed"] = bool(row["failed"])
    return EventRow(**data)


def observation_row(row: sqlite3.Row) -> ObservationRow:
    data = columns(row)
    data.pop("terms", None)  # the search index's split identifiers (m0004), not a field
    for key in ("event_ids", "facts", "concepts", "files_read", "files_modified"):
        data[key] = _loads_list(row[key])
    return ObservationRow(**data)


def summary_row(row: sqlite3.Row) -> SummaryRow:
    data = columns(row)
    data.pop("terms", None)  # the search index's split identifiers (m0004), not a field
    return SummaryRow(**data)


class UsageDay(Record):
    """The memory agent's usage on one local calendar day in one project.

    Input is split as the API reports it: ``input_tokens`` (uncached),
    ``cache_read_tokens`` and ``cache_write_tokens``. ``cost_usd`` is what the
    SDK reported (0.0 when it reported none); ``tool_calls`` counts the tool
    events the requests carried.
    """

    day: str
    project: str
    requests: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    tool_calls: int = 0


class UsageTotal(Record):
    """The memory agent's usage over a span (all projects)."""

    requests: int = 0
    tokens: int = 0
    cost_usd: float = 0.0


class PromptWork(Record):
    """A prompt of a session with work left for the worker (events or a summary)."""

    number: int
    # A prompts row exists (events before the first prompt are numbered 0).
    recorded: bool
    # Stop marked its turn finished.
    finished: bool
    # Events of it wait for the agent; the oldest one's time.
    pending: int
    oldest_pending_at: str | None
    # Upper bound of the characters its pending events take in a message.
    pending_chars: int
    # The summary it has ('agent', 'fallback') or None.
    summary_kind: str | None
    # It has events, or Claude's reply: a summary is worth asking for.
    did_work: bool
