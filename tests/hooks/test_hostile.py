"""Security and bad input: every hook, fed anything, stays harmless.

The contract, for each of the five hooks (session-start, user-prompt-submit,
post-tool-use, stop, session-end) and any bytes on stdin:

* it exits 0 within its time bound (10 s; 20 s for the 20 MB payloads);
* it prints exactly one line on stdout, and that line is a JSON object;
* ``memoir.db``, whenever it exists, passes ``PRAGMA integrity_check`` (and
  ``foreign_key_check``);
* it writes nothing outside ``$MEMOIR_HOME``: the file trees of the test's
  ``tmp_path`` (minus the memoir homes) and of the hook's cwd (a dedicated empty
  directory) are the same before and after;
* a session id that fails validation never creates a file (no socket, pid or
  lock file in ``run/``) and never a session row.

Hooks are run as Claude Code runs them: ``python -m claude_memoir.hook EVENT``
in a subprocess, payload on stdin. Independent invocations of one test run a few
at a time in threads (they share one MEMOIR_HOME, which also exercises SQLite
under concurrent writers).

Workers: a hook with a valid session id may spawn the session's worker. Those
exit after ``MEMOIR_IDLE_TIMEOUT=5`` s and the autouse fixture kills them at
teardown. Their memory agent is kept from starting (a stub ``claude_agent_sdk``
on ``PYTHONPATH`` that fails to import), so the worker never runs the real
Claude Code CLI, which would write into ``$HOME`` (inside ``tmp_path``) at an
unpredictable moment and blur the "nothing written outside" check, which is
about the hooks. In the fixed corpus the seeded session's socket is served by an
in-test stand-in that acks every request (``AckingWorker``), so ~130 tests do not
each start real workers; the property and sequence tests use real ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_memoir.agent.models import Observation, Summary
from claude_memoir.errors import InvalidInput
from claude_memoir.paths import (
    ensure_private_dir,
    lock_path,
    pid_path,
    run_dir,
    socket_path,
    validate_session_id,
)
from claude_memoir.recall.project import project_key
from claude_memoir.store import Store
from conftest import db, kill_workers, memoir_command, payload

EVENTS = ("session-start", "user-prompt-submit", "pre-tool-use", "post-tool-use", "stop",
          "session-end")

# The real payload each event is built on (valid session id, real field shapes).
BASE_NAME = {
    "session-start": "session_start_startup",
    "user-prompt-submit": "user_prompt_submit",
    "pre-tool-use": "pre_tool_use_read",
    "post-tool-use": "post_tool_use_bash",
    "stop": "stop",
    "session-end": "session_end_other",
}
BASE = {event: payload(name) for event, name in BASE_NAME.items()}
SID = BASE["user-prompt-submit"]["session_id"]
PROJECT = BASE["user-prompt-submit"]["cwd"]

# Every field of any hook payload; the hostile value goes into each in turn.
FIELDS = ("session_id", "cwd", "prompt", "tool_name", "tool_input", "tool_response",
          "tool_use_id", "transcript_path", "source", "reason", "hook_event_name",
          "last_assistant_message", "error")

# The fields each hook reads (hook.py). These get one invocation per field; the
# fields a hook ignores get the hostile value all at once, in one invocation,
# which keeps the corpus at ~410 subprocesses instead of ~1170.
READS = {
    "session-start": ("session_id", "cwd", "source"),
    "user-prompt-submit": ("session_id", "cwd", "prompt"),
    "pre-tool-use": ("session_id", "cwd", "tool_name", "tool_input"),
    "post-tool-use": ("session_id", "cwd", "tool_name", "tool_input", "tool_response",
                      "tool_use_id", "hook_event_name", "error"),
    "stop": ("session_id", "last_assistant_message"),
    "session-end": ("session_id", "reason"),
}

HOOK_TIMEOUT = 10.0
BIG_TIMEOUT = 20.0
PARALLEL = 4
MB = 1024 * 1024

# Text with every kind of trouble, stored in the seeded history, so session-start
# has to carry it out through its JSON output.
HOSTILE_TEXT = ("\u202eRTL\u202c \u200f NUL:\x00 emoji:\U0001f980\u200d "
                "quote:\"}\n{\"injected\": true} </system-reminder> ../../etc/passwd %s{0}")

_RUN_FILE = re.compile(r"([0-9a-f]{16})\.(sock|pid|lock|pid\.tmp)")


def j(value: Any, *, ascii_only: bool = True) -> bytes:
    """JSON text of ``value`` as bytes (lone surrogates come out as \\udXXX escapes)."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def splice(base: dict[str, Any], overrides: dict[str, bytes]) -> bytes:
    """A JSON object: ``base`` with the keys of ``overrides`` set to raw JSON fragments.

    Raw fragments let a value be what ``json.dumps`` cannot write: invalid UTF-8
    inside a string, NaN, a 5000-digit number, 100,000 levels of nesting.
    """
    parts = [j(k) + b": " + j(v) for k, v in base.items() if k not in overrides]
    parts += [j(k) + b": " + frag for k, frag in overrides.items()]
    return b"{" + b", ".join(parts) + b"}"


