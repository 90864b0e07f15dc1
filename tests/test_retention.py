"""Retention: nothing under $MEMOIR_HOME grows without bound (issue 11, item 5)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from claude_memoir import ipc, retention, spool
from claude_memoir.agent.models import Observation
from claude_memoir.config import load_settings
from claude_memoir.paths import lock_path, socket_path
from claude_memoir.store import Store
from claude_memoir.worker.lock import AlreadyRunning, SessionLock, remove_lock_file
from conftest import Spawned, db, fragment_search_index, memoir_command, start_worker

SID = "5e55e55e-0000-4000-8000-000000000001"


def _events(store: Store, session: int, n: int, start: int = 0) -> list[int]:
    return [int(store.add_event(session, 1, "Bash", {"command": f"echo {i}"},
                                {"stdout": "x" * 1000}, tool_use_id=f"toolu_{i}") or 0)
            for i in range(start, start + n)]


def _age(home: Path, ids: list[int], days: int) -> None:
    conn = db(home)
    with conn:
        conn.execute(
            "UPDATE events SET processed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?)"
            f" WHERE id IN ({','.join('?' * len(ids))})", [f"-{days} days", *ids])
    conn.close()


# -- event bodies -------------------------------------------------------------------


def test_processed_event_bodies_are_emptied_after_keep_days(memoir_home: Path) -> None:
    with Store.open(memoir_home) as store:
        s = store.upsert_session(SID, "/p", "/p").id
        old, recent = _events(store, s, 2), _events(store, s, 1, 2)
        waiting = _events(store, s, 1, 3)
        store.record_observations(s, old, [Observation(type="change", title="kept")], 1)
        store.record_observations(s, recent, [Observation(type="change", title="also")], 1)
        _age(memoir_home, old, 31)
        conn = db(memoir_home)
        with conn:  # a waiting event as old as that is still work to do: never thinned
            conn.execute("UPDATE events SET created_at = '2000-01-01T00:00:00.000Z'"
                         " WHERE id = ?", waiting)
        assert store.prune_event_bodies(30) == 2
        assert store.prune_event_bodies(30) == 0  # idempotent
        rows = {r["id"]: r for r in db(memoir_home).execute("SELECT * FROM events")}
        titles = [o.title for o in store.observations_for_session(s)]
    for i in old:
        assert rows[i]["tool_input"] == "null" and rows[i]["tool_response"] == "null"
        assert rows[i]["pruned_at"] and rows[i]["tool_name"] == "Bash"
    for i in recent + waiting:
        assert json.loads(rows[i]["tool_input"])["command"].startswith("echo")
        assert rows[i]["pruned_at"] is None
    assert titles == ["kept", "also"]  # observations are memory: kept


def test_the_cap_thins_processed_events_before_dropping_waiting_work(
        memoir_home: Path) -> None:
    with Store.open(memoir_home) as store:
        s = store.upsert_session(SID, "/p", "/p").id
        first = _events(store, s, 3)
        store.record_observations(s, first[:2], [Observation(type="change", title="t")], 1)
        for i in range(3, 6):
            assert store.add_event(s, 1, "Bash", {"command": f"echo {i}"}, {"o": i},
                                   tool_use_id=f"toolu_{i}", max_events=3)
        rows = db(memoir_home).execute(
            "SELECT tool_use_id, status, pruned_at IS NOT NULL FROM events ORDER BY id"
        ).fetchall()
    # 6 events, at most 3 with bodies: the 2 processed ones were thinned first,
    # then the oldest waiting one made room. The 3 newest are whole.
    assert [tuple(r) for r in rows] == [
        ("toolu_0", "processed", 1), ("toolu_1", "processed", 1),
        ("toolu_3", "pending", 0), ("toolu_4", "pending", 0), ("toolu_5", "pending", 0)]


# -- files --------------------------------------------------------------------------


def _old(path: Path, days: float) -> Path:
    stamp = time.time() - days * 86400
    os.utime(path, (stamp, stamp))
    return path


def test_rejected_spool_files_and_damaged_databases_are_pruned_after_keep_days(
        memoir_home: Path) -> None:
    directory = Path(spool.spool_dir(memoir_home))
    directory.mkdir(parents=True)
    old_bad = directory / "00000000000000000001-1.bad"
    old_bad.write_text("{}")
    _old(old_bad, 40)
    new_bad = directory / "00000000000000000002-1.bad"
    new_bad.write_text("{}")
    aside = memoir_home / "memoir.db.corrupt-20200101T000000-1"
    aside.write_text("x")
    (memoir_home / "memoir.db.corrupt-20200101T000000-1-wal").write_text("x")
    _old(aside, 40)
    assert sorted(retention.prune_rejected(memoir_home, 30, dry_run=True)) == sorted(
        [str(old_bad), str(aside)])
    assert old_bad.exists()
    retention.prune_rejected(memoir_home, 30)
    assert not old_bad.exists() and not aside.exists()
    assert not (memoir_home / "memoir.db.corrupt-20200101T000000-1-wal").exists()
    assert new_bad.exists()
    assert retention.prune_rejected(memoir_home, 0) == []  # 0: keep forever


def test_half_written_spool_files_are_removed_after_an_hour(memoir_home: Path) -> None:
    directory = Path(spool.spool_dir(memoir_home))
    directory.mkdir(parents=True)
    abandoned = directory / ".00000000000000000001-1.tmp"
    abandoned.write_text("{")
    _old(abandoned, 1 / 12)  # two hours
    writing = directory / ".00000000000000000002-2.tmp"
    writing.write_text("{")
    assert retention.prune_spool_temp_files(memoir_home) == [str(abandoned)]
    assert not abandoned.exists() and writing.exists()


def test_unheld_lock_files_are_removed_and_held_ones_kept(memoir_home: Path) -> None:
    run = memoir_home / "run"
    run.mkdir(parents=True)
    stale, held = run / "aaaa.lock", run / "bbbb.lock"
    stale.write_text("")
    held.write_text("")
    fd = os.open(held, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a live worker
    try:
        assert retention.prune_lock_files(memoir_home) == [str(stale)]
        assert held.exists() and not stale.exists()
    finally:
        os.close(fd)


def test_a_lock_removed_while_a_worker_takes_it_still_admits_one_worker(
        memoir_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = memoir_home / "run" / "cccc.lock"
    path.parent.mkdir(parents=True)
    real_flock = fcntl.flock
    calls = []

    def racing_flock(fd: int, op: int) -> None:
        calls.append(op)
        if len(calls) == 1:  # retention removes the file between our open() and flock()
            assert remove_lock_file(path)
        real_flock(fd, op)

    first = SessionLock(path)
    monkeypatch.setattr("claude_memoir.worker.lock.fcntl.flock", racing_flock)
    first.acquire()
    monkeypatch.setattr("claude_memoir.worker.lock.fcntl.flock", real_flock)
    assert path.exists()  # it holds the file that is there, not the unlinked one
    second = SessionLock(path)
    with pytest.raises(AlreadyRunning):
        second.acquire()
    first.release(remove=True)
    assert not path.exists()
    second.acquire()
    second.release(remove=True)


# -- logs ---------------------------------------------------------------------------


def test_the_log_rotates_by_size_in_hooks_and_in_the_cli(memoir_home: Path) -> None:
    logs = memoir_home / "logs"
    logs.mkdir(parents=True)
    log = logs / "memoir.log"
    log.write_text("OLD\n" * 5000)  # 20 kB
    env = {**os.environ, "MEMOIR_LOG_MAX_BYTES": "10000"}
    # A hook with something to log (a bad payload), through the light writer.
    done = subprocess.run([sys.executable, "-m", "claude_memoir.hook", "post-tool-use"],
                          input=b"not json", capture_output=True, env=env, timeout=30)
    assert done.returncode == 0
    assert (logs / "memoir.log.1").read_text().startswith("OLD\n")
    assert "OLD" not in log.read_text() and "bad payload" in log.read_text()
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    # The CLI logs through `logging`: the same rule.
    log.write_text("NEWER\n" * 3000)
    done = subprocess.run([*memoir_command(), "show", "../x"], capture_output=True, text=True,
                          env=env, timeout=30)
    assert done.returncode == 2
    assert (logs / "memoir.log.1").read_text().startswith("NEWER\n")
    assert "show failed" in log.read_text() and "NEWER" not in log.read_text()
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in logs.iterdir()) == ["memoir.log", "memoir.log.1"]


def test_a_long_lived_process_follows_a_rotation_by_another(memoir_home: Path) -> None:
    """A worker's handler reopens memoir.log when a hook rotated it under it."""
    script = (
        "import os, sys, time\n"
        "from claude_memoir.log import setup_logging, get_logger\n"
        "setup_logging(os.environ['MEMOIR_HOME'], 'INFO', 10000)\n"
        "log = get_logger('t')\n"
        "log.info('before')\n"
        "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
        "sys.stdin.readline()\n"
        "log.info('after rotation')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline() == "ready\n"
        log = memoir_home / "logs" / "memoir.log"
        os.replace(log, log.with_name("memoir.log.1"))  # what another process's rotation does
        proc.stdin.write("\n")
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "after rotation" in log.read_text()
    assert "after rotation" not in log.with_name("memoir.log.1").read_text()


# -- who runs it --------------------------------------------------------------------


def test_a_finishing_worker_applies_retention(memoir_home: Path, spawned: Spawned) -> None:
    """No command needed: the worker that finishes a session runs the sweep."""
    with Store.open(memoir_home) as store:
        s = store.upsert_session(SID, "/p", "/p").id
        ids = _events(store, s, 2)
        store.record_observations(s, ids, [Observation(type="change", title="t")], 0)
        fragment_search_index(store, [1] * 12, session=s)
        assert store.search_segments("observations") >= 12
    _age(memoir_home, ids, 45)
    stale = Path(lock_path(memoir_home, "another-session"))
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("")
    bad = Path(spool.spool_dir(memoir_home)) / "00000000000000000001-1.bad"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("{}")
    _old(bad, 45)
    proc, _record = start_worker(spawned, memoir_home, SID)
    ipc.request(socket_path(memoir_home, SID), {"type": "shutdown", "reason": "other"},
                timeout=2)
    assert proc.wait(timeout=30) == 0
    pruned = db(memoir_home).execute(
        "SELECT COUNT(*) FROM events WHERE pruned_at IS NOT NULL").fetchone()[0]
    assert pruned == 2
    assert not stale.exists() and not bad.exists()
    # The worker's own lock file went with it.
    assert not Path(lock_path(memoir_home, SID)).exists()
    # And it merged the search index (after closing its socket).
    with Store.open(memoir_home) as store:
        assert store.search_segments("observations") == 1
    assert list((memoir_home / "run").glob("*.lock")) == []


def test_cleanup_sessions_applies_retention_and_reports_it(memoir_home: Path) -> None:
    with Store.open(memoir_home) as store:
        s = store.upsert_session(SID, "/p", "/p").id
        ids = _events(store, s, 3)
        store.record_observations(s, ids, [Observation(type="change", title="t")], 0)
        fragment_search_index(store, [1] * 12, session=s)
        assert store.search_segments("observations") >= 12
    _age(memoir_home, ids, 10)
    env = {**os.environ, "MEMOIR_KEEP_EVENTS_DAYS": "7"}
    done = subprocess.run([*memoir_command(), "cleanup-sessions", "--json"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["event_bodies_pruned"] == 3
    assert report["search_index_merge_steps"] >= 1
    with Store.open(memoir_home) as store:
        assert store.search_segments("observations") == 1
    assert report["rejected_removed"] == [] and report["lock_files_removed"] == []
    assert load_settings().keep_events_days == 30  # the default, without the variable
