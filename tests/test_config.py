"""Tests for claude_memoir.config: defaults, settings.json, MEMOIR_* env, read at call time."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from claude_memoir.config import DEFAULT_MODEL, Settings, load_settings, memoir_home

DEFAULTS = {
    "model": DEFAULT_MODEL,
    "context_budget": 6000,
    "context_summaries": 5,
    "context_observations": 15,
    "context_sources": ("startup", "resume", "compact"),
    "idle_timeout": 7200.0,
    "max_field_chars": 4000,
    "agent_timeout": 180.0,
    "agent_context_limit": 60_000,
    "log_level": "INFO",
}


@pytest.fixture(autouse=True)
def clean_env(memoir_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only MEMOIR_HOME is set: other MEMOIR_* variables (the shared fixture may set
    some for workers) would hide the defaults and settings.json under test."""
    from claude_memoir import config

    for name in config._ENV:
        monkeypatch.delenv(name, raising=False)


def write_settings(home: Path, content: object | str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content)
    (home / "settings.json").write_text(text, encoding="utf-8")


def values(s: Settings) -> dict[str, object]:
    return {k: getattr(s, k) for k in DEFAULTS}


def test_defaults(memoir_home: Path) -> None:
    s = load_settings()
    assert s.home == str(memoir_home)
    assert values(s) == DEFAULTS
    assert DEFAULT_MODEL == "claude-haiku-4-5"
    assert isinstance(s.idle_timeout, float)
    assert isinstance(s.context_budget, int)


def test_default_home_without_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MEMOIR_HOME")
    assert memoir_home() == str(tmp_path / "user-home" / ".claude-memoir")
    assert load_settings().home == str(tmp_path / "user-home" / ".claude-memoir")
    monkeypatch.setenv("MEMOIR_HOME", "")
    assert memoir_home() == str(tmp_path / "user-home" / ".claude-memoir")


