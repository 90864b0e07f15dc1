"""End to end: the real Claude Code CLI, hooks from ``memoir install``, the mock API.

Session 1 runs a Bash tool and ends; the worker's agent (real Agent SDK, real
bundled CLI, same mock) writes a summary that is stored; session 2's first
request to the "LLM" carries that summary. Nothing here reaches the internet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import api_env, db, memoir_command, run_claude, wait_for
from mockapi import MockAnthropic

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def _env(mock: MockAnthropic, tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(api_env(mock, tmp))
    # Running as root, Claude Code refuses its bypass modes unless sandboxed.
    env["IS_SANDBOX"] = "1"
    return env


def _install(env: dict[str, str]) -> Path:
    done = subprocess.run([*memoir_command(), "install"], env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    settings = Path(env["HOME"]) / ".claude" / "settings.json"
    assert settings.exists()
    return settings


def _add_canary(settings: Path, log: Path) -> None:
    """A user's own hook on SessionStart/UserPromptSubmit that logs every payload."""
    data = json.loads(settings.read_text())
    for event in ("SessionStart", "UserPromptSubmit"):
        data["hooks"][event].append({"hooks": [{
            "type": "command", "command": f"cat >> {log}; echo >> {log}"}]})
    settings.write_text(json.dumps(data, indent=2))


def test_session_summary_reaches_next_session(mock_api: MockAnthropic, tmp_path: Path,
                                              memoir_home: Path) -> None:
    marker = f"LEARNED-{uuid.uuid4().hex[:12]}"
    mock_api.summary_marker = marker
    env = _env(mock_api, tmp_path)
    _install(env)
    project = tmp_path / "project"
    project.mkdir()

    first = run_claude("create test.txt with hello in it", project, env)
    assert first.returncode == 0, first.stderr
    assert "MOCK_FINAL_REPLY" in first.stdout
    assert (project / "test.txt").read_text().strip() == "hello"  # the tool really ran

    conn = db(memoir_home)
    session = wait_for(
        lambda: conn.execute("SELECT * FROM sessions WHERE status = 'completed'").fetchone(),
        timeout=90, message="session 1 to be completed by its worker")
    summaries = conn.execute("SELECT * FROM summaries WHERE session_id = ?",
                             (session["id"],)).fetchall()
    assert len(summaries) == 1
    assert summaries[0]["kind"] == "agent"
    assert summaries[0]["learned"] == marker
    assert summaries[0]["request"]  # the agent saw the user's request
    events = conn.execute("SELECT * FROM events WHERE session_id = ?", (session["id"],)).fetchall()
    assert [e["tool_name"] for e in events] == ["Bash"]
    assert all(e["status"] == "processed" for e in events)
    assert conn.execute("SELECT COUNT(*) FROM observations").fetchone()[0] >= 1
    assert session["project"] == os.path.realpath(project)

    # The worker finished and cleaned up after itself.
    wait_for(lambda: conn.execute("SELECT worker_pid FROM sessions WHERE id = ?",
                                  (session["id"],)).fetchone()[0] is None,
             timeout=30, message="the worker to exit")
    assert not list((memoir_home / "run").glob("*.sock"))
    assert not list((memoir_home / "run").glob("*.pid"))
    assert not list((memoir_home / "run").glob("*.lock"))
    # The user's session is in Claude Code's session lists; the memory agent's is not.
    projects = Path(env["HOME"]) / ".claude" / "projects"
    listed = [p.parent.name for p in projects.rglob("*.jsonl")]
    assert listed and all("memoir-home-agent" not in name for name in listed), listed
    assert conn.execute("SELECT agent_session_id FROM sessions WHERE id = ?",
                        (session["id"],)).fetchone()[0] is None

    # The agent was really driven through the SDK, with no tool definitions.
    agent_requests = mock_api.messages_requests(agent=True)
    assert agent_requests, "the memory agent never called the API"
    assert all(not r.body.get("tools") for r in agent_requests)
    assert any("MEMOIR-SUMMARY-REQUEST" in r.last_user_text() for r in agent_requests)

    # Session 2: its first request to the model carries session 1's summary.
    seen = len(mock_api.messages_requests(agent=False))
    second = run_claude("what did we do last time?", project, env)
    assert second.returncode == 0, second.stderr
    cli_requests = mock_api.messages_requests(agent=False)[seen:]
    assert cli_requests, "session 2 made no request"
    first_request = cli_requests[0]
    assert marker in first_request.text()
    assert "claude-memoir" in first_request.text()

    # `memoir context` prints the same text the hook injected.
    printed = subprocess.run([*memoir_command(), "context", "--cwd", str(project)], env=env,
                             capture_output=True, text=True, timeout=30)
    assert marker in printed.stdout

    # And `memoir sessions --json` reports both sessions with their counts.
    wait_for(lambda: conn.execute(
        "SELECT COUNT(*) FROM sessions WHERE status = 'completed'").fetchone()[0] == 2,
        timeout=90, message="session 2 to be completed")
    listed = subprocess.run([*memoir_command(), "sessions", "--json"], env=env,
                            capture_output=True, text=True, timeout=30)
    rows = json.loads(listed.stdout)
    assert len(rows) == 2
    older = [r for r in rows if r["session_id"] == session["claude_session_id"]][0]
    assert older["status"] == "completed"
    assert (older["prompt_count"], older["event_count"], older["pending_event_count"],
            older["summary_count"]) == (1, 1, 0, 1)


