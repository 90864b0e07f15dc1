"""The search index's backfill: rows stored before migration m0004 indexed in short steps."""

from __future__ import annotations

import json
import time

from ..log import get_logger
from ..text import code_terms
from .connection import Connected
from .schema import SEARCH_TABLES

log = get_logger(__name__)

#: Rows indexed per transaction: ~50 ms of work, so a hook waiting for the
#: write lock meanwhile waits no longer than that.
BACKFILL_CHUNK = 500

# The columns whose values feed a row's split identifiers (``terms``).
_TERM_SOURCES = {
    "observations": ("title", "subtitle", "narrative", "facts", "concepts", "files_read",
                     "files_modified"),
    "summaries": ("request", "investigated", "learned", "completed", "next_steps", "notes"),
    "prompts": ("text",),
}
_JSON_LISTS = frozenset({"facts", "concepts", "files_read", "files_modified"})


def _texts(column: str, value: object) -> list[object]:
    if column in _JSON_LISTS and isinstance(value, str):
        try:
            loaded = json.loads(value or "[]")
        except ValueError:
            return [value]
        return list(loaded) if isinstance(loaded, list) else [value]
    return [value]


class SearchIndexQueries(Connected):
    """Indexing rows that predate the search index (migration m0004)."""

    def search_backlog(self) -> int:
        """Rows not in the search index yet (0 once the backfill is done)."""
        total = 0
        for table in SEARCH_TABLES:
            row = self.conn.execute(
                "SELECT indexed_from FROM search_backfill WHERE tbl = ?", (table,)).fetchone()
            if row is not None and row[0] > 1:
                total += int(self.conn.execute(
                    f"SELECT COUNT(*) FROM {table} WHERE id < ?", (row[0],)).fetchone()[0])
        return total

    def backfill_search(self, budget: float, chunk: int = BACKFILL_CHUNK) -> int:
        """Index older rows, newest first, for about ``budget`` seconds; return rows left.

        Each chunk is one transaction: its identifiers split into ``terms``,
        its rows added to the FTS index, and ``search_backfill`` moved down, so
        an interrupted backfill resumes where it stopped and never indexes a
        row twice. Newest first, because recent work is what is searched most.
        """
        deadline = time.monotonic() + budget
        for table, columns in SEARCH_TABLES.items():
            while True:
                done = self._backfill_chunk(table, columns, chunk)
                if done or time.monotonic() >= deadline:
                    break
            if time.monotonic() >= deadline:
                break
        return self.search_backlog()

    def _backfill_chunk(self, table: str, columns: tuple[str, ...], chunk: int) -> bool:
        """Index one chunk of ``table``; True when nothing is left to index there."""
        with self.transaction() as conn:
            row = conn.execute("SELECT indexed_from FROM search_backfill WHERE tbl = ?",
                               (table,)).fetchone()
            if row is None or row[0] <= 1:
                return True
            upper = int(row[0])
            sources = _TERM_SOURCES[table]
            rows = conn.execute(
                f"SELECT id, {', '.join(sources)} FROM {table} WHERE id < ?"
                " ORDER BY id DESC LIMIT ?", (upper, chunk)).fetchall()
            if not rows:
                conn.execute("UPDATE search_backfill SET indexed_from = 0 WHERE tbl = ?",
                             (table,))
                log.info("search index: every earlier row of %s is indexed", table)
                return True
            lower = int(rows[-1][0])
            # The update triggers skip rows below indexed_from, so setting
            # terms here does not touch the index; the INSERT below adds them.
            conn.executemany(f"UPDATE {table} SET terms = ? WHERE id = ?", [
                (code_terms(*[t for c, v in zip(sources, r[1:], strict=True)
                              for t in _texts(c, v)]), r[0]) for r in rows])
            cols = ", ".join(columns)
            conn.execute(f"INSERT INTO {table}_fts(rowid, {cols}) SELECT id, {cols}"
                         f" FROM {table} WHERE id >= ? AND id < ?", (lower, upper))
            conn.execute("UPDATE search_backfill SET indexed_from = ? WHERE tbl = ?",
                         (lower, table))
        return False
