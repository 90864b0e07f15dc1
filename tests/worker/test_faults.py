"""Fault tests: real hooks, real workers, real SDK agents, real signals.

Each test drives a session through the hooks as Claude Code would, breaks
something on purpose (kill -9 at several points, a hung worker, an LLM that
answers 500 or refuses connections, a vanished Claude Code process), and then
checks what a user would see: every event observed exactly once, a summary,
the right session status, and no process of ours left behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from claude_memoir.procs import is_alive
from conftest import HookRunner, api_env, db, memoir_command, payload, wait_for
from mockapi import MockAnthropic

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SID = "fa17fa17-0000-4000-8000-000000000001"


class Session:
    """Drives one Claude Code session's hooks against a test's MEMOIR_HOME."""

    def __init__(self, run_hook: HookRunner, home: Path, env: dict[str, str]) -> None:
        self.run_hook, self.home, self.env = run_hook, home, env
        self.events = 0

    def hook(self, event: str, data: dict[str, Any]) -> float:
        started = time.monotonic()
        done = self.run_hook(event, dict(data, session_id=SID), env=self.env)
        elapsed = time.monotonic() - started
        assert done.returncode == 0 and json.loads(done.stdout) is not None
        return elapsed

    def prompt(self, text: str = "fix the flaky test") -> None:
        self.hook("user-prompt-submit", dict(payload("user_prompt_submit"), prompt=text))

    def tool(self) -> None:
        self.events += 1
        data = dict(payload("post_tool_use_bash"), tool_use_id=f"toolu_fault{self.events:04d}",
                    tool_input={"command": f"echo step {self.events}"},
                    tool_response={"stdout": f"step {self.events}", "stderr": ""})
        self.hook("post-tool-use", data)

    def stop(self) -> None:
        self.hook("stop", payload("stop"))

    def end(self) -> float:
        return self.hook("session-end", payload("session_end_other"))

    def row(self) -> Any:
        return db(self.home).execute(
            "SELECT * FROM sessions WHERE claude_session_id = ?", (SID,)).fetchone()

    def worker_pid(self, timeout: float = 15) -> int:
        return int(wait_for(lambda: (self.row() or {"worker_pid": None})["worker_pid"],
                            timeout=timeout, message="a worker to register"))

    def agent_pids(self, timeout: float = 15) -> list[int]:
        def read() -> list[int]:
            for pid_file in (self.home / "run").glob("*.pid"):
                try:
                    return list(json.loads(pid_file.read_text()).get("agent_pids") or [])
                except (OSError, ValueError):
                    return []
            return []
        return list(wait_for(read, timeout=timeout, message="the agent's pid"))


def our_processes(home: Path) -> list[psutil.Process]:
    """Processes (other than this one) started for ``home``: workers, agent CLIs."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == os.getpid():
            continue
        try:
            if proc.environ().get("MEMOIR_HOME") == str(home) and \
                    proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def assert_finished(s: Session, *, status: str = "completed", timeout: float = 90) -> Any:
    """Every event observed exactly once, an agent summary, no process left."""
    conn = db(s.home)
    wait_for(lambda: (r := s.row()) is not None and r["status"] == status
             and r["worker_pid"] is None, timeout=timeout,
             message=f"the session to be {status} with its worker gone")
    wait_for(lambda: not our_processes(s.home), timeout=15,
             message="every worker and agent process to exit")
    events = conn.execute("SELECT status FROM events").fetchall()
    assert [e["status"] for e in events] == ["processed"] * s.events
    # The mock agent writes one observation per event it is shown, so any
    # replay that stored a batch twice would show here.
    n_obs = conn.execute("SELECT COUNT(*) FROM observations").fetchone()[0]
    assert n_obs == s.events
    summaries = conn.execute("SELECT kind, learned FROM summaries").fetchall()
    assert [m["kind"] for m in summaries] == ["agent"]
    return s.row()


def _env(mock: MockAnthropic, tmp: Path, **extra: str) -> dict[str, str]:
    env = api_env(mock, tmp)
    env.update(extra)
    return env


@pytest.fixture
def session(run_hook: HookRunner, memoir_home: Path, mock_api: MockAnthropic,
            tmp_path: Path) -> Session:
    return Session(run_hook, memoir_home, _env(mock_api, tmp_path))


def test_kill9_during_worker_startup_loses_nothing(session: Session) -> None:
    session.prompt()
    os.kill(session.worker_pid(), signal.SIGKILL)  # before it ever reached the agent
    for _ in range(3):
        session.tool()  # the first finds a dead worker and spawns a new one
    session.stop()
    session.end()
    assert_finished(session)


