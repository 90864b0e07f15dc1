"""``memoir doctor``, driven as a user would: the real console script in a project dir.

Each test builds one situation (nothing installed, a broken interpreter, loose
permissions, a damaged database, leftovers in run/ and spool/, missing
credentials, a reachable or failing agent) and checks what the doctor prints,
its ``--json`` findings, its exit code (1 exactly when a finding is ``fail``)
and, for ``--fix``, what it changed on disk.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from claude_memoir import spool
from claude_memoir.cli.install import EVENTS
from conftest import api_env, memoir_command

LEVELS = {"ok", "warn", "fail"}
CHECKS = {"install", "permissions", "database", "runtime", "health", "agent", "budget"}


# -- helpers ---------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The directory the user runs ``memoir`` from (project-scope settings live here)."""
    path = tmp_path / "proj"
    path.mkdir()
    return path


def base_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def memoir(*args: str, cwd: Path, env: dict[str, str] | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*memoir_command(), *args], env=env if env is not None else base_env(),
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def doctor(*args: str, cwd: Path, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    return memoir("doctor", *args, cwd=cwd, env=env)


def doctor_json(*args: str, cwd: Path, env: dict[str, str] | None = None
                ) -> tuple[int, list[dict[str, str]]]:
    """Run ``memoir doctor --json ARGS``; return (exit code, findings)."""
    done = doctor("--json", *args, cwd=cwd, env=env)
    assert not done.stderr.strip() or "Traceback" not in done.stderr, done.stderr
    try:
        findings = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"doctor --json printed no JSON (rc {done.returncode}):\n"
                    f"{done.stdout}\n{done.stderr}")
    assert isinstance(findings, list)
    # The exit code is 1 exactly when something failed.
    assert done.returncode == (1 if any(f["level"] == "fail" for f in findings) else 0), (
        done.returncode, findings)
    return done.returncode, findings


def of(findings: list[dict[str, str]], check: str, level: str | None = None
       ) -> list[dict[str, str]]:
    return [f for f in findings if f["check"] == check and (level is None or f["level"] == level)]


def install(cwd: Path, *args: str, env: dict[str, str] | None = None) -> None:
    done = memoir("install", *args, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr


def make_home(cwd: Path, env: dict[str, str] | None = None) -> None:
    """Create MEMOIR_HOME and its database the ordinary way (``memoir sessions``)."""
    done = memoir("sessions", cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr


def healthy(cwd: Path, env: dict[str, str] | None = None) -> None:
    """Installed hooks and a private home with a database: nothing for the doctor to fail."""
    install(cwd, env=env)
    make_home(cwd, env=env)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def user_settings() -> Path:
    return Path(os.environ["HOME"]) / ".claude" / "settings.json"


def write_settings(path: Path, command_for: dict[str, str]) -> None:
    """A hand-written settings.json with one hook command per event."""
    hooks: dict[str, Any] = {}
    for event, command in command_for.items():
        hooks[event] = [{"hooks": [{"type": "command", "command": command, "timeout": 10}]}]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"hooks": hooks}, indent=2))


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


# -- install ----------------------------------------------------------------------


def test_nothing_installed_fails_and_says_memoir_install(project: Path) -> None:
    done = doctor(cwd=project)
    assert done.returncode == 1, done.stdout
    lines = done.stdout.splitlines()
    fail_line = next((i for i, line in enumerate(lines) if line.startswith("[FAIL] install:")),
                     None)
    assert fail_line is not None, done.stdout
    assert "no claude-memoir hooks" in lines[fail_line]
    assert str(user_settings()) in lines[fail_line]
    assert lines[fail_line + 1].strip().startswith("fix:")
    assert "memoir install" in lines[fail_line + 1]
    assert "problems found" in done.stdout

    _, findings = doctor_json(cwd=project)
    install_findings = of(findings, "install")
    assert [f["level"] for f in install_findings] == ["fail"]
    assert "memoir install" in install_findings[0]["fix"]


