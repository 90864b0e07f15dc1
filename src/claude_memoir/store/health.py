"""Health records: when each part of the pipeline last worked, and last failed and why.

Written by the processes that fail (a worker that cannot import its
dependencies, an agent request refused, a dependency install that failed), read
by ``claude_memoir.health.check_health`` for ``memoir status`` and ``doctor``.
One row per component, so the table never grows.
"""

from __future__ import annotations

from ..values import Record
from .connection import NOW as _NOW
from .connection import Connected

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

    Component = Literal["agent", "worker", "bootstrap"]

# Stored error text is for a status line, not a log: keep it short.
MAX_MESSAGE_CHARS = 500


class HealthRow(Record):
    """One component's record."""

    component: str
    ok_at: str | None
    failed_at: str | None
    reason: str
    message: str
    session: str | None

    @property
    def failing(self) -> bool:
        """True when the last failure is newer than the last success."""
        return bool(self.failed_at) and (not self.ok_at or str(self.failed_at) >= self.ok_at)


class HealthQueries(Connected):
    """Health records of the pipeline's components."""

    def record_failure(self, component: Component, reason: str, message: str,
                       session: str | None = None) -> None:
        """Note that ``component`` failed now, and why."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO health (component, failed_at, reason, message, session)"
                f" VALUES (?, {_NOW}, ?, ?, ?) ON CONFLICT(component) DO UPDATE SET"
                " failed_at = excluded.failed_at, reason = excluded.reason,"
                " message = excluded.message, session = excluded.session,"
                " updated_at = excluded.updated_at",
                (component, reason, message[:MAX_MESSAGE_CHARS], session))

    def record_ok(self, component: Component) -> None:
        """Note that ``component`` worked now (clears a past failure).

        Writes only when a failure is on record: a healthy pipeline's workers
        and agents then never take the write lock for it (a read does not
        wait on a writer in WAL mode).
        """
        row = self.conn.execute("SELECT failed_at, ok_at FROM health WHERE component = ?",
                                (component,)).fetchone()
        if row is None or not row[0] or (row[1] is not None and row[1] > row[0]):
            return
        with self.transaction() as conn:
            conn.execute(
                f"INSERT INTO health (component, ok_at) VALUES (?, {_NOW})"
                " ON CONFLICT(component) DO UPDATE SET ok_at = excluded.ok_at,"
                " updated_at = excluded.updated_at", (component,))

    def health_records(self) -> dict[str, HealthRow]:
        """Every component's record, by component."""
        return {r[0]: HealthRow(*r) for r in self.conn.execute(
            "SELECT component, ok_at, failed_at, reason, message, session FROM health")}

    def count_parked(self) -> tuple[int, int]:
        """(events parked after repeated agent failures, sessions they belong to)."""
        row = self.conn.execute(
            # INDEXED BY: the partial index holds only parked events; without
            # statistics the planner may scan the whole queue instead.
            "SELECT COUNT(*), COUNT(DISTINCT session_id) FROM events INDEXED BY events_parked"
            " WHERE status = 'failed'").fetchone()
        return int(row[0]), int(row[1])

    def count_fallbacks_since(self, since: str, exclude_note: str) -> tuple[int, int]:
        """(fallback summaries written since ``since``, sessions they belong to).

        Summaries whose notes are ``exclude_note`` (the agent found nothing to
        summarize) are not a sign of trouble and are not counted.
        """
        row = self.conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT session_id) FROM summaries"
            " INDEXED BY summaries_fallback"
            " WHERE kind = 'fallback' AND created_at >= ? AND notes != ?",
            (since, exclude_note)).fetchone()
        return int(row[0]), int(row[1])
