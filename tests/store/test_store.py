"""Tests for claude_memoir.store: the SQLite file, its schema and every query.

Real SQLite files under the test's private MEMOIR_HOME; nothing is mocked.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest

from claude_memoir.agent.models import Observation, Summary
from claude_memoir.errors import StoreError
from claude_memoir.store import MIGRATIONS, Store
from conftest import db, payload

SID = payload("session_start_startup")["session_id"]
SID2 = payload("session_start_resume")["session_id"]


@pytest.fixture
def store(memoir_home: Path):
    s = Store.open(memoir_home)
    try:
        yield s
    finally:
        s.close()


def obs(title: str = "Fixed pager", narrative: str = "", **kw) -> Observation:
    return Observation(type=kw.pop("type", "bugfix"), title=title, narrative=narrative, **kw)


def summary(**kw) -> Summary:
    return Summary(**kw)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def count(home: Path, sql: str, *args) -> int:
    conn = db(home)
    try:
        return conn.execute(sql, args).fetchone()[0]
    finally:
        conn.close()


def fts_ids(store: Store, table: str, query: str) -> list[int]:
    return [r[0] for r in store.conn.execute(
        f"SELECT rowid FROM {table} WHERE {table} MATCH ? ORDER BY rowid", (query,))]


# --------------------------------------------------------------------------- #
# Opening, file mode, pragmas, migrations
# --------------------------------------------------------------------------- #


def test_open_creates_private_db_file_under_permissive_umask(memoir_home: Path) -> None:
    old = os.umask(0o022)
    try:
        with Store.open(memoir_home) as s:
            sid = s.upsert_session(SID, "/p", "/p").id
            s.add_prompt(sid, "hello")  # force the WAL file to exist and be written
            path = memoir_home / "memoir.db"
            assert path.is_file()
            assert mode(path) == 0o600
            assert mode(memoir_home) == 0o700
            for suffix in ("-wal", "-shm"):
                side = memoir_home / f"memoir.db{suffix}"
                assert side.exists(), side.name
                assert mode(side) & 0o077 == 0, f"{side.name} is {oct(mode(side))}"
    finally:
        os.umask(old)


def test_open_uses_wal_and_busy_timeout(memoir_home: Path) -> None:
    with Store.open(memoir_home) as s:
        assert s.conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        assert s.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 3000
        assert s.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    # WAL is persistent: a plain connection sees it too.
    conn = db(memoir_home)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    finally:
        conn.close()
    with Store.open(memoir_home, timeout=1.5) as s:
        assert s.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1500


def test_migrations_recorded_by_name_and_user_version(memoir_home: Path) -> None:
    with Store.open(memoir_home) as s:
        assert s.migrations() == [name for name, _ in MIGRATIONS]
        assert s.migrations()[0] == "0001_initial"
        assert s.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn = db(memoir_home)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert {"sessions", "prompts", "events", "observations", "summaries",
            "schema_migrations", "observations_fts", "summaries_fts"} <= tables


def test_schema_version_is_the_number_of_migrations(memoir_home: Path) -> None:
    # Opening reads only user_version against SCHEMA_VERSION (hooks do not
    # import the migrations): a migration added without raising it would
    # never be applied to an existing store.
    from claude_memoir.store.connection import SCHEMA_VERSION
    from claude_memoir.store.hookstore import HookStore

    assert len(MIGRATIONS) == SCHEMA_VERSION
    # A store one migration behind (made by the migrations before the last,
    # as an older release left it) is brought up to date by the hooks' open.
    (memoir_home).mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(memoir_home / "memoir.db", isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    for name, apply in MIGRATIONS[:-1]:
        apply(conn)
        conn.execute("INSERT INTO schema_migrations(name) VALUES (?)", (name,))
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) - 1}")
    conn.execute("COMMIT")
    conn.close()
    with HookStore.open(memoir_home) as s:
        assert s.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert s.conn.execute("SELECT name FROM schema_migrations ORDER BY rowid DESC"
                              " LIMIT 1").fetchone()[0] == MIGRATIONS[-1][0]


def test_a_prompt_and_its_session_are_recorded_in_one_commit(memoir_home: Path) -> None:
    # One fsync on the user's every prompt, not one for the session and one
    # for the prompt.
    commits: list[str] = []
    with Store.open(memoir_home) as s:
        s.conn.set_trace_callback(
            lambda sql: commits.append(sql) if sql.lstrip().upper().startswith("COMMIT") else None)
        session, first = s.record_prompt(SID, "/proj", "/proj", "first")
        again, second = s.record_prompt(SID, "/proj", "/proj/sub", "second")
        s.conn.set_trace_callback(None)
        assert (first, second) == (1, 2) and again.id == session.id
        assert again.cwd == "/proj/sub" and s.prompt_text(session.id, 2) == "second"
        # A replayed prompt (its spool time given) is stored once.
        stamp = "2026-01-01T00:00:00.000Z"
        assert s.record_prompt(SID, "/proj", "/proj", "late", created_at=stamp)[1] == 3
        assert s.record_prompt(SID, "/proj", "/proj", "late", created_at=stamp)[1] == 3
    assert len(commits) == 2


def test_reopen_is_a_noop_and_keeps_data(memoir_home: Path) -> None:
    with Store.open(memoir_home) as s:
        sid = s.upsert_session(SID, "/proj", "/proj").id
        s.add_prompt(sid, "first")
    for _ in range(3):
        with Store.open(memoir_home) as s:
            assert s.migrations() == [name for name, _ in MIGRATIONS]
            assert s.prompt_text(sid, 1) == "first"
    assert count(memoir_home, "SELECT COUNT(*) FROM schema_migrations") == len(MIGRATIONS)
    assert count(memoir_home, "SELECT COUNT(*) FROM sessions") == 1


def test_reopen_with_reset_user_version_does_not_reapply(memoir_home: Path) -> None:
    """If user_version is lost, schema_migrations still prevents a re-run (which would fail)."""
    Store.open(memoir_home).close()
    conn = sqlite3.connect(memoir_home / "memoir.db")
    conn.execute("PRAGMA user_version = 0")
    conn.close()
    with Store.open(memoir_home) as s:
        assert s.migrations() == [name for name, _ in MIGRATIONS]
        assert s.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_concurrent_first_open_migrates_once(memoir_home: Path) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def opener() -> None:
        try:
            barrier.wait()
            with Store.open(memoir_home) as s:
                s.migrations()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == []
    assert count(memoir_home, "SELECT COUNT(*) FROM schema_migrations") == len(MIGRATIONS)


def test_open_on_non_sqlite_file_without_recovery_raises(memoir_home: Path) -> None:
    memoir_home.mkdir(mode=0o700)
    garbage = b"this is not an SQLite database, just some text\n" * 100
    (memoir_home / "memoir.db").write_bytes(garbage)
    with pytest.raises(StoreError) as info:
        Store.open(memoir_home, recover=False)
    assert info.value.reason == "corrupt"
    assert isinstance(info.value.__cause__, sqlite3.Error)
    assert (memoir_home / "memoir.db").read_bytes() == garbage  # untouched


def test_corrupt_database_is_moved_aside_and_replaced(memoir_home: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    memoir_home.mkdir(mode=0o700)
    garbage = b"this is not an SQLite database, just some text\n" * 100
    (memoir_home / "memoir.db").write_bytes(garbage)
    with Store.open(memoir_home) as store:  # recovers
        assert store.upsert_session(SID, "/p", "/p").id == 1
    (aside,) = memoir_home.glob("memoir.db.corrupt-*")
    assert aside.read_bytes() == garbage  # kept, never deleted
    assert "DAMAGED DATABASE" in caplog.text and str(aside) in caplog.text
    conn = sqlite3.connect(memoir_home / "memoir.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert stat.S_IMODE(os.stat(memoir_home / "memoir.db").st_mode) == 0o600


def test_truncated_database_is_detected(memoir_home: Path) -> None:
    with Store.open(memoir_home) as store:
        session = store.upsert_session(SID, "/p", "/p")
        for i in range(300):
            store.add_event(session.id, 1, "Read", {"file_path": f"/f{i}"}, "x" * 2000)
    path = memoir_home / "memoir.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 3)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    # Open, a query reaching a missing page, or the full check (what `memoir
    # doctor` runs) notices; damage is never silently taken for an empty store.
    try:
        with Store.open(memoir_home) as store:
            store.pending_events(1, 1000)
            problems = store.integrity_problems()
    except StoreError as e:
        assert e.reason == "corrupt"
    else:
        quarantined = list(memoir_home.glob("memoir.db.corrupt-*"))
        assert quarantined or problems, "a truncated database went unnoticed"
        if quarantined:  # noticed at open: the damaged copy is kept whole
            assert quarantined[0].stat().st_size == size // 3


def test_open_when_home_is_a_file_raises_store_error(memoir_home: Path) -> None:
    memoir_home.write_text("I am a file")
    with pytest.raises(StoreError):
        Store.open(memoir_home)


def test_open_under_a_file_raises_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(StoreError):
        Store.open(blocker / "home")


def test_open_when_db_path_is_a_directory_raises_store_error(memoir_home: Path) -> None:
    (memoir_home / "memoir.db").mkdir(parents=True)
    with pytest.raises(StoreError):
        Store.open(memoir_home)


def test_open_in_unwritable_location_raises_store_error() -> None:
    # /proc refuses new entries even to root.
    with pytest.raises(StoreError):
        Store.open(Path("/proc/self/memoir-home-test"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_open_in_read_only_parent_raises_store_error(tmp_path: Path) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(StoreError):
            Store.open(parent / "home")
    finally:
        parent.chmod(0o700)


# --------------------------------------------------------------------------- #
# FTS
# --------------------------------------------------------------------------- #


def test_fts_finds_observation_by_narrative_word(store: Store) -> None:
    sid = store.upsert_session(SID, "/p", "/p").id
    store.add_prompt(sid, "fix it")
    ev = store.add_event(sid, 1, "Read", {"file_path": "/p/a.py"}, "text", tool_use_id="t1")
    ids = store.record_observations(sid, [ev], [
        obs("Pager fixed", "The paginate function skipped zanzibar rows"),
        obs("Other thing", "Nothing relevant here", facts=["quokka fact"]),
    ], 1)
    assert fts_ids(store, "observations_fts", "zanzibar") == [ids[0]]
    assert fts_ids(store, "observations_fts", "quokka") == [ids[1]]
    assert fts_ids(store, "observations_fts", "pager") == [ids[0]]
    assert fts_ids(store, "observations_fts", "absentword") == []


def test_fts_finds_summary_by_learned_word_and_follows_replacement(store: Store) -> None:
    sid = store.upsert_session(SID, "/p", "/p").id
    store.add_prompt(sid, "q")
    first = store.save_summary(sid, 1, summary(request="r", learned="the flibbertigibbet broke"))
    assert fts_ids(store, "summaries_fts", "flibbertigibbet") == [first]

    second = store.save_summary(sid, 1, summary(request="r", learned="the wombat was fine"))
    assert second == first
    assert fts_ids(store, "summaries_fts", "flibbertigibbet") == []
    assert fts_ids(store, "summaries_fts", "wombat") == [first]
    # The external-content index is consistent with its table.
    store.conn.execute(
        "INSERT INTO summaries_fts(summaries_fts, rank) VALUES ('integrity-check', 1)")
    store.conn.execute(
        "INSERT INTO observations_fts(observations_fts, rank) VALUES ('integrity-check', 1)")


def test_fts_follows_direct_update_and_delete_of_summary(store: Store) -> None:
    sid = store.upsert_session(SID, "/p", "/p").id
    sm = store.save_summary(sid, 1, summary(learned="aardvark"))
    store.conn.execute("UPDATE summaries SET learned = 'platypus' WHERE id = ?", (sm,))
    assert fts_ids(store, "summaries_fts", "aardvark") == []
    assert fts_ids(store, "summaries_fts", "platypus") == [sm]
    store.conn.execute("DELETE FROM summaries WHERE id = ?", (sm,))
    assert fts_ids(store, "summaries_fts", "platypus") == []


# --------------------------------------------------------------------------- #
# Sessions
# --------------------------------------------------------------------------- #


def test_upsert_session_is_idempotent(store: Store, memoir_home: Path) -> None:
    a = store.upsert_session(SID, "/proj", "/proj")
    b = store.upsert_session(SID, "/proj", "/proj/sub")
    assert a.id == b.id
    assert b.cwd == "/proj/sub"
    assert b.status == "active"
    assert count(memoir_home, "SELECT COUNT(*) FROM sessions") == 1
    assert store.get_session(SID) == b
    assert store.get_session(SID2) is None


def test_upsert_session_reactivates_completed_session(store: Store) -> None:
    s = store.upsert_session(SID, "/proj", "/proj")
    store.request_end(s.id, "other")
    store.set_status(s.id, "completed", "other")
    ended = store.get_session(SID)
    assert ended is not None
    assert ended.status == "completed"
    assert ended.ended_at is not None and ended.end_requested_at is not None

    resumed = store.upsert_session(SID, "/proj", "/proj")
    assert resumed.id == s.id
    assert resumed.status == "active"
    assert resumed.ended_at is None
    assert resumed.end_reason is None
    assert resumed.end_requested_at is None


def test_set_status_sets_and_clears_end(store: Store) -> None:
    s = store.upsert_session(SID, "/p", "/p")
    assert s.ended_at is None and s.status == "active"

    store.set_status(s.id, "completed", "logout")
    row = store.get_session(SID)
    assert row.status == "completed" and row.end_reason == "logout" and row.ended_at

    store.set_status(s.id, "active")
    row = store.get_session(SID)
    assert row.status == "active" and row.ended_at is None and row.end_reason is None

    store.set_status(s.id, "failed", "agent unavailable")
    row = store.get_session(SID)
    assert row.status == "failed" and row.end_reason == "agent unavailable" and row.ended_at


def test_set_status_rejects_unknown_status(store: Store) -> None:
    s = store.upsert_session(SID, "/p", "/p")
    with pytest.raises(StoreError) as info:
        store.set_status(s.id, "bogus")  # type: ignore[arg-type]
    # A constraint violation leaves as StoreError (never a raw sqlite3 error).
    assert info.value.reason == "write"
    assert isinstance(info.value.__cause__, sqlite3.IntegrityError)
    assert store.get_session(SID).status == "active"


def test_set_worker_and_sessions_with_workers(store: Store) -> None:
    a = store.upsert_session(SID, "/p", "/p")
    b = store.upsert_session(SID2, "/p", "/p")
    assert store.sessions_with_workers() == []

    store.set_worker(b.id, 4242, 1700000000.5)
    store.set_worker(a.id, 99, 12.0)
    rows = store.sessions_with_workers()
    assert [r.claude_session_id for r in rows] == [SID, SID2]
    assert (rows[1].worker_pid, rows[1].worker_create_time) == (4242, 1700000000.5)

    store.set_worker(a.id, None, None)
    rows = store.sessions_with_workers()
    assert [r.id for r in rows] == [b.id]
    assert store.get_session(SID).worker_pid is None


def test_set_agent_session(store: Store) -> None:
    s = store.upsert_session(SID, "/p", "/p")
    store.set_agent_session(s.id, "agent-123")
    assert store.get_session(SID).agent_session_id == "agent-123"
    store.set_agent_session(s.id, None)
    assert store.get_session(SID).agent_session_id is None


# --------------------------------------------------------------------------- #
# Prompts
# --------------------------------------------------------------------------- #


def test_add_prompt_numbers_per_session(store: Store) -> None:
    a = store.upsert_session(SID, "/p", "/p").id
    b = store.upsert_session(SID2, "/p", "/p").id
    assert store.current_prompt_number(a) == 0
    assert [store.add_prompt(a, f"a{i}") for i in range(3)] == [1, 2, 3]
    assert store.add_prompt(b, "b0") == 1
    assert store.add_prompt(a, "a3") == 4
    assert store.add_prompt(b, "b1") == 2
    assert store.current_prompt_number(a) == 4
    assert store.current_prompt_number(b) == 2
    assert store.prompt_text(a, 2) == "a1"
    assert store.prompt_text(b, 2) == "b1"
    assert store.prompt_text(a, 99) is None


def test_prompt_number_unique_enforced(store: Store, memoir_home: Path) -> None:
    a = store.upsert_session(SID, "/p", "/p").id
    store.add_prompt(a, "one")
    with pytest.raises(StoreError) as info:
        store.conn.execute(
            "INSERT INTO prompts (session_id, prompt_number, text) VALUES (?, 1, 'dup')", (a,))
    assert isinstance(info.value.__cause__, sqlite3.IntegrityError)
    assert count(memoir_home, "SELECT COUNT(*) FROM prompts") == 1
    assert store.prompt_text(a, 1) == "one"


def test_add_prompt_for_unknown_session_is_refused(store: Store, memoir_home: Path) -> None:
    with pytest.raises(StoreError) as info:
        store.add_prompt(12345, "orphan")
    # A constraint violation leaves as StoreError (never a raw sqlite3 error).
    assert info.value.reason == "write"
    assert isinstance(info.value.__cause__, sqlite3.IntegrityError)
    assert count(memoir_home, "SELECT COUNT(*) FROM prompts") == 0


def test_finish_prompt_keeps_response(store: Store) -> None:
    a = store.upsert_session(SID, "/p", "/p").id
    store.add_prompt(a, "q")
    assert store.prompt_response(a, 1) is None
    store.finish_prompt(a, 1, "Done: fixed it")
    assert store.prompt_response(a, 1) == "Done: fixed it"
    # A later Stop without a reply keeps the earlier one.
    store.finish_prompt(a, 1, None)
    assert store.prompt_response(a, 1) == "Done: fixed it"
    assert store.prompt_response(a, 7) is None


# --------------------------------------------------------------------------- #
# Events: the durable queue
# --------------------------------------------------------------------------- #


def test_add_event_dedupes_tool_use_id_per_session(store: Store, memoir_home: Path) -> None:
    a = store.upsert_session(SID, "/p", "/p").id
    b = store.upsert_session(SID2, "/p", "/p").id
    first = store.add_event(a, 1, "Bash", {"command": "ls"}, {"stdout": "x"}, tool_use_id="tu_1")
    assert isinstance(first, int)
    assert store.add_event(a, 1, "Bash", {"command": "ls"}, {"stdout": "x"},
                           tool_use_id="tu_1") is None
    other = store.add_event(b, 1, "Bash", {"command": "ls"}, {"stdout": "x"}, tool_use_id="tu_1")
    assert isinstance(other, int) and other != first
    n1 = store.add_event(a, 1, "Read", {"file_path": "/x"}, "content")
    n2 = store.add_event(a, 1, "Read", {"file_path": "/x"}, "content")
    assert n1 is not None and n2 is not None and n1 != n2
    assert count(memoir_home, "SELECT COUNT(*) FROM events WHERE session_id = ?", a) == 3
    assert count(memoir_home, "SELECT COUNT(*) FROM events WHERE session_id = ?", b) == 1


def test_add_event_round_trips_payload(store: Store) -> None:
    a = store.upsert_session(SID, "/p", "/p").id
    tin = {"command": "echo ünïcode", "n": [1, 2]}
    ev = store.add_event(a, 3, "Bash", tin, "plain string", tool_use_id="t", failed=True,
                         error="exit 1")
    (row,) = store.pending_events(a)
    assert row.id == ev
    assert row.prompt_number == 3
    assert row.tool_input == tin
    assert row.tool_response == "plain string"
    assert row.failed is True and row.error == "exit 1"
    assert row.status == "pending" and row.attempts == 0


def test_pending_events_order_and_limit(store: Store) -> None:
    a = store.upsert_session(SID, "/p", "/p").id
    b = store.upsert_session(SID2, "/p", "/p").id
    ids = [store.add_event(a, 1, "Read", {"i": i}, "r", tool_use_id=f"t{i}") for i in range(5)]
    store.add_event(b, 1, "Read", {"i": 99}, "r")
    assert [e.id for e in store.pending_events(a)] == ids
    assert [e.tool_input["i"] for e in store.pending_events(a, limit=2)] == [0, 1]
    assert store.count_pending(a) == 5
    store.record_observations(a, ids[:2], [obs()], 1)
    assert [e.id for e in store.pending_events(a, limit=2)] == ids[2:4]
    assert store.count_pending(a) == 3
    assert [e.tool_input["i"] for e in store.pending_events(b)] == [99]


def test_events_for_prompt(store: Store) -> None:
    a = store.upsert_session(SID, "/p", "/p").id
    e1 = store.add_event(a, 1, "Read", {}, "")
    e2 = store.add_event(a, 2, "Edit", {}, "")
    e3 = store.add_event(a, 1, "Bash", {}, "")
    assert [e.id for e in store.events_for_prompt(a, 1)] == [e1, e3]
    assert [e.id for e in store.events_for_prompt(a, 2)] == [e2]
    assert store.events_for_prompt(a, 3) == []


def test_note_attempt_increments_and_keeps_pending(store: Store) -> None:
    a = store.upsert_session(SID, "/p", "/p").id
    e1 = store.add_event(a, 1, "Read", {}, "")
    e2 = store.add_event(a, 1, "Read", {}, "")
    store.note_attempt([e1])
    store.note_attempt([e1, e2])
    store.note_attempt([])
    by_id = {e.id: e for e in store.pending_events(a)}
    assert by_id[e1].attempts == 2
    assert by_id[e2].attempts == 1
    assert by_id[e1].status == "pending"


def test_record_observations_atomic_and_idempotent(store: Store, memoir_home: Path) -> None:
    a = store.upsert_session(SID, "/p", "/p").id
    e1 = store.add_event(a, 2, "Read", {"file_path": "/a"}, "x", tool_use_id="t1")
    e2 = store.add_event(a, 2, "Edit", {"file_path": "/a"}, "y", tool_use_id="t2")
    items = [
        obs("Found bug", "narr one", facts=["f1", "f2"], concepts=["c"],
            files_read=["/a"], files_modified=[]),
        obs("Fixed bug", "narr two", type="feature", files_modified=["/a"]),
    ]
    ids = store.record_observations(a, [e1, e2], items, 2)
    assert len(ids) == 2
    assert store.count_pending(a) == 0
    conn = db(memoir_home)
    try:
        rows = conn.execute(
            "SELECT status, attempts, processed_at FROM events ORDER BY id").fetchall()
    finally:
        conn.close()
    assert [r["status"] for r in rows] == ["processed", "processed"]
    assert all(r["processed_at"] for r in rows)
    assert [r["attempts"] for r in rows] == [1, 1]

    stored = store.observations_for_session(a)
    assert [o.id for o in stored] == ids
    assert stored[0].event_ids == [e1, e2]
    assert stored[0].facts == ["f1", "f2"]
    assert stored[0].concepts == ["c"]
    assert stored[0].files_read == ["/a"]
    assert stored[0].prompt_number == 2
    assert stored[1].type == "feature" and stored[1].files_modified == ["/a"]

    # Replay (a second worker, or a retry after a crash past COMMIT): nothing new.
    assert store.record_observations(a, [e1, e2], items, 2) == []
    assert count(memoir_home, "SELECT COUNT(*) FROM observations") == 2


def test_record_observations_partly_processed_batch_stores_nothing(
        store: Store, memoir_home: Path) -> None:
    a = store.upsert_session(SID, "/p", "/p").id
    e1 = store.add_event(a, 1, "Read", {}, "", tool_use_id="t1")
    e2 = store.add_event(a, 1, "Read", {}, "", tool_use_id="t2")
    assert len(store.record_observations(a, [e1], [obs("first")], 1)) == 1
    # A batch that overlaps work already done stores nothing, so nothing twice;
    # the event still pending comes back in the next batch on its own.
    assert store.record_observations(a, [e1, e2], [obs("both")], 1) == []
    assert count(memoir_home, "SELECT COUNT(*) FROM observations") == 1
    assert [e.id for e in store.pending_events(a)] == [e2]


def test_record_observations_with_no_observations_still_processes(store: Store) -> None:
    a = store.upsert_session(SID, "/p", "/p").id
    e1 = store.add_event(a, 1, "Read", {}, "")
    assert store.record_observations(a, [e1], [], 1) == []
    assert store.count_pending(a) == 0
    assert store.observations_for_session(a) == []


def test_crash_inside_transaction_leaves_nothing(store: Store, memoir_home: Path) -> None:
    a = store.upsert_session(SID, "/p", "/p").id
    e1 = store.add_event(a, 1, "Read", {}, "")
    with pytest.raises(RuntimeError), store.transaction() as conn:
        conn.execute(
            "INSERT INTO observations (session_id, prompt_number, type, title, narrative)"
            " VALUES (?, 1, 'change', 'half', 'crashword')", (a,))
        conn.execute("UPDATE events SET status = 'processed' WHERE id = ?", (e1,))
        raise RuntimeError("worker died")
    assert count(memoir_home, "SELECT COUNT(*) FROM observations") == 0
    assert store.count_pending(a) == 1
    assert fts_ids(store, "observations_fts", "crashword") == []
    # The connection is usable again, and the replay succeeds exactly once.
    assert len(store.record_observations(a, [e1], [obs()], 1)) == 1
    assert count(memoir_home, "SELECT COUNT(*) FROM observations") == 1


def test_record_observations_failure_midway_rolls_back(store: Store, memoir_home: Path) -> None:
    """An observation that cannot be stored aborts the whole batch."""
    a = store.upsert_session(SID, "/p", "/p").id
    e1 = store.add_event(a, 1, "Read", {}, "")

    class Broken:
        type = "change"
        title = None  # NOT NULL violation on the second insert
        subtitle = ""
        facts: list[str] = []
        narrative = ""
        concepts: list[str] = []
        files_read: list[str] = []
        files_modified: list[str] = []

    with pytest.raises(StoreError) as info:
        store.record_observations(a, [e1], [obs("good"), Broken()], 1)
    # A constraint violation leaves as StoreError (never a raw sqlite3 error).
    assert info.value.reason == "write"
    assert isinstance(info.value.__cause__, sqlite3.IntegrityError)
    assert count(memoir_home, "SELECT COUNT(*) FROM observations") == 0
    assert store.count_pending(a) == 1


def _hold_write_lock(home: Path) -> sqlite3.Connection:
    holder = sqlite3.connect(home / "memoir.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_locked_database_wait_is_bounded_by_busy_timeout(memoir_home: Path) -> None:
    with Store.open(memoir_home) as s:
        a = s.upsert_session(SID, "/p", "/p").id
    holder = _hold_write_lock(memoir_home)
    try:
        with Store.open(memoir_home, timeout=0.3) as s:
            started = time.monotonic()
            with pytest.raises(StoreError) as raised:
                s.add_event(a, 1, "Read", {}, "")
            assert raised.value.reason == "busy"
            waited = time.monotonic() - started
            assert 0.2 <= waited < 2.5
            # The failed write left no transaction open: the next one works.
            holder.execute("ROLLBACK")
            assert s.add_event(a, 1, "Read", {}, "") is not None
    finally:
        holder.close()
    assert count(memoir_home, "SELECT COUNT(*) FROM events") == 1


def test_locked_database_write_raises_store_error(memoir_home: Path) -> None:
    """errors.py: sqlite3 errors become StoreError at the module boundary, so callers
    that catch MemoirError (the CLI) report a locked store instead of a traceback."""
    with Store.open(memoir_home) as s:
        a = s.upsert_session(SID, "/p", "/p").id
    holder = _hold_write_lock(memoir_home)
    try:
        with Store.open(memoir_home, timeout=0.1) as s, pytest.raises(StoreError):
            s.add_event(a, 1, "Read", {}, "")
    finally:
        holder.close()


def test_concurrent_writers_lose_nothing(memoir_home: Path) -> None:
    with Store.open(memoir_home) as s:
        a = s.upsert_session(SID, "/p", "/p").id
    errors: list[BaseException] = []
    results: dict[int, list[int | None]] = {}
    barrier = threading.Barrier(2)

    def writer(n: int) -> None:
        try:
            with Store.open(memoir_home) as s:
                barrier.wait()
                results[n] = [
                    s.add_event(a, 1, "Bash", {"w": n, "i": i}, "ok", tool_use_id=f"w{n}-{i}")
                    for i in range(200)
                ]
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert all(x is not None for ids in results.values() for x in ids)
    assert len({x for ids in results.values() for x in ids}) == 400
    assert count(memoir_home, "SELECT COUNT(*) FROM events") == 400
    with Store.open(memoir_home) as s:
        assert s.count_pending(a) == 400


# --------------------------------------------------------------------------- #
# Summaries and what needs one
# --------------------------------------------------------------------------- #


def test_prompts_to_summarize(store: Store) -> None:
    a = store.upsert_session(SID, "/p", "/p").id
    for text in ("p1 events finished", "p2 response only", "p3 empty", "p4 open with events",
                 "p5 summarized", "p6 empty response"):
        store.add_prompt(a, text)
    store.add_event(a, 1, "Read", {}, "")
    store.finish_prompt(a, 1, None)
    store.finish_prompt(a, 2, "I explained it")
    store.finish_prompt(a, 3, None)
    store.add_event(a, 4, "Edit", {}, "")
    store.add_event(a, 5, "Bash", {}, "")
    store.finish_prompt(a, 5, "ran it")
    store.save_summary(a, 5, summary(request="p5"))
    store.finish_prompt(a, 6, "")

    assert store.prompts_to_summarize(a) == [1, 2]
    assert store.prompts_to_summarize(a, include_open=True) == [1, 2, 4]

    store.save_summary(a, 1, summary(request="p1"), "fallback")
    assert store.prompts_to_summarize(a, include_open=True) == [2, 4]


def test_prompts_to_summarize_is_per_session(store: Store) -> None:
    a = store.upsert_session(SID, "/p", "/p").id
    b = store.upsert_session(SID2, "/p", "/p").id
    store.add_prompt(a, "a")
    store.add_prompt(b, "b")
    store.add_event(b, 1, "Read", {}, "")
    store.finish_prompt(b, 1, None)
    store.save_summary(a, 1, summary(request="a"))
    assert store.prompts_to_summarize(a, include_open=True) == []
    assert store.prompts_to_summarize(b) == [1]


def test_save_summary_upserts_one_row(store: Store, memoir_home: Path) -> None:
    a = store.upsert_session(SID, "/p", "/p").id
    store.add_prompt(a, "q")
    digest = Summary(request="q", investigated="read", learned="fallback text",
                           completed="1 tool call(s)", next_steps="", notes="raw")
    first = store.save_summary(a, 1, digest, "fallback")
    (row,) = store.summaries_for_session(a)
    assert row.id == first and row.kind == "fallback" and row.learned == "fallback text"

    second = store.save_summary(a, 1, summary(request="q", learned="agent text", next_steps="n"))
    assert second == first
    (row,) = store.summaries_for_session(a)
    assert row.kind == "agent"
    assert row.learned == "agent text"
    assert row.investigated == ""  # fields are replaced, not merged
    assert row.next_steps == "n"
    assert count(memoir_home, "SELECT COUNT(*) FROM summaries") == 1

    store.save_summary(a, 2, summary(request="q2"))
    assert [s.prompt_number for s in store.summaries_for_session(a)] == [1, 2]
    assert store.summary_numbers(a) == {1, 2}


def test_save_summary_rejects_unknown_kind(store: Store, memoir_home: Path) -> None:
    a = store.upsert_session(SID, "/p", "/p").id
    with pytest.raises(StoreError) as info:
        store.save_summary(a, 1, summary(request="x"), "weird")  # type: ignore[arg-type]
    # A constraint violation leaves as StoreError (never a raw sqlite3 error).
    assert info.value.reason == "write"
    assert isinstance(info.value.__cause__, sqlite3.IntegrityError)
    assert count(memoir_home, "SELECT COUNT(*) FROM summaries") == 0


# --------------------------------------------------------------------------- #
# What the next session sees
# --------------------------------------------------------------------------- #


def _three_sessions(store: Store) -> tuple[int, int, int]:
    a = store.upsert_session(SID, "/proj", "/proj").id
    b = store.upsert_session(SID2, "/proj", "/proj").id
    c = store.upsert_session("other-session", "/elsewhere", "/elsewhere").id
    return a, b, c


def test_recent_summaries_filter_order_limit_exclude(store: Store) -> None:
    a, b, c = _three_sessions(store)
    store.save_summary(a, 1, summary(request="a1"))
    time.sleep(0.003)
    store.save_summary(b, 1, summary(request="b1"))
    time.sleep(0.003)
    store.save_summary(c, 1, summary(request="c1"))
    time.sleep(0.003)
    store.save_summary(a, 2, summary(request="a2"))

    got = store.recent_summaries("/proj", 10)
    assert [m.request for _, m in got] == ["a2", "b1", "a1"]
    assert [s.claude_session_id for s, _ in got] == [SID, SID2, SID]
    assert got[0][1].session_id == a and got[0][1].prompt_number == 2

    assert [m.request for _, m in store.recent_summaries("/proj", 2)] == ["a2", "b1"]
    assert [m.request for _, m in store.recent_summaries("/proj", 10, exclude_session=SID)] \
        == ["b1"]
    assert [m.request for _, m in store.recent_summaries("/elsewhere", 10)] == ["c1"]
    assert store.recent_summaries("/nowhere", 10) == []


def test_recent_observations_filter_order_limit_exclude(store: Store) -> None:
    a, b, c = _three_sessions(store)
    store.record_observations(a, [store.add_event(a, 1, "Read", {}, "")], [obs("a-1")], 1)
    store.record_observations(c, [store.add_event(c, 1, "Read", {}, "")], [obs("c-1")], 1)
    store.record_observations(b, [store.add_event(b, 1, "Read", {}, "")],
                              [obs("b-1"), obs("b-2")], 1)
    store.record_observations(a, [store.add_event(a, 2, "Read", {}, "")], [obs("a-2")], 2)

    assert [o.title for o in store.recent_observations("/proj", 10)] == ["a-2", "b-2", "b-1", "a-1"]
    assert [o.title for o in store.recent_observations("/proj", 2)] == ["a-2", "b-2"]
    assert [o.title for o in store.recent_observations("/proj", 10, exclude_session=SID)] \
        == ["b-2", "b-1"]
    assert [o.title for o in store.recent_observations("/elsewhere", 10)] == ["c-1"]


def test_session_stats_counts(store: Store) -> None:
    a = store.upsert_session(SID, "/p", "/p").id
    b = store.upsert_session(SID2, "/p", "/p").id
    store.add_prompt(a, "1")
    store.add_prompt(a, "2")
    e = [store.add_event(a, 1, "Read", {}, "") for _ in range(3)]
    store.record_observations(a, e[:2], [obs("x"), obs("y"), obs("z")], 1)
    store.save_summary(a, 1, summary(request="1"))

    (stats,) = store.session_stats(SID)
    assert stats.session.id == a
    assert (stats.prompts, stats.events_total, stats.events_pending,
            stats.observations, stats.summaries) == (2, 3, 1, 3, 1)

    (empty,) = store.session_stats(SID2)
    assert (empty.prompts, empty.events_total, empty.events_pending,
            empty.observations, empty.summaries) == (0, 0, 0, 0, 0)

    everything = store.session_stats()
    assert {s.session.id for s in everything} == {a, b}
    assert everything[0].session.id == b  # newest first
    assert store.session_stats("no-such-session") == []


def test_agent_context_is_stored_with_the_agent_session(store: Store, memoir_home: Path) -> None:
    assert "0003_agent_context" in store.migrations()
    session = store.upsert_session("sid-ctx", "/p", "/p")
    assert session.agent_session_id is None and session.agent_context_chars == 0
    store.set_agent_context(session.id, "agent-1", 12345)
    row = store.get_session("sid-ctx")
    assert row is not None
    assert (row.agent_session_id, row.agent_context_chars) == ("agent-1", 12345)
    store.set_agent_context(session.id, None, 0)  # a rollover forgets both
    row = store.get_session("sid-ctx")
    assert row is not None
    assert (row.agent_session_id, row.agent_context_chars) == (None, 0)
    # Listing rows carry the column too.
    assert store.session_stats("sid-ctx")[0].session.agent_context_chars == 0


def test_migration_0003_adds_the_column_to_an_existing_database(memoir_home: Path) -> None:
    """A database made before 0003 keeps its rows and gets the column with 0."""
    with Store.open(memoir_home) as s:
        sid = s.upsert_session("sid-old", "/p", "/p").id
        s.set_agent_session(sid, "agent-old")
    conn = sqlite3.connect(memoir_home / "memoir.db", isolation_level=None)
    conn.execute("ALTER TABLE sessions DROP COLUMN agent_context_chars")
    conn.execute("DELETE FROM schema_migrations WHERE name = '0003_agent_context'")
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    with Store.open(memoir_home) as s:
        row = s.get_session("sid-old")
        assert row is not None
        assert (row.agent_session_id, row.agent_context_chars) == ("agent-old", 0)
        assert s.migrations()[-1] == "0003_agent_context"
