"""The memory agent's requests and what they cost, as the SDK reported it."""

from __future__ import annotations

from .connection import NOW as _NOW
from .connection import Connected
from .rows import UsageDay, UsageTotal

# Hooks import the store on every tool call: no typing at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    RequestKind = Literal["observe", "summary", "observe+summary"]

# Timestamps are stored in UTC ('%Y-%m-%dT%H:%M:%fZ'); days are the user's
# local calendar days, so "today's spend" and the budget reset at local midnight.
_STAMP = "'%Y-%m-%dT%H:%M:%fZ'"
# Agent requests are kept this long (and go with their session when it is
# deleted): enough for a year's `memoir usage`, bounded whatever happens.
USAGE_RETENTION_DAYS = 400
_TODAY_START = f"strftime({_STAMP}, 'now', 'localtime', 'start of day', 'utc')"


class UsageQueries(Connected):
    """Agent requests: one row per request, usage per day, today's spend."""

    def record_agent_request(self, session_id: int, *, kind: RequestKind, events: int,
                             model: str, agent_session_id: str | None, usage: Any,
                             ok: bool = True) -> float | None:
        """Store one agent request's usage; return its cost in USD (None if not reported).

        ``usage`` has ``input_tokens``, ``output_tokens``, ``cache_read_tokens``,
        ``cache_write_tokens`` and ``cost_total_usd``: the running total the
        agent's CLI reports for its SDK session (it carries on across a resume),
        so this request's cost is the difference to the last total recorded
        for the same agent session. A request whose row was lost (a worker
        killed in between) is thereby billed to the next one, not forgotten.
        """
        total = usage.cost_total_usd
        with self.transaction() as conn:
            cost: float | None = None
            if total is not None:
                previous = None
                if agent_session_id:
                    row = conn.execute(
                        "SELECT cost_total_usd FROM agent_requests WHERE agent_session_id = ?"
                        " AND cost_total_usd IS NOT NULL ORDER BY id DESC LIMIT 1",
                        (agent_session_id,)).fetchone()
                    previous = row[0] if row else None
                cost = float(total) - previous if previous is not None and \
                    total >= previous else float(total)
            conn.execute(
                "INSERT INTO agent_requests (session_id, kind, events, model, agent_session_id,"
                " input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd,"
                " cost_total_usd, ok) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (session_id, kind, int(events), model, agent_session_id,
                 int(usage.input_tokens), int(usage.output_tokens),
                 int(usage.cache_read_tokens), int(usage.cache_write_tokens), cost,
                 None if total is None else float(total), int(ok)))
            conn.execute(f"UPDATE sessions SET updated_at = {_NOW} WHERE id = ?", (session_id,))
        return cost

    def usage_per_day(self, since: str, project: str | None) -> list[UsageDay]:
        """Usage per local day and project from local date ``since`` (YYYY-MM-DD) on.

        ``project`` None: every project. Oldest day first, then by project.
        """
        where = f"r.created_at >= strftime({_STAMP}, ?, 'utc')"
        args: list[Any] = [since]
        if project is not None:
            where += " AND s.project = ?"
            args.append(project)
        rows = self.conn.execute(
            "SELECT date(r.created_at, 'localtime') AS day, s.project, COUNT(*),"
            " SUM(r.input_tokens), SUM(r.output_tokens), SUM(r.cache_read_tokens),"
            " SUM(r.cache_write_tokens), COALESCE(SUM(r.cost_usd), 0.0), SUM(r.events)"
            " FROM agent_requests r JOIN sessions s ON s.id = r.session_id"
            f" WHERE {where} GROUP BY day, s.project ORDER BY day, s.project",
            args).fetchall()
        return [UsageDay(day=r[0], project=r[1], requests=int(r[2]), input_tokens=int(r[3]),
                         output_tokens=int(r[4]), cache_read_tokens=int(r[5]),
                         cache_write_tokens=int(r[6]), cost_usd=float(r[7]),
                         tool_calls=int(r[8])) for r in rows]

    def usage_today(self) -> UsageTotal:
        """Every project's agent usage since local midnight (what the budget counts)."""
        row = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(input_tokens + output_tokens + cache_read_tokens"
            " + cache_write_tokens), 0), COALESCE(SUM(cost_usd), 0.0)"
            f" FROM agent_requests WHERE created_at >= {_TODAY_START}").fetchone()
        return UsageTotal(requests=int(row[0]), tokens=int(row[1]), cost_usd=float(row[2]))

    def prune_usage(self, keep_days: int) -> int:
        """Delete agent requests older than ``keep_days`` days; return how many."""
        with self.transaction() as conn:
            cur = conn.execute(
                f"DELETE FROM agent_requests WHERE created_at < strftime({_STAMP}, 'now', ?)",
                (f"-{int(keep_days)} days",))
        return cur.rowcount