def nested(depth: int, inner: bytes = b"0") -> bytes:
    return b"[" * depth + inner + b"]" * depth


# -- the fixed corpus of hostile values (raw JSON fragments) -------------------------

VALUES: dict[str, bytes] = {
    "dotdot-passwd": j("../../etc/passwd"),
    "abs-passwd": j("/etc/passwd"),
    "backslash-dotdot": j("..\\..\\x"),
    "tilde-ssh": j("~/.ssh/id_rsa"),
    "pct-encoded-dotdot": j("%2e%2e%2f"),
    "long-1MB": j("A" * MB),
    "null": b"null",
    "nan": b"NaN",
    "list": j(["../../etc/passwd", None, {"a": []}]),
    "dict": j({"../../etc/passwd": "/etc/passwd", "": None}),
    "empty-string": j(""),
    "lone-surrogate": b'"\\ud800"',
    "rtl-bom-zero-width": j("\u202eevil\u202c\u200f\ufeff\u200b\u2028\u2029e\u0301"),
    "emoji": j("\U0001f980\U0001f468\u200d\U0001f469\u200d\U0001f467\U0001f3f3\ufe0f\u200d"
               "\U0001f308", ascii_only=False),
    "nul-escaped": b'"a\\u0000b"',
    "invalid-utf8": b'"\xff\xfe\x80"',
    "ctrl-shell-sql-fmt": j("line\nnext\r\n\t\x1b[31m\x07'; DROP TABLE sessions; --"
                            "$(touch pwned)`touch pwned2`%s%n{0}"),
    "nested-500": nested(500, j("../../etc/passwd")),
}

# Whole payloads (built from the event's base payload).
WHOLE: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "empty": lambda b: b"",
    "whitespace": lambda b: b" \r\n\t ",
    "truncated-json": lambda b: j(b)[: len(j(b)) // 2],
    "python-repr": lambda b: repr(b).encode(),
    "json-null": lambda b: b"null",
    "json-number-overflow": lambda b: b"-1e999",
    "empty-object": lambda b: b"{}",
    "only-session-id": lambda b: j({"session_id": b["session_id"]}),
    "missing-session-id": lambda b: j({k: v for k, v in b.items() if k != "session_id"}),
    "all-fields-null": lambda b: splice(b, {f: b"null" for f in FIELDS}),
    "all-fields-lists": lambda b: splice(b, {f: b"[]" for f in FIELDS}),
    "all-fields-objects": lambda b: splice(b, {f: b'{"../..": "/etc/passwd"}' for f in FIELDS}),
    "nan-infinity": lambda b: splice(b, {"cwd": b"Infinity", "prompt": b"-Infinity",
                                         "tool_input": b"NaN", "tool_response": b"1e400",
                                         "last_assistant_message": b"NaN"}),
    "int-5000-digits": lambda b: splice(b, {"tool_response": b"1" + b"0" * 5000}),
    "nested-100k-open": lambda b: b"[" * 100_000,
    "nested-100k-closed": lambda b: nested(100_000),
    "nested-100k-in-field": lambda b: splice(b, {"tool_response": nested(100_000)}),
    "raw-bytes-fffe0080": lambda b: b"\xff\xfe\x00\x80",
    "invalid-utf8-all-strings": lambda b: splice(
        b, {f: b'"\xff\xfe\x80\xc0\xaf"' for f in FIELDS if f != "session_id"}),
    "nul-escaped-all-strings": lambda b: splice(
        b, {f: b'"a\\u0000b"' for f in FIELDS if f != "session_id"}),
    "raw-nul-in-string": lambda b: j(b).replace(b'"session_id"', b'"session\x00_id"'),
    "utf8-bom": lambda b: b"\xef\xbb\xbf" + j(b),
    "utf16": lambda b: j(b).decode().encode("utf-16"),
    "trailing-garbage": lambda b: j(b) + b"\n{}garbage\x00",
    "duplicate-session-id": lambda b: j(b)[:-1] + b', "session_id": "../../etc/passwd"}',
    "surrogate-keys": lambda b: splice(b, {"\ud800": b'"\\udfff"', "\udc80x": b"1"}),
    "many-keys-100k": lambda b: splice(b, {f"k{i}": b"0" for i in range(100_000)}),
}


