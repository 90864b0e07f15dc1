"""The schema: migrations as named functions, applied in order when the store opens.

Append-only: never edit a migration that has shipped, add a new one (a function
named ``m<NNNN>_<what>`` decorated with :func:`migration`). Each store records
the names it applied in ``schema_migrations`` and their count in
``PRAGMA user_version``, which is all a hook reads when nothing is to do.
"""

from __future__ import annotations

import sqlite3

from ..log import get_logger
from .connection import NOW

# Hooks import the store on every tool call: no typing, dataclasses, contextlib
# or pathlib at run time (~15 ms of imports together); type names are for
# type checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .connection import Transaction

    Migration = Callable[[sqlite3.Connection], None]

log = get_logger(__name__)

_NOW = NOW  # the store's timestamp, as SQL (defined in connection: hooks skip this module)

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



# Search tokenisation (m0004). FTS5 with `porter unicode61 remove_diacritics 2`:
# unicode61 splits at every non-alphanumeric character, so `reconcile_ledger`,
# `src/app/ledger.py` and "reconcile ledger" already share the tokens
# reconcile / ledger; porter lets "reconciling" find "reconcile". What it keeps
# whole is a case boundary (`ReconcileLedger` is one token), so each searchable
# row also stores `terms`: its camelCase identifiers split into words
# (text.code_terms), indexed as one more column; the query side splits words
# the same way (recall.search). Chosen over the trigram tokenizer, which finds
# substrings without a `terms` column but cannot match words shorter than three
# characters ("db", "ui", "io"), has no stemming, ranks BM25 over trigrams
# rather than words, and makes the index about three times larger.
_TOKENIZE = "tokenize = 'porter unicode61 remove_diacritics 2'"

_OBS_FTS_COLUMNS = ("title", "subtitle", "narrative", "facts", "concepts", "files_read",
                    "files_modified", "terms")
_SUMMARY_FTS_COLUMNS = ("request", "investigated", "learned", "completed", "next_steps",
                        "notes", "terms")
_PROMPT_FTS_COLUMNS = ("text", "terms")


def _fts_table(conn: sqlite3.Connection, table: str, columns: tuple[str, ...]) -> None:
    """An external-content FTS5 index ``<table>_fts`` of ``columns``, kept by triggers.

    Created empty: rows already in ``table`` are indexed afterwards, a chunk at
    a time, by ``Store.backfill_search`` (m0004 explains why). Until then the
    triggers leave those rows alone: a row counts as indexed when its id is at
    least ``search_backfill.indexed_from``, and FTS5 must never be told to
    delete a row it does not hold (that corrupts an external-content index).
    The update trigger fires only when an indexed column changes: Stop sets
    ``prompts.finished_at`` on every turn and must not re-index the prompt.
    """
    cols = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    fts = f"{table}_fts"
    indexed = f"(SELECT indexed_from FROM search_backfill WHERE tbl = '{table}')"
    _execute_script(conn, f"""
        CREATE VIRTUAL TABLE {fts} USING fts5(
            {cols}, content='{table}', content_rowid='id', {_TOKENIZE}
        );
        INSERT INTO search_backfill (tbl, indexed_from)
            SELECT '{table}', COALESCE(MAX(id), 0) + 1 FROM {table};
        CREATE TRIGGER {table}_ai AFTER INSERT ON {table}
            WHEN new.id >= {indexed} BEGIN
            INSERT INTO {fts}(rowid, {cols}) VALUES (new.id, {new});
        END;
        CREATE TRIGGER {table}_ad AFTER DELETE ON {table}
            WHEN old.id >= {indexed} BEGIN
            INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', old.id, {old});
        END;
        CREATE TRIGGER {table}_au AFTER UPDATE OF {cols} ON {table}
            WHEN old.id >= {indexed} BEGIN
            INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', old.id, {old});
            INSERT INTO {fts}(rowid, {cols}) VALUES (new.id, {new});
        END;
        """)


#: The indexed tables and their FTS columns, for Store.backfill_search.
SEARCH_TABLES = {"observations": _OBS_FTS_COLUMNS, "summaries": _SUMMARY_FTS_COLUMNS,
                 "prompts": _PROMPT_FTS_COLUMNS}


