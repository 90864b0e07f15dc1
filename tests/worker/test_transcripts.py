"""The memory agent leaves nothing in the user's Claude Code session lists (issue 11, item 6).

Real hooks, a real worker, the real Agent SDK and its bundled Claude Code CLI,
the mock API: the CLI writes its transcript under ``~/.claude/projects`` (the
test's HOME) while the conversation may be resumed, and it is gone once the
session is over.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from claude_memoir.agent.transcripts import prune_transcripts, transcript_dir
from conftest import HookRunner, api_env, db, memoir_command, payload, wait_for
from mockapi import MockAnthropic

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SID = "7a57c0de-0000-4000-8000-000000000001"


def _hook(run_hook: HookRunner, env: dict[str, str], event: str, name: str,
          **fields: object) -> None:
    done = run_hook(event, {**payload(name), "session_id": SID, **fields}, env=env)
    assert done.returncode == 0


def _row(home: Path) -> object:
    return db(home).execute("SELECT * FROM sessions WHERE claude_session_id = ?",
                            (SID,)).fetchone()


def test_agent_transcript_lives_while_needed_and_goes_with_the_session(
        run_hook: HookRunner, memoir_home: Path, mock_api: MockAnthropic,
        tmp_path: Path) -> None:
    # Live capture: the agent answers the event while the prompt goes on (prompt
    # capture would hold it until Stop, and the test waits for that reply first).
    env = {**api_env(mock_api, tmp_path), "MEMOIR_CAPTURE": "live"}
    projects = Path(os.environ["HOME"]) / ".claude" / "projects"
    _hook(run_hook, env, "user-prompt-submit", "user_prompt_submit", prompt="tidy the parser")
    _hook(run_hook, env, "post-tool-use", "post_tool_use_bash", tool_use_id="toolu_t1")
    # The agent observed the event: its conversation has an id to resume by,
    # and Claude Code keeps its transcript where this module says.
    agent_session = wait_for(lambda: _row(memoir_home)["agent_session_id"], timeout=90,
                             message="the agent's first reply")
    directory = transcript_dir(memoir_home)
    assert directory is not None and directory.parent == projects
    transcript = directory / f"{agent_session}.jsonl"
    wait_for(transcript.exists, timeout=10, message=f"the agent's transcript {transcript}")

    _hook(run_hook, env, "stop", "stop")
    _hook(run_hook, env, "session-end", "session_end_other")
    wait_for(lambda: (r := _row(memoir_home))["status"] == "completed"
             and r["worker_pid"] is None, timeout=90, message="the session to finish")
    kinds = [r[0] for r in db(memoir_home).execute("SELECT kind FROM summaries")]
    assert kinds == ["agent"]
    # Nothing of the agent is left among the session lists, and the session
    # no longer points at a conversation that is gone.
    assert not transcript.exists()
    assert not directory.exists(), sorted(directory.rglob("*"))
    left = sorted(p.relative_to(projects) for p in projects.rglob("*.jsonl")) \
        if projects.exists() else []
    assert left == []
    assert _row(memoir_home)["agent_session_id"] is None


def test_orphaned_transcripts_are_swept_but_live_ones_kept(memoir_home: Path) -> None:
    """A worker killed before it finished leaves a transcript: the sweep removes it."""
    from claude_memoir.store import Store

    directory = transcript_dir(memoir_home)
    assert directory is not None
    directory.mkdir(parents=True)
    orphan, live, fresh = (directory / f"{n}.jsonl" for n in (
        "0rphan00-0000-4000-8000-000000000001", "11ve0000-0000-4000-8000-000000000002",
        "fre5h000-0000-4000-8000-000000000003"))
    for path in (orphan, live, fresh):
        path.write_text("{}\n")
    old = time.time() - 3600
    for path in (orphan, live):
        os.utime(path, (old, old))
    (directory / orphan.stem).mkdir()  # its subagent folder goes too
    with Store.open(memoir_home) as store:
        s = store.upsert_session(SID, "/p", "/p")
        store.set_agent_session(s.id, live.stem)  # a live session may resume it
        ended = store.upsert_session("ended-session", "/p", "/p")
        store.set_agent_session(ended.id, orphan.stem)
        store.request_end(ended.id, "clear")  # over: its transcript has no use left
    with Store.open(memoir_home) as store:
        assert store.resumable_agent_sessions() == [live.stem]
    assert prune_transcripts(memoir_home, [live.stem]) == [orphan.stem]
    assert not orphan.exists() and not (directory / orphan.stem).exists()
    assert live.exists() and fresh.exists()  # fresh: a conversation just starting

    # `memoir cleanup-sessions` runs the same sweep and says so.
    os.utime(fresh, (old, old))
    done = subprocess.run([*memoir_command(), "cleanup-sessions"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "memory agent transcripts removed: 1" in done.stdout
    assert live.exists() and not fresh.exists()
