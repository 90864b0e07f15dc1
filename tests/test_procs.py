"""Which processes are ours, and ending them: real pid files, real processes, real signals.

Every process here is started by the test itself (workers as
``python -m claude_memoir.worker --session ID`` in a session of their own, and
plain ``sleep``/``python`` stand-ins), so nothing outside the test is ever
signalled; the conftest teardown SIGKILLs whatever is left for this MEMOIR_HOME.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from claude_memoir import ipc, procs
from claude_memoir.paths import agent_dir, pid_path, socket_path
from claude_memoir.procs import PidRecord
from claude_memoir.store import Store
from conftest import Spawned, api_env, start_sleeper, start_worker, wait_for
from mockapi import MockAnthropic

SID = "9f0c1d2e-0000-4000-8000-00000000a001"
OTHER_SID = "9f0c1d2e-0000-4000-8000-00000000b002"


# -- helpers ---------------------------------------------------------------------


def seed(home: Path, sid: str = SID) -> None:
    with Store.open(home) as store:
        store.upsert_session(sid, "/proj", "/proj")


def wait_started(pid: int) -> None:
    """Until ``pid`` has exec'd (its cwd and environ are the final ones)."""
    def execd() -> bool:
        try:
            return bool(psutil.Process(pid).environ())
        except psutil.Error:
            return False
    wait_for(execd, timeout=5, message=f"pid {pid} to start")


def alive(pid: int) -> bool:
    return procs.is_alive(pid, None)


def state(pid: int) -> str:
    return psutil.Process(pid).status()


# -- pid files -------------------------------------------------------------------


