"""Recording: a payload's durable effect on the store, and nothing else.

Each recorder turns one hook's payload into rows (a prompt, a tool event, a
finished turn, an end request). Hooks call them through :func:`recorded`, which
spools the payload when the database stays locked; the worker calls the same
recorders to replay the spool, so a spooled payload lands exactly as it would
have.
"""

from __future__ import annotations

import json
import os

from ..errors import InvalidInput, MemoirError, StoreError
from ..log import get_logger
from ..paths import validate_session_id
from .payload import (
    clean_payload,
    clean_text,
    clean_value,
    end_reason,
    project_dir,
    str_field,
)

# Runs on every tool call: only the standard library's cheapest modules and this
# package's light ones at run time (no typing, logging, pathlib, dataclasses;
# tests/hooks/test_imports.py holds the line). Type names exist for checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..config import Settings
    from ..spool import SpoolItem
    from ..store.hookstore import HookStore

    Payload = dict[str, Any]


log = get_logger(__name__)

# Seconds a hook waits on a locked database before it spools the payload.
HOOK_BUSY_TIMEOUT = 1.5
# Spooled payloads a hook replays itself when it finds a spool waiting and the
# database free: enough to empty a spool left by a short lock, few enough to
# keep the hook's time bounded (~5 ms each).
HOOK_REPLAY_LIMIT = 20

# Every recorder takes, besides the store, payload and settings, what a spooled
# payload carries from its hook: ``project`` (the hook's project directory; the
# replaying worker's environment is another session's) and ``at`` (when it was
# spooled: the prompt current then is the one it belongs to). A hook recording
# live passes neither.


def _project(payload: Payload, project: str | None) -> str:
    """The payload's project key (imported here: Stop and most tool events never need it)."""
    from ..recall.project import project_key

    return project_key(project or project_dir(payload))


def _prompt_number(store: HookStore, session_id: int, at: str | None) -> int:
    if at is None:
        return store.current_prompt_number(session_id)
    return store.prompt_number_at(session_id, at)


def record_user_prompt(store: HookStore, payload: Payload, settings: Settings, *,
                       project: str | None = None, at: str | None = None) -> int:
    """Upsert the session and store the prompt under its number; return the number.

    A replayed prompt (``at``) keeps its spool time as its creation time and
    is stored once however often it is replayed.
    """
    session_id = validate_session_id(payload.get("session_id"))
    prompt = payload.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidInput("payload has no prompt string", reason="bad-payload")
    _, number = store.record_prompt(session_id, _project(payload, project),
                                    str_field(payload, "cwd"), clean_text(prompt, settings),
                                    created_at=at)
    log.info("session %s: prompt %d recorded", session_id, number)
    return number


def record_tool_event(store: HookStore, payload: Payload, settings: Settings, *,
                      project: str | None = None, at: str | None = None) -> bool:
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
            session_id, _project(payload, project), str_field(payload, "cwd"))
    if error is not None and not isinstance(error, str):
        error = json.dumps(error, default=str)
    event_id = store.add_event(
        session.id,
        _prompt_number(store, session.id, at),
        tool_name,
        clean_value(payload.get("tool_input"), settings),
        clean_value(payload.get("tool_response"), settings),
        tool_use_id=tool_use_id if isinstance(tool_use_id, str) else None,
        failed=failed,
        error=clean_text(error, settings) if error else None,
        dedupe=True,
        max_events=settings.max_events,
    )
    return event_id is not None  # None: a repeat (the store logged which)


def record_stop(store: HookStore, payload: Payload, settings: Settings, *,
                project: str | None = None, at: str | None = None) -> int | None:
    """Mark the current prompt finished (FINALIZE); return its number, None if unknown."""
    session_id = validate_session_id(payload.get("session_id"))
    session = store.get_session(session_id)
    if session is None:
        log.info("stop for unknown session %s; nothing to finalize", session_id)
        return None
    number = _prompt_number(store, session.id, at)
    reply = payload.get("last_assistant_message")
    store.finish_prompt(session.id, number,
                        clean_text(reply, settings) if isinstance(reply, str) else None)
    return number


def record_session_end(store: HookStore, payload: Payload, settings: Settings, *,
                       project: str | None = None, at: str | None = None) -> bool | None:
    """Record the end request; return whether work is left (None: unknown session)."""
    session_id = validate_session_id(payload.get("session_id"))
    session = store.get_session(session_id)
    if session is None:
        return None
    store.request_end(session.id, end_reason(payload))
    return bool(store.count_pending(session.id)
                or store.prompts_to_summarize(session.id, include_open=True))


RECORDERS: dict[str, Callable[..., Any]] = {
    "user-prompt-submit": record_user_prompt,
    "post-tool-use": record_tool_event,
    "stop": record_stop,
    "session-end": record_session_end,
}


def replay_item(store: HookStore, item: SpoolItem, settings: Settings) -> str:
    """Record one spooled payload as its hook would have; return its session id."""
    recorder = RECORDERS.get(item.event)
    if recorder is None:
        raise InvalidInput(f"unknown spooled event {item.event[:40]!r}", reason="bad-spool")
    recorder(store, item.payload, settings, project=item.project_dir, at=item.spooled_at)
    return validate_session_id(item.payload.get("session_id"))


def spool_waiting(home: str) -> bool:
    """True if spooled payloads wait to be replayed (one listdir: cheap on every hook)."""
    try:
        return any(name.endswith(".json") for name in os.listdir(os.path.join(home, "spool")))
    except OSError:
        return False


class _Spooled:
    """The payload went to the spool: the database stayed locked."""


SPOOLED = _Spooled()


def _spool(event: str, payload: Payload, settings: Settings) -> _Spooled:
    from .. import spool

    spool.write(settings.home, event, clean_payload(payload, settings),
                project_dir=project_dir(payload))
    return SPOOLED


def _replay_first(store: HookStore, settings: Settings) -> bool:
    """Replay (a bounded part of) a waiting spool; True if none is left waiting.

    Order matters: a prompt still in the spool must be stored before the
    events that follow it, or they would land under the previous prompt. So
    while anything waits, a hook either empties the spool first or spools its
    own payload behind it. A worker holding the replay lock is on it: spool.
    """
    from .. import spool

    done = spool.replay(settings.home, lambda item: replay_item(store, item, settings),
                        limit=HOOK_REPLAY_LIMIT)
    return done is not None and not spool_waiting(settings.home)


def recorded(event: str, payload: Payload, settings: Settings,
             after: Callable[[HookStore], None] | None = None) -> Any:
    """Run ``event``'s recorder on the store, guarded for a busy or damaged database.

    Busy past HOOK_BUSY_TIMEOUT: spool the payload, bounded and redacted (the
    worker replays it) and return SPOOLED; the same while earlier payloads
    wait in the spool and cannot be replayed now, so records keep their order.
    Damaged: quarantine the file and try once more on a fresh one. Either way
    the hook returns in bounded time and the record survives.

    ``after`` runs on the same connection once the record is committed (a hook
    that also reads, such as prompt-time recall, spares itself a second open);
    its errors are logged, never raised: the record stands.
    """
    from ..paths import db_path
    from ..store.connection import quarantine
    from ..store.hookstore import HookStore

    for attempt in (1, 2):
        try:
            with HookStore.open(settings.home, timeout=HOOK_BUSY_TIMEOUT) as store:
                if spool_waiting(settings.home) and not _replay_first(store, settings):
                    return _spool(event, payload, settings)
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
                return _spool(event, payload, settings)
            if e.reason == "corrupt" and attempt == 1:
                quarantine(db_path(settings.home))
                continue
            raise
    raise AssertionError("unreachable")
