"""``memoir cleanup-sessions``: real SQLite, real workers, real signals, the real CLI.

Every process signalled here is one the test started; the conftest teardown
SIGKILLs whatever is left for this MEMOIR_HOME.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import psutil
import pytest

from claude_memoir import ipc, procs
from claude_memoir.cli.sweep import parse_duration
from claude_memoir.errors import InvalidInput, IPCError
from claude_memoir.paths import agent_dir, lock_path, pid_path, run_dir, socket_path
from claude_memoir.procs import PidRecord
from claude_memoir.store import Store
from conftest import Spawned, db, memoir_command, start_sleeper, start_worker, wait_for

STALE = "c1ea0000-0000-4000-8000-0000000000a1"  # active, untouched for days, no worker
RECENT = "c1ea0000-0000-4000-8000-0000000000b2"  # active, recent
DONE = "c1ea0000-0000-4000-8000-0000000000c3"  # completed long ago
HUNG = "c1ea0000-0000-4000-8000-0000000000d4"  # a real worker, SIGSTOPped
LIVE = "c1ea0000-0000-4000-8000-0000000000e5"  # a real, responsive worker
INTRUDER = "c1ea0000-0000-4000-8000-0000000000f6"  # pid file naming a non-worker

REPORT_KEYS = {"dry_run", "max_age_seconds", "sessions_failed", "workers_ended",
               "agents_ended", "sockets_removed", "pid_files_removed", "live_workers",
               "event_bodies_pruned", "rejected_removed", "lock_files_removed",
               "agent_transcripts_removed", "search_index_merge_steps"}
NOTHING = {"sessions_failed": [], "workers_ended": [], "agents_ended": [],
           "sockets_removed": [], "pid_files_removed": [], "lock_files_removed": [],
           "rejected_removed": []}


# -- helpers ---------------------------------------------------------------------


def cleanup_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*memoir_command(), "cleanup-sessions", *args], env=dict(os.environ),
                          capture_output=True, text=True, timeout=60)


def cleanup_json(*args: str) -> dict[str, Any]:
    done = cleanup_cli(*args, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    report = json.loads(done.stdout)
    assert set(report) == REPORT_KEYS
    return dict(report)


def add_session(home: Path, sid: str, *, age: str | None = None,
                status: str | None = None) -> None:
    """A session row; ``age`` like '-3 days' backdates its updated_at."""
    with Store.open(home) as store:
        row = store.upsert_session(sid, "/proj", "/proj")
        if status is not None:
            store.set_status(row.id, status, "session-end")  # type: ignore[arg-type]
    if age is not None:
        backdate(home, sid, age)


def backdate(home: Path, sid: str, age: str) -> None:
    conn = db(home)
    with conn:
        conn.execute("UPDATE sessions SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?)"
                     " WHERE claude_session_id = ?", (age, sid))
    conn.close()


def row(home: Path, sid: str) -> Any:
    conn = db(home)
    try:
        return conn.execute("SELECT * FROM sessions WHERE claude_session_id = ?",
                            (sid,)).fetchone()
    finally:
        conn.close()


def all_rows(home: Path) -> dict[str, tuple[Any, ...]]:
    conn = db(home)
    try:
        return {r["claude_session_id"]: tuple(r) for r in conn.execute("SELECT * FROM sessions")}
    finally:
        conn.close()


def stale_socket(path: Path) -> Path:
    """A socket file nobody listens on (bound, then closed), as a killed worker leaves."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    old = os.getcwd()
    os.chdir(path.parent)  # a relative bind keeps any tmp path under sun_path's limit
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path.name)
        s.close()
    finally:
        os.chdir(old)
    assert path.exists()
    return path


def alive(pid: int) -> bool:
    return procs.is_alive(pid, None)


def answers(home: Path, sid: str) -> bool:
    try:
        ack = ipc.request(Path(socket_path(home, sid)), {"type": "ping"}, timeout=2)
        return bool(ack.get("ok"))
    except IPCError:
        return False


def files(home: Path, *extra_dirs: Path) -> set[str]:
    found: set[str] = set()
    for directory in (home, *extra_dirs):
        if directory.exists():
            found |= {str(p) for p in directory.rglob("*")
                      if "logs" not in p.relative_to(directory).parts}
    return found


# -- parse_duration --------------------------------------------------------------


