"""The search index's segments are merged level by level, in short resumable steps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_memoir.store import Store
from conftest import db
from conftest import fragment_search_index as fragment


@pytest.fixture
def store(memoir_home: Path) -> Iterator[Store]:
    s = Store.open(memoir_home)
    yield s
    s.close()


def matches(store: Store, query: str) -> int:
    return int(store.conn.execute("SELECT COUNT(*) FROM observations_fts"
                                  " WHERE observations_fts MATCH ?", (query,)).fetchone()[0])


def test_segments_on_one_level_are_merged_and_searches_still_find_everything(
        store: Store) -> None:
    added = fragment(store, [40] * 12)
    assert store.search_segments("observations") == 12
    before = (matches(store, "rounding"), matches(store, "quux3"), matches(store, "ledger7x5"))
    assert before[0] == added
    assert store.merge_search_index(10.0) >= 1
    assert store.search_segments("observations") == 1
    assert (matches(store, "rounding"), matches(store, "quux3"),
            matches(store, "ledger7x5")) == before


def test_at_most_one_segment_per_level_is_left_and_the_big_one_is_not_rewritten(
        store: Store) -> None:
    # As a worker's commits leave a store under SQLite's automerge: segments
    # of mixed sizes, up to three per level. FTS5's own rule (four on a level)
    # would leave them; pairs are merged instead.
    sizes = [(1, 1, 1, 2, 5, 20)[c % 6] for c in range(200)]
    added = fragment(store, sizes, automerge=True)
    before = store.search_segments("observations")
    assert before >= 5
    assert store.merge_search_index(10.0) >= 1
    after = store.search_segments("observations")
    assert after < before and after <= 3
    assert matches(store, "rounding") == added
    # A few rows more: the next sweep merges those, not the whole index.
    pages = store.conn.execute("SELECT COUNT(*) FROM observations_fts_data").fetchone()[0]
    fragment(store, [1, 1], automerge=True)
    changes = store.conn.total_changes
    store.merge_search_index(10.0)
    assert store.conn.total_changes - changes < pages // 4
    assert matches(store, "rounding") == added + 2


def test_a_compact_index_costs_a_sweep_no_write(store: Store) -> None:
    fragment(store, [40])
    assert store.merge_search_index(10.0) == 0  # sets usermerge once, merges nothing
    changes = store.conn.total_changes
    assert store.merge_search_index(10.0) == 0
    assert store.conn.total_changes - changes < 2 * 3  # a no-op step per table at most
    assert store.search_segments("observations") == 1


def test_a_merge_cut_short_resumes_at_the_next_sweep(store: Store) -> None:
    fragment(store, [80] * 12)
    # No time at all: one step of one page, then the budget is spent.
    assert store.merge_search_index(0.0, pages=1) == 1
    assert store.search_segments("observations") > 1
    # The next sweep continues it, to the end.
    assert store.merge_search_index(30.0, pages=8) >= 2
    assert store.search_segments("observations") == 1
    assert matches(store, "rounding") == 12 * 80


def test_a_busy_store_ends_the_merge_not_the_sweep(memoir_home: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with Store.open(memoir_home) as store:
        fragment(store, [40] * 12)
    other = db(memoir_home)
    other.execute("BEGIN IMMEDIATE")  # another writer, holding the lock
    try:
        with Store.open(memoir_home, timeout=0.2) as store:
            assert store.merge_search_index(10.0) == 0
            assert store.search_segments("observations") == 12
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert "search index: merging stopped after 0 step(s) (busy)" in caplog.text
