"""The store: one SQLite file, WAL, migrated when it is opened.

Hooks, workers and the CLI all open it; every write that must survive a crash is
one transaction. Tool events are the durable queue: a hook commits the event
before it tells the worker, and the worker marks events processed in the same
transaction that stores the observations made from them, so a crash at any point
neither loses an event nor duplicates an observation.

:class:`Store` is every query area on the lifecycle of
:class:`~claude_memoir.store.hookstore.HookStore` (open, migrate, close), which
holds what hooks use (``sessions``, ``prompts``, ``events``, ``recall``); the
others are ``memories``, ``searchindex``, ``retention``, ``usage``, ``health``,
and for the viewer and the user's own changes ``browsing``, ``curation``,
``transfer``.
"""

from __future__ import annotations

from .browsing import BrowsingQueries
from .curation import CurationQueries
from .health import HealthQueries
from .hookstore import HookStore
from .memories import MemoryQueries
from .retention import RetentionQueries
from .searchindex import SearchIndexQueries
from .transfer import TransferQueries
from .usage import UsageQueries


class Store(HookStore, MemoryQueries, SearchIndexQueries, RetentionQueries, UsageQueries,
            HealthQueries, BrowsingQueries, CurationQueries, TransferQueries):
    """A connection to ``memoir.db`` with the queries every part needs (hooks:
    :class:`HookStore`, the same lifecycle with only theirs)."""

    def integrity_problems(self) -> list[str]:
        """Run SQLite's full integrity check; [] when the database is sound.

        Reads every page, so it is for `memoir doctor`, never for hooks.
        """
        rows = [str(r[0]) for r in self.conn.execute("PRAGMA integrity_check").fetchall()]
        return [] if rows == ["ok"] else rows

    def migrations(self) -> list[str]:
        """Names of the applied migrations, in order."""
        return [r[0] for r in self.conn.execute(
            "SELECT name FROM schema_migrations ORDER BY rowid")]