def test_pid_file_round_trip_private_and_atomic(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    path = run / "w.pid"
    first = PidRecord(4242, 1712345678.25, SID, (11, 12))
    procs.write_pid_file(path, first)
    assert procs.read_pid_file(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in run.iterdir()) == ["w.pid"]  # no .tmp left

    # Overwriting replaces the whole record (no leftover agent pids, no .tmp).
    second = PidRecord(4343, 1712345679.5, OTHER_SID)
    procs.write_pid_file(path, second)
    assert procs.read_pid_file(path) == second
    assert procs.read_pid_file(path).agent_pids == ()  # type: ignore[union-attr]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in run.iterdir()) == ["w.pid"]


def test_pid_file_mode_is_0600_even_over_a_looser_file(tmp_path: Path) -> None:
    path = tmp_path / "w.pid"
    path.write_text("old")
    os.chmod(path, 0o644)
    procs.write_pid_file(path, PidRecord(1, 2.0, SID))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("content", [
    b"",
    b"not json at all",
    b'{"pid": 12, "create_ti',  # partial write
    b"[1, 2, 3]",
    b"null",
    b'{"pid": 12, "create_time": 1.0}',  # no session id
    b'{"create_time": 1.0, "session_id": "s"}',  # no pid
    b'{"pid": "twelve", "create_time": 1.0, "session_id": "s"}',
    b'{"pid": 12, "create_time": "soon", "session_id": "s"}',
    b'{"pid": 12, "create_time": 1.0, "session_id": "s", "agent_pids": null}',
    b'{"pid": 12, "create_time": 1.0, "session_id": "s", "agent_pids": ["x"]}',
    b"\xff\xfe\x00garbage",  # not even UTF-8
], ids=["empty", "text", "partial", "list", "null", "no-session", "no-pid", "pid-text",
        "time-text", "agents-null", "agents-text", "binary"])
def test_read_pid_file_rejects_garbage(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "w.pid"
    path.write_bytes(content)
    assert procs.read_pid_file(path) is None


def test_read_pid_file_missing_is_none(tmp_path: Path) -> None:
    assert procs.read_pid_file(tmp_path / "absent.pid") is None
    assert procs.read_pid_file(tmp_path) is None  # a directory, not a file


# -- is_alive --------------------------------------------------------------------


def test_is_alive_self_wrong_create_time_and_reaped(spawned: Spawned) -> None:
    me = os.getpid()
    started = psutil.Process(me).create_time()
    assert procs.is_alive(me, None)
    assert procs.is_alive(me, started)
    assert procs.create_time(me) == pytest.approx(started, abs=0.01)
    assert not procs.is_alive(me, started - 5)  # the pid, but another process's life
    assert not procs.is_alive(me, started + 5)

    p = start_sleeper(spawned)
    assert procs.is_alive(p.pid, None)
    os.kill(p.pid, signal.SIGKILL)
    # Dead but not yet reaped: a zombie counts as gone.
    wait_for(lambda: not procs.is_alive(p.pid, None), timeout=5, message="the zombie")
    assert psutil.Process(p.pid).status() == psutil.STATUS_ZOMBIE
    p.wait(timeout=5)
    assert not procs.is_alive(p.pid, None)
    assert procs.create_time(p.pid) is None


@pytest.mark.parametrize("pid", [-1, 0, 2**40])
def test_is_alive_and_our_worker_on_impossible_pids(pid: int) -> None:
    # A pid file is read from disk: a corrupt one must not crash the caller.
    assert procs.is_alive(pid, None) is False
    assert procs.our_worker(PidRecord(pid, 0.0, SID)) is None


# -- our_worker ------------------------------------------------------------------


def test_our_worker_accepts_only_the_real_worker(memoir_home: Path, spawned: Spawned) -> None:
    seed(memoir_home)
    worker, record = start_worker(spawned, memoir_home, SID)
    assert record.session_id == SID
    assert record.create_time == pytest.approx(psutil.Process(worker.pid).create_time(),
                                               abs=0.01)

    found = procs.our_worker(record)
    assert found is not None and found.pid == worker.pid

    # Pid reuse: same pid, another process's create time.
    assert procs.our_worker(record._replace(create_time=record.create_time - 3)) is None
    assert procs.our_worker(record._replace(create_time=record.create_time + 1)) is None
    # The worker of another session.
    assert procs.our_worker(record._replace(session_id=OTHER_SID)) is None
    # A session id that is only a prefix of the worker's.
    assert procs.our_worker(record._replace(session_id=SID[:8])) is None

    # A non-worker process with a perfectly forged pid file.
    sleeper = start_sleeper(spawned)
    forged = PidRecord(sleeper.pid, psutil.Process(sleeper.pid).create_time(), SID)
    assert procs.is_alive(forged.pid, forged.create_time)
    assert procs.our_worker(forged) is None

    # This test's own process, likewise.
    me = PidRecord(os.getpid(), psutil.Process().create_time(), SID)
    assert procs.our_worker(me) is None

    # Nothing was signalled along the way.
    assert alive(worker.pid) and alive(sleeper.pid)
    ipc.request(Path(socket_path(memoir_home, SID)), {"type": "ping"}, timeout=2)


# -- end_process_group -----------------------------------------------------------


def test_end_process_group_ends_a_stopped_worker_quickly(memoir_home: Path,
                                                         spawned: Spawned) -> None:
    seed(memoir_home)
    worker, record = start_worker(spawned, memoir_home, SID)
    os.kill(worker.pid, signal.SIGSTOP)
    wait_for(lambda: state(worker.pid) == psutil.STATUS_STOPPED, timeout=5,
             message="the worker to stop")
    proc = procs.our_worker(record)
    assert proc is not None

    started = time.monotonic()
    assert procs.end_process_group(proc) is True
    elapsed = time.monotonic() - started
    assert elapsed < 2, f"ending a stopped worker took {elapsed:.2f}s"
    assert not alive(worker.pid)
    assert worker.wait(timeout=5) == -signal.SIGKILL  # SIGTERM cannot reach a stopped process


def test_end_process_group_sigterm_first(spawned: Spawned) -> None:
    p = start_sleeper(spawned)
    wait_started(p.pid)
    started = time.monotonic()
    # A generous grace: SIGTERM alone must end it, well before any SIGKILL.
    assert procs.end_process_group(psutil.Process(p.pid), grace=3.0) is True
    assert time.monotonic() - started < 2.5
    assert p.wait(timeout=5) == -signal.SIGTERM  # a polite end was enough


def test_end_process_group_escalates_when_sigterm_is_ignored(spawned: Spawned) -> None:
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")
    p = spawned.add(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True,
                                     env=dict(os.environ), start_new_session=True))
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"

    started = time.monotonic()
    assert procs.end_process_group(psutil.Process(p.pid)) is True
    elapsed = time.monotonic() - started
    assert elapsed < 1.5, f"escalation took {elapsed:.2f}s"
    assert not alive(p.pid)
    assert p.wait(timeout=5) == -signal.SIGKILL


def _leader_with_child(spawned: Spawned) -> tuple[subprocess.Popen[Any], int]:
    code = ("import subprocess, time\n"
            "c = subprocess.Popen(['sleep', '60'])\n"
            "print(c.pid, flush=True)\n"
            "time.sleep(60)\n")
    leader = spawned.add(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                          stdin=subprocess.DEVNULL, text=True,
                                          env=dict(os.environ), start_new_session=True))
    assert leader.stdout is not None
    child = int(leader.stdout.readline())
    wait_started(child)
    assert os.getpgid(child) == leader.pid
    return leader, child


