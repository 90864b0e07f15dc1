"""Claude Code hooks: one process per event, the payload on stdin.

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

from .config import Settings, load_settings
from .errors import InvalidInput, MemoirError, StoreError
from .log import get_logger
from .paths import validate_session_id

# This module runs on every tool call: only the standard library's cheapest
# modules and this package's light ones are imported at run time (no typing,
# logging, pathlib, dataclasses; tests/test_hook_imports.py holds the line).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .store import Store

    Payload = dict[str, Any]
    Output = dict[str, Any]

log = get_logger("claude_memoir.hook")

EVENTS = ("session-start", "user-prompt-submit", "post-tool-use", "stop", "session-end")

# Claude Code sends a few KB; a Read of a large file can reach megabytes. A
# payload past this is not parsed at all (logged and ignored): reading and
# decoding more would cost the user seconds on one tool call.
MAX_PAYLOAD = 32 * 1024 * 1024
# A payload must arrive within this; a stdin held open must not hang the hook.
STDIN_TIMEOUT = 2.0
# Seconds a hook waits on a locked database before it spools the payload.
HOOK_BUSY_TIMEOUT = 1.5
# Seconds SessionEnd waits for the worker's ack. A live worker answers in ~1 ms
# (p99 ~7 ms measured on a loaded 2-core machine); a later answer only costs
# a background reaper that finds the worker alive.
SESSION_END_ACK_WAIT = 0.005


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
    # spares the walk in the usual case.
    if _SURROGATE_ESCAPE.search(raw):
        value = _without_surrogates(value)
    return value


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_surrogates(value: Any, depth: int = 0) -> Any:
    """Replace lone surrogates in every string (keys too) with U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if depth > 200:
        return value
    if isinstance(value, dict):
        return {_without_surrogates(k, depth + 1): _without_surrogates(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_without_surrogates(v, depth + 1) for v in value]
    return value


def _project_dir(payload: Payload) -> str:
    # CLAUDE_PROJECT_DIR is where Claude Code was started; the payload's cwd
    # follows `cd` inside Bash, which must not split one project in two.
    raw = os.environ.get("CLAUDE_PROJECT_DIR") or payload.get("cwd")
    if not isinstance(raw, str) or not raw or "\x00" in raw:
        raw = os.getcwd()
    return raw


def _str(payload: Payload, key: str) -> str:
    value = payload.get(key)
    return value if isinstance(value, str) else ""


def _end_reason(payload: Payload) -> str:
    """SessionEnd's reason (clear, logout, ...), bounded for the store and the log."""
    return (_str(payload, "reason") or "other")[:40]


def excluded(payload: Payload, settings: Settings) -> bool:
    """True if the payload's project matches a MEMOIR_EXCLUDE glob (never recorded)."""
    if not settings.exclude:
        return False
    import fnmatch

    project = os.path.realpath(_project_dir(payload))
    return any(fnmatch.fnmatchcase(project, os.path.expanduser(glob))
               for glob in settings.exclude)


def _bounded(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (head and tail kept), if longer."""
    if 0 < limit < len(text):
        from .prompts import truncate_middle

        return truncate_middle(text, limit)
    return text


def _clean_text(text: str, settings: Settings) -> str:
    """Bound one string to max_stored_chars, then redact it."""
    from .redact import redact_text

    return redact_text(_bounded(text, settings.max_stored_chars), settings.redact)


def _clean_value(value: Any, settings: Settings) -> Any:
    """Bound a tool input/response to max_stored_chars, then redact it.

    Bounded first: redacting a 20 MB Read would cost seconds in a hook, and
    the agent only ever sees max_field_chars of it anyway. A structure too
    big to keep is stored as its (bounded) JSON text.
    """
    from .redact import redact_value

    limit = settings.max_stored_chars
    if limit > 0 and not isinstance(value, (str, int, float, bool, type(None))):
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (ValueError, RecursionError):
            text = repr(value)[: limit + 1]
        if len(text) > limit:
            value = text
    if isinstance(value, str):
        return _clean_text(value, settings)
    return redact_value(value, settings.redact)


# -- handlers ---------------------------------------------------------------


def on_session_start(payload: Payload, settings: Settings) -> Output:
    """Inject past summaries of this project as additional context."""
    source = _str(payload, "source") or "startup"
    if source not in settings.context_sources:
        return {}
    session_id = payload.get("session_id")
    exclude = session_id if isinstance(session_id, str) and source == "startup" else None
    from .context import build_context, project_key
    from .store import Store

    with Store.open(settings.home) as store:
        text = build_context(store, settings, project_key(_project_dir(payload)), exclude)
    if not text:
        return {}
    return {"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": text}}


# -- recording (database only; also used to replay spooled payloads) ---------


def record_user_prompt(store: Store, payload: Payload, settings: Settings) -> int:
    """Upsert the session and store the prompt under its number; return the number."""
    session_id = validate_session_id(payload.get("session_id"))
    prompt = payload.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidInput("payload has no prompt string", reason="bad-payload")
    from .context import project_key

    session = store.upsert_session(session_id, project_key(_project_dir(payload)),
                                   _str(payload, "cwd"))
    number = store.add_prompt(session.id, _clean_text(prompt, settings))
    log.info("session %s: prompt %d recorded", session_id, number)
    return number


def record_tool_event(store: Store, payload: Payload, settings: Settings) -> bool:
    """Queue the tool event durably; return whether it was queued (not a repeat)."""
    session_id = validate_session_id(payload.get("session_id"))
    tool_name = _str(payload, "tool_name")
    if not tool_name:
        raise InvalidInput("payload has no tool_name", reason="bad-payload")
    if tool_name in settings.skip_tools:
        log.debug("session %s: %s is not observed (MEMOIR_SKIP_TOOLS)", session_id, tool_name)
        return False
    from .context import project_key

    failed = payload.get("hook_event_name") == "PostToolUseFailure" or "error" in payload
    error = payload.get("error")
    tool_use_id = payload.get("tool_use_id")
    session = store.get_session(session_id)
    if session is None:
        # memoir was installed mid-session, or UserPromptSubmit failed:
        # still keep the event, under prompt 0.
        session = store.upsert_session(
            session_id, project_key(_project_dir(payload)), _str(payload, "cwd"))
    if error is not None and not isinstance(error, str):
        error = json.dumps(error, default=str)
    event_id = store.add_event(
        session.id,
        store.current_prompt_number(session.id),
        tool_name,
        _clean_value(payload.get("tool_input"), settings),
        _clean_value(payload.get("tool_response"), settings),
        tool_use_id=tool_use_id if isinstance(tool_use_id, str) else None,
        failed=failed,
        error=_clean_text(error, settings) if error else None,
        dedupe=True,
        max_events=settings.max_events,
    )
    return event_id is not None  # None: a repeat, or over the cap (the store logged which)


def record_stop(store: Store, payload: Payload, settings: Settings) -> int | None:
    """Mark the current prompt finished (FINALIZE); return its number, None if unknown."""
    session_id = validate_session_id(payload.get("session_id"))
    session = store.get_session(session_id)
    if session is None:
        log.info("stop for unknown session %s; nothing to finalize", session_id)
        return None
    number = store.current_prompt_number(session.id)
    reply = payload.get("last_assistant_message")
    store.finish_prompt(session.id, number,
                        _clean_text(reply, settings) if isinstance(reply, str) else None)
    return number


def record_session_end(store: Store, payload: Payload, settings: Settings) -> bool | None:
    """Record the end request; return whether work is left (None: unknown session)."""
    session_id = validate_session_id(payload.get("session_id"))
    session = store.get_session(session_id)
    if session is None:
        return None
    store.request_end(session.id, _end_reason(payload))
    return bool(store.count_pending(session.id)
                or store.prompts_to_summarize(session.id, include_open=True))


RECORDERS: dict[str, Callable[[Store, Payload, Settings], Any]] = {
    "user-prompt-submit": record_user_prompt,
    "post-tool-use": record_tool_event,
    "stop": record_stop,
    "session-end": record_session_end,
}


class _Spooled:
    """The payload went to the spool: the database stayed locked."""


SPOOLED = _Spooled()


def _recorded(event: str, payload: Payload, settings: Settings) -> Any:
    """Run ``event``'s recorder on the store, guarded for a busy or damaged database.

    Busy past HOOK_BUSY_TIMEOUT: spool the payload (the worker replays it) and
    return SPOOLED. Damaged: quarantine the file and try once more on a fresh
    one. Either way the hook returns in bounded time and the record survives.
    """
    from .paths import db_path
    from .store import Store, quarantine

    for attempt in (1, 2):
        try:
            with Store.open(settings.home, timeout=HOOK_BUSY_TIMEOUT) as store:
                return RECORDERS[event](store, payload, settings)
        except StoreError as e:
            if e.reason == "busy":
                from . import spool

                spool.write(settings.home, event, payload)
                return SPOOLED
            if e.reason == "corrupt" and attempt == 1:
                quarantine(db_path(settings.home))
                continue
            raise
    raise AssertionError("unreachable")


# -- handlers: record, then notify ---------------------------------------------


def on_user_prompt_submit(payload: Payload, settings: Settings) -> Output:
    """Record the session and the prompt; make sure the session has a worker."""
    session_id = validate_session_id(payload.get("session_id"))
    from . import launch

    _recorded("user-prompt-submit", payload, settings)
    launch.notify(settings.home, session_id, {"type": "wake"}, attempts=1)
    return {}


def on_post_tool_use(payload: Payload, settings: Settings) -> Output:
    """Queue the tool event durably, then wake the worker (PostToolUse and its Failure twin)."""
    session_id = validate_session_id(payload.get("session_id"))
    from . import launch

    if _recorded("post-tool-use", payload, settings):  # True or SPOOLED
        launch.notify(settings.home, session_id, {"type": "wake"})
    return {}


def on_stop(payload: Payload, settings: Settings) -> Output:
    """FINALIZE the current prompt: mark it finished in SQLite, then wake the worker."""
    session_id = validate_session_id(payload.get("session_id"))
    from . import launch

    number = _recorded("stop", payload, settings)
    if number is SPOOLED:
        launch.notify(settings.home, session_id, {"type": "wake"})
    elif number is not None:
        launch.notify(settings.home, session_id, {"type": "finalize", "prompt_number": number})
    return {}


def on_session_end(payload: Payload, settings: Settings) -> Output:
    """Ask the worker to finish and exit; record the end so a later worker does it if not."""
    session_id = validate_session_id(payload.get("session_id"))
    reason = _end_reason(payload)
    from . import launch

    has_work = _recorded("session-end", payload, settings)
    if has_work is None:
        return {}
    # One short attempt: the user waits for SessionEnd as Claude Code exits.
    # The end request is in SQLite (or the spool), so a busy worker sees it on
    # its next tick; a missing worker is spawned only if work is left; a
    # silent one gets a reaper (launch.notify) that checks on it in the
    # background with the patience this hook cannot afford.
    outcome = launch.notify(settings.home, session_id,
                            {"type": "shutdown", "reason": reason},
                            attempts=1, timeout=SESSION_END_ACK_WAIT, spawn=bool(has_work))
    log.info("session %s ended (%s): worker %s", session_id, reason, outcome)
    return {}


HANDLERS: dict[str, Callable[[Payload, Settings], Output]] = {
    "session-start": on_session_start,
    "user-prompt-submit": on_user_prompt_submit,
    "post-tool-use": on_post_tool_use,
    "stop": on_stop,
    "session-end": on_session_end,
}


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
            from .log import setup_hook_logging

            setup_hook_logging(settings.home, settings.log_level)
            output = run(event, read_stdin(), settings)
    except BaseException:  # noqa: BLE001 - a hook must exit 0 whatever happens
        output = {}
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
