"""Configuration, read at call time from one place.

Precedence: ``MEMOIR_*`` environment variables, then ``$MEMOIR_HOME/settings.json``,
then the defaults below. Nothing is cached across calls on purpose: tests and
users change the environment between calls, and a hook process is short-lived
anyway, so the cost is one small file read.
"""

from __future__ import annotations

import json
import math
import os

from .values import Record

# Hooks load the settings on every tool call: no typing at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

    CaptureMode = Literal["prompt", "live"]

DEFAULT_MODEL = "claude-haiku-4-5"


class Settings(Record):
    """Every tunable of claude-memoir with its default.

    A ``Record``, not a dataclass, and ``home`` a ``str``, not a ``Path``:
    every hook loads the settings, and ``dataclasses`` and ``pathlib`` would
    cost it ~10 ms of imports on every tool call.
    """

    home: str
    model: str = DEFAULT_MODEL
    # Context injected at SessionStart: at most this many characters in all.
    context_budget: int = 6000
    # How many recent summaries and observation titles the context may hold.
    context_summaries: int = 5
    context_observations: int = 15
    # SessionStart sources that get context ("clear" starts empty on purpose).
    context_sources: tuple[str, ...] = ("startup", "resume", "compact")
    # A worker with no activity for this long finalizes and exits.
    idle_timeout: float = 7200.0
    # Characters of a tool input / response kept for the agent (head + tail).
    max_field_chars: int = 4000
    # Tools never observed: bookkeeping with nothing worth remembering.
    skip_tools: tuple[str, ...] = ("TodoWrite",)
    # Most events recorded per session (0: no cap); past it the session's
    # cost stops growing.
    max_events: int = 1000
    # Characters of one tool input or response kept in the store (head and
    # tail); bounds the database and the redaction time of a 20 MB Read.
    max_stored_chars: int = 100_000
    # Extra secret patterns (regexes) to redact, on top of the built-in ones.
    redact: tuple[str, ...] = ()
    # Projects never recorded: globs matched against the project's path.
    exclude: tuple[str, ...] = ()
    # Seconds the worker waits for one agent reply before giving up on it.
    agent_timeout: float = 180.0
    # Characters the memory agent's conversation may hold (system prompt, the
    # messages sent and the replies) before the worker starts a fresh one with
    # a recap of the session; every request resends the conversation, so this
    # bounds the size of each request. 0: no bound.
    agent_context_limit: int = 60_000
    # When tool events go to the memory agent: "prompt" (default) sends a
    # prompt's events when it finishes, in the same request as its summary, or
    # earlier once the pending batch passes batch_chars or batch_seconds;
    # "live" sends each event (or the few queued meanwhile) at once, then a
    # separate summary request: observations appear sooner, at about ten times
    # the cost.
    capture: CaptureMode = "prompt"
    # Rendered characters of pending events that make a batch go before its
    # prompt finished, and the most one request carries.
    batch_chars: int = 40_000
    # Age in seconds of the oldest pending event that makes a batch go before
    # its prompt finished, so a long prompt still gets observations.
    batch_seconds: float = 300.0
    # Daily spending caps of the memory agent (local calendar day, all
    # sessions): once today's recorded cost in USD, or tokens (input, output,
    # cache read and write), reach one, workers stop calling the LLM until the
    # next day and write fallback summaries. 0: no cap.
    daily_budget_usd: float = 0.0
    daily_budget_tokens: int = 0
    log_level: str = "INFO"


# env name -> (field, parser)
_ENV = {
    "MEMOIR_MODEL": "model",
    "MEMOIR_CONTEXT_BUDGET": "context_budget",
    "MEMOIR_CONTEXT_SUMMARIES": "context_summaries",
    "MEMOIR_CONTEXT_OBSERVATIONS": "context_observations",
    "MEMOIR_CONTEXT_SOURCES": "context_sources",
    "MEMOIR_IDLE_TIMEOUT": "idle_timeout",
    "MEMOIR_MAX_FIELD_CHARS": "max_field_chars",
    "MEMOIR_SKIP_TOOLS": "skip_tools",
    "MEMOIR_MAX_EVENTS": "max_events",
    "MEMOIR_MAX_STORED_CHARS": "max_stored_chars",
    "MEMOIR_REDACT": "redact",
    "MEMOIR_EXCLUDE": "exclude",
    "MEMOIR_AGENT_TIMEOUT": "agent_timeout",
    "MEMOIR_AGENT_CONTEXT_LIMIT": "agent_context_limit",
    "MEMOIR_CAPTURE": "capture",
    "MEMOIR_BATCH_CHARS": "batch_chars",
    "MEMOIR_BATCH_SECONDS": "batch_seconds",
    "MEMOIR_DAILY_BUDGET_USD": "daily_budget_usd",
    "MEMOIR_DAILY_BUDGET_TOKENS": "daily_budget_tokens",
    "MEMOIR_LOG_LEVEL": "log_level",
}

