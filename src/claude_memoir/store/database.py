"""The store: one SQLite file, WAL, migrated when it is opened.

Hooks, workers and the CLI all open it; every write that must survive a crash is
one transaction. Tool events are the durable queue: a hook commits the event
before it tells the worker, and the worker marks events processed in the same
transaction that stores the observations made from them, so a crash at any point
neither loses an event nor duplicates an observation.

:class:`Store` is the connection's lifecycle; its queries live in one module per
area (``sessions``, ``prompts``, ``events``, ``memories``, ``searchindex``, ``recall``,
``retention``, ``usage``, ``health``; for the viewer and the user's own changes
``browsing``, ``curation``, ``transfer``).
"""

from __future__ import annotations

import os
import sqlite3
import time

from ..errors import InvalidInput, StoreError
from ..log import get_logger
from ..paths import db_path, ensure_private_dir
from .browsing import BrowsingQueries
from .connection import BUSY_TIMEOUT, StoreConnection, quarantine, store_error
from .curation import CurationQueries
from .events import EventQueries
from .health import HealthQueries
from .memories import MemoryQueries
from .prompts import PromptQueries
from .recall import RecallQueries
from .retention import RetentionQueries
from .schema import migrate
from .searchindex import SearchIndexQueries
from .sessions import SessionQueries
from .transfer import TransferQueries
from .usage import UsageQueries

log = get_logger(__name__)


class Store(SessionQueries, PromptQueries, EventQueries, MemoryQueries, SearchIndexQueries,
            RetentionQueries, UsageQueries, HealthQueries, RecallQueries, BrowsingQueries,
            CurationQueries, TransferQueries):
    """A connection to ``memoir.db`` with the queries every part needs."""

    # -- lifecycle ---------------------------------------------------------

    @classmethod
    def open(cls, home: str | os.PathLike[str], *, timeout: float = BUSY_TIMEOUT,
             recover: bool = True) -> Store:
        """Open (creating and migrating if needed) the store under ``home``.

        A file that is not a readable SQLite database is quarantined (moved
        aside with a timestamp, loudly logged) and a fresh store created, unless
        ``recover`` is False (then StoreError with reason ``corrupt``).
        """
        path = db_path(home)
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            try:
                return cls._open(path, home, timeout)
            except StoreError as e:
                if e.reason == "corrupt" and recover:
                    quarantine(path)
                    return cls._open(path, home, timeout)
                # SQLite answers BUSY without waiting when waiting could
                # deadlock, e.g. processes racing to switch a fresh file to WAL
                # or to migrate it; retry until the same deadline instead.
                if e.reason != "busy" or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    @classmethod
    def _open(cls, path: str, home: str | os.PathLike[str], timeout: float) -> Store:
        try:
            ensure_private_dir(home)
            if not os.path.exists(path):
                # Create the file 0600 ourselves: sqlite3 would honour the umask,
                # and the store holds the user's prompts and tool output.
                os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            conn = sqlite3.connect(path, timeout=timeout, isolation_level=None,
                                   factory=StoreConnection)
        except (OSError, sqlite3.Error, InvalidInput) as e:
            raise StoreError(f"cannot open {path}: {e}", reason="open", path=str(path)) from e
        conn.store_path = path
        conn.row_factory = sqlite3.Row
        store = cls(conn, path)
        try:
            # Reading the schema touches the header and first page: a file that
            # is not a database, or a truncated one, fails here, not mid-hook.
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            # WAL: readers never block the writer, and a commit is one append.
            # synchronous=FULL: a committed event survives power loss too, which
            # is the promise made to the hook that reports it "received".
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("journal_mode is %s, not wal, for %s", mode, path)
            conn.execute("PRAGMA synchronous = FULL")
            migrate(conn, path, store.transaction)
        except StoreError:
            conn.close()
            raise
        except sqlite3.Error as e:
            conn.close()
            raise store_error(e, path, "preparing") from e
        return store

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

