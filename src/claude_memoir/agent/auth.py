"""How the memory agent authenticates: the way the user's own Claude Code does.

The agent's Claude Code CLI runs with ``setting_sources=[]`` so that it never
loads the user's hooks (ours among them: the agent would record itself). That
also drops every other setting of the user's, and with them ``apiKeyHelper``:
a user whose Claude Code gets its key from a helper saw the agent fail with
"Not logged in" in every session, and got fallback summaries only.

So the credential settings are read here from the same files Claude Code reads
(user, project, local; later wins, as in Claude Code) and handed to the agent's
CLI through ``--settings`` (the SDK's ``settings`` option), together with
``disableAllHooks``. Only credential keys travel: no hooks, no permissions, no
plugins. Environment keys reach the agent through the worker's environment,
which is the hook's (Claude Code applies its settings' ``env`` to it); the
logged-in subscription is read by the CLI itself from the user's Claude
config directory, which ``setting_sources`` does not affect.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Literal

from ..log import get_logger
from ..values import Record

log = get_logger(__name__)

#: Settings keys of ``env`` that choose the endpoint or carry credentials: the
#: only entries of a settings file's ``env`` passed on to the agent.
AUTH_ENV_PREFIXES = ("ANTHROPIC_", "AWS_", "CLOUD_ML_", "CLAUDE_CODE_USE_",
                     "CLAUDE_CODE_OAUTH_", "VERTEX_")

CredentialKind = Literal["environment", "api-key-helper", "settings-env", "login", "none"]


class Credential(Record):
    """How the agent will authenticate, as far as can be told without a request."""

    kind: CredentialKind
    # Where it comes from: a variable name or a file, for messages.
    source: str = ""


def claude_config_dir() -> Path:
    """Claude Code's user directory: ``$CLAUDE_CONFIG_DIR`` or ``~/.claude``."""
    raw = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(raw).expanduser() if raw else Path.home() / ".claude"


def managed_settings_path() -> Path:
    """Where an administrator's managed settings live on this platform."""
    if sys.platform == "darwin":
        return Path("/Library/Application Support/ClaudeCode/managed-settings.json")
    return Path("/etc/claude-code/managed-settings.json")


def settings_files(project: str | os.PathLike[str] | None) -> list[Path]:
    """The settings files the user's Claude Code reads, lowest precedence first."""
    files = [claude_config_dir() / "settings.json"]
    if project:
        base = Path(project) / ".claude"
        files += [base / "settings.json", base / "settings.local.json"]
    return files


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.warning("cannot read Claude Code settings %s: %s", path, e)
        return {}
    return data if isinstance(data, dict) else {}


def agent_settings(project: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The ``--settings`` the agent's CLI gets: credential keys only, hooks off.

    ``apiKeyHelper`` and the credential entries of ``env`` are taken from the
    user's settings files, later files overriding earlier ones as in Claude
    Code. Managed settings are not copied: the CLI always reads those itself.
    """
    helper: str | None = None
    env: dict[str, str] = {}
    for path in settings_files(project):
        data = _read(path)
        value = data.get("apiKeyHelper")
        if isinstance(value, str) and value.strip():
            helper = value
        raw_env = data.get("env")
        if isinstance(raw_env, dict):
            env.update({str(k): str(v) for k, v in raw_env.items()
                        if str(k).startswith(AUTH_ENV_PREFIXES) and v is not None})
    # Belt and braces with setting_sources=[]: whatever else the CLI loads
    # (managed settings), the agent's process must never run hooks.
    settings: dict[str, Any] = {"disableAllHooks": True}
    if helper:
        settings["apiKeyHelper"] = helper
    if env:
        settings["env"] = env
    return settings


def find_credential(project: str | os.PathLike[str] | None = None) -> Credential:
    """The first credential the agent would find, in Claude Code's order, or ``none``.

    Cheap (a few file reads): used by ``memoir doctor``. It cannot tell a
    valid key from an expired one; the worker's recorded agent errors can.
    """
    for name in ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"):
        if os.environ.get(name):
            return Credential(kind="environment", source=name)
    for name in ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX"):
        if os.environ.get(name) not in (None, "", "0", "false"):
            return Credential(kind="environment", source=name)
    for path in [managed_settings_path(), *reversed(settings_files(project))]:
        data = _read(path)
        if isinstance(data.get("apiKeyHelper"), str) and data["apiKeyHelper"].strip():
            return Credential(kind="api-key-helper", source=str(path))
        raw_env = data.get("env")
        if isinstance(raw_env, dict) and any(
                k in raw_env for k in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")):
            return Credential(kind="settings-env", source=str(path))
    credentials = claude_config_dir() / ".credentials.json"
    if credentials.exists():
        return Credential(kind="login", source=str(credentials))
    if sys.platform == "darwin":
        # On macOS the login is in the Keychain, which a file check cannot see.
        return Credential(kind="login", source="the macOS Keychain (not verified)")
    return Credential(kind="none")
