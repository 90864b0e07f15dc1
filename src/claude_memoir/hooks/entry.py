"""A hook process's entry: read stdin, dispatch to the handler, print JSON, exit 0.

Installed as ``python -I -S -c "...from claude_memoir.hook import entry; entry()" EVENT``
(see ``install.hook_command``); ``python -m claude_memoir.hook EVENT`` works too.
Claude Code runs these synchronously and the user waits for them, on every tool
call. So each one: imports only the standard library and light modules of this
package, commits what it must keep to SQLite, wakes the worker without waiting
for the agent, prints valid hook output, and exits 0 whatever it is fed. Errors
go to the log file, never to stdout (which Claude Code parses).
"""

from __future__ import annotations

import json
import os
import re
import select
import sys
import time

from ..config import load_settings
from ..errors import InvalidInput, MemoirError
from ..log import get_logger
from .handlers import HANDLERS
from .payload import excluded

# This module runs on every tool call: only the standard library's cheapest
# modules and this package's light ones are imported at run time (no typing,
# logging, pathlib, dataclasses; tests/hooks/test_imports.py holds the line).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..config import Settings

    Payload = dict[str, Any]
    Output = dict[str, Any]

log = get_logger("claude_memoir.hook")

EVENTS = ("session-start", "user-prompt-submit", "pre-tool-use", "post-tool-use", "stop",
          "session-end")

# Claude Code sends a few KB; a Read of a large file can reach megabytes. A
# payload past this is not parsed at all (logged and ignored): reading and
# decoding more would cost the user seconds on one tool call.
MAX_PAYLOAD = 32 * 1024 * 1024
# A payload must arrive within this; a stdin held open must not hang the hook.
STDIN_TIMEOUT = 2.0


def read_stdin(limit: int = MAX_PAYLOAD, timeout: float = STDIN_TIMEOUT) -> bytes:
    """Read the payload: up to ``limit`` bytes, until EOF or ``timeout`` seconds."""
    stream = sys.stdin.buffer if sys.stdin is not None else None
    if stream is None or sys.stdin.isatty():
        return b""
    fd = stream.fileno()
    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + timeout
    while size <= limit:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            log.warning("payload incomplete after %.1fs; using what arrived", timeout)
            break
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def parse_payload(raw: bytes) -> Payload:
    """The payload as a dict; raises InvalidInput for anything else."""
    if len(raw) > MAX_PAYLOAD:
        raise InvalidInput(f"payload over {MAX_PAYLOAD} bytes", reason="too-large")
    try:
        value = json.loads(raw.decode("utf-8", errors="replace"))
    except ValueError as e:
        raise InvalidInput(f"payload is not JSON: {e}", reason="bad-json") from e
    except RecursionError as e:  # e.g. 100,000 nested arrays
        raise InvalidInput("payload is nested too deeply", reason="bad-json") from e
    if not isinstance(value, dict):
        raise InvalidInput("payload is not a JSON object", reason="bad-json")
    # A lone surrogate ("\ud800": half an emoji cut by a truncated output) is
    # valid JSON but cannot be stored as UTF-8, and SQLite would refuse the
    # whole record. Such strings only come from \u escapes, so a byte scan
    # spares the walk (and compiling its patterns) in the usual case.
    if (b"\\ud" in raw or b"\\uD" in raw) and re.search(rb"\\u[dD][89a-fA-F]", raw):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


def _without_surrogates(value: Any, depth: int = 0) -> Any:
    """Replace lone surrogates in every string (keys too) with U+FFFD."""
    if isinstance(value, str):
        return re.sub("[\ud800-\udfff]", "\ufffd", value)
    if depth > 200:
        return value
    if isinstance(value, dict):
        return {_without_surrogates(k, depth + 1): _without_surrogates(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_without_surrogates(v, depth + 1) for v in value]
    return value


def run(event: str, raw: bytes, settings: Settings | None = None) -> Output:
    """Handle one hook invocation (settings read now unless given); never raises."""
    try:
        if settings is None:
            settings = load_settings()
    except Exception:  # pragma: no cover - config is defensive already
        return {}
    handler = HANDLERS.get(event)
    if handler is None:
        log.error("unknown hook event %r (expected one of %s)", event[:40], ", ".join(EVENTS))
        return {}
    try:
        payload = parse_payload(raw)
        if excluded(payload, settings):
            log.debug("%s: project excluded by MEMOIR_EXCLUDE", event)
            return {}
        return handler(payload, settings)
    except InvalidInput as e:
        log.warning("%s hook ignored a bad payload: %s", event, e)
    except MemoirError as e:
        log.error("%s hook failed (%s): %s", event, e.reason, e)
    except Exception:
        log.exception("%s hook failed unexpectedly", event)
    return {}


def main(argv: list[str] | None = None) -> int:
    """Process entry: read stdin, handle, print JSON, exit 0 — always."""
    args = sys.argv[1:] if argv is None else argv
    event = args[0] if args else ""
    output: Output = {}
    if event == "--probe":  # `memoir doctor`: does the installed command run at all?
        sys.stdout.write(json.dumps({"probe": "ok"}) + "\n")
        return 0
    try:
        # The agent's own Claude Code process must never record itself.
        if os.environ.get("MEMOIR_WORKER") != "1":
            settings = load_settings()
            from ..log import setup_hook_logging

            setup_hook_logging(settings.home, settings.log_level, settings.log_max_bytes)
            output = run(event, read_stdin(), settings)
    except BaseException as e:  # noqa: BLE001 - a hook must exit 0 whatever happens
        output = {}
        try:
            log.error("%s hook ended early: %s: %s", event[:40], type(e).__name__, e)
        except Exception:  # noqa: BLE001 - nothing may stop the output below
            pass
    try:
        sys.stdout.write(json.dumps(output) + "\n")
        sys.stdout.flush()
    except Exception:
        pass
    return 0


def entry() -> None:
    """Process entry of the installed command: :func:`main`, then ``os._exit(0)``.

    Skipping the interpreter's teardown (module and garbage cleanup) saves a
    hook ~5 ms, 15% of its life, on every tool call. Nothing is left to do by
    then: the output is written and flushed, the store closed, log lines went
    out unbuffered (os.write), spawned processes are on their own.
    """
    try:
        main()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - exiting 0 whatever happened
                pass
        os._exit(0)


if __name__ == "__main__":
    entry()
