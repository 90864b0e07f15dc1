"""Benchmarks of issue 5: ``python -m tests.benchmarks [--runs N] [--json FILE] [--quick]
[--full] [--only SECTION ...]`` from the repository root.

Sections (all by default, in this order):

* ``hooks``: wall time of each hook process with a live worker, session-end also
  against a hung (SIGSTOPped) worker;
* ``history``: session-start on a large store (10,000 sessions, 200,000 observations,
  50 projects), and the size of what it injects;
* ``worker``: spawn-to-listening time, worker and agent RSS idle and after 1,000 events;
* ``burst``: 1,000 post-tool-use hooks over 10 sessions at concurrency 10: events
  lost, errors, spooling, throughput;
* ``tokens``: what the memory agent costs over a scripted session (mock API log), in
  prompt capture (the default) and live capture (per event, as before issue 12);
  ``--full`` adds a 500-tool session of each.

Hooks run as Claude Code runs them: the command ``memoir install`` writes
(``install.hook_command``), the payload on stdin, cwd and ``CLAUDE_PROJECT_DIR``
the project. Everything happens in a temporary MEMOIR_HOME/HOME per section with
the suite's mock Anthropic API, so nothing reaches the internet; every process
started is ended and the temporary tree removed, on failure and Ctrl-C too.

The machines here are noisy, so wall times are compared with two baselines run
by the same interpreter, interleaved round-robin with the measured cases in the
same run: bare ``python -c pass`` and the floor a Python hook cannot go below,
``python -c "import json, sqlite3, socket"``. Ratios ("x floor") are medians over
the floor's median.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import copy
import dataclasses
import json
import os
import platform
import random
import re
import resource
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

import claude_memoir
from claude_memoir import ipc, launch
from claude_memoir.agent.models import Observation, Summary
from claude_memoir.cli import install
from claude_memoir.config import Settings
from claude_memoir.paths import db_path, socket_path
from claude_memoir.recall.project import project_key
from claude_memoir.retention import SEARCH_MERGE_BUDGET
from claude_memoir.store import Store

TESTS = Path(__file__).resolve().parent
# conftest and mockapi import each other as top-level modules (pytest's rootdir
# layout), so the benchmark does the same.
sys.path.insert(0, str(TESTS))
from conftest import kill_workers, memoir_command, pid_alive  # noqa: E402
from mockapi import MockAnthropic, RecordedRequest  # noqa: E402

SECTIONS = ("hooks", "history", "worker", "burst", "tokens", "recall")
BARE = "bare python -c pass"
FLOOR = "floor python -c 'import json, sqlite3, socket'"
# A hook process that takes longer than this is counted failed (Claude Code's own
# timeout for our hooks is 5-10 s).
PROCESS_TIMEOUT = 30.0
# Token estimate: characters / 4, the usual rule of thumb for English and code.
CHARS_PER_TOKEN = 4
# Seconds the mock takes per agent reply in the load sections, about a small
# model's real latency: an instant mock makes every agent CLI answer one event
# per turn at full CPU, a load no real session produces (real agents batch the
# events that queue while they wait for the model).
AGENT_LATENCY = 1.0


class BenchError(Exception):
    """A section could not complete (a worker never answered, a wait timed out)."""


# -- plan and results ----------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Sizes of one benchmark run, from the command line."""

    runs: int
    spawn_runs: int
    history_sessions: int
    history_observations: int
    history_projects: int
    rss_events: int
    burst_sessions: int
    burst_per_session: int
    burst_concurrency: int
    token_prompts: int
    token_tools: int
    long_prompts: int  # the --full session (0: not run)
    quick: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Plan:
        """Full sizes by default; --quick cuts them (history to 1/10, half the burst
        sessions, a tenth of the events) to run in about a minute on a busy 2-core machine."""
        quick = bool(args.quick)
        runs = args.runs if args.runs else (3 if quick else 30)
        return cls(
            runs=runs,
            spawn_runs=max(3, runs // 3),
            history_sessions=1_000 if quick else 10_000,
            history_observations=20_000 if quick else 200_000,
            history_projects=50,
            rss_events=50 if quick else 1_000,
            burst_sessions=5 if quick else 10,
            burst_per_session=20 if quick else 100,
            burst_concurrency=10,
            token_prompts=1 if quick else 5,
            token_tools=8 if quick else 20,
            long_prompts=25 if args.full else 0,
            quick=quick,
        )


@dataclass
class Row:
    """One line of the results table (and of the JSON).

    Timed rows carry median/p95 (ms) and the ratio to the section's floor; other
    rows a ``value`` in ``unit``. ``ok`` is None for figures reported without a
    target.
    """

    section: str
    case: str
    target: str = ""
    ok: bool | None = None
    runs: int = 0
    median_ms: float | None = None
    p95_ms: float | None = None
    x_floor: float | None = None
    value: float | None = None
    unit: str = ""
    failures: int = 0
    note: str = ""
    cpu_ms: float | None = None
    cpu_x_floor: float | None = None


@dataclass(frozen=True)
class Result:
    """One timed operation: seconds, and for a process its exit code and output."""

    seconds: float
    returncode: int
    stdout: bytes = b""
    stderr: bytes = b""
    # CPU seconds (user + system) of the process; None where it cannot be told
    # (processes run concurrently, or not by run_process).
    cpu: float | None = None


@dataclass
class Samples:
    """The runs of one case: times, and how many failed (with the first reasons)."""

    times: list[float] = field(default_factory=list)
    failures: int = 0
    problems: list[str] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, result: Result, problem: str | None) -> None:
        self.times.append(result.seconds)
        if result.cpu is not None:
            self.cpu.append(result.cpu)
        if problem is not None:
            self.failures += 1
            if len(self.problems) < 3:
                self.problems.append(problem)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def p95(self) -> float:
        """Nearest-rank 95th percentile."""
        ordered = sorted(self.times)
        return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def timed_row(section: str, case: str, samples: Samples, floor: float, *,
              max_x: float | None = None, max_ms: float | None = None, note: str = "",
              floor_cpu: float | None = None) -> Row:
    """A row for a timed case; PASS needs no failed run and the median within target.

    With ``floor_cpu`` (the floor's mean CPU seconds) the note also gives the
    case's mean CPU time and its ratio to the floor's.
    """
    median = samples.median
    cpu_ms = cpu_x = None
    if floor_cpu and samples.cpu:
        mean_cpu = statistics.mean(samples.cpu)
        cpu_ms, cpu_x = round(mean_cpu * 1000, 1), round(mean_cpu / floor_cpu, 2)
        note = "; ".join(filter(None, [f"CPU {cpu_ms} ms = {cpu_x}x floor's", note]))
    ok: bool | None = None
    target = ""
    if max_x is not None:
        target, ok = f"<= {max_x:g}x floor", median / floor <= max_x
    elif max_ms is not None:
        target, ok = f"< {max_ms:g} ms median", median * 1000 < max_ms
    if samples.failures:
        ok = False
        note = "; ".join(filter(None, [note, *samples.problems]))
    return Row(section, case, target, ok, len(samples.times), round(median * 1000, 1),
               round(samples.p95 * 1000, 1), round(median / floor, 2),
               failures=samples.failures, note=note, cpu_ms=cpu_ms, cpu_x_floor=cpu_x)


def value_row(section: str, case: str, value: float, unit: str, *, target: str = "",
              ok: bool | None = None, note: str = "", digits: int = 1) -> Row:
    """A row for a count, size or rate (``digits`` after the point kept)."""
    return Row(section, case, target, ok, value=round(value, digits), unit=unit, note=note)


# -- processes -------------------------------------------------------------------------


