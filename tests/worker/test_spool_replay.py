"""Two real workers replaying one spool at once: every payload lands once, nobody crashes."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from claude_memoir import ipc, spool
from claude_memoir.paths import socket_path
from claude_memoir.store import Store
from conftest import Spawned, db, start_worker, wait_for

PROMPTS = 150


def test_two_workers_replay_one_spool_without_duplicates_or_crashes(
        memoir_home: Path, spawned: Spawned) -> None:
    with Store.open(memoir_home) as store:
        for sid in ("worker-a", "worker-b", "spooled-session"):
            store.upsert_session(sid, "/p", "/p")
    workers = [start_worker(spawned, memoir_home, sid)[0] for sid in ("worker-a", "worker-b")]

    # The database stays locked while hooks spool a session's prompts and events...
    blocker = sqlite3.connect(memoir_home / "memoir.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        for n in range(PROMPTS):
            base = {"session_id": "spooled-session", "cwd": "/p"}
            spool.write(memoir_home, "user-prompt-submit", {**base, "prompt": f"prompt {n}"})
            spool.write(memoir_home, "post-tool-use",
                        {**base, "tool_name": "Bash", "tool_use_id": f"toolu_{n}",
                         "tool_input": {"command": f"echo {n}"}, "tool_response": str(n)})
        # ... and both workers are woken: both want to replay it, and both wait
        # on the lock, so they start together the moment it is released.
        for sid in ("worker-a", "worker-b"):
            ipc.request(socket_path(memoir_home, sid), {"type": "wake"}, timeout=1)
        time.sleep(1.5)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    wait_for(lambda: not spool.pending(memoir_home), timeout=60,
             message="the spool to be replayed")
    conn = db(memoir_home)
    prompts = conn.execute(
        "SELECT p.prompt_number, p.text FROM prompts p JOIN sessions s ON s.id = p.session_id"
        " WHERE s.claude_session_id = 'spooled-session' ORDER BY p.prompt_number").fetchall()
    # Each prompt once, numbered in the order its hook ran.
    assert [(r[0], r[1]) for r in prompts] == [(n + 1, f"prompt {n}") for n in range(PROMPTS)]
    events = conn.execute("SELECT tool_use_id, prompt_number FROM events ORDER BY id").fetchall()
    # Each event once, under the prompt it followed.
    assert [(r[0], r[1]) for r in events] == [(f"toolu_{n}", n + 1) for n in range(PROMPTS)]
    # Neither worker died over a file the other one took.
    assert all(p.poll() is None for p in workers), [p.returncode for p in workers]
    log = (memoir_home / "logs" / "memoir.log").read_text()
    assert "Traceback" not in log and "FileNotFoundError" not in log
    assert spool.rejected(memoir_home) == []