def test_after_memoir_install_install_is_ok_and_interpreter_runs_hooks(project: Path) -> None:
    install(project)
    settings = json.loads(user_settings().read_text())
    python = settings["hooks"]["Stop"][0]["hooks"][0]["command"].split()[0]

    _, findings = doctor_json(cwd=project)
    install_findings = of(findings, "install")
    assert install_findings and all(f["level"] == "ok" for f in install_findings), findings
    assert any(f["detail"] == f"{python} runs the hooks" for f in install_findings), findings
    assert any("hooks installed for every event" in f["detail"]
               and str(user_settings()) in f["detail"] for f in install_findings)

    done = doctor(cwd=project)
    assert f"[ok  ] install: {python} runs the hooks" in done.stdout.splitlines()
    assert "[FAIL] install" not in done.stdout


def test_fresh_install_is_all_good(project: Path, memoir_home: Path) -> None:
    """`memoir install` then `memoir doctor` on a new machine: nothing to fix.

    The home does not exist before; whatever claude-memoir itself creates must
    be private, so the doctor finds nothing wrong with it.
    """
    assert not memoir_home.exists()
    install(project)
    done = doctor(cwd=project)
    assert "[FAIL]" not in done.stdout, done.stdout
    assert done.returncode == 0, done.stdout
    assert done.stdout.rstrip().endswith("all good"), done.stdout
    if memoir_home.exists():
        assert mode(memoir_home) == 0o700


def test_doctor_on_a_new_machine_does_not_blame_a_home_it_created(project: Path,
                                                                   memoir_home: Path) -> None:
    assert not memoir_home.exists()
    _, findings = doctor_json(cwd=project)
    assert of(findings, "permissions", "fail") == [], findings
    if memoir_home.exists():
        assert mode(memoir_home) == 0o700, oct(mode(memoir_home))


def test_missing_interpreter_fails_naming_it(project: Path) -> None:
    bad = "/nonexistent/python3"
    write_settings(user_settings(),
                   {e: f"{bad} -m claude_memoir.hook {a}" for e, a in EVENTS.items()})
    make_home(project)
    rc, findings = doctor_json(cwd=project)
    assert rc == 1
    fails = of(findings, "install", "fail")
    assert len(fails) == 1, findings
    assert bad in fails[0]["detail"] and "cannot run" in fails[0]["detail"]
    assert "memoir install" in fails[0]["fix"]
    assert not of(findings, "install", "ok")

    done = doctor(cwd=project)
    assert done.returncode == 1
    assert any(line.startswith("[FAIL] install:") and bad in line
               for line in done.stdout.splitlines()), done.stdout


def test_interpreter_without_claude_memoir_fails(project: Path, tmp_path: Path) -> None:
    """An interpreter that runs but cannot import claude_memoir (e.g. another venv)."""
    fake = tmp_path / "bin" / "python3"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'claude_memoir'\" "
                    ">&2\nexit 1\n")
    fake.chmod(0o755)
    write_settings(user_settings(),
                   {e: f"{fake} -m claude_memoir.hook {a}" for e, a in EVENTS.items()})
    make_home(project)
    rc, findings = doctor_json(cwd=project)
    assert rc == 1
    fails = of(findings, "install", "fail")
    assert len(fails) == 1, findings
    assert str(fake) in fails[0]["detail"] and "cannot import" in fails[0]["detail"]
    assert "No module named" in fails[0]["detail"]


def test_relative_interpreter_warns_about_shim_cost(project: Path) -> None:
    write_settings(user_settings(),
                   {e: f"python3 -m claude_memoir.hook {a}" for e, a in EVENTS.items()})
    make_home(project)
    rc, findings = doctor_json(cwd=project)
    # Hand-written hooks come without the MCP server (test_mcp_server_registration...).
    install_findings = [f for f in of(findings, "install") if "MCP server" not in f["detail"]]
    assert [f["level"] for f in install_findings] == ["warn"], findings
    assert "'python3'" in install_findings[0]["detail"]
    assert "absolute" in install_findings[0]["detail"]
    assert "shim" in install_findings[0]["detail"]
    assert "memoir install" in install_findings[0]["fix"]
    assert rc == 0  # a warning is not a failure

    done = doctor(cwd=project)
    assert done.returncode == 0
    assert any(line.startswith("[WARN] install:") and "shim" in line
               for line in done.stdout.splitlines()), done.stdout
    assert done.stdout.rstrip().endswith("works, with warnings")


