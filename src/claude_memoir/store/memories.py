"""Observations and summaries: what the agent made of the events, and what later sessions read."""

from __future__ import annotations

from ..text import code_terms
from .connection import NOW as _NOW
from .connection import Connected
from .rows import SessionRow, SummaryRow, columns, observation_row, summary_row

# Hooks import the store on every tool call: no typing, dataclasses, contextlib
# or pathlib at run time (~15 ms of imports together); type names are for
# type checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .rows import ObservationRow, SummaryKind


def save_summary_in(conn: Any, session_id: int, prompt_number: int, summary: Any,
                    kind: SummaryKind) -> int:
    """Store (or replace) a summary inside the transaction ``conn`` holds; its id."""
    fields = (summary.request, summary.investigated, summary.learned,
              summary.completed, summary.next_steps, summary.notes)
    conn.execute(
        "INSERT INTO summaries (session_id, prompt_number, request, investigated,"
        " learned, completed, next_steps, notes, kind, terms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(session_id, prompt_number) DO UPDATE SET"
        " request = excluded.request, investigated = excluded.investigated,"
        " learned = excluded.learned, completed = excluded.completed,"
        " next_steps = excluded.next_steps, notes = excluded.notes,"
        f" kind = excluded.kind, terms = excluded.terms, created_at = {_NOW}",
        (session_id, prompt_number, *fields, kind, code_terms(*fields)),
    )
    row = conn.execute(
        "SELECT id FROM summaries WHERE session_id = ? AND prompt_number = ?",
        (session_id, prompt_number),
    ).fetchone()
    return int(row[0])


class MemoryQueries(Connected):
    """Observations and summaries: what the agent made of events, and what sessions read."""

    # -- summaries -----------------------------------------------------------

    def save_summary(self, session_id: int, prompt_number: int, summary: Any,
                     kind: SummaryKind = "agent") -> int:
        """Store (or replace) the summary of one prompt; return its id."""
        with self.transaction() as conn:
            return save_summary_in(conn, session_id, prompt_number, summary, kind)

    def summary_numbers(self, session_id: int) -> set[int]:
        """Prompt numbers of a session that already have a summary."""
        return {int(r[0]) for r in self.conn.execute(
            "SELECT prompt_number FROM summaries WHERE session_id = ?", (session_id,))}

    def summaries_for_session(self, session_id: int) -> list[SummaryRow]:
        """A session's summaries in prompt order."""
        rows = self.conn.execute(
            "SELECT * FROM summaries WHERE session_id = ? ORDER BY prompt_number", (session_id,)
        ).fetchall()
        return [summary_row(r) for r in rows]

    def observations_for_session(self, session_id: int) -> list[ObservationRow]:
        """A session's observations in the order they were made."""
        rows = self.conn.execute(
            "SELECT * FROM observations WHERE session_id = ? ORDER BY id", (session_id,)
        ).fetchall()
        return [observation_row(r) for r in rows]

    # -- what the next session sees -----------------------------------------

    def recent_summaries(self, project: str, limit: int,
                         exclude_session: str | None = None) -> list[tuple[SessionRow, SummaryRow]]:
        """The newest summaries of a project, newest first, with their sessions."""
        rows = self.conn.execute(
            "SELECT s.*, m.id AS m_id, m.session_id AS m_session_id,"
            " m.prompt_number AS m_prompt_number, m.request AS m_request,"
            " m.investigated AS m_investigated, m.learned AS m_learned,"
            " m.completed AS m_completed, m.next_steps AS m_next_steps, m.notes AS m_notes,"
            " m.kind AS m_kind, m.created_at AS m_created_at"
            " FROM summaries m JOIN sessions s ON s.id = m.session_id"
            " WHERE s.project = ? AND s.claude_session_id IS NOT ?"
            " ORDER BY m.created_at DESC, m.id DESC LIMIT ?",
            (project, exclude_session, limit),
        ).fetchall()
        out = []
        for r in rows:
            data = columns(r)
            session = SessionRow(**{k: v for k, v in data.items() if not k.startswith("m_")})
            summary = SummaryRow(**{k[2:]: v for k, v in data.items() if k.startswith("m_")})
            out.append((session, summary))
        return out

    def recent_observations(self, project: str, limit: int,
                            exclude_session: str | None = None) -> list[ObservationRow]:
        """The newest observations of a project, newest first."""
        # Ids first, through the covering index observations_session, then the
        # rows: selecting o.* directly read and sorted every observation of
        # the project (4,000 rows, 12 ms at 200k observations) to keep 15.
        rows = self.conn.execute(
            "SELECT * FROM observations WHERE id IN ("
            " SELECT o.id FROM observations o JOIN sessions s ON s.id = o.session_id"
            " WHERE s.project = ? AND s.claude_session_id IS NOT ?"
            " ORDER BY o.id DESC LIMIT ?) ORDER BY id DESC",
            (project, exclude_session, limit),
        ).fetchall()
        return [observation_row(r) for r in rows]

