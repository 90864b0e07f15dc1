"""Tests for claude_memoir.paths: session-id validation, socket/pid/lock names, private dirs."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

import pytest

from claude_memoir.errors import InvalidInput, MemoirError
from claude_memoir.paths import (
    agent_dir,
    db_path,
    ensure_private_dir,
    lock_path,
    log_dir,
    pid_path,
    run_dir,
    socket_path,
    validate_session_id,
)
from conftest import payload

REAL_IDS = [
    payload("session_start_startup")["session_id"],
    payload("session_start_resume")["session_id"],
    payload("user_prompt_submit")["session_id"],
]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --------------------------------------------------------------------------- #
# validate_session_id
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("value", REAL_IDS + [str(uuid.uuid4()), "abc", "A_b-9", "x" * 128])
def test_validate_session_id_accepts(value: str) -> None:
    assert validate_session_id(value) == value


@pytest.mark.parametrize("value", [
    "",
    "../x",
    "..",
    "a/b",
    "/abs",
    ".hidden",
    "-flag",
    "_under",
    "x" * 129,
    "x" * 200,
    None,
    123,
    b"abc",
    ["abc"],
    "a\x00b",
    "a b",
    "a\\b",
    "a:b",
    "héllo",
    "\u0430bc",  # Cyrillic a
    "abc\u0663",  # Arabic-Indic digit
    "ａｂｃ",  # full-width letters
])
def test_validate_session_id_rejects(value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_session_id(value)
    assert isinstance(info.value, MemoirError)
    assert info.value.reason == "bad-session-id"


@pytest.mark.parametrize("value", ["abc\n", REAL_IDS[0] + "\n"])
def test_validate_session_id_rejects_trailing_newline(value: str) -> None:
    """``$`` matches before a final newline; a newline must not reach a log line or path."""
    with pytest.raises(InvalidInput):
        validate_session_id(value)


def test_validate_session_id_error_message_is_bounded() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_session_id("y" * 10_000)
    assert len(str(info.value)) < 200


# --------------------------------------------------------------------------- #
# Layout and per-session names
# --------------------------------------------------------------------------- #


def test_layout_under_home(memoir_home: Path) -> None:
    assert Path(db_path(memoir_home)) == memoir_home / "memoir.db"
    assert Path(log_dir(memoir_home)) == memoir_home / "logs"
    assert Path(run_dir(memoir_home)) == memoir_home / "run"
    assert Path(agent_dir(memoir_home)) == memoir_home / "agent"


@pytest.mark.parametrize("sid", REAL_IDS)
def test_run_file_names_hide_session_id(memoir_home: Path, sid: str) -> None:
    paths = [Path(socket_path(memoir_home, sid)), Path(pid_path(memoir_home, sid)),
             Path(lock_path(memoir_home, sid))]
    for p in paths:
        assert sid not in str(p)
        assert sid[:8] not in p.name
        assert p.parent == Path(run_dir(memoir_home))
    assert [p.suffix for p in paths] == [".sock", ".pid", ".lock"]
    assert len({p.stem for p in paths}) == 1  # the same short name for one session
    assert len({str(p) for p in paths}) == 3


def test_names_stable_and_distinct(memoir_home: Path) -> None:
    a, b = REAL_IDS[0], REAL_IDS[1]
    assert Path(socket_path(memoir_home, a)) == Path(socket_path(memoir_home, a))
    assert Path(pid_path(memoir_home, a)) == Path(pid_path(memoir_home, a))
    assert Path(socket_path(memoir_home, a)) != Path(socket_path(memoir_home, b))
    assert Path(pid_path(memoir_home, a)) != Path(pid_path(memoir_home, b))
    assert Path(lock_path(memoir_home, a)) != Path(lock_path(memoir_home, b))
    # Many ids, no collisions.
    ids = [str(uuid.uuid4()) for _ in range(500)]
    assert len({Path(socket_path(memoir_home, i)) for i in ids}) == 500


def test_short_home_socket_lives_in_run_dir(memoir_home: Path) -> None:
    path = Path(socket_path(memoir_home, REAL_IDS[0]))
    assert path.parent == Path(run_dir(memoir_home))
    assert len(os.fsencode(str(path))) <= 100


def _deep_home(tmp_path: Path, length: int = 300) -> Path:
    home = tmp_path
    while len(str(home)) < length:
        home = home / ("d" * 40)
    return home


def test_socket_path_bounded_for_deep_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TMPDIR", raising=False)
    home = _deep_home(tmp_path)
    assert len(str(home)) >= 300
    monkeypatch.setenv("MEMOIR_HOME", str(home))
    sid = REAL_IDS[0]
    path = Path(socket_path(home, sid))
    assert len(os.fsencode(str(path))) <= 100
    assert home not in path.parents  # outside the (too deep) home
    assert sid not in str(path)
    assert str(os.getuid()) in path.parent.name  # a per-user directory
    assert path.parent != Path("/tmp")  # never directly in the shared temp dir
    # Stable for one id, distinct for another.
    assert Path(socket_path(home, sid)) == path
    other = Path(socket_path(home, REAL_IDS[1]))
    assert other != path
    assert other.parent == path.parent
    # Another deep home gets another directory (two installs never share sockets).
    home2 = _deep_home(tmp_path / "second")
    assert Path(socket_path(home2, sid)).parent != path.parent


def test_socket_path_fallback_honours_tmpdir(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    short_tmp = Path("/tmp") / f"mt{os.getpid()}"
    monkeypatch.setenv("TMPDIR", str(short_tmp))
    path = Path(socket_path(_deep_home(tmp_path), REAL_IDS[0]))
    assert short_tmp in path.parents
    assert len(os.fsencode(str(path))) <= 100


def test_socket_path_bounded_when_tmpdir_is_also_deep(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(_deep_home(tmp_path / "tmpdir", 200)))
    home = _deep_home(tmp_path)
    path = Path(socket_path(home, REAL_IDS[0]))
    assert len(os.fsencode(str(path))) <= 100
    assert home not in path.parents


def test_socket_dir_can_be_made_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback directory the worker creates with ensure_private_dir is 0700."""
    base = Path("/tmp") / f"memoir-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("TMPDIR", str(base))
    path = Path(socket_path(_deep_home(tmp_path), REAL_IDS[0]))
    old = os.umask(0o000)
    try:
        made = ensure_private_dir(path.parent)
        assert made == str(path.parent)
        assert mode(path.parent) == 0o700
        assert path.parent.stat().st_uid == os.getuid()
    finally:
        os.umask(old)
        if path.parent.exists():
            path.parent.rmdir()
        if base.exists():
            base.rmdir()


