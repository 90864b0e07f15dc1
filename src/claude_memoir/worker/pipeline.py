"""The worker's work: spooled payloads → rows, events → observations, prompts → summaries.

Everything it does is read from, and committed to, the store: a worker that
starts late (its predecessor killed, a message lost) does exactly the same
work, and a crash between two steps repeats none and loses none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial
from typing import Any

from .. import launch, spool
from ..agent.digest import NOTHING_TO_SUMMARIZE, fallback_summary
from ..agent.models import Observation
from ..agent.prompts import EventView, observation_prompt, summary_prompt
from ..config import Settings
from ..errors import AgentError, InvalidInput
from ..log import get_logger
from ..paths import validate_session_id
from ..store import EventRow, SessionRow, Store
from .conversation import Conversation
from .storethread import StoreThread

log = get_logger("claude_memoir.worker")

# Events per observation message: enough to batch a burst, small enough that
# one reply stays short and a failure retries little.
BATCH_SIZE = 20


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


def _note_attempt(store: Store, *, ids: Sequence[int]) -> int:
    return store.note_attempt(ids)


def _record_observations(store: Store, *, session_id: int, ids: Sequence[int],
                         observations: Sequence[Observation], number: int) -> list[int]:
    return store.record_observations(session_id, ids, observations, number)


class Pipeline:
    """One session's durable work, done through its conversation with the agent."""

    def __init__(self, settings: Settings, session_id: str, db: StoreThread,
                 conversation: Conversation) -> None:
        self.settings = settings
        self.session_id = session_id
        self.db = db
        self.conversation = conversation

    async def replay_spool(self) -> None:
        """Record payloads hooks spooled while the database was locked.

        Any worker does it for every session (the spool is shared); the other
        sessions' workers are woken, or spawned, afterwards.
        """
        home, settings = self.settings.home, self.settings
        if not spool.pending(home):
            return
        from ..hooks.record import RECORDERS

        def replay(store: Store) -> list[str]:
            def record(event: str, payload: dict[str, Any]) -> str | None:
                recorder = RECORDERS.get(event)
                if recorder is None:
                    raise InvalidInput(f"unknown spooled event {event!r}", reason="bad-spool")
                recorder(store, payload, settings)
                return validate_session_id(payload.get("session_id"))

            return spool.replay(home, record)

        touched = await self.db.call(replay)
        log.info("replayed spooled payloads of %d session(s)", len(touched))
        for other in touched:
            if other != self.session_id:
                await asyncio.to_thread(launch.notify, home, other, {"type": "wake"},
                                        attempts=1, timeout=0.2)

    async def process(self, session: SessionRow, *, include_open: bool = False) -> None:
        """Do all durable work there is: observe pending events, summarize finished prompts.

        A reprocess request (``memoir reprocess``) also replaces fallback
        summaries with the agent's own, once per request.
        """
        reprocess = bool(session.reprocess_requested_at)
        if reprocess:
            self.conversation.retry_now()
        await self.drain(session)
        numbers = await self.db.call(lambda store: store.prompts_to_summarize(
            session.id, include_open=include_open, redo_fallback=reprocess))
        for number in numbers:
            await self.summarize(session, number)
        if reprocess:
            await self.db.call(lambda store: store.clear_reprocess(session.id))

    async def drain(self, session: SessionRow) -> None:
        """Turn every pending event into observations, in order, batch by batch."""
        while not self.conversation.gave_up():
            pending = await self.db.call(
                lambda store: store.pending_events(session.id, BATCH_SIZE))
            if not pending:
                return
            # One prompt per batch, so each observation belongs to one prompt.
            number = pending[0].prompt_number
            batch = [e for e in pending if e.prompt_number == number]
            ids = [e.id for e in batch]
            text = observation_prompt([event_view(e) for e in batch],
                                      self.settings.max_field_chars)
            try:
                reply = await self.conversation.ask(text)
            except AgentError as e:
                log.warning("agent failed on events %s..%s of %s: %s",
                            ids[0], ids[-1], self.session_id, e)
                parked = await self.db.call(partial(_note_attempt, ids=ids))
                if parked:
                    log.warning("session %s: %d event(s) parked as failed after repeated "
                                "failures (memoir reprocess retries them)", self.session_id,
                                parked)
                if not self.conversation.gave_up():  # back off 1 s, 2 s, ... then retry
                    await asyncio.sleep(min(2 ** (self.conversation.failures - 1), 10))
                continue
            from ..agent.parser import parse_observations  # ~8 ms of regexes, not at start

            observations = parse_observations(reply)
            await self.db.call(partial(_record_observations, session_id=session.id, ids=ids,
                                       observations=observations, number=number))
            log.info("session %s: %d event(s) -> %d observation(s)",
                     self.session_id, len(ids), len(observations))

    async def summarize(self, session: SessionRow, prompt_number: int) -> None:
        """Write the summary of one prompt (the agent's, or a fallback from raw events)."""
        prompt, response = await self.db.call(lambda store: (
            store.prompt_text(session.id, prompt_number),
            store.prompt_response(session.id, prompt_number)))
        summary = None
        note = None
        if not self.conversation.gave_up():
            text = summary_prompt(prompt_number, prompt, self.settings.max_field_chars)
            if response:
                text += ("\n\nClaude's final reply to the user for this request "
                         "(for context):\n" + response[: self.settings.max_field_chars])
            try:
                reply = await self.conversation.ask(text)
            except AgentError as e:
                log.warning("agent failed to summarize prompt %d of %s: %s",
                            prompt_number, self.session_id, e)
            else:
                from ..agent.parser import parse_summary

                summary = parse_summary(reply)
                if summary is None and "<skip_summary" in reply:
                    note = NOTHING_TO_SUMMARIZE
            if summary is None and note is None:
                log.warning("no usable summary for prompt %d of %s", prompt_number,
                            self.session_id)
        if summary is not None:
            agent_summary = summary
            await self.db.call(lambda store: store.save_summary(
                session.id, prompt_number, agent_summary, "agent"))
            log.info("session %s: summary of prompt %d stored", self.session_id, prompt_number)
            return
        events = await self.db.call(
            lambda store: store.events_for_prompt(session.id, prompt_number))
        digest = fallback_summary(prompt, response, events, **({"note": note} if note else {}))
        await self.db.call(lambda store: store.save_summary(
            session.id, prompt_number, digest, "fallback"))
        log.info("session %s: fallback summary of prompt %d stored",
                 self.session_id, prompt_number)
