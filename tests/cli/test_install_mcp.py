"""`memoir install` registers the MCP server where Claude Code reads it; uninstall removes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from claude_memoir.cli.install import (
    MCP_SERVER_NAME,
    install_mcp,
    mcp_config_path,
    mcp_server_entry,
    uninstall_mcp,
)
from claude_memoir.errors import InstallError
from conftest import bundled_claude, memoir_command

# What ~/.claude.json looks like after Claude Code has run: its own state, a
# project entry and a server the user added themselves.
CLAUDE_JSON: dict[str, Any] = {
    "numStartups": 42,
    "userID": "abc",
    "projects": {"/home/u/app": {"allowedTools": [], "mcpServers": {}}},
    "mcpServers": {"github": {"type": "stdio", "command": "npx", "args": ["gh-mcp"],
                              "env": {"TOKEN": "x"}}},
    "tipsHistory": {"a": 1},
}


@pytest.fixture
def claude_json(tmp_path: Path) -> Path:
    path = tmp_path / ".claude.json"
    path.write_text(json.dumps(CLAUDE_JSON, indent=2))
    os.chmod(path, 0o600)
    return path


def test_install_adds_our_server_and_keeps_everything_else(claude_json: Path) -> None:
    result = install_mcp(claude_json)
    assert result.changed and result.added == [MCP_SERVER_NAME]
    data = json.loads(claude_json.read_text())
    ours = data["mcpServers"].pop(MCP_SERVER_NAME)
    assert data == CLAUDE_JSON
    assert ours == {"type": "stdio", "command": os.path.abspath(sys.executable),
                    "args": ["-m", "claude_memoir.cli.main", "mcp"], "env": {}}
    assert oct(claude_json.stat().st_mode & 0o777) == "0o600"
    assert json.loads(Path(str(claude_json) + ".memoir-backup").read_text()) == CLAUDE_JSON
    before = claude_json.read_bytes()
    assert not install_mcp(claude_json).changed
    assert claude_json.read_bytes() == before


def test_uninstall_removes_only_ours(claude_json: Path) -> None:
    install_mcp(claude_json)
    result = uninstall_mcp(claude_json)
    assert result.changed and result.removed == [MCP_SERVER_NAME]
    assert json.loads(claude_json.read_text()) == CLAUDE_JSON
    assert not uninstall_mcp(claude_json).changed
    assert not uninstall_mcp(claude_json.parent / "missing.json").changed


def test_reinstall_with_another_interpreter_replaces_ours(claude_json: Path) -> None:
    install_mcp(claude_json, python="/old/venv/bin/python")
    install_mcp(claude_json)
    servers = json.loads(claude_json.read_text())["mcpServers"]
    assert servers[MCP_SERVER_NAME] == mcp_server_entry()


def test_a_foreign_server_named_memoir_is_never_replaced(claude_json: Path) -> None:
    data = {**CLAUDE_JSON, "mcpServers": {MCP_SERVER_NAME: {"command": "my-notes-server"}}}
    claude_json.write_text(json.dumps(data))
    before = claude_json.read_bytes()
    with pytest.raises(InstallError, match="not claude-memoir's"):
        install_mcp(claude_json)
    assert not uninstall_mcp(claude_json).changed
    assert claude_json.read_bytes() == before


@pytest.mark.parametrize("content", ["{not json", "[]", '{"mcpServers": []}'])
def test_malformed_file_is_left_unchanged(tmp_path: Path, content: str) -> None:
    path = tmp_path / ".claude.json"
    path.write_text(content)
    with pytest.raises(InstallError):
        install_mcp(path)
    assert path.read_text() == content


def test_config_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    assert mcp_config_path("user") == tmp_path / ".claude.json"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "cfg"))
    assert mcp_config_path("user") == tmp_path / "cfg" / ".claude.json"
    assert mcp_config_path("project", tmp_path / "p") == tmp_path / "p" / ".mcp.json"


def test_memoir_install_and_uninstall_wire_the_server(tmp_path: Path) -> None:
    home = Path(os.environ["HOME"])
    project = tmp_path / "proj"
    project.mkdir()
    done = subprocess.run([*memoir_command(), "install"], capture_output=True, text=True,
                          timeout=60, cwd=project)
    assert done.returncode == 0, done.stderr
    assert f"MCP server `memoir` (tools search, timeline, get_observations) registered in " \
           f"{home / '.claude.json'}" in done.stdout
    assert json.loads((home / ".claude.json").read_text())["mcpServers"][MCP_SERVER_NAME] \
        == mcp_server_entry()
    done = subprocess.run([*memoir_command(), "install", "--scope", "project"],
                          capture_output=True, text=True, timeout=60, cwd=project)
    assert done.returncode == 0, done.stderr
    assert MCP_SERVER_NAME in json.loads((project / ".mcp.json").read_text())["mcpServers"]
    for scope in ("user", "project"):
        done = subprocess.run([*memoir_command(), "uninstall", "--scope", scope],
                              capture_output=True, text=True, timeout=60, cwd=project)
        assert done.returncode == 0 and "MCP server `memoir` removed" in done.stdout
    assert json.loads((home / ".claude.json").read_text())["mcpServers"] == {}
    assert json.loads((project / ".mcp.json").read_text())["mcpServers"] == {}


def test_claude_code_itself_finds_and_connects_the_installed_server(tmp_path: Path) -> None:
    """The bundled Claude Code CLI lists the server `memoir install` wrote, and connects."""
    env = {**os.environ, "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    project = tmp_path / "proj"
    project.mkdir()
    subprocess.run([*memoir_command(), "install"], check=True, capture_output=True,
                   timeout=60, cwd=project, env=env)
    done = subprocess.run([str(bundled_claude()), "mcp", "get", MCP_SERVER_NAME],
                          capture_output=True, text=True, timeout=90, cwd=project, env=env)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "User config" in out and "Connected" in out, out
    assert "claude_memoir.cli.main mcp" in out
    subprocess.run([*memoir_command(), "uninstall"], check=True, capture_output=True,
                   timeout=60, cwd=project, env=env)
    done = subprocess.run([str(bundled_claude()), "mcp", "get", MCP_SERVER_NAME],
                          capture_output=True, text=True, timeout=90, cwd=project, env=env)
    assert done.returncode != 0 and 'No MCP server named "memoir"' in done.stdout + done.stderr
