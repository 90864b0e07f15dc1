"""The spool: payloads written when the database stayed locked, replayed in order."""

from __future__ import annotations

import fcntl
import os
import stat
import time
from pathlib import Path

from claude_memoir import spool
from claude_memoir.config import load_settings
from claude_memoir.errors import InvalidInput, StoreError
from claude_memoir.hooks.record import replay_item
from claude_memoir.spool import SpoolItem
from claude_memoir.store import Store
from conftest import payload


def test_write_is_private_and_replay_keeps_order(memoir_home: Path) -> None:
    for i in range(5):
        spool.write(memoir_home, "post-tool-use", {"session_id": f"s{i % 2}", "n": i})
    files = spool.pending(memoir_home)
    assert len(files) == 5
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert stat.S_IMODE(Path(spool.spool_dir(memoir_home)).stat().st_mode) == 0o700
    seen: list[int] = []

    def record(item: SpoolItem) -> str:
        seen.append(item.payload["n"])
        return str(item.payload["session_id"])

    assert spool.replay(memoir_home, record) == ["s0", "s1"]
    assert seen == [0, 1, 2, 3, 4]
    assert spool.pending(memoir_home) == []


def test_busy_pauses_replay_and_keeps_the_rest(memoir_home: Path) -> None:
    for i in range(3):
        spool.write(memoir_home, "stop", {"n": i})

    def record(item: SpoolItem) -> None:
        if item.payload["n"] == 1:
            raise StoreError("locked", reason="busy")

    spool.replay(memoir_home, record)
    assert len(spool.pending(memoir_home)) == 2  # n=1 and n=2 wait for the next try


def test_invalid_and_unreadable_files_do_not_block_the_spool(memoir_home: Path) -> None:
    spool.write(memoir_home, "stop", {"n": 0})
    bad = Path(spool.spool_dir(memoir_home)) / "00000000000000000001-1.json"
    bad.write_text("{not json")
    spool.write(memoir_home, "stop", {"n": 2})
    recorded: list[int] = []

    def record(item: SpoolItem) -> None:
        if item.payload["n"] == 0:
            raise InvalidInput("bad", reason="bad-payload")
        recorded.append(item.payload["n"])

    spool.replay(memoir_home, record)
    assert recorded == [2]
    assert spool.pending(memoir_home) == []
    assert bad.with_suffix(".bad").exists()  # kept for inspection


def test_replay_waits_its_turn_while_another_process_replays(memoir_home: Path) -> None:
    spool.write(memoir_home, "stop", {"n": 0})
    # Another replayer (a worker, a hook) holds the lock: this one leaves the
    # files alone instead of recording them a second time.
    fd = os.open(Path(spool.spool_dir(memoir_home)) / spool.LOCK_NAME, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert spool.replay(memoir_home, lambda item: None) is None
        assert len(spool.pending(memoir_home)) == 1
    finally:
        os.close(fd)
    assert spool.replay(memoir_home, lambda item: None) == []
    assert spool.pending(memoir_home) == []


def test_a_file_that_vanished_is_skipped_not_an_error(memoir_home: Path) -> None:
    first = spool.write(memoir_home, "stop", {"n": 0})
    second = spool.write(memoir_home, "stop", {"n": 1})
    seen: list[int] = []

    def record(item: SpoolItem) -> None:
        seen.append(item.payload["n"])
        second.unlink()  # replayed meanwhile by a process that held the lock earlier

    assert spool.replay(memoir_home, record) == []
    assert seen == [0] and not first.exists()
    assert spool.rejected(memoir_home) == []  # nothing moved aside for it


def _session(store: Store, sid: str) -> int:
    return store.upsert_session(sid, "/p", "/p").id


def test_replayed_event_and_stop_keep_the_prompt_of_their_time(memoir_home: Path) -> None:
    settings = load_settings()
    sid = payload("post_tool_use_bash")["session_id"]
    with Store.open(memoir_home) as store:
        row = _session(store, sid)
        store.add_prompt(row, "first")
        # Spooled while prompt 1 ran...
        spool.write(memoir_home, "post-tool-use", payload("post_tool_use_bash"))
        spool.write(memoir_home, "stop", {**payload("stop"), "session_id": sid,
                                          "last_assistant_message": "done with 1"})
        # ... replayed only after prompt 2 began (later: times are kept to the
        # millisecond, and a tie would be ambiguous).
        time.sleep(0.01)
        assert store.add_prompt(row, "second") == 2
        assert spool.replay(memoir_home, lambda item: replay_item(store, item, settings)) \
            == [sid]
        (number,) = store.conn.execute("SELECT prompt_number FROM events").fetchone()
        finished = store.conn.execute(
            "SELECT prompt_number, response FROM prompts WHERE finished_at IS NOT NULL"
        ).fetchall()
    assert number == 1
    assert [tuple(r) for r in finished] == [(1, "done with 1")]


def test_a_prompt_replayed_twice_is_stored_once(memoir_home: Path) -> None:
    settings = load_settings()
    data = payload("user_prompt_submit")
    spool.write(memoir_home, "user-prompt-submit", data)
    (path,) = spool.pending(memoir_home)
    item = spool._read(path)
    with Store.open(memoir_home) as store:
        # Two replayers (or one crashed before its unlink) record the same file.
        replay_item(store, item, settings)
        replay_item(store, item, settings)
        rows = store.conn.execute("SELECT prompt_number, text, created_at FROM prompts"
                                  ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [(1, data["prompt"])]
    assert rows[0][2] == item.spooled_at  # the prompt's time is its hook's, not the replay's
