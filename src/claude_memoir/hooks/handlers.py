"""The hooks' handlers: record durably first, then tell the worker.

SessionStart and PreToolUse read (context, file-time recall); the others
commit their intent to SQLite (or the spool) before any socket message, so a
lost message or a dead worker converges to the same result. UserPromptSubmit
then adds prompt-time recall. Each returns the hook's output (a dict printed
as JSON).
"""

from __future__ import annotations

from ..errors import MemoirError
from ..log import get_logger
from ..paths import validate_session_id
from .payload import end_reason, project_dir, str_field
from .record import SPOOLED, recorded

# Runs on every tool call: only the standard library's cheapest modules and this
# package's light ones at run time (no typing, logging, pathlib, dataclasses;
# tests/hooks/test_imports.py holds the line). Type names exist for checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..config import Settings
    from ..store.hookstore import HookStore

    Payload = dict[str, Any]
    Output = dict[str, Any]


log = get_logger(__name__)

# Seconds SessionEnd waits for the worker's ack. A live worker answers in ~1 ms
# (300 fresh-connection pings to an idle worker on a 2-core machine: median
# 1.2 ms, p90 1.7 ms, 3 % past 3 ms; p99 ~7 ms when loaded); a later answer
# only costs a background reaper that finds the worker alive, while every
# millisecond here is paid in full when the worker hangs (5 ms put that case
# past 1.25x the interpreter floor).
SESSION_END_ACK_WAIT = 0.003

# Seconds a recall hook waits on a locked database: recall is optional, the
# user is waiting, and the prompt is already recorded.
RECALL_BUSY_TIMEOUT = 0.2


def on_session_start(payload: Payload, settings: Settings) -> Output:
    """Inject past summaries of this project as additional context."""
    source = str_field(payload, "source") or "startup"
    if source not in settings.context_sources:
        return {}
    session_id = payload.get("session_id")
    exclude = session_id if isinstance(session_id, str) and source == "startup" else None
    from ..recall.context import build_context
    from ..store.hookstore import HookStore

    with HookStore.open(settings.home) as store:
        text = build_context(store, settings, project_dir(payload), exclude)
    if not text:
        return {}
    return {"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": text}}


def on_user_prompt_submit(payload: Payload, settings: Settings) -> Output:
    """Record the session and the prompt; add past observations that strongly match the
    prompt (prompt-time recall); make sure the session has a worker."""
    session_id = validate_session_id(payload.get("session_id"))
    from .. import launch

    prompt = payload.get("prompt")
    recall: list[str] = []
    if settings.recall_chars > 0 and isinstance(prompt, str):
        from ..recall.inject import prompt_recall
        from ..recall.project import project_key

        cwd = project_dir(payload)

        def prompt_time_recall(store: HookStore) -> None:
            recall.append(prompt_recall(store, settings, session_id, str(prompt),
                                        project_key(cwd), cwd))

        # On the recording's connection, after its commit: recall is a bonus,
        # and its failure must cost the record nothing (recorded() logs it).
        recorded("user-prompt-submit", payload, settings, after=prompt_time_recall)
    else:
        recorded("user-prompt-submit", payload, settings)
    launch.notify(settings.home, session_id, {"type": "wake"}, attempts=1)
    if not recall or not recall[0]:
        return {}
    return {"hookSpecificOutput": {"hookEventName": "UserPromptSubmit",
                                   "additionalContext": recall[0]}}


def on_pre_tool_use(payload: Payload, settings: Settings) -> Output:
    """Before Claude reads or edits a file: what past observations say about it
    (file-time recall, once per file per session)."""
    session_id = validate_session_id(payload.get("session_id"))
    from ..recall.inject import FILE_TOOLS

    tool_input = payload.get("tool_input")
    if (settings.file_recall_chars <= 0 or str_field(payload, "tool_name") not in FILE_TOOLS
            or not isinstance(tool_input, dict)):
        return {}
    file_path = tool_input.get("file_path")
    if not isinstance(file_path, str) or not file_path:
        return {}
    from ..recall.inject import file_recall
    from ..recall.project import project_key
    from ..store.hookstore import HookStore

    cwd = project_dir(payload)
    try:
        with HookStore.open(settings.home, timeout=RECALL_BUSY_TIMEOUT) as store:
            text = file_recall(store, settings, session_id, file_path, project_key(cwd),
                               str_field(payload, "cwd") or cwd)
    except MemoirError as e:
        log.warning("file-time recall skipped (%s): %s", e.reason, e)
        return {}
    if not text:
        return {}
    return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "additionalContext": text}}


def on_post_tool_use(payload: Payload, settings: Settings) -> Output:
    """Queue the tool event durably, then wake the worker (PostToolUse and its Failure twin)."""
    session_id = validate_session_id(payload.get("session_id"))
    from .. import launch

    if recorded("post-tool-use", payload, settings):  # True or SPOOLED
        launch.notify(settings.home, session_id, {"type": "wake"})
    return {}


def on_stop(payload: Payload, settings: Settings) -> Output:
    """FINALIZE the current prompt: mark it finished in SQLite, then wake the worker."""
    session_id = validate_session_id(payload.get("session_id"))
    from .. import launch

    number = recorded("stop", payload, settings)
    if number is SPOOLED:
        launch.notify(settings.home, session_id, {"type": "wake"})
    elif number is not None:
        launch.notify(settings.home, session_id, {"type": "finalize", "prompt_number": number})
    return {}


def on_session_end(payload: Payload, settings: Settings) -> Output:
    """Ask the worker to finish and exit; record the end so a later worker does it if not."""
    session_id = validate_session_id(payload.get("session_id"))
    reason = end_reason(payload)
    from .. import launch

    has_work = recorded("session-end", payload, settings)
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
    "pre-tool-use": on_pre_tool_use,
    "post-tool-use": on_post_tool_use,
    "stop": on_stop,
    "session-end": on_session_end,
}