def test_missing_event_fails_naming_it(project: Path) -> None:
    install(project)
    make_home(project)
    path = user_settings()
    data = json.loads(path.read_text())
    del data["hooks"]["Stop"]
    path.write_text(json.dumps(data, indent=2))

    rc, findings = doctor_json(cwd=project)
    assert rc == 1
    fails = of(findings, "install", "fail")
    assert len(fails) == 1, findings
    assert fails[0]["detail"] == f"{path}: no hook for Stop"
    assert fails[0]["fix"] == "run `memoir install --scope user`"

    # Reinstalling, as the fix says, clears it.
    install(project)
    rc, findings = doctor_json(cwd=project)
    assert of(findings, "install", "fail") == []
    assert rc == 0


def test_user_and_project_scope_both_installed_warns_events_run_twice(project: Path) -> None:
    install(project)
    install(project, "--scope", "project")
    assert (project / ".claude" / "settings.json").exists()
    make_home(project)

    rc, findings = doctor_json(cwd=project)
    warns = of(findings, "install", "warn")
    assert any("every event runs twice" in f["detail"] for f in warns), findings
    assert any("memoir uninstall --scope project" in f["fix"] for f in warns)
    assert of(findings, "install", "fail") == []
    assert rc == 0

    # From another directory only the user scope is seen: no warning.
    elsewhere = project.parent / "other"
    elsewhere.mkdir()
    _, findings = doctor_json(cwd=elsewhere)
    assert not any("twice" in f["detail"] for f in findings), findings


def test_duplicate_hooks_for_an_event_warn(project: Path) -> None:
    install(project)
    make_home(project)
    path = user_settings()
    data = json.loads(path.read_text())
    data["hooks"]["Stop"].append(json.loads(json.dumps(data["hooks"]["Stop"][0])))
    path.write_text(json.dumps(data, indent=2))

    rc, findings = doctor_json(cwd=project)
    warns = of(findings, "install", "warn")
    assert any("several claude-memoir hooks for Stop" in f["detail"] for f in warns), findings
    assert rc == 0


def test_malformed_hook_command_is_a_finding_not_a_crash(project: Path) -> None:
    """A hand-edited command with an unbalanced quote must be reported, not crash doctor."""
    commands = {e: f"/usr/bin/python3 -m claude_memoir.hook {a}" for e, a in EVENTS.items()}
    commands["Stop"] = "'/usr/bin/python3 -m claude_memoir.hook stop"
    write_settings(user_settings(), commands)
    make_home(project)
    done = doctor(cwd=project)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1
    assert "[FAIL] install" in done.stdout, done.stdout


# -- permissions --------------------------------------------------------------------


def test_loose_permissions_fail_and_fix_tightens_them(project: Path, memoir_home: Path) -> None:
    healthy(project)
    database = memoir_home / "memoir.db"
    assert database.exists()
    os.chmod(database, 0o644)
    os.chmod(memoir_home, 0o755)

    rc, findings = doctor_json(cwd=project)
    assert rc == 1
    fails = of(findings, "permissions", "fail")
    assert len(fails) == 1, findings
    assert f"{memoir_home} (0o755)" in fails[0]["detail"]
    assert f"{database} (0o644)" in fails[0]["detail"]
    assert "memoir doctor --fix" in fails[0]["fix"]

    os.chmod(memoir_home, 0o755)  # whatever the first run did, start --fix from loose
    done = doctor("--fix", cwd=project)
    assert mode(database) == 0o600
    assert mode(memoir_home) == 0o700
    assert any(line.startswith("[ok  ] permissions: tightened:") for line in
               done.stdout.splitlines()), done.stdout
    assert done.returncode == 0, done.stdout

    rc, findings = doctor_json(cwd=project)
    assert rc == 0
    perms = of(findings, "permissions")
    assert [f["level"] for f in perms] == ["ok"], findings
    assert "private" in perms[0]["detail"]


