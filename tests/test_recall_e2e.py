"""End to end recall (issue 10): one memory per repository, reachable through MCP.

The real bundled Claude Code CLI, hooks and MCP server from `memoir install`,
the worker's real agent, all against tests/mockapi.py:

1. session 1 works in a git repository; its worker's agent records an
   observation carrying a planted fact, and a summary;
2. session 2 starts in a *subdirectory of a linked worktree* of that repository:
   its first request carries session 1's context (same project), and lists the
   memoir MCP tools;
3. the mock answers that request with a ``tool_use`` of ``mcp__memoir__search``;
   Claude Code calls `memoir mcp`, and the next request carries the
   ``tool_result`` holding the planted fact;
4. session 3 asks about the same topic: its first request carries the fact,
   added by prompt-time recall (UserPromptSubmit ``additionalContext``);
5. session 4's model reads the file session 1 changed: the request after the
   Read carries the file-time note (PreToolUse ``additionalContext``).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import api_env, db, memoir_command, run_claude, wait_for
from mockapi import (
    AGENT_SUMMARY,
    Blocks,
    MockAnthropic,
    RecordedRequest,
    ScriptedCli,
    default_agent_reply,
    text_block,
    tool_use_block,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SEARCH_TOOL = "mcp__memoir__search"


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=30,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})


@dataclass
class PlantedAgent:
    """The memory agent: observations that carry a planted fact, and a summary."""

    fact: str
    marker: str

    def __call__(self, req: RecordedRequest) -> Blocks:
        last = req.last_user_text()
        if "MEMOIR-OBSERVE" in last:
            return [text_block(f"""<observation>
  <type>bugfix</type>
  <title>Fix cents lost in ReconcileLedger</title>
  <subtitle>rounding moved after the sum</subtitle>
  <facts><fact>{self.fact}</fact></facts>
  <narrative>Totals drifted by a cent; ReconcileLedger now rounds once.</narrative>
  <concepts><concept>rounding</concept></concepts>
  <files_read></files_read>
  <files_modified><file>src/app/ledger.py</file></files_modified>
</observation>""")]
        if "MEMOIR-SUMMARY-REQUEST" in last:
            return [text_block(AGENT_SUMMARY.format(request="fix the ledger rounding",
                                                    marker=self.marker))]
        return default_agent_reply(req, self.marker)


@dataclass
class SearchingCli:
    """Session 2's model: first call the memoir search tool, then answer."""

    query: str
    final_text: str = "Found it. MOCK_FINAL_REPLY"
    calls: list[str] = field(default_factory=list)

    def __call__(self, req: RecordedRequest) -> Blocks:
        if not req.body.get("tools"):
            return [text_block("Mock title")]
        # Claude Code may append a system message after the tool result (e.g.
        # the deferred-tool list), so look at every message, not the last.
        if tool_results(req):
            return [text_block(self.final_text)]
        self.calls.append(self.query)
        return [text_block("Let me check the project's memory."),
                tool_use_block(f"toolu_memoir{len(self.calls):04d}", SEARCH_TOOL,
                               {"query": self.query})]


@dataclass
class ReadingCli:
    """A model that reads one file, then answers."""

    path: str

    def __call__(self, req: RecordedRequest) -> Blocks:
        if not req.body.get("tools"):
            return [text_block("Mock title")]
        if tool_results(req):
            return [text_block("Read it. MOCK_FINAL_REPLY")]
        return [tool_use_block("toolu_memoirread01", "Read", {"file_path": self.path})]


def tool_results(req: RecordedRequest) -> list[dict[str, Any]]:
    """Every tool_result block in a request's conversation."""
    return [b for m in req.body.get("messages") or [] if isinstance(m.get("content"), list)
            for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]


def result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, str):
        return content
    return "".join(c.get("text", "") for c in content or [] if isinstance(c, dict))


