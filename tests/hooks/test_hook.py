"""Each hook's contract, run as Claude Code runs it: a process, a payload on stdin.

Always exit 0, print exactly one valid JSON object, record what it must in
SQLite, and never hang, whatever it is fed. Payloads are the real ones Claude
Code 2.1.330 sent (shared/payloads).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from claude_memoir.agent.models import Observation, Summary
from claude_memoir.store import Store
from conftest import HookRunner, db, kill_workers, payload, wait_for

SID = payload("session_start_startup")["session_id"]
PROJECT = payload("session_start_startup")["cwd"]


def _out(done: subprocess.CompletedProcess[bytes]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 1, done.stdout
    value = json.loads(lines[0])
    assert isinstance(value, dict)
    return value


def _history(home: Path, project: str, marker: str) -> None:
    with Store.open(home) as store:
        session = store.upsert_session("0ld-session", os.path.realpath(project), project)
        number = store.add_prompt(session.id, "earlier work")
        event = store.add_event(session.id, number, "Bash", {"command": "make"}, {})
        assert event is not None
        store.record_observations(session.id, [event], [
            Observation(type="bugfix", title="Fixed the flaky build")], number)
        store.save_summary(session.id, number, Summary(
            request="fix the build", learned=marker))


# -- session-start ------------------------------------------------------------------


def test_session_start_without_history_injects_nothing(run_hook: HookRunner) -> None:
    assert _out(run_hook("session-start", payload("session_start_startup"))) == {}


@pytest.mark.parametrize("name", ["session_start_startup", "session_start_resume",
                                  "session_start_compact"])
def test_session_start_injects_project_history(run_hook: HookRunner, memoir_home: Path,
                                               name: str) -> None:
    data = payload(name)
    _history(memoir_home, data["cwd"], "MARKER-42")
    out = _out(run_hook("session-start", data))
    spec = out["hookSpecificOutput"]
    assert spec["hookEventName"] == "SessionStart"
    assert "MARKER-42" in spec["additionalContext"]
    assert "Fixed the flaky build" in spec["additionalContext"]


def test_session_start_clear_and_other_projects_get_nothing(run_hook: HookRunner,
                                                            memoir_home: Path) -> None:
    _history(memoir_home, PROJECT, "MARKER-42")
    cleared = dict(payload("session_start_startup"), source="clear")
    assert _out(run_hook("session-start", cleared)) == {}
    elsewhere = dict(payload("session_start_startup"), cwd="/somewhere/else")
    assert _out(run_hook("session-start", elsewhere)) == {}


def test_session_start_sources_are_configurable(run_hook: HookRunner, memoir_home: Path) -> None:
    _history(memoir_home, PROJECT, "MARKER-42")
    resume = payload("session_start_resume")
    cleared = dict(payload("session_start_startup"), source="clear")
    only_startup = {"MEMOIR_CONTEXT_SOURCES": "startup"}
    assert _out(run_hook("session-start", resume, env=only_startup)) == {}
    with_clear = {"MEMOIR_CONTEXT_SOURCES": "startup,clear"}
    out = _out(run_hook("session-start", cleared, env=with_clear))
    assert "MARKER-42" in out["hookSpecificOutput"]["additionalContext"]


def test_session_start_uses_claude_project_dir_over_cwd(run_hook: HookRunner,
                                                        memoir_home: Path) -> None:
    _history(memoir_home, PROJECT, "MARKER-42")
    moved = dict(payload("session_start_startup"), cwd=PROJECT + "/src")
    out = _out(run_hook("session-start", moved, env={"CLAUDE_PROJECT_DIR": PROJECT}))
    assert "MARKER-42" in out["hookSpecificOutput"]["additionalContext"]


def test_session_start_respects_budget(run_hook: HookRunner, memoir_home: Path) -> None:
    _history(memoir_home, PROJECT, "MARKER-42 " + "x" * 3000)
    out = _out(run_hook("session-start", payload("session_start_startup"),
                        env={"MEMOIR_CONTEXT_BUDGET": "1500"}))
    text = out.get("hookSpecificOutput", {}).get("additionalContext", "")
    assert len(text) <= 1500


# -- the recording hooks --------------------------------------------------------------


def test_user_prompt_submit_records_session_and_numbers_prompts(run_hook: HookRunner,
                                                                memoir_home: Path) -> None:
    data = payload("user_prompt_submit")
    assert _out(run_hook("user-prompt-submit", data)) == {}
    assert _out(run_hook("user-prompt-submit", dict(data, prompt="second"))) == {}
    conn = db(memoir_home)
    sessions = conn.execute("SELECT * FROM sessions").fetchall()
    assert len(sessions) == 1  # idempotent: one row per Claude session
    assert sessions[0]["claude_session_id"] == SID
    assert sessions[0]["project"] == os.path.realpath(PROJECT)
    prompts = conn.execute("SELECT prompt_number, text FROM prompts ORDER BY 1").fetchall()
    assert [tuple(p) for p in prompts] == [(1, "do the tour"), (2, "second")]


def test_user_prompt_submit_spawns_one_detached_worker(run_hook: HookRunner,
                                                       memoir_home: Path) -> None:
    started = time.monotonic()
    _out(run_hook("user-prompt-submit", payload("user_prompt_submit")))
    assert time.monotonic() - started < 5  # returned without waiting for the worker
    conn = db(memoir_home)
    pid = wait_for(lambda: conn.execute("SELECT worker_pid FROM sessions").fetchone()[0],
                   timeout=15, message="worker to register")
    # Detached: its own process session, not a child of the hook.
    assert os.getsid(pid) == pid
    _out(run_hook("user-prompt-submit", dict(payload("user_prompt_submit"), prompt="again")))
    assert conn.execute("SELECT worker_pid FROM sessions").fetchone()[0] == pid


def test_post_tool_use_queues_event_durably(run_hook: HookRunner, memoir_home: Path) -> None:
    _out(run_hook("user-prompt-submit", payload("user_prompt_submit")))
    kill_workers(memoir_home)  # keep the event pending so we can look at it
    for name in ("post_tool_use_bash", "post_tool_use_read", "post_tool_use_failure_bash"):
        assert _out(run_hook("post-tool-use", payload(name))) == {}
    rows = db(memoir_home).execute("SELECT * FROM events ORDER BY id").fetchall()
    assert [r["tool_name"] for r in rows] == ["Bash", "Read", "Bash"]
    assert [r["prompt_number"] for r in rows] == [1, 1, 1]
    assert json.loads(rows[0]["tool_input"])["command"].startswith("echo hello")
    assert json.loads(rows[0]["tool_response"])["stdout"] == "hello"
    assert [r["failed"] for r in rows] == [0, 0, 1]
    assert rows[2]["error"] == "Exit code 3\noops"


def test_post_tool_use_same_tool_call_twice_is_one_event(run_hook: HookRunner,
                                                         memoir_home: Path) -> None:
    _out(run_hook("user-prompt-submit", payload("user_prompt_submit")))
    kill_workers(memoir_home)
    _out(run_hook("post-tool-use", payload("post_tool_use_bash")))
    _out(run_hook("post-tool-use", payload("post_tool_use_bash")))
    assert db(memoir_home).execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1


def test_post_tool_use_without_prior_prompt_still_keeps_event(run_hook: HookRunner,
                                                              memoir_home: Path) -> None:
    _out(run_hook("post-tool-use", payload("post_tool_use_edit")))
    conn = db(memoir_home)
    assert conn.execute("SELECT claude_session_id FROM sessions").fetchone()[0] == SID
    assert conn.execute("SELECT prompt_number FROM events").fetchone()[0] == 0


def test_stop_marks_prompt_finished_with_reply(run_hook: HookRunner, memoir_home: Path) -> None:
    _out(run_hook("user-prompt-submit", payload("user_prompt_submit")))
    kill_workers(memoir_home)
    assert _out(run_hook("stop", payload("stop"))) == {}
    row = db(memoir_home).execute("SELECT finished_at, response FROM prompts").fetchone()
    assert row["finished_at"]
    assert row["response"] == "Tour finished. MOCK_FINAL_REPLY"


def test_session_end_records_end_request(run_hook: HookRunner, memoir_home: Path) -> None:
    _out(run_hook("user-prompt-submit", payload("user_prompt_submit")))
    kill_workers(memoir_home)
    started = time.monotonic()
    assert _out(run_hook("session-end", payload("session_end_other"))) == {}
    assert time.monotonic() - started < 1.5  # Claude Code's SessionEnd budget
    row = db(memoir_home).execute("SELECT end_requested_at, end_reason FROM sessions").fetchone()
    assert row["end_requested_at"] and row["end_reason"] == "other"


def test_hooks_for_unknown_session_change_nothing(run_hook: HookRunner, memoir_home: Path) -> None:
    assert _out(run_hook("stop", payload("stop"))) == {}
    assert _out(run_hook("session-end", payload("session_end_other"))) == {}
    assert db(memoir_home).execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 0


# -- the agent's own process and bad input ----------------------------------------------


@pytest.mark.parametrize("event", ["session-start", "user-prompt-submit", "post-tool-use",
                                   "stop", "session-end"])
def test_hooks_do_nothing_inside_the_memory_agent(run_hook: HookRunner, memoir_home: Path,
                                                  event: str) -> None:
    data = payload("post_tool_use_bash") if event == "post-tool-use" else \
        payload("user_prompt_submit")
    assert _out(run_hook(event, data, env={"MEMOIR_WORKER": "1"})) == {}
    assert not (memoir_home / "memoir.db").exists()


BAD_INPUTS: list[bytes] = [
    b"",
    b"not json at all",
    b"[1, 2, 3]",
    b'"a string"',
    b"{}",
    b'{"session_id": 42, "tool_name": "Bash"}',
    b'{"session_id": "../../../etc/passwd", "prompt": "x", "tool_name": "Bash"}',
    b'{"session_id": "a/b", "prompt": "x"}',
    b'{"session_id": "ok-id", "tool_name": ["not", "a", "string"]}',
    b"\xff\xfe\x00garbage\x00",
    b'{"session_id": "' + b"x" * 500 + b'"}',
]


@pytest.mark.parametrize("event", ["session-start", "user-prompt-submit", "post-tool-use",
                                   "stop", "session-end", "no-such-event"])
@pytest.mark.parametrize("raw", BAD_INPUTS, ids=range(len(BAD_INPUTS)))
def test_bad_input_exits_zero_and_records_nothing(run_hook: HookRunner, memoir_home: Path,
                                                  event: str, raw: bytes) -> None:
    assert _out(run_hook(event, raw)) == {}
    if (memoir_home / "memoir.db").exists():
        conn = db(memoir_home)
        assert conn.execute("SELECT COUNT(*) FROM prompts").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0
    # Nothing was created from a session id that failed validation.
    run = memoir_home / "run"
    assert not run.exists() or not any(run.iterdir())


def test_bad_input_is_logged_clearly(run_hook: HookRunner, memoir_home: Path) -> None:
    _out(run_hook("post-tool-use", b'{"session_id": "../../etc", "tool_name": "Bash"}'))
    _out(run_hook("stop", b"not json"))
    _out(run_hook("bogus", b"{}"))
    log = (memoir_home / "logs" / "memoir.log").read_text()
    assert "post-tool-use hook ignored a bad payload: invalid session id" in log
    assert "stop hook ignored a bad payload: payload is not JSON" in log
    assert "unknown hook event 'bogus'" in log


def test_stdin_held_open_does_not_hang_the_hook(memoir_home: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "claude_memoir.hook", "stop"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(b'{"session_id": ')  # ... and never closes it
    proc.stdin.flush()
    assert proc.stdout is not None
    started = time.monotonic()
    try:
        out = proc.stdout.readline()  # the hook answers although stdin never closed
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.stdin.close()
    assert time.monotonic() - started < 5
    assert json.loads(out) == {}


# -- cost control ------------------------------------------------------------------


def _fresh_session(run_hook: HookRunner, memoir_home: Path) -> None:
    _out(run_hook("user-prompt-submit", payload("user_prompt_submit")))
    kill_workers(memoir_home)  # keep events pending so we can count them


def test_skipped_tools_are_not_recorded(run_hook: HookRunner, memoir_home: Path) -> None:
    _fresh_session(run_hook, memoir_home)
    todo = dict(payload("post_tool_use_bash"), tool_name="TodoWrite", tool_use_id="toolu_t1",
                tool_input={"todos": [{"content": "x", "status": "pending"}]})
    assert _out(run_hook("post-tool-use", todo)) == {}
    assert _out(run_hook("post-tool-use", dict(todo, tool_name="Grep", tool_use_id="t2"),
                         env={"MEMOIR_SKIP_TOOLS": "Grep,Glob"})) == {}
    assert _out(run_hook("post-tool-use", payload("post_tool_use_read"))) == {}
    kill_workers(memoir_home)
    names = [r[0] for r in db(memoir_home).execute("SELECT tool_name FROM events")]
    assert names == ["Read"]


def test_identical_consecutive_events_are_stored_once(run_hook: HookRunner,
                                                      memoir_home: Path) -> None:
    _fresh_session(run_hook, memoir_home)
    read = payload("post_tool_use_read")
    for i in range(3):  # the same Read three times in a row, as distinct tool calls
        _out(run_hook("post-tool-use", dict(read, tool_use_id=f"toolu_r{i}")))
    _out(run_hook("post-tool-use", payload("post_tool_use_bash")))
    _out(run_hook("post-tool-use", dict(read, tool_use_id="toolu_r9")))  # not consecutive
    kill_workers(memoir_home)
    names = [r[0] for r in db(memoir_home).execute("SELECT tool_name FROM events ORDER BY id")]
    assert names == ["Read", "Bash", "Read"]


def test_the_session_cap_keeps_the_newest_events(run_hook: HookRunner,
                                                 memoir_home: Path) -> None:
    """Past MEMOIR_MAX_EVENTS the oldest make room: the newest work is never lost."""
    _fresh_session(run_hook, memoir_home)
    for i in range(5):
        data = dict(payload("post_tool_use_bash"), tool_use_id=f"toolu_c{i}",
                    tool_input={"command": f"echo {i}"})
        _out(run_hook("post-tool-use", data, env={"MEMOIR_MAX_EVENTS": "2"}))
        kill_workers(memoir_home)  # no agent: every event still waits
    rows = db(memoir_home).execute("SELECT tool_use_id, tool_input FROM events ORDER BY id")
    assert [(r[0], json.loads(r[1])["command"]) for r in rows] == [
        ("toolu_c3", "echo 3"), ("toolu_c4", "echo 4")]
    assert "the oldest waiting one(s) dropped" in \
        (memoir_home / "logs" / "memoir.log").read_text()


# -- damaged and locked databases ---------------------------------------------------


def test_corrupt_database_is_quarantined_and_the_prompt_still_recorded(
        run_hook: HookRunner, memoir_home: Path) -> None:
    memoir_home.mkdir(mode=0o700)
    (memoir_home / "memoir.db").write_bytes(b"garbage, not SQLite\n" * 64)
    assert _out(run_hook("user-prompt-submit", payload("user_prompt_submit"))) == {}
    (aside,) = memoir_home.glob("memoir.db.corrupt-*")
    assert aside.read_bytes().startswith(b"garbage")
    conn = db(memoir_home)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT text FROM prompts").fetchone()[0] == "do the tour"
    assert "DAMAGED DATABASE" in (memoir_home / "logs" / "memoir.log").read_text()


def test_locked_database_spools_within_bound_then_worker_replays(
        run_hook: HookRunner, memoir_home: Path) -> None:
    import sqlite3

    _fresh_session(run_hook, memoir_home)
    blocker = sqlite3.connect(memoir_home / "memoir.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        started = time.monotonic()
        assert _out(run_hook("post-tool-use", payload("post_tool_use_bash"))) == {}
        elapsed = time.monotonic() - started
        assert elapsed < 4, f"hook waited {elapsed:.1f}s on a locked database"
        (spooled,) = (memoir_home / "spool").glob("*.json")
        assert oct(spooled.stat().st_mode & 0o777) == "0o600"
        assert json.loads(spooled.read_text())["payload"]["tool_use_id"] == "toolu_mock000001"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    # The hook woke (spawned) a worker; it replays the spool into SQLite.
    conn = db(memoir_home)
    wait_for(lambda: conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1,
             timeout=20, message="the spooled event to be replayed")
    assert not list((memoir_home / "spool").glob("*.json"))


def test_a_new_sessions_spooled_first_prompt_is_replayed_by_its_worker(
        run_hook: HookRunner, memoir_home: Path) -> None:
    """The very first prompt of a session met a locked database: its worker, started
    by the hook, finds no session row yet and must replay the spool, not exit."""
    import sqlite3

    with Store.open(memoir_home):
        pass  # the database exists (another session's), and is then locked
    blocker = sqlite3.connect(memoir_home / "memoir.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        assert _out(run_hook("user-prompt-submit", payload("user_prompt_submit"))) == {}
        assert len(list((memoir_home / "spool").glob("*.json"))) == 1
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    conn = db(memoir_home)
    wait_for(lambda: conn.execute("SELECT COUNT(*) FROM prompts").fetchone()[0] == 1,
             timeout=20, message="the spooled prompt to be replayed by the worker")
    assert not list((memoir_home / "spool").glob("*.json"))


SECRET = "sk-ant-api03-" + "Q" * 40


def test_spooled_payload_is_bounded_and_redacted_before_it_is_written(
        run_hook: HookRunner, memoir_home: Path) -> None:
    """A busy database must not leave a secret or 5 MB of a Read in a plain file."""
    import sqlite3

    _fresh_session(run_hook, memoir_home)
    data = dict(payload("post_tool_use_bash"),
                tool_input={"command": f"curl -H 'x-api-key: {SECRET}' https://x"},
                tool_response={"stdout": "y" * 5_000_000 + "\nkey: " + SECRET, "stderr": ""},
                error=f"failed with {SECRET}")
    env = {"MEMOIR_MAX_STORED_CHARS": "20000"}
    blocker = sqlite3.connect(memoir_home / "memoir.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        assert _out(run_hook("post-tool-use", data, env=env)) == {}
        (spooled,) = (memoir_home / "spool").glob("*.json")
        raw = spooled.read_text()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert SECRET not in raw and "sk-ant-api03" not in raw
    assert "[REDACTED:" in raw
    assert len(raw) < 50_000, len(raw)
    item = json.loads(raw)
    assert item["payload"]["tool_use_id"] == data["tool_use_id"]
    assert "transcript_path" not in item["payload"]  # only what the recorders read
    assert item["spooled_at"].endswith("Z") and item["project_dir"]
    # Replayed, it lands as a live hook would have stored it.
    conn = db(memoir_home)
    wait_for(lambda: conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1,
             timeout=20, message="the spooled event to be replayed")
    stored = conn.execute("SELECT tool_input || tool_response || error FROM events").fetchone()[0]
    assert SECRET not in stored and len(stored) < 50_000


def test_a_hook_records_behind_waiting_spooled_payloads(memoir_home: Path) -> None:
    """A prompt still in the spool is stored before the tool events that follow it."""
    import fcntl

    from claude_memoir import spool
    from claude_memoir.config import load_settings
    from claude_memoir.hooks.record import SPOOLED, recorded

    settings = load_settings()
    first = payload("user_prompt_submit")
    sid = first["session_id"]
    assert recorded("user-prompt-submit", first, settings) == 1
    # Prompt 2 was spooled (the database was busy then) and is not replayed yet.
    spool.write(memoir_home, "user-prompt-submit", dict(first, prompt="second prompt"))
    event = dict(payload("post_tool_use_bash"), session_id=sid)
    fd = os.open(memoir_home / "spool" / spool.LOCK_NAME, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a worker is replaying it right now
    try:
        assert recorded("post-tool-use", event, settings) is SPOOLED
    finally:
        os.close(fd)
    # The next hook finds the database free and the lock free: it replays the
    # spool first (prompt 2, then the event), then records its own event.
    later = dict(event, tool_use_id="toolu_later", tool_input={"command": "ls"})
    assert recorded("post-tool-use", later, settings) is True
    conn = db(memoir_home)
    assert [tuple(r) for r in conn.execute(
        "SELECT tool_use_id, prompt_number FROM events ORDER BY id")] == [
        (event["tool_use_id"], 2), ("toolu_later", 2)]
    assert [r[0] for r in conn.execute("SELECT text FROM prompts ORDER BY prompt_number")] \
        == [first["prompt"], "second prompt"]
    assert spool.pending(memoir_home) == []


# -- privacy -----------------------------------------------------------------------

# Assembled at run time so no scanner mistakes this file for a leak.
_ANTHROPIC_KEY = "sk-" + "ant-" + "api03-" + "Q" * 40
_GITHUB_TOKEN = "gh" + "p_" + "a1B2c3D4e5" * 4


def _stored_text(home: Path) -> str:
    conn = db(home)
    parts = [r[0] or "" for r in conn.execute("SELECT text || ' ' || COALESCE(response, '') "
                                              "FROM prompts")]
    parts += [" ".join(str(c or "") for c in r) for r in conn.execute(
        "SELECT tool_input, tool_response, error FROM events")]
    return "\n".join(parts)


def test_private_sections_and_secrets_never_reach_the_store(run_hook: HookRunner,
                                                            memoir_home: Path) -> None:
    prompt = (f"deploy with key {_ANTHROPIC_KEY} <private>the launch date is "
              "march 3</private> and report back")
    _out(run_hook("user-prompt-submit", dict(payload("user_prompt_submit"), prompt=prompt)))
    kill_workers(memoir_home)
    bash = dict(payload("post_tool_use_bash"),
                tool_input={"command": "git clone https://bob:hunter2hunter2@git.example.com/r"},
                tool_response={"stdout": f"GITHUB_TOKEN={_GITHUB_TOKEN}\n", "stderr": ""})
    _out(run_hook("post-tool-use", bash))
    failure = dict(payload("post_tool_use_failure_bash"),
                   error=f"auth failed for {_GITHUB_TOKEN}")
    _out(run_hook("post-tool-use", failure))
    stop = dict(payload("stop"), last_assistant_message=f"done <private>{_ANTHROPIC_KEY}")
    _out(run_hook("stop", stop))
    kill_workers(memoir_home)
    stored = _stored_text(memoir_home)
    for secret in (_ANTHROPIC_KEY, "march 3", "hunter2hunter2", _GITHUB_TOKEN):
        assert secret not in stored
    assert "[private]" in stored and "[REDACTED:anthropic-key]" in stored
    assert "[REDACTED:github-token]" in stored and "bob:[REDACTED:url-password]@" in stored
    assert "and report back" in stored  # the rest is kept


def test_custom_redaction_patterns(run_hook: HookRunner, memoir_home: Path) -> None:
    data = dict(payload("user_prompt_submit"), prompt="ticket ACME-123456 is internal")
    _out(run_hook("user-prompt-submit", data,
                  env={"MEMOIR_REDACT": '["ACME-[0-9]{6}", "(unclosed"]'}))
    kill_workers(memoir_home)
    stored = _stored_text(memoir_home)
    assert "ACME-123456" not in stored and "ticket [REDACTED:custom] is internal" in stored
    assert "(unclosed" in (memoir_home / "logs" / "memoir.log").read_text()  # bad one logged


def test_excluded_projects_are_never_recorded_nor_recalled(run_hook: HookRunner,
                                                           memoir_home: Path) -> None:
    _history(memoir_home, PROJECT, "MARKER-42")
    env = {"MEMOIR_EXCLUDE": "/elsewhere/*," + PROJECT.rsplit("/", 1)[0] + "/*"}
    assert _out(run_hook("session-start", payload("session_start_startup"), env=env)) == {}
    for event, name in (("user-prompt-submit", "user_prompt_submit"),
                        ("post-tool-use", "post_tool_use_bash"), ("stop", "stop")):
        assert _out(run_hook(event, payload(name), env=env)) == {}
    conn = db(memoir_home)
    assert conn.execute("SELECT COUNT(*) FROM sessions WHERE claude_session_id = ?",
                        (SID,)).fetchone()[0] == 0
    assert not (memoir_home / "run").exists() or not list((memoir_home / "run").glob("*.sock"))


def test_huge_tool_response_is_bounded_in_store_and_time(run_hook: HookRunner,
                                                         memoir_home: Path) -> None:
    _fresh_session(run_hook, memoir_home)
    big = "line of output\n" * (20 * 1024 * 1024 // 15)  # ~20 MB
    data = dict(payload("post_tool_use_read"),
                tool_response={"file": {"content": "HEAD-MARK " + big + " TAIL-MARK"}})
    started = time.monotonic()
    assert _out(run_hook("post-tool-use", data, timeout=30)) == {}
    elapsed = time.monotonic() - started
    kill_workers(memoir_home)
    (stored,) = db(memoir_home).execute("SELECT tool_response FROM events").fetchone()
    assert len(stored) < 110_000
    assert "HEAD-MARK" in stored and "TAIL-MARK" in stored and "elided" in stored
    assert elapsed < 5, f"a 20 MB payload took {elapsed:.1f}s"


def test_lone_surrogates_are_stored_not_dropped(run_hook: HookRunner,
                                                memoir_home: Path) -> None:
    # Half an emoji, as a truncated tool output can carry it: valid JSON,
    # not valid UTF-8 once decoded. The record must survive.
    raw = json.dumps(dict(payload("user_prompt_submit"), prompt="cut emoji: X")).replace(
        "X", "\\ud83d").encode()
    _out(run_hook("user-prompt-submit", raw))
    kill_workers(memoir_home)
    (text,) = db(memoir_home).execute("SELECT text FROM prompts").fetchone()
    assert text == "cut emoji: \ufffd"


def test_long_prompt_and_reply_are_bounded(run_hook: HookRunner, memoir_home: Path) -> None:
    env = {"MEMOIR_MAX_STORED_CHARS": "1000"}
    data = dict(payload("user_prompt_submit"), prompt="START " + "p" * 50_000 + " END")
    _out(run_hook("user-prompt-submit", data, env=env))
    kill_workers(memoir_home)
    _out(run_hook("stop", dict(payload("stop"), last_assistant_message="r" * 50_000), env=env))
    kill_workers(memoir_home)
    text, response = db(memoir_home).execute("SELECT text, response FROM prompts").fetchone()
    assert len(text) < 1100 and text.startswith("START") and text.endswith("END")
    assert len(response) < 1100


# -- prompt-time and file-time recall ---------------------------------------------------


def _past_ledger_work(home: Path, project: str) -> int:
    """An earlier session of the project that fixed reconcile_ledger in notes.md."""
    with Store.open(home) as store:
        session = store.upsert_session("earlier-session", os.path.realpath(project), project)
        number = store.add_prompt(session.id, "fix the ledger")
        event = store.add_event(session.id, number, "Edit", {"file_path": "notes.md"}, {})
        assert event is not None
        [obs] = store.record_observations(session.id, [event], [Observation(
            type="bugfix", title="Fixed rounding in reconcile_ledger",
            facts=["RECALLFACT-913: amounts are Decimal"],
            files_modified=[f"{project}/notes.md"])], number)
        return obs


def test_user_prompt_submit_adds_matching_past_work(run_hook: HookRunner,
                                                   memoir_home: Path) -> None:
    data = payload("user_prompt_submit")
    obs = _past_ledger_work(memoir_home, data["cwd"])
    asked = dict(data, prompt="the reconcile_ledger totals are off again")
    out = _out(run_hook("user-prompt-submit", asked))
    spec = out["hookSpecificOutput"]
    assert spec["hookEventName"] == "UserPromptSubmit"
    assert "RECALLFACT-913" in spec["additionalContext"]
    assert f"#{obs} · " in spec["additionalContext"]
    assert len(spec["additionalContext"]) <= 1500
    # Recorded first, as always; the same observation is not offered twice.
    assert _out(run_hook("user-prompt-submit", asked)) == {}
    prompts = db(memoir_home).execute("SELECT COUNT(*) FROM prompts p JOIN sessions s"
                                      " ON s.id = p.session_id WHERE s.claude_session_id = ?",
                                      (SID,)).fetchone()[0]
    assert prompts == 2
    kill_workers(memoir_home)


def test_user_prompt_submit_recall_off_and_weak(run_hook: HookRunner,
                                               memoir_home: Path) -> None:
    data = payload("user_prompt_submit")
    _past_ledger_work(memoir_home, data["cwd"])
    asked = dict(data, prompt="the reconcile_ledger totals are off again")
    assert _out(run_hook("user-prompt-submit", asked, env={"MEMOIR_RECALL_CHARS": "0"})) == {}
    assert _out(run_hook("user-prompt-submit", dict(data, prompt="fix the bug"))) == {}
    kill_workers(memoir_home)


def test_pre_tool_use_read_gets_file_note_once(run_hook: HookRunner, memoir_home: Path) -> None:
    start = payload("user_prompt_submit")
    obs = _past_ledger_work(memoir_home, start["cwd"])
    _out(run_hook("user-prompt-submit", dict(start, prompt="hello")))
    kill_workers(memoir_home)
    out = _out(run_hook("pre-tool-use", payload("pre_tool_use_read")))
    spec = out["hookSpecificOutput"]
    assert spec["hookEventName"] == "PreToolUse"
    assert "permissionDecision" not in spec  # the normal permission flow goes on
    assert "RECALLFACT-913" in spec["additionalContext"] and f"#{obs} · " in spec[
        "additionalContext"]
    assert "notes.md" in spec["additionalContext"].splitlines()[0]
    assert len(spec["additionalContext"]) <= 800
    # Once per file per session: the Edit of the same file that follows gets nothing.
    assert _out(run_hook("pre-tool-use", payload("pre_tool_use_edit"))) == {}
    assert _out(run_hook("pre-tool-use", payload("pre_tool_use_write"))) == {}


@pytest.mark.parametrize("name", ["pre_tool_use_bash", "pre_tool_use_read"])
def test_pre_tool_use_without_a_note_outputs_nothing(run_hook: HookRunner, memoir_home: Path,
                                                     name: str) -> None:
    # Bash is no file access; the Read is of a file nothing was recorded about.
    _out(run_hook("user-prompt-submit", dict(payload("user_prompt_submit"), prompt="hi")))
    kill_workers(memoir_home)
    assert _out(run_hook("pre-tool-use", payload(name))) == {}
    # And a session never recorded (no prompt yet) is left alone, nothing created.
    other = dict(payload(name), session_id="11111111-2222-4333-8444-555555555555")
    assert _out(run_hook("pre-tool-use", other)) == {}
    ids = {r[0] for r in db(memoir_home).execute("SELECT claude_session_id FROM sessions")}
    assert other["session_id"] not in ids