def test_agent_process_does_not_fire_user_hooks(mock_api: MockAnthropic, tmp_path: Path,
                                                memoir_home: Path) -> None:
    env = _env(mock_api, tmp_path)
    settings = _install(env)
    canary = tmp_path / "canary.jsonl"
    _add_canary(settings, canary)
    project = tmp_path / "project"
    project.mkdir()

    done = run_claude("create test.txt with hello in it", project, env)
    assert done.returncode == 0, done.stderr

    conn = db(memoir_home)
    session = wait_for(
        lambda: conn.execute("SELECT * FROM sessions WHERE status = 'completed'").fetchone(),
        timeout=90, message="the session to be completed")
    assert mock_api.messages_requests(agent=True), "the agent did not run"

    # The user's canary hook fired for the user's session (so it works) ...
    fired = [json.loads(line) for line in canary.read_text().splitlines() if line.strip()]
    assert {p["hook_event_name"] for p in fired} == {"SessionStart", "UserPromptSubmit"}
    # ... and only for it: never for the agent's own Claude Code process.
    assert {p["session_id"] for p in fired} == {session["claude_session_id"]}
    # Nor did the agent's process reach our hooks: one session recorded, one prompt.
    assert conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 1
    assert conn.execute("SELECT COUNT(*) FROM prompts").fetchone()[0] == 1
    # The user's session is listed in Claude Code's projects; the agent's, whose
    # cwd is under MEMOIR_HOME, is removed once the session is over. Claude Code
    # names a transcript folder after the cwd with '/' -> '-'.
    wait_for(lambda: conn.execute("SELECT worker_pid FROM sessions").fetchone()[0] is None,
             timeout=30, message="the worker to exit")
    projects = Path(env["HOME"]) / ".claude" / "projects"
    dirs = sorted(p.name for p in projects.iterdir())
    assert dirs == [str(project).replace("/", "-").replace("_", "-")]


REPO = Path(__file__).resolve().parents[1]


def test_plugin_form_records_and_recalls(mock_api: MockAnthropic, tmp_path: Path,
                                         memoir_home: Path) -> None:
    """`claude --plugin-dir <repo>` alone, without `memoir install`, is remembered."""
    marker = f"PLUGIN-{uuid.uuid4().hex[:12]}"
    mock_api.summary_marker = marker
    env = _env(mock_api, tmp_path)
    env["MEMOIR_PYTHON"] = sys.executable
    project = tmp_path / "project"
    project.mkdir()

    assert run_claude("create test.txt", project, env, plugin_dir=REPO).returncode == 0
    conn = db(memoir_home)
    wait_for(lambda: conn.execute(
        "SELECT COUNT(*) FROM summaries WHERE learned = ?", (marker,)).fetchone()[0] == 1,
        timeout=90, message="the plugin-recorded session's summary")
    seen = len(mock_api.messages_requests(agent=False))
    assert run_claude("and now?", project, env, plugin_dir=REPO).returncode == 0
    assert marker in mock_api.messages_requests(agent=False)[seen].text()