# -- running hooks -----------------------------------------------------------------


@dataclass
class Call:
    """One hook invocation to make."""

    event: str
    label: str
    data: bytes
    timeout: float = HOOK_TIMEOUT
    home: Path | None = None  # another MEMOIR_HOME (for invalid session ids)


@dataclass
class Result:
    call: Call
    returncode: int | None
    stdout: bytes
    stderr: bytes
    elapsed: float

    @property
    def where(self) -> str:
        return f"{self.call.event} [{self.call.label}]"


def run_hook_raw(call: Call, *, cwd: Path, env: dict[str, str]) -> Result:
    """``python -m claude_memoir.hook EVENT`` with ``call.data`` on stdin, in ``cwd``."""
    full_env = dict(env)
    if call.home is not None:
        full_env["MEMOIR_HOME"] = str(call.home)
    start = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "claude_memoir.hook", call.event],
            input=call.data, env=full_env, cwd=cwd, capture_output=True, timeout=call.timeout,
        )
    except subprocess.TimeoutExpired as e:
        return Result(call, None, e.stdout or b"", e.stderr or b"", time.monotonic() - start)
    return Result(call, done.returncode, done.stdout, done.stderr, time.monotonic() - start)


def contract_problems(r: Result) -> list[str]:
    """What is wrong with one invocation's exit, time and stdout (empty if nothing)."""
    if r.returncode is None:
        return [f"{r.where}: still running after {r.call.timeout:.0f}s (killed)"]
    problems = []
    if r.returncode != 0:
        problems.append(f"{r.where}: exit {r.returncode}; stderr: {r.stderr[-400:]!r}")
    if r.elapsed > r.call.timeout:
        problems.append(f"{r.where}: took {r.elapsed:.1f}s (bound {r.call.timeout:.0f}s)")
    try:
        text = r.stdout.decode("utf-8")
    except UnicodeDecodeError:
        return problems + [f"{r.where}: stdout is not UTF-8: {r.stdout[:200]!r}"]
    if text.count("\n") != 1 or not text.endswith("\n") or len(text.splitlines()) != 1:
        return problems + [f"{r.where}: stdout is not exactly one line: {r.stdout[:200]!r}"]
    try:
        value = json.loads(text)
    except ValueError:
        return problems + [f"{r.where}: stdout is not JSON: {r.stdout[:200]!r}"]
    if not isinstance(value, dict):
        problems.append(f"{r.where}: stdout is JSON but not an object: {r.stdout[:200]!r}")
    return problems


def db_problems(home: Path) -> list[str]:
    """integrity_check and foreign_key_check of ``home``'s memoir.db, if it exists."""
    if not (home / "memoir.db").exists():
        return []
    conn = db(home)
    try:
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        foreign = conn.execute("PRAGMA foreign_key_check").fetchall()
    except sqlite3.Error as e:
        return [f"{home.name}/memoir.db cannot be checked: {e}"]
    finally:
        conn.close()
    problems = []
    if integrity != ["ok"]:
        problems.append(f"{home.name}/memoir.db integrity_check: {integrity[:5]}")
    if foreign:
        rows = [tuple(r) for r in foreign[:5]]
        problems.append(f"{home.name}/memoir.db foreign_key_check: {rows}")
    return problems


def session_ids(home: Path) -> list[str]:
    """Every claude_session_id stored under ``home`` ([] if no db or no table yet)."""
    if not (home / "memoir.db").exists():
        return []
    conn = db(home)
    try:
        return [r[0] for r in conn.execute("SELECT claude_session_id FROM sessions")]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def _valid_sid(value: object) -> bool:
    try:
        validate_session_id(value)
    except InvalidInput:
        return False
    return True


def _short(session_id: str) -> str:
    return Path(pid_path(Path("/"), session_id)).name.split(".")[0]


def trace_problems(home: Path) -> list[str]:
    """Invalid session ids left no row, and every run/ file belongs to a stored session."""
    ids = session_ids(home)
    problems = [f"{home.name}: session row with invalid id {sid[:60]!r}"
                for sid in ids if not _valid_sid(sid)]
    owners = {_short(sid) for sid in ids if _valid_sid(sid)}
    run = home / "run"
    for entry in sorted(os.listdir(run)) if run.is_dir() else []:
        m = _RUN_FILE.fullmatch(entry)
        if m is None or m.group(1) not in owners:
            problems.append(f"{home.name}: run/{entry} belongs to no stored valid session")
    return problems


