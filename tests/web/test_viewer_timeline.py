"""A project's timeline in pages: newest first, every session exactly once."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import quote

from claude_memoir.store import Store
from viewerkit import RunningViewer, viewer  # noqa: F401

PROJECT = "/home/dev/projects/big"


def test_pages_cover_every_session_once_even_with_equal_start_times(
        viewer: RunningViewer, memoir_home: Path) -> None:  # noqa: F811
    with Store.open(memoir_home) as store, store.transaction() as conn:
        for i in range(123):
            # Groups of three sessions that started in the same millisecond.
            conn.execute(
                "INSERT INTO sessions (claude_session_id, project, cwd, status, started_at)"
                " VALUES (?, ?, ?, 'completed', ?)",
                (f"sess-{i:03d}", PROJECT, PROJECT, f"2026-01-01T00:00:{i // 3:02d}.000Z"))
        conn.execute("INSERT INTO sessions (claude_session_id, project, cwd, started_at)"
                     " VALUES ('other-project', '/elsewhere', '/elsewhere', '2026-01-02')")
    seen: list[str] = []
    path = f"/project?p={quote(PROJECT)}"
    pages = 0
    while path:
        status, _, body = viewer.request(path)
        assert status == 200
        rows = re.findall(r'data-session-row="([^"]+)"', body)
        assert 0 < len(rows) <= 50
        seen += rows
        pages += 1
        older = re.search(r'<a class="older" href="([^"]+)"', body)
        path = html.unescape(older.group(1)) if older else ""
    assert pages == 3
    assert seen == [f"sess-{i:03d}" for i in range(122, -1, -1)]
    # A cursor that no longer exists (its session was forgotten) is an empty page.
    status, _, body = viewer.request(f"/project?p={quote(PROJECT)}&before=999999")
    assert status == 200 and "data-session-row" not in body
