"""Prompts: numbered per session, finished by Stop, summarized once."""

from __future__ import annotations

from ..text import code_terms
from .connection import NOW as _NOW
from .connection import Connected
from .rows import PromptWork
from .sessions import upsert_session_in

# Hooks import the store on every tool call: no typing, dataclasses, contextlib
# or pathlib at run time (~15 ms of imports together); type names are for
# type checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3

    from .rows import SessionRow

# Characters an event's rendering adds to its input and output (tags, tool,
# time): part of the estimate of a pending batch's size.
EVENT_OVERHEAD_CHARS = 200


def _add_prompt_in(conn: sqlite3.Connection, session_id: int, text: str,
                   created_at: str | None) -> int:
    if created_at is not None:
        same = conn.execute(
            "SELECT prompt_number FROM prompts WHERE session_id = ? AND created_at = ?"
            " AND text = ?", (session_id, created_at, text)).fetchone()
        if same is not None:
            return int(same[0])
    number = conn.execute(
        "SELECT COALESCE(MAX(prompt_number), 0) + 1 FROM prompts WHERE session_id = ?",
        (session_id,),
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO prompts (session_id, prompt_number, text, terms, created_at)"
        f" VALUES (?, ?, ?, ?, COALESCE(?, {_NOW}))",
        (session_id, number, text, code_terms(text), created_at),
    )
    conn.execute(f"UPDATE sessions SET updated_at = {_NOW} WHERE id = ?", (session_id,))
    return int(number)


