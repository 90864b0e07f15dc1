"""install / uninstall of claude-memoir's hooks in a real settings.json on disk."""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from claude_memoir.cli.install import (
    EVENTS,
    InstallResult,
    hook_command,
    install,
    is_ours,
    settings_path,
    uninstall,
)
from claude_memoir.errors import InstallError, MemoirError
from conftest import kill_workers  # noqa: E402

PY_A = "/opt/env-a/bin/python"
PY_B = "/opt/env-b/bin/python"

USER_BASH_HOOK = {"type": "command", "command": "~/bin/audit-bash.sh", "timeout": 30}
USER_STOP_HOOK = {"type": "command", "command": "notify-send 'Claude is done'"}
USER_PRE_HOOK = {"type": "command", "command": "python3 ~/guard.py"}

USER_SETTINGS: dict[str, Any] = {
    "model": "opus",
    "permissions": {"allow": ["Bash(git status)"], "deny": []},
    "hooks": {
        "PreToolUse": [{"matcher": "Bash", "hooks": [USER_PRE_HOOK]}],
        "PostToolUse": [{"matcher": "Bash", "hooks": [USER_BASH_HOOK]}],
        "Stop": [{"hooks": [USER_STOP_HOOK]}],
    },
    "env": {"GREETING": "héllo"},
}


def dump(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write(path: Path, data: object, mode: int = 0o644) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump(data) if not isinstance(data, str) else data, encoding="utf-8")
    path.chmod(mode)
    return path.read_bytes()


def read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def our_hook(python: str, arg: str, timeout: int | None = 10) -> dict[str, Any]:
    hook: dict[str, Any] = {"type": "command", "command": hook_command(arg, python)}
    if timeout is not None:
        hook["timeout"] = timeout
    return hook


