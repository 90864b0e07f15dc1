"""The worker: real sockets, real SQLite, real processes; the LLM is a fake agent.

In-process tests run ``Worker.run`` on an event loop in this process with
``FakeAgent``; process tests start ``python -m claude_memoir.worker`` for real.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from claude_memoir import ipc
from claude_memoir.config import load_settings
from claude_memoir.errors import IPCError
from claude_memoir.paths import lock_path, pid_path, socket_path
from claude_memoir.store import Store
from claude_memoir.worker.listener import clear_stale_socket
from claude_memoir.worker.lock import AlreadyRunning, SessionLock
from claude_memoir.worker.service import Worker
from conftest import db, pid_alive, wait_for
from fakeagent import FakeAgentFactory

SID = "11111111-2222-3333-4444-555555555555"


def _seed(home: Path, *, events: int = 0, prompt: str = "fix the bug",
          finished: bool = False) -> int:
    with Store.open(home) as store:
        session = store.upsert_session(SID, "/proj", "/proj")
        number = store.add_prompt(session.id, prompt)
        for i in range(events):
            store.add_event(session.id, number, "Bash", {"command": f"echo {i}"},
                            {"stdout": str(i)}, tool_use_id=f"toolu_{i}")
        if finished:
            store.finish_prompt(session.id, number, "All done.")
        return session.id


def _add_events(home: Path, start: int, count: int) -> None:
    with Store.open(home) as store:
        session = store.get_session(SID)
        assert session is not None
        number = store.current_prompt_number(session.id)
        for i in range(start, start + count):
            store.add_event(session.id, number, "Read", {"file_path": f"/proj/f{i}.py"},
                            {"content": "x"}, tool_use_id=f"toolu_{i}")


async def _request(home: Path, message: dict[str, Any], timeout: float = 2.0) -> dict[str, Any]:
    return dict(await asyncio.to_thread(
        ipc.request, Path(socket_path(home, SID)), message, timeout))  # type: ignore[arg-type]


async def _until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def _run_worker(home: Path, factory: FakeAgentFactory,
                scenario: Callable[[Worker], Awaitable[None]], **env: str) -> Worker:
    """Run a worker in-process while ``scenario`` drives it; return it after it exits."""
    for key, value in env.items():
        os.environ[key] = value
    worker = Worker(load_settings(), SID, agent_factory=factory)

    async def main() -> None:
        task = asyncio.create_task(worker.run())
        await _until(lambda: Path(socket_path(home, SID)).exists() or task.done())
        try:
            await scenario(worker)
        finally:
            if not task.done():
                worker.request_stop("test-end")
            await asyncio.wait_for(task, timeout=20)

    asyncio.run(main())
    return worker


def _send_raw(path: Path, raw: bytes) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2)
        s.connect(str(path))
        s.sendall(raw)
        return dict(json.loads(s.makefile("rb").readline()))


def _count(home: Path, sql: str) -> int:
    return int(db(home).execute(sql).fetchone()[0])


def test_ping_reports_state_and_bad_requests_get_error_acks(memoir_home: Path) -> None:
    _seed(memoir_home)
    factory = FakeAgentFactory()
    acks: dict[str, Any] = {}

    async def scenario(worker: Worker) -> None:
        acks["ping"] = await _request(memoir_home, {"type": "ping"})
        acks["unknown"] = await _request(memoir_home, {"type": "rm -rf"})
        acks["finalize"] = await _request(memoir_home, {"type": "finalize", "prompt_number": "x"})
        for raw in (b"not json\n", b"[1,2]\n", b"x" * (ipc.MAX_MESSAGE + 10) + b"\n"):
            answer = await asyncio.to_thread(_send_raw, Path(socket_path(memoir_home, SID)), raw)
            acks.setdefault("raw", []).append(answer)
        acks["after"] = await _request(memoir_home, {"type": "ping"})

    _run_worker(memoir_home, factory, scenario)
    state = acks["ping"]["state"]
    assert acks["ping"]["ok"] is True
    assert state["session_id"] == SID and state["pid"] == os.getpid()
    assert state["pending"] == 0 and state["agent"] == "not-started"
    assert acks["unknown"]["ok"] is False and "unknown request type" in acks["unknown"]["error"]
    assert acks["finalize"]["ok"] is False
    assert [a["ok"] for a in acks["raw"]] == [False, False, False]
    assert acks["after"]["ok"] is True  # still serving after all that
    # A worker that never had work never started the agent (no LLM cost).
    assert factory.agents == []


def test_socket_is_private_and_removed_on_exit(memoir_home: Path) -> None:
    _seed(memoir_home)
    modes: dict[str, int] = {}

    async def scenario(worker: Worker) -> None:
        modes["sock"] = stat.S_IMODE(os.stat(Path(socket_path(memoir_home, SID))).st_mode)
        modes["run"] = stat.S_IMODE(os.stat(memoir_home / "run").st_mode)
        modes["pid"] = stat.S_IMODE(os.stat(Path(pid_path(memoir_home, SID))).st_mode)
        record = json.loads(Path(pid_path(memoir_home, SID)).read_text())
        assert record["session_id"] == SID and record["create_time"] > 0
        modes["pid_value"] = record["pid"]

    old = os.umask(0o022)
    try:
        _run_worker(memoir_home, FakeAgentFactory(), scenario)
    finally:
        os.umask(old)
    assert modes == {"sock": 0o600, "run": 0o700, "pid": 0o600, "pid_value": os.getpid()}
    assert not Path(socket_path(memoir_home, SID)).exists()
    assert not Path(pid_path(memoir_home, SID)).exists()
    row = db(memoir_home).execute("SELECT worker_pid FROM sessions").fetchone()
    assert row["worker_pid"] is None


def test_pending_events_at_start_are_drained_in_order(
        memoir_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMOIR_CAPTURE", "live")  # events observed as they come
    _seed(memoir_home, events=3)
    factory = FakeAgentFactory()

    async def scenario(worker: Worker) -> None:
        await _until(lambda: _count(memoir_home, "SELECT COUNT(*) FROM observations") == 3)

    _run_worker(memoir_home, factory, scenario)
    conn = db(memoir_home)
    assert _count(memoir_home, "SELECT COUNT(*) FROM events WHERE status = 'pending'") == 0
    first = factory.messages[0]
    # The first message introduces the session, then carries the events in order.
    assert "MEMOIR-INIT" in first and "fix the bug" in first
    assert first.index("echo 0") < first.index("echo 1") < first.index("echo 2")
    obs = conn.execute("SELECT event_ids, prompt_number FROM observations").fetchall()
    assert {tuple(json.loads(o["event_ids"])) for o in obs} == {(1, 2, 3)}


def test_events_queued_while_agent_busy_go_in_one_batch(
        memoir_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMOIR_CAPTURE", "live")  # events observed as they come
    _seed(memoir_home, events=1)
    factory = FakeAgentFactory(template={"delay": 0.5})

    async def scenario(worker: Worker) -> None:
        await _until(lambda: len(factory.messages) == 1)  # agent busy with event 0
        await asyncio.to_thread(_add_events, memoir_home, 100, 5)
        for _ in range(5):
            await _request(memoir_home, {"type": "wake"})
        await _until(lambda: _count(memoir_home, "SELECT COUNT(*) FROM observations") == 6)

    _run_worker(memoir_home, factory, scenario)
    observe = [m for m in factory.messages if "MEMOIR-OBSERVE" in m]
    assert [m.count("<event") for m in observe] == [1, 5]


def test_finalize_writes_summary_and_worker_stays_for_next_prompt(memoir_home: Path) -> None:
    session_pk = _seed(memoir_home, events=2, finished=True)
    factory = FakeAgentFactory()

    async def scenario(worker: Worker) -> None:
        await _request(memoir_home, {"type": "finalize", "prompt_number": 1})
        await _until(lambda: _count(memoir_home, "SELECT COUNT(*) FROM summaries") == 1)
        # Next prompt in the same session: same worker, same agent.
        with Store.open(memoir_home) as store:
            number = store.add_prompt(session_pk, "second request")
            store.add_event(session_pk, number, "Edit", {"file_path": "/proj/a.py"}, {})
            store.finish_prompt(session_pk, number, None)
        await _request(memoir_home, {"type": "finalize", "prompt_number": 2})
        await _until(lambda: _count(memoir_home, "SELECT COUNT(*) FROM summaries") == 2)

    _run_worker(memoir_home, factory, scenario)
    rows = db(memoir_home).execute(
        "SELECT prompt_number, learned, kind FROM summaries ORDER BY prompt_number").fetchall()
    assert [tuple(r) for r in rows] == [(1, "FAKE-LEARNED", "agent"), (2, "FAKE-LEARNED", "agent")]
    assert len(factory.agents) == 1  # one agent process for the whole session
    summary_requests = [m for m in factory.messages if "MEMOIR-SUMMARY-REQUEST" in m]
    assert "All done." in summary_requests[0]  # Claude's last reply gives context
    sess = db(memoir_home).execute("SELECT agent_session_id FROM sessions").fetchone()
    assert sess["agent_session_id"] == "fake-agent-session"


def test_shutdown_summarizes_open_prompt_and_completes(memoir_home: Path) -> None:
    _seed(memoir_home, events=1)  # Stop never came: the turn is still open

    async def scenario(worker: Worker) -> None:
        ack = await _request(memoir_home, {"type": "shutdown", "reason": "clear"})
        assert ack["ok"] is True

    worker = _run_worker(memoir_home, FakeAgentFactory(), scenario)
    assert worker.stop_reason == "clear"
    conn = db(memoir_home)
    sess = conn.execute("SELECT status, end_reason, ended_at FROM sessions").fetchone()
    assert (sess["status"], sess["end_reason"]) == ("completed", "clear")
    assert sess["ended_at"]
    assert _count(memoir_home, "SELECT COUNT(*) FROM summaries WHERE kind = 'agent'") == 1


def test_end_request_in_store_is_honoured_without_a_message(memoir_home: Path) -> None:
    session_pk = _seed(memoir_home, events=1)
    with Store.open(memoir_home) as store:
        store.request_end(session_pk, "logout")

    async def scenario(worker: Worker) -> None:
        # Nobody says a word: the database does. (The worker reads the store
        # on its store thread, so wait for its own decision before the test
        # harness asks it to stop.)
        await _until(lambda: worker.stop_reason is not None)

    worker = _run_worker(memoir_home, FakeAgentFactory(), scenario)
    assert worker.stop_reason == "logout"
    assert _count(memoir_home, "SELECT COUNT(*) FROM summaries") == 1
    assert _count(memoir_home, "SELECT COUNT(*) FROM sessions WHERE status='completed'") == 1


def test_agent_unavailable_yields_fallback_summary_and_keeps_events(memoir_home: Path) -> None:
    _seed(memoir_home, events=2, finished=True)
    factory = FakeAgentFactory(template={"fail_asks": [1000]})

    async def scenario(worker: Worker) -> None:
        await _until(lambda: _count(memoir_home, "SELECT COUNT(*) FROM summaries") == 1,
                     timeout=20)

    _run_worker(memoir_home, factory, scenario)
    row = db(memoir_home).execute("SELECT * FROM summaries").fetchone()
    assert row["kind"] == "fallback"
    assert row["request"] == "fix the bug"
    assert "echo 0" in row["completed"] and "echo 1" in row["completed"]
    assert "unavailable" in row["notes"]
    # The raw events are kept, parked after MAX_EVENT_ATTEMPTS tries instead of
    # being retried forever, for a later `memoir reprocess`.
    events = db(memoir_home).execute("SELECT status, attempts FROM events").fetchall()
    assert [(e["status"], e["attempts"]) for e in events] == [("failed", 3), ("failed", 3)]


def test_agent_is_tried_again_after_cooldown(memoir_home: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import claude_memoir.worker.conversation as conversation_module

    monkeypatch.setattr(conversation_module, "AGENT_COOLDOWN", 1.0)
    session_pk = _seed(memoir_home, events=1, finished=True)
    factory = FakeAgentFactory(template={"fail_asks": [3]})  # a short outage

    async def scenario(worker: Worker) -> None:
        await _until(lambda: _count(memoir_home, "SELECT COUNT(*) FROM summaries") == 1,
                     timeout=20)  # fallback while the agent is down
        await asyncio.sleep(1.2)  # the outage is over and the cooldown has passed
        with Store.open(memoir_home) as store:
            number = store.add_prompt(session_pk, "after the outage")
            store.add_event(session_pk, number, "Bash", {"command": "make"}, {})
            store.finish_prompt(session_pk, number, None)
        await _until(lambda: _count(memoir_home, "SELECT COUNT(*) FROM summaries") == 2,
                     timeout=20)

    _run_worker(memoir_home, factory, scenario)
    kinds = db(memoir_home).execute(
        "SELECT kind FROM summaries ORDER BY prompt_number").fetchall()
    assert [k["kind"] for k in kinds] == ["fallback", "agent"]


def test_agent_failure_is_retried_and_then_succeeds(memoir_home: Path) -> None:
    _seed(memoir_home, events=1, finished=True)
    factory = FakeAgentFactory(template={"fail_asks": [1]})

    async def scenario(worker: Worker) -> None:
        await _until(lambda: _count(memoir_home, "SELECT COUNT(*) FROM summaries") == 1,
                     timeout=20)

    _run_worker(memoir_home, factory, scenario)
    assert _count(memoir_home, "SELECT COUNT(*) FROM observations") == 1
    assert _count(memoir_home, "SELECT COUNT(*) FROM summaries WHERE kind = 'agent'") == 1
    assert len(factory.agents) == 2  # the failed agent was dropped and replaced


def test_locked_database_does_not_kill_worker_or_lose_events(
        memoir_home: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    monkeypatch.setenv("MEMOIR_CAPTURE", "live")  # events observed as they come

    _seed(memoir_home)
    factory = FakeAgentFactory()
    blocker = sqlite3.connect(memoir_home / "memoir.db", isolation_level=None)

    async def scenario(worker: Worker) -> None:
        await asyncio.to_thread(_add_events, memoir_home, 0, 2)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock ...
        await asyncio.sleep(4.5)  # ... past the worker's 3 s busy timeout
        blocker.execute("ROLLBACK")
        await _until(lambda: _count(memoir_home, "SELECT COUNT(*) FROM observations") == 2,
                     timeout=15)
        assert (await _request(memoir_home, {"type": "ping"}))["ok"]

    try:
        _run_worker(memoir_home, factory, scenario)
    finally:
        blocker.close()
    assert _count(memoir_home, "SELECT COUNT(*) FROM events WHERE status = 'pending'") == 0
    # The lock was met and outlived: by the work loop, or first by the agent's
    # health record (issue 11), which logs it and carries on.
    assert "work loop failed (busy)" in caplog.text or (
        "cannot record the agent's health" in caplog.text
        and "database is locked" in caplog.text), caplog.text


def test_rejected_resume_falls_back_to_fresh_agent_session(memoir_home: Path) -> None:
    session_pk = _seed(memoir_home, events=1, finished=True)
    with Store.open(memoir_home) as store:
        store.set_agent_session(session_pk, "old-agent-session")
    factory = FakeAgentFactory(template={"fail_start_on_resume": True})

    async def scenario(worker: Worker) -> None:
        await _until(lambda: _count(memoir_home, "SELECT COUNT(*) FROM summaries") == 1)

    _run_worker(memoir_home, factory, scenario)
    assert [a.resume for a in factory.agents] == ["old-agent-session", None]
    # A fresh agent session gets the introduction again.
    assert "MEMOIR-INIT" in factory.messages[0]
    sess = db(memoir_home).execute("SELECT agent_session_id FROM sessions").fetchone()
    assert sess["agent_session_id"] == "fake-agent-session"


def test_idle_watchdog_alone_ends_worker(memoir_home: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _seed(memoir_home, events=1)
    monkeypatch.setenv("MEMOIR_IDLE_TIMEOUT", "1")
    worker = Worker(load_settings(), SID, agent_factory=FakeAgentFactory())
    started = time.monotonic()
    asyncio.run(asyncio.wait_for(worker.run(), timeout=15))
    assert worker.stop_reason == "idle"
    assert 1 <= time.monotonic() - started < 5
    assert _count(memoir_home, "SELECT COUNT(*) FROM summaries") == 1
    assert not Path(socket_path(memoir_home, SID)).exists()


def test_stale_socket_is_removed_and_live_one_refuses(memoir_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens: what a SIGKILLed worker leaves
    clear_stale_socket(path)
    assert not path.exists()
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(path))
    live.listen()
    try:
        with pytest.raises(AlreadyRunning):
            clear_stale_socket(path)
        assert path.exists()
    finally:
        live.close()


def test_session_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    first, second = SessionLock(tmp_path / "x.lock"), SessionLock(tmp_path / "x.lock")
    first.acquire()
    with pytest.raises(AlreadyRunning):
        second.acquire()
    first.release()
    second.acquire()
    second.release()


def test_new_worker_waits_for_finishing_predecessor(tmp_path: Path) -> None:
    from claude_memoir.worker.lock import acquire_or_defer

    held = SessionLock(tmp_path / "x.lock")
    held.acquire()  # a predecessor that no longer answers on its socket
    threading.Timer(0.6, held.release).start()
    started = time.monotonic()
    successor = SessionLock(tmp_path / "x.lock")
    assert acquire_or_defer(successor, tmp_path / "none.sock", wait=5) is True
    assert 0.5 <= time.monotonic() - started < 3
    successor.release()
    # With no release at all, it gives up after its bound.
    held.acquire()
    started = time.monotonic()
    assert acquire_or_defer(SessionLock(tmp_path / "x.lock"), tmp_path / "none.sock",
                            wait=0.5) is False
    assert time.monotonic() - started < 2
    held.release()


# -- real processes ---------------------------------------------------------------


def _spawn(env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "claude_memoir.worker", "--session", SID],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})}, start_new_session=True,
    )


def test_racing_spawns_leave_exactly_one_worker(memoir_home: Path) -> None:
    _seed(memoir_home)
    procs = [_spawn() for _ in range(5)]
    try:
        # All but one exit on their own, with status 0 (another worker owns it).
        wait_for(lambda: sum(p.poll() is not None for p in procs) == 4, timeout=20,
                 message="4 of 5 racing workers to exit")
        survivors = [p for p in procs if p.poll() is None]
        assert len(survivors) == 1
        assert all(p.returncode == 0 for p in procs if p.poll() is not None)
        ack = ipc.request(Path(socket_path(memoir_home, SID)), {"type": "ping"}, timeout=2)
        assert ack["state"]["pid"] == survivors[0].pid
        row = db(memoir_home).execute("SELECT worker_pid FROM sessions").fetchone()
        assert row["worker_pid"] == survivors[0].pid
        # SIGTERM only sets a flag: the worker finishes and exits cleanly.
        survivors[0].terminate()
        assert survivors[0].wait(timeout=15) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert not Path(socket_path(memoir_home, SID)).exists()
    assert _count(memoir_home, "SELECT COUNT(*) FROM sessions WHERE status='completed'") == 1


def test_worker_killed_leaves_stale_socket_next_one_starts(memoir_home: Path) -> None:
    _seed(memoir_home)
    first = _spawn()
    try:
        wait_for(lambda: Path(socket_path(memoir_home, SID)).exists(), timeout=10,
                 message="worker to listen")
        first.kill()  # SIGKILL: no cleanup runs
        first.wait(timeout=5)
        assert Path(socket_path(memoir_home, SID)).exists()  # stale socket left behind
        with pytest.raises(IPCError):
            ipc.request(Path(socket_path(memoir_home, SID)), {"type": "ping"}, timeout=1)
        second = _spawn()
        try:
            ack = wait_for(lambda: _try_ping(memoir_home), timeout=10,
                           message="second worker to answer")
            assert ack["state"]["pid"] == second.pid
            assert Path(lock_path(memoir_home, SID)).exists()
        finally:
            second.terminate()
            second.wait(timeout=15)
    finally:
        if first.poll() is None:
            first.kill()
    assert not pid_alive(first.pid)


def _try_ping(home: Path) -> dict[str, Any] | None:
    try:
        return dict(ipc.request(Path(socket_path(home, SID)), {"type": "ping"}, timeout=1))
    except IPCError:
        return None


def test_worker_rejects_invalid_session_id(memoir_home: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "claude_memoir.worker", "--session", "../../x"],
                          capture_output=True, timeout=20)
    assert done.returncode == 2
    assert not (memoir_home / "run").exists() or not any((memoir_home / "run").iterdir())
    log = (memoir_home / "logs" / "memoir.log").read_text()
    assert "invalid session id" in log


_SYSTEM_PYTHON = "/usr/bin/python3"  # readable by any user, unlike a venv under /root


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(_SYSTEM_PYTHON),
                    reason="needs root and a system python to connect as another user")
def test_connections_from_another_user_are_refused(memoir_home: Path) -> None:
    _seed(memoir_home)
    results: dict[str, Any] = {}
    client = ("import socket, sys\n"
              "s = socket.socket(socket.AF_UNIX); s.settimeout(3); s.connect(sys.argv[1])\n"
              "s.sendall(b'{\"type\": \"shutdown\"}\\n')\n"
              "print(repr(s.recv(4096)))\n")

    async def scenario(worker: Worker) -> None:
        path = Path(socket_path(memoir_home, SID))
        # Loosen the file permissions on purpose (traverse on every ancestor,
        # a world-writable socket), so that only the worker's SO_PEERCRED
        # check stands between another user and the socket.
        saved = {}
        for directory in path.parents:
            if directory == Path("/"):
                break
            saved[directory] = stat.S_IMODE(directory.stat().st_mode)
            os.chmod(directory, saved[directory] | 0o011)
        os.chmod(path, 0o666)
        try:
            done = await asyncio.to_thread(
                subprocess.run, [_SYSTEM_PYTHON, "-I", "-c", client, str(path)],
                capture_output=True, text=True, timeout=20, user=65534)
        finally:
            for directory, mode in saved.items():
                os.chmod(directory, mode)
        results["stdout"], results["stderr"] = done.stdout, done.stderr
        results["stopping"] = worker.stop_reason
        results["ping"] = await _request(memoir_home, {"type": "ping"})

    _run_worker(memoir_home, FakeAgentFactory(), scenario)
    # Closed without an answer: EOF, a reset because the request went unread, or
    # closed before the client even sent it (broken pipe).
    assert (results["stdout"].strip() == "b''" or "ConnectionResetError" in results["stderr"]
            or "BrokenPipeError" in results["stderr"]), results
    assert "ok" not in results["stdout"]
    assert results["stopping"] is None  # the shutdown from another user was ignored
    assert results["ping"]["ok"] is True


def test_files_are_private_under_a_permissive_umask(run_hook: Any, memoir_home: Path) -> None:
    from conftest import payload

    old = os.umask(0)
    try:
        done = run_hook("user-prompt-submit", dict(payload("user_prompt_submit"),
                                                   session_id=SID))
        assert done.returncode == 0
        wait_for(lambda: list((memoir_home / "run").glob("*.sock")), timeout=15,
                 message="the worker's socket")
        wait_for(lambda: list((memoir_home / "run").glob("*.pid")), timeout=15,
                 message="the worker's pid file")
    finally:
        os.umask(old)
    modes = {}
    for path in [memoir_home, *memoir_home.rglob("*")]:
        if path.name.endswith(".tmp"):
            continue
        modes[str(path.relative_to(memoir_home.parent))] = stat.S_IMODE(path.lstat().st_mode)
    loose = {p: oct(m) for p, m in modes.items()
             if m & 0o077 or (m & 0o700) == 0}
    assert not loose, loose
    assert any(p.endswith(".sock") for p in modes) and any(p.endswith("memoir.db") for p in modes)


def test_worker_entry_listens_before_the_heavy_imports() -> None:
    """``python -m claude_memoir.worker`` binds its socket before asyncio, logging,
    the agent's modules, psutil or the SDK are loaded (~70 ms of imports), so a
    hook arriving right after the first prompt finds a live socket."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c",
                           "import claude_memoir.worker"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    names = {line.rsplit("|", 1)[1].strip().split(".")[0]
             for line in done.stderr.splitlines() if line.startswith("import time:")}
    heavy = names & {"asyncio", "logging", "claude_agent_sdk", "psutil", "argparse", "typing",
                     "dataclasses", "pathlib"}
    assert not heavy, sorted(heavy)
    assert "claude_memoir" in names
