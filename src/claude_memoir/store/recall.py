"""What recall reads: a project's recent work for SessionStart, and what hooks inject.

SessionStart builds "where were we?" from these (sessions that did work, their
summaries and observations, failures, modified files); prompt- and file-time
recall look observations up by words and by file, and remember what they
injected per session (table ``injections``) so nothing is injected twice.
"""

from __future__ import annotations

from .connection import Connected
from .rows import observation_row, session_row, summary_row

# Hooks import the store on every tool call: no typing, dataclasses, contextlib
# or pathlib at run time; type names are for type checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Literal

    from .rows import ObservationRow, SessionRow, SummaryRow

    InjectionKind = Literal["observation", "file"]

# A summary "did work" unless its prompt had no tool event and no observation
# and the summary says nothing (a fallback built from zero events, or an agent
# summary with only the request): a "what did we do last time?" prompt must not
# push real work out of the context.
_DID_WORK = (
    "((m.kind = 'agent' AND (m.investigated || m.learned || m.completed || m.next_steps) != '')"
    " OR EXISTS (SELECT 1 FROM observations o WHERE o.session_id = m.session_id"
    "   AND o.prompt_number = m.prompt_number)"
    " OR EXISTS (SELECT 1 FROM events e WHERE e.session_id = m.session_id"
    "   AND e.prompt_number = m.prompt_number))"
)

# Tools whose successful call modifies the file named by tool_input.file_path
# (NotebookEdit: notebook_path).
MODIFYING_TOOLS = ("Edit", "Write", "MultiEdit", "NotebookEdit")


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