def ours(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [h for g in groups for h in g["hooks"] if is_ours(h)]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def settings(tmp_path: Path) -> Path:
    return tmp_path / "home" / ".claude" / "settings.json"


# --- fresh install -----------------------------------------------------------


def test_fresh_install_creates_every_event(settings: Path) -> None:
    result = install(settings)

    assert result == InstallResult(
        path=settings, added=list(EVENTS), removed=[], changed=True, backup=None
    )
    data = read(settings)
    assert list(data) == ["hooks"]
    assert list(data["hooks"]) == list(EVENTS)
    python = shlex.quote(os.path.abspath(sys.executable))
    expected_timeouts = {
        "SessionStart": 10,
        "UserPromptSubmit": 10,
        "PreToolUse": 5,
        "PostToolUse": 10,
        "PostToolUseFailure": 10,
        "Stop": 10,
        "SessionEnd": 5,
    }
    for event, arg in EVENTS.items():
        groups = data["hooks"][event]
        assert len(groups) == 1
        hook = {
            "type": "command",
            "command": hook_command(arg, python),
            "timeout": expected_timeouts[event],
        }
        if event in ("PostToolUse", "PostToolUseFailure"):
            assert groups[0] == {"matcher": "*", "hooks": [hook]}
        elif event == "PreToolUse":  # file-time recall: file access only
            assert groups[0] == {"matcher": "Read|Edit|Write", "hooks": [hook]}
        else:
            assert groups[0] == {"hooks": [hook]}
        assert shlex.split(hook["command"])[0].startswith("/")
    assert data["hooks"]["PostToolUseFailure"][0]["hooks"][0]["command"].endswith(
        " post-tool-use"
    )


def test_fresh_install_output_format_and_mode(settings: Path) -> None:
    install(settings, python=PY_A)

    text = settings.read_text(encoding="utf-8")
    assert text == dump(read(settings))
    assert text.endswith("}\n")
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600
    assert leftovers(settings.parent) == []
    assert not settings.with_name("settings.json.memoir-backup").exists()


def test_install_twice_is_byte_identical(settings: Path) -> None:
    write(settings, USER_SETTINGS)
    install(settings, python=PY_A)
    first = settings.read_bytes()
    backup_before = settings.with_name("settings.json.memoir-backup").read_bytes()

    again = install(settings, python=PY_A)

    assert again == InstallResult(path=settings)
    assert again.changed is False
    assert settings.read_bytes() == first
    assert settings.with_name("settings.json.memoir-backup").read_bytes() == backup_before


def test_reinstall_keeps_our_place_when_user_added_hooks_after_us(settings: Path) -> None:
    install(settings, python=PY_A)
    data = read(settings)
    data["hooks"]["Stop"].append({"hooks": [USER_STOP_HOOK]})
    before = write(settings, data)

    result = install(settings, python=PY_A)

    assert result.changed is False
    assert settings.read_bytes() == before


# --- preserving the user's content ------------------------------------------


def test_install_preserves_user_hooks_keys_and_order(settings: Path) -> None:
    write(settings, USER_SETTINGS)

    install(settings, python=PY_A)

    data = read(settings)
    assert list(data) == ["model", "permissions", "hooks", "env"]
    assert data["model"] == "opus"
    assert data["permissions"] == USER_SETTINGS["permissions"]
    assert data["env"] == {"GREETING": "héllo"}
    assert "héllo" in settings.read_text(encoding="utf-8")  # not \u-escaped
    # The user's events first, in their order; ours that were new, after.
    assert list(data["hooks"]) == [
        "PreToolUse",
        "PostToolUse",
        "Stop",
        "SessionStart",
        "UserPromptSubmit",
        "PostToolUseFailure",
        "SessionEnd",
    ]
    # Shared events: the user's group untouched and first, ours appended.
    assert data["hooks"]["PreToolUse"][:1] == USER_SETTINGS["hooks"]["PreToolUse"]
    assert ours(data["hooks"]["PreToolUse"]) == [our_hook(PY_A, "pre-tool-use", 5)]
    # Shared events: the user's group untouched and first, ours appended.
    post = data["hooks"]["PostToolUse"]
    assert post[0] == {"matcher": "Bash", "hooks": [USER_BASH_HOOK]}
    assert post[1]["matcher"] == "*"
    assert ours(post) == [our_hook(PY_A, "post-tool-use")]
    stop = data["hooks"]["Stop"]
    assert stop[0] == {"hooks": [USER_STOP_HOOK]}
    assert stop[1] == {
        "hooks": [our_hook(PY_A, "stop")]
    }


def test_reinstall_with_other_python_replaces_ours(settings: Path) -> None:
    write(settings, USER_SETTINGS)
    install(settings, python=PY_A)

    result = install(settings, python=PY_B)

    assert result.changed is True
    assert result.added == list(EVENTS)
    text = settings.read_text(encoding="utf-8")
    assert PY_A not in text
    data = read(settings)
    for event, arg in EVENTS.items():
        assert [h["command"] for h in ours(data["hooks"][event])] == [hook_command(arg, PY_B)]
    assert data["hooks"]["PostToolUse"][0] == {"matcher": "Bash", "hooks": [USER_BASH_HOOK]}
    assert data["hooks"]["Stop"][0] == {"hooks": [USER_STOP_HOOK]}
    assert len(data["hooks"]["Stop"]) == 2


def test_install_removes_duplicates_and_keeps_user_hook_sharing_our_group(
    settings: Path,
) -> None:
    stale = our_hook(PY_A, "stop")
    write(
        settings,
        {
            "hooks": {
                "Stop": [
                    {"hooks": [stale]},
                    {"hooks": [USER_STOP_HOOK, stale]},  # hand-edited into one group
                    {"hooks": [stale]},
                ]
            }
        },
    )

    install(settings, python=PY_B)

    assert read(settings)["hooks"]["Stop"] == [
        {"hooks": [USER_STOP_HOOK]},
        {"hooks": [our_hook(PY_B, "stop")]},
    ]


def test_install_removes_ours_from_events_no_longer_registered(settings: Path) -> None:
    write(
        settings,
        {
            "hooks": {
                "PreToolUse": [
                    {"matcher": "Bash", "hooks": [USER_PRE_HOOK]},
                    {"matcher": "*", "hooks": [our_hook(PY_A, "pre", None)]},
                ],
                "Notification": [
                    {"hooks": [our_hook(PY_A, "note", None)]}
                ],
            }
        },
    )

    result = install(settings, python=PY_A)

    assert result.removed == ["Notification"]
    hooks = read(settings)["hooks"]
    # An old PreToolUse entry of ours for every tool is replaced by today's.
    assert hooks["PreToolUse"] == [{"matcher": "Bash", "hooks": [USER_PRE_HOOK]},
                                   {"matcher": "Read|Edit|Write",
                                    "hooks": [our_hook(PY_A, "pre-tool-use", 5)]}]
    assert "Notification" not in hooks


def test_install_keeps_groups_it_does_not_understand(settings: Path) -> None:
    odd = {
        "hooks": {
            "Stop": [{"hooks": []}, "not-a-group", {"matcher": "x"}],
            "Custom": [],
        }
    }
    write(settings, odd)

    install(settings, python=PY_A)
    uninstall(settings)

    assert read(settings) == odd


# --- uninstall ---------------------------------------------------------------


def test_uninstall_restores_user_file_exactly(settings: Path) -> None:
    original = write(settings, USER_SETTINGS)
    install(settings, python=PY_A)

    result = uninstall(settings)

    assert result.changed is True
    assert result.added == []
    assert sorted(result.removed) == sorted(EVENTS)
    assert settings.read_bytes() == original
    user_group = {"matcher": "Bash", "hooks": [USER_BASH_HOOK]}
    assert read(settings)["hooks"]["PostToolUse"] == [user_group]


def test_uninstall_drops_hooks_key_it_emptied(settings: Path) -> None:
    write(settings, {"model": "sonnet"})
    install(settings, python=PY_A)

    uninstall(settings)

    assert read(settings) == {"model": "sonnet"}


def test_uninstall_after_fresh_install_leaves_empty_object(settings: Path) -> None:
    install(settings)

    uninstall(settings)

    assert settings.read_text(encoding="utf-8") == "{}\n"


def test_uninstall_missing_file_is_noop(settings: Path) -> None:
    result = uninstall(settings)

    assert result == InstallResult(path=settings, added=[], removed=[], changed=False, backup=None)
    assert not settings.exists()
    assert not settings.parent.exists()


def test_uninstall_without_ours_leaves_file_untouched(settings: Path) -> None:
    # Compact formatting that our writer would not produce: must stay as it is.
    raw = '{"hooks":{"Stop":[{"hooks":[{"type":"command","command":"true"}]}]},"x":1}'
    original = write(settings, raw)

    result = uninstall(settings)

    assert result.changed is False
    assert result.backup is None
    assert settings.read_bytes() == original
    assert not settings.with_name("settings.json.memoir-backup").exists()


def test_uninstall_keeps_user_empty_hooks_object(settings: Path) -> None:
    original = write(settings, {"hooks": {}, "model": "opus"})

    assert uninstall(settings).changed is False
    assert settings.read_bytes() == original


# --- malformed files ---------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        '{"model": "opus",',  # truncated
        "",  # empty file
        "[1, 2]",  # top level not an object
        '"settings"',
        '{"hooks": []}',  # hooks not an object
        '{"hooks": "none"}',
        '{"hooks": {"Stop": {"hooks": []}}}',  # event not a list
        b"\xff\xfe{}",  # not UTF-8
    ],
)
@pytest.mark.parametrize("action", [install, uninstall])
def test_malformed_file_raises_and_is_untouched(
    settings: Path, content: str | bytes, action: Any
) -> None:
    settings.parent.mkdir(parents=True)
    if isinstance(content, bytes):
        settings.write_bytes(content)
    else:
        settings.write_text(content, encoding="utf-8")
    original = settings.read_bytes()

    with pytest.raises(InstallError) as info:
        action(settings)

    assert str(settings) in str(info.value)
    assert isinstance(info.value, MemoirError)
    assert settings.read_bytes() == original
    assert sorted(p.name for p in settings.parent.iterdir()) == ["settings.json"]


