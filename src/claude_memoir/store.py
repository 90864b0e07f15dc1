"""The SQLite store: one file, WAL, migrated when it is opened.

Hooks, workers and the CLI all open it; every write that must survive a crash is
one transaction. Tool events are the durable queue: a hook commits the event
before it tells the worker, and the worker marks events processed in the same
transaction that stores the observations made from them, so a crash at any point
neither loses an event nor duplicates an observation.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time

from .errors import InvalidInput, StoreError
from .log import get_logger
from .paths import db_path, digest, ensure_private_dir
from .record import Record

# Hooks import this module on every tool call: no typing, dataclasses,
# contextlib or pathlib at run time (~15 ms of imports together); the type
# names below exist for type checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any, Literal

    SessionStatus = Literal["active", "completed", "failed"]
    EventStatus = Literal["pending", "processed", "failed"]
    SummaryKind = Literal["agent", "fallback"]

log = get_logger(__name__)

# Seconds a connection waits on a locked database before giving up. Hooks run
# while the user waits, so this is a bound, not a hope.
BUSY_TIMEOUT = 3.0

_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"

# Append-only: never edit a migration that has shipped, add a new one.
MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_initial",
        f"""
        CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            claude_session_id TEXT NOT NULL UNIQUE,
            project TEXT NOT NULL,
            cwd TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'completed', 'failed')),
            started_at TEXT NOT NULL DEFAULT ({_NOW}),
            updated_at TEXT NOT NULL DEFAULT ({_NOW}),
            ended_at TEXT,
            end_reason TEXT,
            worker_pid INTEGER,
            worker_create_time REAL,
            agent_session_id TEXT,
            -- Set by SessionEnd before it tells the worker, so a worker started
            -- later (the message lost, the worker dead) still knows to finish.
            end_requested_at TEXT
        );
        CREATE INDEX sessions_project ON sessions(project, started_at);

        CREATE TABLE prompts (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            prompt_number INTEGER NOT NULL,
            text TEXT NOT NULL,
            -- Set by Stop (FINALIZE) before it tells the worker: this prompt's
            -- turn is over and wants a summary, durable like the events.
            finished_at TEXT,
            -- Claude's last reply of the turn, from the Stop payload.
            response TEXT,
            created_at TEXT NOT NULL DEFAULT ({_NOW}),
            UNIQUE (session_id, prompt_number)
        );

        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            prompt_number INTEGER NOT NULL,
            tool_name TEXT NOT NULL,
            tool_use_id TEXT,
            tool_input TEXT NOT NULL,
            tool_response TEXT NOT NULL,
            failed INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'processed', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL DEFAULT ({_NOW}),
            processed_at TEXT
        );
        -- A hook retried by Claude Code must not queue the same tool call twice.
        CREATE UNIQUE INDEX events_tool_use ON events(session_id, tool_use_id)
            WHERE tool_use_id IS NOT NULL;
        CREATE INDEX events_pending ON events(session_id, status, id);

        CREATE TABLE observations (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            prompt_number INTEGER NOT NULL,
            event_ids TEXT NOT NULL DEFAULT '[]',
            type TEXT NOT NULL,
            title TEXT NOT NULL,
            subtitle TEXT NOT NULL DEFAULT '',
            facts TEXT NOT NULL DEFAULT '[]',
            narrative TEXT NOT NULL DEFAULT '',
            concepts TEXT NOT NULL DEFAULT '[]',
            files_read TEXT NOT NULL DEFAULT '[]',
            files_modified TEXT NOT NULL DEFAULT '[]',
            created_at TEXT NOT NULL DEFAULT ({_NOW})
        );
        CREATE INDEX observations_session ON observations(session_id, id);

        CREATE TABLE summaries (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            prompt_number INTEGER NOT NULL,
            request TEXT NOT NULL DEFAULT '',
            investigated TEXT NOT NULL DEFAULT '',
            learned TEXT NOT NULL DEFAULT '',
            completed TEXT NOT NULL DEFAULT '',
            next_steps TEXT NOT NULL DEFAULT '',
            notes TEXT NOT NULL DEFAULT '',
            kind TEXT NOT NULL DEFAULT 'agent' CHECK (kind IN ('agent', 'fallback')),
            created_at TEXT NOT NULL DEFAULT ({_NOW}),
            UNIQUE (session_id, prompt_number)
        );

        CREATE VIRTUAL TABLE observations_fts USING fts5(
            title, subtitle, narrative, facts, concepts,
            content='observations', content_rowid='id'
        );
        CREATE TRIGGER observations_ai AFTER INSERT ON observations BEGIN
            INSERT INTO observations_fts(rowid, title, subtitle, narrative, facts, concepts)
            VALUES (new.id, new.title, new.subtitle, new.narrative, new.facts, new.concepts);
        END;
        CREATE TRIGGER observations_ad AFTER DELETE ON observations BEGIN
            INSERT INTO observations_fts(observations_fts, rowid, title, subtitle, narrative,
                                         facts, concepts)
            VALUES ('delete', old.id, old.title, old.subtitle, old.narrative, old.facts,
                    old.concepts);
        END;
        CREATE TRIGGER observations_au AFTER UPDATE ON observations BEGIN
            INSERT INTO observations_fts(observations_fts, rowid, title, subtitle, narrative,
                                         facts, concepts)
            VALUES ('delete', old.id, old.title, old.subtitle, old.narrative, old.facts,
                    old.concepts);
            INSERT INTO observations_fts(rowid, title, subtitle, narrative, facts, concepts)
            VALUES (new.id, new.title, new.subtitle, new.narrative, new.facts, new.concepts);
        END;

        CREATE VIRTUAL TABLE summaries_fts USING fts5(
            request, investigated, learned, completed, next_steps, notes,
            content='summaries', content_rowid='id'
        );
        CREATE TRIGGER summaries_ai AFTER INSERT ON summaries BEGIN
            INSERT INTO summaries_fts(rowid, request, investigated, learned, completed,
                                      next_steps, notes)
            VALUES (new.id, new.request, new.investigated, new.learned, new.completed,
                    new.next_steps, new.notes);
        END;
        CREATE TRIGGER summaries_ad AFTER DELETE ON summaries BEGIN
            INSERT INTO summaries_fts(summaries_fts, rowid, request, investigated, learned,
                                      completed, next_steps, notes)
            VALUES ('delete', old.id, old.request, old.investigated, old.learned,
                    old.completed, old.next_steps, old.notes);
        END;
        CREATE TRIGGER summaries_au AFTER UPDATE ON summaries BEGIN
            INSERT INTO summaries_fts(summaries_fts, rowid, request, investigated, learned,
                                      completed, next_steps, notes)
            VALUES ('delete', old.id, old.request, old.investigated, old.learned,
                    old.completed, old.next_steps, old.notes);
            INSERT INTO summaries_fts(rowid, request, investigated, learned, completed,
                                      next_steps, notes)
            VALUES (new.id, new.request, new.investigated, new.learned, new.completed,
                    new.next_steps, new.notes);
        END;
        """,
    ),
    (
        "0002_resilience",
        """
        -- Hash of (tool, input, response, failed): identical consecutive events
        -- are stored once (a retried or looping tool call costs no tokens).
        ALTER TABLE events ADD COLUMN hash TEXT;
        -- Set by `memoir reprocess`: the worker re-observes parked events and
        -- replaces fallback summaries with the agent's own.
        ALTER TABLE sessions ADD COLUMN reprocess_requested_at TEXT;
        """,
    ),
    (
        "0003_agent_context",
        """
        -- Characters the memory agent's conversation (agent_session_id) holds, so
        -- a worker that resumes it keeps counting towards agent_context_limit.
        ALTER TABLE sessions ADD COLUMN agent_context_chars INTEGER NOT NULL DEFAULT 0;
        """,
    ),
]

# An event whose processing failed this many times is parked as 'failed'
# instead of being retried forever (a retry storm costs tokens and time);
# `memoir reprocess` gives parked events another chance.
MAX_EVENT_ATTEMPTS = 3


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


_CORRUPT_MARKERS = ("file is not a database", "malformed", "file is encrypted",
                    "database disk image")


def store_error(e: sqlite3.Error, path: str, doing: str) -> StoreError:
    """Convert a sqlite3 error into a StoreError whose reason says what to do.

    ``busy``: another writer held the lock past the timeout (try later or spool);
    ``corrupt``: the file is damaged (quarantine it); ``write``: anything else.
    """
    text = str(e)
    if "locked" in text or "busy" in text:
        reason = "busy"
    elif any(marker in text for marker in _CORRUPT_MARKERS):
        reason = "corrupt"
    else:
        reason = "write"
    return StoreError(f"{doing} {path} failed: {text}", reason=reason, path=str(path))


class _Connection(sqlite3.Connection):
    """A connection whose errors leave as StoreError, from every query.

    One boundary for the whole module: callers (hooks, worker loop, CLI) catch
    MemoirError and read ``reason`` instead of matching sqlite3 messages.
    """

    store_path: str

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:  # type: ignore[override]
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as e:
            raise store_error(e, self.store_path, "query on") from e


def quarantine(path: str | os.PathLike[str]) -> str | None:
    """Move a damaged database (and its -wal/-shm) aside; return the new name.

    The timestamped name keeps every damaged copy for inspection or salvage;
    nothing is deleted. A concurrent process may have moved it first: None.
    """
    path = os.fspath(path)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target = f"{path}.corrupt-{stamp}-{os.getpid()}"
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    for suffix in ("-wal", "-shm"):
        try:
            os.replace(f"{path}{suffix}", f"{target}{suffix}")
        except FileNotFoundError:
            pass
    log.error("DAMAGED DATABASE: %s could not be read; moved aside to %s and replaced by "
              "a fresh one. Nothing was deleted; `memoir doctor` explains recovery.",
              path, target)
    return target


def _loads_list(raw: str | None) -> list[Any]:
    try:
        value = json.loads(raw or "[]")
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def _loads_any(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _session(row: sqlite3.Row) -> SessionRow:
    return SessionRow(**{k: row[k] for k in row.keys()})


def _event(row: sqlite3.Row) -> EventRow:
    data = {k: row[k] for k in row.keys() if k != "processed_at"}
    data["tool_input"] = _loads_any(row["tool_input"])
    data["tool_response"] = _loads_any(row["tool_response"])
    data["failed"] = bool(row["failed"])
    return EventRow(**data)


def _observation(row: sqlite3.Row) -> ObservationRow:
    data = {k: row[k] for k in row.keys()}
    for key in ("event_ids", "facts", "concepts", "files_read", "files_modified"):
        data[key] = _loads_list(row[key])
    return ObservationRow(**data)


def _summary(row: sqlite3.Row) -> SummaryRow:
    return SummaryRow(**{k: row[k] for k in row.keys()})


class _Transaction:
    """The context manager behind :meth:`Store.transaction` (a class, not
    ``contextlib``: one import less per hook)."""

    __slots__ = ("conn", "path")

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self.conn = conn
        self.path = path

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")  # StoreError(busy) past the timeout
        return self.conn

    def __exit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        if error is not None:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if isinstance(error, sqlite3.Error):  # raised by a cursor, not execute()
                raise store_error(error, self.path, "write to") from error
            return  # re-raised by the with statement
        try:
            self.conn.execute("COMMIT")
        except StoreError:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise


class Store:
    """A connection to ``memoir.db`` with the queries every part needs."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self.conn = conn
        self.path = path

    # -- lifecycle ---------------------------------------------------------

    @classmethod
    def open(cls, home: str | os.PathLike[str], *, timeout: float = BUSY_TIMEOUT, recover: bool = True) -> "Store":
        """Open (creating and migrating if needed) the store under ``home``.

        A file that is not a readable SQLite database is quarantined (moved
        aside with a timestamp, loudly logged) and a fresh store created, unless
        ``recover`` is False (then StoreError with reason ``corrupt``).
        """
        path = db_path(home)
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            try:
                return cls._open(path, home, timeout)
            except StoreError as e:
                if e.reason == "corrupt" and recover:
                    quarantine(path)
                    return cls._open(path, home, timeout)
                # SQLite answers BUSY without waiting when waiting could
                # deadlock, e.g. processes racing to switch a fresh file to WAL
                # or to migrate it; retry until the same deadline instead.
                if e.reason != "busy" or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    @classmethod
    def _open(cls, path: str, home: str | os.PathLike[str], timeout: float) -> "Store":
        try:
            ensure_private_dir(home)
            if not os.path.exists(path):
                # Create the file 0600 ourselves: sqlite3 would honour the umask,
                # and the store holds the user's prompts and tool output.
                os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            conn = sqlite3.connect(path, timeout=timeout, isolation_level=None,
                                   factory=_Connection)
        except (OSError, sqlite3.Error, InvalidInput) as e:
            raise StoreError(f"cannot open {path}: {e}", reason="open", path=str(path)) from e
        conn.store_path = path
        conn.row_factory = sqlite3.Row
        store = cls(conn, path)
        try:
            # Reading the schema touches the header and first page: a file that
            # is not a database, or a truncated one, fails here, not mid-hook.
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            # WAL: readers never block the writer, and a commit is one append.
            # synchronous=FULL: a committed event survives power loss too, which
            # is the promise made to the hook that reports it "received".
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("journal_mode is %s, not wal, for %s", mode, path)
            conn.execute("PRAGMA synchronous = FULL")
            store._migrate()
        except StoreError:
            conn.close()
            raise
        except sqlite3.Error as e:
            conn.close()
            raise store_error(e, path, "preparing") from e
        return store

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> "_Transaction":
        """``with store.transaction() as conn:`` BEGIN IMMEDIATE … COMMIT, rolled back on any exception.

        IMMEDIATE takes the write lock up front, so two writers queue on the
        busy timeout instead of failing half-way with SQLITE_BUSY. sqlite3
        errors leave as StoreError (a locked database past the timeout, a full
        disk), so callers handle one family.
        """
        return _Transaction(self.conn, self.path)

    def _migrate(self) -> None:
        # Fast path for hooks: one pragma read when nothing is to do.
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version >= len(MIGRATIONS):
            return
        with self.transaction() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name TEXT PRIMARY KEY,"
                f" applied_at TEXT NOT NULL DEFAULT ({_NOW}))"
            )
            done = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
            for name, sql in MIGRATIONS:
                if name in done:
                    continue
                log.info("applying migration %s to %s", name, self.path)
                for statement in _split_sql(sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations(name) VALUES (?)", (name,))
            conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

    def integrity_problems(self) -> list[str]:
        """Run SQLite's full integrity check; [] when the database is sound.

        Reads every page, so it is for `memoir doctor`, never for hooks.
        """
        rows = [str(r[0]) for r in self.conn.execute("PRAGMA integrity_check").fetchall()]
        return [] if rows == ["ok"] else rows

    def migrations(self) -> list[str]:
        """Names of the applied migrations, in order."""
        return [r[0] for r in self.conn.execute(
            "SELECT name FROM schema_migrations ORDER BY rowid")]

    # -- sessions ----------------------------------------------------------

    def upsert_session(self, claude_session_id: str, project: str, cwd: str) -> SessionRow:
        """Create the session row, or touch it (idempotent; reactivates on resume)."""
        with self.transaction() as conn:
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
        return _session(row)

    def get_session(self, claude_session_id: str) -> SessionRow | None:
        """The session with this Claude session id, or None."""
        row = self.conn.execute(
            "SELECT * FROM sessions WHERE claude_session_id = ?", (claude_session_id,)
        ).fetchone()
        return _session(row) if row else None

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

    # -- prompts -----------------------------------------------------------

    def add_prompt(self, session_id: int, text: str) -> int:
        """Store the user's prompt under the session's next number; return it."""
        with self.transaction() as conn:
            number = conn.execute(
                "SELECT COALESCE(MAX(prompt_number), 0) + 1 FROM prompts WHERE session_id = ?",
                (session_id,),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO prompts (session_id, prompt_number, text) VALUES (?, ?, ?)",
                (session_id, number, text),
            )
            conn.execute(f"UPDATE sessions SET updated_at = {_NOW} WHERE id = ?", (session_id,))
        return int(number)

    def current_prompt_number(self, session_id: int) -> int:
        """The latest prompt's number (0 if the session has none yet)."""
        return int(self.conn.execute(
            "SELECT COALESCE(MAX(prompt_number), 0) FROM prompts WHERE session_id = ?",
            (session_id,),
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
        hash); a session that already holds ``max_events`` events (0: no cap).
        """
        input_json = json.dumps(tool_input, ensure_ascii=False, default=str)
        response_json = json.dumps(tool_response, ensure_ascii=False, default=str)
        event_hash = digest(
            "\x1f".join((tool_name, input_json, response_json, str(int(failed)), error or ""))
            .encode("utf-8", "surrogatepass"))
        with self.transaction() as conn:
            last = conn.execute(
                "SELECT hash, (SELECT COUNT(*) FROM events WHERE session_id = ?)"
                " FROM events WHERE session_id = ? ORDER BY id DESC LIMIT 1",
                (session_id, session_id),
            ).fetchone()
            if dedupe and last is not None and last[0] == event_hash:
                log.info("event identical to the previous one of session %d; not queued",
                         session_id)
                return None
            if last is not None and max_events and last[1] >= max_events:
                log.info("session %d holds %d events (cap %d); event not queued",
                         session_id, last[1], max_events)
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
            conn.execute(f"UPDATE sessions SET updated_at = {_NOW} WHERE id = ?", (session_id,))
            return int(cur.lastrowid or 0)

    def pending_events(self, session_id: int, limit: int = 50) -> list[EventRow]:
        """The oldest pending events of a session, in the order they happened."""
        rows = self.conn.execute(
            "SELECT * FROM events WHERE session_id = ? AND status = 'pending' ORDER BY id LIMIT ?",
            (session_id, limit),
        ).fetchall()
        return [_event(r) for r in rows]

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
        return [_event(r) for r in rows]

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
    ) -> list[int]:
        """Store observations and mark their events processed, atomically.

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
                    " subtitle, facts, narrative, concepts, files_read, files_modified)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    ),
                )
                ids.append(int(cur.lastrowid or 0))
            conn.execute(
                f"UPDATE events SET status = 'processed', processed_at = {_NOW},"
                f" attempts = attempts + 1 WHERE id IN ({marks}) AND status = 'pending'",
                list(event_ids),
            )
        return ids

    # -- summaries -----------------------------------------------------------

    def save_summary(self, session_id: int, prompt_number: int, summary: Any,
                     kind: SummaryKind = "agent") -> int:
        """Store (or replace) the summary of one prompt; return its id."""
        fields = (summary.request, summary.investigated, summary.learned,
                  summary.completed, summary.next_steps, summary.notes)
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO summaries (session_id, prompt_number, request, investigated,"
                " learned, completed, next_steps, notes, kind)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(session_id, prompt_number) DO UPDATE SET"
                " request = excluded.request, investigated = excluded.investigated,"
                " learned = excluded.learned, completed = excluded.completed,"
                " next_steps = excluded.next_steps, notes = excluded.notes,"
                f" kind = excluded.kind, created_at = {_NOW}",
                (session_id, prompt_number, *fields, kind),
            )
            row = conn.execute(
                "SELECT id FROM summaries WHERE session_id = ? AND prompt_number = ?",
                (session_id, prompt_number),
            ).fetchone()
        return int(row[0])

    def summary_numbers(self, session_id: int) -> set[int]:
        """Prompt numbers of a session that already have a summary."""
        return {int(r[0]) for r in self.conn.execute(
            "SELECT prompt_number FROM summaries WHERE session_id = ?", (session_id,))}

    def summaries_for_session(self, session_id: int) -> list[SummaryRow]:
        """A session's summaries in prompt order."""
        rows = self.conn.execute(
            "SELECT * FROM summaries WHERE session_id = ? ORDER BY prompt_number", (session_id,)
        ).fetchall()
        return [_summary(r) for r in rows]

    def observations_for_session(self, session_id: int) -> list[ObservationRow]:
        """A session's observations in the order they were made."""
        rows = self.conn.execute(
            "SELECT * FROM observations WHERE session_id = ? ORDER BY id", (session_id,)
        ).fetchall()
        return [_observation(r) for r in rows]

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
            session = SessionRow(**{k: r[k] for k in r.keys() if not k.startswith("m_")})
            summary = SummaryRow(**{k[2:]: r[k] for k in r.keys() if k.startswith("m_")})
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
        return [_observation(r) for r in rows]

    # -- listings for the CLI ------------------------------------------------

    def session_stats(self, claude_session_id: str | None = None) -> list[SessionStats]:
        """Sessions, newest first, with their counts (one session if an id is given)."""
        where, args = ("WHERE s.claude_session_id = ?", [claude_session_id]) \
            if claude_session_id else ("", [])
        rows = self.conn.execute(
            "SELECT s.*,"
            " (SELECT COUNT(*) FROM prompts p WHERE p.session_id = s.id) AS n_prompts,"
            " (SELECT COUNT(*) FROM events e WHERE e.session_id = s.id) AS n_events,"
            " (SELECT COUNT(*) FROM events e WHERE e.session_id = s.id"
            "   AND e.status = 'pending') AS n_pending,"
            " (SELECT COUNT(*) FROM observations o WHERE o.session_id = s.id) AS n_obs,"
            " (SELECT COUNT(*) FROM summaries m WHERE m.session_id = s.id) AS n_sum"
            f" FROM sessions s {where} ORDER BY s.started_at DESC, s.id DESC",
            args,
        ).fetchall()
        out = []
        for r in rows:
            session = SessionRow(**{k: r[k] for k in r.keys() if not k.startswith("n_")})
            out.append(SessionStats(session=session, prompts=r["n_prompts"],
                                    events_total=r["n_events"], events_pending=r["n_pending"],
                                    observations=r["n_obs"], summaries=r["n_sum"]))
        return out

    def sessions_with_workers(self) -> list[SessionRow]:
        """Sessions that have a worker pid recorded."""
        rows = self.conn.execute(
            "SELECT * FROM sessions WHERE worker_pid IS NOT NULL ORDER BY id"
        ).fetchall()
        return [_session(r) for r in rows]


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole.

    ``executescript`` would do this but issues its own COMMIT, which would break
    the migration's single transaction.
    """
    statements: list[str] = []
    buf: list[str] = []
    for line in script.splitlines():
        if not line.strip() or line.strip().startswith("--"):
            continue
        buf.append(line)
        candidate = "\n".join(buf)
        if sqlite3.complete_statement(candidate):
            statements.append(candidate.strip())
            buf = []
    if buf and "\n".join(buf).strip():
        statements.append("\n".join(buf).strip())
    return statements
