"""The memory agent's conversation: start, resume, bound, roll over, cool down.

Every request to the LLM resends the whole conversation, so its size is
counted (system prompt, messages, replies) and stored with the agent's session
id; before a message would take it past ``agent_context_limit`` the
conversation is closed and a fresh one starts, introduced by a bounded recap of
the session. Failures are counted: after ``MAX_AGENT_FAILURES`` in a row the
worker stops asking (fallback summaries) for ``AGENT_COOLDOWN`` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from ..agent.client import MemoryAgent
from ..agent.models import AgentReply
from ..agent.prompts import SYSTEM_PROMPT, init_prompt, session_recap
from ..agent.transcripts import remove_transcript
from ..config import Settings
from ..errors import AgentError, MemoirError
from ..log import get_logger
from ..paths import agent_dir
from ..store import SessionRow, Store
from .storethread import StoreThread

if TYPE_CHECKING:
    from ..store.usage import RequestKind

log = get_logger("claude_memoir.worker")

class AgentFactory(Protocol):
    """Builds the session's agent: model, working directory, session to resume, project."""

    def __call__(self, model: str, cwd: Path, resume: str | None,
                 project: str | None = None) -> MemoryAgent: ...

AgentState = Literal["not-started", "starting", "ready", "busy", "failed"]

# Agent failures in a row before the worker stops asking and falls back...
MAX_AGENT_FAILURES = 3
# ... for this long; then it tries again, so a short outage does not condemn the
# rest of a long session to fallback summaries.
AGENT_COOLDOWN = 60.0
# A fresh agent conversation's recap of the session gets at most this share of
# agent_context_limit, so a rollover always leaves most of the limit free.
RECAP_SHARE = 4
# Recap budget when agent_context_limit is 0 (a fresh conversation then only
# follows a resume the CLI rejected).
UNBOUNDED_RECAP_CHARS = 15_000


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