# --------------------------------------------------------------------------- #
# ensure_private_dir
# --------------------------------------------------------------------------- #


def test_ensure_private_dir_creates_0700_under_permissive_umask(tmp_path: Path) -> None:
    target = tmp_path / "fresh"
    old = os.umask(0o000)
    try:
        assert ensure_private_dir(target) == str(target)
    finally:
        os.umask(old)
    assert target.is_dir()
    assert mode(target) == 0o700


def test_ensure_private_dir_creates_missing_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    old = os.umask(0o022)
    try:
        ensure_private_dir(target)
    finally:
        os.umask(old)
    assert target.is_dir()
    assert mode(target) == 0o700


@pytest.mark.parametrize("start", [0o755, 0o777, 0o750, 0o500])
def test_ensure_private_dir_tightens_existing(tmp_path: Path, start: int) -> None:
    target = tmp_path / "existing"
    target.mkdir()
    (target / "keep.txt").write_text("data")
    target.chmod(start)
    ensure_private_dir(target)
    assert mode(target) == 0o700
    assert (target / "keep.txt").read_text() == "data"


def test_ensure_private_dir_is_idempotent(tmp_path: Path) -> None:
    target = tmp_path / "twice"
    ensure_private_dir(target)
    ensure_private_dir(target)
    assert mode(target) == 0o700


def test_ensure_private_dir_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(InvalidInput, match="not a plain directory"):
        ensure_private_dir(target)
    assert target.read_text() == "x"