class RecallQueries(Connected):
    """Reads for SessionStart context, prompt- and file-time recall; injection memory."""

    # -- SessionStart ----------------------------------------------------------

    def context_sessions(self, project: str, limit: int,
                         exclude_session: str | None = None) -> list[SessionRow]:
        """A project's newest sessions that did work (a summary that did, or an observation)."""
        if limit <= 0:
            return []
        rows = self.conn.execute(
            "SELECT * FROM sessions s WHERE s.project = ? AND s.claude_session_id IS NOT ?"
            " AND (EXISTS (SELECT 1 FROM observations x WHERE x.session_id = s.id)"
            f"  OR EXISTS (SELECT 1 FROM summaries m WHERE m.session_id = s.id AND {_DID_WORK}))"
            " ORDER BY s.started_at DESC, s.id DESC LIMIT ?",
            (project, exclude_session, limit),
        ).fetchall()
        return [session_row(r) for r in rows]

    def work_summaries(self, session_id: int, limit: int) -> list[SummaryRow]:
        """The newest ``limit`` summaries of a session that did work, in prompt order."""
        rows = self.conn.execute(
            "SELECT * FROM (SELECT * FROM summaries m WHERE m.session_id = ?"
            f" AND {_DID_WORK} ORDER BY m.prompt_number DESC LIMIT ?) ORDER BY prompt_number",
            (session_id, limit),
        ).fetchall()
        return [summary_row(r) for r in rows]

    def latest_work_summaries(self, project: str, limit: int,
                              exclude_session: str | None = None
                              ) -> list[tuple[str, SummaryRow]]:
        """A project's newest summaries that did work, newest first, with their session ids."""
        rows = self.conn.execute(
            "SELECT s.claude_session_id AS sid, m.* FROM sessions s"
            " JOIN summaries m ON m.session_id = s.id"
            " WHERE s.id IN (SELECT id FROM sessions WHERE project = ?"
            "   AND claude_session_id IS NOT ? ORDER BY started_at DESC, id DESC LIMIT ?)"
            f" AND {_DID_WORK} ORDER BY m.created_at DESC, m.id DESC LIMIT ?",
            (project, exclude_session, limit, limit),
        ).fetchall()
        out = []
        for r in rows:
            data = dict(zip(r.keys(), tuple(r), strict=True))
            sid = data.pop("sid")
            out.append((sid, summary_row_from(data)))
        return out

    def session_observations(self, session_id: int, limit: int) -> list[ObservationRow]:
        """A session's newest ``limit`` observations, newest first."""
        rows = self.conn.execute(
            "SELECT * FROM observations WHERE session_id = ? ORDER BY id DESC LIMIT ?",
            (session_id, limit),
        ).fetchall()
        return [observation_row(r) for r in rows]

    def failed_calls(self, session_ids: Sequence[int], limit: int
                     ) -> list[tuple[int, int, str, str, str]]:
        """Failed tool calls of these sessions, newest first, not followed by a success.

        Each as (event id, session id, tool, what was called, error). A failure
        counts as resolved once a later call of the same tool on the same
        command or file succeeded, in any session of the same project.
        """
        if not session_ids or limit <= 0:
            return []
        key = ("COALESCE(json_extract({e}.tool_input, '$.command'),"
               " json_extract({e}.tool_input, '$.file_path'),"
               " json_extract({e}.tool_input, '$.notebook_path'),"
               " json_extract({e}.tool_input, '$.pattern'), '')")
        rows = self.conn.execute(
            f"SELECT f.id, f.session_id, f.tool_name, {key.format(e='f')} AS target,"
            " COALESCE(f.error, '') FROM events f"
            f" WHERE f.session_id IN ({_marks(session_ids)}) AND f.failed = 1"
            " AND NOT EXISTS (SELECT 1 FROM events ok WHERE ok.failed = 0"
            "   AND ok.id > f.id AND ok.tool_name = f.tool_name"
            "   AND ok.session_id IN (SELECT id FROM sessions WHERE id >= f.session_id"
            "     AND project = (SELECT project FROM sessions WHERE id = f.session_id))"
            f"   AND {key.format(e='ok')} = {key.format(e='f')})"
            " ORDER BY f.id DESC LIMIT ?",
            (*session_ids, limit),
        ).fetchall()
        return [(int(r[0]), int(r[1]), str(r[2]), str(r[3] or ""), str(r[4])) for r in rows]

    def modified_files(self, session_ids: Sequence[int], limit: int
                       ) -> list[tuple[str, int]]:
        """Files these sessions changed, most recent first: (path, session id).

        From the raw events (a successful Edit/Write) and from what the
        observations say was modified (the events of old stores may be gone).
        """
        if not session_ids or limit <= 0:
            return []
        marks = _marks(session_ids)
        tools = _marks(MODIFYING_TOOLS)
        rows = self.conn.execute(
            "SELECT path, session_id, MAX(at) FROM ("
            " SELECT COALESCE(json_extract(tool_input, '$.file_path'),"
            "   json_extract(tool_input, '$.notebook_path')) AS path, session_id,"
            "   created_at AS at FROM events"
            f" WHERE session_id IN ({marks}) AND failed = 0 AND tool_name IN ({tools})"
            " UNION ALL"
            " SELECT f.path, o.session_id, o.created_at FROM observation_files f"
            " JOIN observations o ON o.id = f.observation_id"
            f" WHERE o.session_id IN ({marks}) AND f.modified = 1)"
            " WHERE typeof(path) = 'text' AND path != ''"
            " GROUP BY path ORDER BY MAX(at) DESC LIMIT ?",
            (*session_ids, *MODIFYING_TOOLS, *session_ids, limit),
        ).fetchall()
        return [(str(r[0]), int(r[1])) for r in rows]

    # -- prompt- and file-time recall -------------------------------------------

    def observations_by_ids(self, ids: Iterable[int]) -> list[ObservationRow]:
        """These observations, in the order of ``ids`` (unknown ids left out)."""
        wanted = list(dict.fromkeys(int(i) for i in ids))
        if not wanted:
            return []
        rows = self.conn.execute(
            f"SELECT * FROM observations WHERE id IN ({_marks(wanted)})", wanted).fetchall()
        by_id = {int(r["id"]): observation_row(r) for r in rows}
        return [by_id[i] for i in wanted if i in by_id]

    def files_named(self, name: str, project: str, exclude_session_id: int | None,
                    limit: int) -> list[tuple[str, int]]:
        """Paths called ``name`` that observations of the project (not of one session)
        name, newest observation first: (path as written, observation id).

        Through the observation_files index (base name, session), so the cost
        follows the project's sessions, not the store's size; the caller
        matches the rest of the path.
        """
        rows = self.conn.execute(
            "SELECT path, observation_id FROM observation_files WHERE name = ?"
            " AND session_id IN (SELECT id FROM sessions WHERE project = ? AND id IS NOT ?)"
            " ORDER BY observation_id DESC LIMIT ?",
            (name, project, exclude_session_id, limit),
        ).fetchall()
        return [(str(r[0]), int(r[1])) for r in rows]

    def observation_ids_matching(self, fts_query: str, limit: int) -> list[int]:
        """Ids of observations (any project) matching an FTS5 query, at most ``limit``.

        Index order, no ranking: the caller wants which observations hold a
        word, and how many (up to ``limit``: a word's cost stops there).
        """
        # One row of text, not one Row object per id: ~40% less time per word on
        # the prompt-time recall path, which looks up every word of the prompt.
        ids = self.conn.execute(
            "SELECT group_concat(rowid) FROM (SELECT rowid FROM observations_fts"
            " WHERE observations_fts MATCH ? LIMIT ?)", (fts_query, limit)).fetchone()[0]
        return [int(i) for i in ids.split(",")] if ids else []

    def of_project(self, ids: Sequence[int], project: str,
                   exclude_session_id: int | None) -> list[int]:
        """Those of observation ``ids`` that belong to ``project`` (not to session
        ``exclude_session_id``), in the order of ``ids``."""
        wanted = list(dict.fromkeys(int(i) for i in ids))
        if not wanted:
            return []
        # CROSS JOIN keeps observations the outer loop (a primary-key lookup per
        # id): left to itself the planner walks every session of the project
        # through its index and probes each for every id, 20x slower in a large
        # project.
        rows = self.conn.execute(
            f"SELECT o.id FROM observations o CROSS JOIN sessions s ON s.id = o.session_id"
            f" WHERE o.id IN ({_marks(wanted)}) AND s.project = ? AND s.id IS NOT ?",
            (*wanted, project, exclude_session_id)).fetchall()
        mine = {int(r[0]) for r in rows}
        return [i for i in wanted if i in mine]

    def observation_count(self) -> int:
        """About how many observations the store holds (the newest id: O(1), no scan)."""
        row = self.conn.execute("SELECT MAX(id) FROM observations").fetchone()
        return int(row[0] or 0)

    def injected(self, session_id: int, kind: InjectionKind, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` were already injected into this session."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return set()
        rows = self.conn.execute(
            f"SELECT key FROM injections WHERE session_id = ? AND kind = ?"
            f" AND key IN ({_marks(wanted)})", (session_id, kind, *wanted)).fetchall()
        return {str(r[0]) for r in rows}

    def note_injected(self, session_id: int, kind: InjectionKind, keys: Iterable[str]) -> None:
        """Remember that ``keys`` were injected into this session (idempotent).

        Committed without the fsync other writes pay (synchronous=NORMAL for
        this transaction): the hook runs while the user waits, and losing this
        row to a power cut costs at most one repeated note, never a record.
        """
        rows = [(session_id, kind, key) for key in dict.fromkeys(keys)]
        if not rows:
            return
        self.conn.execute("PRAGMA synchronous = NORMAL")
        try:
            with self.transaction() as conn:
                conn.executemany(
                    "INSERT OR IGNORE INTO injections (session_id, kind, key) VALUES (?, ?, ?)",
                    rows)
        finally:
            self.conn.execute("PRAGMA synchronous = FULL")


def summary_row_from(data: dict[str, object]) -> SummaryRow:
    """A SummaryRow from a dict of its columns."""
    from .rows import SummaryRow

    data.pop("terms", None)  # the search index's split identifiers (m0004), not a field
    return SummaryRow(**data)


def observation_from(data: dict[str, object]) -> ObservationRow:
    """An ObservationRow from a dict of its columns (JSON lists decoded)."""
    from .rows import ObservationRow, loads_list

    data.pop("terms", None)  # the search index's split identifiers (m0004), not a field
    for key in ("event_ids", "facts", "concepts", "files_read", "files_modified"):
        data[key] = loads_list(data[key])  # type: ignore[arg-type]
    return ObservationRow(**data)