class Conversation:
    """One session's conversation with its memory agent."""

    def __init__(self, settings: Settings, session_id: str, db: StoreThread,
                 agent_factory: AgentFactory,
                 on_agent_pids: Callable[[tuple[int, ...]], None]) -> None:
        self.settings = settings
        self.session_id = session_id
        self.db = db
        self.agent_factory = agent_factory
        self._on_agent_pids = on_agent_pids
        # The session's row as last read; the worker refreshes it every pass.
        self.session: SessionRow | None = None
        self.agent: MemoryAgent | None = None
        self.state: AgentState = "not-started"
        self.failures = 0
        self.last_failure = 0.0
        # Why the last request failed (the AgentError's text), for the notes of
        # a fallback summary and `memoir reprocess`.
        self.last_error = ""
        self._introduced = False
        # Characters of the current conversation (system prompt, messages
        # sent, replies), which every request resends; persisted with the
        # agent session id so a resuming worker keeps counting.
        self.context_chars = 0
        self.rollovers = 0
        # True until this worker recorded a success after its last failure:
        # one health write per start and per recovery, not one per request.
        self._health_unknown = True

    def adopt(self, session: SessionRow) -> None:
        """Start from the stored session: a conversation to resume keeps its size."""
        self.session = session
        if session.agent_session_id:
            self.context_chars = session.agent_context_chars or 0

    def retry_now(self) -> None:
        """Forget past failures (``memoir reprocess``: the user asked for another try)."""
        self.failures = 0

    def gave_up(self) -> bool:
        """True while the agent failed too often in a row and cools down."""
        if self.failures < MAX_AGENT_FAILURES:
            return False
        if time.monotonic() - self.last_failure >= AGENT_COOLDOWN:
            self.failures = MAX_AGENT_FAILURES - 1  # one more try, then cool down again
            return False
        return True

    async def ask(self, text: str, *, kind: RequestKind = "observe", events: int = 0) -> str:
        """Send one message to the agent (starting it if needed); track failures.

        A message that would take the conversation past ``agent_context_limit``
        goes to a fresh conversation instead (``_rollover``), which a recap of
        the session introduces. The request's usage, as the SDK reports it, is
        stored (``kind`` and ``events``: what it asked for) before the reply is
        returned, so the budget sees it before the next request.
        """
        assert self.session is not None
        limit = self.settings.agent_context_limit
        if limit and self._open() and self.context_chars + len(text) > limit:
            await self._rollover(len(text))
        fresh = False
        try:
            agent = await self._ensure_agent()
            if not self._introduced:
                text = await self._introduction() + "\n\n" + text
                self._introduced = fresh = True
            self.state = "busy"
            answer = await agent.ask(text, self.settings.agent_timeout)
        except AgentError as e:
            self.failures += 1
            self.last_failure = time.monotonic()
            self.last_error = str(e)[:300]
            self.state = "failed"
            # The CLI may have kept the message in the transcript that a resume
            # continues: count it, so the bound errs towards an early rollover.
            self.context_chars += len(text)
            failed = self.agent.session_id if self.agent is not None else None
            await self.close()
            assert self.session is not None
            if failed and failed != self.session.agent_session_id:
                # A conversation nobody will resume (its id was never saved):
                # its transcript would sit in the user's session lists.
                await asyncio.to_thread(remove_transcript, self.settings.home, failed)
            await self._record_health(e)
            raise
        self.state = "ready"
        self.failures = 0
        reply = answer.text
        self.context_chars += (len(SYSTEM_PROMPT) if fresh else 0) + len(text) + len(reply)
        await self._save(agent.session_id or self.session.agent_session_id,
                         agent_ok=self._health_unknown)
        self._health_unknown = False
        await self._record_usage(answer, kind, events, agent.session_id)
        return reply

    async def close(self) -> None:
        """Close the agent (its process too); the next ask starts or resumes one."""
        agent, self.agent = self.agent, None
        self._introduced = False
        if agent is not None:
            await agent.close()

    async def forget(self) -> None:
        """End the conversation for good: close it, delete its transcript, forget its id.

        For a finished session. The transcript exists only so a conversation
        can be resumed; kept, it would sit among the user's Claude Code
        sessions. A later worker of this session (``memoir reprocess``, a
        resumed Claude Code session) starts a fresh conversation with a recap.
        """
        assert self.session is not None
        agent_session = (self.agent.session_id if self.agent else None) \
            or self.session.agent_session_id
        await self.close()
        if agent_session:
            await asyncio.to_thread(remove_transcript, self.settings.home, agent_session)
        self.context_chars = 0
        await self._save(None)

    # -- internals -----------------------------------------------------------

    async def _record_usage(self, answer: AgentReply, kind: RequestKind, events: int,
                            agent_session: str | None) -> None:
        usage = answer.usage
        if usage is None:
            log.warning("session %s: the agent reported no usage for a %s request",
                        self.session_id, kind)
            return
        assert self.session is not None
        row_id, model = self.session.id, self.settings.model

        def record(store: Store) -> float | None:
            return store.record_agent_request(row_id, kind=kind, events=events, model=model,
                                              agent_session_id=agent_session, usage=usage)

        cost = await self.db.call(record)
        log.info("session %s: %s request (%d event(s)): %d in, %d cache read, %d cache write, "
                 "%d out tokens, %s", self.session_id, kind, events, usage.input_tokens,
                 usage.cache_read_tokens, usage.cache_write_tokens, usage.output_tokens,
                 "cost not reported" if cost is None else f"${cost:.4f}")

    async def _record_health(self, error: AgentError) -> None:
        """Record the agent's failure and why, where `memoir status` sees it.

        A log line alone left users with fallback summaries and no idea why
        ("not logged in", "connection refused"). A store that cannot take the
        record must not turn an agent failure into a worker failure.
        """
        from ..agent.failures import classify

        session = self.session_id
        try:
            kind = classify(error)
            message = str(error)
            await self.db.call(
                lambda store: store.record_failure("agent", kind, message, session))
            self._health_unknown = True
        except MemoirError as e:
            log.warning("session %s: cannot record the agent's health: %s", session, e)

    async def _save(self, agent_session: str | None, agent_ok: bool = False) -> None:
        session_id, chars = self.session_id, self.context_chars
        assert self.session is not None
        row_id = self.session.id

        def save(store: Store) -> SessionRow | None:
            store.set_agent_context(row_id, agent_session, chars)
            if agent_ok:
                # The agent answered: clears a failure `memoir status` reports
                # (in this call, not a transaction of its own per reply).
                store.record_ok("agent")
            return store.get_session(session_id)

        self.session = await self.db.call(save) or self.session

    def _open(self) -> bool:
        """True if the next message continues a conversation (live, or to resume)."""
        assert self.session is not None
        if self.agent is not None:
            return self._introduced
        return bool(self.session.agent_session_id)

    async def _ensure_agent(self) -> MemoryAgent:
        if self.agent is not None:
            return self.agent
        assert self.session is not None
        resume = self.session.agent_session_id
        self.state = "starting"
        home = Path(agent_dir(self.settings.home))
        agent = self.agent_factory(self.settings.model, home, resume, self.session.cwd or None)
        try:
            await agent.start()
        except AgentError as e:
            if not resume:
                self.state = "failed"
                raise
            # A resume the CLI rejects (transcript gone, another machine) must
            # not cost the session its memory: start fresh once.
            log.warning("agent resume %s failed (%s); starting a fresh agent session",
                        resume, e)
            await asyncio.to_thread(remove_transcript, self.settings.home, resume)
            agent = self.agent_factory(self.settings.model, home, None,
                                       self.session.cwd or None)
            await agent.start()
            resume = None
        self.agent = agent
        self.state = "ready"
        self._introduced = bool(resume)
        if not resume:
            self.context_chars = 0  # a new conversation: nothing to resend yet
        self._record_agent_pids()
        return agent

    def _record_agent_pids(self) -> None:
        # The SDK hides its CLI child's pid; find it among our children so the
        # pid file and `memoir status` name it and cleanup can reap it.
        try:
            import psutil

            self._on_agent_pids(tuple(c.pid for c in psutil.Process().children()))
        except Exception as e:  # bookkeeping only
            log.debug("cannot record agent pids: %s", e)

    async def _introduction(self) -> str:
        """The init prompt of a fresh conversation, with a bounded recap of the session."""
        assert self.session is not None
        session = self.session
        limit = self.settings.agent_context_limit
        budget = limit // RECAP_SHARE if limit else UNBOUNDED_RECAP_CHARS

        def gather(store: Store) -> tuple[str, str | None]:
            recap = session_recap(store.observations_for_session(session.id),
                                  store.summaries_for_session(session.id), budget)
            return recap, store.prompt_text(session.id, 1)

        recap, first = await self.db.call(gather)
        return init_prompt(session.project, first, _now_iso(), recap=recap)

    async def _rollover(self, incoming: int) -> None:
        """Close the conversation and forget it: the next ask starts a fresh one.

        The stored agent session id goes with it, so a worker started after a
        crash does not resume the long conversation either.
        """
        before = self.context_chars
        assert self.session is not None
        old = (self.agent.session_id if self.agent else None) or self.session.agent_session_id
        await self.close()
        self.context_chars = 0
        await self._save(None)
        if old:  # replaced for good: its transcript has no use left
            await asyncio.to_thread(remove_transcript, self.settings.home, old)
        self.rollovers += 1
        log.info("session %s: agent conversation holds %d chars and the next message %d "
                 "(limit %d); starting a fresh conversation with a recap (rollover %d)",
                 self.session_id, before, incoming, self.settings.agent_context_limit,
                 self.rollovers)
