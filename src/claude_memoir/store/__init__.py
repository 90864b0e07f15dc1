"""The SQLite store every part shares (``$MEMOIR_HOME/memoir.db``).

``connection`` opens it and maps SQLite errors, ``schema`` migrates it, ``rows``
are its values, and one module per query area (``sessions``, ``prompts``,
``events``, ``memories``, ``usage``) makes up :class:`Store`.
"""

from .connection import BUSY_TIMEOUT, quarantine, store_error
from .database import Store
from .events import MAX_EVENT_ATTEMPTS
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