def test_doctor_without_fix_changes_no_permissions(project: Path, memoir_home: Path) -> None:
    """Only ``--fix`` applies fixes: a plain run reports the loose home and leaves it."""
    healthy(project)
    os.chmod(memoir_home, 0o755)
    rc, findings = doctor_json(cwd=project)
    assert rc == 1
    assert any(str(memoir_home) in f["detail"] for f in of(findings, "permissions", "fail"))
    assert mode(memoir_home) == 0o755, "doctor without --fix changed the home's mode"
    # ...so a second plain run still reports what the user has not fixed yet.
    rc, findings = doctor_json(cwd=project)
    assert rc == 1
    assert any(str(memoir_home) in f["detail"] for f in of(findings, "permissions", "fail"))


def test_loose_files_in_run_and_logs_are_reported_and_fixed(project: Path,
                                                           memoir_home: Path) -> None:
    healthy(project)
    run = private_dir(memoir_home / "run")
    pid_file = run / "0123456789abcdef.pid"
    pid_file.write_text("1 0\n")
    os.chmod(pid_file, 0o644)
    log_file = memoir_home / "logs" / "memoir.log"
    os.chmod(log_file, 0o640)

    rc, findings = doctor_json(cwd=project)
    assert rc == 1
    detail = " ".join(f["detail"] for f in of(findings, "permissions", "fail"))
    assert str(pid_file) in detail and str(log_file) in detail, findings

    doctor("--fix", cwd=project)
    assert mode(pid_file) == 0o600 and mode(log_file) == 0o600


# -- database -----------------------------------------------------------------------


def _garble(database: Path) -> bytes:
    garbage = b"this is not an SQLite database, just garbage bytes\x00\xff" * 200
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    with open(database, "wb") as fh:  # keeps the file (and its 0600 mode)
        fh.write(garbage)
    return garbage


def test_damaged_database_fails_and_fix_moves_it_aside(project: Path, memoir_home: Path) -> None:
    healthy(project)
    database = memoir_home / "memoir.db"
    garbage = _garble(database)

    done = doctor(cwd=project)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    i = next((n for n, line in enumerate(lines) if line.startswith("[FAIL] database:")), None)
    assert i is not None, done.stdout
    assert "damaged" in lines[i]
    assert "fix:" in lines[i + 1] and "--fix" in lines[i + 1]
    # Reporting does not touch it.
    assert database.read_bytes() == garbage
    assert list(memoir_home.glob("memoir.db.corrupt-*")) == []

    rc, findings = doctor_json(cwd=project)
    fails = of(findings, "database", "fail")
    assert len(fails) == 1 and "damaged" in fails[0]["detail"] and "--fix" in fails[0]["fix"]

    done = doctor("--fix", cwd=project)
    assert done.returncode == 0, done.stdout
    aside = list(memoir_home.glob("memoir.db.corrupt-*"))
    assert len(aside) == 1, aside
    assert aside[0].read_bytes() == garbage
    assert "moved aside" in done.stdout and aside[0].name in done.stdout

    # The next ordinary command gets a fresh, working database.
    sessions = memoir("sessions", cwd=project)
    assert sessions.returncode == 0, sessions.stderr
    assert "no sessions recorded yet" in sessions.stdout
    assert sqlite3.connect(database).execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # Later runs remember the moved-aside copy, as a warning.
    rc, findings = doctor_json(cwd=project)
    assert rc == 0, findings
    warns = of(findings, "database", "warn")
    assert len(warns) == 1 and aside[0].name in warns[0]["detail"], findings
    assert ".recover" in warns[0]["fix"]
    assert any(f["level"] == "ok" and "integrity ok" in f["detail"]
               for f in of(findings, "database"))


