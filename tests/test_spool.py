"""The spool: payloads written when the database stayed locked, replayed in order."""

from __future__ import annotations

import stat
from pathlib import Path

from claude_memoir import spool
from claude_memoir.errors import InvalidInput, StoreError


def test_write_is_private_and_replay_keeps_order(memoir_home: Path) -> None:
    for i in range(5):
        spool.write(memoir_home, "post-tool-use", {"session_id": f"s{i % 2}", "n": i})
    files = spool.pending(memoir_home)
    assert len(files) == 5
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert stat.S_IMODE(Path(spool.spool_dir(memoir_home)).stat().st_mode) == 0o700
    seen: list[int] = []

    def record(event: str, payload: dict) -> str:
        seen.append(payload["n"])
        return payload["session_id"]

    assert spool.replay(memoir_home, record) == ["s0", "s1"]
    assert seen == [0, 1, 2, 3, 4]
    assert spool.pending(memoir_home) == []


def test_busy_pauses_replay_and_keeps_the_rest(memoir_home: Path) -> None:
    for i in range(3):
        spool.write(memoir_home, "stop", {"n": i})

    def record(event: str, payload: dict) -> None:
        if payload["n"] == 1:
            raise StoreError("locked", reason="busy")

    spool.replay(memoir_home, record)
    assert len(spool.pending(memoir_home)) == 2  # n=1 and n=2 wait for the next try


def test_invalid_and_unreadable_files_do_not_block_the_spool(memoir_home: Path) -> None:
    spool.write(memoir_home, "stop", {"n": 0})
    bad = Path(spool.spool_dir(memoir_home)) / "00000000000000000001-1.json"
    bad.write_text("{not json")
    spool.write(memoir_home, "stop", {"n": 2})
    recorded: list[int] = []

    def record(event: str, payload: dict) -> None:
        if payload["n"] == 0:
            raise InvalidInput("bad", reason="bad-payload")
        recorded.append(payload["n"])

    spool.replay(memoir_home, record)
    assert recorded == [2]
    assert spool.pending(memoir_home) == []
    assert bad.with_suffix(".bad").exists()  # kept for inspection