def test_end_process_group_takes_the_whole_group_of_a_leader(spawned: Spawned) -> None:
    leader, child = _leader_with_child(spawned)
    try:
        assert procs.end_process_group(psutil.Process(leader.pid)) is True
        assert not alive(leader.pid)
        wait_for(lambda: not alive(child), timeout=2, message="the leader's child to go too")
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)


def test_end_process_group_spares_the_group_of_a_non_leader(spawned: Spawned) -> None:
    leader, child = _leader_with_child(spawned)
    try:
        assert procs.end_process_group(psutil.Process(child)) is True
        assert not alive(child)
        time.sleep(0.2)
        assert alive(leader.pid), "the group leader was signalled for its child"
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)


def test_end_process_group_of_a_gone_process_is_true(spawned: Spawned) -> None:
    p = start_sleeper(spawned)
    proc = psutil.Process(p.pid)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=5)
    assert procs.end_process_group(proc) is True


# -- end_worker ------------------------------------------------------------------


def test_end_worker_ends_our_worker(memoir_home: Path, spawned: Spawned) -> None:
    seed(memoir_home)
    worker, record = start_worker(spawned, memoir_home, SID)
    started = time.monotonic()
    assert procs.end_worker(memoir_home, SID) == worker.pid
    assert time.monotonic() - started < 2
    assert not alive(worker.pid)
    worker.wait(timeout=5)
    # Ended for good: no second worker to end.
    assert procs.end_worker(memoir_home, SID) is None


def test_end_worker_ends_a_stopped_worker_and_its_listed_agent_only(
        memoir_home: Path, spawned: Spawned) -> None:
    seed(memoir_home)
    worker, record = start_worker(spawned, memoir_home, SID)
    agents = Path(agent_dir(memoir_home))
    agents.mkdir(mode=0o700)
    # An agent of ours that left the worker's group, and an innocent process;
    # both are named in the pid file (as a corrupt or stale file could).
    agent = start_sleeper(spawned, cwd=agents, env={"MEMOIR_WORKER": "1"})
    innocent = start_sleeper(spawned)
    wait_started(agent.pid)
    wait_started(innocent.pid)
    procs.write_pid_file(Path(pid_path(memoir_home, SID)),
                         record._replace(agent_pids=(agent.pid, innocent.pid)))
    os.kill(worker.pid, signal.SIGSTOP)

    started = time.monotonic()
    assert procs.end_worker(memoir_home, SID) == worker.pid
    assert time.monotonic() - started < 3
    assert not alive(worker.pid)
    assert not alive(agent.pid)
    assert alive(innocent.pid), "a process that is not our agent was killed"


def test_end_worker_leaves_someone_else_alone(memoir_home: Path, spawned: Spawned) -> None:
    assert procs.end_worker(memoir_home, SID) is None  # no pid file at all

    (memoir_home / "run").mkdir(parents=True)
    # A pid file naming a live process that is not our worker, with its true create time.
    sleeper = start_sleeper(spawned)
    wait_started(sleeper.pid)
    record = PidRecord(sleeper.pid, psutil.Process(sleeper.pid).create_time(), SID)
    procs.write_pid_file(Path(pid_path(memoir_home, SID)), record)
    assert procs.end_worker(memoir_home, SID) is None
    time.sleep(0.4)  # longer than the SIGTERM grace
    assert alive(sleeper.pid)
    assert sleeper.poll() is None

    # A pid file naming this test's own process.
    me = PidRecord(os.getpid(), psutil.Process().create_time(), SID)
    procs.write_pid_file(Path(pid_path(memoir_home, SID)), me)
    assert procs.end_worker(memoir_home, SID) is None

    # A real worker of another session, named in this session's pid file.
    seed(memoir_home, OTHER_SID)
    other, other_record = start_worker(spawned, memoir_home, OTHER_SID)
    procs.write_pid_file(Path(pid_path(memoir_home, SID)),
                         other_record._replace(session_id=SID))
    assert procs.end_worker(memoir_home, SID) is None
    time.sleep(0.4)
    assert alive(other.pid)
    ipc.request(Path(socket_path(memoir_home, OTHER_SID)), {"type": "ping"}, timeout=2)

    # Garbage in the pid file.
    Path(pid_path(memoir_home, SID)).write_text('{"pid": ')
    assert procs.end_worker(memoir_home, SID) is None


