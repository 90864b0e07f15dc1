"""Correcting and forgetting: user edits of observations, deletions, reclaiming space.

The user owns the store: what the viewer and ``memoir edit/forget`` change here
is final. An edited observation is marked (``edited_at``) and a trigger of
migration ``m0009_user_edits`` refuses any later UPDATE that is not itself a
user edit, so no agent path can silently overwrite a correction.
"""

from __future__ import annotations

import json
import time

from ..errors import InvalidInput
from ..log import get_logger
from ..text import code_terms
from .connection import Connected
from .rows import ObservationRow, SessionRow, observation_row, session_row

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

log = get_logger(__name__)

# Bounds of what a user edit may store (the agent's own fields are bounded by
# its prompts; a pasted megabyte in a form must not bloat every context).
MAX_TITLE_CHARS = 500
MAX_NARRATIVE_CHARS = 20_000
MAX_FACTS = 100
MAX_FACT_CHARS = 2_000


def _stamp() -> str:
    """Now, UTC, ISO 8601 with microseconds (sorts with the store's timestamps)."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


class ForgetPlan:
    """What ``forget`` would remove: the sessions and how much hangs off them."""

    __slots__ = ("counts", "sessions")

    def __init__(self, sessions: list[SessionRow], counts: dict[str, int]) -> None:
        self.sessions = sessions
        self.counts = counts


class CurationQueries(Connected):
    """User edits and deletions of observations, summaries, sessions and projects."""

    def get_observation(self, observation_id: int) -> ObservationRow | None:
        """One observation by id, or None."""
        row = self.conn.execute("SELECT * FROM observations WHERE id = ?",
                                (observation_id,)).fetchone()
        return observation_row(row) if row else None

    def edit_observation(self, observation_id: int, *, title: str | None = None,
                         facts: Sequence[str] | None = None,
                         narrative: str | None = None) -> ObservationRow | None:
        """Apply a user's correction and mark the observation edited; None if it is gone.

        Fields left None keep their value. Raises InvalidInput for an empty
        title or text past the bounds (nothing is changed then).
        """
        if title is not None:
            title = title.strip()
            if not title:
                raise InvalidInput("an observation needs a title", reason="bad-edit")
            if len(title) > MAX_TITLE_CHARS:
                raise InvalidInput(f"title longer than {MAX_TITLE_CHARS} characters",
                                   reason="bad-edit")
        if narrative is not None and len(narrative) > MAX_NARRATIVE_CHARS:
            raise InvalidInput(f"narrative longer than {MAX_NARRATIVE_CHARS} characters",
                               reason="bad-edit")
        fact_list: list[str] | None = None
        if facts is not None:
            fact_list = [f.strip() for f in facts if f.strip()]
            if len(fact_list) > MAX_FACTS or any(len(f) > MAX_FACT_CHARS for f in fact_list):
                raise InvalidInput(f"at most {MAX_FACTS} facts of {MAX_FACT_CHARS} characters",
                                   reason="bad-edit")
        with self.transaction() as conn:
            row = conn.execute("SELECT * FROM observations WHERE id = ?",
                               (observation_id,)).fetchone()
            if row is None:
                return None
            current = observation_row(row)
            stamp = _stamp()
            while current.edited_at is not None and stamp <= current.edited_at:
                # The guard trigger accepts an update only with a new edited_at.
                time.sleep(0.001)
                stamp = _stamp()
            title = current.title if title is None else title
            narrative = current.narrative if narrative is None else narrative
            fact_list = current.facts if fact_list is None else fact_list
            conn.execute(
                "UPDATE observations SET title = ?, facts = ?, narrative = ?, terms = ?,"
                " edited_at = ? WHERE id = ?",
                (title, json.dumps(fact_list, ensure_ascii=False), narrative,
                 # Search's split identifiers follow the user's words too.
                 code_terms(title, current.subtitle, narrative, *fact_list,
                            *current.concepts, *current.files_read, *current.files_modified),
                 stamp, observation_id),
            )
        log.info("observation %d edited by the user", observation_id)
        return self.get_observation(observation_id)

    def delete_observation(self, observation_id: int) -> bool:
        """Delete one observation (its search index row goes with it); False if absent."""
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM observations WHERE id = ?", (observation_id,))
        return cur.rowcount > 0

    def delete_summary(self, summary_id: int) -> bool:
        """Delete one summary (and its search index row); False if absent."""
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM summaries WHERE id = ?", (summary_id,))
        return cur.rowcount > 0

    # -- forgetting whole sessions -------------------------------------------

    def sessions_to_forget(self, *, claude_session_id: str | None = None,
                           project: str | None = None,
                           before: str | None = None) -> list[SessionRow]:
        """The sessions one forget selector names (exactly one selector is given).

        ``before``: sessions whose last activity (updated_at) is earlier than
        this ISO date or timestamp, so nothing recent of theirs goes.
        """
        if claude_session_id is not None:
            sql, args = "claude_session_id = ?", (claude_session_id,)
        elif project is not None:
            sql, args = "project = ?", (project,)
        elif before is not None:
            sql, args = "updated_at < ?", (before,)
        else:
            raise InvalidInput("name a session, a project or a date", reason="bad-selector")
        rows = self.conn.execute(f"SELECT * FROM sessions WHERE {sql} ORDER BY id",
                                 args).fetchall()
        return [session_row(r) for r in rows]

    def forget_plan(self, sessions: Sequence[SessionRow]) -> ForgetPlan:
        """Count what forgetting these sessions removes (changes nothing)."""
        counts = {"sessions": len(sessions), "prompts": 0, "events": 0,
                  "observations": 0, "summaries": 0}
        ids = [s.id for s in sessions]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for table in ("prompts", "events", "observations", "summaries"):
                counts[table] += int(self.conn.execute(
                    f"SELECT COUNT(*) FROM {table} WHERE session_id IN ({marks})",
                    chunk).fetchone()[0])
        return ForgetPlan(list(sessions), counts)

    def forget_sessions(self, session_ids: Sequence[int]) -> int:
        """Delete sessions with everything derived from them, in one transaction.

        Prompts, raw events, observations and summaries go by the foreign keys'
        ON DELETE CASCADE, and their FTS5 rows by the delete triggers, so no
        search can find them afterwards. Returns how many sessions went.
        Space is not given back to the file system until :meth:`reclaim_space`.
        """
        removed = 0
        with self.transaction() as conn:
            for start in range(0, len(session_ids), 500):
                chunk = list(session_ids[start:start + 500])
                marks = ",".join("?" * len(chunk))
                # Explicit deletes first (children, then the session): the FTS
                # triggers fire for each row whatever the foreign-key settings.
                for table in ("observations", "summaries", "events", "prompts"):
                    conn.execute(f"DELETE FROM {table} WHERE session_id IN ({marks})", chunk)
                removed += conn.execute(f"DELETE FROM sessions WHERE id IN ({marks})",
                                        chunk).rowcount
        log.info("forgot %d session(s)", removed)
        return removed

    def reclaim_space(self) -> None:
        """Give freed pages back to the file system: merge the FTS indexes, VACUUM.

        VACUUM rewrites the file without the deleted rows (their text is gone
        from disk, not just unlinked); the checkpoint then truncates the WAL,
        into which WAL-mode VACUUM writes, so the file really shrinks.
        """
        # Every FTS5 index, including ones later migrations add (prompts).
        fts_tables = [r[0] for r in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND sql LIKE 'CREATE VIRTUAL TABLE%USING fts5%'")]
        for fts in fts_tables:
            self.conn.execute(f'INSERT INTO "{fts}"("{fts}") VALUES (\'optimize\')')
        self.conn.execute("VACUUM")
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