@migration
def m0004_recall(conn: sqlite3.Connection) -> None:
    """Recall: sessions re-keyed by repository, code-aware FTS over observations,
    summaries and prompts."""
    from ..recall.project import project_key

    # 1. Project identity is now the git repository (recall.project): a
    # session recorded in repo/src or in a linked worktree joins the
    # repository's memory. Keys of directories that no longer exist resolve to
    # themselves, so their history stays where it was.
    for (old,) in conn.execute("SELECT DISTINCT project FROM sessions").fetchall():
        new = project_key(old)
        if new != old:
            conn.execute("UPDATE sessions SET project = ? WHERE project = ?", (new, old))

    # 2. Drop the old indexes first: their UPDATE triggers would otherwise
    # re-index every row that step 3 touches.
    _execute_script(conn, """
        DROP TRIGGER IF EXISTS observations_ai;
        DROP TRIGGER IF EXISTS observations_ad;
        DROP TRIGGER IF EXISTS observations_au;
        DROP TABLE IF EXISTS observations_fts;
        DROP TRIGGER IF EXISTS summaries_ai;
        DROP TRIGGER IF EXISTS summaries_ad;
        DROP TRIGGER IF EXISTS summaries_au;
        DROP TABLE IF EXISTS summaries_fts;
        ALTER TABLE observations ADD COLUMN terms TEXT NOT NULL DEFAULT '';
        ALTER TABLE summaries ADD COLUMN terms TEXT NOT NULL DEFAULT '';
        ALTER TABLE prompts ADD COLUMN terms TEXT NOT NULL DEFAULT '';
        CREATE INDEX IF NOT EXISTS observations_created ON observations(created_at);
        """)

    # 3. New, empty indexes. Indexing what is already stored (splitting its
    # identifiers, then FTS5) takes about a minute for 200,000 observations,
    # and the first process to open the store after an upgrade may be a hook
    # that Claude Code kills after 10 s: the migration would roll back and
    # start over on every hook, forever. So the migration only records where
    # indexing stands (search_backfill) and Store.backfill_search indexes the
    # older rows in short transactions, from `memoir install`, the worker,
    # `memoir search` and the MCP server; new rows are indexed as they come.
    _execute_script(conn, """
        CREATE TABLE search_backfill (
            tbl TEXT PRIMARY KEY,
            -- Rows with id >= indexed_from are in the FTS index; 0 or 1: all are.
            indexed_from INTEGER NOT NULL
        );
        """)
    for table, columns in SEARCH_TABLES.items():
        _fts_table(conn, table, columns)


@migration
def m0005_context(conn: sqlite3.Connection) -> None:
    """What recall injected per session, and which observations name which files."""
    _execute_script(conn, f"""
        -- Prompt- and file-time recall inject an observation, or a note about a
        -- file, once per session: the hook reads this before it injects and
        -- writes it when it does. Rows go with their session (cascade).
        CREATE TABLE injections (
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('observation', 'file')),
            key TEXT NOT NULL,
            created_at TEXT NOT NULL DEFAULT ({_NOW}),
            PRIMARY KEY (session_id, kind, key)
        ) WITHOUT ROWID;

        -- The files each observation names, looked up by base name: file-time
        -- recall runs before every Read/Edit/Write and cannot scan the JSON
        -- lists of 200,000 observations. Kept by triggers, rows go with their
        -- observation (cascade).
        CREATE TABLE observation_files (
            observation_id INTEGER NOT NULL REFERENCES observations(id) ON DELETE CASCADE,
            -- The observation's session, so a lookup filters by project through
            -- the index instead of joining every observation of that name.
            session_id INTEGER NOT NULL,
            name TEXT NOT NULL,
            path TEXT NOT NULL,
            modified INTEGER NOT NULL
        );
        CREATE INDEX observation_files_name ON observation_files(name, session_id);
        CREATE INDEX observation_files_observation ON observation_files(observation_id);
        CREATE TRIGGER observation_files_ai AFTER INSERT ON observations BEGIN
            {_files_insert("new", "files_read", 0)};
            {_files_insert("new", "files_modified", 1)};
        END;
        CREATE TRIGGER observation_files_au AFTER UPDATE OF files_read, files_modified
            ON observations BEGIN
            DELETE FROM observation_files WHERE observation_id = old.id;
            {_files_insert("new", "files_read", 0)};
            {_files_insert("new", "files_modified", 1)};
        END;
        """)
    for column, modified in (("files_read", 0), ("files_modified", 1)):
        conn.execute(_files_insert("o", column, modified)
                     .replace("FROM json_each", "FROM observations o, json_each", 1))


def _files_insert(row: str, column: str, modified: int) -> str:
    """Rows of observation_files for the paths in ``row.column`` (a JSON list).

    Every non-empty string of the list; a list that is not valid JSON is
    skipped, never an error that would fail the agent's insert. ``name`` is the
    part after the last "/" (``rtrim`` strips every character that is not a
    "/" from the right, leaving the directory).
    """
    return (
        "INSERT INTO observation_files (observation_id, session_id, name, path, modified)"
        f" SELECT {row}.id, {row}.session_id,"
        " substr(value, length(rtrim(value, replace(value, '/', ''))) + 1),"
        f" value, {modified}"
        f" FROM json_each(CASE WHEN json_valid({row}.{column}) THEN {row}.{column}"
        " ELSE '[]' END)"
        " WHERE typeof(value) = 'text' AND value != ''"
    )


