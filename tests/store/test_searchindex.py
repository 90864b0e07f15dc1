"""The search index's segments are merged when they pile up, in short resumable steps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_memoir.store import Store


@pytest.fixture
def store(memoir_home: Path) -> Iterator[Store]:
    s = Store.open(memoir_home)
    yield s
    s.close()


def fragment(store: Store, commits: int, per_commit: int = 40) -> None:
    """Observations in ``commits`` single-statement transactions with FTS5's automerge
    off: one index segment each (FTS5 writes a segment per statement), as a
    worker's commits leave the index between SQLite's own merges."""
    store.conn.execute("INSERT INTO observations_fts(observations_fts, rank)"
                       " VALUES ('automerge', 0)")
    session = store.upsert_session("seg-session", "/p", "/p").id
    for c in range(commits):
        rows = [(session, f"ledger{c}x{i} rounding quux{i % 7}",
                 " ".join(f"word{c}{i}{k}" for k in range(30))) for i in range(per_commit)]
        store.conn.execute(
            "INSERT INTO observations (session_id, prompt_number, event_ids, type, title,"
            " narrative) VALUES " + ", ".join(["(?, 1, '[]', 'change', ?, ?)"] * len(rows)),
            [v for row in rows for v in row])


def matches(store: Store, query: str) -> int:
    return int(store.conn.execute("SELECT COUNT(*) FROM observations_fts"
                                  " WHERE observations_fts MATCH ?", (query,)).fetchone()[0])


def test_many_segments_are_merged_into_one_and_searches_still_find_everything(
        store: Store) -> None:
    fragment(store, 12)
    assert store.search_segments("observations") >= 12
    before = (matches(store, "rounding"), matches(store, "quux3"), matches(store, "ledger7x5"))
    assert before[0] == 12 * 40
    steps = store.merge_search_index(10.0)
    assert steps >= 1
    assert store.search_segments("observations") == 1
    assert (matches(store, "rounding"), matches(store, "quux3"),
            matches(store, "ledger7x5")) == before
    # Compact already: the next sweep does nothing.
    assert store.merge_search_index(10.0) == 0


def test_segments_spread_over_levels_are_merged_too(store: Store) -> None:
    # As a worker's commits leave a store under SQLite's automerge: segments of
    # mixed sizes on several levels. FTS5's own merge rule (four on a level)
    # leaves several; past the threshold the sweep merges them all into one.
    session = store.upsert_session("seg-session", "/p", "/p").id
    for c in range(200):
        size = (1, 1, 1, 2, 5, 20)[c % 6]
        store.conn.execute(
            "INSERT INTO observations (session_id, prompt_number, event_ids, type, title)"
            " VALUES " + ", ".join(["(?, 1, '[]', 'change', ?)"] * size),
            [v for i in range(size) for v in (session, f"ledger{c}x{i} rounding")])
    assert store.search_segments("observations") >= 5
    assert store.merge_search_index(10.0, at_segments=2) >= 2
    assert store.search_segments("observations") == 1
    assert matches(store, "rounding") == sum((1, 1, 1, 2, 5, 20)[c % 6] for c in range(200))


def test_a_few_segments_are_left_alone(store: Store) -> None:
    # Under FTS5's own merge rule too (4 on a level): nothing to do, no write.
    fragment(store, 3)
    assert store.search_segments("observations") == 3
    changes = store.conn.total_changes
    assert store.merge_search_index(10.0) == 0
    assert store.search_segments("observations") == 3
    assert store.conn.total_changes - changes < 2 * 3  # each table's probe at most


def test_a_merge_cut_short_resumes_at_the_next_sweep(store: Store) -> None:
    fragment(store, 12, per_commit=80)
    # No time at all: one step of one page, then the budget is spent.
    assert store.merge_search_index(0.0, pages=1) == 1
    assert store.search_segments("observations") > 1
    # The next sweep continues it (a positive step), to the end.
    assert store.merge_search_index(30.0, pages=8) >= 2
    assert store.search_segments("observations") == 1
    assert matches(store, "rounding") == 12 * 80