def test_healthy_database_reports_integrity_and_sessions(project: Path) -> None:
    healthy(project)
    _, findings = doctor_json(cwd=project)
    db_findings = of(findings, "database")
    assert [f["level"] for f in db_findings] == ["ok"]
    assert "integrity ok, 0 session(s)" in db_findings[0]["detail"]


def test_locked_database_is_not_called_damaged_nor_moved_aside(project: Path,
                                                              memoir_home: Path) -> None:
    """A healthy database another process holds locked must survive ``--fix``."""
    healthy(project)
    database = memoir_home / "memoir.db"
    holder = sqlite3.connect(database, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("CREATE TABLE IF NOT EXISTS held (x)")
        done = doctor("--json", "--fix", cwd=project)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    findings = json.loads(done.stdout)
    assert list(memoir_home.glob("memoir.db.corrupt-*")) == [], \
        "doctor --fix moved a healthy (merely locked) database aside"
    assert database.exists()
    assert not any("damaged" in f["detail"] for f in of(findings, "database")), findings


# -- runtime -----------------------------------------------------------------------


def test_stale_socket_warns_with_cleanup_fix(project: Path, memoir_home: Path) -> None:
    healthy(project)
    run = private_dir(memoir_home / "run")
    path = run / "deadbeefdeadbeef.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()
    os.chmod(path, 0o600)
    assert path.is_socket()

    rc, findings = doctor_json(cwd=project)
    warns = of(findings, "runtime", "warn")
    assert len(warns) == 1, findings
    assert "1 stale socket(s)" in warns[0]["detail"] and path.name in warns[0]["detail"]
    assert "memoir cleanup-sessions" in warns[0]["fix"]
    assert of(findings, "runtime", "ok") == []
    assert rc == 0

    # The fix it names does clear it.
    cleaned = memoir("cleanup-sessions", cwd=project)
    assert cleaned.returncode == 0, cleaned.stderr
    _, findings = doctor_json(cwd=project)
    assert [f["level"] for f in of(findings, "runtime")] == ["ok"], findings


def test_live_socket_is_not_stale(project: Path, memoir_home: Path) -> None:
    healthy(project)
    run = private_dir(memoir_home / "run")
    path = run / "feedfacefeedface.sock"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        os.chmod(path, 0o600)
        server.listen(4)
        _, findings = doctor_json(cwd=project)
    finally:
        server.close()
    assert [f["level"] for f in of(findings, "runtime")] == ["ok"], findings


def test_spooled_payload_warns(project: Path, memoir_home: Path) -> None:
    healthy(project)
    spooled = spool.write(memoir_home, "stop", {"session_id": "3f2a9c1e-0b7d-4e55-9a10-aaaa",
                                                "hook_event_name": "Stop"})
    assert spooled.exists()

    rc, findings = doctor_json(cwd=project)
    warns = of(findings, "runtime", "warn")
    assert len(warns) == 1, findings
    assert "1 payload(s) spooled" in warns[0]["detail"]
    assert str(memoir_home / "memoir.db") in warns[0]["fix"]
    assert rc == 0
    # A spool file is private, so permissions stay clean.
    assert of(findings, "permissions", "fail") == []


def test_rejected_spool_files_are_reported(project: Path, memoir_home: Path) -> None:
    healthy(project)
    directory = Path(spool.spool_dir(memoir_home))
    directory.mkdir(mode=0o700, exist_ok=True)
    bad = directory / "00000000000000000001-1.bad"
    bad.write_text("{not json")
    bad.chmod(0o600)
    rc, findings = doctor_json(cwd=project)
    warns = of(findings, "runtime", "warn")
    assert len(warns) == 1, findings
    assert "could not be replayed" in warns[0]["detail"] and bad.name in warns[0]["detail"]
    assert "MEMOIR_KEEP_REJECTED_DAYS" in warns[0]["fix"]
    assert rc == 0


# -- agent -------------------------------------------------------------------------


def _no_credentials_env() -> dict[str, str]:
    env = base_env()
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"):
        env.pop(name, None)
    return env


def _credential_warnings(findings: list[dict[str, str]]) -> list[dict[str, str]]:
    return [f for f in of(findings, "agent", "warn") if "API key" in f["detail"]]


def test_no_credentials_warns(project: Path) -> None:
    env = _no_credentials_env()
    assert not (Path(env["HOME"]) / ".claude" / ".credentials.json").exists()
    healthy(project, env=env)
    rc, findings = doctor_json(cwd=project, env=env)
    warns = _credential_warnings(findings)
    assert len(warns) == 1, findings
    assert "ANTHROPIC_API_KEY" in warns[0]["fix"]
    # The CLI itself is found and runs.
    assert any(f["level"] == "ok" and "Claude Code CLI" in f["detail"]
               for f in of(findings, "agent"))
    assert rc == 0

    done = doctor(cwd=project, env=env)
    assert any(line.startswith("[WARN] agent:") and "API key" in line
               for line in done.stdout.splitlines()), done.stdout


def test_api_key_means_no_credentials_warning(project: Path) -> None:
    env = base_env(ANTHROPIC_API_KEY="sk-test-not-real")
    healthy(project, env=env)
    rc, findings = doctor_json(cwd=project, env=env)
    assert _credential_warnings(findings) == [], findings
    assert [f["level"] for f in of(findings, "agent")] == ["ok", "ok"]
    assert of(findings, "agent")[1]["detail"] == \
        "credentials: the environment variable ANTHROPIC_API_KEY"
    assert rc == 0
    done = doctor(cwd=project, env=env)
    assert done.stdout.rstrip().endswith("all good"), done.stdout


def test_claude_login_means_no_credentials_warning(project: Path) -> None:
    env = _no_credentials_env()
    credentials = Path(env["HOME"]) / ".claude" / ".credentials.json"
    credentials.parent.mkdir(parents=True, exist_ok=True)
    credentials.write_text("{}")
    healthy(project, env=env)
    _, findings = doctor_json(cwd=project, env=env)
    assert _credential_warnings(findings) == [], findings


def test_live_agent_answers_through_the_mock(project: Path, mock_api: Any,
                                             tmp_path: Path) -> None:
    env = base_env(**api_env(mock_api, tmp_path))
    healthy(project, env=env)
    rc, findings = doctor_json("--live", cwd=project, env=env)
    agent = of(findings, "agent")
    live = [f for f in agent if "answered" in f["detail"] or "did not answer" in f["detail"]]
    assert len(live) == 1, findings
    assert live[0]["level"] == "ok", live[0]
    assert "Ready." in live[0]["detail"]
    assert rc == 0
    assert mock_api.messages_requests(agent=True), "the live check never reached the API"


def test_live_agent_failure_fails(project: Path, mock_api: Any, tmp_path: Path) -> None:
    mock_api.fail_agent = 500
    env = base_env(**api_env(mock_api, tmp_path))
    healthy(project, env=env)
    done = doctor("--live", cwd=project, env=env)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1, done.stdout
    lines = done.stdout.splitlines()
    i = next((n for n, line in enumerate(lines)
              if line.startswith("[FAIL] agent:") and "did not answer" in line), None)
    assert i is not None, done.stdout
    # The fix names the cause: an API answering 500 is not a credentials problem.
    assert "API returned errors" in lines[i]
    assert "fix:" in lines[i + 1] and "transient" in lines[i + 1]
    # Nothing else failed: the exit code is the agent's.
    assert sum(line.startswith("[FAIL]") for line in lines) == 1, done.stdout
    assert mock_api.messages_requests(agent=True)


def test_without_live_the_agent_is_not_called(project: Path, mock_api: Any,
                                              tmp_path: Path) -> None:
    env = base_env(**api_env(mock_api, tmp_path))
    healthy(project, env=env)
    _, findings = doctor_json(cwd=project, env=env)
    assert not any("answered" in f["detail"] for f in findings)
    assert mock_api.messages_requests(agent=True) == []


# -- output ------------------------------------------------------------------------


@pytest.mark.parametrize("setup", ["empty", "healthy", "broken"])
def test_json_findings_have_the_four_keys(project: Path, memoir_home: Path,
                                          setup: str) -> None:
    if setup != "empty":
        healthy(project)
    if setup == "broken":
        os.chmod(memoir_home, 0o755)
        _garble(memoir_home / "memoir.db")
    rc, findings = doctor_json(cwd=project)
    assert findings
    for f in findings:
        assert set(f) == {"check", "level", "detail", "fix"}, f
        assert f["level"] in LEVELS
        assert f["check"] in CHECKS
        assert isinstance(f["detail"], str) and f["detail"]
        assert isinstance(f["fix"], str)
        if f["level"] != "ok":
            assert f["fix"], f"a {f['level']} finding without a fix: {f}"
    # Every check reports something, in the order a user would fix things.
    order = [f["check"] for f in findings]
    assert sorted(set(order), key=order.index) == ["install", "permissions", "database",
                                                   "runtime", "health", "agent", "budget"]
    if setup == "broken":
        assert rc == 1
        assert of(findings, "permissions", "fail") and of(findings, "database", "fail")
    if setup == "healthy":
        assert rc == 0 and all(f["level"] == "ok" for f in findings), findings


def test_text_output_matches_json(project: Path) -> None:
    healthy(project)
    _, findings = doctor_json(cwd=project)
    done = doctor(cwd=project)
    marks = {"ok": "[ok  ]", "warn": "[WARN]", "fail": "[FAIL]"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert lines == [f"{marks[f['level']]} {f['check']}: {f['detail']}" for f in findings]


def test_installed_command_whose_package_moved_fails(project: Path, tmp_path: Path) -> None:
    """The hook runs with -I -S from the directory its command names; if the
    package is no longer there (venv recreated elsewhere), hooks silently do
    nothing, although the interpreter itself still imports claude_memoir."""
    from claude_memoir.cli.install import hook_command, package_parent

    moved = hook_command("stop").replace(repr(package_parent()), repr(str(tmp_path / "gone")))
    assert moved != hook_command("stop")
    write_settings(user_settings(), {e: moved.rsplit(" ", 1)[0] + f" {a}"
                                     for e, a in EVENTS.items()})
    make_home(project)
    rc, findings = doctor_json(cwd=project)
    assert rc == 1
    fails = of(findings, "install", "fail")
    assert len(fails) == 1, findings
    assert "installed hook command does not run" in fails[0]["detail"]
    assert "ModuleNotFoundError" in fails[0]["detail"]
    # ...while the command `memoir install` writes passes the same probe.
    install(project)
    assert of(doctor_json(cwd=project)[1], "install", "fail") == []


def test_mcp_server_registration_is_checked(project: Path) -> None:
    """Hooks without the MCP server: Claude cannot search, and the doctor says so."""
    healthy(project)
    _, findings = doctor_json(cwd=project)
    assert [f for f in of(findings, "install", "ok") if "MCP server `memoir` registered" in
            f["detail"]]
    claude_json = Path(os.environ["HOME"]) / ".claude.json"
    data = json.loads(claude_json.read_text())
    entry = data["mcpServers"].pop("memoir")
    claude_json.write_text(json.dumps(data))
    _, findings = doctor_json(cwd=project)
    [warn] = [f for f in of(findings, "install", "warn") if "MCP server" in f["detail"]]
    assert "cannot search" in warn["detail"] and warn["fix"] == "run `memoir install` again"
    data["mcpServers"]["memoir"] = {**entry, "command": "/nonexistent/python3"}
    claude_json.write_text(json.dumps(data))
    code, findings = doctor_json(cwd=project)
    assert code == 1
    [fail] = [f for f in of(findings, "install", "fail") if "MCP server" in f["detail"]]
    assert "/nonexistent/python3" in fail["detail"]


def test_api_key_helper_only_counts_as_credentials(project: Path) -> None:
    env = _no_credentials_env()
    settings = Path(env["HOME"]) / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"apiKeyHelper": "/opt/bin/get-key"}))
    healthy(project, env=env)
    rc, findings = doctor_json(cwd=project, env=env)
    assert _credential_warnings(findings) == [], findings
    assert {"level": "ok", "detail": f"credentials: apiKeyHelper in {settings}"}.items() <= \
        of(findings, "agent")[1].items()
    assert rc == 0