@pytest.mark.parametrize("text, seconds", [
    ("90m", 5400), ("24h", 86400), ("7d", 604800), ("2w", 1209600), ("30s", 30),
    ("1.5h", 5400), ("1s", 1), ("0.5m", 30), ("36H", 129600), (" 24h ", 86400),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", [
    "", " ", "3x", "24", "h", "-5h", "0h", "0.0m", "1h30m", "1e3h", "24 h", "h24", "1.h",
    ".5h", "5hh", "nan", "inf", "infh", "24h\n3d",
])
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_duration(text)
    assert "duration" in str(info.value)


def test_parse_duration_rejects_non_strings() -> None:
    for value in (None, 24, 3600.0, b"24h"):
        with pytest.raises(InvalidInput):
            parse_duration(value)  # type: ignore[arg-type]


def _garbage_setup(home: Path) -> tuple[Path, Path]:
    add_session(home, STALE, age="-3 days")
    sock = stale_socket(Path(run_dir(home)) / "stale.sock")
    bad_pid = Path(run_dir(home)) / "junk.pid"
    bad_pid.write_text("not json")
    return sock, bad_pid


@pytest.mark.parametrize("text", ["", "3x", "24", "h", "-5h", "0h", "1h30m", " ", "1e3h"])
def test_cli_rejects_bad_max_age_and_changes_nothing(memoir_home: Path, text: str) -> None:
    sock, bad_pid = _garbage_setup(memoir_home)
    before = all_rows(memoir_home)
    done = cleanup_cli(f"--max-age={text}", "--json")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert "invalid duration" in done.stderr and repr(text) in done.stderr
    assert "Traceback" not in done.stderr
    assert all_rows(memoir_home) == before
    assert row(memoir_home, STALE)["status"] == "active"
    assert sock.exists() and bad_pid.exists()


def test_cli_rejects_a_missing_max_age_value(memoir_home: Path) -> None:
    sock, bad_pid = _garbage_setup(memoir_home)
    done = cleanup_cli("--max-age")
    assert done.returncode == 2
    assert "--max-age" in done.stderr
    assert row(memoir_home, STALE)["status"] == "active"
    assert sock.exists() and bad_pid.exists()


@pytest.mark.parametrize("text", ["9999999999999999999999w", "1" * 400 + "h"],
                         ids=["huge", "infinite"])
def test_cli_absurdly_long_max_age_fails_nothing_and_does_not_crash(
        memoir_home: Path, text: str) -> None:
    """A well-formed but enormous duration: nothing is that old. No traceback,
    and no half-done sweep: either a clean refusal (exit 2, nothing touched) or
    a normal report that fails no session."""
    sock, bad_pid = _garbage_setup(memoir_home)
    done = cleanup_cli(f"--max-age={text}", "--json")
    assert "Traceback" not in done.stderr, done.stderr[-600:]
    assert done.returncode in (0, 2), done.stdout + done.stderr
    assert row(memoir_home, STALE)["status"] == "active"
    if done.returncode == 2:
        assert "memoir:" in done.stderr
        assert sock.exists() and bad_pid.exists()
    else:
        report = json.loads(done.stdout)
        assert report["sessions_failed"] == []


# -- the whole sweep ---------------------------------------------------------------


