"""The schema: migrations as named functions, applied in order when the store opens.

Append-only: never edit a migration that has shipped, add a new one (a function
named ``m<NNNN>_<what>`` decorated with :func:`migration`). Each store records
the names it applied in ``schema_migrations`` and their count in
``PRAGMA user_version``, which is all a hook reads when nothing is to do.
"""

from __future__ import annotations

import sqlite3

from ..log import get_logger

# Hooks import the store on every tool call: no typing, dataclasses, contextlib
# or pathlib at run time (~15 ms of imports together); type names are for
# type checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .connection import Transaction

    Migration = Callable[[sqlite3.Connection], None]

log = get_logger(__name__)

# An SQL expression for "now" in the store's timestamp format (UTC, ISO 8601).
NOW = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"
_NOW = NOW

#: (name, function) of every migration, in the order they apply.
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(func: Migration) -> Migration:
    """Register ``func`` as the next migration, named after it (``m0004_x`` → ``0004_x``)."""
    MIGRATIONS.append((func.__name__.removeprefix("m"), func))
    return func


def _execute_script(conn: sqlite3.Connection, script: str) -> None:
    for statement in split_sql(script):
        conn.execute(statement)


@migration
def m0001_initial(conn: sqlite3.Connection) -> None:
    """Sessions, prompts, the event queue, observations, summaries, their FTS5 indexes."""
    _execute_script(conn, f"""
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
        """)


@migration
def m0002_resilience(conn: sqlite3.Connection) -> None:
    """Event hashes (repeats stored once) and reprocess requests."""
    _execute_script(conn, """
        -- Hash of (tool, input, response, failed): identical consecutive events
        -- are stored once (a retried or looping tool call costs no tokens).
        ALTER TABLE events ADD COLUMN hash TEXT;
        -- Set by `memoir reprocess`: the worker re-observes parked events and
        -- replaces fallback summaries with the agent's own.
        ALTER TABLE sessions ADD COLUMN reprocess_requested_at TEXT;
        """)


@migration
def m0003_agent_context(conn: sqlite3.Connection) -> None:
    """The size of the memory agent's conversation, kept across restarts."""
    _execute_script(conn, """
        -- Characters the memory agent's conversation (agent_session_id) holds, so
        -- a worker that resumes it keeps counting towards agent_context_limit.
        ALTER TABLE sessions ADD COLUMN agent_context_chars INTEGER NOT NULL DEFAULT 0;
        """)


@migration
def m0009_user_edits(conn: sqlite3.Connection) -> None:
    """Observations corrected by the user: marked, and guarded against overwriting."""
    _execute_script(conn, """
        -- When the user last edited this observation (viewer or `memoir edit`);
        -- NULL: as the agent wrote it.
        ALTER TABLE observations ADD COLUMN edited_at TEXT;
        -- The agent (or any code path but a user edit) must never overwrite a
        -- correction: an UPDATE of an edited observation that does not itself
        -- set a new edited_at is refused by the database, whoever issues it.
        CREATE TRIGGER observations_user_edit_guard BEFORE UPDATE ON observations
        WHEN old.edited_at IS NOT NULL AND new.edited_at IS old.edited_at
        BEGIN
            SELECT RAISE(ABORT, 'observation was edited by the user');
        END;
        """)


def migrate(conn: sqlite3.Connection, path: str, transaction: Callable[[], Transaction]) -> None:
    """Apply every migration ``conn``'s database lacks, in one transaction."""
    # Fast path for hooks: one pragma read when nothing is to do.
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version >= len(MIGRATIONS):
        return
    with transaction() as tx:
        tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name TEXT PRIMARY KEY,"
            f" applied_at TEXT NOT NULL DEFAULT ({NOW}))"
        )
        done = {r[0] for r in tx.execute("SELECT name FROM schema_migrations")}
        for name, apply in MIGRATIONS:
            if name in done:
                continue
            log.info("applying migration %s to %s", name, path)
            apply(tx)
            tx.execute("INSERT INTO schema_migrations(name) VALUES (?)", (name,))
        tx.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")


def split_sql(script: str) -> list[str]:
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
