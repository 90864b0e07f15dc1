"""The search index's upkeep, in short steps: rows stored before migration m0004
indexed, and the index's segments merged level by level."""

from __future__ import annotations

import json
import time

from ..errors import StoreError
from ..log import get_logger
from ..text import code_terms
from .connection import Connected
from .schema import SEARCH_TABLES

log = get_logger(__name__)

#: Rows indexed per transaction: ~50 ms of work, so a hook waiting for the
#: write lock meanwhile waits no longer than that.
BACKFILL_CHUNK = 500

#: Pages written per merge step, each its own transaction (~10-25 ms on a
#: 200,000-observation store), so a hook waiting to record waits no longer.
MERGE_STEP_PAGES = 64
#: FTS5's ``usermerge`` for the sweep's merges: two segments on one level are
#: merged (FTS5's default, 4, lets three pile up on every level).
MERGE_PAIRS = 2

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
    """Indexing rows that predate the search index (migration m0004); merging its segments."""

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

    def search_segments(self, table: str) -> int:
        """How many segments (b-trees) the FTS5 index of ``table`` holds.

        Counted in the index's ``_idx`` shadow table, which has rows for every
        segment (~1 ms on a 200,000-observation store).
        """
        return int(self.conn.execute(
            f"SELECT COUNT(DISTINCT segid) FROM {table}_fts_idx").fetchone()[0])

    def merge_search_index(self, budget: float, *, pages: int = MERGE_STEP_PAGES) -> int:
        """Merge the search index's segments level by level, for about ``budget``
        seconds; return the merge steps that did work. Never raises: the store
        busy or failing ends this upkeep (logged), not the caller's sweep.

        Every word search and recall look up seeks each segment of an FTS5
        index, and FTS5's automerge (run by every writer) leaves up to three on
        each level: 18 on the benchmark's 200,000-observation store, where
        prompt-time recall's lookups then took about twice as long. With
        ``usermerge`` at 2, FTS5's 'merge' command merges any two segments of
        one level, leaving at most one per level (3 on that store). The large
        segment that holds most of the index is rewritten only when another
        reaches its level, as in any log-structured merge, so the sweep after
        a session merges little. Each step is one short transaction followed
        by a pause as long, for writers that queued meanwhile; a positive step
        continues a merge already started, so one cut short by the budget
        resumes at the next sweep (sqlite.org/fts5.html, the 'merge' command).
        """
        deadline = time.monotonic() + budget
        steps = 0
        try:
            for table in SEARCH_TABLES:
                fts = f"{table}_fts"
                setting = self.conn.execute(
                    f"SELECT v FROM {fts}_config WHERE k = 'usermerge'").fetchone()
                if setting is None or setting[0] != MERGE_PAIRS:
                    with self.transaction() as conn:
                        conn.execute(f"INSERT INTO {fts}({fts}, rank) VALUES ('usermerge', ?)",
                                     (MERGE_PAIRS,))
                while True:
                    began = time.monotonic()
                    if not self._merge_step(fts, pages):
                        break
                    steps += 1
                    if time.monotonic() >= deadline:
                        log.info("search index: merging %s continues at the next sweep", fts)
                        return steps
                    # Writers that queued behind this step get the lock first.
                    time.sleep(min(time.monotonic() - began, 0.05))
        except StoreError as e:
            log.warning("search index: merging stopped after %d step(s) (%s): %s", steps,
                        e.reason, e)
        return steps

    def _merge_step(self, fts: str, pages: int) -> bool:
        """One FTS5 'merge' step in its own transaction; True if it merged anything
        (a step that changes fewer than two rows found nothing to merge)."""
        before = self.conn.total_changes
        with self.transaction() as conn:
            conn.execute(f"INSERT INTO {fts}({fts}, rank) VALUES ('merge', ?)", (pages,))
        return self.conn.total_changes - before >= 2