def run_process(argv: list[str], data: bytes, env: dict[str, str], cwd: Path) -> Result:
    """Run one process to completion and time it from spawn to exit.

    Also its CPU time, from this process's reaped-children totals: exact when
    processes run one at a time (interleave), meaningless in a pool (run_pool
    drops it). On a loaded machine wall times swing with the neighbours' load;
    CPU time says what the hook itself costs.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    try:
        done = subprocess.run(argv, input=data, capture_output=True, env=env, cwd=cwd,
                              timeout=PROCESS_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        return Result(time.perf_counter() - started, -9, e.stdout or b"", e.stderr or b"")
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Result(elapsed, done.returncode, done.stdout, done.stderr, cpu)


def hook_problem(result: Result) -> str | None:
    """None if the hook exited 0 printing exactly one JSON object, else what was wrong."""
    if result.returncode != 0:
        return f"exit {result.returncode}: {result.stderr.decode(errors='replace')[-200:]}"
    lines = result.stdout.decode(errors="replace").splitlines()
    if len(lines) != 1:
        return f"{len(lines)} output lines"
    try:
        value = json.loads(lines[0])
    except ValueError:
        return f"output is not JSON: {lines[0][:80]!r}"
    return None if isinstance(value, dict) else "output is not a JSON object"


def exit_problem(result: Result) -> str | None:
    """None if the process exited 0."""
    return None if result.returncode == 0 else f"exit {result.returncode}"


def wait_exit(pid: int, timeout: float) -> bool:
    """Wait for ``pid`` to exit, reaping it if it is our child; False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:  # not ours (a hook spawned it): poll /proc
            if not pid_alive(pid):
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def end_process(pid: int) -> None:
    """SIGKILL a worker we started (stopped or not) and reap it."""
    for sig in (signal.SIGCONT, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    wait_exit(pid, 5.0)


def reap_children() -> None:
    """Collect exited children (workers started with launch.spawn_worker)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` (VmRSS) in MB; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def cpu_of_home(home: Path) -> float:
    """CPU seconds (user + system) used so far by the live processes started for ``home``
    (its workers and their agent CLIs)."""
    total = 0.0
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get("MEMOIR_HOME") == str(home):
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


def cpu_of_self() -> tuple[float, float]:
    """CPU seconds of this process (the mock API and the pool's threads) and of its
    reaped children (the hook and baseline processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it is truthy; BenchError after ``timeout`` seconds.

    Not conftest.wait_for: that fails a pytest test (pytest.fail raises a
    BaseException), where a benchmark section must fail alone and be reported.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def new_session_id() -> str:
    """A fresh Claude Code session id (a UUID, as Claude Code sends)."""
    return str(uuid.uuid4())


# -- payloads ----------------------------------------------------------------------------

_TEMPLATES = {p.stem: json.loads(p.read_text()) for p in (TESTS / "payloads").glob("*.json")}

_WORDS = [
    "cache", "config", "parser", "handler", "session", "worker", "socket", "index", "query",
    "schema", "migration", "token", "budget", "context", "summary", "observation", "event",
    "hook", "spool", "retry", "backoff", "timeout", "lock", "thread", "process", "signal",
    "agent", "prompt", "payload", "store", "commit", "rollback", "cursor", "request",
    "response", "stream", "buffer", "encoder", "decoder", "validator", "router", "middleware",
    "fixture", "benchmark", "latency", "throughput", "memory", "leak", "regression", "refactor",
    "feature", "bugfix", "decision", "discovery", "logging", "metrics", "dashboard", "deploy",
    "release", "version", "dependency", "upgrade", "pagination", "cursor", "offset", "limit",
    "filter", "sort", "search", "fts", "trigger",
]


def words(rng: random.Random, count: int) -> str:
    """``count`` words of programming vocabulary (deterministic for a seeded rng)."""
    return " ".join(rng.choices(_WORDS, k=count))


def source_text(rng: random.Random, lines: int) -> str:
    """Python-looking file content of about ``lines`` lines."""
    out = []
    for i in range(lines):
        kind = i % 7
        name = rng.choice(_WORDS)
        if kind == 0:
            out.append(f"def {name}_{i}(self, {rng.choice(_WORDS)}: int = {i}) -> str:")
        elif kind == 1:
            out.append(f'    """{words(rng, 8).capitalize()}."""')
        elif kind in (2, 3):
            out.append(f"    {name} = self.{rng.choice(_WORDS)}.get({rng.choice(_WORDS)!r}, {i})")
        elif kind == 4:
            out.append(f"    if {name} is None:  # {words(rng, 5)}")
        elif kind == 5:
            out.append(f"        raise ValueError(f'{words(rng, 4)} {{{name}}}')")
        else:
            out.append(f"    return str({name})")
    return "\n".join(out) + "\n"


class Payloads:
    """Hook payloads built from the real captures in tests/payloads, for one project."""

    def __init__(self, project: Path, user_home: Path) -> None:
        self.project = project
        self.user_home = user_home

    def make(self, name: str, session_id: str, **fields: Any) -> dict[str, Any]:
        """The captured payload ``name`` for ``session_id`` in this project, with ``fields``."""
        payload = copy.deepcopy(_TEMPLATES[name])
        payload["session_id"] = session_id
        payload["cwd"] = str(self.project)
        if "transcript_path" in payload:
            payload["transcript_path"] = str(
                self.user_home / ".claude" / "projects" / "bench" / f"{session_id}.jsonl")
        payload.update(fields)
        return payload

    def small_tool(self, session_id: str, tag: str) -> dict[str, Any]:
        """The captured Bash event with a unique tool_use_id and input (never a dedupe repeat)."""
        template = _TEMPLATES["post_tool_use_bash"]
        tool_input = dict(template["tool_input"], command=f"echo {tag} > test.txt && cat test.txt")
        response = dict(template["tool_response"], stdout=tag)
        return self.make("post_tool_use_bash", session_id, tool_use_id=f"toolu_{tag}",
                         tool_input=tool_input, tool_response=response)

    def mixed_tool(self, session_id: str, n: int, *, big_read: bool = False) -> dict[str, Any]:
        """Tool call ``n`` of a realistic session: Read 30 %, Bash 30 %, Grep 20 %, Edit and
        Write 10 % each, with outputs of typical size (``big_read``: a ~130,000-character file).
        """
        rng = random.Random(n)
        kind = "read" if big_read else ("read", "bash", "grep", "read", "edit", "bash",
                                          "bash", "read", "grep", "write")[n % 10]
        path = f"{self.project}/src/{rng.choice(_WORDS)}_{n % 37}.py"
        tid = f"toolu_mix{n:06d}"
        if kind == "read":
            content = source_text(rng, 3300 if big_read else rng.randint(20, 200))
            template = _TEMPLATES["post_tool_use_read"]
            file_info = dict(template["tool_response"]["file"], filePath=path, content=content,
                             numLines=content.count("\n"), totalLines=content.count("\n"))
            return self.make("post_tool_use_read", session_id, tool_use_id=tid,
                             tool_input={"file_path": path},
                             tool_response=dict(template["tool_response"], file=file_info))
        if kind == "bash":
            command = rng.choice(["pytest -q tests", "git status --short", "ls -la src",
                                  "python -m mypy src", "git log --oneline -20"])
            stdout = "\n".join(f"{words(rng, 6)} {i}" for i in range(rng.randint(5, 60)))
            template = _TEMPLATES["post_tool_use_bash"]
            return self.make("post_tool_use_bash", session_id, tool_use_id=tid,
                             tool_input={"command": f"{command}  # step {n}",
                                         "description": words(rng, 4)},
                             tool_response=dict(template["tool_response"], stdout=stdout))
        if kind == "grep":
            pattern = f"def {rng.choice(_WORDS)}_"
            hits = [f"src/{rng.choice(_WORDS)}.py:{rng.randint(1, 900)}:    {words(rng, 7)}"
                    for _ in range(rng.randint(5, 40))]
            return self.make("post_tool_use_bash", session_id, tool_use_id=tid, tool_name="Grep",
                             tool_input={"pattern": pattern, "path": str(self.project),
                                         "output_mode": "content", "-n": True},
                             tool_response={"mode": "content", "numFiles": len(hits),
                                            "filenames": [], "content": "\n".join(hits),
                                            "numLines": len(hits)})
        original = source_text(rng, rng.randint(50, 150))
        if kind == "edit":
            old, new = original.splitlines()[4], f"    # {words(rng, 6)}"
            template = _TEMPLATES["post_tool_use_edit"]
            response = dict(template["tool_response"], filePath=path, oldString=old,
                            newString=new, originalFile=original,
                            structuredPatch=[{"oldStart": 5, "oldLines": 1, "newStart": 5,
                                              "newLines": 1, "lines": [f"-{old}", f"+{new}"]}])
            return self.make("post_tool_use_edit", session_id, tool_use_id=tid,
                             tool_input={"file_path": path, "old_string": old,
                                         "new_string": new, "replace_all": False},
                             tool_response=response)
        template = _TEMPLATES["post_tool_use_write"]
        return self.make("post_tool_use_write", session_id, tool_use_id=tid,
                         tool_input={"file_path": path, "content": original},
                         tool_response=dict(template["tool_response"], filePath=path,
                                            content=original))


# -- a section's private world -----------------------------------------------------------


def _clean_environ() -> dict[str, str]:
    # Whatever this shell has of a real Claude Code session, a real API or a
    # real memoir home must not reach the processes measured.
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("CLAUDE", "ANTHROPIC_", "MEMOIR_"))}


class Sandbox:
    """MEMOIR_HOME, HOME, TMPDIR and a project directory under the run's temp root,
    with the environment Claude Code would give our hooks there."""

    def __init__(self, bench: Bench, name: str, mock: MockAnthropic,
                 extra_env: dict[str, str]) -> None:
        base = bench.root / name
        self.bench = bench
        self.mock = mock
        self.home = base / "home"
        self.user_home = base / "user"
        self.project = base / "project"
        for directory in (self.user_home, self.project, base / "tmp"):
            directory.mkdir(parents=True)
        self.env = _clean_environ()
        self.env.update({
            "MEMOIR_HOME": str(self.home),
            "HOME": str(self.user_home),
            "TMPDIR": str(base / "tmp"),
            "ANTHROPIC_BASE_URL": mock.url,
            "ANTHROPIC_API_KEY": "dummy",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            # What Claude Code sets for hooks. CLAUDE_PID makes the workers
            # watch this process: they finish should the benchmark die.
            "CLAUDE_PID": str(os.getpid()),
            "CLAUDE_PROJECT_DIR": str(self.project),
            **extra_env,
        })
        self.payloads = Payloads(self.project, self.user_home)

    @contextlib.contextmanager
    def active(self) -> Iterator[Sandbox]:
        """Make this sandbox's environment the benchmark's own for a while.

        In-process calls (launch.spawn_worker, socket_path, Store.open) read
        os.environ, and must agree with the hooks on MEMOIR_HOME and TMPDIR.
        """
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(self.env)
        try:
            yield self
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def hook(self, event: str, payload: dict[str, Any],
             env: dict[str, str] | None = None) -> Result:
        """Run one hook process exactly as installed, the payload on stdin (``env``:
        variables set for this run only)."""
        return run_process(self.bench.hook_argv(event), json.dumps(payload).encode(),
                           {**self.env, **(env or {})}, self.project)

    def must_hook(self, event: str, payload: dict[str, Any]) -> None:
        """Run a hook that sets up a scenario; BenchError if it misbehaves."""
        problem = hook_problem(self.hook(event, payload))
        if problem is not None:
            raise BenchError(f"{event} hook failed: {problem}")

    def baseline(self, name: str) -> Result:
        """Run one of the two baselines (BARE or FLOOR) in the same environment."""
        code = "pass" if name == BARE else "import json, sqlite3, socket"
        return run_process([self.bench.interpreter, "-c", code], b"", self.env, self.project)

    def baseline_cases(self) -> list[Case]:
        """The two baselines as interleavable cases."""
        return [Case(BARE, lambda i: self.baseline(BARE), exit_problem),
                Case(FLOOR, lambda i: self.baseline(FLOOR), exit_problem)]

    def scalar(self, sql: str, *args: Any) -> int:
        """One integer from the store (0 if there is no store yet)."""
        if not Path(db_path(self.home)).exists():
            return 0
        with contextlib.closing(sqlite3.connect(db_path(self.home), timeout=10)) as conn:
            return int(conn.execute(sql, args).fetchone()[0] or 0)

    def pending(self, *session_ids: str) -> int:
        """Events of these sessions not yet processed by their workers."""
        marks = ",".join("?" * len(session_ids))
        return self.scalar(
            "SELECT COUNT(*) FROM events e JOIN sessions s ON s.id = e.session_id"
            f" WHERE s.claude_session_id IN ({marks}) AND e.status = 'pending'", *session_ids)

    def spooled_files(self) -> int:
        """Payloads in the spool, waiting for a worker to replay them."""
        spool = self.home / "spool"
        return len(list(spool.glob("*.json"))) if spool.exists() else 0

    def log_lines(self, needle: str) -> int:
        """Lines of memoir.log containing ``needle``."""
        path = self.home / "logs" / "memoir.log"
        if not path.exists():
            return 0
        with open(path, encoding="utf-8", errors="replace") as fh:
            return sum(needle in line for line in fh)

    def ping(self, session_id: str) -> dict[str, Any] | None:
        """The worker's ping state, or None if no worker answers."""
        try:
            ack = ipc.request(socket_path(self.home, session_id), {"type": "ping"}, timeout=1.0)
        except Exception:  # noqa: BLE001 - any failure means "not answering"
            return None
        if not ack.get("ok"):
            return None
        state = ack.get("state")
        return state if isinstance(state, dict) else {}

    def create_session(self, session_id: str) -> None:
        """The session row a worker needs, as UserPromptSubmit would write it."""
        with Store.open(self.home) as store:
            store.upsert_session(session_id, project_key(self.project), str(self.project))

    def start_worker(self, session_id: str) -> int:
        """A worker (our child, via launch.spawn_worker) for a new session, once it answers."""
        self.create_session(session_id)
        pid = launch.spawn_worker(self.home, session_id)
        if pid is None:
            raise BenchError("launch.spawn_worker failed (see memoir.log)")
        wait_until(lambda: self.ping(session_id) is not None, 15, f"worker {pid} to answer",
                   0.01)
        return pid

    def wait_idle(self, session_id: str, timeout: float = 15.0) -> None:
        """Best effort: let the session's worker finish what the last hook gave it.

        Two idle pings in a row (no pending event, agent not starting or busy).
        Bounded: a worker that never settles only makes the next sample noisier.
        """
        deadline = time.monotonic() + timeout
        idle = 0
        while idle < 2 and time.monotonic() < deadline:
            state = self.ping(session_id)
            busy = state is not None and (state.get("pending") or
                                          state.get("agent") in ("starting", "busy"))
            idle = 0 if busy else idle + 1
            time.sleep(0.02)


@dataclass(frozen=True)
class Case:
    """A measured case: ``run(i)`` does its own untimed setup and returns the timed Result."""

    name: str
    run: Callable[[int], Result]
    check: Callable[[Result], str | None]


def interleave(cases: list[Case], runs: int, before: Callable[[], None] | None = None
               ) -> dict[str, Samples]:
    """Run every case once per round, ``runs`` rounds: drift hits all cases alike.

    Each round starts one case later than the one before, so what a case
    leaves behind (a worker woken, caches warmed or flushed) falls on every
    other case in turn, not always on the one after it.
    """
    samples = {case.name: Samples() for case in cases}
    for i in range(runs):
        shift = i % len(cases)
        for case in cases[shift:] + cases[:shift]:
            if before is not None:
                before()
            result = case.run(i)
            samples[case.name].add(result, case.check(result))
    return samples


def baseline_rows(section: str, samples: dict[str, Samples]) -> tuple[list[Row], float]:
    """The two baseline rows of a section and its floor median (seconds)."""
    floor = samples[FLOOR].median
    return [timed_row(section, BARE, samples[BARE], floor),
            timed_row(section, FLOOR, samples[FLOOR], floor)], floor


def run_pool(jobs: list[Callable[[], Result]], concurrency: int) -> tuple[list[Result], float]:
    """Run jobs ``concurrency`` at a time; their results in order and the wall time."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=concurrency)
    started = time.perf_counter()
    try:
        # CPU deltas of concurrent children overlap: not this process's own.
        results = [dataclasses.replace(r, cpu=None)
                   for r in pool.map(lambda job: job(), jobs)]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results, time.perf_counter() - started


# -- the run ----------------------------------------------------------------------------


class Bench:
    """One benchmark run: its plan, temp root, sandboxes and mocks, and their cleanup."""

    def __init__(self, plan: Plan, root: Path) -> None:
        self.plan = plan
        self.root = root
        self.sandboxes: list[Sandbox] = []
        self.notes: dict[str, list[str]] = {}
        self.interpreter = self.hook_argv("session-start")[0]

    @staticmethod
    def hook_argv(event: str) -> list[str]:
        """The hook command ``memoir install`` writes, split into argv."""
        return shlex.split(install.hook_command(event))

    def sandbox(self, name: str, latency: float = 0.0, **extra_env: str) -> Sandbox:
        """A new sandbox with a mock API of its own (so its request log is its own)
        that holds each agent reply ``latency`` seconds.

        Workers observe every event as it comes (MEMOIR_CAPTURE=live) unless a
        section says otherwise: the load sections wait for events to be observed,
        and live capture is the heavier load on the machine the hooks run on.
        """
        extra_env.setdefault("MEMOIR_CAPTURE", "live")
        box = Sandbox(self, name, MockAnthropic(agent_delay=latency).start(), extra_env)
        self.sandboxes.append(box)
        return box

    def note(self, section: str, text: str) -> None:
        """A line printed under the section's heading (and kept in the JSON)."""
        self.notes.setdefault(section, []).append(text)

    def end_workers(self) -> None:
        """End the workers (and their agents) of every sandbox so far: a section's
        idle workers must not run beside the next section's measurements."""
        # SIGKILL is asynchronous: wait for each, so none is still dying (and
        # writing into the tree) when the next section starts or it is removed.
        for pid in [pid for box in self.sandboxes for pid in kill_workers(box.home)]:
            wait_exit(pid, 5.0)
        reap_children()

    def close(self) -> None:
        """End every process started for our homes, stop the mocks, remove the temp root."""
        self.end_workers()
        for box in self.sandboxes:
            box.mock.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# -- section: hooks -----------------------------------------------------------------------


def bench_hooks(bench: Bench) -> list[Row]:
    """Each hook's wall time with a live worker; session-end also with a hung one."""
    box = bench.sandbox("hooks")
    section = "hooks"
    with box.active():
        sid = new_session_id()
        _seed_small_history(box, sid)
        live_pid = (box.ping(sid) or {}).get("pid")
        bench.note(section, f"{bench.plan.runs} interleaved runs; live worker pid {live_pid} "
                            "with an SDK agent on the mock; small history (summaries of this "
                            "session); each case starts when the worker is idle")
        cases = box.baseline_cases() + [
            Case("session-start", lambda i: box.hook(
                "session-start", box.payloads.make("session_start_startup", new_session_id())),
                hook_problem),
            Case("user-prompt-submit", lambda i: box.hook(
                "user-prompt-submit",
                box.payloads.make("user_prompt_submit", sid, prompt=f"bench prompt {i}")),
                hook_problem),
            Case("pre-tool-use (Read)", lambda i: box.hook(
                "pre-tool-use", box.payloads.make(
                    "pre_tool_use_read", sid, tool_use_id=f"toolu_pre{i:05d}",
                    tool_input={"file_path": f"{box.project}/src/module_{i}.py"})),
                hook_problem),
            Case("post-tool-use", lambda i: box.hook(
                "post-tool-use", box.payloads.small_tool(sid, f"hooks{i:05d}")), hook_problem),
            Case("stop", lambda i: box.hook("stop", box.payloads.make("stop", sid)),
                 hook_problem),
            Case("session-end (live worker)", lambda i: _session_end(box, hung=False),
                 hook_problem),
            Case("session-end (hung worker)", lambda i: _session_end(box, hung=True),
                 hook_problem),
        ]
        samples = interleave(cases, bench.plan.runs, lambda: box.wait_idle(sid))
        if (box.ping(sid) or {}).get("pid") != live_pid:
            bench.note(section, "WARNING: the live worker was replaced during the runs")
    rows, floor = baseline_rows(section, samples)
    targets = {"user-prompt-submit": 1.25, "pre-tool-use (Read)": 1.25, "post-tool-use": 1.25,
               "stop": 1.25, "session-end (hung worker)": 1.25}
    notes = {"session-end (hung worker)": "worker SIGSTOPped before the hook",
             "session-end (live worker)": "report only"}
    floor_cpu = statistics.mean(samples[FLOOR].cpu)
    for case in cases[2:]:
        rows.append(timed_row(section, case.name, samples[case.name], floor,
                              max_x=targets.get(case.name), note=notes.get(case.name, ""),
                              floor_cpu=floor_cpu))
    return rows


def _seed_small_history(box: Sandbox, sid: str) -> None:
    """A live session with a worker (spawned by the hook, as in real use), an agent
    already started, and one summary for session-start to inject."""
    box.must_hook("user-prompt-submit", box.payloads.make("user_prompt_submit", sid))
    box.must_hook("post-tool-use", box.payloads.small_tool(sid, "seed1"))
    box.must_hook("post-tool-use", box.payloads.small_tool(sid, "seed2"))
    box.must_hook("stop", box.payloads.make("stop", sid))
    wait_until(lambda: box.scalar(
        "SELECT COUNT(*) FROM summaries m JOIN sessions s ON s.id = m.session_id"
        " WHERE s.claude_session_id = ?", sid), 90, "the seed session's summary")


def _session_end(box: Sandbox, *, hung: bool) -> Result:
    """Time SessionEnd for a fresh session whose worker answers, or is SIGSTOPped."""
    sid = new_session_id()
    pid = box.start_worker(sid)
    if hung:
        os.kill(pid, signal.SIGSTOP)
    try:
        return box.hook("session-end", box.payloads.make("session_end_other", sid))
    finally:
        # A live worker exits by itself after the shutdown request; wait for it
        # so its exit does not overlap the next sample.
        if hung or not wait_exit(pid, 10):
            end_process(pid)


# -- section: history ---------------------------------------------------------------------


def bench_history(bench: Bench) -> list[Row]:
    """session-start on a large store; what it injects must fit the context budget."""
    section = "history"
    plan = bench.plan
    box = bench.sandbox("history")
    with box.active():
        projects = [project_key(box.project)] + [
            project_key(box.project.parent / f"other-{k:02d}")
            for k in range(1, plan.history_projects)]
        built = build_history(box.home, projects, plan.history_sessions,
                              plan.history_observations)
        bench.note(section, f"{built['sessions']:,} sessions, {built['observations']:,} "
                            f"observations, {built['summaries']:,} summaries over "
                            f"{len(projects)} projects (bulk SQL, FTS triggers on), built in "
                            f"{built['seconds']:.1f} s; db {built['megabytes']:.0f} MB"
                            + (" [--quick: 1/10 size]" if plan.quick else ""))
        # The search index as the session-end sweep leaves a store (its
        # segments merged once they pile up); what was planted after it sits
        # in a segment of its own, like the work of the sessions since.
        with Store.open(box.home) as store:
            before = store.search_segments("observations")
            started = time.monotonic()
            steps = store.merge_search_index(SEARCH_MERGE_BUDGET)
            after = store.search_segments("observations")
        bench.note(section, f"search index as a session-end sweep leaves it: {before} "
                            f"segments merged to {after} in {steps} steps, "
                            f"{time.monotonic() - started:.1f} s")
        topics = plant_topics(box.home, projects[0], projects[1], plan.runs)
        with Store.open(box.home) as store:
            planted = store.search_segments("observations")
        bench.note(section, f"{topics} planted topics (2 observations each in this project, "
                            "1 in a decoy project) for prompt-time recall to find; "
                            f"{planted} index segments with them")
        sid = new_session_id()
        box.create_session(sid)
        budget = Settings(home=box.home).context_budget
        lengths: list[int] = []
        recalled: list[bool] = []
        leaked: list[bool] = []
        file_notes: list[bool] = []

        def context_of(result: Result) -> str:
            output = json.loads(result.stdout)
            return str(output.get("hookSpecificOutput", {}).get("additionalContext", ""))

        def check_prompt(result: Result) -> str | None:
            problem = hook_problem(result)
            if problem is None:
                # Runs come in order: run i asked about topic i.
                text = context_of(result)
                recalled.append(f"PLANTEDTOPIC zephyr{len(recalled):03d} " in text)
                leaked.append("DECOYTOPIC" in text)
            return problem

        def check_file(result: Result) -> str | None:
            problem = hook_problem(result)
            if problem is None:
                file_notes.append(bool(context_of(result)))
            return problem

        def check(result: Result) -> str | None:
            problem = hook_problem(result)
            if problem is None:
                output = json.loads(result.stdout)
                text = output.get("hookSpecificOutput", {}).get("additionalContext", "")
                lengths.append(len(text))
            return problem

        cases = box.baseline_cases() + [
            Case("session-start (large history)", lambda i: box.hook(
                "session-start", box.payloads.make("session_start_startup", new_session_id())),
                check),
            # A new question each run about planted topic i, among common words.
            Case("user-prompt-submit + recall (large history)", lambda i: box.hook(
                "user-prompt-submit", box.payloads.make(
                    "user_prompt_submit", sid,
                    prompt=f"why do the zephyr{i:03d} totals drift in reconcile_ledger "
                           "after the cache query change?")), check_prompt),
            # The same hook and prompts with prompt-time recall off: what recall costs.
            Case("user-prompt-submit, recall off (large history)", lambda i: box.hook(
                "user-prompt-submit", box.payloads.make(
                    "user_prompt_submit", sid,
                    prompt=f"why do the zephyr{i:03d} totals drift in reconcile_ledger "
                           "after the cache query change?"),
                env={"MEMOIR_RECALL_CHARS": "0"}), hook_problem),
            # A file the history's observations read, a different one each run.
            Case("pre-tool-use Read (large history)", lambda i: box.hook(
                "pre-tool-use", box.payloads.make(
                    "pre_tool_use_read", sid, tool_use_id=f"toolu_hist{i:05d}",
                    tool_input={"file_path":
                                f"{box.project}/src/{_WORDS[i % len(_WORDS)]}.py"})),
                check_file),
        ]
        # As in the hooks section: each case starts once the session's worker
        # (woken by every user-prompt-submit) is idle again.
        samples = interleave(cases, plan.runs, lambda: box.wait_idle(sid))
    rows, floor = baseline_rows(section, samples)
    floor_cpu = statistics.mean(samples[FLOOR].cpu)
    rows.append(timed_row(section, cases[2].name, samples[cases[2].name], floor, max_x=2.0,
                          floor_cpu=floor_cpu))
    rows.append(timed_row(section, cases[3].name, samples[cases[3].name], floor, max_x=1.25,
                          floor_cpu=floor_cpu,
                          note=f"planted topic recalled in {sum(recalled)}/{len(recalled)} "
                               f"runs, decoy project's in {sum(leaked)}"))
    rows.append(timed_row(section, cases[4].name, samples[cases[4].name], floor,
                          note="MEMOIR_RECALL_CHARS=0: the difference is recall's cost",
                          floor_cpu=floor_cpu))
    rows.append(timed_row(section, cases[5].name, samples[cases[5].name], floor, max_x=1.25,
                          floor_cpu=floor_cpu,
                          note=f"file note injected in {sum(file_notes)}/{len(file_notes)} runs"))
    rows.append(value_row(
        section, "additionalContext length (max of runs)", max(lengths, default=0), "chars",
        target=f"1..{budget} chars",
        ok=bool(lengths) and min(lengths) > 0 and max(lengths) <= budget,
        note=f"min {min(lengths, default=0)}"))
    return rows


def build_history(home: Path, projects: list[str], n_sessions: int, n_observations: int,
                  seed: int = 5) -> dict[str, float]:
    """Fill a store created by Store.open with a year of history, fast.

    One transaction of executemany over the real tables (so the FTS triggers
    index every row and the hook's queries use the real indexes). Sessions are
    in time order with projects interleaved, as a user switching projects
    would leave them; each has one or two prompts with a summary each, and an
    equal share of the observations. Raw events are not generated:
    session-start never reads them.
    """
    started = time.monotonic()
    Store.open(home).close()  # create and migrate the schema
    rng = random.Random(seed)
    year = 365 * 86400
    t0 = time.time() - year
    sessions, prompts, summaries, observations = [], [], [], []
    per_session = n_observations // n_sessions
    obs_id = 0
    for sid in range(1, n_sessions + 1):
        when = t0 + year * sid / n_sessions
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(when))
        end = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(when + 1800))
        project = projects[rng.randrange(len(projects))]
        sessions.append((sid, str(uuid.UUID(int=rng.getrandbits(128))), project, project,
                         "completed", stamp, end, end, "other"))
        n_prompts = rng.choice((1, 2))
        for number in range(1, n_prompts + 1):
            prompts.append((sid, number, words(rng, 12), end, words(rng, 20), stamp))
            summaries.append((sid, number, words(rng, 12), words(rng, 25), words(rng, 30),
                              words(rng, 20), words(rng, 12), words(rng, 8), "agent", end))
        extra = 1 if sid <= n_observations % n_sessions else 0
        for _ in range(per_session + extra):
            obs_id += 1
            observations.append((
                sid, rng.randint(1, n_prompts), json.dumps([obs_id]),
                rng.choice(("bugfix", "feature", "refactor", "change", "discovery", "decision")),
                words(rng, 6).capitalize(), words(rng, 10),
                json.dumps([words(rng, 10), words(rng, 8)]), words(rng, 45),
                json.dumps(rng.sample(_WORDS, 3)), json.dumps([f"src/{rng.choice(_WORDS)}.py"]),
                "[]", stamp))
    conn = sqlite3.connect(db_path(home), isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")  # the build only; hooks set their own
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO sessions (id, claude_session_id, project, cwd, status,"
                         " started_at, updated_at, ended_at, end_reason)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", sessions)
        conn.executemany("INSERT INTO prompts (session_id, prompt_number, text, finished_at,"
                         " response, created_at) VALUES (?, ?, ?, ?, ?, ?)", prompts)
        conn.executemany("INSERT INTO summaries (session_id, prompt_number, request,"
                         " investigated, learned, completed, next_steps, notes, kind,"
                         " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", summaries)
        conn.executemany("INSERT INTO observations (session_id, prompt_number, event_ids, type,"
                         " title, subtitle, facts, narrative, concepts, files_read,"
                         " files_modified, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                         " ?, ?)", observations)
        conn.execute("COMMIT")
        # Fold the WAL into the file: a user's store is checkpointed, not 200 MB of WAL.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return {"sessions": len(sessions), "observations": len(observations),
            "summaries": len(summaries), "seconds": time.monotonic() - started,
            "megabytes": Path(db_path(home)).stat().st_size / 1e6}


