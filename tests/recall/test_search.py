"""recall.search: ranked, code-aware full-text search over a real SQLite store."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_memoir.agent.models import Observation, Summary
from claude_memoir.errors import InvalidInput
from claude_memoir.recall.search import MAX_LIMIT, SearchResult, search
from claude_memoir.store import SessionRow, Store
from claude_memoir.store.schema import MIGRATIONS

PROJECT = "/work/app"
DECOY = "/work/other"


@pytest.fixture
def store(memoir_home: Path) -> Iterator[Store]:
    s = Store.open(memoir_home)
    yield s
    s.close()


def session(store: Store, sid: str, project: str = PROJECT) -> SessionRow:
    return store.upsert_session(sid, project, project)


def observe(store: Store, s: SessionRow, prompt: str = "work", **fields: object) -> int:
    number = store.add_prompt(s.id, prompt)
    event = store.add_event(s.id, number, "Edit", {"file_path": "x"}, f"{prompt}-{fields}")
    assert event is not None
    values: dict[str, object] = {"type": "change", "title": "", "subtitle": "", "facts": [],
                                 "narrative": "", "concepts": [], "files_read": [],
                                 "files_modified": []}
    values.update(fields)
    [obs_id] = store.record_observations(s.id, [event], [Observation(**values)], number)
    return obs_id


def set_created(store: Store, table: str, row_id: int, when: str) -> None:
    with store.transaction() as conn:
        conn.execute(f"UPDATE {table} SET created_at = ? WHERE id = ?", (when, row_id))


def ids(results: list[SearchResult], kind: str = "observation") -> list[int]:
    return [r.id for r in results if r.kind == kind]


@pytest.fixture
def ledger(store: Store) -> dict[str, int]:
    """A project with a ledger fix among unrelated work, and a decoy project."""
    s1 = session(store, "sess-one")
    fix = observe(store, s1, title="Fix cents lost in ReconcileLedger",
                  subtitle="rounding moved after the sum", type="bugfix",
                  narrative="Totals drifted by one cent per thousand rows.",
                  facts=["ReconcileLedger.total() rounds once, at the end"],
                  files_modified=["/work/app/src/app/ledger.py"])
    other = observe(store, s1, title="Add retry to the HTTP client",
                    narrative="Requests are retried three times with backoff.",
                    files_modified=["/work/app/src/app/http_client.py"])
    s2 = session(store, "sess-two")
    snake = observe(store, s2, title="Document reconcile_ledger invariants", type="discovery",
                    narrative="Explained why sums must be exact.")
    store.save_summary(s2.id, store.current_prompt_number(s2.id),
                       Summary(request="explain the ledger", learned="reconcile_ledger is exact",
                               next_steps="add a property test"))
    d = session(store, "sess-decoy", DECOY)
    decoy = observe(store, d, title="ReconcileLedger in the other project",
                    files_modified=["/work/other/src/app/ledger.py"])
    return {"fix": fix, "other": other, "snake": snake, "decoy": decoy}


# -- tokenisation fit for code --------------------------------------------------------


@pytest.mark.parametrize("query", ["ReconcileLedger", "reconcile_ledger", "reconcile ledger",
                                   "reconcileLedger", "RECONCILE LEDGER", "src/app/ledger.py",
                                   "reconciling ledgers"])
def test_code_forms_find_each_other(store: Store, ledger: dict[str, int], query: str) -> None:
    found = ids(search(store, query, project=PROJECT))
    if query == "src/app/ledger.py":
        # The path names the file the fix modified; the snake_case note names no file.
        assert found[0] == ledger["fix"]
    else:
        assert set(found[:2]) == {ledger["fix"], ledger["snake"]}, found
    assert ledger["other"] not in found[:2]
    assert ledger["decoy"] not in found


@pytest.mark.parametrize("query", ["reconcile_ledger", "reconcile ledger", "reconcile-ledger"])
def test_camel_case_identifier_found_by_its_words(store: Store, query: str) -> None:
    s = session(store, "sess-camel")
    camel = observe(store, s, title="Speed up ReconcileLedger", narrative="Batching helps.")
    plain = observe(store, s, title="Ledger notes", narrative="the ledger, the ledger")
    assert ids(search(store, query, project=PROJECT)) == [camel, plain]


def test_title_match_outranks_narrative_match(store: Store) -> None:
    s = session(store, "sess-rank")
    in_narrative = observe(store, s, title="Tidy imports", narrative="touched the zeppelin module")
    in_title = observe(store, s, title="Zeppelin module rewritten", narrative="a large change")
    for n in range(6):  # a corpus, so BM25's idf is not flat
        observe(store, s, title=f"unrelated work {n}", narrative="nothing of note")
    results = search(store, "zeppelin", project=PROJECT)
    assert ids(results)[:2] == [in_title, in_narrative]
    assert results[0].score > results[1].score > 0


def test_all_words_matching_come_before_some(store: Store) -> None:
    s = session(store, "sess-tiers")
    both = observe(store, s, title="parser cache eviction", narrative="x")
    one = observe(store, s, title="parser parser parser", narrative="parser")
    results = ids(search(store, "parser eviction", project=PROJECT))
    assert results == [both, one]


def test_recency_breaks_ties_and_there_is_no_time_cutoff(store: Store) -> None:
    s = session(store, "sess-recency")
    old = observe(store, s, title="quasar flag removed")
    new = observe(store, s, title="quasar flag removed")
    set_created(store, "observations", old, "2019-01-01T00:00:00.000Z")
    set_created(store, "observations", new, "2026-01-01T00:00:00.000Z")
    results = search(store, "quasar", project=PROJECT)
    assert ids(results) == [new, old]  # the seven-year-old one is still found
    assert results[0].score == results[1].score


def test_natural_language_question_finds_the_topic(store: Store, ledger: dict[str, int]) -> None:
    results = search(store, "what did we do about the ledger last time?", project=PROJECT)
    assert ledger["fix"] in ids(results)
    assert any(r.kind == "summary" for r in results)


def test_prefix_query(store: Store, ledger: dict[str, int]) -> None:
    assert ledger["fix"] in ids(search(store, "reconc*", project=PROJECT))


# -- scope and filters ----------------------------------------------------------------


def test_project_scope_and_all_projects(store: Store, ledger: dict[str, int]) -> None:
    assert ledger["decoy"] not in ids(search(store, "ReconcileLedger", project=PROJECT))
    assert ids(search(store, "ReconcileLedger", project=DECOY)) == [ledger["decoy"]]
    everywhere = search(store, "ReconcileLedger", project=None)
    assert {ledger["fix"], ledger["decoy"]} <= set(ids(everywhere))
    assert {r.project for r in everywhere} == {PROJECT, DECOY}


def test_result_fields(store: Store, ledger: dict[str, int]) -> None:
    [fix] = [r for r in search(store, "cents", project=PROJECT) if r.id == ledger["fix"]]
    assert fix.kind == "observation" and fix.type == "bugfix"
    assert fix.title == "Fix cents lost in ReconcileLedger"
    assert fix.session == "sess-one" and fix.project == PROJECT
    assert "cent" in fix.snippet
    assert fix.created_at.endswith("Z")


def test_snippet_shows_the_field_matching_most_words(store: Store) -> None:
    s = session(store, "sess-snippet")
    observe(store, s, title="Ledger work", subtitle="touched rounding",
            facts=["PLANTED: ledger totals round after summing"],
            narrative="A long story. " * 40 + "Totals were wrong.")
    [hit] = search(store, "ledger totals rounding", project=PROJECT)
    assert hit.snippet == "PLANTED: ledger totals round after summing"


def test_summaries_and_prompts_are_searched(store: Store, ledger: dict[str, int]) -> None:
    results = search(store, "property test", project=PROJECT)
    assert [(r.kind, r.type) for r in results] == [("summary", "summary")]
    assert results[0].title == "explain the ledger"
    assert "property test" in results[0].snippet
    s = session(store, "sess-prompt")
    store.add_prompt(s.id, "Why does the FlakyWidgetTest fail on Mondays?")
    hit = search(store, "flaky widget test", project=PROJECT)[0]
    assert hit.kind == "prompt" and hit.type == "prompt" and hit.session == "sess-prompt"


def test_type_filter(store: Store, ledger: dict[str, int]) -> None:
    assert ids(search(store, "ledger", project=PROJECT, types=["bugfix"])) == [ledger["fix"]]
    only = search(store, "ledger", project=PROJECT, types=["summary"])
    assert only and {r.kind for r in only} == {"summary"}
    mixed = search(store, "ledger", project=PROJECT, types=["discovery", "summary"])
    assert {(r.kind, r.type) for r in mixed} == {("observation", "discovery"),
                                                  ("summary", "summary")}
    with pytest.raises(InvalidInput, match="bad type"):
        search(store, "ledger", project=PROJECT, types=["bug fix; DROP"])


@pytest.mark.parametrize("file", ["src/app/ledger.py", "ledger.py", "./src/app/ledger.py",
                                  "/work/app/src/app/ledger.py",
                                  "/elsewhere/checkout/src/app/ledger.py"])
def test_file_filter_matches_path_suffixes(store: Store, ledger: dict[str, int],
                                           file: str) -> None:
    if file.startswith("/elsewhere"):
        # The stored path is not a suffix of this one, nor this of the stored.
        assert search(store, "", project=PROJECT, file=file) == []
        return
    assert ids(search(store, "", project=PROJECT, file=file)) == [ledger["fix"]]
    assert ids(search(store, "cents", project=PROJECT, file=file)) == [ledger["fix"]]
    assert search(store, "retry", project=PROJECT, file=file) == []


def test_file_filter_treats_underscore_and_percent_literally(store: Store) -> None:
    s = session(store, "sess-files")
    observe(store, s, title="a", files_read=["/p/axb.py", "/p/a%b.py"])
    wanted = observe(store, s, title="b", files_read=["/p/a_b.py"])
    assert ids(search(store, "", project=PROJECT, file="a_b.py")) == [wanted]
    assert ids(search(store, "", project=PROJECT, file="%.py")) == []


def test_since_filter(store: Store, ledger: dict[str, int]) -> None:
    set_created(store, "observations", ledger["fix"], "2020-05-01T00:00:00.000Z")
    assert ledger["fix"] not in ids(search(store, "ledger", project=PROJECT, since="7d"))
    assert ledger["snake"] in ids(search(store, "ledger", project=PROJECT, since="7d"))
    assert ledger["fix"] in ids(search(store, "ledger", project=PROJECT, since="2020-04-30"))
    assert ledger["fix"] not in ids(search(store, "ledger", project=PROJECT,
                                           since="2020-05-01T00:00:01+00:00"))
    with pytest.raises(InvalidInput, match="since"):
        search(store, "ledger", project=PROJECT, since="last tuesday")


def test_limit(store: Store) -> None:
    s = session(store, "sess-many")
    for n in range(30):
        observe(store, s, title=f"nebula step {n}")
    assert len(search(store, "nebula", project=PROJECT, limit=5)) == 5
    assert len(search(store, "nebula", project=PROJECT)) == 20
    for bad in (0, -1):
        with pytest.raises(InvalidInput, match="limit"):
            search(store, "nebula", project=PROJECT, limit=bad)
    assert len(search(store, "nebula", project=PROJECT, limit=10_000)) <= MAX_LIMIT


# -- bad input never reaches SQLite as syntax -------------------------------------------


@pytest.mark.parametrize("query", [
    '"unbalanced', "ledger)", "(ledger", "ledger AND", "OR", "NEAR(ledger cents, 2",
    "title:ledger", "ledger -cents", "^ledger", "ledger*cents", "'; DROP TABLE observations;--",
    "ledger " * 2000, "x" * 10_000, "\x00ledger", "ledger\u200b", "é café naïve",
])
def test_hostile_queries_search_words_or_say_why(store: Store, ledger: dict[str, int],
                                                 query: str) -> None:
    try:
        results = search(store, query, project=PROJECT)
    except InvalidInput as e:
        assert "search" in str(e)
        return
    assert isinstance(results, list)
    if "ledger" in query.lower():
        assert ledger["fix"] in ids(results), query[:40]
    assert store.conn.execute("SELECT COUNT(*) FROM observations").fetchone()[0] == 4


@pytest.mark.parametrize("query", ["", "   ", "!!!", '"', "*", "()"])
def test_empty_or_wordless_query_is_a_clear_error(store: Store, query: str) -> None:
    with pytest.raises(InvalidInput) as info:
        search(store, query, project=PROJECT)
    assert info.value.reason == "bad-query"


# -- migration 0004 on an existing store ------------------------------------------------


def _store_at_0003(memoir_home: Path, repo: Path) -> None:
    """A store as the previous release left it, with rows in every searchable table."""
    memoir_home.mkdir(mode=0o700)
    conn = sqlite3.connect(memoir_home / "memoir.db", isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    for name, apply in MIGRATIONS[:3]:
        apply(conn)
        conn.execute("INSERT INTO schema_migrations(name) VALUES (?)", (name,))
    conn.execute("PRAGMA user_version = 3")
    conn.execute("INSERT INTO sessions (id, claude_session_id, project) VALUES (1, 's1', ?)",
                 (str(repo / "src"),))
    conn.execute("INSERT INTO sessions (id, claude_session_id, project) VALUES (2, 's2', ?)",
                 ("/gone/away",))
    conn.execute("INSERT INTO prompts (session_id, prompt_number, text)"
                 " VALUES (1, 1, 'fix the ReconcileLedger please')")
    conn.execute("INSERT INTO observations (session_id, prompt_number, type, title, facts)"
                 " VALUES (1, 1, 'bugfix', 'ReconcileLedger rounding', '[\"OldFact here\"]')")
    for n in range(2, 1202):  # more than one backfill chunk
        conn.execute("INSERT INTO observations (session_id, prompt_number, type, title)"
                     " VALUES (1, 1, 'change', ?)", (f"filler number{n}",))
    conn.execute("INSERT INTO summaries (session_id, prompt_number, learned)"
                 " VALUES (2, 1, 'the PaymentGateway retries')")
    conn.close()


@pytest.fixture
def old_repo(tmp_path: Path, memoir_home: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / ".git" / "objects").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / "src").mkdir()
    _store_at_0003(memoir_home, repo)
    return repo


def integrity_ok(store: Store) -> None:
    for table in ("observations", "summaries", "prompts"):
        store.conn.execute(f"INSERT INTO {table}_fts({table}_fts) VALUES ('integrity-check')")


def test_migration_0004_rekeys_projects_and_is_quick(memoir_home: Path, old_repo: Path) -> None:
    with Store.open(memoir_home) as store:
        assert "0004_recall" in store.migrations()  # later migrations follow it
        projects = dict(store.conn.execute("SELECT claude_session_id, project FROM sessions"))
        assert projects == {"s1": str(old_repo), "s2": "/gone/away"}
        # Older rows wait for the backfill (a hook may run the migration): not searchable yet.
        assert store.search_backlog() == 1203
        assert search(store, "reconcile ledger", project=str(old_repo)) == []
        integrity_ok(store)


def test_backfill_indexes_older_rows_in_chunks_and_resumes(memoir_home: Path,
                                                          old_repo: Path) -> None:
    with Store.open(memoir_home) as store:
        # New rows are indexed at once, while the backlog waits.
        s = store.upsert_session("s3", str(old_repo), str(old_repo))
        store.add_prompt(s.id, "new ReconcileLedger prompt")
        assert [r.session for r in search(store, "reconcile ledger", project=str(old_repo))] \
            == ["s3"]
        # An old row deleted before it was indexed must not touch the index.
        with store.transaction() as conn:
            conn.execute("DELETE FROM observations WHERE id = 1201")
        integrity_ok(store)
        left = store.backfill_search(budget=0.0, chunk=500)  # one chunk, then out of time
        assert 0 < left < 1202
        integrity_ok(store)
        assert store.backfill_search(budget=60.0) == 0
        integrity_ok(store)
        hits = search(store, "reconcile ledger", project=str(old_repo))
        assert {(r.kind, r.session) for r in hits} == {("observation", "s1"), ("prompt", "s1"),
                                                       ("prompt", "s3")}
        assert ids(search(store, "old fact", project=str(old_repo))) == [1]
        [summary] = search(store, "payment gateway", project="/gone/away")
        assert summary.kind == "summary"
        assert len(search(store, "filler", project=None, limit=200)) == 200
        # Indexed old rows now follow updates and deletes like new ones.
        with store.transaction() as conn:
            conn.execute("UPDATE prompts SET finished_at = 'x'")
            conn.execute("UPDATE observations SET title = 'Renamed zeppelin' WHERE id = 1")
            conn.execute("DELETE FROM observations WHERE id = 2")
        integrity_ok(store)
        assert ids(search(store, "zeppelin", project=None)) == [1]
        assert len(search(store, "reconcile ledger", project=None, types=["prompt"])) == 2
        assert store.backfill_search(budget=1.0) == 0


def test_memoir_search_and_install_finish_the_backfill(memoir_home: Path, old_repo: Path) -> None:
    import subprocess

    from conftest import memoir_command

    done = subprocess.run([*memoir_command(), "search", "reconcile", "ledger", "--json"],
                          cwd=old_repo / "src", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert {r["kind"] for r in json.loads(done.stdout)} == {"observation", "prompt"}
    assert "not indexed yet" not in done.stderr
    with Store.open(memoir_home) as store:
        assert store.search_backlog() == 0


def test_install_builds_the_index_and_doctor_reports_a_backlog(memoir_home: Path,
                                                              old_repo: Path) -> None:
    import subprocess

    from conftest import memoir_command

    with Store.open(memoir_home):
        pass  # migrated (as the first hook after an upgrade would), backlog left
    doctor = subprocess.run([*memoir_command(), "doctor", "--json"], cwd=old_repo,
                            capture_output=True, text=True, timeout=120)
    [warn] = [f for f in json.loads(doctor.stdout) if "not searchable yet" in f["detail"]]
    assert warn["check"] == "database" and warn["level"] == "warn"
    assert warn["detail"].startswith("1203 records")
    status = subprocess.run([*memoir_command(), "status"], cwd=old_repo, capture_output=True,
                            text=True, timeout=60)
    assert "search index: 1203 older records not indexed yet" in status.stderr
    done = subprocess.run([*memoir_command(), "install"], cwd=old_repo, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "indexing 1203 earlier records for search" in done.stdout
    with Store.open(memoir_home) as store:
        assert store.search_backlog() == 0