@pytest.fixture
def live_session(run_hook: HookRunner, memoir_home: Path, mock_api: MockAnthropic,
                 tmp_path: Path) -> Session:
    """A session whose worker observes each event as it comes (MEMOIR_CAPTURE=live)."""
    return Session(run_hook, memoir_home, _env(mock_api, tmp_path, MEMOIR_CAPTURE="live"))


def test_kill9_mid_stream_agent_dies_too_and_nothing_is_duplicated(
        live_session: Session, mock_api: MockAnthropic) -> None:
    session = live_session
    mock_api.agent_delay, mock_api.delay_on = 3.0, "MEMOIR-OBSERVE"
    session.prompt()
    for _ in range(3):
        session.tool()
    wait_for(lambda: any("MEMOIR-OBSERVE" in r.last_user_text()
                         for r in mock_api.messages_requests(agent=True)),
             timeout=30, message="an observation request in flight")
    agents = session.agent_pids()
    os.kill(session.worker_pid(), signal.SIGKILL)
    # The agent's Claude Code process dies with its worker, mid-request.
    wait_for(lambda: not any(is_alive(p, None) for p in agents), timeout=5,
             message="the agent CLI to die")
    mock_api.agent_delay = 0.0
    session.stop()  # finds the stale socket, spawns a worker that replays the batch
    session.end()
    assert_finished(session)


@pytest.mark.parametrize("stage", ["early batch", "final batch"])
def test_kill9_mid_batch_loses_nothing_and_still_ends_with_a_summary(
        run_hook: HookRunner, memoir_home: Path, mock_api: MockAnthropic, tmp_path: Path,
        stage: str) -> None:
    """Prompt capture: the worker is SIGKILLed while a batch request is in flight,
    either one a large open prompt sent early (MEMOIR_BATCH_CHARS) or the finished
    prompt's batch with its summary request. Its successor, spawned by the next
    hook, sends the same events again: each is observed exactly once and the prompt
    ends with the agent's summary."""
    s = Session(run_hook, memoir_home, _env(mock_api, tmp_path, MEMOIR_BATCH_CHARS="900"))
    marker = "MEMOIR-OBSERVE" if stage == "early batch" else "MEMOIR-SUMMARY-REQUEST"
    mock_api.agent_delay, mock_api.delay_on = 5.0, marker
    s.prompt()
    for _ in range(3):  # ~1,000 chars estimated: past the batch size
        s.tool()
    if stage == "final batch":
        s.stop()
    wait_for(lambda: any(marker in r.last_user_text()
                         for r in mock_api.messages_requests(agent=True)),
             timeout=60, message=f"the {stage} request in flight")
    agents = s.agent_pids()
    os.kill(s.worker_pid(), signal.SIGKILL)
    wait_for(lambda: not any(is_alive(p, None) for p in agents), timeout=5,
             message="the agent CLI to die")
    mock_api.agent_delay = 0.0
    assert db(s.home).execute("SELECT COUNT(*) FROM events WHERE status = 'processed'"
                              ).fetchone()[0] == 0  # nothing was stored for the lost batch
    s.tool()  # finds the stale socket and spawns a worker
    s.stop()
    s.end()
    assert_finished(s)
    # Every event's content reached the agent in some request.
    sent = "\n".join(r.last_user_text() for r in mock_api.messages_requests(agent=True))
    assert all(f"echo step {i}" in sent for i in range(1, s.events + 1))


def test_kill9_during_finalize_still_yields_summary(session: Session,
                                                   mock_api: MockAnthropic) -> None:
    mock_api.agent_delay, mock_api.delay_on = 3.0, "MEMOIR-SUMMARY-REQUEST"
    session.prompt()
    session.tool()
    session.tool()
    session.stop()
    wait_for(lambda: any("MEMOIR-SUMMARY-REQUEST" in r.last_user_text()
                         for r in mock_api.messages_requests(agent=True)),
             timeout=30, message="the summary request in flight")
    os.kill(session.worker_pid(), signal.SIGKILL)
    mock_api.agent_delay = 0.0
    session.end()  # no worker answers; work is left, so one is spawned to finish
    assert_finished(session)