def plant_topics(home: Path, project: str, decoy: str, count: int) -> int:
    """``count`` topics for prompt-time recall in a built history: topic i is two
    observations of ``project`` naming ``zephyr<i>`` and reconcile_ledger (one
    carrying PLANTEDTOPIC), and one in ``decoy``. Inserted like build_history's
    rows, through the real triggers."""
    conn = sqlite3.connect(db_path(home), isolation_level=None)
    try:
        def newest_session(key: str) -> int:
            return int(conn.execute("SELECT MAX(id) FROM sessions WHERE project = ?",
                                    (key,)).fetchone()[0])

        mine, theirs = newest_session(project), newest_session(decoy)
        rows = []
        for i in range(count):
            tag = f"zephyr{i:03d}"
            for session, fact in ((mine, f"PLANTEDTOPIC {tag} totals round half-even"),
                                  (mine, f"{tag} drift reproduced by the nightly job"),
                                  (theirs, f"DECOYTOPIC {tag} totals in the other project")):
                rows.append((session, 1, "[]", "bugfix", f"Fixed {tag} drift in reconcile_ledger",
                             "rounding", json.dumps([fact]), f"The {tag} totals drifted.",
                             "[]", "[]", json.dumps([f"src/ledger_{tag}.py"])))
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO observations (session_id, prompt_number, event_ids, type,"
                         " title, subtitle, facts, narrative, concepts, files_read,"
                         " files_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return count


# -- section: worker -----------------------------------------------------------------------


def bench_worker(bench: Bench) -> list[Row]:
    """Spawn-to-listening time; worker and agent memory idle and after many events."""
    section = "worker"
    plan = bench.plan
    box = bench.sandbox("worker", latency=AGENT_LATENCY)
    with box.active():
        spawn = Case("spawn-to-listening", lambda i: _spawn_to_listening(box), exit_problem)
        answer = Case("spawn-to-first-answer",
                      lambda i: _spawn_to_listening(box, answered=True), exit_problem)
        samples = interleave(box.baseline_cases() + [spawn, answer], plan.spawn_runs)
        rows, floor = baseline_rows(section, samples)
        rows.append(timed_row(section, spawn.name, samples[spawn.name], floor, max_ms=150,
                              note="launch.spawn_worker() to the socket accepting connections"))
        rows.append(timed_row(section, answer.name, samples[answer.name], floor,
                              note="launch.spawn_worker() to the first answered ping"))
        rows += _worker_memory(box, plan.rss_events)
    bench.note(section, f"spawn: {plan.spawn_runs} interleaved runs; memory: one worker fed "
                        f"{plan.rss_events:,} post-tool-use hooks (mixed tools, concurrency 2), "
                        f"mock agent latency {AGENT_LATENCY:g} s")
    return rows


def _spawn_to_listening(box: Sandbox, answered: bool = False) -> Result:
    """Time from launch.spawn_worker to its socket accepting a connection (a hook
    connecting from then on waits in the backlog instead of spawning another
    worker), or with ``answered`` to the first answered ping; then shut it down."""
    sid = new_session_id()
    box.create_session(sid)
    path = socket_path(box.home, sid)
    started = time.perf_counter()
    pid = launch.spawn_worker(box.home, sid)
    if pid is None:
        return Result(time.perf_counter() - started, -1)
    deadline = time.monotonic() + 15
    while True:
        try:
            if answered:
                ipc.request(path, {"type": "ping"}, timeout=1.0)
            elif not ipc.listening(path, timeout=1.0):
                raise OSError("not listening yet")
            break
        except Exception:  # noqa: BLE001 - not listening yet
            if time.monotonic() > deadline:
                end_process(pid)
                return Result(time.perf_counter() - started, -1)
            time.sleep(0.001)
    elapsed = time.perf_counter() - started
    with contextlib.suppress(Exception):
        ipc.request(path, {"type": "shutdown", "reason": "bench"}, timeout=1.0)
    if not wait_exit(pid, 10):
        end_process(pid)
    return Result(elapsed, 0)


def _worker_memory(box: Sandbox, n_events: int) -> list[Row]:
    """RSS of an idle fresh worker, then of it and its agent CLI after ``n_events`` events."""
    section = "worker"
    sid = new_session_id()
    pid = box.start_worker(sid)
    time.sleep(1.0)  # settled, agent not started (it starts on the first event)
    idle = rss_mb(pid)
    box.must_hook("user-prompt-submit", box.payloads.make("user_prompt_submit", sid))
    jobs = [lambda n=n: box.hook("post-tool-use", box.payloads.mixed_tool(sid, n))
            for n in range(n_events)]
    results, fed = run_pool(jobs, 2)
    failed = sum(hook_problem(r) is not None for r in results)
    drain_started = time.monotonic()
    wait_until(lambda: box.spooled_files() == 0 and box.pending(sid) == 0,
               max(120, n_events * 0.5), f"worker to process {n_events} events", 0.2)
    drained = time.monotonic() - drain_started
    stored = box.scalar("SELECT COUNT(*) FROM events e JOIN sessions s ON s.id = e.session_id"
                        " WHERE s.claude_session_id = ? AND e.status = 'processed'", sid)
    worker = rss_mb(pid)
    children = psutil.Process(pid).children(recursive=True)
    agent = sum(rss_mb(c.pid) for c in children)
    end_process(pid)
    return [
        value_row(section, "worker RSS idle after start", idle, "MB",
                  note="agent not started yet"),
        value_row(section, f"events processed ({n_events:,} hooks)", stored, "events",
                  target=f"= {n_events}", ok=stored == n_events and not failed,
                  note=f"{failed} hooks failed; fed in {fed:.1f} s, drained {drained:.1f} s "
                       "after the last hook"),
        value_row(section, f"worker RSS after {n_events:,} events", worker, "MB"),
        value_row(section, f"agent CLI RSS after {n_events:,} events", agent, "MB",
                  note=f"{len(children)} child process(es) of the worker"),
    ]


# -- section: burst -------------------------------------------------------------------------


def bench_burst(bench: Bench) -> list[Row]:
    """Many post-tool-use hooks over concurrent sessions: nothing lost, nothing failing."""
    section = "burst"
    plan = bench.plan
    box = bench.sandbox("burst", latency=AGENT_LATENCY)
    total = plan.burst_sessions * plan.burst_per_session
    with box.active():
        sids = [new_session_id() for _ in range(plan.burst_sessions)]
        warm_started = time.monotonic()
        _warm_sessions(box, sids)
        warmed = time.monotonic() - warm_started
        # Sessions round-robin, so the pool hits every session at once; a
        # baseline pair every 20 hooks measures the same load's floor.
        jobs: list[tuple[str, Callable[[], Result]]] = []
        for i in range(plan.burst_per_session):
            for s, sid in enumerate(sids):
                payload = box.payloads.small_tool(sid, f"burst_{s:02d}_{i:04d}")
                jobs.append(("post-tool-use", lambda p=payload: box.hook("post-tool-use", p)))
                if len(jobs) % 22 == 20:
                    jobs.append((BARE, lambda: box.baseline(BARE)))
                    jobs.append((FLOOR, lambda: box.baseline(FLOOR)))
        cpu_before = (cpu_of_home(box.home), *cpu_of_self())
        results, wall = run_pool([job for _, job in jobs], plan.burst_concurrency)
        cpu_after = (cpu_of_home(box.home), *cpu_of_self())
        workers_cpu, own_cpu, hooks_cpu = (
            b - a for a, b in zip(cpu_before, cpu_after, strict=True))
        samples = {name: Samples() for name in (BARE, FLOOR, "post-tool-use")}
        for (name, _), result in zip(jobs, results, strict=False):
            check = hook_problem if name == "post-tool-use" else exit_problem
            samples[name].add(result, check(result))
        replay_started = time.monotonic()
        wait_until(lambda: box.spooled_files() == 0, 120, "the spool to be replayed", 0.2)
        replayed = time.monotonic() - replay_started
        stored = box.scalar("SELECT COUNT(DISTINCT session_id || ':' || tool_use_id) FROM events"
                            " WHERE tool_use_id LIKE 'toolu_burst_%'")
        drained = _wait_drained(box, sids)
        errors_logged = box.log_lines(" ERROR ")
        spooled = box.log_lines("payload spooled to")
    bench.note(section, f"{total:,} post-tool-use hooks over {plan.burst_sessions} live sessions "
                        f"(workers with agents started in {warmed:.1f} s before), concurrency "
                        f"{plan.burst_concurrency}; "
                        "bare/floor interleaved in the same pool (one pair per 20 hooks); "
                        f"mock agent latency {AGENT_LATENCY:g} s")
    rows, floor = baseline_rows(section, samples)
    bad_output = samples["post-tool-use"].failures
    hooks = [r for (name, _), r in zip(jobs, results, strict=False) if name == "post-tool-use"]
    return rows + [
        timed_row(section, "post-tool-use under load", samples["post-tool-use"], floor),
        value_row(section, "events lost", total - stored, "events", target="= 0",
                  ok=stored == total, note=f"{stored} of {total} in the store"),
        value_row(section, "hook errors", bad_output + errors_logged, "errors", target="= 0",
                  ok=bad_output + errors_logged == 0,
                  note=f"{bad_output} bad exit/output, {errors_logged} ERROR log lines"),
        value_row(section, "payloads spooled (db locked)", spooled, "payloads",
                  note=f"spool replayed {replayed:.1f} s after the burst"),
        value_row(section, "throughput", len(hooks) / wall, "hooks/s",
                  note=f"wall {wall:.1f} s for the pool"),
        value_row(section, "CPU used during the pool", workers_cpu + own_cpu + hooks_cpu, "s",
                  note=f"of {wall * (os.cpu_count() or 1):.0f} s available: hook+baseline "
                       f"processes {hooks_cpu:.0f} s ({hooks_cpu / len(jobs) * 1000:.0f} ms "
                       f"each), workers+agents {workers_cpu:.0f} s, benchmark+mock "
                       f"{own_cpu:.0f} s"),
        value_row(section, "agent backlog drained after", drained, "s",
                  note="all sessions' events observed"),
    ]


def _warm_sessions(box: Sandbox, sids: list[str]) -> None:
    """Start each session (its hook spawns a worker) and its agent, as in a long session."""
    for sid in sids:
        box.must_hook("user-prompt-submit", box.payloads.make("user_prompt_submit", sid))
        box.must_hook("post-tool-use", box.payloads.small_tool(sid, f"warm_{sid[:8]}"))
    wait_until(lambda: box.pending(*sids) == 0, 180, "the sessions' agents to start", 0.2)


def _wait_drained(box: Sandbox, sids: list[str]) -> float:
    """Seconds until no event of ``sids`` is pending."""
    started = time.monotonic()
    wait_until(lambda: box.pending(*sids) == 0, 600, "the workers to drain the burst", 0.2)
    return time.monotonic() - started


# -- section: tokens ------------------------------------------------------------------------

# Issue 12's targets for prompt capture.
MAX_INPUT_PER_CALL = 1_500
MAX_REQUESTS_PER_CALL = 0.2
# "Flat" at 500 tools: at most this much above the 100-tool figure.
FLAT_FACTOR = 1.25


def bench_tokens(bench: Bench) -> list[Row]:
    """What the memory agent costs per observed tool call, from the mock API's log,
    in prompt capture (the default) and in live capture (the old per-event mode)."""
    section = "tokens"
    plan = bench.plan
    calls = plan.token_prompts * plan.token_tools
    variants: list[tuple[str, str, int]] = [
        (f"prompt, {calls} tools", "prompt", plan.token_prompts),
        (f"live, {calls} tools", "live", plan.token_prompts),
    ]
    if plan.long_prompts:
        long_calls = plan.long_prompts * plan.token_tools
        variants += [(f"prompt, {long_calls} tools", "prompt", plan.long_prompts),
                     (f"live, {long_calls} tools", "live", plan.long_prompts)]
    rows: list[Row] = []
    per_call: dict[str, float] = {}
    for k, (label, capture, prompts) in enumerate(variants):
        rows += _token_session(bench, f"tokens{k}", label, capture, prompts, per_call)
    if plan.long_prompts:
        short, long = per_call.get(variants[0][0]), per_call.get(variants[2][0])
        if short and long:
            rows.append(value_row(section, "prompt: input tokens per tool call, 500 vs 100",
                                  long / short, "x", target=f"<= {FLAT_FACTOR:g}x (flat)",
                                  ok=long / short <= FLAT_FACTOR,
                                  note=f"{long:,.0f} vs {short:,.0f}"))
    bench.note(section, f"scripted sessions: {plan.token_prompts} prompts x {plan.token_tools} "
                        "tool calls (Read/Bash/Grep/Edit/Write, one ~130,000-char Read), a stop "
                        "per prompt, then session-end; in live capture each call after the "
                        "worker caught up, as when a model thinks between calls"
               + (f"; --full adds {plan.long_prompts} prompts x {plan.token_tools}"
                  if plan.long_prompts else ""))
    bench.note(section, f"input tokens ~ characters of json.dumps(system) + json.dumps(messages)"
                        f" + json.dumps(tools) / {CHARS_PER_TOKEN}; output tokens ~ characters "
                        f"of the mock's replies / {CHARS_PER_TOKEN} (the mock reports the same "
                        "figures as usage, which the workers store)")
    bench.note(section, "prompt = MEMOIR_CAPTURE=prompt (default: a prompt's events with its "
                        "summary in one request); live = MEMOIR_CAPTURE=live (each event at "
                        "once, a summary request per prompt: the behaviour before issue 12)")
    return rows


def _token_session(bench: Bench, name: str, label: str, capture: str, prompts: int,
                   per_call: dict[str, float]) -> list[Row]:
    """Run one scripted session through real hooks and worker; its agent's cost as rows."""
    box = bench.sandbox(name, MEMOIR_CAPTURE=capture)
    cost = AgentCost()
    with box.active():
        sid = new_session_id()
        calls = 0
        for number in range(1, prompts + 1):
            request = f"Prompt {number}: {words(random.Random(number), 15)}"
            box.must_hook("user-prompt-submit",
                          box.payloads.make("user_prompt_submit", sid, prompt=request))
            for _ in range(bench.plan.token_tools):
                box.must_hook("post-tool-use",
                              box.payloads.mixed_tool(sid, calls, big_read=calls == 3))
                calls += 1
                if capture == "live":
                    wait_until(lambda: box.pending(sid) == 0 and box.spooled_files() == 0, 120,
                               "the worker to observe a tool call")
                else:
                    wait_until(lambda: box.spooled_files() == 0, 120,
                               "the tool call to be recorded")
                cost.take(box.mock)
            box.must_hook("stop", box.payloads.make("stop", sid))
            wait_until(lambda number=number: box.scalar(  # type: ignore[misc]
                "SELECT COUNT(*) FROM summaries m JOIN sessions s ON s.id = m.session_id"
                " WHERE s.claude_session_id = ? AND m.prompt_number = ?", sid, number),
                300, f"the summary of prompt {number}")
            cost.take(box.mock)
        pid = (box.ping(sid) or {}).get("pid")
        box.must_hook("session-end", box.payloads.make("session_end_other", sid))
        if pid:
            wait_until(lambda: not pid_alive(pid), 120, "the worker to exit after session-end")
        cost.take(box.mock)
        summaries = box.scalar(
            "SELECT COUNT(*) FROM summaries m JOIN sessions s ON s.id = m.session_id"
            " WHERE s.claude_session_id = ? AND m.kind = 'agent'", sid)
        observed = box.scalar(
            "SELECT COUNT(*) FROM events e JOIN sessions s ON s.id = e.session_id"
            " WHERE s.claude_session_id = ? AND e.status = 'processed'", sid)
        recorded = box.scalar("SELECT COUNT(*) FROM agent_requests")
        recorded_in = box.scalar("SELECT SUM(input_tokens + cache_read_tokens"
                                 " + cache_write_tokens) FROM agent_requests")
        reached, missing = _content_reached(box, sid, cost)
    per_call[label] = sum(cost.sizes) / max(calls, 1)
    return _token_rows(label, capture, cost, calls, observed, summaries, prompts, reached,
                       missing, recorded, recorded_in)


def _escaped(text: str) -> str:
    """Session text as the worker's messages carry it (XML-escaped)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _snippets(tool: str, tool_input: Any, response: Any) -> list[str]:
    """Distinctive pieces of one scripted event: its input and the start of its output."""
    tin = tool_input if isinstance(tool_input, dict) else {}
    resp = response if isinstance(response, dict) else {}
    found: list[str] = []
    if tool == "Bash":
        found += [tin.get("command", ""), str(resp.get("stdout", "")).split("\n")[0]]
    elif tool == "Grep":
        found += [tin.get("pattern", ""), str(resp.get("content", "")).split("\n")[0]]
    elif tool == "Read":
        content = str((resp.get("file") or {}).get("content", "")) if resp else ""
        if not content and isinstance(response, str):  # too big: stored as bounded JSON text
            content = response.split('"content": "', 1)[-1]
        found += [tin.get("file_path", ""), content.split("\n")[0][:60]]
    elif tool == "Edit":
        found += [tin.get("file_path", ""), tin.get("old_string", ""), tin.get("new_string", "")]
    elif tool == "Write":
        found += [tin.get("file_path", ""), str(tin.get("content", "")).split("\n")[0]]
    return [_escaped(f) for f in found if f]


def _content_reached(box: Sandbox, sid: str, cost: AgentCost) -> tuple[int, list[int]]:
    """How many of the session's events reached the agent with their content, and the
    ids of those that did not (checked against the event blocks of every request)."""
    with contextlib.closing(sqlite3.connect(db_path(box.home), timeout=10)) as conn:
        events = conn.execute(
            "SELECT e.id, e.tool_name, e.tool_input, e.tool_response FROM events e"
            " JOIN sessions s ON s.id = e.session_id WHERE s.claude_session_id = ?"
            " ORDER BY e.id", (sid,)).fetchall()
    reached, missing = 0, []
    for event_id, tool, raw_in, raw_out in events:
        block = cost.blocks.get(int(event_id))
        if block is None:
            missing.append(int(event_id))
            continue
        for ref in re.findall(r'same_as="(\d+)"', block):
            block += cost.blocks.get(int(ref), "")
        tin, out = json.loads(raw_in), json.loads(raw_out)
        if all(snippet in block for snippet in _snippets(tool, tin, out)):
            reached += 1
        else:
            missing.append(int(event_id))
    return reached, missing


def input_chars(body: dict[str, Any]) -> int:
    """Characters of the request's system + messages + tools as JSON."""
    return sum(len(json.dumps(body[key], ensure_ascii=False))
               for key in ("system", "messages", "tools") if key in body)


def output_chars(req: RecordedRequest) -> int:
    """Characters of the mock's reply to one request."""
    total = 0
    for block in req.reply or []:
        if block.get("type") == "text":
            total += len(block.get("text", ""))
        else:
            total += len(json.dumps(block.get("input", {}), ensure_ascii=False))
    return total


_EVENT_BLOCK = re.compile(r'<event id="(\d+)">(.*?)</event>', re.S)


@dataclass
class AgentCost:
    """The memory agent's requests to the mock, tallied as they come.

    Each request resends the whole agent conversation, so a long session's
    request log would hold gigabytes of bodies; only the figures are kept, and
    the first block of each event the agent was sent (to check its content).
    """

    sizes: list[int] = field(default_factory=list)  # estimated input tokens per request
    output_chars: int = 0
    tools_sent: int = 0
    blocks: dict[int, str] = field(default_factory=dict)

    def take(self, mock: MockAnthropic) -> None:
        """Tally the agent's Messages requests the mock received since the last call."""
        for req in mock.take_requests():
            if req.from_agent_sdk and req.path.split("?")[0] == "/v1/messages":
                self.sizes.append(input_chars(req.body) // CHARS_PER_TOKEN)
                self.output_chars += output_chars(req)
                self.tools_sent += len(req.body.get("tools") or [])
                for event_id, body in _EVENT_BLOCK.findall(req.last_user_text()):
                    self.blocks.setdefault(int(event_id), body)


def _token_rows(label: str, capture: str, cost: AgentCost, calls: int, observed: int,
                summaries: int, prompts: int, reached: int, missing: list[int],
                recorded: int, recorded_in: int) -> list[Row]:
    """The cost figures of one scripted session."""
    section = "tokens"
    sizes = cost.sizes
    total_in = sum(sizes)
    total_out = cost.output_chars // CHARS_PER_TOKEN
    half = len(sizes) // 2
    growth = (f"median first half {statistics.median(sizes[:half]):,.0f}, second half "
              f"{statistics.median(sizes[half:]):,.0f}" if half else "")
    per_call_in = total_in / max(calls, 1)
    per_call_requests = len(sizes) / max(calls, 1)
    targeted = capture == "prompt"
    return [
        value_row(section, f"{label}: session recorded", observed, "events",
                  target=f"{calls} events, {prompts} summaries",
                  ok=observed == calls and summaries == prompts,
                  note=f"{summaries} prompts ended with an agent summary"),
        value_row(section, f"{label}: events whose content reached the agent", reached,
                  "events", target=f"= {calls}", ok=reached == calls,
                  note=f"missing: {missing[:10]}" if missing else ""),
        value_row(section, f"{label}: agent requests", len(sizes), "requests",
                  note=f"{recorded} recorded in agent_requests ({recorded_in:,} input tokens "
                       "as reported)"),
        value_row(section, f"{label}: agent requests per tool call", per_call_requests,
                  "requests", target=f"<= {MAX_REQUESTS_PER_CALL:g}" if targeted else "",
                  ok=per_call_requests <= MAX_REQUESTS_PER_CALL if targeted else None,
                  digits=3),
        value_row(section, f"{label}: tool definitions sent", cost.tools_sent, "tools",
                  target="= 0", ok=cost.tools_sent == 0),
        value_row(section, f"{label}: input tokens total", total_in, "tokens"),
        value_row(section, f"{label}: input tokens per request",
                  statistics.median(sizes) if sizes else 0, "tokens", note=growth),
        value_row(section, f"{label}: largest request", max(sizes, default=0), "tokens"),
        value_row(section, f"{label}: output tokens total", total_out, "tokens"),
        value_row(section, f"{label}: input tokens per tool call", per_call_in, "tokens",
                  target=f"<= {MAX_INPUT_PER_CALL:,}" if targeted else "",
                  ok=per_call_in <= MAX_INPUT_PER_CALL if targeted else None),
        value_row(section, f"{label}: output tokens per tool call", total_out / max(calls, 1),
                  "tokens"),
    ]


# -- section: recall -----------------------------------------------------------------------


class Topic:
    """One thing a past session learned, and how a user later asks about it."""

    def __init__(self, key: str, title: str, fact: str, files: list[str], question: str,
                 kind: str = "discovery") -> None:
        self.key = key
        self.title = title
        self.fact = fact
        self.files = files
        self.question = question
        self.kind = kind


# The scripted project history: what each session's agent recorded, and the
# question (worded as a user would, not as the title) whose answer it holds.
TOPICS = [
    Topic("rounding", "Ledger totals rounded with Decimal half-even",
          "reconcile_ledger rounds each line with Decimal ROUND_HALF_EVEN before summing",
          ["src/app/ledger.py"], "how does reconcile_ledger round the amounts?", "bugfix"),
    Topic("csv", "CSV export escapes spreadsheet formulas",
          "cells starting with = + - @ get a leading apostrophe in csv_writer.py",
          ["src/export/csv_writer.py"], "are formulas escaped in the CSV export?", "feature"),
    Topic("ttl", "Login sessions expire after 30 minutes",
          "SESSION_TTL in settings.py is 1800 seconds, refreshed on every request",
          ["src/app/settings.py"], "when do login sessions expire?"),
    Topic("flaky", "test_sync_retry flakiness came from a fixed sleep",
          "test_sync_retry slept 0.5 s; replaced by wait_for polling the queue",
          ["tests/test_sync.py"], "why was test_sync_retry flaky?", "bugfix"),
    Topic("pool", "Postgres pool capped at 20 connections",
          "DB_POOL_SIZE defaults to 20; the worker overrides it to 5",
          ["src/app/db.py"], "what is the database connection pool size?", "discovery"),
    Topic("migrate", "Alembic migrations run in the container entrypoint",
          "entrypoint.sh runs alembic upgrade head before gunicorn starts",
          ["docker/entrypoint.sh"], "how are alembic migrations applied on deploy?", "discovery"),
    Topic("broker", "Chose RabbitMQ over Redis streams for background jobs",
          "RabbitMQ gives per-message acks and dead lettering that Redis streams lacked",
          [], "which broker did we pick for background jobs and why?", "decision"),
    Topic("pdf", "Invoice PDFs rendered with WeasyPrint",
          "invoice templates live in templates/invoice.html, fonts in assets/fonts",
          ["src/billing/invoice_pdf.py"], "what renders the invoice PDFs?", "feature"),
    Topic("ratelimit", "API rate limit is a token bucket per key",
          "100 requests per minute per API key, enforced in middleware/ratelimit.py",
          ["src/middleware/ratelimit.py"], "what is the API rate limit per key?", "feature"),
    Topic("timezone", "Naive timestamps caused the timezone bug",
          "created_at was stored naive; now stored as UTC with tzinfo",
          ["src/app/models.py"], "what caused the timezone bug in created_at?", "bugfix"),
    Topic("split", "ReconcileLedger split into LedgerMatcher and LedgerReporter",
          "LedgerMatcher pairs bank lines, LedgerReporter writes the monthly report",
          ["src/app/ledger.py", "src/app/report.py"],
          "what does LedgerMatcher do after the ReconcileLedger split?", "refactor"),
    Topic("flag", "new_checkout feature flag read from FLAGS",
          "FLAGS=new_checkout in the environment turns on the new checkout flow",
          ["src/app/flags.py"], "how do I turn on the new_checkout flow?", "feature"),
]
# The decoy project holds the same topics with other answers: none may leak in.
DECOY_MARK = "DECOYANSWER"
# Prompts that match nothing specific: prompt-time recall must stay silent.
NOISE_PROMPTS = ["what did we do last time?", "fix the failing tests please",
                 "run the linter and commit", "thanks, looks good"]
LATEST_NEXT_STEPS = "Add pagination to the invoice list endpoint"
DONE_NEXT_STEP = "Add a unit test for LedgerMatcher"


def build_recall_history(home: Path, project: Path, decoy: Path) -> dict[str, int]:
    """Six sessions of the project (two topics each, filler, next steps), and a decoy
    project with the same topics; returns each topic's observation id."""
    rng = random.Random(10)
    ids: dict[str, int] = {}
    with Store.open(home) as store:
        def session(sid: str, where: Path) -> Any:
            return store.upsert_session(sid, project_key(where), str(where))

        for n in range(6):
            s = session(f"recall-session-{n}", project)
            for p, topic in enumerate(TOPICS[2 * n:2 * n + 2]):
                number = store.add_prompt(s.id, f"work on {topic.key}")
                event = store.add_event(s.id, number, "Edit",
                                        {"file_path": str(project / (topic.files or ["x"])[0])},
                                        {"ok": True})
                assert event is not None
                filler = [Observation(type="change", title=words(rng, 5).capitalize(),
                                      narrative=words(rng, 30), facts=[words(rng, 10)],
                                      files_read=[f"src/{rng.choice(_WORDS)}.py"])
                          for _ in range(12)]
                obs = store.record_observations(s.id, [event], [
                    Observation(type=topic.kind, title=topic.title,  # type: ignore[arg-type]
                                facts=[topic.fact], narrative=words(rng, 20),
                                files_modified=topic.files), *filler], number)
                ids[topic.key] = obs[0]
                next_steps = ""
                if n == 3 and p == 1:
                    next_steps = DONE_NEXT_STEP
                if n == 5 and p == 1:
                    next_steps = LATEST_NEXT_STEPS
                completed = f"Recorded {topic.title.lower()}"
                if n == 4 and p == 0:
                    completed += "; added a unit test for LedgerMatcher"
                store.save_summary(s.id, number, Summary(
                    request=f"work on {topic.key}", completed=completed,
                    learned=topic.fact, next_steps=next_steps))
            # A question-only prompt that did nothing, in every session.
            number = store.add_prompt(s.id, "what did we do last time?")
            store.save_summary(s.id, number, Summary(request="what did we do last time?",
                                                     completed="0 tool call(s)"), "fallback")
        d = session("decoy-session", decoy)
        number = store.add_prompt(d.id, "decoy work")
        event = store.add_event(d.id, number, "Bash", {"command": "true"}, {})
        assert event is not None
        store.record_observations(d.id, [event], [
            Observation(type=t.kind, title=t.title,  # type: ignore[arg-type]
                        facts=[f"{DECOY_MARK} {t.fact}"], files_modified=t.files)
            for t in TOPICS], number)
        store.save_summary(d.id, number, Summary(request="decoy work",
                                                 next_steps=f"{DECOY_MARK} next step"))
    return ids


def bench_recall(bench: Bench) -> list[Row]:
    """Can what was recorded be found again? recall@5 of `memoir search`, the SessionStart
    context's next steps, prompt-time recall hits, on a scripted history with a decoy."""
    section = "recall"
    box = bench.sandbox("recall")
    decoy = box.project.parent / "decoy"
    decoy.mkdir()
    with box.active():
        ids = build_recall_history(box.home, box.project, decoy)
        bench.note(section, f"{len(TOPICS)} topics over 6 sessions (12 filler observations per "
                            "prompt, an empty question-only prompt per session), a decoy "
                            "project holding the same topics with other answers")
        # 1. memoir search, as a user runs it, top 5.
        hits, decoy_hits, misses = 0, 0, []
        for topic in TOPICS:
            done = subprocess.run([*memoir_command(), "search", topic.question, "--cwd",
                                   str(box.project), "--json", "--limit", "5"],
                                  env=box.env, capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                raise BenchError(f"memoir search failed: {done.stderr[-300:]}")
            results = json.loads(done.stdout)
            found = [r["id"] for r in results if r["kind"] == "observation"]
            if ids[topic.key] in found:
                hits += 1
            else:
                misses.append(topic.key)
            decoy_hits += sum(r["project"] != project_key(box.project) for r in results)
        rows = [value_row(section, "memoir search recall@5", 100 * hits / len(TOPICS), "%",
                          target=">= 90 %", ok=hits / len(TOPICS) >= 0.9,
                          note=f"{hits}/{len(TOPICS)} questions"
                               + (f"; missed {', '.join(misses)}" if misses else "")),
                value_row(section, "memoir search results from the decoy", decoy_hits,
                          "results", target="= 0", ok=decoy_hits == 0)]

        # 2. SessionStart in the project: where were we?
        start = box.hook("session-start", box.payloads.make("session_start_startup",
                                                            new_session_id()))
        problem = hook_problem(start)
        if problem is not None:
            raise BenchError(f"session-start failed: {problem}")
        context = json.loads(start.stdout).get("hookSpecificOutput", {}).get(
            "additionalContext", "")
        open_steps = context.split("## Open next steps", 1)[-1].split("\n## ", 1)[0] \
            if "## Open next steps" in context else ""
        carries = LATEST_NEXT_STEPS in open_steps
        rows.append(value_row(section, "SessionStart carries the latest next steps",
                              int(carries), "yes" if carries else "no", target="yes",
                              ok=carries and DONE_NEXT_STEP not in context
                              and DECOY_MARK not in context,
                              note=f"{len(context):,} chars; done step "
                                   f"{'shown' if DONE_NEXT_STEP in context else 'dropped'}; "
                                   "empty prompts "
                                   f"{'shown' if 'last time' in context else 'left out'}"))

        # 3. Prompt-time recall: each question as a new prompt of one new session.
        sid = new_session_id()
        recalled, leaks, missed = 0, 0, []
        for topic in TOPICS:
            result = box.hook("user-prompt-submit", box.payloads.make(
                "user_prompt_submit", sid, prompt=topic.question))
            problem = hook_problem(result)
            if problem is not None:
                raise BenchError(f"user-prompt-submit failed: {problem}")
            text = json.loads(result.stdout).get("hookSpecificOutput", {}).get(
                "additionalContext", "")
            if topic.fact in text.replace("&amp;", "&"):
                recalled += 1
            else:
                missed.append(topic.key)
            leaks += DECOY_MARK in text
        noisy = 0
        for prompt in NOISE_PROMPTS:
            result = box.hook("user-prompt-submit", box.payloads.make(
                "user_prompt_submit", sid, prompt=prompt))
            noisy += bool(json.loads(result.stdout).get("hookSpecificOutput"))
        rows += [
            value_row(section, "prompt-time recall hits", 100 * recalled / len(TOPICS), "%",
                      target=">= 75 %", ok=recalled / len(TOPICS) >= 0.75,
                      note=f"{recalled}/{len(TOPICS)} questions"
                           + (f"; missed {', '.join(missed)}" if missed else "")),
            value_row(section, "prompt-time recall from the decoy", leaks, "prompts",
                      target="= 0", ok=leaks == 0),
            value_row(section, "prompt-time recall on generic prompts", noisy, "prompts",
                      target="= 0", ok=noisy == 0,
                      note=f"of {len(NOISE_PROMPTS)} (\"what did we do last time?\" ...)"),
        ]
    return rows


# -- report -----------------------------------------------------------------------------------


BENCHES: dict[str, Callable[[Bench], list[Row]]] = {
    "hooks": bench_hooks,
    "history": bench_history,
    "worker": bench_worker,
    "burst": bench_burst,
    "tokens": bench_tokens,
    "recall": bench_recall,
}


def prepare_bytecode(package: Path, interpreter: str) -> str:
    """Compile the measured package's bytecode, so hooks do not recompile it every run.

    PYTHONDONTWRITEBYTECODE (set in the developers' shell) would otherwise leave
    an editable install without .pyc and add ~18 ms to every hook. Returns a
    status line; a warning if the directory is not writable.
    """
    if not os.access(package, os.W_OK):
        return f"WARNING: {package} is not writable; bytecode not (re)compiled"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run([interpreter, "-m", "compileall", "-q", str(package)], env=env,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        return f"WARNING: compileall failed: {(done.stdout + done.stderr).strip()[-300:]}"
    modules = len(list(package.rglob("*.py")))
    return f"compiled ({modules} modules)"


def header(bench: Bench, package: Path, bytecode: str) -> list[str]:
    """What is measured, where, and how."""
    plan = bench.plan
    version = subprocess.run([bench.interpreter, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True).stdout.strip()
    editable = " [editable install]" if "site-packages" not in str(package) else ""
    return [
        f"claude-memoir benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"machine:     {platform.node()}, {os.cpu_count()} cores, {platform.platform()}",
        f"interpreter: {bench.interpreter} (Python {version})",
        f"package:     {package}{editable}; bytecode {bytecode}",
        f"hook argv:   {shlex.join(bench.hook_argv('post-tool-use'))}",
        f"mode:        {'--quick' if plan.quick else 'default'}, {plan.runs} runs"
        + (", --full" if plan.long_prompts else ""),
    ]


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def table(rows: list[Row], notes: dict[str, list[str]]) -> str:
    """The results as a plain-text table, one block per section."""
    out: list[str] = []
    width = max((len(r.case) for r in rows), default=20) + 2
    head = (f"{'case':<{width}}{'n':>4}{'median ms':>11}{'p95 ms':>9}{'x floor':>9}"
            f"{'value':>14}  {'target':<24}{'result':<7}note")
    for section in dict.fromkeys(r.section for r in rows):
        out.append(f"\n== {section} ==")
        out += [f"   {line}" for line in notes.get(section, [])]
        out.append(head)
        for r in (r for r in rows if r.section == section):
            result = "-" if r.ok is None else ("PASS" if r.ok else "FAIL")
            value = "" if r.value is None else (
                f"{r.value:,.0f} {r.unit}" if float(r.value).is_integer()
                else f"{r.value:,.1f} {r.unit}" if abs(r.value) >= 10
                else f"{r.value:,.3g} {r.unit}")
            out.append(f"{r.case:<{width}}{r.runs or '':>4}{_fmt(r.median_ms, '.1f'):>11}"
                       f"{_fmt(r.p95_ms, '.1f'):>9}{_fmt(r.x_floor, '.2f'):>9}{value:>14}  "
                       f"{r.target:<24}{result:<7}{r.note}")
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks",
                                     description="claude-memoir benchmarks (issue 5)")
    parser.add_argument("--runs", type=int, default=0,
                        help="runs per timed case (default 30, --quick 3; spawn: a third, "
                             "at least 3)")
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"),
                        help="results file (default bench-results.json)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes (history 1/10, fewer events and runs)")
    parser.add_argument("--full", action="store_true",
                        help="also a 500-tool session in the tokens section")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, metavar="SECTION",
                        help=f"run only these sections ({', '.join(SECTIONS)})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections, print the table, write the JSON; 1 if a section broke."""
    args = parse_args(argv)
    plan = Plan.from_args(args)
    root = Path(tempfile.mkdtemp(prefix="memoir-bench-"))
    bench = Bench(plan, root)
    package = Path(claude_memoir.__file__).resolve().parent
    started = time.monotonic()
    rows: list[Row] = []
    broken = False
    try:
        bytecode = prepare_bytecode(package, bench.interpreter)
        lines = header(bench, package, bytecode)
        print("\n".join(lines), flush=True)
        for section in (s for s in SECTIONS if not args.only or s in args.only):
            section_started = time.monotonic()
            try:
                rows += BENCHES[section](bench)
            except Exception as e:  # noqa: BLE001 - report it, run the other sections
                broken = True
                traceback.print_exc()
                rows.append(Row(section, "section did not complete", ok=False, note=repr(e)))
            bench.end_workers()
            bench.note(section, f"section wall time {time.monotonic() - section_started:.1f} s")
            print(table([r for r in rows if r.section == section], bench.notes), flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted: ending the benchmark's processes, removing its files",
              file=sys.stderr)
        return 130
    finally:
        bench.close()
    wall = time.monotonic() - started
    verdicts = [r.ok for r in rows if r.ok is not None]
    summary = (f"\n{verdicts.count(True)} PASS, {verdicts.count(False)} FAIL, "
               f"{sum(r.ok is None for r in rows)} reported; wall time {wall:.1f} s; "
               f"results in {args.json}")
    print(summary)
    args.json.write_text(json.dumps({
        "header": lines, "plan": asdict(plan), "wall_seconds": round(wall, 1),
        "temp_root": str(root), "notes": bench.notes, "rows": [asdict(r) for r in rows],
    }, indent=2) + "\n")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