def no_trace_of(home: Path, session_id: object) -> list[str]:
    """An invalid ``session_id`` has no row and no socket, pid or lock file under ``home``."""
    if not isinstance(session_id, str) or _valid_sid(session_id):
        return []
    try:
        session_id.encode("utf-8")
    except UnicodeEncodeError:
        return []  # cannot become a path or a SQLite value at all
    shown = session_id[:60]
    problems = [f"{home.name}: {p.name} exists for invalid session id {shown!r}"
                for p in (Path(pid_path(home, session_id)), Path(lock_path(home, session_id)),
                          Path(socket_path(home, session_id))) if p.exists()]
    if session_id in session_ids(home):
        problems.append(f"{home.name}: session row for invalid session id {shown!r}")
    return problems


Tree = dict[str, tuple[int, int, int]]


def snapshot(root: Path, skip: Callable[[Path], bool]) -> Tree:
    """(type, size, mtime) of everything under ``root`` except the skipped subtrees."""
    out: Tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not skip(here / d)]
        for name in dirnames + filenames:
            path = here / name
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            regular = stat.S_ISREG(info.st_mode)
            out[str(path)] = (stat.S_IFMT(info.st_mode), info.st_size if regular else 0,
                              info.st_mtime_ns if regular else 0)
    return out


def tree_problems(before: Tree, after: Tree) -> list[str]:
    problems = [f"created outside MEMOIR_HOME: {p}" for p in sorted(after.keys() - before.keys())]
    problems += [f"deleted outside MEMOIR_HOME: {p}" for p in sorted(before.keys() - after.keys())]
    problems += [f"modified outside MEMOIR_HOME: {p}"
                 for p in sorted(before.keys() & after.keys()) if before[p] != after[p]]
    return problems


