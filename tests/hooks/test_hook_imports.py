"""Hooks stay light: no Agent SDK, no psutil, no asyncio, nothing third-party at all.

A hook runs on every tool call; ``import claude_agent_sdk`` alone costs ~1 s and
psutil/asyncio tens of ms. Checked the way the issue asks: with
``python -X importtime -m claude_memoir.hook EVENT`` on real payloads.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import db, kill_workers, payload

# Failed import attempts made by the standard library itself, which importtime
# lists anyway: copy.py probes Jython's org.python.core.
STDLIB_PROBES = {"org"}

FORBIDDEN = {"claude_agent_sdk", "psutil", "asyncio", "anyio", "mcp", "pydantic", "httpx"}

CASES = {
    "session-start": "session_start_startup",
    "user-prompt-submit": "user_prompt_submit",
    "pre-tool-use": "pre_tool_use_read",
    "post-tool-use": "post_tool_use_bash",
    "stop": "stop",
    "session-end": "session_end_other",
}


def _imported(args: list[str], data: bytes = b"") -> set[str]:
    done = subprocess.run([sys.executable, "-X", "importtime", *args],
                          input=data, capture_output=True, timeout=30)
    assert done.returncode == 0
    names = set()
    for line in done.stderr.decode().splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    return names


@pytest.mark.parametrize("event", list(CASES))
def test_hook_imports_only_stdlib_and_light_modules(event: str, memoir_home: Path) -> None:
    # Seed a session so every hook goes down its real path, not an early exit.
    from claude_memoir.config import load_settings
    from claude_memoir.hooks.record import record_user_prompt
    from claude_memoir.store import Store

    with Store.open(memoir_home) as store:
        record_user_prompt(store, payload("user_prompt_submit"), load_settings())
    raw = json.dumps(payload(CASES[event])).encode()
    names = _imported(["-m", "claude_memoir.hook", event], raw)
    kill_workers(memoir_home)
    # Run with -m the hook itself is __main__; config is what every hook imports.
    assert "claude_memoir.config" in names
    # What the interpreter imports on its own here (site, a sitecustomize) is
    # the floor, not the hook's doing.
    floor = _imported(["-c", "pass"])
    tops = {n.split(".")[0] for n in names - floor}
    assert not tops & FORBIDDEN, sorted(tops & FORBIDDEN)
    # Underscore names are interpreter internals or install hooks (an editable
    # install's finder); everything else must be the stdlib or this package.
    third_party = sorted(t for t in tops if t not in sys.stdlib_module_names
                         and t != "claude_memoir" and not t.startswith("_")
                         and t not in STDLIB_PROBES)
    assert third_party == [], third_party


# Standard-library modules a hook must not import either: each costs a hook
# process 2-7 ms (measured with -X importtime on a 2-core machine), i.e. the
# difference between a hook at the interpreter's floor and one at 2-3x it.
HEAVY = {"typing", "logging", "pathlib", "dataclasses", "inspect", "subprocess",
         "hashlib", "contextlib", "runpy", "urllib", "asyncio", "tempfile", "shutil"}


# The store's query areas hooks never use (store.hookstore holds theirs), and its
# migrations, loaded only when a store is behind: together ~1.8 ms of every hook.
WORKER_STORE = {f"claude_memoir.store.{m}" for m in (
    "database", "schema", "memories", "searchindex", "retention", "usage", "health",
    "browsing", "curation", "transfer")}


# Text past max_stored_chars (default 100,000) that the hook must cut (head and
# tail) and redact: the path that once imported the agent's prompts module
# (dataclasses, typing, inspect: ~10 ms) on every large tool output.
BIG = ("token=ghp_" + "a" * 36 + " password=Tr0ub4dor&3 ") * 4000


def _big(event: str) -> dict[str, object]:
    data = payload(CASES[event])
    if event == "post-tool-use":
        data["tool_response"] = {"stdout": BIG, "stderr": "", "interrupted": False}
        data["tool_input"] = {"command": BIG[:150_000], "description": "big"}
    elif event == "user-prompt-submit":
        data["prompt"] = BIG
    elif event == "stop":
        data["last_assistant_message"] = BIG
    return data


@pytest.mark.parametrize("size", ["real", "past-max-stored-chars"])
@pytest.mark.parametrize("event", list(CASES))
def test_installed_hook_command_imports_nothing_heavy(event: str, size: str,
                                                      memoir_home: Path) -> None:
    """The command `memoir install` writes, run as Claude Code runs it."""
    import shlex

    from claude_memoir.cli.install import hook_command
    from claude_memoir.config import load_settings
    from claude_memoir.hooks.record import record_user_prompt
    from claude_memoir.store import Store

    with Store.open(memoir_home) as store:
        record_user_prompt(store, payload("user_prompt_submit"), load_settings())
    argv = shlex.split(hook_command(event))
    data = payload(CASES[event]) if size == "real" else _big(event)
    done = subprocess.run([argv[0], "-X", "importtime", *argv[1:]],
                          input=json.dumps(data).encode(), capture_output=True, timeout=30)
    kill_workers(memoir_home)
    assert done.returncode == 0 and done.stdout.strip().startswith(b"{")
    names = {line.rsplit("|", 1)[1].strip() for line in done.stderr.decode().splitlines()
             if line.startswith("import time:") and "|" in line}
    assert "claude_memoir.hook" in names  # the hook really ran
    assert "site" not in names  # -S: no site-packages scan, no .pth files
    heavy = sorted({n.split(".")[0] for n in names} & HEAVY)
    assert heavy == [], f"{event} imports {heavy}"
    ours = sorted(n for n in names if n.startswith(("claude_memoir.agent", "claude_memoir.cli",
                                                    "claude_memoir.worker"))
                  or n in WORKER_STORE)
    assert ours == [], f"{event} imports {ours}"
    if size != "real" and event not in ("session-start", "session-end", "pre-tool-use"):
        # The hook really took the cutting path (and so the import test means
        # something): what it stored is bounded and redacted.
        conn = db(memoir_home)
        try:
            texts = [str(v) for row in conn.execute(
                "SELECT text, response FROM prompts UNION ALL"
                " SELECT tool_input, tool_response FROM events") for v in row if v]
        finally:
            conn.close()
        cut = [t for t in texts if "characters elided" in t]
        assert cut, "nothing was cut to max_stored_chars"
        assert all(len(t) < 110_000 and "Tr0ub4dor" not in t for t in cut)