# -- health ------------------------------------------------------------------------


def test_recorded_agent_failure_fails_with_its_cause(project: Path, memoir_home: Path) -> None:
    from claude_memoir.store import Store

    healthy(project)
    with Store.open(memoir_home) as store:
        store.record_failure("agent", "not-logged-in",
                             "agent turn failed: Not logged in · Please run /login")
    done = doctor(cwd=project)
    assert done.returncode == 1, done.stdout
    lines = done.stdout.splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith("[FAIL] health:"))
    assert "the memory agent is not logged in" in lines[i]
    assert "Not logged in · Please run /login" in lines[i]
    assert "/login" in lines[i + 1] and "apiKeyHelper" in lines[i + 1]
    _, findings = doctor_json(cwd=project)
    assert [f["level"] for f in of(findings, "health")] == ["fail"]
    with Store.open(memoir_home) as store:
        store.record_ok("agent")
    _, findings = doctor_json(cwd=project)
    assert [f["level"] for f in of(findings, "health")] == ["ok"]


# -- the plugin form ---------------------------------------------------------------------


def _enable_plugin(root: Path) -> str:
    """What `/plugin install memoir@claude-memoir` leaves in ~/.claude (format of 2.1.332)."""
    plugin_id = "memoir@claude-memoir"
    claude = Path(os.environ["HOME"]) / ".claude"
    (claude / "plugins").mkdir(parents=True, exist_ok=True)
    (claude / "settings.json").write_text(json.dumps({"enabledPlugins": {plugin_id: True}}))
    (claude / "plugins" / "installed_plugins.json").write_text(json.dumps({
        "version": 2, "plugins": {plugin_id: [{"scope": "user", "installPath": str(root),
                                               "version": "0.1.0"}]}}))
    return plugin_id


