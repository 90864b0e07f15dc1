"""check_health: healthy, or degraded with one sentence per reason naming the fix."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_memoir.agent.digest import NOTHING_TO_SUMMARIZE
from claude_memoir.agent.failures import classify
from claude_memoir.agent.models import Summary
from claude_memoir.config import load_settings
from claude_memoir.errors import AgentError
from claude_memoir.health import check_health
from claude_memoir.store import Store
from conftest import HookRunner, api_env, db, memoir_command, payload, session_hooks, wait_for
from mockapi import MockAnthropic

SID = "4ea17400-0000-4000-8000-000000000001"


@pytest.fixture
def store(memoir_home: Path) -> Iterator[Store]:
    s = Store.open(memoir_home)
    try:
        yield s
    finally:
        s.close()


def _session(store: Store) -> int:
    return store.upsert_session(SID, "/proj", "/proj").id


def test_fresh_store_is_healthy(store: Store) -> None:
    health = check_health(store, load_settings())
    assert health.level == "healthy" and health.reasons == []
    assert health.headline().startswith("healthy:")


def test_agent_failure_degrades_until_the_agent_works_again(store: Store) -> None:
    error = AgentError("agent turn failed: Not logged in · Please run /login",
                       reason="turn-error")
    store.record_failure("agent", classify(error), str(error), SID)
    health = check_health(store, load_settings())
    assert health.level == "degraded"
    assert health.headline() == "DEGRADED: the memory agent is not logged in"
    [reason] = health.reasons
    assert "Not logged in · Please run /login" in reason and "/login" in reason.split("fix:")[1]
    time.sleep(0.01)
    store.record_ok("agent")
    assert check_health(store, load_settings()).level == "healthy"


def test_connection_refused_names_the_endpoint_fix(store: Store) -> None:
    error = AgentError("agent turn failed: API Error: Connection refused — a firewall or "
                       "proxy may be blocking it (ECONNREFUSED)", reason="turn-error")
    store.record_failure("agent", classify(error), str(error), SID)
    [reason] = check_health(store, load_settings()).reasons
    assert reason.startswith("the memory agent's API endpoint refused the connection")
    assert "ANTHROPIC_BASE_URL" in reason


def test_recent_fallbacks_and_parked_events_are_reasons(store: Store,
                                                        memoir_home: Path) -> None:
    sid = _session(store)
    number = store.add_prompt(sid, "p")
    store.save_summary(sid, number, Summary(request="r"), "fallback")
    # A fallback because the agent had nothing to say is not trouble ...
    skipped = store.add_prompt(sid, "q")
    store.save_summary(sid, skipped, Summary(request="q", notes=NOTHING_TO_SUMMARIZE),
                       "fallback")
    # ... and one older than 7 days no longer counts.
    old = store.add_prompt(sid, "o")
    store.save_summary(sid, old, Summary(request="o"), "fallback")
    conn = db(memoir_home)
    with conn:
        conn.execute("UPDATE summaries SET created_at = '2020-01-01T00:00:00.000Z'"
                     " WHERE prompt_number = ?", (old,))
    event = store.add_event(sid, number, "Bash", {"command": "ls"}, {"stdout": ""})
    store.note_attempt([event], park_after=1)
    health = check_health(store, load_settings())
    assert health.level == "degraded"
    assert health.problems == ["1 fallback summary in the last 7 days",
                               "1 tool event(s) parked after repeated agent failures"]
    assert all("memoir reprocess SESSION" in r for r in health.reasons)
    assert health.headline() == "DEGRADED: 1 fallback summary in the last 7 days (+1 more, " \
                                "see below)"


def test_worker_without_its_dependencies_records_why(memoir_home: Path, store: Store,
                                                     tmp_path: Path) -> None:
    """A Python without psutil: the worker exits, and status says why instead of a log line."""
    _session(store)
    # A package dir that shadows psutil with one that cannot be imported.
    shadow = tmp_path / "shadow"
    (shadow / "psutil").mkdir(parents=True)
    (shadow / "psutil" / "__init__.py").write_text("raise ImportError('No module named psutil')")
    src = Path(__file__).resolve().parents[1] / "src"
    done = subprocess.run(
        [sys.executable, "-m", "claude_memoir.worker", "--session", SID],
        env={**os.environ, "PYTHONPATH": f"{shadow}:{src}"}, capture_output=True, text=True,
        timeout=30)
    assert done.returncode == 1
    health = check_health(store, load_settings())
    assert health.problems == ["workers cannot import their dependencies"]
    assert "No module named psutil" in health.reasons[0]
    assert sys.executable in health.reasons[0]
    assert "pip install claude-agent-sdk psutil" in health.reasons[0]


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_llm_outage_is_reported_then_cleared_by_reprocess(
        run_hook: HookRunner, memoir_home: Path, mock_api: MockAnthropic,
        tmp_path: Path) -> None:
    """Real hooks, worker, SDK and CLI; the agent's endpoint refuses connections."""
    env = api_env(mock_api, tmp_path)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        env["ANTHROPIC_BASE_URL"] = f"http://127.0.0.1:{s.getsockname()[1]}"

    hook = session_hooks(run_hook, SID, env)
    hook("user-prompt-submit", dict(payload("user_prompt_submit"), prompt="rename the loader"))
    hook("post-tool-use", dict(payload("post_tool_use_bash"), tool_use_id="toolu_health001"))
    hook("stop", payload("stop"))
    hook("session-end", payload("session_end_other"))
    conn = db(memoir_home)
    wait_for(lambda: (r := conn.execute("SELECT status, worker_pid FROM sessions").fetchone())
             and r["status"] == "completed" and r["worker_pid"] is None,
             timeout=150, message="the session to end with the LLM down")

    status = subprocess.run([*memoir_command(), "status"], capture_output=True, text=True,
                            timeout=30)
    assert status.returncode == 0, status.stderr
    first = status.stdout.splitlines()[0]
    assert first.startswith("DEGRADED: the memory agent's API endpoint refused the connection")
    assert "ECONNREFUSED" in status.stdout and "1 fallback summary" in status.stdout
    doctor = subprocess.run([*memoir_command(), "doctor"], capture_output=True, text=True,
                            timeout=120)
    assert doctor.returncode == 1, doctor.stdout
    assert "[FAIL] health: the memory agent's API endpoint refused the connection" \
        in doctor.stdout

    # The endpoint is back: reprocess redoes the work and memory is healthy again.
    done = subprocess.run([*memoir_command(), "reprocess", SID, "--wait", "90"],
                          env={**os.environ, **api_env(mock_api, tmp_path)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    status = subprocess.run([*memoir_command(), "status"], capture_output=True, text=True,
                            timeout=30)
    assert status.stdout.splitlines()[0].startswith("healthy:"), status.stdout