def test_memoir_home_expands_tilde(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEMOIR_HOME", "~/custom-memoir")
    expected = tmp_path / "user-home" / "custom-memoir"
    assert memoir_home() == str(expected)
    assert load_settings().home == str(expected)
    assert "~" not in str(load_settings().home)


def test_memoir_home_relative_becomes_absolute(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEMOIR_HOME", "rel/home")
    home = memoir_home()
    assert os.path.isabs(home)
    assert home == str(tmp_path / "rel" / "home")


def test_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMOIR_MODEL", "claude-sonnet-4-5")
    monkeypatch.setenv("MEMOIR_CONTEXT_BUDGET", "1234")
    monkeypatch.setenv("MEMOIR_CONTEXT_SOURCES", " startup , resume,, ")
    monkeypatch.setenv("MEMOIR_IDLE_TIMEOUT", "2.5")
    monkeypatch.setenv("MEMOIR_CONTEXT_SUMMARIES", "2")
    monkeypatch.setenv("MEMOIR_CONTEXT_OBSERVATIONS", "0")
    monkeypatch.setenv("MEMOIR_MAX_FIELD_CHARS", "100")
    monkeypatch.setenv("MEMOIR_AGENT_TIMEOUT", "30")
    monkeypatch.setenv("MEMOIR_LOG_LEVEL", "DEBUG")
    s = load_settings()
    assert s.model == "claude-sonnet-4-5"
    assert s.context_budget == 1234 and isinstance(s.context_budget, int)
    assert s.context_sources == ("startup", "resume")
    assert s.idle_timeout == 2.5 and isinstance(s.idle_timeout, float)
    assert s.context_summaries == 2
    assert s.context_observations == 0
    assert s.max_field_chars == 100
    assert s.agent_timeout == 30.0 and isinstance(s.agent_timeout, float)
    assert s.log_level == "DEBUG"


def test_empty_env_value_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMOIR_MODEL", "")
    monkeypatch.setenv("MEMOIR_CONTEXT_BUDGET", "")
    s = load_settings()
    assert s.model == DEFAULT_MODEL
    assert s.context_budget == 6000


def test_settings_json_overrides_defaults(memoir_home: Path) -> None:
    write_settings(memoir_home, {
        "model": "file-model",
        "context_budget": 800,
        "context_sources": ["startup"],
        "idle_timeout": 60,
        "log_level": "WARNING",
        "unknown_key": "ignored",
    })
    s = load_settings()
    assert s.model == "file-model"
    assert s.context_budget == 800
    assert s.context_sources == ("startup",)
    assert s.idle_timeout == 60.0 and isinstance(s.idle_timeout, float)
    assert s.log_level == "WARNING"
    assert s.context_summaries == 5  # untouched keys keep their defaults
    assert not hasattr(s, "unknown_key")


def test_settings_json_string_list_for_sources(memoir_home: Path) -> None:
    write_settings(memoir_home, {"context_sources": "resume,compact"})
    assert load_settings().context_sources == ("resume", "compact")


def test_settings_json_cannot_move_home(memoir_home: Path, tmp_path: Path) -> None:
    write_settings(memoir_home, {"home": str(tmp_path / "elsewhere"), "model": "m"})
    s = load_settings()
    assert s.home == str(memoir_home)
    assert s.model == "m"


def test_env_overrides_settings_json(memoir_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_settings(memoir_home, {"model": "file-model", "context_budget": 800,
                                 "context_sources": ["compact"], "idle_timeout": 60})
    monkeypatch.setenv("MEMOIR_MODEL", "env-model")
    monkeypatch.setenv("MEMOIR_CONTEXT_BUDGET", "900")
    monkeypatch.setenv("MEMOIR_CONTEXT_SOURCES", "resume")
    s = load_settings()
    assert s.model == "env-model"
    assert s.context_budget == 900
    assert s.context_sources == ("resume",)
    assert s.idle_timeout == 60.0  # not overridden by env: the file's value stands


def test_malformed_env_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMOIR_CONTEXT_BUDGET", "lots")
    monkeypatch.setenv("MEMOIR_CONTEXT_SUMMARIES", "-3")
    monkeypatch.setenv("MEMOIR_IDLE_TIMEOUT", "soon")
    monkeypatch.setenv("MEMOIR_AGENT_TIMEOUT", "-1.5")
    monkeypatch.setenv("MEMOIR_MAX_FIELD_CHARS", "12.5")
    s = load_settings()
    assert s.context_budget == 6000
    assert s.context_summaries == 5
    assert s.idle_timeout == 7200.0
    assert s.agent_timeout == 180.0
    assert s.max_field_chars == 4000


def test_malformed_env_falls_back_to_file_value(memoir_home: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    write_settings(memoir_home, {"context_budget": 800})
    monkeypatch.setenv("MEMOIR_CONTEXT_BUDGET", "lots")
    assert load_settings().context_budget == 800


def test_nan_timeout_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """NaN compares false with everything: a worker would never reach its idle timeout."""
    monkeypatch.setenv("MEMOIR_IDLE_TIMEOUT", "nan")
    s = load_settings()
    assert s.idle_timeout == 7200.0


def test_malformed_settings_values_fall_back(memoir_home: Path) -> None:
    write_settings(memoir_home, {
        "context_budget": "lots",
        "context_summaries": -1,
        "idle_timeout": {"minutes": 5},
        "context_sources": 42,
        "model": "kept",
    })
    s = load_settings()
    assert s.context_budget == 6000
    assert s.context_summaries == 5
    assert s.idle_timeout == 7200.0
    assert s.context_sources == ("startup", "resume", "compact")
    assert s.model == "kept"  # one bad value does not discard the good ones


def test_null_model_in_settings_keeps_default(memoir_home: Path) -> None:
    """``"model": null`` must not become the model name "None"."""
    write_settings(memoir_home, {"model": None, "log_level": None})
    s = load_settings()
    assert s.model == DEFAULT_MODEL
    assert s.log_level == "INFO"


@pytest.mark.parametrize("content", [
    "{not json",
    "[1, 2, 3]",
    '"just a string"',
    "",
    "null",
])
def test_unusable_settings_json_falls_back(memoir_home: Path, content: str) -> None:
    write_settings(memoir_home, content)
    assert values(load_settings()) == DEFAULTS


def test_settings_json_not_utf8_falls_back(memoir_home: Path) -> None:
    memoir_home.mkdir(parents=True)
    (memoir_home / "settings.json").write_bytes(b'{"model": "\xff\xfe"}')
    assert values(load_settings()) == DEFAULTS


def test_settings_json_directory_falls_back(memoir_home: Path) -> None:
    (memoir_home / "settings.json").mkdir(parents=True)
    assert values(load_settings()) == DEFAULTS


def test_values_read_at_call_time(memoir_home: Path, monkeypatch: pytest.MonkeyPatch,
                                  tmp_path: Path) -> None:
    monkeypatch.setenv("MEMOIR_MODEL", "first")
    assert load_settings().model == "first"
    monkeypatch.setenv("MEMOIR_MODEL", "second")
    assert load_settings().model == "second"
    monkeypatch.delenv("MEMOIR_MODEL")
    assert load_settings().model == DEFAULT_MODEL

    write_settings(memoir_home, {"context_budget": 111})
    assert load_settings().context_budget == 111
    write_settings(memoir_home, {"context_budget": 222})
    assert load_settings().context_budget == 222

    other = tmp_path / "other-home"
    write_settings(other, {"context_budget": 333})
    monkeypatch.setenv("MEMOIR_HOME", str(other))
    s = load_settings()
    assert s.home == str(other)
    assert s.context_budget == 333


def test_agent_context_limit_from_env_and_file(memoir_home: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    write_settings(memoir_home, {"agent_context_limit": 20000})
    assert load_settings().agent_context_limit == 20000
    monkeypatch.setenv("MEMOIR_AGENT_CONTEXT_LIMIT", "0")  # 0 disables the bound
    assert load_settings().agent_context_limit == 0
    monkeypatch.setenv("MEMOIR_AGENT_CONTEXT_LIMIT", "-5")  # invalid: the file's value
    assert load_settings().agent_context_limit == 20000


def test_capture_batch_and_budget_settings(memoir_home: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert (s.capture, s.batch_chars, s.batch_seconds) == ("prompt", 40_000, 300.0)
    assert (s.daily_budget_usd, s.daily_budget_tokens) == (0.0, 0)
    write_settings(memoir_home, {"capture": "LIVE", "batch_chars": 9000,
                                 "daily_budget_usd": 2.5})
    s = load_settings()
    assert (s.capture, s.batch_chars, s.daily_budget_usd) == ("live", 9000, 2.5)
    monkeypatch.setenv("MEMOIR_CAPTURE", "prompt")
    monkeypatch.setenv("MEMOIR_BATCH_SECONDS", "60")
    monkeypatch.setenv("MEMOIR_DAILY_BUDGET_TOKENS", "2000000")
    s = load_settings()
    assert (s.capture, s.batch_seconds, s.daily_budget_tokens) == ("prompt", 60.0, 2_000_000)
    # A typo keeps the file's (or default) value instead of breaking hooks.
    monkeypatch.setenv("MEMOIR_CAPTURE", "per-event")
    monkeypatch.setenv("MEMOIR_DAILY_BUDGET_USD", "-1")
    s = load_settings()
    assert (s.capture, s.daily_budget_usd) == ("live", 2.5)
