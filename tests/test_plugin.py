"""The plugin form registers the same hooks as `memoir install`."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

import pytest

import wheelhouse
from claude_memoir import bootstrap
from claude_memoir.cli.install import EVENTS, install
from conftest import api_env, bundled_claude, db, memoir_command, payload, run_claude, wait_for
from mockapi import MockAnthropic

REPO = Path(__file__).resolve().parents[1]


def test_plugin_manifest_is_valid() -> None:
    manifest = json.loads((REPO / ".claude-plugin" / "plugin.json").read_text())
    # Not "claude-memoir": Claude Code reserves plugin names starting "claude-".
    assert manifest["name"] == "memoir"
    assert manifest["version"]
    market = json.loads((REPO / ".claude-plugin" / "marketplace.json").read_text())
    assert market["name"] == "claude-memoir" and market["owner"]["name"]
    [entry] = market["plugins"]
    assert entry["name"] == manifest["name"] and entry["source"] == "./"
    assert entry["version"] == manifest["version"]


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
        assert hook["command"] == (f'"${{CLAUDE_PLUGIN_ROOT}}"/hooks/memoir-hook '
                                   f"{EVENTS[event]}")
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
    assert f"plugin:memoir:memoir: {REPO}/bin/memoir-mcp" in out
    assert "Connected" in out, out


# -- the plugin's own environment for the worker ------------------------------------------


def test_plugin_requirements_are_the_packages_dependencies() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    listed = [line.strip() for line in (REPO / "hooks" / "requirements.txt").read_text()
              .splitlines() if line.strip() and not line.startswith("#")]
    assert listed == project["dependencies"]


def test_venv_is_ready_only_for_the_current_requirements(tmp_path: Path) -> None:
    root = tmp_path / "plugin"
    (root / "hooks").mkdir(parents=True)
    (root / "hooks" / "requirements.txt").write_text("psutil>=5.9\n")
    plugin = bootstrap.Plugin(str(root), str(tmp_path / "data"))
    assert bootstrap.ready_python(plugin) is None  # nothing installed yet
    stamp = Path(plugin.venv) / bootstrap.STAMP
    stamp.parent.mkdir(parents=True)
    stamp.write_text(f"psutil>=5.9\n# python {sys.executable}\n")
    assert bootstrap.ready_python(plugin) == plugin.python
    # The plugin was updated with new requirements: reinstall.
    (root / "hooks" / "requirements.txt").write_text("psutil>=6\n")
    assert bootstrap.ready_python(plugin) is None
    # Another base Python: the venv was not built for it.
    (root / "hooks" / "requirements.txt").write_text("psutil>=5.9\n")
    assert bootstrap.ready_python(plugin, "/usr/bin/python9") is None


def test_memoir_python_overrides_the_plugin_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_PLUGIN_ROOT", str(REPO))
    monkeypatch.setenv("CLAUDE_PLUGIN_DATA", "/nonexistent/data")
    assert bootstrap.plugin_from_env() is not None
    monkeypatch.setenv("MEMOIR_PYTHON", sys.executable)
    assert bootstrap.plugin_from_env() is None


def test_failed_install_is_reported_by_status(tmp_path: Path, memoir_home: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """No index and no wheels: pip fails, and `memoir status` says so with the fix."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no-wheels"))
    data = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", "import sys; sys.path.append(sys.argv.pop(1)); "
         "from claude_memoir.bootstrap import main; sys.exit(main(sys.argv[1:]))",
         str(REPO / "src"), str(REPO), str(data)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert not (data / "venv" / bootstrap.STAMP).exists()
    # Hooks do not start another install at every tool call after a failure.
    plugin = bootstrap.Plugin(str(REPO), str(data))
    assert Path(plugin.failed_marker).exists()
    assert bootstrap.start(plugin, memoir_home) is False
    status = subprocess.run([*memoir_command(), "status"], capture_output=True, text=True,
                            timeout=30)
    first, reason = status.stdout.splitlines()[:2]
    assert first == "DEGRADED: installing the plugin's worker dependencies failed"
    assert "claude-agent-sdk" in reason and "MEMOIR_PYTHON" in reason


def _bare_python(tmp_path: Path) -> Path:
    """A `python3` (this Python's base, >= 3.11) without claude-agent-sdk or psutil."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True,
                   timeout=60)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(bare / "bin" / "python")
    for module in ("claude_agent_sdk", "psutil"):
        probe = subprocess.run([str(bindir / "python3"), "-c", f"import {module}"],
                               capture_output=True, timeout=30)
        assert probe.returncode != 0, f"the bare python3 has {module}"
    return bindir


@pytest.mark.e2e
@pytest.mark.timeout(420)
def test_plugin_with_a_bare_python3_bootstraps_and_ends_with_an_agent_summary(
        mock_api: MockAnthropic, tmp_path: Path, memoir_home: Path) -> None:
    """Nothing installed but the plugin and a python3: it records, installs, summarises."""
    requirements = (REPO / "hooks" / "requirements.txt").read_text().split()
    wheels = tmp_path / "wheels"
    wheelhouse.build(requirements, wheels)
    bindir = _bare_python(tmp_path)
    marker = f"BOOTSTRAP-{uuid.uuid4().hex[:12]}"
    mock_api.summary_marker = marker
    env = {k: v for k, v in os.environ.items()
           if k not in ("MEMOIR_PYTHON", "PYTHONPATH", "VIRTUAL_ENV")}
    env.update(api_env(mock_api, tmp_path), IS_SANDBOX="1", PATH=f"{bindir}:/usr/bin:/bin",
               # pip's own configuration, as a user's would be: here, offline.
               PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels))
    project = tmp_path / "project"
    project.mkdir()

    started = time.monotonic()
    first = run_claude("create test.txt with hello in it", project, env, plugin_dir=REPO)
    assert first.returncode == 0, first.stderr
    conn = db(memoir_home)
    # Recorded by the stdlib-only hooks while the dependencies install.
    assert [r["tool_name"] for r in conn.execute("SELECT tool_name FROM events")] == ["Bash"]
    summary = wait_for(lambda: conn.execute("SELECT * FROM summaries").fetchone(),
                       timeout=300, message="the session's summary after the bootstrap")
    assert summary["kind"] == "agent" and summary["learned"] == marker
    log_text = (memoir_home / "logs" / "memoir.log").read_text()
    installed = re.findall(r"plugin dependencies installed in ([0-9.]+) s", log_text)
    assert len(installed) == 1, log_text[-3000:]
    print(f"\nbootstrap: pip install took {installed[0]} s; first summary "
          f"{time.monotonic() - started:.1f} s after the session started")
    stamps = list((Path(env["HOME"]) / ".claude").rglob(bootstrap.STAMP))
    assert len(stamps) == 1

    # The next session uses the installed venv at once: no second install.
    second = run_claude("and now?", project, env, plugin_dir=REPO)
    assert second.returncode == 0, second.stderr
    assert marker in mock_api.messages_requests(agent=False)[-1].text()
    wait_for(lambda: conn.execute("SELECT COUNT(*) FROM sessions WHERE status = 'completed'")
             .fetchone()[0] == 2, timeout=90, message="both sessions to complete")
    log_text = (memoir_home / "logs" / "memoir.log").read_text()
    assert len(re.findall(r"installing the plugin's worker dependencies into", log_text)) == 1
    health = subprocess.run([str(Path(sys.executable).parent / "memoir"), "status"],
                            capture_output=True, text=True, timeout=30)
    assert health.stdout.startswith("healthy:"), health.stdout
