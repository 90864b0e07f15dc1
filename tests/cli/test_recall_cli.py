"""`memoir search`: what a user types and sees, as a real subprocess."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from claude_memoir.agent.models import Observation, Summary
from claude_memoir.recall.project import project_key
from claude_memoir.store import Store
from conftest import memoir_command


@pytest.fixture
def repo(tmp_path: Path, memoir_home: Path) -> Path:
    """A repository with one ledger fix recorded, and another project's decoy."""
    root = tmp_path / "app"
    (root / "src" / "app").mkdir(parents=True)
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    with Store.open(memoir_home) as store:
        for sid, proj, title in (("sess-app", root / "src", "Fix cents lost in ReconcileLedger"),
                                 ("sess-other", tmp_path / "other", "ReconcileLedger elsewhere")):
            s = store.upsert_session(sid, project_key(proj), str(proj))
            n = store.add_prompt(s.id, "fix the ledger")
            e = store.add_event(s.id, n, "Edit", {}, sid)
            store.record_observations(s.id, [e], [Observation(
                type="bugfix", title=title, subtitle="round once", facts=["cents matter"],
                narrative="n", concepts=[], files_read=[],
                files_modified=[str(proj / "ledger.py")])], n)
            store.save_summary(s.id, n, Summary(request="fix the ledger",
                                                next_steps="add a property test"))
    return root


def memoir(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*memoir_command(), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def test_search_from_a_subdirectory_prints_ranked_hits(repo: Path) -> None:
    done = memoir("search", "reconcile", "ledger", cwd=repo / "src" / "app")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("obs 1 ")
    assert "[bugfix] Fix cents lost in ReconcileLedger" in lines[0]
    assert lines[1].strip().startswith("session sess-app  score ")
    assert "elsewhere" not in done.stdout


def test_search_json_and_all_projects(repo: Path) -> None:
    done = memoir("search", "ReconcileLedger", "--json", "--all", cwd=repo)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert {r["title"] for r in rows if r["kind"] == "observation"} == {
        "Fix cents lost in ReconcileLedger", "ReconcileLedger elsewhere"}
    for row in rows:
        assert {"id", "kind", "type", "title", "snippet", "session", "project", "created_at",
                "score"} <= set(row)
    done = memoir("search", "property", "--type", "summary,bugfix", "--json",
                  "--cwd", str(repo), cwd=repo.parent)
    assert [(r["kind"], r["session"]) for r in json.loads(done.stdout)] == [
        ("summary", "sess-app")]


def test_search_file_filter(repo: Path) -> None:
    done = memoir("search", "--file", "src/ledger.py", "--json", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert [r["title"] for r in json.loads(done.stdout)] == ["Fix cents lost in ReconcileLedger"]


def test_no_results_says_so(repo: Path) -> None:
    done = memoir("search", "zeppelin", cwd=repo)
    assert done.returncode == 0
    assert done.stdout == ""
    assert f"no results in {repo.resolve()} (try --all)" in done.stderr


@pytest.mark.parametrize(("args", "message"), [
    ((), "empty query"),
    (("!!!",), "nothing to search for"),
    (("ledger", "--since", "yesterday-ish"), "cannot read --since"),
    (("ledger", "--limit", "0"), "bad limit"),
    (("ledger", "--type", "Robert'); DROP"), "bad type"),
    (("ledger", "--all", "--cwd", "/tmp"), "not allowed with argument"),
])
def test_bad_input_is_a_clear_error_with_exit_2(repo: Path, args: tuple[str, ...],
                                                message: str) -> None:
    done = memoir("search", *args, cwd=repo)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("query", ['"unbalanced', "NEAR(a b", "x" * 10_000, "ledger AND OR"])
def test_fts_syntax_and_huge_queries_never_trace_back(repo: Path, query: str) -> None:
    done = memoir("search", query, "--json", cwd=repo)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert ("ledger" in query) == bool(rows)


@pytest.mark.parametrize("argv", [("--type", "bugfx", "ledger"), ("--type", "bogus")])
def test_an_unknown_type_is_an_error_not_an_empty_result(repo: Path,
                                                         argv: tuple[str, ...]) -> None:
    done = memoir("search", *argv, cwd=repo)
    assert done.returncode == 2 and done.stdout == ""
    assert "bugfix" in done.stderr and "summary" in done.stderr  # says what is accepted
    assert "Traceback" not in done.stderr
