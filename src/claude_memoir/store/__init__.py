"""The SQLite store every part shares (``$MEMOIR_HOME/memoir.db``).

``connection`` opens it and maps SQLite errors, ``schema`` migrates it, ``rows``
are its values, and one module per query area (``sessions``, ``prompts``,
``events``, ``memories``, ``usage``, ...) makes up :class:`Store`;
``hookstore`` holds the part hooks use.

The names below load their modules on first use (PEP 562), not with the
package: a hook imports ``claude_memoir.store.hookstore`` alone, and importing
this package must not bring in every query area (~1.8 ms of every tool call).
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .connection import BUSY_TIMEOUT, quarantine, store_error
    from .database import Store
    from .events import MAX_EVENT_ATTEMPTS
    from .hookstore import HookStore
    from .rows import (
        EventRow,
        ObservationRow,
        PromptWork,
        SessionRow,
        SessionStats,
        SummaryRow,
        UsageDay,
        UsageTotal,
    )
    from .schema import MIGRATIONS

__all__ = [
    "BUSY_TIMEOUT",
    "MAX_EVENT_ATTEMPTS",
    "MIGRATIONS",
    "EventRow",
    "HookStore",
    "ObservationRow",
    "PromptWork",
    "SessionRow",
    "SessionStats",
    "Store",
    "SummaryRow",
    "UsageDay",
    "UsageTotal",
    "quarantine",
    "store_error",
]

# Which module defines each name.
_HOMES = {
    "BUSY_TIMEOUT": "connection", "quarantine": "connection", "store_error": "connection",
    "Store": "database", "HookStore": "hookstore", "MAX_EVENT_ATTEMPTS": "events",
    "MIGRATIONS": "schema", "EventRow": "rows", "ObservationRow": "rows", "PromptWork": "rows",
    "SessionRow": "rows", "SessionStats": "rows", "SummaryRow": "rows", "UsageDay": "rows",
    "UsageTotal": "rows",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # once: later lookups find it directly
    return value