def test_cleanup_dry_run_then_real_run_then_nothing_left(
        memoir_home: Path, spawned: Spawned, tmp_path: Path) -> None:
    home = memoir_home
    run = Path(run_dir(home))
    # (a) (b) (c): sessions without workers.
    add_session(home, STALE, age="-3 days")
    add_session(home, RECENT)
    add_session(home, DONE, status="completed", age="-3 days")
    # (f) a real worker, hung; (g) a real responsive worker. Both sessions look old.
    add_session(home, HUNG)
    add_session(home, LIVE)
    hung, _ = start_worker(spawned, home, HUNG)
    live, _ = start_worker(spawned, home, LIVE)
    backdate(home, HUNG, "-3 days")
    backdate(home, LIVE, "-3 days")
    os.kill(hung.pid, signal.SIGSTOP)
    wait_for(lambda: psutil.Process(hung.pid).status() == psutil.STATUS_STOPPED, timeout=5,
             message="the worker to stop")
    assert not answers(home, HUNG) and answers(home, LIVE)
    # (d) a stale socket; a garbage pid file.
    stale_sock = stale_socket(run / "0123abcd0123abcd.sock")
    junk_pid = run / "junk.pid"
    junk_pid.write_text('{"pid": 12')
    # (e) a pid file naming a live process that is not our worker (true create time).
    intruder = start_sleeper(spawned)
    procs.write_pid_file(Path(pid_path(home, INTRUDER)), PidRecord(
        intruder.pid, psutil.Process(intruder.pid).create_time(), INTRUDER))
    # (h) an orphaned agent of ours, and a look-alike running elsewhere.
    agents = Path(agent_dir(home))
    agents.mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    orphan = start_sleeper(spawned, cwd=agents, env={"MEMOIR_WORKER": "1"})
    lookalike = start_sleeper(spawned, cwd=elsewhere, env={"MEMOIR_WORKER": "1"})

    socket_dirs = {Path(socket_path(home, HUNG)).parent, Path(socket_path(home, LIVE)).parent}
    expected = {
        "sessions_failed": sorted([STALE, HUNG]),
        "workers_ended": [hung.pid],
        "agents_ended": [orphan.pid],
        "sockets_removed": sorted([str(stale_sock), str(Path(socket_path(home, HUNG)))]),
        "pid_files_removed": sorted([str(junk_pid), str(Path(pid_path(home, INTRUDER))),
                                     str(Path(pid_path(home, HUNG)))]),
        "live_workers": [live.pid],
        "rejected_removed": [],
        "agent_transcripts_removed": [],
        # Both workers hold their locks during the dry run: nothing to remove.
        "lock_files_removed": [],
    }

    def normalized(report: dict[str, Any]) -> dict[str, Any]:
        return {k: sorted(v) for k, v in report.items() if isinstance(v, list)}

    rows_before = all_rows(home)
    files_before = files(home, *socket_dirs)

    # -- dry run: the same report, nothing changed.
    report = cleanup_json("--max-age", "24h", "--dry-run")
    assert report["dry_run"] is True
    assert report["max_age_seconds"] == 86400
    assert normalized(report) == expected
    assert all_rows(home) == rows_before
    assert files(home, *socket_dirs) == files_before
    assert psutil.Process(hung.pid).status() == psutil.STATUS_STOPPED
    for p in (hung, live, intruder, orphan, lookalike):
        assert alive(p.pid), f"dry run ended pid {p.pid}"
    assert answers(home, LIVE)

    # -- the real run.
    report = cleanup_json("--max-age", "24h")
    assert report["dry_run"] is False
    assert report["max_age_seconds"] == 86400
    # The hung worker was ended first, so nobody holds its lock file any more.
    expected["lock_files_removed"] = [str(Path(lock_path(home, HUNG)))]
    assert normalized(report) == expected

    for sid in (STALE, HUNG):
        r = row(home, sid)
        assert (r["status"], r["end_reason"]) == ("failed", "stale"), sid
        assert r["worker_pid"] is None
    assert row(home, RECENT)["status"] == "active"
    assert tuple(row(home, DONE)) == rows_before[DONE]  # completed: untouched
    live_row = row(home, LIVE)
    assert live_row["status"] == "active" and live_row["worker_pid"] == live.pid

    assert not alive(hung.pid)
    assert not alive(orphan.pid)
    for p in (live, intruder, lookalike):
        assert alive(p.pid), f"pid {p.pid} was ended"
    assert answers(home, LIVE)

    for gone in (stale_sock, junk_pid, Path(pid_path(home, INTRUDER)), Path(pid_path(home, HUNG)),
                 Path(socket_path(home, HUNG)), Path(lock_path(home, HUNG))):
        assert not gone.exists(), gone
    # The live worker's lock is held: never removed.
    for kept in (Path(pid_path(home, LIVE)), Path(socket_path(home, LIVE)),
                 Path(lock_path(home, LIVE))):
        assert kept.exists(), kept

    # -- again: nothing more to do (the dead were reaped, as init would).
    hung.wait(timeout=5)
    orphan.wait(timeout=5)
    rows_after = all_rows(home)
    files_after = files(home, *socket_dirs)
    report = cleanup_json("--max-age", "24h")
    assert {k: report[k] for k in NOTHING} == NOTHING
    assert report["live_workers"] == [live.pid]
    assert all_rows(home) == rows_after
    assert files(home, *socket_dirs) == files_after
    for p in (live, intruder, lookalike):
        assert alive(p.pid)


