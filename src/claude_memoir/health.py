"""Is memory working? One verdict for ``memoir status``, ``memoir doctor`` and the viewer.

Memory can get worse without anything crashing: the agent cannot log in, its
endpoint refuses connections, a worker's Python lacks the SDK, and every session
then ends with a fallback summary. :func:`check_health` reads what the
pipeline recorded (``store.health``, parked events, fallback summaries) and
says ``healthy`` or ``degraded`` with one sentence per reason, each naming the
fix. It is cheap on purpose (three indexed queries, no process scan, no
network): ``memoir status`` runs it every time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from .agent.digest import NOTHING_TO_SUMMARIZE
from .agent.failures import EXPLAIN
from .config import Settings
from .store import Store
from .store.health import HealthRow
from .values import Record

Level = Literal["healthy", "degraded"]

#: How far back fallback summaries count against health.
RECENT_DAYS = 7
# Characters of a recorded error message quoted in a reason.
QUOTE_CHARS = 160


class Health(Record):
    """The verdict: ``level`` and, when degraded, why (one sentence each, with its fix)."""

    level: Level
    reasons: list[str] = []
    # The short form of each reason (same order), for the one-line headline.
    problems: list[str] = []

    def headline(self) -> str:
        """The one line ``memoir status`` starts with."""
        if self.level == "healthy":
            return ("healthy: no unresolved agent, worker or install failure; no fallback "
                    f"summaries in the last {RECENT_DAYS} days; no parked events")
        first = self.problems[0] if self.problems else "see `memoir doctor`"
        more = len(self.problems) - 1
        return f"DEGRADED: {first}" + (f" (+{more} more, see below)" if more > 0 else "")


def _when(timestamp: str | None) -> str:
    # Stored as 2026-12-02T05:50:00.613Z; a status line needs minutes.
    return (timestamp or "")[:16].replace("T", " ") + " UTC" if timestamp else "unknown time"


def _quote(message: str) -> str:
    text = " ".join(message.split())
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1] + "…"


def _agent_reason(row: HealthRow) -> tuple[str, str]:
    what, fix = EXPLAIN.get(row.reason, EXPLAIN["other"])  # type: ignore[call-overload]
    return what, (f"{what} (last failure {_when(row.failed_at)}: \"{_quote(row.message)}\"); "
                  f"fix: {fix}")


def _worker_reason(row: HealthRow) -> tuple[str, str]:
    if row.reason == "missing-dependency":
        what = "workers cannot import their dependencies"
        fix = ("install them into the worker's Python (`pip install claude-agent-sdk psutil`), "
               "or with the plugin let it finish installing them (see `memoir doctor`)")
    else:
        what = "workers fail at start"
        fix = "see logs/memoir.log; `memoir doctor` checks the installation"
    return what, (f"{what} (last failure {_when(row.failed_at)}: \"{_quote(row.message)}\"); "
                  f"fix: {fix}")


def _bootstrap_reason(row: HealthRow) -> tuple[str, str]:
    what = "installing the plugin's worker dependencies failed"
    return what, (f"{what} ({_when(row.failed_at)}: \"{_quote(row.message)}\"); fix: "
                  "make sure `python3 -m venv` and pip work (Debian: `apt install python3-venv`) "
                  "and the package index is reachable, or set MEMOIR_PYTHON to a Python that "
                  "has claude-agent-sdk and psutil; the next session retries")


def check_health(store: Store, settings: Settings) -> Health:
    """Say whether memory is working, and if not why and how to fix it (cheap)."""
    found: list[tuple[str, str]] = []
    records = store.health_records()
    for component, explain in (("bootstrap", _bootstrap_reason), ("worker", _worker_reason),
                               ("agent", _agent_reason)):
        row = records.get(component)
        if row is not None and row.failing:
            found.append(explain(row))
    since = (datetime.now(UTC) - timedelta(days=RECENT_DAYS)).strftime("%Y-%m-%dT%H:%M:%S")
    fallbacks, fallback_sessions = store.count_fallbacks_since(since, NOTHING_TO_SUMMARIZE)
    if fallbacks:
        what = (f"{fallbacks} fallback summar{'y' if fallbacks == 1 else 'ies'} in the last "
                f"{RECENT_DAYS} days")
        found.append((what, f"{what} ({fallback_sessions} session(s)): the memory agent was "
                      "unavailable and summaries were built from raw events; fix the agent, "
                      "then `memoir reprocess SESSION` replaces them (`memoir sessions` lists "
                      "the sessions)"))
    parked, parked_sessions = store.count_parked()
    if parked:
        what = f"{parked} tool event(s) parked after repeated agent failures"
        found.append((what, f"{what} ({parked_sessions} session(s)) and not observed; fix the "
                      "agent, then `memoir reprocess SESSION` retries them"))
    if not found:
        return Health(level="healthy")
    return Health(level="degraded", reasons=[r for _, r in found],
                  problems=[w for w, _ in found])
