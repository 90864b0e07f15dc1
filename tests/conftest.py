"""Shared fixtures: a private MEMOIR_HOME and HOME per test, the mock API, hook runners."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mockapi import MockAnthropic

# Real hook payloads captured from Claude Code 2.1.330 (see payloads/README.md).
PAYLOADS = Path(__file__).resolve().parent / "payloads"

# Variables of a developer's real environment that would point tests at real
# services or a real Claude Code session.
_LEAKY = (
    "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CONFIG_DIR",
    "CLAUDECODE", "CLAUDE_PID", "CLAUDE_PROJECT_DIR", "CLAUDE_CODE_SESSION_ID",
    "CLAUDE_CODE_ENTRYPOINT", "MEMOIR_WORKER", "MEMOIR_MODEL", "MEMOIR_CONTEXT_BUDGET",
    "MEMOIR_CONTEXT_SUMMARIES", "MEMOIR_CONTEXT_OBSERVATIONS", "MEMOIR_CONTEXT_SOURCES",
    "MEMOIR_MAX_FIELD_CHARS", "MEMOIR_AGENT_TIMEOUT", "MEMOIR_LOG_LEVEL",
    "MEMOIR_IDLE_TIMEOUT", "MEMOIR_PARENT_PID", "MEMOIR_AGENT_CONTEXT_LIMIT",
    "MEMOIR_CAPTURE", "MEMOIR_BATCH_CHARS", "MEMOIR_BATCH_SECONDS", "MEMOIR_DAILY_BUDGET_USD",
    "MEMOIR_DAILY_BUDGET_TOKENS",
)


def payload(name: str) -> dict[str, Any]:
    """A real hook payload captured from Claude Code, by file name without .json."""
    return json.loads((PAYLOADS / f"{name}.json").read_text())


@pytest.fixture(autouse=True)
def memoir_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own MEMOIR_HOME and HOME, and a clean environment.

    At teardown every process started for that home (workers spawned by hooks,
    their agent CLIs) is killed, so no test leaves anything running.
    """
    for name in _LEAKY:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "memoir-home"
    user_home = tmp_path / "user-home"
    user_home.mkdir()
    monkeypatch.setenv("MEMOIR_HOME", str(home))
    monkeypatch.setenv("HOME", str(user_home))
    # Safety net: any agent a test starts without the mock API fails at once on
    # a closed local port instead of reaching the internet.
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "dummy-key-for-tests")
    # Workers spawned by hooks in tests end themselves soon after.
    monkeypatch.setenv("MEMOIR_IDLE_TIMEOUT", "20")
    yield home
    kill_workers(home)


@pytest.fixture
def mock_api() -> Iterator[MockAnthropic]:
    """The mock Messages API, serving on 127.0.0.1 for the test's duration."""
    server = MockAnthropic().start()
    try:
        yield server
    finally:
        server.stop()


def api_env(mock: MockAnthropic, tmp: Path) -> dict[str, str]:
    """Environment that sends Claude Code (and the SDK) to the mock, offline."""
    tmpdir = tmp / "tmpdir"
    tmpdir.mkdir(exist_ok=True)
    return {
        "ANTHROPIC_BASE_URL": mock.url,
        "ANTHROPIC_API_KEY": "dummy-key-for-tests",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "TMPDIR": str(tmpdir),
    }


def bundled_claude() -> Path:
    """The Claude Code CLI inside the claude-agent-sdk wheel (found without importing it)."""
    spec = importlib.util.find_spec("claude_agent_sdk")
    assert spec is not None and spec.origin, "claude-agent-sdk is not installed"
    path = Path(spec.origin).parent / "_bundled" / "claude"
    assert path.exists(), f"no bundled CLI at {path}"
    return path