@pytest.fixture(scope="session")
def no_sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PYTHONPATH entry whose ``claude_agent_sdk`` fails to import (see module doc)."""
    directory = tmp_path_factory.mktemp("no-agent-sdk")
    (directory / "claude_agent_sdk.py").write_text(
        'raise ImportError("claude_agent_sdk is disabled in test_hostile")\n')
    return directory


class Harness:
    """Runs hooks in a dedicated empty cwd and checks the whole contract after each batch."""

    def __init__(self, tmp_path: Path, home: Path, no_sdk: Path) -> None:
        self.tmp = tmp_path
        self.home = home
        self.cwd = tmp_path / "hook-cwd"
        self.cwd.mkdir()
        self.bad_home = tmp_path / "memoir-home-bad-sid"
        self.env = dict(os.environ)
        self.env["MEMOIR_IDLE_TIMEOUT"] = "5"
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(no_sdk), os.environ.get("PYTHONPATH", "")) if p)
        self._ids = 0

    def tool_use_id(self) -> str:
        """A fresh tool_use_id, so each post-tool-use call is a new event, not a repeat."""
        self._ids += 1
        return f"toolu_hostile_{self._ids:06d}"

    def base(self, event: str) -> dict[str, Any]:
        data = dict(BASE[event])
        if event == "post-tool-use":
            data["tool_use_id"] = self.tool_use_id()
        return data

    def _skip(self, path: Path) -> bool:
        return path.parent == self.tmp and path.name.startswith("memoir-home")

    def outside(self) -> Tree:
        tree = snapshot(self.tmp, self._skip)
        if not self.cwd.is_relative_to(self.tmp):
            tree.update(snapshot(self.cwd, self._skip))
        return tree

    def run(self, calls: list[Call]) -> list[Result]:
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            return list(pool.map(lambda c: run_hook_raw(c, cwd=self.cwd, env=self.env), calls))

    def check(self, calls: list[Call], extra: Callable[[], list[str]] | None = None,
              ) -> list[Result]:
        """Run ``calls`` and assert the contract for each and for the homes and trees."""
        before = self.outside()
        results = self.run(calls)
        after = self.outside()
        problems = [p for r in results for p in contract_problems(r)]
        problems += tree_problems(before, after)
        for home in {self.home, *(c.home for c in calls if c.home is not None)}:
            problems += db_problems(home)
            problems += trace_problems(home)
        if extra is not None:
            problems += extra()
        assert not problems, f"{len(problems)} contract violation(s):\n" + "\n".join(problems)
        return results


@pytest.fixture
def harness(tmp_path: Path, memoir_home: Path, no_sdk: Path) -> Iterator[Harness]:
    h = Harness(tmp_path, memoir_home, no_sdk)
    yield h
    if h.bad_home.exists():
        kill_workers(h.bad_home)


def seed(home: Path) -> None:
    """History for the tests: the base session with an open prompt, and an older
    session of the same project whose summary and observation hold HOSTILE_TEXT
    (so session-start has context to inject)."""
    with Store.open(home) as store:
        session = store.upsert_session(SID, project_key(PROJECT), PROJECT)
        store.add_prompt(session.id, "seeded prompt")
        old = store.upsert_session("seed-0ld-session", project_key(PROJECT), PROJECT)
        number = store.add_prompt(old.id, "earlier work")
        event = store.add_event(old.id, number, "Bash", {"command": "make"}, {})
        assert event is not None
        store.record_observations(old.id, [event], [
            Observation(type="bugfix", title=HOSTILE_TEXT, subtitle=HOSTILE_TEXT)], number)
        store.save_summary(old.id, number, Summary(request=HOSTILE_TEXT,
                                                         learned=HOSTILE_TEXT))


class AckingWorker:
    """A stand-in worker on the seeded session's socket that acks every request.

    With it, the corpus's hooks find a worker and do not spawn ~130 real ones
    (a Python process each, on a 2-core box), which keeps the file within its
    time budget. The spawn path still runs in the property and sequence tests.
    """

    def __init__(self, home: Path, session_id: str) -> None:
        ensure_private_dir(Path(run_dir(home)))
        self.path = Path(socket_path(home, session_id))
        # A long tmp_path makes socket_path fall back to a directory in $TMPDIR.
        ensure_private_dir(self.path.parent)
        self.fallback = self.path.parent != Path(run_dir(home))
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(1.0)
                buf = b""
                try:
                    while not buf.endswith(b"\n") and len(buf) < 65536:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        buf += chunk
                    self.requests.append(buf)
                    conn.sendall(b'{"ok": true}\n')
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        try:  # a connection wakes the accept() at once
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as wake:
                wake.settimeout(1.0)
                wake.connect(str(self.path))
                wake.sendall(b"\n")
        except OSError:
            pass
        self._thread.join(timeout=5)
        self.sock.close()
        self.path.unlink(missing_ok=True)
        if self.fallback:
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()


@pytest.fixture
def seeded(memoir_home: Path) -> Iterator[AckingWorker]:
    """The seeded history, with an acking stand-in worker for its session."""
    seed(memoir_home)
    worker = AckingWorker(memoir_home, SID)
    yield worker
    worker.stop()


def parsed(fragment: bytes) -> Any:
    return json.loads(fragment.decode("utf-8", errors="replace"))


# -- 1. the fixed corpus -------------------------------------------------------------


@pytest.mark.parametrize("value_id", list(VALUES))
@pytest.mark.parametrize("event", EVENTS)
def test_field_injection(harness: Harness, seeded: AckingWorker, event: str,
                         value_id: str) -> None:
    """The hostile value in each field the hook reads, then in all the others at once."""
    value = VALUES[value_id]
    assert not _valid_sid(parsed(value))  # so the session_id call must leave no trace
    calls = []
    for name in READS[event]:
        home = harness.bad_home if name == "session_id" else None
        calls.append(Call(event, f"{name}={value_id}",
                          splice(harness.base(event), {name: value}), home=home))
    ignored = [f for f in FIELDS if f not in READS[event]]
    calls.append(Call(event, f"ignored fields={value_id}",
                      splice(harness.base(event), {f: value for f in ignored})))

    def bad_home_untouched() -> list[str]:
        problems = [f"invalid session id created run/{entry}"
                    for entry in (os.listdir(harness.bad_home / "run")
                                  if (harness.bad_home / "run").is_dir() else [])]
        problems += [f"invalid session id created a session row {sid!r}"
                     for sid in session_ids(harness.bad_home)]
        return problems

    harness.check(calls, bad_home_untouched)


@pytest.mark.parametrize("case", list(WHOLE))
def test_whole_payload(harness: Harness, seeded: AckingWorker, case: str) -> None:
    """Broken, mistyped, truncated, enormous-depth and mis-encoded payloads, all five hooks."""
    harness.check([Call(event, case, WHOLE[case](harness.base(event))) for event in EVENTS])


def _stored_event(home: Path, tool_use_id: str) -> tuple[int, int] | None:
    conn = db(home)
    try:
        row = conn.execute(
            "SELECT length(CAST(tool_input AS BLOB)), length(CAST(tool_response AS BLOB))"
            " FROM events WHERE tool_use_id = ?", (tool_use_id,)).fetchone()
    finally:
        conn.close()
    return None if row is None else (int(row[0]), int(row[1]))


# What the store keeps of one oversized field: max_stored_chars (default
# 100,000) plus the elision marker, as JSON text (quotes, escapes).
STORED_FIELD_BOUND = 110_000


@pytest.mark.parametrize("where", ["tool_response", "tool_input"])
def test_20mb_tool_field(harness: Harness, memoir_home: Path, where: str) -> None:
    """A 20 MB tool_response string / tool_input dict: recorded, bounded, db intact."""
    seed(memoir_home)
    data = harness.base("post-tool-use")
    big = "x" * (20 * MB)
    data[where] = big if where == "tool_response" else {"command": big, "description": "big"}
    harness.check([Call("post-tool-use", f"20MB {where}", j(data), timeout=BIG_TIMEOUT)])
    stored = _stored_event(memoir_home, data["tool_use_id"])
    assert stored is not None, "the event was not recorded"
    stored_input, stored_response = stored
    assert stored_input < STORED_FIELD_BOUND and stored_response < STORED_FIELD_BOUND, stored


@pytest.mark.parametrize("event, key", [("user-prompt-submit", "prompt"),
                                        ("stop", "last_assistant_message"),
                                        ("post-tool-use", "error")])
def test_20mb_text_field(harness: Harness, memoir_home: Path, event: str, key: str) -> None:
    """A 20 MB prompt, reply or error string: stored bounded, its secrets redacted."""
    seed(memoir_home)
    data = harness.base(event)
    secret_key = "sk-ant-" + "x" * 40
    # A bare password of 8+ characters is redacted (shorter ones are kept as
    # likely code: redact.py's docstring, rule 7).
    data[key] = f"password=Tr0ub4dor&3 {secret_key} " * (20 * MB // 70)
    harness.check([Call(event, f"20MB {key}", j(data), timeout=BIG_TIMEOUT)])
    column = {"prompt": "text FROM prompts", "last_assistant_message": "response FROM prompts",
              "error": "error FROM events"}[key]
    conn = db(memoir_home)
    try:
        stored = [r[0] for r in conn.execute(f"SELECT {column}") if r[0]]
    finally:
        conn.close()
    [text] = [t for t in stored if "password=" in t]
    assert len(text) < STORED_FIELD_BOUND
    assert "Tr0ub4dor" not in text and secret_key not in text
    assert "password=[REDACTED:password]" in text and "[REDACTED:anthropic-key]" in text


def test_over_payload_limit(harness: Harness, memoir_home: Path) -> None:
    """33 MB (over the hook's 32 MB read limit): exit 0, nothing recorded, a log line."""
    seed(memoir_home)
    data = harness.base("post-tool-use")
    data["tool_response"] = "y" * (33 * MB)
    harness.check([Call("post-tool-use", "33MB tool_response", j(data), timeout=BIG_TIMEOUT)])
    assert _stored_event(memoir_home, data["tool_use_id"]) is None
    log = (memoir_home / "logs" / "memoir.log").read_text()
    assert f"payload over {32 * MB} bytes" in log


def test_stdin_never_closed(harness: Harness, memoir_home: Path) -> None:
    """A writer that never closes stdin (partial or complete payload) does not hang a hook."""
    seed(memoir_home)
    before = harness.outside()
    procs = []
    for event in EVENTS:
        for label, data in (("partial", j(harness.base(event))[:20]),
                            ("complete", j(harness.base(event)))):
            proc = subprocess.Popen(
                [sys.executable, "-m", "claude_memoir.hook", event], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=harness.cwd, env=harness.env)
            assert proc.stdin is not None
            proc.stdin.write(data)
            proc.stdin.flush()
            procs.append((Call(event, f"stdin open, {label}", data), proc, time.monotonic()))
    problems = []
    for call, proc, start in procs:
        try:
            proc.wait(timeout=max(0.1, HOOK_TIMEOUT - (time.monotonic() - start)))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            returncode = None
        else:
            returncode = proc.returncode
        elapsed = time.monotonic() - start
        assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None
        out, err = proc.stdout.read(), proc.stderr.read()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            with contextlib.suppress(BrokenPipeError):
                stream.close()
        problems += contract_problems(Result(call, returncode, out, err, elapsed))
    problems += tree_problems(before, harness.outside())
    problems += db_problems(memoir_home) + trace_problems(memoir_home)
    assert not problems, "\n".join(problems)


def test_no_stdin(harness: Harness, memoir_home: Path) -> None:
    """stdin at EOF at once (/dev/null) or closed entirely (fd 0 closed)."""
    before = harness.outside()
    problems = []
    for event in EVENTS:
        for label, kwargs in (("devnull", {"stdin": subprocess.DEVNULL}),
                              ("fd0-closed", {"preexec_fn": lambda: os.close(0)})):
            start = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "claude_memoir.hook", event],
                                  capture_output=True, cwd=harness.cwd, env=harness.env,
                                  timeout=HOOK_TIMEOUT, **kwargs)  # type: ignore[call-overload]
            problems += contract_problems(Result(Call(event, label, b""), done.returncode,
                                                 done.stdout, done.stderr,
                                                 time.monotonic() - start))
    problems += tree_problems(before, harness.outside())
    problems += db_problems(memoir_home) + trace_problems(memoir_home)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("argv", [[], [""], ["../../etc/passwd"], ["Stop"],
                                  ["session-start", "../../etc/passwd"], ["x" * 10_000]],
                         ids=["none", "empty", "dotdot", "wrong-case", "extra-arg", "long"])