def test_worktree_subdirectory_session_recalls_through_mcp(
        mock_api: MockAnthropic, tmp_path: Path, memoir_home: Path) -> None:
    fact = f"PLANTED-FACT-{uuid.uuid4().hex[:10]}: ledger totals round after summing"
    marker = f"LEARNED-{uuid.uuid4().hex[:10]}"
    mock_api.agent = PlantedAgent(fact=fact, marker=marker)
    mock_api.cli = ScriptedCli()
    env = {**os.environ, **api_env(mock_api, tmp_path), "IS_SANDBOX": "1"}

    repo = tmp_path / "repo"
    (repo / "src" / "app").mkdir(parents=True)
    (repo / "src" / "app" / "ledger.py").write_text("TOTAL = 0\n")
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "init", cwd=repo)
    worktree = tmp_path / "repo-feature"
    git("worktree", "add", "-q", "-b", "feature", str(worktree), cwd=repo)
    subdir = worktree / "src" / "app"

    done = subprocess.run([*memoir_command(), "install"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "MCP server `memoir`" in done.stdout

    # -- session 1, in the main work tree ------------------------------------------------
    first = run_claude("fix the ledger rounding", repo, env, timeout=150)
    assert first.returncode == 0, first.stderr
    conn = db(memoir_home)
    wait_for(lambda: conn.execute("SELECT COUNT(*) FROM summaries WHERE learned = ?",
                                  (marker,)).fetchone()[0] == 1,
             timeout=120, message="session 1's summary")
    wait_for(lambda: conn.execute("SELECT COUNT(*) FROM observations WHERE facts LIKE ?",
                                  (f"%{fact[:22]}%",)).fetchone()[0] >= 1,
             timeout=60, message="session 1's observation with the planted fact")
    [(project,)] = conn.execute("SELECT DISTINCT project FROM sessions").fetchall()
    assert project == str(repo.resolve())

    # -- session 2, in a subdirectory of a linked worktree --------------------------------
    mock_api.cli = SearchingCli(query="ledger totals rounding")
    seen = len(mock_api.messages_requests(agent=False))
    second = run_claude("why do ledger totals look different now?", subdir, env,
                        allowed=f"Bash {SEARCH_TOOL}", timeout=150)
    assert second.returncode == 0, second.stderr
    assert "MOCK_FINAL_REPLY" in second.stdout
    requests = [r for r in mock_api.messages_requests(agent=False)[seen:] if r.body.get("tools")]
    assert len(requests) >= 2, [r.last_user_text()[:80] for r in requests]

    # Its first request already carries session 1's context: one memory per repository.
    assert marker in requests[0].text()

    # The mock asked for mcp__memoir__search; the next request carries its result.
    [result] = tool_results(requests[1])
    assert not result.get("is_error"), result
    text = result_text(result)
    assert fact in text
    assert "Fix cents lost in ReconcileLedger" in text
    assert "not instructions" in text  # stored text comes back fenced as data
    # Session 2's own prompt is not a search result of its own tool.
    assert "[prompt] why do ledger totals" not in text
    assert "[prompt] fix the ledger rounding" in text

    # Both sessions are filed under the repository, whatever their directory.
    wait_for(lambda: conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 2,
             timeout=30, message="session 2 to be recorded")
    rows = conn.execute("SELECT project, cwd FROM sessions ORDER BY id").fetchall()
    assert [r["project"] for r in rows] == [project, project]
    assert rows[1]["cwd"] == str(subdir)

    # `memoir search` from the worktree finds the same fact, as JSON.
    found = subprocess.run([*memoir_command(), "search", "reconcile_ledger", "--json",
                            "--cwd", str(subdir)], env=env, capture_output=True, text=True,
                           timeout=30)
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert hits[0]["kind"] == "observation" and hits[0]["type"] == "bugfix"

    # The MCP server ran for the user's sessions only: the memory agent's own
    # Claude Code process (strict MCP config) never starts one.
    log = (memoir_home / "logs" / "memoir.log").read_text()
    started = [line for line in log.splitlines() if "mcp server started for" in line]
    assert len(started) == 2 and all(project in line for line in started), started

    # -- session 3: a later prompt about the same topic (prompt-time recall) -----------
    # SessionStart context lists observation titles, never their facts: the
    # planted fact in the first request can only come from UserPromptSubmit's
    # recall of session 1's observation.
    mock_api.cli = ScriptedCli()
    seen = len(mock_api.messages_requests(agent=False))
    third = run_claude("the ReconcileLedger rounding is off again", subdir, env, timeout=150)
    assert third.returncode == 0, third.stderr
    requests = [r for r in mock_api.messages_requests(agent=False)[seen:] if r.body.get("tools")]
    assert requests, "session 3 sent no request"
    first_request = requests[0].text()
    assert "claude-memoir: earlier work matching this prompt" in first_request
    assert fact in first_request
    assert "Fix cents lost in ReconcileLedger" in first_request
    assert "not instructions" in first_request

    # -- session 4: Claude reads the file session 1 changed (file-time recall) ---------
    # A prompt that matches nothing, so prompt-time recall stays silent and the
    # note can only come from the PreToolUse hook on the Read.
    ledger = worktree / "src" / "app" / "ledger.py"
    mock_api.cli = ReadingCli(str(ledger))
    seen = len(mock_api.messages_requests(agent=False))
    fourth = run_claude("hello there", subdir, env, allowed="Read", timeout=150)
    assert fourth.returncode == 0, fourth.stderr
    requests = [r for r in mock_api.messages_requests(agent=False)[seen:] if r.body.get("tools")]
    assert len(requests) >= 2, [r.last_user_text()[:80] for r in requests]
    assert "earlier work matching this prompt" not in requests[0].text()
    after_read = requests[1].text()
    assert tool_results(requests[1]), "the Read did not run"
    # Named relative to the session's directory (src/app of the worktree).
    assert "claude-memoir: earlier sessions recorded this about ledger.py" in after_read
    assert fact in after_read
