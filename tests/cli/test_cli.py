"""The ``memoir`` command line, run as a real subprocess against a real store."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import claude_memoir
from claude_memoir.agent.models import Observation, Summary
from claude_memoir.cli.install import hook_command
from claude_memoir.config import load_settings
from claude_memoir.paths import ensure_private_dir, socket_path
from claude_memoir.recall.context import build_context
from claude_memoir.recall.project import project_key
from claude_memoir.store import SessionRow, Store
from conftest import db, memoir_command

SID_A = "3f2a9c1e-0b7d-4e55-9a10-aaaaaaaaaaaa"
SID_B = "7c1d2e3f-4a5b-4c6d-8e7f-bbbbbbbbbbbb"

HOOK_EVENTS = {
    "SessionStart": "session-start",
    "UserPromptSubmit": "user-prompt-submit",
    "PreToolUse": "pre-tool-use",
    "PostToolUse": "post-tool-use",
    "PostToolUseFailure": "post-tool-use",
    "Stop": "stop",
    "SessionEnd": "session-end",
}


def memoir(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*memoir_command(), *args], capture_output=True, text=True,
                          env=dict(os.environ), cwd=cwd, timeout=30)


def script_interpreter() -> str:
    """The interpreter the ``memoir`` console script runs under (its shebang)."""
    first = Path(memoir_command()[0]).read_text().splitlines()[0]
    assert first.startswith("#!")
    return shlex.split(first[2:])[0]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "proj"
    path.mkdir()
    return path


@pytest.fixture
def store(memoir_home: Path) -> Iterator[Store]:
    s = Store.open(memoir_home)
    yield s
    s.close()


def new_session(store: Store, sid: str, proj: Path) -> SessionRow:
    return store.upsert_session(sid, project_key(proj), str(proj))


@pytest.fixture
def history(store: Store, project: Path, tmp_path: Path) -> dict[str, Any]:
    """Session A (completed): 2 prompts, 3 events (1 pending), 3 observations, 2 summaries.
    Session B (active, another project): 1 prompt, nothing else."""
    a = new_session(store, SID_A, project)
    p1 = store.add_prompt(a.id, "fix the login bug")
    e1 = store.add_event(a.id, p1, "Read", {"file_path": "auth.py"}, {"content": "..."},
                         tool_use_id="toolu_1")
    e2 = store.add_event(a.id, p1, "Edit", {"file_path": "auth.py"}, {"ok": True},
                         tool_use_id="toolu_2")
    store.record_observations(a.id, [e1, e2], [
        Observation(type="bugfix", title="Login rejected valid tokens",
                          subtitle="expiry compared in local time", facts=["auth.py:42"],
                          files_modified=["auth.py"]),
        Observation(type="discovery", title="Tokens are cached for 5 minutes"),
        Observation(type="decision", title="Keep tokens in UTC everywhere"),
    ], p1)
    store.save_summary(a.id, p1, Summary(
        request="Fix the SHOWMARK login bug", investigated="auth.py token checks",
        learned="expiry used local time", completed="compare in UTC",
        next_steps="add a regression test", notes=""))
    p2 = store.add_prompt(a.id, "add the test")
    store.add_event(a.id, p2, "Bash", {"command": "pytest"}, {"stdout": "1 failed"},
                    tool_use_id="toolu_3", failed=True, error="exit 1")
    store.save_summary(a.id, p2, Summary(request="Add a regression test",
                                               completed="FALLBACKMARK ran pytest"),
                       kind="fallback")
    store.set_status(a.id, "completed", "clear")

    other = tmp_path / "other-proj"
    other.mkdir()
    b = new_session(store, SID_B, other)
    store.add_prompt(b.id, "hello")
    return {"a": a, "b": b, "other": other}


# -- basics ------------------------------------------------------------------------


def test_version() -> None:
    r = memoir("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"memoir {claude_memoir.__version__}"


def test_unknown_subcommand_exits_2() -> None:
    r = memoir("frobnicate")
    assert r.returncode == 2
    assert "invalid choice" in r.stderr and "frobnicate" in r.stderr
    assert r.stdout == ""


def test_no_subcommand_exits_2() -> None:
    r = memoir()
    assert r.returncode == 2
    assert "usage:" in r.stderr


# -- sessions ------------------------------------------------------------------------

COUNTS = ("prompt_count", "event_count", "pending_event_count", "observation_count",
          "summary_count")


def test_sessions_on_empty_home(memoir_home: Path) -> None:
    r = memoir("sessions")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "no sessions recorded yet"
    r = memoir("sessions", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []


def test_sessions_json_counts(history: dict[str, Any], project: Path) -> None:
    r = memoir("sessions", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["session_id"] for row in rows] == [SID_B, SID_A]  # newest first
    b, a = rows
    assert {k: a[k] for k in ("project", "status", "end_reason")} == {
        "project": os.path.realpath(project), "status": "completed", "end_reason": "clear"}
    assert {k: a[k] for k in COUNTS} == {
        "prompt_count": 2, "event_count": 3, "pending_event_count": 1, "observation_count": 3,
        "summary_count": 2}
    assert a["ended_at"] and a["started_at"]
    assert {k: b[k] for k in ("project", "status")} == {
        "project": os.path.realpath(history["other"]), "status": "active"}
    assert {k: b[k] for k in COUNTS} == {
        "prompt_count": 1, "event_count": 0, "pending_event_count": 0, "observation_count": 0,
        "summary_count": 0}
    assert b["ended_at"] is None and b["worker_pid"] is None


def test_sessions_table(history: dict[str, Any], project: Path) -> None:
    r = memoir("sessions")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:7] == ["SESSION", "STATUS", "PROMPTS", "EVENTS", "PENDING",
                                    "OBS", "SUMM"]
    row_a = next(line for line in lines if line.startswith(SID_A)).split()
    assert row_a[1:7] == ["completed", "2", "3", "1", "3", "2"]
    assert row_a[-1] == os.path.realpath(project)
    row_b = next(line for line in lines if line.startswith(SID_B)).split()
    assert row_b[1:7] == ["active", "1", "0", "0", "0", "0"]
    assert len(lines) == 3


# -- show ------------------------------------------------------------------------------


def test_show_text(history: dict[str, Any], project: Path) -> None:
    r = memoir("show", SID_A)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    lines = out.splitlines()
    assert lines[0].split() == ["session_id:", SID_A]
    assert "status:           completed" in lines
    assert "pending_event_count: 1" in lines
    for text in ("request: Fix the SHOWMARK login bug", "investigated: auth.py token checks",
                 "learned: expiry used local time", "completed: compare in UTC",
                 "next_steps: add a regression test", "request: Add a regression test",
                 "completed: FALLBACKMARK ran pytest"):
        assert f"  {text}" in lines, text
    assert "notes:" not in out  # empty fields are not printed
    heads = [line for line in lines if line.startswith("== summary of prompt")]
    assert len(heads) == 2
    assert heads[0].startswith("== summary of prompt 1 (") and "fallback" not in heads[0]
    assert heads[1].startswith("== summary of prompt 2 (fallback)")
    assert out.index("SHOWMARK") < out.index("FALLBACKMARK")  # prompt order
    assert "  [bugfix] Login rejected valid tokens: expiry compared in local time" in lines
    assert "  [discovery] Tokens are cached for 5 minutes" in lines


def test_show_json(history: dict[str, Any], project: Path) -> None:
    r = memoir("show", SID_A, "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["session_id"] == SID_A
    assert data["project"] == os.path.realpath(project)
    assert data["status"] == "completed"
    assert (data["prompt_count"], data["event_count"], data["pending_event_count"]) == (2, 3, 1)
    assert (data["summary_count"], data["observation_count"]) == (2, 3)

    summaries = data["summaries"]
    assert [s["prompt_number"] for s in summaries] == [1, 2]
    assert [s["kind"] for s in summaries] == ["agent", "fallback"]
    assert summaries[0]["request"] == "Fix the SHOWMARK login bug"
    assert summaries[0]["next_steps"] == "add a regression test"
    assert summaries[1]["completed"] == "FALLBACKMARK ran pytest"

    observations = data["observations"]
    assert [o["title"] for o in observations] == ["Login rejected valid tokens",
                                                  "Tokens are cached for 5 minutes",
                                                  "Keep tokens in UTC everywhere"]
    first = observations[0]
    assert first["type"] == "bugfix"
    assert first["subtitle"] == "expiry compared in local time"
    assert first["facts"] == ["auth.py:42"]
    assert first["files_modified"] == ["auth.py"]
    assert len(first["event_ids"]) == 2


def test_show_session_without_history(history: dict[str, Any]) -> None:
    r = memoir("show", SID_B, "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["summaries"] == [] and data["observations"] == []
    r = memoir("show", SID_B)
    assert r.returncode == 0, r.stderr
    assert "== summary" not in r.stdout and "== observations" not in r.stdout


def test_show_unknown_session(history: dict[str, Any]) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    for args in (("show", unknown), ("show", unknown, "--json")):
        r = memoir(*args)
        assert r.returncode == 1
        assert r.stdout == ""
        assert unknown in r.stderr and "no session" in r.stderr


@pytest.mark.parametrize("bad", ["../etc", "a/b", "../../memoir-home/x", ".hidden", "x" * 200])
def test_show_invalid_id(bad: str, memoir_home: Path, tmp_path: Path,
                         history: dict[str, Any]) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    r = memoir("show", bad, cwd=cwd)
    assert r.returncode == 2
    assert r.stdout == ""
    assert "invalid session id" in r.stderr
    # Nothing was created for it: no new path anywhere (logs aside), no session row.
    after = sorted(str(p) for p in tmp_path.rglob("*"))
    new = [p for p in after if p not in before and "/logs" not in p]
    assert new == [], new
    with db(memoir_home) as conn:
        ids = {row[0] for row in conn.execute("SELECT claude_session_id FROM sessions")}
    assert ids == {SID_A, SID_B}


def test_show_accepts_the_prefix_the_context_prints(history: dict[str, Any],
                                                    project: Path) -> None:
    context = memoir("context", "--cwd", str(project)).stdout
    assert re.search(rf"\b[Ss]ession {SID_A[:8]}\b", context), context
    r = memoir("show", SID_A[:8], "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["session_id"] == SID_A
    assert memoir("show", SID_A[:8]).stdout.splitlines()[0].split() == ["session_id:", SID_A]


def test_show_ambiguous_prefix_is_a_clear_error(history: dict[str, Any], store: Store,
                                               project: Path) -> None:
    twin = SID_A[:8] + "-ffff-4fff-8fff-ffffffffffff"
    new_session(store, twin, project)
    r = memoir("show", SID_A[:8])
    assert r.returncode == 2 and r.stdout == ""
    assert "ambiguous" in r.stderr and SID_A in r.stderr and twin in r.stderr
    assert "Traceback" not in r.stderr
    # A longer prefix settles it.
    r = memoir("show", SID_A[:10], "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["session_id"] == SID_A


def test_sessions_limit_and_cwd(history: dict[str, Any], project: Path) -> None:
    r = memoir("sessions", "--json", "--limit", "1")
    assert [row["session_id"] for row in json.loads(r.stdout)] == [SID_B]  # the newest
    r = memoir("sessions", "--json", "--cwd", str(project))
    assert [row["session_id"] for row in json.loads(r.stdout)] == [SID_A]
    r = memoir("sessions", "--cwd", str(history["other"]))
    assert r.returncode == 0 and SID_B in r.stdout and SID_A not in r.stdout
    r = memoir("sessions", "--cwd", str(project / "nowhere"))
    assert r.returncode == 0 and "no sessions recorded for" in r.stdout
    for bad in ("0", "-3", "x"):
        r = memoir("sessions", "--limit", bad)
        assert r.returncode == 2 and "positive integer" in r.stderr


def test_json_never_uses_one_key_for_a_count_and_a_list(history: dict[str, Any]) -> None:
    listed = json.loads(memoir("sessions", "--json").stdout)
    shown = json.loads(memoir("show", SID_A, "--json").stdout)

    def kinds(value: Any, prefix: str = "") -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        if isinstance(value, dict):
            for key, v in value.items():
                found.setdefault(key, set()).add(type(v).__name__)
                for k, t in kinds(v).items():
                    found.setdefault(k, set()).update(t)
        elif isinstance(value, list):
            for v in value:
                for k, t in kinds(v).items():
                    found.setdefault(k, set()).update(t)
        return found

    merged: dict[str, set[str]] = {}
    for doc in (listed, shown):
        for key, types in kinds(doc).items():
            merged.setdefault(key, set()).update(types)
    mixed = {k: t for k, t in merged.items() if "list" in t and "int" in t}
    assert mixed == {}, mixed


def test_piping_into_head_prints_no_traceback(store: Store, project: Path) -> None:
    """`memoir sessions | head -1`: the reader leaves early; no BrokenPipeError shown."""
    for n in range(800):  # well over a pipe's 64 KiB buffer
        new_session(store, f"{n:08d}-0000-4000-8000-000000000000", project)
    for _ in range(3):
        proc = subprocess.Popen([*memoir_command(), "sessions"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith("SESSION")
        proc.stdout.close()  # what `head -1` does after its line
        err = proc.stderr.read()
        proc.wait(timeout=30)
        assert "Traceback" not in err and "BrokenPipeError" not in err, err
        assert proc.returncode == 128 + signal.SIGPIPE, (proc.returncode, err)
    done = subprocess.run(["bash", "-c", f"{memoir_command()[0]} sessions | head -1"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("SESSION") and done.stderr == ""


def test_every_subcommand_has_a_one_line_description() -> None:
    from claude_memoir.cli.main import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {c.dest: c.help for c in sub._choices_actions}
    assert set(helps) == set(sub.choices)
    for name, text in helps.items():
        assert text and "\n" not in text and len(text) < 80, (name, text)
        # `memoir COMMAND --help` opens with the same line (and may say more).
        assert (sub.choices[name].description or "").startswith(text), name
    listing = " ".join(memoir("--help").stdout.split())  # argparse wraps long lines
    for name, text in helps.items():
        assert f"{name} {text}" in listing, name


# -- context -----------------------------------------------------------------------------


def test_context_prints_build_context(history: dict[str, Any], store: Store,
                                      project: Path) -> None:
    expected = build_context(store, load_settings(), project)
    assert "SHOWMARK" in expected
    r = memoir("context", "--cwd", str(project))
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected + "\n"
    assert r.stderr == ""


def test_context_defaults_to_current_directory(history: dict[str, Any], store: Store,
                                               project: Path) -> None:
    expected = build_context(store, load_settings(), project)
    r = memoir("context", cwd=project)
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected + "\n"


def test_context_honours_budget_env(history: dict[str, Any], store: Store, project: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    full = build_context(store, load_settings(), project)
    monkeypatch.setenv("MEMOIR_CONTEXT_BUDGET", "450")
    expected = build_context(store, load_settings(), project)
    assert expected and len(expected) <= 450 < len(full)
    r = memoir("context", "--cwd", str(project))
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected + "\n"


def test_context_without_history_prints_nothing(history: dict[str, Any],
                                                tmp_path: Path) -> None:
    empty = tmp_path / "empty-proj"
    empty.mkdir()
    r = memoir("context", "--cwd", str(empty))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    # The other project has a prompt but nothing summarized: nothing either.
    r = memoir("context", "--cwd", str(history["other"]))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""


def test_context_on_empty_home_prints_nothing(tmp_path: Path) -> None:
    r = memoir("context", "--cwd", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""


# -- status ---------------------------------------------------------------------------------


def test_status_without_workers(history: dict[str, Any]) -> None:
    r = memoir("status")
    assert r.returncode == 0, r.stderr
    # The history holds one fallback summary: status starts by saying so.
    assert r.stdout.splitlines()[0] == "DEGRADED: 1 fallback summary in the last 7 days"
    assert "memoir reprocess SESSION" in r.stdout
    lines = r.stdout.strip().splitlines()
    assert lines[-2:] == [
        "agent today: 0 request(s); $0.00 and 0 tokens spent today; no daily budget set",
        "no live workers"]
    r = memoir("status", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["workers"] == [] and report["health"]["level"] == "degraded"


def test_status_shows_database_log_and_spool_sizes(history: dict[str, Any], store: Store,
                                                   memoir_home: Path) -> None:
    from claude_memoir import spool

    spool.write(memoir_home, "stop", {"session_id": SID_A, "pad": "x" * 5000})
    log = memoir_home / "logs" / "memoir.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text("y" * 30_000)
    r = memoir("status", "--json")
    assert r.returncode == 0, r.stderr
    disk = json.loads(r.stdout)["storage"]
    db_bytes = (memoir_home / "memoir.db").stat().st_size
    assert disk["database_bytes"] >= db_bytes > 0
    assert disk["log_bytes"] >= 30_000
    assert disk["spool_files"] == 1 and disk["spool_bytes"] > 5000
    r = memoir("status")
    (line,) = [x for x in r.stdout.splitlines() if x.startswith("storage: ")]
    assert "database " in line and "logs 3" in line and "spool 1 file(s) 5." in line, line


def test_status_worker_without_socket(history: dict[str, Any], store: Store,
                                      memoir_home: Path, project: Path) -> None:
    store.set_worker(history["a"].id, 4242424, 1700000000.0)
    assert not Path(socket_path(memoir_home, SID_A)).exists()
    r = memoir("status", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["workers"]
    assert len(rows) == 1
    row = rows[0]
    assert row["session_id"] == SID_A
    assert row["pid"] == 4242424
    assert row["project"] == os.path.realpath(project)
    assert row["responsive"] is False
    assert row["error"]

    r = memoir("status")
    assert r.returncode == 0, r.stderr
    assert "no live workers" not in r.stdout
    line = next(line for line in r.stdout.splitlines() if line.startswith(SID_A))
    assert "pid 4242424" in line and "UNRESPONSIVE" in line


def test_status_stale_socket_is_unresponsive(history: dict[str, Any], store: Store,
                                             memoir_home: Path) -> None:
    store.set_worker(history["a"].id, 4242424, 1700000000.0)
    path = Path(socket_path(memoir_home, SID_A))
    ensure_private_dir(path.parent)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: a dead worker's leftover
    try:
        r = memoir("status", "--json")
        assert r.returncode == 0, r.stderr
        [row] = json.loads(r.stdout)["workers"]
        assert row["responsive"] is False and row["error"]
    finally:
        path.unlink(missing_ok=True)


def test_status_live_worker_is_responsive(history: dict[str, Any], store: Store,
                                          memoir_home: Path) -> None:
    """A socket that answers pings like a worker does shows up as responsive."""
    store.set_worker(history["a"].id, os.getpid(), 1700000000.0)
    path = Path(socket_path(memoir_home, SID_A))
    ensure_private_dir(path.parent)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    server.settimeout(20)
    requests: list[dict[str, Any]] = []

    def serve() -> None:
        for _ in range(2):
            try:
                conn, _addr = server.accept()
            except OSError:
                return
            with conn:
                buf = b""
                while not buf.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
                requests.append(json.loads(buf))
                state = {"session_id": SID_A, "pid": os.getpid(), "uptime": 12.0, "idle": 3.0,
                         "pending": 2, "agent": "ready", "stopping": None}
                conn.sendall(json.dumps({"ok": True, "type": "ping", "state": state}).encode()
                             + b"\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        r = memoir("status", "--json")
        assert r.returncode == 0, r.stderr
        [row] = json.loads(r.stdout)["workers"]
        assert row["responsive"] is True
        assert row["session_id"] == SID_A and row["pending"] == 2 and row["agent"] == "ready"
        r = memoir("status")
        assert r.returncode == 0, r.stderr
        line = next(line for line in r.stdout.splitlines() if line.startswith(SID_A))
        assert "UNRESPONSIVE" not in line
        assert "up 12s" in line and "pending 2" in line and "agent ready" in line
    finally:
        server.close()
        thread.join(5)
        path.unlink(missing_ok=True)
    assert requests and all(req == {"type": "ping"} for req in requests)


# -- install / uninstall -------------------------------------------------------------------


def user_settings() -> Path:
    return Path(os.environ["HOME"]) / ".claude" / "settings.json"


def our_commands(data: dict[str, Any]) -> dict[str, list[str]]:
    """event -> commands of claude-memoir's hooks in a parsed settings.json."""
    out: dict[str, list[str]] = {}
    for event, groups in data.get("hooks", {}).items():
        for group in groups:
            for hook in group.get("hooks", []):
                if "claude_memoir.hook" in hook.get("command", ""):
                    out.setdefault(event, []).append(hook["command"])
    return out


