"""The store as a hook opens it: the connection's lifecycle and the queries hooks run.

Hooks run on every tool call, and import only this: the lifecycle (open,
migrate when behind, close) and the query areas they use (``sessions``,
``prompts``, ``events``, ``recall``). :class:`~claude_memoir.store.database.Store`
adds the rest for the worker, the CLI and the viewer; loading every area costs
a hook ~3.1 ms where these cost ~1.3 ms (a 2-core machine, per tool call).
tests/hooks/test_hook_imports.py holds the line.
"""

from __future__ import annotations

import os
import sqlite3
import time

from ..errors import InvalidInput, StoreError
from ..log import get_logger
from ..paths import db_path, ensure_private_dir
from .connection import (
    BUSY_TIMEOUT,
    SCHEMA_VERSION,
    StoreConnection,
    quarantine,
    store_error,
)
from .events import EventQueries
from .prompts import PromptQueries
from .recall import RecallQueries
from .sessions import SessionQueries

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Self

log = get_logger(__name__)


class HookStore(SessionQueries, PromptQueries, EventQueries, RecallQueries):
    """A connection to ``memoir.db`` with the queries hooks need."""

    # -- lifecycle ---------------------------------------------------------

    @classmethod
    def open(cls, home: str | os.PathLike[str], *, timeout: float = BUSY_TIMEOUT,
             recover: bool = True) -> Self:
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
    def _open(cls, path: str, home: str | os.PathLike[str], timeout: float) -> Self:
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
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                from .schema import migrate  # only when there is something to migrate

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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