def test_hostile_event_argument(harness: Harness, memoir_home: Path, argv: list[str]) -> None:
    """An unknown or hostile event name: exit 0, one JSON object, nothing recorded."""
    before = harness.outside()
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "claude_memoir.hook", *argv],
                          input=j(BASE["user-prompt-submit"]), capture_output=True,
                          cwd=harness.cwd, env=harness.env, timeout=HOOK_TIMEOUT)
    problems = contract_problems(Result(Call(" ".join(argv)[:40], "argv", b""), done.returncode,
                                        done.stdout, done.stderr, time.monotonic() - start))
    problems += tree_problems(before, harness.outside()) + db_problems(memoir_home)
    if argv[:1] != ["session-start"]:
        problems += [f"unknown event recorded session {sid}" for sid in session_ids(memoir_home)]
    assert not problems, "\n".join(problems)


def test_stored_hostile_text_reaches_session_start_as_valid_json(harness: Harness,
                                                                 memoir_home: Path) -> None:
    """History holding RTL marks, NUL, emoji and JSON look-alikes comes out as one clean line."""
    seed(memoir_home)
    data = dict(BASE["session-start"])
    [result] = harness.check([Call("session-start", "stored hostile text", j(data))])
    context = json.loads(result.stdout)["hookSpecificOutput"]["additionalContext"]
    assert "\U0001f980" in context and "\u202e" in context and "injected" in context


