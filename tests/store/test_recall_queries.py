"""m0005_context and the recall queries: files index, injections, term counts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from claude_memoir.agent.models import Observation
from claude_memoir.paths import db_path
from claude_memoir.store import Store


def _observe(store: Store, sid: str, project: str, *observations: Observation) -> list[int]:
    session = store.upsert_session(sid, project, project)
    number = store.add_prompt(session.id, "p")
    event = store.add_event(session.id, number, "Bash", {"command": sid}, {})
    assert event is not None
    return store.record_observations(session.id, [event], list(observations), number)


def _files(store: Store) -> list[tuple[int, str, str, int]]:
    # Each row names its observation's session too (what lookups filter on).
    assert store.conn.execute(
        "SELECT COUNT(*) FROM observation_files f JOIN observations o"
        " ON o.id = f.observation_id WHERE o.session_id != f.session_id").fetchone()[0] == 0
    return [tuple(r) for r in store.conn.execute(
        "SELECT observation_id, name, path, modified FROM observation_files"
        " ORDER BY observation_id, modified, path")]


def test_files_index_kept_by_triggers(memoir_home: Path) -> None:
    with Store.open(memoir_home) as store:
        [a, b] = _observe(store, "s1", "/p",
                          Observation(title="a", files_read=["/p/src/app.py", "README"],
                                      files_modified=["src/db/schema.sql"]),
                          Observation(title="b", files_read=["", "dir/"]))
        assert _files(store) == [(a, "app.py", "/p/src/app.py", 0), (a, "README", "README", 0),
                                 (a, "schema.sql", "src/db/schema.sql", 1), (b, "", "dir/", 0)]
        # Changed lists are re-indexed; JSON that is not a list of strings is skipped.
        store.conn.execute("UPDATE observations SET files_read = 'not json',"
                           " files_modified = '[1, \"x/y.py\"]' WHERE id = ?", (a,))
        assert [f for f in _files(store) if f[0] == a] == [(a, "y.py", "x/y.py", 1)]
        store.conn.execute("DELETE FROM observations WHERE id = ?", (a,))
        assert [f for f in _files(store) if f[0] == a] == []


def test_migration_backfills_existing_observations(memoir_home: Path) -> None:
    with Store.open(memoir_home) as store:
        [a] = _observe(store, "s1", "/p", Observation(title="a", files_modified=["/p/x.py"]))
    # A store from before m0005: its tables gone, the migration not recorded.
    conn = sqlite3.connect(db_path(memoir_home), isolation_level=None)
    for statement in ("DROP TABLE observation_files", "DROP TABLE injections",
                      "DROP TRIGGER IF EXISTS observation_files_ai",
                      "DROP TRIGGER IF EXISTS observation_files_au",
                      "DELETE FROM schema_migrations WHERE name = '0005_context'",
                      "PRAGMA user_version = 4"):
        conn.execute(statement)
    conn.close()
    with Store.open(memoir_home) as store:
        assert "0005_context" in store.migrations()
        assert _files(store) == [(a, "x.py", "/p/x.py", 1)]


def test_injections_are_remembered_per_session(memoir_home: Path) -> None:
    with Store.open(memoir_home) as store:
        one = store.upsert_session("s1", "/p", "/p")
        two = store.upsert_session("s2", "/p", "/p")
        assert store.injected(one.id, "observation", ["1", "2"]) == set()
        store.note_injected(one.id, "observation", ["1", "2", "2"])
        store.note_injected(one.id, "observation", ["2"])  # idempotent
        store.note_injected(one.id, "file", ["/p/a.py"])
        assert store.injected(one.id, "observation", ["1", "2", "3"]) == {"1", "2"}
        assert store.injected(one.id, "file", ["/p/a.py", "1"]) == {"/p/a.py"}
        assert store.injected(two.id, "observation", ["1"]) == set()
        store.conn.execute("DELETE FROM sessions WHERE id = ?", (one.id,))
        assert store.conn.execute("SELECT COUNT(*) FROM injections").fetchone()[0] == 0


def test_files_named_and_observations_matching(memoir_home: Path) -> None:
    with Store.open(memoir_home) as store:
        [mine] = _observe(store, "s1", "/p", Observation(
            title="Ledger rounding", narrative="reconcile ledger totals",
            files_modified=["/p/src/ledger.py"]))
        [other] = _observe(store, "s2", "/q", Observation(
            title="Ledger elsewhere", files_read=["/q/src/ledger.py"]))
        [current] = _observe(store, "s3", "/p", Observation(
            title="Ledger now", files_read=["src/ledger.py"]))
        s3 = store.get_session("s3")
        assert s3 is not None
        found = store.files_named("ledger.py", "/p", s3.id, 10)
        assert found == [("/p/src/ledger.py", mine)]
        both = store.files_named("ledger.py", "/p", None, 10)
        assert both == [("src/ledger.py", current), ("/p/src/ledger.py", mine)]
        assert sorted(store.observation_ids_matching('"ledger"', 10)) == [mine, other, current]
        assert len(store.observation_ids_matching('"ledger"', 2)) == 2
        assert store.observation_ids_matching('"nowhere"', 10) == []
        # This project's, in the order asked, without the excluded session's.
        assert store.of_project([current, other, mine], "/p", s3.id) == [mine]
        assert store.of_project([current, other, mine, 999], "/p", None) == [current, mine]
        assert store.of_project([], "/p", None) == []