def test_end_worker_with_a_corrupt_negative_pid_is_none(memoir_home: Path) -> None:
    (memoir_home / "run").mkdir(parents=True)
    Path(pid_path(memoir_home, SID)).write_text(json.dumps(
        {"pid": -1, "create_time": 0.0, "session_id": SID, "agent_pids": []}))
    assert procs.end_worker(memoir_home, SID) is None


# -- orphaned_agents -------------------------------------------------------------


def test_orphaned_agents_only_ours_and_only_orphans(memoir_home: Path, spawned: Spawned,
                                                    tmp_path: Path) -> None:
    agents = Path(agent_dir(memoir_home))
    agents.mkdir(parents=True, mode=0o700)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    orphan = start_sleeper(spawned, cwd=agents, env={"MEMOIR_WORKER": "1"})
    orphan_in_group = start_sleeper(spawned, cwd=agents, env={"MEMOIR_WORKER": "1"},
                                    new_session=False)
    not_here = start_sleeper(spawned, cwd=elsewhere, env={"MEMOIR_WORKER": "1"})
    not_flagged = start_sleeper(spawned, cwd=agents)
    wrong_flag = start_sleeper(spawned, cwd=agents, env={"MEMOIR_WORKER": "0"})
    # The agent directory of another memoir home.
    other_home = tmp_path / "other-home"
    (other_home / "agent").mkdir(parents=True)
    foreign = start_sleeper(spawned, cwd=other_home / "agent", env={"MEMOIR_WORKER": "1"})
    for p in (orphan, orphan_in_group, not_here, not_flagged, wrong_flag, foreign):
        wait_started(p.pid)

    found = sorted(p.pid for p in procs.orphaned_agents(memoir_home))
    assert found == sorted([orphan.pid, orphan_in_group.pid])
    # Listing signals nothing.
    for p in (orphan, orphan_in_group, not_here, not_flagged, wrong_flag, foreign):
        assert alive(p.pid)

    # A dead one is not listed any more (a zombie counts as gone).
    os.kill(orphan.pid, signal.SIGKILL)
    wait_for(lambda: not alive(orphan.pid), timeout=5, message="the orphan to die")
    assert [p.pid for p in procs.orphaned_agents(memoir_home)] == [orphan_in_group.pid]


def test_orphaned_agents_excludes_the_agent_of_a_live_worker(
        memoir_home: Path, spawned: Spawned, mock_api: MockAnthropic, tmp_path: Path) -> None:
    """A real worker with its real agent CLI (against the mock API): not an orphan."""
    with Store.open(memoir_home) as store:
        session = store.upsert_session(SID, "/proj", "/proj")
        number = store.add_prompt(session.id, "fix the bug")
        store.add_event(session.id, number, "Bash", {"command": "echo 1"}, {"stdout": "1"},
                        tool_use_id="toolu_1")
        store.finish_prompt(session.id, number, None)  # the prompt's batch is due
    worker, _ = start_worker(spawned, memoir_home, SID, env=api_env(mock_api, tmp_path))

    def agent_pids() -> tuple[int, ...]:
        record = procs.read_pid_file(Path(pid_path(memoir_home, SID)))
        return record.agent_pids if record else ()

    (agent_pid,) = wait_for(agent_pids, timeout=60, message="the worker's agent to start")
    agent = psutil.Process(agent_pid)
    assert agent.ppid() == worker.pid
    assert agent.environ().get("MEMOIR_WORKER") == "1"
    assert os.path.realpath(agent.cwd()) == os.path.realpath(Path(agent_dir(memoir_home)))

    # A stand-in orphan next to it is listed; the live worker's agent is not.
    orphan = start_sleeper(spawned, cwd=Path(agent_dir(memoir_home)), env={"MEMOIR_WORKER": "1"})
    wait_started(orphan.pid)
    assert [p.pid for p in procs.orphaned_agents(memoir_home)] == [orphan.pid]

    # Its worker SIGKILLed: the agent dies with it (PDEATHSIG) or is an orphan now.
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=5)
    # (Polled: a process on its way out can no longer be inspected but is not a zombie yet.)
    def settled() -> bool:
        found = {p.pid for p in procs.orphaned_agents(memoir_home)}
        assert orphan.pid in found
        return agent_pid in found or not alive(agent_pid)
    wait_for(settled, timeout=5, message="the agent to die with its worker or show as an orphan")