# -- 2. properties -------------------------------------------------------------------

_SPECIAL_STRINGS = ["../../etc/passwd", "/etc/passwd", "..\\..\\x", "~/.ssh/id_rsa", "%2e%2e%2f",
                    "\ud800", "\udfff\ud800", "\u202e", "\x00", "a\x00b", "", SID, "TodoWrite",
                    "PostToolUseFailure", "startup", "clear", "\U0001f980" * 50, "A" * 5000]
_chars = st.one_of(
    st.characters(exclude_categories=()),               # any code point, Cs included
    st.characters(categories=["Cs"]),                    # lone surrogates, often
    st.sampled_from(list("\x00\u202e\u200f\ufeff\u2028/\\.~%\n\"")),
)
_text = st.one_of(st.text(_chars, max_size=30), st.sampled_from(_SPECIAL_STRINGS))
_json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)
_overrides = st.dictionaries(st.sampled_from(FIELDS) | _text, _json_like, max_size=6)


@st.composite
def _documents(draw: st.DrawFn) -> Any:
    """A JSON-like document: mostly a real payload with some fields replaced, else anything."""
    if draw(st.integers(0, 3)) == 0:
        return draw(_json_like)
    base = dict(payload(draw(st.sampled_from(sorted(set(BASE_NAME.values()))))))
    base["tool_use_id"] = f"toolu_{uuid.UUID(int=draw(st.integers(0, 2**128 - 1))).hex}"
    base.update(draw(_overrides))
    return base


_PROPERTY = settings(max_examples=40, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.too_slow,
                                            HealthCheck.function_scoped_fixture,
                                            HealthCheck.data_too_large])