def test_unwritable_location_raises_install_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x", encoding="utf-8")

    with pytest.raises(InstallError) as info:
        install(blocker / "settings.json", python=PY_A)

    assert isinstance(info.value.__cause__, OSError)
    assert "not-a-dir" in str(info.value)


# --- backup, modes, symlinks -------------------------------------------------


def test_backup_holds_previous_contents(settings: Path) -> None:
    original = write(settings, USER_SETTINGS)

    result = install(settings, python=PY_A)

    backup = settings.with_name("settings.json.memoir-backup")
    assert result.backup == backup
    assert backup.read_bytes() == original

    installed = settings.read_bytes()
    result = install(settings, python=PY_B)
    assert result.backup == backup
    assert backup.read_bytes() == installed


def test_existing_mode_is_preserved(settings: Path) -> None:
    write(settings, USER_SETTINGS, mode=0o644)

    install(settings, python=PY_A)

    assert stat.S_IMODE(settings.stat().st_mode) == 0o644
    backup = settings.with_name("settings.json.memoir-backup")
    assert stat.S_IMODE(backup.stat().st_mode) == 0o644
    assert leftovers(settings.parent) == []

    uninstall(settings)
    assert stat.S_IMODE(settings.stat().st_mode) == 0o644


def test_private_mode_is_preserved(settings: Path) -> None:
    write(settings, USER_SETTINGS, mode=0o600)

    install(settings, python=PY_A)

    assert stat.S_IMODE(settings.stat().st_mode) == 0o600


