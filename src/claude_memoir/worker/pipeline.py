"""The worker's work: spooled payloads → rows, events → observations, prompts → summaries.

Everything it does is read from, and committed to, the store: a worker that
starts late (its predecessor killed, a message lost) does exactly the same
work, and a crash between two steps repeats none and loses none.

Prompts are worked through one at a time, oldest first, so each summary covers
exactly its own prompt's events (events already queued for the next prompt
wait until the earlier prompt is summarized). How events reach the agent
depends on ``capture``:

* ``prompt`` (default): a prompt's events wait until the prompt is closed
  (Stop finished it, a later prompt began, or the session ends) and then go in
  one request together with its summary request; a long prompt sends earlier
  once its pending events pass ``batch_chars`` or the oldest is
  ``batch_seconds`` old. One request carries at most ``batch_chars`` of
  events; a larger batch goes in several, the summary with the last.
* ``live``: every pass sends what is pending (at most ``BATCH_SIZE`` events a
  message), and a closed prompt gets a summary request of its own.

The decision reads only durable state (prompt finished, pending events, their
size and age), so a restarted worker makes the same one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

from .. import launch, spool
from ..agent.digest import NOTHING_TO_SUMMARIZE, UNAVAILABLE, fallback_summary
from ..agent.models import Observation, Summary
from ..agent.prompts import EventView, batch_prompt, event_chars, observation_prompt
from ..budget import budget_status
from ..config import Settings, load_settings
from ..errors import AgentError
from ..log import get_logger
from ..store import EventRow, PromptWork, SessionRow, Store
from ..values import Record
from .conversation import Conversation
from .storethread import StoreThread

if TYPE_CHECKING:
    from ..store.usage import RequestKind

log = get_logger("claude_memoir.worker")

# Live capture: events per observation message, enough to batch a burst, small
# enough that one reply stays short and a failure retries little.
BATCH_SIZE = 20
# Prompt capture: most events in one message, whatever their size (a reply
# holds at most parser.MAX_OBSERVATIONS observations).
MAX_BATCH_EVENTS = 200


def event_view(ev: EventRow) -> EventView:
    """What the agent is shown of a stored event."""
    return EventView(
        id=ev.id,
        tool_name=ev.tool_name,
        tool_input=ev.tool_input,
        tool_response=ev.tool_response,
        failed=ev.failed,
        error=ev.error,
        prompt_number=ev.prompt_number,
        created_at=ev.created_at,
    )


def _budget_settings(started_with: Settings) -> Settings:
    """The settings as they are now: a budget set or lowered in settings.json while a
    worker runs applies to its next request, not to its next session. (The
    environment is the one the worker started with.)"""
    try:
        return load_settings()
    except Exception:  # noqa: BLE001 - config is defensive; keep what the worker had
        return started_with


def _note_attempt(store: Store, *, ids: Sequence[int]) -> int:
    return store.note_attempt(ids)


def _record_observations(store: Store, *, session_id: int, ids: Sequence[int],
                         observations: Sequence[Observation], number: int,
                         summary: Summary | None) -> list[int]:
    return store.record_observations(session_id, ids, observations, number, summary)


class Blocked(Record):
    """Why the worker does not call the LLM now, and what the fallback says."""

    note: str
    # The daily budget (not an outage): the prompt's events are set aside.
    budget: bool


def _pending_of_prompt(store: Store, *, session_id: int, number: int) -> list[EventRow]:
    return store.pending_events_of_prompt(session_id, number, MAX_BATCH_EVENTS + 1)


def _age_seconds(stamp: str | None) -> float:
    """Seconds since a store timestamp (UTC ISO 8601); 0 if it cannot be read."""
    if not stamp:
        return 0.0
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return (datetime.now(UTC) - then).total_seconds()


class Pipeline:
    """One session's durable work, done through its conversation with the agent."""

    def __init__(self, settings: Settings, session_id: str, db: StoreThread,
                 conversation: Conversation) -> None:
        self.settings = settings
        self.session_id = session_id
        self.db = db
        self.conversation = conversation
        # The last reason the LLM was not called (budget, outage): logged once
        # when it starts, not on every pass.
        self._blocked_reason: str | None = None
        # Pending events held back for their prompt's batch as of the last
        # pass (what `memoir status` shows next to the pending count).
        self.held = 0

    async def replay_spool(self) -> None:
        """Record payloads hooks spooled while the database was locked.

        Any worker does it for every session (the spool is shared; a lock lets
        one replayer through at a time); the other sessions' workers are
        woken, or spawned, afterwards.
        """
        home, settings = self.settings.home, self.settings
        if not spool.pending(home):
            return
        from ..hooks.record import replay_item

        def replay(store: Store) -> list[str] | None:
            return spool.replay(home, lambda item: replay_item(store, item, settings))

        touched = await self.db.call(replay)
        if touched is None:
            log.debug("another process is replaying the spool")
            return
        log.info("replayed spooled payloads of %d session(s)", len(touched))
        for other in touched:
            if other != self.session_id:
                await asyncio.to_thread(launch.notify, home, other, {"type": "wake"},
                                        attempts=1, timeout=0.2)

    async def process(self, session: SessionRow, *, include_open: bool = False) -> None:
        """Do all durable work that is due: observe events, summarize closed prompts.

        ``include_open``: the session ends, so an unfinished prompt is closed
        too. A reprocess request (``memoir reprocess``) also replaces fallback
        summaries with the agent's own, once per request.
        """
        reprocess = bool(session.reprocess_requested_at)
        if reprocess:
            self.conversation.retry_now()
        limit = self.settings.max_field_chars

        def plan(store: Store) -> tuple[list[PromptWork], int]:
            return (store.prompt_work(session.id, field_chars=limit, redo_fallback=reprocess),
                    store.current_prompt_number(session.id))

        works, latest = await self.db.call(plan)
        self.held = 0
        for work in works:
            # A prompt is closed once Stop finished it or a later prompt began
            # (an interrupted turn gets no Stop): no event can join it any more.
            closed = work.finished or work.number < latest or include_open
            if not await self._work_on(session, work, closed, reprocess):
                break  # its events wait for their batch: later prompts wait behind it
        if reprocess:
            await self.db.call(lambda store: store.clear_reprocess(session.id))

    def _due(self, work: PromptWork) -> bool:
        """Whether an open prompt's pending events should go now (prompt capture)."""
        if not work.pending:
            return False
        size = self.settings.batch_chars
        return (bool(size) and work.pending_chars >= size) or \
            _age_seconds(work.oldest_pending_at) >= self.settings.batch_seconds

    def _fit(self, events: Sequence[EventRow]) -> list[EventRow]:
        """The oldest events that fit in one message of ``batch_chars`` (at least one)."""
        size, limit = self.settings.batch_chars, self.settings.max_field_chars
        batch: list[EventRow] = []
        total = 0
        for event in events[:MAX_BATCH_EVENTS]:
            chars = event_chars(event_view(event), limit)
            if batch and size and total + chars > size:
                break
            batch.append(event)
            total += chars
        return batch

    async def _work_on(self, session: SessionRow, work: PromptWork, closed: bool,
                       reprocess: bool) -> bool:
        """Send one prompt's due events (and, once it is closed, its summary request).

        False when its events are left waiting for their batch to be due.
        """
        live = self.settings.capture == "live"
        needs_summary = closed and work.recorded and work.did_work and (
            work.summary_kind is None or (reprocess and work.summary_kind == "fallback"))
        if not closed and not live and not self._due(work):
            self.held = work.pending
            return False
        while True:
            blocked = await self._blocked()
            if blocked is not None:
                if closed:
                    await self._fall_back(session, work.number, needs_summary, blocked.note,
                                          park=blocked.budget)
                return True
            events = await self.db.call(partial(_pending_of_prompt, session_id=session.id,
                                                number=work.number))
            batch = events[:BATCH_SIZE] if live else self._fit(events)
            last = len(batch) == len(events)
            summarize = needs_summary and last and not (live and batch)
            if not batch and not summarize:
                return True
            if not await self._send(session, work.number, batch, summarize):
                continue  # failed: retried until the agent is given up on
            if summarize:
                return True
            if not closed and not live and last:
                return False  # sent what was due; what arrived meanwhile waits its turn

    async def _blocked(self) -> Blocked | None:
        """Why the LLM must not be called now (None: it may be)."""
        blocked: Blocked | None = None
        if self.conversation.gave_up():
            # The fallback's notes say why, so `memoir show` and `memoir reprocess`
            # can tell the user ("not logged in", "connection refused", ...).
            why = self.conversation.last_error or "it failed"
            blocked = Blocked(note=f"{UNAVAILABLE.rstrip('.')}: {why} (several failures in "
                                   "a row; cooling down)", budget=False)
        elif (settings := _budget_settings(self.settings)).daily_budget_usd > 0 \
                or settings.daily_budget_tokens > 0:
            status = await self.db.call(lambda store: budget_status(store, settings))
            if status.reached:
                blocked = Blocked(note="Fallback summary built from raw events; the memory "
                                       f"agent was not called: {status.reason}. "
                                       "`memoir reprocess` replaces it.", budget=True)
        reason = blocked.note if blocked else None
        if reason != self._blocked_reason:
            if reason is not None:
                log.warning("session %s: not calling the memory agent: %s", self.session_id,
                            reason)
            elif self._blocked_reason is not None:
                log.info("session %s: calling the memory agent again", self.session_id)
            self._blocked_reason = reason
        return blocked

    async def _send(self, session: SessionRow, number: int, batch: Sequence[EventRow],
                    summarize: bool) -> bool:
        """One request: ``batch`` (may be empty) and, with ``summarize``, the summary.

        Its observations, the events marked processed and the summary are
        stored in one transaction. False if the agent failed (the events stay
        pending, their attempt counted, after a backoff).
        """
        ids = [e.id for e in batch]
        views = [event_view(e) for e in batch]
        limit = self.settings.max_field_chars
        if summarize:
            prompt, response = await self.db.call(lambda store: (
                store.prompt_text(session.id, number), store.prompt_response(session.id, number)))
            text = batch_prompt(views, limit, number, prompt, response)
        else:
            text = observation_prompt(views, limit)
        kind: RequestKind = ("observe+summary" if batch else "summary") if summarize \
            else "observe"
        try:
            reply = await self.conversation.ask(text, kind=kind, events=len(batch))
        except AgentError as e:
            what = f"events {ids[0]}..{ids[-1]}" if ids else f"the summary of prompt {number}"
            log.warning("agent failed on %s of %s: %s", what, self.session_id, e)
            if ids:
                parked = await self.db.call(partial(_note_attempt, ids=ids))
                if parked:
                    log.warning("session %s: %d event(s) parked as failed after repeated "
                                "failures (memoir reprocess retries them)", self.session_id,
                                parked)
            if not self.conversation.gave_up():  # back off 1 s, 2 s, ... then retry
                await asyncio.sleep(min(2 ** (self.conversation.failures - 1), 10))
            return False
        from ..agent.parser import parse_reply  # ~8 ms of regexes, not at start

        parsed = parse_reply(reply)
        summary = parsed.summary if summarize else None
        if batch:
            await self.db.call(partial(_record_observations, session_id=session.id, ids=ids,
                                       observations=parsed.observations, number=number,
                                       summary=summary))
            log.info("session %s: %d event(s) of prompt %d -> %d observation(s)%s",
                     self.session_id, len(ids), number, len(parsed.observations),
                     " and its summary" if summary is not None else "")
        elif summary is not None:
            await self.db.call(lambda store: store.save_summary(session.id, number, summary,
                                                                "agent"))
            log.info("session %s: summary of prompt %d stored", self.session_id, number)
        if summarize and summary is None:
            if parsed.skipped_summary:
                await self._fall_back(session, number, True, NOTHING_TO_SUMMARIZE)
            elif batch:
                # The events are stored; ask for the summary alone, once.
                log.warning("session %s: no summary in the reply for prompt %d; asking "
                            "again", self.session_id, number)
                return await self._send(session, number, [], True)
            else:
                log.warning("no usable summary for prompt %d of %s", number,
                            self.session_id)
                await self._fall_back(session, number, True, f"{UNAVAILABLE.rstrip('.')}: its "
                                      "reply held no <summary> block")
        return True

    async def _fall_back(self, session: SessionRow, number: int, summarize: bool,
                         note: str, *, park: bool = False) -> None:
        """Write a closed prompt's summary from its raw events, without the LLM.

        ``park`` (the budget is reached): its pending events are set aside too,
        so nothing spends on them unasked; ``memoir reprocess`` queues them
        again and replaces the summary.
        """

        def write(store: Store) -> None:
            if park:
                pending = store.pending_events_of_prompt(session.id, number, 1_000_000)
                store.park_events([e.id for e in pending])
            if summarize:
                events = store.events_for_prompt(session.id, number)
                digest = fallback_summary(store.prompt_text(session.id, number),
                                          store.prompt_response(session.id, number), events,
                                          note=note)
                store.save_summary(session.id, number, digest, "fallback")

        await self.db.call(write)
        if summarize:
            log.info("session %s: fallback summary of prompt %d stored", self.session_id,
                     number)