#: Allowed values of the settings that are a choice (a typo keeps the default).
CAPTURE_MODES = ("prompt", "live")
_CHOICES: dict[str, tuple[str, ...]] = {"capture": CAPTURE_MODES}


def memoir_home() -> str:
    """Return the data directory: ``$MEMOIR_HOME`` or ``~/.claude-memoir`` (absolute)."""
    raw = os.environ.get("MEMOIR_HOME")
    if raw:
        return os.path.abspath(os.path.expanduser(raw))
    return os.path.join(os.path.expanduser("~"), ".claude-memoir")


def _coerce(name: str, default: object, value: object) -> object:
    """Convert a raw env/file value to the type of the field's default."""
    if value is None:
        raise ValueError(f"{name}: null")  # JSON null keeps the default, not "None"
    if name in ("redact", "MEMOIR_REDACT"):
        # Regexes may contain commas: a JSON list, or one pattern.
        if isinstance(value, str):
            stripped = value.strip()
            value = json.loads(stripped) if stripped.startswith("[") else [stripped]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{name}: expected a list of regexes")
        return tuple(v for v in value if v)
    if isinstance(default, tuple):
        if isinstance(value, str):
            return tuple(p.strip() for p in value.split(",") if p.strip())
        if isinstance(value, list):
            return tuple(str(p) for p in value)
        raise ValueError(f"{name}: expected a list or comma-separated string")
    if isinstance(default, bool):
        return str(value).lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        if not isinstance(value, (str, int, float)):
            raise TypeError(f"{name}: expected a number")
        number = int(value)
        if number < 0:
            raise ValueError(f"{name}: must not be negative")
        return number
    if isinstance(default, float):
        if not isinstance(value, (str, int, float)):
            raise TypeError(f"{name}: expected a number")
        seconds = float(value)
        # nan would make every "idle >= timeout" comparison false: no watchdog.
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"{name}: must be a finite, non-negative number")
        return seconds
    return str(value)


def _choice(key: str, value: object) -> object:
    """``value`` for setting ``key``, checked against its allowed values if it has any."""
    allowed = _CHOICES.get(key)
    if allowed is None:
        return value
    text = str(value).strip().lower()
    if text not in allowed:
        raise ValueError(f"{key}: expected one of {', '.join(allowed)}")
    return text


def load_settings() -> Settings:
    """Read the settings now: env over ``settings.json`` over defaults.

    A malformed value is ignored (the default stays) rather than raised, because
    hooks must never fail on a typo in the user's configuration.
    """
    home = memoir_home()
    defaults = Settings(home=home)
    values: dict[str, object] = {}
    by_name = defaults._asdict()

    file_values: dict[str, object] = {}
    try:
        with open(os.path.join(home, "settings.json"), encoding="utf-8") as fh:
            loaded = json.load(fh)
        if isinstance(loaded, dict):
            file_values = loaded
    except (OSError, ValueError):
        pass  # no file, or not JSON: defaults stand

    for key, raw in file_values.items():
        if key in by_name and key != "home":
            try:
                values[key] = _choice(key, _coerce(key, by_name[key], raw))
            except (TypeError, ValueError):
                pass
    for env_name, key in _ENV.items():
        raw_env = os.environ.get(env_name)
        if raw_env is not None and raw_env != "":
            try:
                values[key] = _choice(key, _coerce(env_name, by_name[key], raw_env))
            except (TypeError, ValueError):
                pass
    return Settings(home=home, **values)