def test_symlinked_settings_are_written_through(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "claude-settings.json"
    original = write(real, USER_SETTINGS)
    link = tmp_path / ".claude" / "settings.json"
    link.parent.mkdir()
    link.symlink_to(real)

    install(link, python=PY_A)

    assert link.is_symlink()
    assert ours(read(real)["hooks"]["Stop"])
    assert link.with_name("settings.json.memoir-backup").read_bytes() == original


# --- settings_path -----------------------------------------------------------


def test_settings_path_user_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))

    assert settings_path("user") == tmp_path / ".claude" / "settings.json"


def test_settings_path_user_honours_claude_config_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "cfg"))

    assert settings_path("user") == tmp_path / "cfg" / "settings.json"


def test_settings_path_project(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "cfg"))  # irrelevant here
    monkeypatch.chdir(tmp_path)

    repo = tmp_path / "repo"
    assert settings_path("project", repo) == repo / ".claude" / "settings.json"
    assert settings_path("project") == tmp_path / ".claude" / "settings.json"


def test_settings_path_rejects_unknown_scope() -> None:
    with pytest.raises(MemoirError):
        settings_path("local")  # type: ignore[arg-type]


# --- hook_command / is_ours --------------------------------------------------


def test_hook_command_quotes_interpreter_with_space() -> None:
    command = hook_command("stop", "/Users/Jane Doe/venv/bin/python")

    argv = shlex.split(command)
    assert argv[:4] == ["/Users/Jane Doe/venv/bin/python", "-I", "-S", "-c"]
    assert argv[5] == "stop" and len(argv) == 6
    assert "from claude_memoir.hook import entry" in argv[4]
    assert is_ours({"type": "command", "command": command})


def test_hook_command_runs_the_hook_without_site(tmp_path: Path) -> None:
    """The installed command, run by a shell as Claude Code does, records the event:
    -I -S drop site-packages and PYTHONPATH, so the package must be found
    through the directory the command names, and nothing else."""
    home = tmp_path / "memoir"
    payload = {"session_id": "3f2a9c1e-0b7d-4e55-9a10-000000000001", "prompt": "hello",
               "cwd": str(tmp_path), "hook_event_name": "UserPromptSubmit"}
    env = {**os.environ, "MEMOIR_HOME": str(home), "PYTHONPATH": "/nonexistent",
           "MEMOIR_IDLE_TIMEOUT": "5"}
    done = subprocess.run(["/bin/sh", "-c", hook_command("user-prompt-submit")],
                          input=json.dumps(payload), capture_output=True, text=True,
                          env=env, timeout=30)
    try:
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {}
        conn = sqlite3.connect(home / "memoir.db")
        assert conn.execute("SELECT text FROM prompts").fetchall() == [("hello",)]
        conn.close()
    finally:
        kill_workers(home)


def test_legacy_module_form_is_ours_and_replaced(settings: Path) -> None:
    """Settings written by an earlier version (``python -m claude_memoir.hook``) upgrade."""
    legacy = {"type": "command", "command": f"{PY_A} -m claude_memoir.hook stop", "timeout": 10}
    assert is_ours(legacy)
    write(settings, {"hooks": {"Stop": [{"hooks": [legacy]}]}})

    install(settings, python=PY_A)

    assert ours(read(settings)["hooks"]["Stop"]) == [our_hook(PY_A, "stop")]


def test_hook_command_keeps_venv_symlink(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    venv_python = tmp_path / "venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.symlink_to(sys.executable)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "executable", "venv/bin/python")  # relative

    command = hook_command("session-start")

    argv = shlex.split(command)
    assert argv[0] == str(venv_python) and argv[-1] == "session-start"


def test_hook_command_without_interpreter_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "")

    with pytest.raises(InstallError):
        hook_command("stop")


@pytest.mark.parametrize(
    ("hook", "expected"),
    [
        ({"type": "command", "command": "/usr/bin/python3 -m claude_memoir.hook stop"}, True),
        ({"type": "command", "command": "'/a b/python' -m claude_memoir.hook session-end"}, True),
        ({"type": "command", "command": '"${CLAUDE_PLUGIN_ROOT}/hooks/memoir-hook" stop'}, True),
        ({"type": "command", "command": "python3 -m other_tool.hook stop"}, False),
        ({"type": "command", "command": "echo memoir"}, False),
        ({"type": "prompt", "prompt": "claude_memoir"}, False),
        ({"type": "command", "command": ["-m claude_memoir.hook"]}, False),
        ({}, False),
    ],
)
def test_is_ours(hook: dict[str, Any], expected: bool) -> None:
    assert is_ours(hook) is expected