def test_session_end_with_hung_worker_returns_in_budget(live_session: Session) -> None:
    session = live_session
    session.prompt()
    session.tool()
    wait_for(lambda: db(session.home).execute(
        "SELECT COUNT(*) FROM observations").fetchone()[0] == 1, timeout=30,
        message="the first event to be observed")
    hung = session.worker_pid()
    agents = session.agent_pids()
    os.kill(hung, signal.SIGSTOP)  # alive, holding its socket, answering nothing
    try:
        started = time.monotonic()
        session.tool()  # queued durably although nobody answers
        # One 0.25 s wait for the ack, then a reaper takes over: no retries.
        assert time.monotonic() - started < 1.0
        elapsed = session.end()
        # The hook waits 5 ms for an ack; the reaper does the rest in the background.
        # Claude Code gives SessionEnd 1.5 s; the bound leaves a loaded machine room.
        assert elapsed < 1.0, f"SessionEnd took {elapsed:.2f}s"
        wait_for(lambda: not is_alive(hung, None), timeout=10,
                 message="the hung worker to be ended by the reaper")
        wait_for(lambda: not any(is_alive(p, None) for p in agents), timeout=5,
                 message="the hung worker's agent to be ended with it")
        wait_for(lambda: session.row()["status"] == "failed", timeout=5,
                 message="the session to be marked failed")
        assert session.row()["end_reason"] == "worker-unresponsive"
    finally:
        if psutil.pid_exists(hung):
            os.kill(hung, signal.SIGKILL)
    # A fresh worker finished the pending work; the session keeps its mark.
    assert_finished(session, status="failed")


