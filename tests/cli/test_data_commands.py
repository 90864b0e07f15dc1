"""memoir forget, export, import, edit, delete: real subprocesses, real store."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from claude_memoir.agent.models import Summary
from claude_memoir.errors import StoreError
from claude_memoir.recall.search import search
from claude_memoir.store import Store
from conftest import db, memoir_command
from seeding import observation, record_session

SID_A = "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa"
SID_B = "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb"
SID_C = "cccccccc-3333-4333-8333-cccccccccccc"


def memoir(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*memoir_command(), *args], capture_output=True, text=True,
                          timeout=60, input=stdin, env=dict(os.environ))


def fts_hits(home: Path, word: str) -> int:
    """Rows of every search index that match ``word`` (what any search would find)."""
    with db(home) as conn:
        return sum(conn.execute(f"SELECT COUNT(*) FROM {t} WHERE {t} MATCH ?",
                                (word,)).fetchone()[0]
                   for t in ("observations_fts", "summaries_fts", "prompts_fts"))


def counts(home: Path, session_row_id: int) -> dict[str, int]:
    with db(home) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t} WHERE session_id = ?",
                                (session_row_id,)).fetchone()[0]
                for t in ("prompts", "events", "observations", "summaries")}


def big_session(home: Path, sid: str, project: str, word: str, turns: int = 40) -> int:
    row = record_session(home, sid, project, [
        (f"prompt {i} about {word}",
         [observation(f"{word} finding {i}", narrative=f"{word} " + "detail " * 300)],
         Summary(request=f"{word} request {i}", learned=f"{word} " + "lesson " * 200))
        for i in range(turns)])
    return row.id


def test_forget_dry_run_changes_nothing_then_forget_removes_all_and_shrinks(
        memoir_home: Path) -> None:
    gone = big_session(memoir_home, SID_A, "/work/alpha", "zebracorn")
    kept = big_session(memoir_home, SID_B, "/work/beta", "quokka", turns=3)
    path = memoir_home / "memoir.db"
    before = counts(memoir_home, gone)
    assert before == {"prompts": 40, "events": 40, "observations": 40, "summaries": 40}

    dry = memoir("forget", SID_A, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would forget 1 sessions, 40 prompts, 40 events, 40 observations, 40 summaries" \
        in dry.stdout
    assert counts(memoir_home, gone) == before
    assert fts_hits(memoir_home, "zebracorn") == 120
    with Store.open(memoir_home) as store:
        assert len(search(store, "zebracorn", project=None, limit=200)) == 120

    size_before = path.stat().st_size + (memoir_home / "memoir.db-wal").stat().st_size
    done = memoir("forget", SID_A, "--yes", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["observations"] == 40 and report["events"] == 40
    assert counts(memoir_home, gone) == {"prompts": 0, "events": 0, "observations": 0,
                                         "summaries": 0}
    assert fts_hits(memoir_home, "zebracorn") == 0
    with Store.open(memoir_home) as store:
        assert search(store, "zebracorn", project=None) == []
        assert search(store, "zebracorn finding", project="/work/alpha") == []
    # The other session is untouched.
    assert counts(memoir_home, kept)["observations"] == 3
    assert fts_hits(memoir_home, "quokka") == 9
    size_after = path.stat().st_size + (memoir_home / "memoir.db-wal").stat().st_size
    assert size_after < size_before * 0.6, (size_before, size_after)
    assert report["bytes_after"] < report["bytes_before"]
    # The forgotten text is gone from the file itself, not just unlinked.
    assert b"zebracorn" not in path.read_bytes()
    with Store.open(memoir_home) as store:
        assert store.get_session(SID_A) is None


def test_forget_by_project_and_by_date(memoir_home: Path, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    record_session(memoir_home, SID_A, os.path.realpath(project), [("a", [observation("x")], None)])
    record_session(memoir_home, SID_B, "/elsewhere", [("b", [observation("y")], None)])
    record_session(memoir_home, SID_C, "/elsewhere", [("c", [observation("z")], None)])
    with db(memoir_home) as conn:
        conn.execute("UPDATE sessions SET updated_at = '2020-05-01T00:00:00.000Z'"
                     " WHERE claude_session_id = ?", (SID_C,))
    r = memoir("forget", "--cwd", str(project), "--yes")
    assert r.returncode == 0, r.stderr
    r = memoir("forget", "--before", "2021-01-01", "--yes")
    assert r.returncode == 0, r.stderr
    with db(memoir_home) as conn:
        left = [row[0] for row in conn.execute("SELECT claude_session_id FROM sessions")]
    assert left == [SID_B]


def test_forget_refuses_bad_input_and_unconfirmed(memoir_home: Path) -> None:
    record_session(memoir_home, SID_A, "/p", [("a", [observation("x")], None)])
    for args in (["forget"], ["forget", SID_A, "--before", "2020-01-01"],
                 ["forget", "../../etc/passwd"], ["forget", "--before", "last tuesday"]):
        r = memoir(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
    # No terminal to ask and no --yes: nothing happens.
    r = memoir("forget", SID_A, stdin="y\n")
    assert r.returncode == 2 and "--yes" in r.stderr
    with Store.open(memoir_home) as store:
        assert store.get_session(SID_A) is not None
    r = memoir("forget", "no-such-session", "--yes")
    assert r.returncode == 0 and "nothing to forget" in r.stdout


def test_export_import_round_trip_is_idempotent(memoir_home: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    record_session(memoir_home, SID_A, "/work/alpha", [
        ("first <prompt>", [observation("one"), observation("two", type="bugfix")],
         Summary(request="r1", learned="l1", next_steps="n1")),
        ("second", [observation("three", files_modified=["a.py"])], None)])
    record_session(memoir_home, SID_B, "/work/beta", [("b", [observation("four")],
                                                       Summary(request="rb"))])
    with Store.open(memoir_home) as store:
        obs = store.observations_for_session(store.get_session(SID_A).id)  # type: ignore[union-attr]
        store.edit_observation(obs[0].id, title="one, corrected", facts=["a real fact"])
    out = tmp_path / "all.jsonl"
    r = memoir("export", "--all", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert exported[0]["kind"] == "memoir-export"
    assert [x["kind"] for x in exported].count("observation") == 4

    # A fresh machine: import everything, compare with the original export.
    monkeypatch.setenv("MEMOIR_HOME", str(tmp_path / "other-home"))
    r = memoir("import", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["added"] == {"sessions": 2, "prompts": 3, "observations": 4,
                                             "summaries": 2}
    again = tmp_path / "again.jsonl"
    assert memoir("export", "--all", "-o", str(again)).returncode == 0
    assert again.read_text() == out.read_text()
    # Importing twice adds nothing.
    r = memoir("import", str(out), "--json")
    assert json.loads(r.stdout)["added"] == {"sessions": 0, "prompts": 0, "observations": 0,
                                             "summaries": 0}
    assert memoir("export", "--all", "-o", str(again)).returncode == 0
    assert again.read_text() == out.read_text()
    # The user's correction travelled with its mark (and its protection).
    with Store.open(tmp_path / "other-home") as store:
        moved = store.observations_for_session(store.get_session(SID_A).id)  # type: ignore[union-attr]
        assert moved[0].title == "one, corrected" and moved[0].edited_at is not None
    # Importing into the store that exported it adds nothing either.
    monkeypatch.setenv("MEMOIR_HOME", str(memoir_home))
    r = memoir("import", str(out), "--json")
    assert sum(json.loads(r.stdout)["added"].values()) == 0


def test_export_of_one_project_and_as_markdown(memoir_home: Path, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    key = os.path.realpath(project)
    record_session(memoir_home, SID_A, key, [("# not a heading", [observation("alpha obs")],
                                               Summary(request="alpha request"))])
    record_session(memoir_home, SID_B, "/other", [("b", [observation("beta obs")], None)])
    r = memoir("export", "--cwd", str(project))
    assert r.returncode == 0, r.stderr
    kinds = [json.loads(line) for line in r.stdout.splitlines()]
    assert {x.get("session") for x in kinds[1:]} == {SID_A}
    r = memoir("export", "--cwd", str(project), "--format", "markdown")
    assert r.returncode == 0
    assert f"## Project {key}" in r.stdout and "**[discovery] alpha obs**" in r.stdout
    assert "beta obs" not in r.stdout
    # Stored text cannot open a heading of its own in the notes.
    assert "\n# not a heading" not in r.stdout


def test_import_rejects_bad_files_and_changes_nothing(memoir_home: Path, tmp_path: Path) -> None:
    record_session(memoir_home, SID_A, "/p", [("a", [observation("x")], None)])
    good = tmp_path / "good.jsonl"
    assert memoir("export", "--all", "-o", str(good)).returncode == 0
    lines = good.read_text().splitlines()
    cases = {
        "notes.md": "# claude-memoir export\n",
        "truncated.jsonl": "\n".join(lines)[:-20],
        "badid.jsonl": "\n".join([lines[0], lines[1].replace(SID_A, "../../x")]),
        "kind.jsonl": "\n".join([lines[0], '{"kind": "virus"}']),
        "version.jsonl": '{"kind": "memoir-export", "version": 99}\n',
        "orphan.jsonl": "\n".join([lines[0], *lines[2:]]).replace(SID_A, SID_C),
    }
    monkeypatch_home = tmp_path / "fresh"
    env_home = {"MEMOIR_HOME": str(monkeypatch_home)}
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        r = subprocess.run([*memoir_command(), "import", str(path)], capture_output=True,
                           text=True, timeout=60, env={**os.environ, **env_home})
        assert r.returncode == 2, (name, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and r.stderr.startswith("memoir: "), name
    with Store.open(monkeypatch_home) as store:
        assert store.session_stats() == []
    r = memoir("import", str(tmp_path / "missing.jsonl"))
    assert r.returncode == 2


def test_edit_marks_the_observation_and_nothing_else_may_overwrite_it(
        memoir_home: Path) -> None:
    row = record_session(memoir_home, SID_A, "/p", [("a", [observation("agent title")], None)])
    with Store.open(memoir_home) as store:
        oid = store.observations_for_session(row.id)[0].id
    r = memoir("edit", str(oid), "--title", "my title", "--fact", "fact 1", "--fact", "fact 2",
               "--narrative", "what really happened")
    assert r.returncode == 0, r.stderr
    with Store.open(memoir_home) as store:
        edited = store.get_observation(oid)
        assert edited is not None and edited.edited_at is not None
        assert (edited.title, edited.facts, edited.narrative) == (
            "my title", ["fact 1", "fact 2"], "what really happened")
        # Any update that is not a user edit (the agent's, a reprocess) is refused.
        with pytest.raises(StoreError), store.transaction() as conn:
            conn.execute("UPDATE observations SET title = 'agent rewrite' WHERE id = ?", (oid,))
        assert store.get_observation(oid).title == "my title"  # type: ignore[union-attr]
        # The user may edit again.
        assert store.edit_observation(oid, title="my title 2") is not None
    with pytest.raises(sqlite3.IntegrityError), db(memoir_home) as conn:
        conn.execute("UPDATE observations SET narrative = 'x' WHERE id = ?", (oid,))
    # Search's bookkeeping (the backfill of older rows) may still write its column.
    with db(memoir_home) as conn:
        conn.execute("UPDATE observations SET terms = terms WHERE id = ?", (oid,))
    # Search follows the user's words, and no longer finds the agent's.
    with Store.open(memoir_home) as store:
        assert [r.id for r in search(store, "really happened", project=None)] == [oid]
        assert search(store, "story", project=None) == []  # the old narrative
    for args in (["edit", str(oid)], ["edit", str(oid), "--title", "  "],
                 ["edit", str(oid), "--title", "x" * 600]):
        assert memoir(*args).returncode == 2, args
    assert memoir("edit", "999999", "--title", "t").returncode == 1


def test_delete_observation_and_summary(memoir_home: Path) -> None:
    row = record_session(memoir_home, SID_A, "/p", [("a", [observation("wombat")],
                                                     Summary(request="wombat summary"))])
    with Store.open(memoir_home) as store:
        oid = store.observations_for_session(row.id)[0].id
        mid = store.summaries_for_session(row.id)[0].id
    assert memoir("delete", "observation", str(oid)).returncode == 0
    assert memoir("delete", "summary", str(mid)).returncode == 0
    assert fts_hits(memoir_home, "wombat") == 0
    assert memoir("delete", "observation", str(oid)).returncode == 1
