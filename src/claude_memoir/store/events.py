"""Tool events: the durable queue between hooks and the worker."""

from __future__ import annotations

import json

from ..log import get_logger
from ..paths import digest
from ..text import code_terms
from .connection import NOW as _NOW
from .connection import Connected
from .rows import event_row

# Hooks import the store on every tool call: no typing, dataclasses, contextlib
# or pathlib at run time (~15 ms of imports together); type names are for
# type checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

    from .rows import EventRow

log = get_logger(__name__)

# An event whose processing failed this many times is parked as 'failed'
# instead of being retried forever (a retry storm costs tokens and time);
# `memoir reprocess` gives parked events another chance.
MAX_EVENT_ATTEMPTS = 3


class EventQueries(Connected):
    """Tool events: the durable queue between hooks and the worker."""

    # -- events (the durable queue) -----------------------------------------

    def add_event(
        self,
        session_id: int,
        prompt_number: int,
        tool_name: str,
        tool_input: Any,
        tool_response: Any,
        *,
        tool_use_id: str | None = None,
        failed: bool = False,
        error: str | None = None,
        dedupe: bool = False,
        max_events: int = 0,
    ) -> int | None:
        """Queue one tool event; return its id, or None if it was not queued.

        Not queued: the same tool call again (same ``tool_use_id``); with
        ``dedupe``, an event identical to the session's previous one (same
        hash). ``max_events`` (0: no cap) bounds the events a session keeps
        with their bodies: past it the new event is still queued and the
        oldest make room (:meth:`_make_room`), so the newest work, the part
        the next session needs most, is never what is lost.
        """
        input_json = json.dumps(tool_input, ensure_ascii=False, default=str)
        response_json = json.dumps(tool_response, ensure_ascii=False, default=str)
        event_hash = digest(
            "\x1f".join((tool_name, input_json, response_json, str(int(failed)), error or ""))
            .encode("utf-8", "surrogatepass"))
        with self.transaction() as conn:
            last = conn.execute(
                "SELECT hash FROM events WHERE session_id = ? ORDER BY id DESC LIMIT 1",
                (session_id,),
            ).fetchone()
            if dedupe and last is not None and last[0] == event_hash:
                log.info("event identical to the previous one of session %d; not queued",
                         session_id)
                return None
            cur = conn.execute(
                "INSERT OR IGNORE INTO events (session_id, prompt_number, tool_name, tool_use_id,"
                " tool_input, tool_response, failed, error, hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (session_id, prompt_number, tool_name, tool_use_id, input_json, response_json,
                 int(failed), error, event_hash),
            )
            if cur.rowcount == 0:
                log.info("tool call %s of session %d already queued", tool_use_id, session_id)
                return None
            event_id = int(cur.lastrowid or 0)
            if max_events:
                self._make_room(conn, session_id, max_events)
            conn.execute(f"UPDATE sessions SET updated_at = {_NOW} WHERE id = ?", (session_id,))
            return event_id

    @staticmethod
    def _make_room(conn: Any, session_id: int, max_events: int) -> None:
        """Keep at most ``max_events`` events of a session with bodies: thin the oldest.

        Processed events go first (their observations are stored; the raw
        bodies only cost space), then parked ones; only when every event with
        a body still waits for the agent is the oldest waiting one dropped
        (the agent is that far behind: the newest work matters more).
        """
        held = conn.execute(
            "SELECT COUNT(*) FROM events WHERE session_id = ? AND pruned_at IS NULL",
            (session_id,)).fetchone()[0]
        excess = held - max_events
        if excess <= 0:
            return
        victims = conn.execute(
            "SELECT id, status FROM events WHERE session_id = ? AND pruned_at IS NULL"
            " ORDER BY CASE status WHEN 'processed' THEN 0 WHEN 'failed' THEN 1 ELSE 2 END, id"
            " LIMIT ?", (session_id, excess)).fetchall()
        thinned = [v[0] for v in victims if v[1] != "pending"]
        dropped = [v[0] for v in victims if v[1] == "pending"]
        if thinned:
            marks = ",".join("?" * len(thinned))
            conn.execute(
                "UPDATE events SET tool_input = 'null', tool_response = 'null',"
                f" pruned_at = {_NOW} WHERE id IN ({marks})", thinned)
        if dropped:
            marks = ",".join("?" * len(dropped))
            conn.execute(f"DELETE FROM events WHERE id IN ({marks})", dropped)
            # INFO, like every recorded event: an agent this far behind logs it
            # on each new event, and a warning per tool call would drown the log.
            log.info("session %d holds %d events waiting for the agent (MEMOIR_MAX_EVENTS "
                     "%d); the oldest waiting one(s) dropped: %s", session_id, held,
                     max_events, dropped)

    def pending_events(self, session_id: int, limit: int = 50) -> list[EventRow]:
        """The oldest pending events of a session, in the order they happened."""
        rows = self.conn.execute(
            "SELECT * FROM events WHERE session_id = ? AND status = 'pending' ORDER BY id LIMIT ?",
            (session_id, limit),
        ).fetchall()
        return [event_row(r) for r in rows]

    def pending_events_of_prompt(self, session_id: int, prompt_number: int,
                                 limit: int = 50) -> list[EventRow]:
        """The oldest pending events of one prompt, in the order they happened."""
        rows = self.conn.execute(
            "SELECT * FROM events WHERE session_id = ? AND status = 'pending'"
            " AND prompt_number = ? ORDER BY id LIMIT ?",
            (session_id, prompt_number, limit),
        ).fetchall()
        return [event_row(r) for r in rows]

    def park_events(self, event_ids: Sequence[int]) -> int:
        """Set pending events aside as 'failed' (``memoir reprocess`` queues them again)."""
        if not event_ids:
            return 0
        marks = ",".join("?" * len(event_ids))
        with self.transaction() as conn:
            cur = conn.execute(
                f"UPDATE events SET status = 'failed' WHERE id IN ({marks})"
                " AND status = 'pending'", list(event_ids))
        return cur.rowcount

    def count_pending(self, session_id: int) -> int:
        """How many events of a session wait for the agent."""
        return int(self.conn.execute(
            "SELECT COUNT(*) FROM events WHERE session_id = ? AND status = 'pending'",
            (session_id,),
        ).fetchone()[0])

    def events_for_prompt(self, session_id: int, prompt_number: int) -> list[EventRow]:
        """Every event of one prompt, in order."""
        rows = self.conn.execute(
            "SELECT * FROM events WHERE session_id = ? AND prompt_number = ? ORDER BY id",
            (session_id, prompt_number),
        ).fetchall()
        return [event_row(r) for r in rows]

    def note_attempt(self, event_ids: Sequence[int],
                     park_after: int = MAX_EVENT_ATTEMPTS) -> int:
        """Count a failed attempt on these events; park those that reached ``park_after``.

        Returns how many were parked (status 'failed'); the others stay pending.
        """
        if not event_ids:
            return 0
        marks = ",".join("?" * len(event_ids))
        with self.transaction() as conn:
            conn.execute(
                f"UPDATE events SET attempts = attempts + 1 WHERE id IN ({marks})",
                list(event_ids),
            )
            if park_after <= 0:
                return 0
            cur = conn.execute(
                f"UPDATE events SET status = 'failed' WHERE id IN ({marks})"
                " AND status = 'pending' AND attempts >= ?",
                [*event_ids, park_after],
            )
            return cur.rowcount

    def record_observations(
        self,
        session_id: int,
        event_ids: Sequence[int],
        observations: Iterable[Any],
        prompt_number: int,
        summary: Any = None,
    ) -> list[int]:
        """Store observations and mark their events processed, atomically.

        With ``summary`` (a batch that also closed its prompt) the prompt's
        agent summary is stored in the same transaction.

        One transaction: if the worker dies before COMMIT the events are still
        pending and no observation exists; after it, both are there. Replaying
        after a crash therefore never duplicates an observation. Events already
        processed (a second worker raced us) make this a no-op; if only some
        are, nothing is stored either, and the still-pending ones come back in
        the next batch, so no observation is stored twice.
        """
        ids: list[int] = []
        marks = ",".join("?" * len(event_ids)) or "NULL"
        with self.transaction() as conn:
            still_pending = conn.execute(
                f"SELECT COUNT(*) FROM events WHERE id IN ({marks}) AND status = 'pending'",
                list(event_ids),
            ).fetchone()[0]
            if event_ids and still_pending != len(set(event_ids)):
                return []
            for obs in observations:
                cur = conn.execute(
                    "INSERT INTO observations (session_id, prompt_number, event_ids, type, title,"
                    " subtitle, facts, narrative, concepts, files_read, files_modified, terms)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        session_id,
                        prompt_number,
                        json.dumps(list(event_ids)),
                        obs.type,
                        obs.title,
                        obs.subtitle,
                        json.dumps(list(obs.facts), ensure_ascii=False),
                        obs.narrative,
                        json.dumps(list(obs.concepts), ensure_ascii=False),
                        json.dumps(list(obs.files_read), ensure_ascii=False),
                        json.dumps(list(obs.files_modified), ensure_ascii=False),
                        code_terms(obs.title, obs.subtitle, obs.narrative, *obs.facts,
                                   *obs.concepts, *obs.files_read, *obs.files_modified),
                    ),
                )
                ids.append(int(cur.lastrowid or 0))
            conn.execute(
                f"UPDATE events SET status = 'processed', processed_at = {_NOW},"
                f" attempts = attempts + 1 WHERE id IN ({marks}) AND status = 'pending'",
                list(event_ids),
            )
            if summary is not None:
                # Only the worker gets here: hooks never load the memories module.
                from .memories import save_summary_in

                save_summary_in(conn, session_id, prompt_number, summary, "agent")
        return ids