def test_hooks_from_the_enabled_plugin_are_recognised(project: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    plugin_id = _enable_plugin(root)
    make_home(project)
    rc, findings = doctor_json(cwd=project)
    install_findings = of(findings, "install")
    assert [f["level"] for f in install_findings] == ["ok"], findings
    assert install_findings[0]["detail"] == \
        f"hooks come from the enabled plugin {plugin_id} ({root})"
    assert rc == 0
    assert "memoir install" not in doctor(cwd=project).stdout

    # `memoir install` as well: every event would run twice, and the doctor says so.
    install(project)
    _, findings = doctor_json(cwd=project)
    [doubled] = of(findings, "install", "warn")
    assert "runs twice" in doubled["detail"] and "memoir uninstall" in doubled["fix"]


def test_enabled_plugin_whose_runner_is_gone_fails(project: Path, tmp_path: Path) -> None:
    _enable_plugin(tmp_path / "gone")
    rc, findings = doctor_json(cwd=project)
    [fail] = of(findings, "install", "fail")
    assert "hook runner" in fail["detail"] and "/plugin install" in fail["fix"]
    assert rc == 1


def test_run_from_the_home_directory_the_hooks_are_not_counted_twice(project: Path) -> None:
    """From ~, the project's settings file is the user's: one install, not two."""
    healthy(project)
    home = Path(os.environ["HOME"])
    _, findings = doctor_json(cwd=home)
    assert not [f for f in findings if "runs twice" in f["detail"]], findings


def test_a_plugin_checkouts_mcp_declaration_is_not_a_broken_registration(
        project: Path) -> None:
    """Running the doctor inside a plugin checkout (its .mcp.json names
    ${CLAUDE_PLUGIN_ROOT}) must not fail the install."""
    healthy(project)
    (project / ".mcp.json").write_text(json.dumps({"mcpServers": {"memoir": {
        "command": "${CLAUDE_PLUGIN_ROOT}/bin/memoir-mcp", "args": []}}}))
    code, findings = doctor_json(cwd=project)
    assert of(findings, "install", "fail") == [], findings
