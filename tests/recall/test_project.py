"""project_key: one memory per git repository, across subdirectories and linked worktrees."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from claude_memoir.recall.project import project_key
from conftest import HookRunner, db, payload


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=30,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A real repository with a commit and a linked worktree at ../repo-feature."""
    root = tmp_path / "repo"
    (root / "src" / "app").mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=root)
    (root / "src" / "app" / "ledger.py").write_text("x = 1\n")
    git("add", ".", cwd=root)
    git("commit", "-q", "-m", "init", cwd=root)
    git("worktree", "add", "-q", "-b", "feature", str(tmp_path / "repo-feature"), cwd=root)
    return root


def test_subdirectories_and_linked_worktrees_share_the_repository_key(repo: Path) -> None:
    feature = repo.parent / "repo-feature"
    key = project_key(repo)
    assert key == str(repo.resolve())
    for path in (repo / "src", repo / "src" / "app", repo / ".git", feature,
                 feature / "src" / "app"):
        assert project_key(path) == key, path


def test_key_is_idempotent_and_accepts_strings(repo: Path) -> None:
    key = project_key(str(repo / "src"))
    assert project_key(key) == key


def test_outside_git_the_resolved_directory(tmp_path: Path) -> None:
    plain = tmp_path / "plain" / "dir"
    plain.mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(plain)
    assert project_key(plain) == str(plain.resolve())
    assert project_key(link) == str(plain.resolve())
    assert project_key(tmp_path / "does" / "not" / "exist") == str(tmp_path / "does/not/exist")


def test_symlinked_checkout_and_separate_repositories(repo: Path, tmp_path: Path) -> None:
    link = tmp_path / "repo-link"
    link.symlink_to(repo)
    assert project_key(link / "src") == project_key(repo)
    other = tmp_path / "other"
    other.mkdir()
    git("init", "-q", cwd=other)
    assert project_key(other) == str(other.resolve()) != project_key(repo)


def test_bare_repository_and_submodule_git_dirs(tmp_path: Path) -> None:
    bare = tmp_path / "central.git"
    git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    assert project_key(bare) == str(bare.resolve())
    # A submodule's work tree points at its own git dir under the parent's .git.
    sub_git = tmp_path / "parent" / ".git" / "modules" / "lib"
    (sub_git / "objects").mkdir(parents=True)
    (sub_git / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / "parent" / ".git" / "objects").mkdir()
    (tmp_path / "parent" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    sub = tmp_path / "parent" / "lib"
    sub.mkdir()
    (sub / ".git").write_text("gitdir: ../.git/modules/lib\n")
    (sub / "deep").mkdir()
    key = project_key(sub / "deep")
    assert key == str(sub_git.resolve())
    assert project_key(key) == key  # idempotent for a submodule's key too
    assert project_key(tmp_path / "parent") == str((tmp_path / "parent").resolve())


@pytest.mark.parametrize("content", [b"", b"gitdir:", b"gitdir: /nowhere/at/all\n",
                                     b"\xff\xfe garbage", b"not a pointer\n", b"x" * 100_000])
def test_broken_git_files_fall_back_to_the_directory(tmp_path: Path, content: bytes) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / ".git").write_bytes(content)
    assert project_key(proj) == str(proj.resolve())


def test_never_runs_git(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("project_key started a process")

    monkeypatch.setattr(subprocess.Popen, "__init__", forbidden)
    monkeypatch.setattr(os, "posix_spawn", forbidden)
    monkeypatch.setattr(os, "fork", forbidden)
    assert project_key(repo.parent / "repo-feature" / "src") == str(repo.resolve())


def test_hook_files_a_worktree_subdirectory_session_under_the_repository(
        repo: Path, run_hook: HookRunner, memoir_home: Path) -> None:
    sub = repo.parent / "repo-feature" / "src" / "app"
    data = {**payload("user_prompt_submit"), "cwd": str(sub)}
    done = run_hook("user-prompt-submit", data, env={"CLAUDE_PROJECT_DIR": str(sub),
                                                     "MEMOIR_IDLE_TIMEOUT": "1"})
    assert done.returncode == 0 and json.loads(done.stdout or b"{}") is not None
    with db(memoir_home) as conn:
        rows = conn.execute("SELECT project, cwd FROM sessions").fetchall()
    assert [(r["project"], r["cwd"]) for r in rows] == [(str(repo.resolve()), str(sub))]
