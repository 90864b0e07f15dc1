"""Sessions: their lifecycle, worker and agent bookkeeping, listings."""

from __future__ import annotations

from .connection import NOW as _NOW
from .connection import Connected
from .rows import SessionRow, SessionStats, columns, session_row

# Hooks import the store on every tool call: no typing, dataclasses, contextlib
# or pathlib at run time (~15 ms of imports together); type names are for
# type checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3

    from .rows import SessionStatus


def upsert_session_in(conn: sqlite3.Connection, claude_session_id: str, project: str,
                      cwd: str) -> SessionRow:
    """:meth:`SessionQueries.upsert_session` inside the caller's transaction."""
    conn.execute(
        "INSERT INTO sessions (claude_session_id, project, cwd) VALUES (?, ?, ?) "
        "ON CONFLICT(claude_session_id) DO UPDATE SET "
        f" updated_at = {_NOW}, cwd = excluded.cwd, status = 'active',"
        " ended_at = NULL, end_reason = NULL, end_requested_at = NULL",
        (claude_session_id, project, cwd),
    )
    row = conn.execute(
        "SELECT * FROM sessions WHERE claude_session_id = ?", (claude_session_id,)
    ).fetchone()
    return session_row(row)


class SessionQueries(Connected):
    """Sessions: their lifecycle, worker and agent bookkeeping, listings."""

    # -- sessions ----------------------------------------------------------

    def upsert_session(self, claude_session_id: str, project: str, cwd: str) -> SessionRow:
        """Create the session row, or touch it (idempotent; reactivates on resume)."""
        with self.transaction() as conn:
            return upsert_session_in(conn, claude_session_id, project, cwd)

    def get_session(self, claude_session_id: str) -> SessionRow | None:
        """The session with this Claude session id, or None."""
        row = self.conn.execute(
            "SELECT * FROM sessions WHERE claude_session_id = ?", (claude_session_id,)
        ).fetchone()
        return session_row(row) if row else None

    def set_worker(self, session_id: int, pid: int | None, create_time: float | None) -> None:
        """Record (or clear, with None) the worker process serving a session."""
        with self.transaction() as conn:
            conn.execute(
                f"UPDATE sessions SET worker_pid = ?, worker_create_time = ?, updated_at = {_NOW}"
                " WHERE id = ?",
                (pid, create_time, session_id),
            )

    def set_agent_session(self, session_id: int, agent_session_id: str | None) -> None:
        """Remember the memory agent's own SDK session id (for resume)."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE sessions SET agent_session_id = ? WHERE id = ?",
                (agent_session_id, session_id),
            )

    def set_agent_context(self, session_id: int, agent_session_id: str | None,
                          context_chars: int) -> None:
        """Remember the agent's conversation (its SDK session id, for resume) and its size.

        Both in one statement: a resumed conversation must come with its own
        size, and a fresh one (``None``) with 0.
        """
        with self.transaction() as conn:
            conn.execute(
                "UPDATE sessions SET agent_session_id = ?, agent_context_chars = ? WHERE id = ?",
                (agent_session_id, int(context_chars), session_id),
            )

    def set_status(self, session_id: int, status: SessionStatus,
                   reason: str | None = None, *, only_if: SessionStatus | None = None) -> bool:
        """Mark a session active, completed or failed (ending it for the latter two).

        With ``only_if`` the change applies only from that status (e.g. a worker
        completes an *active* session but leaves one SessionEnd marked failed).
        Returns whether a row changed.
        """
        ended = "NULL" if status == "active" else _NOW
        guard, args = (" AND status = ?", [only_if]) if only_if else ("", [])
        with self.transaction() as conn:
            cur = conn.execute(
                f"UPDATE sessions SET status = ?, end_reason = ?,"
                f" ended_at = {ended}, updated_at = {_NOW} WHERE id = ?" + guard,
                [status, reason, session_id, *args],
            )
            return cur.rowcount > 0

    def request_reprocess(self, session_id: int, *, end: bool) -> int:
        """Give a session's parked events another chance and ask for agent summaries.

        Parked events go back to pending with their attempts reset; the worker
        then replaces fallback summaries (``prompts_to_summarize(redo_fallback=
        True)``). ``end`` also asks the worker to exit when done (the session is
        over). Returns how many events were unparked.
        """
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE events SET status = 'pending', attempts = 0"
                " WHERE session_id = ? AND status = 'failed'", (session_id,))
            conn.execute(
                f"UPDATE sessions SET reprocess_requested_at = {_NOW},"
                f" end_requested_at = CASE WHEN ? THEN {_NOW} ELSE end_requested_at END,"
                f" updated_at = {_NOW} WHERE id = ?",
                (int(end), session_id),
            )
            return cur.rowcount

    def clear_reprocess(self, session_id: int) -> None:
        """The worker finished a reprocess pass."""
        with self.transaction() as conn:
            conn.execute("UPDATE sessions SET reprocess_requested_at = NULL WHERE id = ?",
                         (session_id,))

    def request_end(self, session_id: int, reason: str) -> None:
        """Record that Claude Code ended the session (the worker finishes and exits)."""
        with self.transaction() as conn:
            conn.execute(
                f"UPDATE sessions SET end_requested_at = {_NOW}, end_reason = ?,"
                f" updated_at = {_NOW} WHERE id = ?",
                (reason, session_id),
            )

    # -- listings for the CLI ------------------------------------------------

    def session_stats(self, claude_session_id: str | None = None, *,
                      project: str | None = None, limit: int = 0) -> list[SessionStats]:
        """Sessions, newest first, with their counts.

        One session if an id is given; only ``project``'s with it; at most
        ``limit`` (0: all).
        """
        conditions: list[str] = []
        args: list[str] = []
        if claude_session_id:
            conditions.append("s.claude_session_id = ?")
            args.append(claude_session_id)
        if project is not None:
            conditions.append("s.project = ?")
            args.append(project)
        where = ("WHERE " + " AND ".join(conditions)) if conditions else ""
        bound = f" LIMIT {int(limit)}" if limit > 0 else ""
        rows = self.conn.execute(
            "SELECT s.*,"
            " (SELECT COUNT(*) FROM prompts p WHERE p.session_id = s.id) AS n_prompts,"
            " (SELECT COUNT(*) FROM events e WHERE e.session_id = s.id) AS n_events,"
            " (SELECT COUNT(*) FROM events e WHERE e.session_id = s.id"
            "   AND e.status = 'pending') AS n_pending,"
            " (SELECT COUNT(*) FROM observations o WHERE o.session_id = s.id) AS n_obs,"
            " (SELECT COUNT(*) FROM summaries m WHERE m.session_id = s.id) AS n_sum"
            f" FROM sessions s {where} ORDER BY s.started_at DESC, s.id DESC{bound}",
            args,
        ).fetchall()
        out = []
        for r in rows:
            session = SessionRow(**{k: v for k, v in columns(r).items()
                                    if not k.startswith("n_")})
            out.append(SessionStats(session=session, prompts=r["n_prompts"],
                                    events_total=r["n_events"], events_pending=r["n_pending"],
                                    observations=r["n_obs"], summaries=r["n_sum"]))
        return out

    def session_ids_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Claude session ids starting with ``prefix`` (at most ``limit``), sorted."""
        rows = self.conn.execute(
            "SELECT claude_session_id FROM sessions WHERE substr(claude_session_id, 1, ?) = ?"
            " ORDER BY claude_session_id LIMIT ?", (len(prefix), prefix, limit)).fetchall()
        return [str(r[0]) for r in rows]

    def resumable_agent_sessions(self, within_days: float = 1.0) -> list[str]:
        """Agent conversation ids a worker may still resume.

        Those of sessions not ended by Claude Code (no SessionEnd) and active
        within ``within_days``: a session that only went idle may come back.
        """
        rows = self.conn.execute(
            "SELECT agent_session_id FROM sessions WHERE agent_session_id IS NOT NULL"
            " AND end_requested_at IS NULL"
            " AND updated_at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?)",
            (f"-{float(within_days)} days",)).fetchall()
        return [str(r[0]) for r in rows]

    def sessions_with_workers(self) -> list[SessionRow]:
        """Sessions that have a worker pid recorded."""
        rows = self.conn.execute(
            "SELECT * FROM sessions WHERE worker_pid IS NOT NULL ORDER BY id"
        ).fetchall()
        return [session_row(r) for r in rows]

    def active_sessions_without_worker(self) -> list[SessionRow]:
        """Active sessions no worker is recorded for (the plugin's installer wakes these)."""
        rows = self.conn.execute(
            "SELECT * FROM sessions WHERE status = 'active' AND worker_pid IS NULL ORDER BY id"
        ).fetchall()
        return [session_row(r) for r in rows]