def test_cleanup_max_age_boundary(memoir_home: Path) -> None:
    add_session(memoir_home, STALE, age="-2 hours")
    add_session(memoir_home, RECENT, age="-1 hours")
    for text in ("90m", "1.5h"):
        report = cleanup_json("--max-age", text, "--dry-run")
        assert report["max_age_seconds"] == 5400
        assert report["sessions_failed"] == [STALE]
    report = cleanup_json("--max-age", "30m")
    assert sorted(report["sessions_failed"]) == sorted([STALE, RECENT])
    # The default is 24 hours: nothing left that old and active.
    report = cleanup_json()
    assert report["max_age_seconds"] == 86400
    assert report["sessions_failed"] == []


def test_cleanup_on_an_empty_home(memoir_home: Path) -> None:
    report = cleanup_json()
    assert {k: report[k] for k in NOTHING} == NOTHING
    assert report["live_workers"] == []


def test_cleanup_survives_a_pid_file_with_an_impossible_pid(memoir_home: Path) -> None:
    add_session(memoir_home, STALE, age="-3 days")
    Path(run_dir(memoir_home)).mkdir(parents=True, exist_ok=True)
    bad = Path(pid_path(memoir_home, INTRUDER))
    bad.write_text(json.dumps({"pid": -1, "create_time": 0.0, "session_id": INTRUDER,
                               "agent_pids": []}))
    report = cleanup_json("--max-age", "24h")
    assert report["pid_files_removed"] == [str(bad)]
    assert report["sessions_failed"] == [STALE]
    assert not bad.exists()


def test_cleanup_removes_stale_sockets_in_the_fallback_dir(
        memoir_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A MEMOIR_HOME so long that sockets live in a private temp dir instead.
    home = tmp_path / ("h" * 90)
    monkeypatch.setenv("MEMOIR_HOME", str(home))
    add_session(home, STALE)
    sock = Path(socket_path(home, STALE))
    assert Path(run_dir(home)) not in sock.parents
    try:
        stale_socket(sock)
        report = cleanup_json("--dry-run")
        assert report["sockets_removed"] == [str(sock)] and sock.exists()
        report = cleanup_json()
        assert report["sockets_removed"] == [str(sock)]
        assert not sock.exists()
        assert row(home, STALE)["status"] == "active"  # recent: only the file was stale
    finally:
        shutil.rmtree(sock.parent, ignore_errors=True)


# -- human output ----------------------------------------------------------------


def test_human_output_mentions_the_counts(memoir_home: Path, spawned: Spawned) -> None:
    add_session(memoir_home, STALE, age="-3 days")
    add_session(memoir_home, RECENT)
    add_session(memoir_home, LIVE)
    live, _ = start_worker(spawned, memoir_home, LIVE)
    sock = stale_socket(Path(run_dir(memoir_home)) / "stale.sock")
    junk = Path(run_dir(memoir_home)) / "junk.pid"
    junk.write_text("garbage")

    done = cleanup_cli("--max-age", "24h", "--dry-run")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("cleanup (would, max age 24h):")
    assert f"sessions marked failed: 1 ({STALE})" in out
    assert "unresponsive workers ended: 0" in out
    assert "orphaned agent processes ended: 0" in out
    assert f"stale sockets removed: 1 ({sock})" in out
    assert f"stale pid files removed: 1 ({junk})" in out
    assert f"live workers left alone: 1 ({live.pid})" in out
    assert row(memoir_home, STALE)["status"] == "active" and sock.exists() and junk.exists()

    done = cleanup_cli("--max-age", "24h")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("cleanup (did, max age 24h):")
    assert "sessions marked failed: 1" in done.stdout
    assert row(memoir_home, STALE)["status"] == "failed"
    assert not sock.exists() and not junk.exists()

    done = cleanup_cli("--max-age", "24h")
    assert done.returncode == 0, done.stderr
    for label in ("sessions marked failed", "unresponsive workers ended",
                  "orphaned agent processes ended", "stale sockets removed",
                  "stale pid files removed"):
        assert f"{label}: 0" in done.stdout
    assert f"live workers left alone: 1 ({live.pid})" in done.stdout
    assert alive(live.pid)
