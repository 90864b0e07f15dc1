"""Search timings on a large store: ``python -m tests.search_timing [--observations N]``.

Builds the benchmark's year of history (10,000 sessions, 200,000 observations,
50 projects; tests/benchmarks.build_history) in a store at schema 0003, times
migration m0004_recall on it (what the first hook after an upgrade pays) and the
backfill of the search index (what `memoir install` does), then
times ``recall.search`` for typical queries, scoped to one project and across
all of them. Prints one line per case: median and p95 over the runs, and hits.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

from tests import benchmarks

from claude_memoir.paths import db_path
from claude_memoir.recall.search import search
from claude_memoir.store import Store
from claude_memoir.store.schema import MIGRATIONS

QUERIES = [
    ("one word", "cache", {}),
    ("identifier", "ReconcileLedger", {}),
    ("snake_case", "parse_config", {}),
    ("path", "src/cache.py", {}),
    ("question", "what did we do about the config parser last time", {}),
    ("type filter", "cache", {"types": ["bugfix"]}),
    ("file filter", "", {"file": "cache.py"}),
    ("since 30d", "cache", {"since": "30d"}),
]


def _old_schema(home: Path) -> None:
    """Create the store as release 0003 left it (no m0004)."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path(home), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    for name, apply in MIGRATIONS[:3]:
        apply(conn)
        conn.execute("INSERT INTO schema_migrations(name) VALUES (?)", (name,))
    conn.execute("PRAGMA user_version = 3")
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observations", type=int, default=200_000)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        projects = [f"/work/project-{k:02d}" for k in range(50)]
        with mock.patch.object(benchmarks.Store, "open", lambda h: _Closing(_old_schema(h))):
            built = benchmarks.build_history(home, projects, args.sessions, args.observations)
        print(f"store: {built['sessions']} sessions, {built['observations']} observations, "
              f"{built['summaries']} summaries, {built['megabytes']:.0f} MB at schema 0003")
        started = time.monotonic()
        store = Store.open(home)
        print(f"migration m0004_recall (what a hook may pay): {time.monotonic() - started:.2f} s")
        started = time.monotonic()
        backlog = store.search_backlog()
        store.backfill_search(budget=float("inf"))
        print(f"indexing the {backlog} earlier records (memoir install): "
              f"{time.monotonic() - started:.1f} s")
        size = Path(db_path(home)).stat().st_size / 1e6
        print(f"store after m0004: {size:.0f} MB")
        for scope, project in (("one project", projects[0]), ("all projects", None)):
            for name, query, extra in QUERIES:
                times, hits = [], 0
                for _ in range(args.runs):
                    t = time.perf_counter()
                    hits = len(search(store, query, project=project, limit=20,
                                      **extra))  # type: ignore[arg-type]
                    times.append((time.perf_counter() - t) * 1000)
                times.sort()
                p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
                print(f"{scope:<13} {name:<12} median {statistics.median(times):7.1f} ms  "
                      f"p95 {p95:7.1f} ms  hits {hits}")
        store.close()


class _Closing:
    def __init__(self, _: None) -> None:
        pass

    def close(self) -> None:
        pass


if __name__ == "__main__":
    main()
