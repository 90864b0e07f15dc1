"""The plugin form registers the same hooks as `memoir install`."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from claude_memoir.cli.install import EVENTS, install
from conftest import payload

REPO = Path(__file__).resolve().parents[1]


def test_plugin_manifest_is_valid() -> None:
    manifest = json.loads((REPO / ".claude-plugin" / "plugin.json").read_text())
    assert manifest["name"] == "claude-memoir"
    assert manifest["version"]


def test_plugin_hooks_match_installed_hooks(tmp_path: Path) -> None:
    plugin = json.loads((REPO / "hooks" / "hooks.json").read_text())["hooks"]
    settings = tmp_path / "settings.json"
    install(settings)
    installed = json.loads(settings.read_text())["hooks"]
    assert set(plugin) == set(installed) == set(EVENTS)
    for event, groups in plugin.items():
        (group,) = groups
        (hook,) = group["hooks"]
        (theirs,) = installed[event][0]["hooks"]
        assert hook["command"] == f"${{CLAUDE_PLUGIN_ROOT}}/hooks/memoir-hook {EVENTS[event]}"
        assert hook["timeout"] == theirs["timeout"]
        assert group.get("matcher") == installed[event][0].get("matcher")


def test_plugin_runner_executes_a_hook(memoir_home: Path) -> None:
    runner = REPO / "hooks" / "memoir-hook"
    assert os.stat(runner).st_mode & stat.S_IXUSR
    done = subprocess.run(
        [str(runner), "session-start"], input=json.dumps(payload("session_start_startup")),
        capture_output=True, text=True, timeout=20,
        env={**os.environ, "CLAUDE_PLUGIN_ROOT": str(REPO), "MEMOIR_PYTHON": sys.executable})
    assert done.returncode == 0
    assert json.loads(done.stdout) == {}
    assert (memoir_home / "memoir.db").exists()


def test_plugin_declares_the_mcp_server_claude_code_connects_to(tmp_path: Path) -> None:
    """The plugin's .mcp.json starts `memoir mcp`; the bundled CLI loads and connects it."""
    from conftest import bundled_claude

    declared = json.loads((REPO / ".mcp.json").read_text())["mcpServers"]
    assert declared == {"memoir": {"command": "${CLAUDE_PLUGIN_ROOT}/bin/memoir-mcp",
                                   "args": []}}
    assert os.stat(REPO / "bin" / "memoir-mcp").st_mode & stat.S_IXUSR
    env = {**os.environ, "MEMOIR_PYTHON": sys.executable, "DISABLE_TELEMETRY": "1",
           "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    done = subprocess.run([str(bundled_claude()), "--plugin-dir", str(REPO), "mcp", "list"],
                          capture_output=True, text=True, timeout=90, cwd=tmp_path, env=env)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert f"plugin:claude-memoir:memoir: {REPO}/bin/memoir-mcp" in out
    assert "Connected" in out, out