@pytest.mark.parametrize("failure", ["http-500", "connection-refused"])
def test_llm_down_gives_fallback_then_reprocess_replaces_it(
        run_hook: HookRunner, memoir_home: Path, mock_api: MockAnthropic, tmp_path: Path,
        failure: str) -> None:
    env = _env(mock_api, tmp_path)
    if failure == "http-500":
        mock_api.fail_agent = 500
    else:
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            env["ANTHROPIC_BASE_URL"] = f"http://127.0.0.1:{s.getsockname()[1]}"
    s = Session(run_hook, memoir_home, env)
    s.prompt("rename the config loader")
    s.tool()
    s.tool()
    s.stop()
    s.end()
    conn = db(memoir_home)
    wait_for(lambda: (r := s.row())["status"] == "completed" and r["worker_pid"] is None,
             timeout=120, message="the session to end with the LLM down")
    (fallback,) = conn.execute("SELECT * FROM summaries").fetchall()
    assert fallback["kind"] == "fallback"
    assert fallback["request"] == "rename the config loader"
    assert "echo step 1" in fallback["completed"] and "echo step 2" in fallback["completed"]
    # The summary says why the agent gave none.
    assert fallback["notes"].startswith(
        "Fallback summary built from raw events; the memory agent was unavailable: ")
    # The events are kept (parked after their attempts, or still pending).
    statuses = [e["status"] for e in conn.execute("SELECT status FROM events")]
    assert len(statuses) == 2 and "processed" not in statuses and "failed" in statuses
    # The next session already sees it, marked as a fallback.
    context = subprocess.run([*memoir_command(), "context", "--cwd", payload("stop")["cwd"]],
                             capture_output=True, text=True, timeout=30)
    assert "rename the config loader" in context.stdout and "fallback" in context.stdout

    # Reprocessing while the LLM is still down fails, and says why.
    done = subprocess.run([*memoir_command(), "reprocess", SID[:8], "--wait", "90"],
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 fallback" in done.stdout
    assert "left with a fallback summary: Fallback summary built from raw events; the memory " \
        "agent was unavailable: " in done.stdout, done.stdout
    wait_for(lambda: s.row()["worker_pid"] is None, timeout=30,
             message="the reprocessing worker to exit")

    # The LLM is back: reprocess observes the parked events and replaces the summary.
    mock_api.fail_agent = None
    done = subprocess.run([*memoir_command(), "reprocess", SID, "--wait", "90"],
                          env={**os.environ, **_env(mock_api, tmp_path)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 agent summary" in done.stdout
    s.events = 2
    row = assert_finished(s)
    assert row["reprocess_requested_at"] is None


def test_parent_watch_ends_worker_when_claude_code_is_gone(
        run_hook: HookRunner, memoir_home: Path, mock_api: MockAnthropic,
        tmp_path: Path) -> None:
    claude = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        s = Session(run_hook, memoir_home, _env(mock_api, tmp_path, CLAUDE_PID=str(claude.pid),
                                                MEMOIR_CAPTURE="live"))
        s.prompt()
        s.tool()
        s.worker_pid()
        wait_for(lambda: db(memoir_home).execute(
            "SELECT COUNT(*) FROM observations").fetchone()[0] == 1, timeout=30,
            message="the event to be observed")
    finally:
        claude.kill()  # Claude Code vanished without SessionEnd (kill -9, crash)
        claude.wait()
    gone = time.monotonic()
    row = assert_finished(s, timeout=15)
    assert time.monotonic() - gone < 15
    assert row["end_reason"] == "parent-gone"


def test_reused_pid_does_not_fool_the_parent_watch(memoir_home: Path) -> None:
    me = psutil.Process()
    assert is_alive(me.pid, me.create_time())
    assert not is_alive(me.pid, me.create_time() - 100)  # same pid, another process


def _workers_of(home: Path) -> set[int]:
    """Pids of live worker processes serving ``home`` (whatever state they are in)."""
    return {p.pid for p in our_processes(home)
            if "claude_memoir.worker" in " ".join(p.cmdline())}


def test_write_lock_held_mid_batch_ends_no_worker(session: Session,
                                                  mock_api: MockAnthropic) -> None:
    """Another process holds SQLite's write lock for 5 s while the worker is mid-batch.

    The worker's store calls wait on the lock (in their own thread), its
    socket keeps answering, so no hook hands it to a reaper: one worker pid
    for the session throughout, and every event is observed exactly once,
    including those hooks spooled while the database was locked.
    """
    from claude_memoir import ipc
    from claude_memoir.paths import socket_path

    # Live capture: events go to the agent as they come, so a batch is in
    # flight while the prompt goes on (prompt capture would hold them).
    session.env["MEMOIR_CAPTURE"] = "live"
    mock_api.agent_delay, mock_api.delay_on = 1.5, "MEMOIR-OBSERVE"
    session.prompt()
    for _ in range(3):
        session.tool()
    wait_for(lambda: any("MEMOIR-OBSERVE" in r.last_user_text()
                         for r in mock_api.messages_requests(agent=True)),
             timeout=30, message="an observation request in flight")
    pid = session.worker_pid()
    seen = _workers_of(session.home)
    holder = sqlite3.connect(session.home / "memoir.db", isolation_level=None, timeout=5)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, as a long transaction would hold it
    slow_pings = []
    try:
        locked_until = time.monotonic() + 5.0
        while time.monotonic() < locked_until:
            session.tool()  # waits 1.5 s on the lock, spools, wakes the worker
            started = time.monotonic()
            ack = ipc.request(socket_path(session.home, SID), {"type": "ping"}, timeout=2.0)
            if time.monotonic() - started > 0.25:  # what a hook waits before a reaper
                slow_pings.append(time.monotonic() - started)
            assert ack["state"]["pid"] == pid
            seen |= _workers_of(session.home)
        spooled = len(list((session.home / "spool").glob("*.json")))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert slow_pings == [], f"pings slower than a hook's wait: {slow_pings}"
    assert spooled >= 2, "the hooks did not meet the lock (nothing was spooled)"
    mock_api.agent_delay = 0.0
    session.stop()
    wait_for(lambda: session.row()["worker_pid"] == pid and not any(
        (session.home / "spool").glob("*.json")), timeout=30,
        message="the spooled payloads to be replayed by the same worker")
    seen |= _workers_of(session.home)
    assert seen == {pid}, f"workers seen while locked: {sorted(seen)} (expected only {pid})"
    log = (session.home / "logs" / "memoir.log").read_text()
    assert "ended pid" not in log and "ending unresponsive worker" not in log
    session.end()
    assert_finished(session)


def test_worker_recovers_when_a_hook_moves_a_damaged_database_aside(
        session: Session) -> None:
    """The file under a live worker is damaged; a hook quarantines it and starts afresh.

    The worker's connection still reads the damaged file: it must open the new
    one and go on (or, at worst, exit), never loop on the old one deaf to the
    session's end.
    """
    session.env["MEMOIR_CAPTURE"] = "live"
    session.prompt()
    session.tool()
    wait_for(lambda: db(session.home).execute(
        "SELECT COUNT(*) FROM observations").fetchone()[0] == 1, timeout=60,
        message="the first event to be observed")
    pid = session.worker_pid()
    path = session.home / "memoir.db"
    with open(path, "r+b") as fh:  # damage every page after the header page
        fh.seek(4096)
        fh.write(os.urandom(max(path.stat().st_size - 4096, 8192)))
    session.tool()  # the hook finds the damage, moves the file aside, records afresh
    assert list(session.home.glob("memoir.db.corrupt-*"))
    session.stop()
    session.end()
    wait_for(lambda: not is_alive(pid, None), timeout=60,
             message="the worker to finish (not to loop on the damaged file)")
    wait_for(lambda: not our_processes(session.home), timeout=30,
             message="every worker and agent process to exit")
    conn = db(session.home)
    statuses = [r[0] for r in conn.execute("SELECT status FROM events")]
    assert statuses == ["processed"], statuses  # the event recorded after the damage
    log = (session.home / "logs" / "memoir.log").read_text()
    assert "reopening it" in log
