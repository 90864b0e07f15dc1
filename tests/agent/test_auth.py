"""The memory agent authenticates the way the user's Claude Code does.

Unit tests for what ``agent_settings`` passes to the agent's CLI, and an end to
end test with the real SDK, the bundled CLI and the mock API in which the only
credential is an ``apiKeyHelper`` in the temporary HOME's settings.json.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from claude_memoir.agent.auth import agent_settings, find_credential
from conftest import HookRunner, api_env, db, payload, session_hooks, wait_for
from mockapi import MockAnthropic

SID = "a07a07a0-0000-4000-8000-000000000011"


def _write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_api_key_helper_from_user_settings_is_passed_with_hooks_disabled(
        memoir_home: Path) -> None:
    _write(Path.home() / ".claude" / "settings.json", {
        "apiKeyHelper": "/opt/get-key.sh",
        "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "evil"}]}]},
        "permissions": {"allow": ["Bash"]},
        "env": {"ANTHROPIC_BASE_URL": "https://gw.example", "EDITOR": "vim"},
    })
    settings = agent_settings(None)
    # Credentials only: never the user's hooks, permissions or unrelated env.
    assert settings == {"disableAllHooks": True, "apiKeyHelper": "/opt/get-key.sh",
                        "env": {"ANTHROPIC_BASE_URL": "https://gw.example"}}


def test_project_local_settings_override_user_settings(memoir_home: Path,
                                                       tmp_path: Path) -> None:
    _write(Path.home() / ".claude" / "settings.json", {"apiKeyHelper": "user-helper"})
    project = tmp_path / "project"
    _write(project / ".claude" / "settings.json", {"apiKeyHelper": "project-helper"})
    assert agent_settings(project)["apiKeyHelper"] == "project-helper"
    _write(project / ".claude" / "settings.local.json", {"apiKeyHelper": "local-helper"})
    assert agent_settings(project)["apiKeyHelper"] == "local-helper"
    assert agent_settings(None)["apiKeyHelper"] == "user-helper"


def test_claude_config_dir_is_honoured(memoir_home: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "other-claude"
    _write(config / "settings.json", {"apiKeyHelper": "cfg-helper"})
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    assert agent_settings(None)["apiKeyHelper"] == "cfg-helper"


def test_unreadable_or_odd_settings_leave_only_the_hook_switch(memoir_home: Path) -> None:
    path = Path.home() / ".claude" / "settings.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert agent_settings(None) == {"disableAllHooks": True}
    _write(path, ["a", "list"])
    assert agent_settings(None) == {"disableAllHooks": True}
    _write(path, {"apiKeyHelper": 42, "env": "nope"})
    assert agent_settings(None) == {"disableAllHooks": True}


def test_find_credential_in_claude_codes_order(memoir_home: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    assert find_credential().kind == "none"
    login = _write(Path.home() / ".claude" / ".credentials.json", {"claudeAiOauth": {}})
    assert find_credential().kind == "login"
    _write(Path.home() / ".claude" / "settings.json", {"apiKeyHelper": "x"})
    assert find_credential().kind == "api-key-helper"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    assert find_credential().source == "ANTHROPIC_API_KEY"
    login.unlink()


@pytest.mark.e2e
@pytest.mark.timeout(180)
@pytest.mark.parametrize("credential", ["api-key-helper", "claude-login"])
def test_agent_authenticates_like_the_users_claude_code(
        run_hook: HookRunner, memoir_home: Path, mock_api: MockAnthropic, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, credential: str) -> None:
    """No API key anywhere in the environment: only a helper in ~/.claude/settings.json,
    or only a Claude login (subscription) in ~/.claude/.credentials.json."""
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    if credential == "api-key-helper":
        helper = tmp_path / "get-key.sh"
        helper.write_text("#!/bin/sh\necho helper-key-from-settings\n")
        helper.chmod(stat.S_IRWXU)
        _write(Path.home() / ".claude" / "settings.json", {"apiKeyHelper": str(helper)})
        header, expected = "x-api-key", "helper-key-from-settings"
    else:
        # The shape Claude Code writes on Linux after /login (the token is fake).
        _write(Path.home() / ".claude" / ".credentials.json", {"claudeAiOauth": {
            "accessToken": "sk-ant-oat01-test-login", "refreshToken": "r",
            "expiresAt": int(time.time() * 1000) + 86_400_000,
            "scopes": ["user:inference", "user:profile"], "subscriptionType": "pro"}})
        header, expected = "authorization", "Bearer sk-ant-oat01-test-login"
    env = api_env(mock_api, tmp_path)
    del env["ANTHROPIC_API_KEY"]
    assert "ANTHROPIC_API_KEY" not in {**os.environ, **env}
    mock_api.summary_marker = "AUTH-SUMMARY"

    hook = session_hooks(run_hook, SID, env)
    hook("user-prompt-submit", dict(payload("user_prompt_submit"), prompt="tidy the parser"))
    hook("post-tool-use", dict(payload("post_tool_use_bash"), tool_use_id="toolu_auth0001"))
    hook("stop", payload("stop"))
    hook("session-end", payload("session_end_other"))

    conn = db(memoir_home)
    summary = wait_for(lambda: conn.execute("SELECT * FROM summaries").fetchone(),
                       timeout=120, message="the prompt's summary")
    assert summary["kind"] == "agent", "the agent could not authenticate: fallback summary"
    assert summary["learned"] == "AUTH-SUMMARY"
    agent_requests = mock_api.messages_requests(agent=True)
    assert agent_requests
    # Every request of the agent carried the user's credential.
    assert {r.headers.get(header) for r in agent_requests} == {expected}
    assert conn.execute("SELECT COUNT(*) FROM observations").fetchone()[0] >= 1
