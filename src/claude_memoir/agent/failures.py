"""Why the memory agent failed, in words a user can act on.

The agent's Claude Code CLI reports a failed turn as text ("Not logged in ·
Please run /login", "API Error: Connection refused … (ECONNREFUSED)"); the
worker records the kind of failure durably (``store.health``) so that
``memoir status`` and ``memoir doctor`` can say what is wrong and how to fix it,
instead of the user finding fallback summaries weeks later. The kind is decided
from the SDK's own error tags first, then from the CLI's message.
"""

from __future__ import annotations

import re
from typing import Literal

from ..errors import AgentError

FailureKind = Literal[
    "not-logged-in", "auth-failed", "billing", "connection-refused", "unreachable",
    "rate-limited", "model-unavailable", "api-error", "timeout", "no-sdk", "start-failed",
    "other",
]

# (pattern over the CLI's message, kind): first match wins, so the specific
# come before the general.
_RULES: tuple[tuple[str, FailureKind], ...] = (
    (r"not logged in|please run /login|no api key|missing api key", "not-logged-in"),
    (r"apikeyhelper|invalid (api|x-api) key|authentication|unauthori[sz]ed|\b401\b"
     r"|\b403\b|oauth token|token (has )?expired", "auth-failed"),
    (r"credit balance|billing|quota", "billing"),
    (r"econnrefused|connection refused", "connection-refused"),
    (r"enotfound|eai_again|getaddrinfo|econnreset|etimedout|network|connection error"
     r"|unable to connect|socket hang up|certificate|self.signed", "unreachable"),
    (r"\b429\b|rate.limit", "rate-limited"),
    (r"model.*(not found|not_found|does not exist|invalid)|\b404\b", "model-unavailable"),
    (r"api error|\b5\d\d\b|overloaded|internal server error", "api-error"),
)
_PATTERNS = tuple((re.compile(p, re.IGNORECASE), kind) for p, kind in _RULES)

_BY_REASON: dict[str, FailureKind] = {
    "timeout": "timeout",
    "no-sdk": "no-sdk",
}


def classify(error: AgentError) -> FailureKind:
    """The kind of an agent failure, for the health record."""
    if error.reason in _BY_REASON:
        return _BY_REASON[error.reason]
    text = str(error)
    for pattern, kind in _PATTERNS:
        if pattern.search(text):
            return kind
    return "start-failed" if error.reason == "start" else "other"


#: Per kind: what went wrong (a sentence) and the fix.
EXPLAIN: dict[FailureKind, tuple[str, str]] = {
    "not-logged-in": (
        "the memory agent is not logged in",
        "log in with `claude` (then /login), export ANTHROPIC_API_KEY where Claude Code "
        "runs, or set apiKeyHelper in ~/.claude/settings.json"),
    "auth-failed": (
        "the memory agent's credentials were rejected",
        "check ANTHROPIC_API_KEY / your apiKeyHelper, or log in again with `claude` /login"),
    "billing": (
        "the memory agent's account cannot pay for requests",
        "check the account's credit balance or plan"),
    "connection-refused": (
        "the memory agent's API endpoint refused the connection",
        "check ANTHROPIC_BASE_URL, your proxy or gateway, and that it is running"),
    "unreachable": (
        "the memory agent cannot reach its API",
        "check the network, proxy settings (HTTPS_PROXY) and ANTHROPIC_BASE_URL"),
    "rate-limited": (
        "the memory agent is being rate limited",
        "wait, or use a key with a higher limit; `memoir reprocess` redoes what was missed"),
    "model-unavailable": (
        "the memory agent's model is not available",
        "set MEMOIR_MODEL to a model your account can use"),
    "api-error": (
        "the memory agent's API returned errors",
        "usually transient; `memoir reprocess SESSION` redoes the work once it answers"),
    "timeout": (
        "the memory agent did not answer in time",
        "check the network; raise MEMOIR_AGENT_TIMEOUT if replies are just slow"),
    "no-sdk": (
        "claude-agent-sdk is not installed for the worker",
        "install claude-memoir's dependencies into the worker's Python "
        "(`pip install claude-agent-sdk psutil`)"),
    "start-failed": (
        "the memory agent's Claude Code CLI did not start",
        "run `memoir doctor --live` and see logs/memoir.log; reinstall claude-agent-sdk"),
    "other": (
        "the memory agent failed",
        "see logs/memoir.log; `memoir doctor --live` tries one request"),
}
