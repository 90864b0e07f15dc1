"""What the viewer reads: projects, a project's timeline, a session's prompts and events.

Every query is bounded (a page, a limit) and goes through an index, so a page
costs the same on a store of 10,000 sessions as on one of ten.
"""

from __future__ import annotations

from ..values import Record
from .connection import Connected
from .rows import (
    EventRow,
    ObservationRow,
    SessionRow,
    SummaryRow,
    columns,
    event_row,
    observation_row,
    session_row,
    summary_row,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


class ProjectRow(Record):
    """One project (the key sessions are filed under) with its counts."""

    project: str
    sessions: int
    observations: int
    last_activity: str


class PromptRow(Record):
    """One prompt of a session, with Claude's last reply if Stop reported it."""

    prompt_number: int
    text: str
    response: str | None
    created_at: str
    finished_at: str | None


class TimelineEntry(Record):
    """A session on a project's timeline: its counts and its summaries (newest last)."""

    session: SessionRow
    prompts: int
    observations: int
    summaries: list[SummaryRow]


class NewObservation(Record):
    """An observation with the session and project it belongs to (for live updates)."""

    observation: ObservationRow
    session: str
    project: str


# Summaries shown per session on a timeline: a rolled-up view, not the log.
TIMELINE_SUMMARIES = 3


class BrowsingQueries(Connected):
    """Read-only queries for the viewer."""

    def projects(self) -> list[ProjectRow]:
        """Every project with its session and observation counts, most recent first."""
        rows = self.conn.execute(
            "SELECT s.project, COUNT(*) AS sessions, MAX(s.updated_at) AS last_activity,"
            " COALESCE(SUM((SELECT COUNT(*) FROM observations o"
            "   WHERE o.session_id = s.id)), 0) AS observations"
            " FROM sessions s GROUP BY s.project ORDER BY last_activity DESC"
        ).fetchall()
        return [ProjectRow(project=r["project"], sessions=int(r["sessions"]),
                           observations=int(r["observations"]),
                           last_activity=r["last_activity"]) for r in rows]

    def timeline(self, project: str, *, before: int | None = None,
                 limit: int = 50) -> list[TimelineEntry]:
        """A project's sessions, newest first: a page of ``limit``.

        ``before``: the row id of the last session of the previous page; the
        page goes on after it in (started_at, id) order, so sessions that
        started in the same millisecond are neither skipped nor repeated.
        """
        cursor = ("\uffff", 0)
        if before is not None:
            row = self.conn.execute("SELECT started_at, id FROM sessions WHERE id = ?",
                                    (before,)).fetchone()
            if row is None:
                return []
            cursor = (row[0], int(row[1]))
        rows = self.conn.execute(
            "SELECT s.*,"
            " (SELECT COUNT(*) FROM prompts p WHERE p.session_id = s.id) AS n_prompts,"
            " (SELECT COUNT(*) FROM observations o WHERE o.session_id = s.id) AS n_obs"
            " FROM sessions s WHERE s.project = ?"
            " AND (s.started_at < ? OR (s.started_at = ? AND s.id < ?))"
            " ORDER BY s.started_at DESC, s.id DESC LIMIT ?",
            (project, cursor[0], cursor[0], cursor[1], limit),
        ).fetchall()
        sessions = [(SessionRow(**{k: v for k, v in columns(r).items()
                                   if not k.startswith("n_")}),
                     int(r["n_prompts"]), int(r["n_obs"])) for r in rows]
        summaries = self._latest_summaries([s.id for s, _, _ in sessions], TIMELINE_SUMMARIES)
        return [TimelineEntry(session=s, prompts=p, observations=o,
                              summaries=summaries.get(s.id, []))
                for s, p, o in sessions]

    def _latest_summaries(self, session_ids: Sequence[int],
                          per_session: int) -> dict[int, list[SummaryRow]]:
        if not session_ids:
            return {}
        marks = ",".join("?" * len(session_ids))
        rows = self.conn.execute(
            "SELECT * FROM (SELECT m.*, ROW_NUMBER() OVER (PARTITION BY m.session_id"
            "   ORDER BY m.prompt_number DESC) AS rn"
            f" FROM summaries m WHERE m.session_id IN ({marks}))"
            " WHERE rn <= ? ORDER BY session_id, prompt_number",
            [*session_ids, per_session],
        ).fetchall()
        out: dict[int, list[SummaryRow]] = {}
        for r in rows:
            data = columns(r)
            del data["rn"]
            data.pop("terms", None)  # search's split identifiers (m0004), not a field
            out.setdefault(int(r["session_id"]), []).append(SummaryRow(**data))
        return out

    def session_by_row_id(self, session_id: int) -> SessionRow | None:
        """A session by its row id, or None."""
        row = self.conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return session_row(row) if row else None

    def prompts_for_session(self, session_id: int) -> list[PromptRow]:
        """A session's prompts in order."""
        rows = self.conn.execute(
            "SELECT prompt_number, text, response, created_at, finished_at FROM prompts"
            " WHERE session_id = ? ORDER BY prompt_number", (session_id,)).fetchall()
        return [PromptRow(**columns(r)) for r in rows]

    def events_for_session(self, session_id: int, limit: int) -> list[EventRow]:
        """A session's raw tool events in order (at most ``limit``)."""
        rows = self.conn.execute(
            "SELECT * FROM events WHERE session_id = ? ORDER BY id LIMIT ?",
            (session_id, limit)).fetchall()
        return [event_row(r) for r in rows]

    def summary_by_id(self, summary_id: int) -> SummaryRow | None:
        """One summary by id, or None."""
        row = self.conn.execute("SELECT * FROM summaries WHERE id = ?", (summary_id,)).fetchone()
        return summary_row(row) if row else None

    def last_observation_id(self) -> int:
        """The newest observation's id (0 when there is none)."""
        return int(self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM observations")
                   .fetchone()[0])

    def observations_after(self, after_id: int, limit: int = 50) -> list[NewObservation]:
        """Observations with an id above ``after_id``, oldest first, with session and project."""
        rows = self.conn.execute(
            "SELECT * FROM observations WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit)).fetchall()
        observations = [observation_row(r) for r in rows]
        ids = sorted({o.session_id for o in observations})
        owners: dict[int, tuple[str, str]] = {}
        if ids:
            marks = ",".join("?" * len(ids))
            owners = {int(r[0]): (r[1], r[2]) for r in self.conn.execute(
                "SELECT id, claude_session_id, project FROM sessions"
                f" WHERE id IN ({marks})", ids)}
        return [NewObservation(observation=o, session=owners[o.session_id][0],
                               project=owners[o.session_id][1])
                for o in observations if o.session_id in owners]