class PromptQueries(Connected):
    """Prompts: numbered per session, finished by Stop, summarized once."""

    # -- prompts -----------------------------------------------------------

    def add_prompt(self, session_id: int, text: str, *, created_at: str | None = None) -> int:
        """Store the user's prompt under the session's next number; return it.

        ``created_at`` (a replayed spool file: when its hook ran) is kept as the
        prompt's time and makes the call idempotent: the same text at the same
        time in the same session is the same prompt, stored once, so two
        workers replaying one spool file (or one replaying it again after a
        crash before the unlink) never number it twice.
        """
        with self.transaction() as conn:
            return _add_prompt_in(conn, session_id, text, created_at)

    def record_prompt(self, claude_session_id: str, project: str, cwd: str, text: str, *,
                      created_at: str | None = None) -> tuple[SessionRow, int]:
        """Upsert the session and add its prompt (:meth:`add_prompt`) in one transaction.

        What UserPromptSubmit stores: one commit, one fsync, where the two
        calls apart cost the hook two (~0.5 ms each on the user's every prompt).
        """
        with self.transaction() as conn:
            session = upsert_session_in(conn, claude_session_id, project, cwd)
            return session, _add_prompt_in(conn, session.id, text, created_at)

    def current_prompt_number(self, session_id: int) -> int:
        """The latest prompt's number (0 if the session has none yet)."""
        return int(self.conn.execute(
            "SELECT COALESCE(MAX(prompt_number), 0) FROM prompts WHERE session_id = ?",
            (session_id,),
        ).fetchone()[0])

    def prompt_number_at(self, session_id: int, at: str) -> int:
        """The number of the prompt that was current at time ``at`` (0 if none was yet).

        For a replayed tool event or Stop: it belongs to the prompt of its
        time, even when later prompts were stored before it was replayed.
        """
        return int(self.conn.execute(
            "SELECT COALESCE(MAX(prompt_number), 0) FROM prompts"
            " WHERE session_id = ? AND created_at <= ?",
            (session_id, at),
        ).fetchone()[0])

    def finish_prompt(self, session_id: int, prompt_number: int,
                      response: str | None) -> None:
        """Mark a prompt's turn finished (Stop), keeping Claude's last reply."""
        with self.transaction() as conn:
            conn.execute(
                f"UPDATE prompts SET finished_at = COALESCE(finished_at, {_NOW}),"
                " response = COALESCE(?, response)"
                " WHERE session_id = ? AND prompt_number = ?",
                (response, session_id, prompt_number),
            )

    def prompt_response(self, session_id: int, prompt_number: int) -> str | None:
        """Claude's last reply for a prompt, as Stop reported it."""
        row = self.conn.execute(
            "SELECT response FROM prompts WHERE session_id = ? AND prompt_number = ?",
            (session_id, prompt_number),
        ).fetchone()
        return row[0] if row else None

    def prompts_to_summarize(self, session_id: int, *, include_open: bool = False,
                             redo_fallback: bool = False) -> list[int]:
        """Prompt numbers that did work and have no summary yet, oldest first.

        A prompt counts once Stop finished it, or always with ``include_open``
        (the session is ending and an unfinished turn is all there will be).
        It "did work" if it has events or a reply from Claude; an empty turn is
        not worth an LLM call. ``redo_fallback`` also lists prompts whose summary
        is only a fallback (reprocess).
        """
        finished = "" if include_open else " AND p.finished_at IS NOT NULL"
        rows = self.conn.execute(
            "SELECT p.prompt_number FROM prompts p"
            " WHERE p.session_id = ?" + finished +
            " AND NOT EXISTS (SELECT 1 FROM summaries m WHERE m.session_id = p.session_id"
            "   AND m.prompt_number = p.prompt_number"
            + ("   AND m.kind = 'agent'" if redo_fallback else "") + ")"
            " AND (EXISTS (SELECT 1 FROM events e WHERE e.session_id = p.session_id"
            "   AND e.prompt_number = p.prompt_number) OR COALESCE(p.response, '') != '')"
            " ORDER BY p.prompt_number",
            (session_id,),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def prompt_text(self, session_id: int, prompt_number: int) -> str | None:
        """The text of one prompt, or None."""
        row = self.conn.execute(
            "SELECT text FROM prompts WHERE session_id = ? AND prompt_number = ?",
            (session_id, prompt_number),
        ).fetchone()
        return row[0] if row else None


    def prompt_work(self, session_id: int, *, field_chars: int,
                    redo_fallback: bool = False) -> list[PromptWork]:
        """Every prompt of a session with work left, oldest first.

        Work is pending events, or a recorded prompt without a summary (with
        ``redo_fallback``, without an agent summary). Everything the worker
        decides from (finished or not, how many pending events, how old and
        how large) is durable, so a restarted worker decides the same.
        ``pending_chars`` bounds what the pending events take in a message:
        each input and output counted up to ``field_chars``.
        """
        kinds = " AND m.kind = 'agent'" if redo_fallback else ""
        pending = ("FROM events e WHERE e.session_id = :s AND e.prompt_number = nums.n"
                   " AND e.status = 'pending'")
        rows = self.conn.execute(
            "WITH nums(n) AS ("
            " SELECT prompt_number FROM events WHERE session_id = :s AND status = 'pending'"
            " UNION"
            " SELECT p.prompt_number FROM prompts p WHERE p.session_id = :s AND NOT EXISTS ("
            "  SELECT 1 FROM summaries m WHERE m.session_id = p.session_id"
            f"  AND m.prompt_number = p.prompt_number{kinds}))"
            " SELECT nums.n, p.id IS NOT NULL, p.finished_at IS NOT NULL,"
            f" (SELECT COUNT(*) {pending}), (SELECT MIN(e.created_at) {pending}),"
            " (SELECT COALESCE(SUM(MIN(length(e.tool_input), :f)"
            f"  + MIN(length(e.tool_response), :f) + :o), 0) {pending}),"
            " (SELECT m.kind FROM summaries m WHERE m.session_id = :s"
            "  AND m.prompt_number = nums.n),"
            " EXISTS (SELECT 1 FROM events e WHERE e.session_id = :s"
            "  AND e.prompt_number = nums.n) OR COALESCE(p.response, '') != ''"
            " FROM nums LEFT JOIN prompts p ON p.session_id = :s AND p.prompt_number = nums.n"
            " ORDER BY nums.n",
            {"s": session_id, "f": int(field_chars), "o": EVENT_OVERHEAD_CHARS},
        ).fetchall()
        return [PromptWork(number=int(r[0]), recorded=bool(r[1]), finished=bool(r[2]),
                           pending=int(r[3]), oldest_pending_at=r[4], pending_chars=int(r[5]),
                           summary_kind=r[6], did_work=bool(r[7])) for r in rows]
