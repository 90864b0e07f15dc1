"""The connection: opening ``memoir.db``, transactions, and SQLite errors as StoreError.

One boundary for the whole store: every sqlite3 error leaves as a
:class:`~claude_memoir.errors.StoreError` whose ``reason`` (``busy``,
``corrupt``, ``write``, ``open``) says what the caller can do, decided by
SQLite's error code, never by its message text.
"""

from __future__ import annotations

import os
import sqlite3
import time

from ..errors import StoreError
from ..log import get_logger

# Hooks import the store on every tool call: no typing, dataclasses, contextlib
# or pathlib at run time (~15 ms of imports together); type names are for
# type checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)

# Seconds a connection waits on a locked database before giving up. Hooks run
# while the user waits, so this is a bound, not a hope.
BUSY_TIMEOUT = 3.0

#: The current time as SQL, in the format every timestamp column holds.
NOW = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"

#: How many migrations ``schema`` holds: a store at this ``user_version`` is
#: current, and opening it needs no import of the migrations (hooks; see
#: ``hookstore``). tests/store/test_store.py keeps it equal to len(MIGRATIONS).
SCHEMA_VERSION = 9

# SQLite's primary result codes (the low byte of an extended code).
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def store_error(e: sqlite3.Error, path: str, doing: str) -> StoreError:
    """Convert a sqlite3 error into a StoreError whose reason says what to do.

    ``busy``: another writer held the lock past the timeout (try later or spool);
    ``corrupt``: the file is damaged (quarantine it); ``write``: anything else.
    Decided by SQLite's result code: messages change between versions.
    """
    code = getattr(e, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in _BUSY_CODES:
        reason = "busy"
    elif primary in _CORRUPT_CODES:
        reason = "corrupt"
    else:
        reason = "write"
    return StoreError(f"{doing} {path} failed: {e}", reason=reason, path=str(path),
                      sqlite_code=code)


class StoreConnection(sqlite3.Connection):
    """A connection whose errors leave as StoreError, from every query.

    One boundary for the whole module: callers (hooks, worker loop, CLI) catch
    MemoirError and read ``reason`` instead of matching sqlite3 messages.
    """

    store_path: str

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as e:
            raise store_error(e, self.store_path, "query on") from e


def quarantine(path: str | os.PathLike[str]) -> str | None:
    """Move a damaged database (and its -wal/-shm) aside; return the new name.

    The timestamped name keeps every damaged copy for inspection or salvage;
    nothing is deleted. A concurrent process may have moved it first: None.
    """
    path = os.fspath(path)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target = f"{path}.corrupt-{stamp}-{os.getpid()}"
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    for suffix in ("-wal", "-shm"):
        try:
            os.replace(f"{path}{suffix}", f"{target}{suffix}")
        except FileNotFoundError:
            pass
    log.error("DAMAGED DATABASE: %s could not be read; moved aside to %s and replaced by "
              "a fresh one. Nothing was deleted; `memoir doctor` explains recovery.",
              path, target)
    return target


class Transaction:
    """The context manager behind :meth:`Store.transaction` (a class, not
    ``contextlib``: one import less per hook)."""

    __slots__ = ("conn", "path")

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self.conn = conn
        self.path = path

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")  # StoreError(busy) past the timeout
        return self.conn

    def __exit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        if error is not None:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if isinstance(error, sqlite3.Error):  # raised by a cursor, not execute()
                raise store_error(error, self.path, "write to") from error
            return  # re-raised by the with statement
        try:
            self.conn.execute("COMMIT")
        except StoreError:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise



class Connected:
    """What every query area builds on: the open connection and its transactions."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self.conn = conn
        self.path = path

    def transaction(self) -> Transaction:
        """``with store.transaction() as conn:`` BEGIN IMMEDIATE … COMMIT, or ROLLBACK on error.

        IMMEDIATE takes the write lock up front, so two writers queue on the
        busy timeout instead of failing half-way with SQLITE_BUSY. sqlite3
        errors leave as StoreError (a locked database past the timeout, a full
        disk), so callers handle one family.
        """
        return Transaction(self.conn, self.path)