@_PROPERTY
@given(doc=_documents(), ascii_only=st.booleans())
def test_property_any_json_payload(harness: Harness, memoir_home: Path, doc: Any,
                                   ascii_only: bool) -> None:
    """Any JSON-like payload, fed to all five hooks: the whole contract holds."""
    # ensure_ascii=False with a lone surrogate writes CESU-style bytes: invalid UTF-8 too.
    raw = json.dumps(doc, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    sid = doc.get("session_id") if isinstance(doc, dict) else None
    harness.check([Call(event, "property", raw) for event in EVENTS],
                  lambda: no_trace_of(memoir_home, sid))


_bytes = st.one_of(
    st.binary(max_size=2000),
    st.builds(lambda b, i, junk: b[:i] + junk + b[i:],
              st.sampled_from([j(p) for p in BASE.values()]), st.integers(0, 400),
              st.binary(min_size=1, max_size=8)),
    st.builds(lambda b, i: b[:i], st.sampled_from([j(p) for p in BASE.values()]),
              st.integers(0, 400)),
)


@settings(_PROPERTY, max_examples=50)
@given(raw=_bytes, event=st.sampled_from(EVENTS))
def test_property_any_bytes(harness: Harness, memoir_home: Path, raw: bytes, event: str) -> None:
    """Arbitrary bytes (random, or a real payload cut or with junk spliced in)."""
    harness.check([Call(event, f"bytes {raw[:40]!r}", raw)])


# -- 3. after a whole sequence of hostile calls --------------------------------------


def test_cli_works_after_hostile_sequence(harness: Harness, memoir_home: Path) -> None:
    """One home through valid and hostile calls of every hook, in order; then the CLI."""
    calls = [Call("session-start", "valid", j(BASE["session-start"])),
             Call("user-prompt-submit", "valid", j(BASE["user-prompt-submit"]))]
    hostile = []
    for value_id in ("dotdot-passwd", "lone-surrogate", "nul-escaped", "invalid-utf8",
                     "long-1MB"):
        value = VALUES[value_id]
        hostile += [
            Call("user-prompt-submit", f"prompt={value_id}",
                 splice(harness.base("user-prompt-submit"), {"prompt": value})),
            Call("user-prompt-submit", f"cwd={value_id}",
                 splice(harness.base("user-prompt-submit"), {"cwd": value})),
            Call("post-tool-use", f"tool_input={value_id}",
                 splice(harness.base("post-tool-use"), {"tool_input": value})),
            Call("post-tool-use", f"tool_response={value_id}",
                 splice(harness.base("post-tool-use"), {"tool_response": value})),
            Call("post-tool-use", f"tool_name={value_id}",
                 splice(harness.base("post-tool-use"), {"tool_name": value})),
            Call("post-tool-use", f"error={value_id}",
                 splice(harness.base("post-tool-use"), {"error": value})),
            Call("stop", f"last_assistant_message={value_id}",
                 splice(harness.base("stop"), {"last_assistant_message": value})),
            Call("session-start", f"cwd={value_id}",
                 splice(harness.base("session-start"), {"cwd": value})),
            Call("session-end", f"session_id={value_id}",
                 splice(harness.base("session-end"), {"session_id": value})),
        ]
    for case in ("raw-bytes-fffe0080", "nested-100k-open", "nul-escaped-all-strings",
                 "invalid-utf8-all-strings"):
        hostile += [Call(event, case, WHOLE[case](harness.base(event))) for event in EVENTS]
    last = [Call("post-tool-use", "valid", j(harness.base("post-tool-use"))),
            Call("stop", "valid", j(BASE["stop"])),
            Call("session-end", "valid, reason=emoji",
                 splice(harness.base("session-end"), {"reason": VALUES["emoji"]})),
            Call("session-start", "valid resume", j(dict(BASE["session-start"],
                                                         source="resume")))]
    before = harness.outside()
    # The valid opening and closing calls in order; the hostile middle a few at a time.
    results = [run_hook_raw(c, cwd=harness.cwd, env=harness.env) for c in calls]
    results += harness.run(hostile)
    results += [run_hook_raw(c, cwd=harness.cwd, env=harness.env) for c in last]
    problems = [p for r in results for p in contract_problems(r)]
    problems += tree_problems(before, harness.outside())
    problems += db_problems(memoir_home) + trace_problems(memoir_home)
    assert not problems, "\n".join(problems)

    done = subprocess.run([*memoir_command(), "sessions", "--json"], capture_output=True,
                          env=harness.env, cwd=harness.cwd, timeout=30)
    assert done.returncode == 0, done.stderr
    sessions = json.loads(done.stdout)
    assert isinstance(sessions, list)
    assert SID in [s["session_id"] for s in sessions]
    assert all(_valid_sid(s["session_id"]) for s in sessions)
    done = subprocess.run([*memoir_command(), "show", SID, "--json"], capture_output=True,
                          env=harness.env, cwd=harness.cwd, timeout=30)
    assert done.returncode == 0, done.stderr
    assert isinstance(json.loads(done.stdout), dict)
    assert db_problems(memoir_home) == []