def run_claude(prompt: str, cwd: Path, env: dict[str, str], *, allowed: str = "Bash",
               plugin_dir: Path | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``claude -p PROMPT`` with the bundled CLI in ``cwd`` (``--plugin-dir`` when given)."""
    plugin = ["--plugin-dir", str(plugin_dir)] if plugin_dir is not None else []
    return subprocess.run([str(bundled_claude()), *plugin, "-p", prompt,
                           "--allowedTools", allowed],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def memoir_command() -> list[str]:
    """The installed ``memoir`` console script next to this interpreter."""
    script = Path(sys.executable).parent / "memoir"
    if script.exists():
        return [str(script)]
    found = shutil.which("memoir")
    assert found, "the memoir console script is not installed"
    return [found]


HookRunner = Callable[..., subprocess.CompletedProcess[bytes]]


@pytest.fixture
def run_hook(memoir_home: Path) -> HookRunner:
    """Run ``python -m claude_memoir.hook EVENT`` as Claude Code would."""

    def run(event: str, data: dict[str, Any] | bytes | str, *,
            env: dict[str, str] | None = None,
            timeout: float = 15) -> subprocess.CompletedProcess[bytes]:
        if isinstance(data, dict):
            raw = json.dumps(data).encode()
        elif isinstance(data, str):
            raw = data.encode()
        else:
            raw = data
        full_env = dict(os.environ)
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "claude_memoir.hook", event],
            input=raw, capture_output=True, env=full_env, timeout=timeout,
        )

    return run


def session_hooks(run_hook: HookRunner, sid: str,
                  env: dict[str, str]) -> Callable[[str, dict[str, Any]], None]:
    """``hook(event, payload)`` for session ``sid`` with ``env``: each hook must exit 0
    and print JSON, as Claude Code requires."""

    def hook(event: str, data: dict[str, Any]) -> None:
        done = run_hook(event, dict(data, session_id=sid), env=env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) is not None

    return hook


def db(home: Path) -> sqlite3.Connection:
    """A plain read connection to a test's memoir.db."""
    conn = sqlite3.connect(home / "memoir.db", timeout=5)
    conn.row_factory = sqlite3.Row
    return conn


def fragment_search_index(store: Any, sizes: list[int], *, session: int | None = None,
                          automerge: bool = False) -> int:
    """Add observations in one single-statement commit per size (FTS5 writes a segment
    per statement), automerge off unless asked: a search index in pieces, as a
    worker's commits leave it. Returns how many observations were added."""
    if not automerge:
        store.conn.execute("INSERT INTO observations_fts(observations_fts, rank)"
                           " VALUES ('automerge', 0)")
    if session is None:
        session = store.upsert_session("seg-session", "/p", "/p").id
    for c, size in enumerate(sizes):
        store.conn.execute(
            "INSERT INTO observations (session_id, prompt_number, event_ids, type, title,"
            " narrative) VALUES " + ", ".join(["(?, 1, '[]', 'change', ?, ?)"] * size),
            [v for i in range(size) for v in (session, f"ledger{c}x{i} rounding quux{i % 7}",
                                              " ".join(f"w{c}x{i}x{k}" for k in range(30)))])
    return sum(sizes)


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1,
             message: str = "condition") -> Any:
    """Poll ``predicate`` until truthy or fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def kill_workers(home: Path) -> list[int]:
    """SIGKILL every process started for ``home`` (workers and their agent CLIs).

    Found by environment, not pid file: a worker spawned a moment ago may not
    have written its pid file yet. Its whole process group goes, because the
    agent's Claude Code process is a child in the worker's group.
    """
    import psutil

    killed = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == os.getpid():
            continue
        try:
            if proc.environ().get("MEMOIR_HOME") != str(home):
                continue
            pgid = os.getpgid(proc.pid)
            if pgid != os.getpgid(0):
                os.killpg(pgid, 9)
            else:
                proc.kill()
            killed.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    # Deep test homes put sockets in a private fallback directory under the
    # temp dir; a killed worker leaves it behind.
    from claude_memoir.paths import socket_path

    fallback = Path(socket_path(home, "x")).parent
    if home not in fallback.parents:
        shutil.rmtree(fallback, ignore_errors=True)
    return killed


class Spawned:
    """Processes a test started; all SIGKILLed and reaped at the end."""

    def __init__(self) -> None:
        self.popens: list[subprocess.Popen[Any]] = []

    def add(self, p: subprocess.Popen[Any]) -> subprocess.Popen[Any]:
        self.popens.append(p)
        return p

    def close(self) -> None:
        for p in self.popens:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
            if p.stdout is not None:
                p.stdout.close()


@pytest.fixture
def spawned() -> Iterator[Spawned]:
    """A Spawned whose processes are killed when the test ends."""
    s = Spawned()
    try:
        yield s
    finally:
        s.close()


def start_worker(spawned: Spawned, home: Path, sid: str,
                 env: dict[str, str] | None = None) -> tuple[subprocess.Popen[Any], Any]:
    """A real worker for ``sid`` (its session row must exist), once it has written its
    pid file, registered in the store and answers a ping; returns it and its PidRecord."""
    from claude_memoir import ipc, procs
    from claude_memoir.errors import IPCError
    from claude_memoir.paths import pid_path, socket_path

    p = spawned.add(subprocess.Popen(
        [sys.executable, "-m", "claude_memoir.worker", "--session", sid],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        cwd=str(home), env={**os.environ, "MEMOIR_IDLE_TIMEOUT": "300", **(env or {})},
        start_new_session=True,
    ))

    def ready() -> Any:
        assert p.poll() is None, f"worker exited early with {p.returncode}"
        record = procs.read_pid_file(Path(pid_path(home, sid)))
        if record is None or record.pid != p.pid:
            return None
        row = db(home).execute("SELECT worker_pid FROM sessions WHERE claude_session_id = ?",
                               (sid,)).fetchone()
        if row is None or row["worker_pid"] != p.pid:
            return None
        try:
            ipc.request(socket_path(home, sid), {"type": "ping"}, timeout=1)
        except IPCError:
            return None
        return record

    record = wait_for(ready, timeout=15, message=f"worker of {sid} to register and answer")
    return p, record


def start_sleeper(spawned: Spawned, *, cwd: Path | None = None,
                  env: dict[str, str] | None = None, new_session: bool = True,
                  argv: list[str] | None = None) -> subprocess.Popen[Any]:
    """A harmless stand-in process (``sleep 60`` unless ``argv`` is given)."""
    return spawned.add(subprocess.Popen(
        argv or ["sleep", "60"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, cwd=str(cwd) if cwd else None,
        env={**os.environ, **(env or {})}, start_new_session=new_session,
    ))


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False