def check_our_hooks(data: dict[str, Any]) -> None:
    commands = our_commands(data)
    assert set(commands) == set(HOOK_EVENTS)
    interpreter = script_interpreter()
    for event, arg in HOOK_EVENTS.items():
        assert len(commands[event]) == 1, (event, commands[event])
        command = commands[event][0]
        argv = shlex.split(command)
        assert os.path.isabs(argv[0]), command
        assert argv[0] == interpreter, (argv[0], interpreter)
        assert command == hook_command(arg, interpreter)


def test_install_user_scope(tmp_path: Path) -> None:
    path = user_settings()
    assert not path.exists()
    r = memoir("install", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"installed in {path}" in r.stdout
    data = json.loads(path.read_text())
    check_our_hooks(data)
    assert not (tmp_path / ".claude").exists()  # user scope does not touch the cwd
    # The interpreter in the commands really runs our hook module.
    interpreter = shlex.split(our_commands(data)["Stop"][0])[0]
    probe = subprocess.run([interpreter, "-c", "import claude_memoir.hook"],
                           capture_output=True, text=True, timeout=30)
    assert probe.returncode == 0, probe.stderr


def test_second_install_reports_already_installed(tmp_path: Path) -> None:
    assert memoir("install", cwd=tmp_path).returncode == 0
    first = user_settings().read_bytes()
    r = memoir("install", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "already installed" in r.stdout
    assert user_settings().read_bytes() == first


def test_install_keeps_user_settings_and_uninstall_restores_them(tmp_path: Path) -> None:
    path = user_settings()
    path.parent.mkdir(parents=True)
    mine = {
        "model": "opus",
        "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
                  "PreToolUse": [{"matcher": "Bash",
                                  "hooks": [{"type": "command", "command": "guard.sh"}]}]},
    }
    path.write_text(json.dumps(mine, indent=2))
    r = memoir("install", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(path.read_text())
    check_our_hooks(data)
    assert data["model"] == "opus"
    stop_commands = [h["command"] for g in data["hooks"]["Stop"] for h in g["hooks"]]
    assert "notify-send done" in stop_commands
    # The user's own PreToolUse group stays first, ours (file-time recall) follows.
    assert data["hooks"]["PreToolUse"][:1] == mine["hooks"]["PreToolUse"]

    r = memoir("uninstall", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"removed from {path}" in r.stdout
    assert json.loads(path.read_text()) == mine


def test_uninstall_cleans_settings(tmp_path: Path) -> None:
    path = user_settings()
    assert memoir("install", cwd=tmp_path).returncode == 0
    r = memoir("uninstall", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"removed from {path}" in r.stdout
    data = json.loads(path.read_text())
    assert our_commands(data) == {}
    assert "hooks" not in data  # nothing but ours was there: no empty leftovers
    assert "claude_memoir" not in path.read_text()
    r = memoir("uninstall", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "no claude-memoir hooks" in r.stdout


def test_uninstall_without_settings_file(tmp_path: Path) -> None:
    r = memoir("uninstall", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "no claude-memoir hooks" in r.stdout
    assert not user_settings().exists()


def test_install_project_scope(tmp_path: Path) -> None:
    proj = tmp_path / "some-project"
    proj.mkdir()
    r = memoir("install", "--scope", "project", cwd=proj)
    assert r.returncode == 0, r.stderr
    path = proj / ".claude" / "settings.json"
    assert str(path) in r.stdout
    check_our_hooks(json.loads(path.read_text()))
    assert not user_settings().exists()

    r = memoir("install", "--scope", "project", cwd=proj)
    assert r.returncode == 0 and "already installed" in r.stdout

    r = memoir("uninstall", "--scope", "project", cwd=proj)
    assert r.returncode == 0, r.stderr
    assert our_commands(json.loads(path.read_text())) == {}


def test_install_bad_scope_exits_2(tmp_path: Path) -> None:
    r = memoir("install", "--scope", "global", cwd=tmp_path)
    assert r.returncode == 2
    assert "invalid choice" in r.stderr
    assert not user_settings().exists()


@pytest.mark.parametrize("command", ["install", "uninstall"])
def test_invalid_json_settings_left_untouched(command: str, tmp_path: Path) -> None:
    path = user_settings()
    path.parent.mkdir(parents=True)
    original = b'{"model": "opus", "hooks": {,}\n'
    path.write_bytes(original)
    listing = sorted(p.name for p in path.parent.iterdir())
    r = memoir(command, cwd=tmp_path)
    assert r.returncode != 0
    assert r.returncode == 1
    assert "not valid JSON" in r.stderr and str(path) in r.stderr
    assert "Traceback" not in r.stderr
    assert "installed" not in r.stdout and "removed" not in r.stdout
    assert path.read_bytes() == original
    assert sorted(p.name for p in path.parent.iterdir()) == listing


ESCAPES = "fix \x1b[31mRED\x1b[0m \x1b]0;pwned-title\x07 then \x1b[2Jcleared \x9b2J"


def test_stored_escape_sequences_never_reach_the_terminal(store: Store, project: Path) -> None:
    """Tool output recorded escape sequences: show, sessions, search and context print
    them inert (the text stays readable, the terminal is not retitled or cleared)."""
    sid = "e5c4e5c4-0000-4000-8000-000000000001"
    s = new_session(store, sid, project)
    number = store.add_prompt(s.id, ESCAPES)
    store.save_summary(s.id, number, Summary(request=ESCAPES, completed=ESCAPES), "agent")
    for argv in (("show", sid), ("sessions",), ("search", "pwned", "--all"),
                 ("context", "--cwd", str(project))):
        out = memoir(*argv).stdout
        assert "pwned" in out or argv == ("sessions",), (argv, out)
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", out), (argv, out)
