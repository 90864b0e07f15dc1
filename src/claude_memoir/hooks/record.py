"""Recording: a payload's durable effect on the store, and nothing else.

Each recorder turns one hook's payload into rows (a prompt, a tool event, a
finished turn, an end request). Hooks call them through :func:`recorded`, which
spools the payload when the database stays locked; the worker calls the same
recorders to replay the spool, so a spooled payload lands exactly as it would
have.
"""

from __future__ import annotations

import json

from ..errors import InvalidInput, MemoirError, StoreError
from ..log import get_logger
from ..paths import validate_session_id
from ..recall.project import project_key
from .payload import clean_text, clean_value, end_reason, project_dir, str_field

# Runs on every tool call: only the standard library's cheapest modules and this
# package's light ones at run time (no typing, logging, pathlib, dataclasses;
# tests/hooks/test_imports.py holds the line). Type names exist for checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..config import Settings
    from ..store import Store

    Payload = dict[str, Any]


log = get_logger(__name__)

# Seconds a hook waits on a locked database before it spools the payload.
HOOK_BUSY_TIMEOUT = 1.5


def record_user_prompt(store: Store, payload: Payload, settings: Settings) -> int:
    """Upsert the session and store the prompt under its number; return the number."""
    session_id = validate_session_id(payload.get("session_id"))
    prompt = payload.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidInput("payload has no prompt string", reason="bad-payload")
    session = store.upsert_session(session_id, project_key(project_dir(payload)),
                                   str_field(payload, "cwd"))
    number = store.add_prompt(session.id, clean_text(prompt, settings))
    log.info("session %s: prompt %d recorded", session_id, number)
    return number


def record_tool_event(store: Store, payload: Payload, settings: Settings) -> bool:
    """Queue the tool event durably; return whether it was queued (not a repeat)."""
    session_id = validate_session_id(payload.get("session_id"))
    tool_name = str_field(payload, "tool_name")
    if not tool_name:
        raise InvalidInput("payload has no tool_name", reason="bad-payload")
    if tool_name in settings.skip_tools:
        log.debug("session %s: %s is not observed (MEMOIR_SKIP_TOOLS)", session_id, tool_name)
        return False
    failed = payload.get("hook_event_name") == "PostToolUseFailure" or "error" in payload
    error = payload.get("error")
    tool_use_id = payload.get("tool_use_id")
    session = store.get_session(session_id)
    if session is None:
        # memoir was installed mid-session, or UserPromptSubmit failed:
        # still keep the event, under prompt 0.
        session = store.upsert_session(
            session_id, project_key(project_dir(payload)), str_field(payload, "cwd"))
    if error is not None and not isinstance(error, str):
        error = json.dumps(error, default=str)
    event_id = store.add_event(
        session.id,
        store.current_prompt_number(session.id),
        tool_name,
        clean_value(payload.get("tool_input"), settings),
        clean_value(payload.get("tool_response"), settings),
        tool_use_id=tool_use_id if isinstance(tool_use_id, str) else None,
        failed=failed,
        error=clean_text(error, settings) if error else None,
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
                        clean_text(reply, settings) if isinstance(reply, str) else None)
    return number


def record_session_end(store: Store, payload: Payload, settings: Settings) -> bool | None:
    """Record the end request; return whether work is left (None: unknown session)."""
    session_id = validate_session_id(payload.get("session_id"))
    session = store.get_session(session_id)
    if session is None:
        return None
    store.request_end(session.id, end_reason(payload))
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


def recorded(event: str, payload: Payload, settings: Settings,
             after: Callable[[Store], None] | None = None) -> Any:
    """Run ``event``'s recorder on the store, guarded for a busy or damaged database.

    Busy past HOOK_BUSY_TIMEOUT: spool the payload (the worker replays it) and
    return SPOOLED. Damaged: quarantine the file and try once more on a fresh
    one. Either way the hook returns in bounded time and the record survives.

    ``after`` runs on the same connection once the record is committed (a hook
    that also reads, such as prompt-time recall, spares itself a second open);
    its errors are logged, never raised: the record stands.
    """
    from ..paths import db_path
    from ..store import Store, quarantine

    for attempt in (1, 2):
        try:
            with Store.open(settings.home, timeout=HOOK_BUSY_TIMEOUT) as store:
                result = RECORDERS[event](store, payload, settings)
                if after is not None:
                    try:
                        after(store)
                    except MemoirError as e:
                        log.warning("%s: after recording, %s failed (%s): %s", event,
                                    getattr(after, "__name__", "a step"), e.reason, e)
                return result
        except StoreError as e:
            if e.reason == "busy":
                from .. import spool

                spool.write(settings.home, event, payload)
                return SPOOLED
            if e.reason == "corrupt" and attempt == 1:
                quarantine(db_path(settings.home))
                continue
            raise
    raise AssertionError("unreachable")