@migration
def m0006_health(conn: sqlite3.Connection) -> None:
    """What ``memoir status`` and ``doctor`` report: the last failure of each part."""
    _execute_script(conn, f"""
        -- One row per part of the pipeline (bounded: never more than three):
        -- when it last worked, when it last failed and why. A failure newer
        -- than the last success is what makes memory degraded.
        CREATE TABLE health (
            component TEXT PRIMARY KEY
                CHECK (component IN ('agent', 'worker', 'bootstrap')),
            ok_at TEXT,
            failed_at TEXT,
            -- A short machine tag (agent.failures.FailureKind, ...) and the
            -- error's text as the failing process saw it.
            reason TEXT NOT NULL DEFAULT '',
            message TEXT NOT NULL DEFAULT '',
            session TEXT,
            updated_at TEXT NOT NULL DEFAULT ({_NOW})
        );
        -- check_health counts these on every `memoir status`: without the
        -- partial indexes that would scan every event and summary ever stored.
        CREATE INDEX events_parked ON events(session_id) WHERE status = 'failed';
        CREATE INDEX summaries_fallback ON summaries(created_at) WHERE kind = 'fallback';
        """)


@migration
def m0007_retention(conn: sqlite3.Connection) -> None:
    """When a tool event's raw bodies were dropped (retention, or the per-session cap)."""
    _execute_script(conn, """
        -- Set when tool_input / tool_response were emptied to 'null': after
        -- MEMOIR_KEEP_EVENTS_DAYS for processed events, or to make room under
        -- MEMOIR_MAX_EVENTS. The row (tool, time, status) stays.
        ALTER TABLE events ADD COLUMN pruned_at TEXT;
        -- What retention looks for: processed events that still have bodies.
        CREATE INDEX events_retention ON events(processed_at)
            WHERE status = 'processed' AND pruned_at IS NULL;
        -- The events of a session that still have bodies: what MEMOIR_MAX_EVENTS
        -- counts on every insert, so the count reads at most the cap's worth
        -- of index entries however long the session.
        CREATE INDEX events_bodies ON events(session_id, id) WHERE pruned_at IS NULL;
        """)


@migration
def m0008_usage(conn: sqlite3.Connection) -> None:
    """One row per request to the memory agent, with its usage as the SDK reported it."""
    _execute_script(conn, f"""
        CREATE TABLE agent_requests (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            created_at TEXT NOT NULL DEFAULT ({_NOW}),
            -- What the request asked for.
            kind TEXT NOT NULL CHECK (kind IN ('observe', 'summary', 'observe+summary')),
            -- Tool events the request carried (0 for a summary alone).
            events INTEGER NOT NULL DEFAULT 0,
            model TEXT NOT NULL DEFAULT '',
            -- The agent's own SDK session: the CLI reports a running total cost
            -- per agent session (a resumed one continues its total), so a
            -- request's cost is the difference to the previous row's total.
            agent_session_id TEXT,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cache_read_tokens INTEGER NOT NULL DEFAULT 0,
            cache_write_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL,
            cost_total_usd REAL,
            ok INTEGER NOT NULL DEFAULT 1
        );
        CREATE INDEX agent_requests_time ON agent_requests(created_at);
        CREATE INDEX agent_requests_session ON agent_requests(session_id, id);
        CREATE INDEX agent_requests_agent ON agent_requests(agent_session_id, id);
        """)


@migration
def m0009_user_edits(conn: sqlite3.Connection) -> None:
    """Observations corrected by the user: marked, and guarded against overwriting."""
    _execute_script(conn, """
        -- When the user last edited this observation (viewer or `memoir edit`);
        -- NULL: as the agent wrote it.
        ALTER TABLE observations ADD COLUMN edited_at TEXT;
        -- The agent (or any code path but a user edit) must never overwrite a
        -- correction: an UPDATE of an edited observation's content that does not
        -- itself set a new edited_at is refused by the database, whoever issues
        -- it. Bookkeeping columns (search's terms, filled by the backfill) stay
        -- writable, or an edit made before the backfill would block it forever.
        CREATE TRIGGER observations_user_edit_guard BEFORE UPDATE OF
            type, title, subtitle, facts, narrative, concepts, files_read, files_modified
        ON observations
        WHEN old.edited_at IS NOT NULL AND new.edited_at IS old.edited_at
        BEGIN
            SELECT RAISE(ABORT, 'observation was edited by the user');
        END;
        """)


def migrate(conn: sqlite3.Connection, path: str, transaction: Callable[[], Transaction]) -> None:
    """Apply every migration ``conn``'s database lacks, in one transaction."""
    # Nothing to do when current (HookStore does not even import this module then).
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
