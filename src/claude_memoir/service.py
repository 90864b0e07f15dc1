"""The worker's service: socket server and work loop around the memory agent.

``python -m claude_memoir.worker`` (``worker.py``) takes the session's lock and
listens first; then it imports this module (asyncio, the agent's modules: most of
a worker's start-up) and runs a :class:`Worker` on the socket it already holds.
From then on the worker turns the session's durable work in SQLite into
observations and summaries:

* pending tool events → batched observation messages → observations (stored in
  the same transaction that marks the events processed);
* prompts that Stop finished → one summary each;
* an end request from SessionEnd (or the idle watchdog, or SIGTERM) → drain,
  summarize what is left, mark the session completed and exit.

Socket messages only wake it up; the database says what to do, so a worker that
starts late (its predecessor killed, a message lost) does exactly the same work.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import struct
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import ipc, launch, spool
from .agent import MemoryAgent, default_agent_factory
from .config import Settings
from .digest import fallback_summary
from .errors import AgentError, InvalidInput, IPCError, MemoirError
from .paths import agent_dir, pid_path, socket_path, validate_session_id
from .procs import PidRecord, create_time, is_alive, write_pid_file
from .prompts import (
    SYSTEM_PROMPT,
    EventView,
    init_prompt,
    observation_prompt,
    session_recap,
    summary_prompt,
)
from .store import EventRow, SessionRow, Store
from .worker import listen_on

# The worker process's logger (its records say "claude_memoir.worker").
log = logging.getLogger("claude_memoir.worker")

AgentFactory = Callable[[str, Path, "str | None"], MemoryAgent]

# Events per observation message: enough to batch a burst, small enough that
# one reply stays short and a failure retries little.
BATCH_SIZE = 20
# How often the loop wakes on its own to check the idle watchdog.
TICK = 1.0
# Seconds between a hook's wake-up and the work it triggers. The hook that woke
# us is still finishing (closing, printing, interpreter teardown) while the
# user's Claude Code waits for it; on a 2-core machine the worker and its
# agent CLI starting work at once measurably slowed that hook. Events that
# arrive meanwhile join the same batch.
WAKE_DELAY = 0.05
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
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _event_view(ev: EventRow) -> EventView:
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


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class Worker:
    """One session's worker: socket server + work loop around a memory agent."""

    def __init__(
        self,
        settings: Settings,
        session_id: str,
        *,
        agent_factory: AgentFactory = default_agent_factory,
        listener: socket.socket | None = None,
    ) -> None:
        self.settings = settings
        self.home = settings.home
        # A socket worker.main already bound and listens on (connections
        # queue in its backlog while this module loads); None: bind in listen().
        self._listener = listener
        self.session_id = validate_session_id(session_id)
        self.agent_factory = agent_factory
        self.socket_path = Path(socket_path(self.home, session_id))
        self.pid_path = Path(pid_path(self.home, session_id))
        self.store: Store | None = None
        self.session: SessionRow | None = None
        self.agent: MemoryAgent | None = None
        self.agent_state = "not-started"
        self.agent_failures = 0
        self.last_agent_failure = 0.0
        self.started = time.monotonic()
        self.last_activity = time.monotonic()
        self.stop_reason: str | None = None
        # The Claude Code process this session runs in: (pid, create time).
        self.parent: tuple[int, float] | None = None
        self.agent_pids: tuple[int, ...] = ()
        self.create_time: float = 0.0
        self._wake = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None
        self._introduced = False
        # Characters of the current agent conversation (system prompt, messages
        # sent, replies), which every request resends; persisted with the
        # agent session id so a resuming worker keeps counting.
        self.context_chars = 0
        self.rollovers = 0

    # -- requests ----------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """What ``ping`` reports."""
        pending = 0
        if self.store is not None and self.session is not None:
            try:
                pending = self.store.count_pending(self.session.id)
            except Exception:  # a ping must answer even if SQLite is busy
                pending = -1
        return {
            "session_id": self.session_id,
            "pid": os.getpid(),
            "uptime": round(time.monotonic() - self.started, 3),
            "idle": round(time.monotonic() - self.last_activity, 3),
            "pending": pending,
            "agent": self.agent_state,
            "agent_context_chars": self.context_chars,
            "agent_rollovers": self.rollovers,
            "agent_pids": list(self.agent_pids),
            "parent_pid": self.parent[0] if self.parent else None,
            "stopping": self.stop_reason,
        }

    def handle(self, message: dict[str, Any]) -> ipc.Ack:
        """Apply one request and return its ack (never raises)."""
        kind = message.get("type")
        if kind not in ipc.REQUEST_TYPES:
            return {"ok": False, "error": f"unknown request type {str(kind)[:40]!r}"}
        if kind == "ping":
            return {"ok": True, "type": "ping", "state": self.state()}
        self.last_activity = time.monotonic()
        claude_pid = message.get("claude_pid")
        if isinstance(claude_pid, int) and not isinstance(claude_pid, bool):
            self.adopt_parent(claude_pid)
        if kind == "finalize":
            number = message.get("prompt_number")
            if not isinstance(number, int) or isinstance(number, bool) or number < 0:
                return {"ok": False, "error": "finalize needs an integer prompt_number"}
        elif kind == "shutdown":
            self.request_stop(str(message.get("reason") or "shutdown")[:40])
        self._wake.set()
        return {"ok": True, "type": str(kind)}

    async def _serve_client(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        try:
            uid = _peer_uid(writer)
            if uid is not None and uid != os.getuid():
                log.warning("refused connection from uid %d", uid)
                return
            try:
                line = await asyncio.wait_for(reader.readline(), timeout=5)
            except (asyncio.LimitOverrunError, ValueError):
                ack: ipc.Ack = {"ok": False, "error": "message too large"}
            else:
                try:
                    ack = self.handle(ipc.decode(line.strip()))
                except IPCError as e:
                    ack = {"ok": False, "error": str(e)}
            writer.write(ipc.encode(dict(ack)))
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError, OSError) as e:
            log.debug("client connection dropped: %s", e)
        except Exception:  # the server must outlive any one client
            log.exception("error serving a client")
        finally:
            writer.close()

    def adopt_parent(self, pid: int) -> None:
        """Watch ``pid`` (a Claude Code process of this session) from now on.

        Hooks report their CLAUDE_PID; a session resumed in a new Claude Code
        process moves the worker's parent with it instead of ending the worker.
        """
        if pid <= 1 or (self.parent and self.parent[0] == pid):
            return
        started = create_time(pid)
        if started is None:
            return  # already gone: nothing to watch
        # The create time goes with the pid: if this pid is later reused by
        # another process, the watch sees a different process and ends.
        self.parent = (pid, started)
        log.info("session %s: watching Claude Code pid %d", self.session_id, pid)

    def request_stop(self, reason: str) -> None:
        """Ask the loop to finish the session's work and exit (signal-safe: sets flags)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._wake.set()

    # -- lifecycle -----------------------------------------------------------

    async def listen(self) -> None:
        """Serve the session's socket (0600): the listener given, or a fresh one."""
        if self._listener is None:
            self._listener = listen_on(self.socket_path)
        self._server = await asyncio.start_unix_server(
            self._serve_client, sock=self._listener, limit=ipc.MAX_MESSAGE)

    def _write_pid_file(self) -> None:
        write_pid_file(self.pid_path, PidRecord(os.getpid(), self.create_time,
                                                self.session_id, self.agent_pids))

    async def run(self) -> int:
        """Serve the session until its work is done and it was asked to stop."""
        await self.listen()
        log.info("worker %d listening on %s for session %s",
                 os.getpid(), self.socket_path, self.session_id)
        try:
            self.store = Store.open(self.home)
            self.session = self.store.get_session(self.session_id)
            if self.session is None:
                log.error("session %s is not in the store; nothing to do", self.session_id)
                return 0
            if self.session.agent_session_id:
                self.context_chars = self.session.agent_context_chars or 0
            self.create_time = create_time(os.getpid()) or 0.0
            parent = os.environ.get("MEMOIR_PARENT_PID", "")
            if parent.isdigit():
                self.adopt_parent(int(parent))
                if self.parent is None:
                    log.info("session %s: Claude Code pid %s is already gone", self.session_id,
                             parent)
                    self.request_stop("parent-gone")
            self._write_pid_file()
            self.store.set_worker(self.session.id, os.getpid(), self.create_time)
            watchdog = asyncio.create_task(self._watchdog())
            try:
                await self._loop()
            finally:
                watchdog.cancel()
            return 0
        finally:
            await self._shutdown()

    async def _loop(self) -> None:
        assert self.store is not None and self.session is not None
        self._wake.set()  # drain whatever is already pending at start
        first = True
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=TICK)
            except asyncio.TimeoutError:
                pass
            else:
                if not first:  # a hook's wake-up, not our own start
                    await asyncio.sleep(WAKE_DELAY)
            first = False
            self._wake.clear()
            try:
                await self.replay_spool()
                session = self.store.get_session(self.session_id)
                if session is not None:
                    self.session = session
                    # SessionEnd's recorded reason (clear, logout, ...) wins over
                    # a watchdog's: Claude Code exits right after SessionEnd.
                    if session.end_requested_at and self.stop_reason in (None, "parent-gone",
                                                                         "idle"):
                        self.stop_reason = session.end_reason or "session-end"
                await self.process()
                if self.stop_reason is not None:
                    await self.finish()
                    return
            except MemoirError as e:
                # A locked or briefly unwritable database: everything is still
                # in SQLite, so wait and go round again rather than die.
                log.warning("session %s: work loop failed (%s): %s; retrying",
                            self.session_id, e.reason, e)
                await asyncio.sleep(TICK)

    async def _watchdog(self) -> None:
        """Idle timeout and parent watch, in a task of their own.

        Separate from the work loop so they keep ticking while the loop waits
        on a slow agent call; they only set the stop flag.
        """
        while self.stop_reason is None:
            await asyncio.sleep(TICK)
            self.check_watchdogs()

    def check_watchdogs(self) -> None:
        """Request a stop if the session went idle or its Claude Code process is gone."""
        if self.stop_reason is not None:
            return
        idle = time.monotonic() - self.last_activity
        if idle >= self.settings.idle_timeout:
            log.info("session %s idle for %.0fs; finishing", self.session_id, idle)
            self.request_stop("idle")
            return
        if self.parent is not None:
            if not is_alive(*self.parent):
                log.info("session %s: Claude Code pid %d is gone; finishing",
                         self.session_id, self.parent[0])
                self.request_stop("parent-gone")

    async def replay_spool(self) -> None:
        """Record payloads hooks spooled while the database was locked.

        Any worker does it for every session (the spool is shared); the other
        sessions' workers are woken, or spawned, afterwards.
        """
        if not spool.pending(self.home):
            return
        from .hook import RECORDERS

        assert self.store is not None
        store, settings = self.store, self.settings

        def record(event: str, payload: dict[str, Any]) -> str | None:
            recorder = RECORDERS.get(event)
            if recorder is None:
                raise InvalidInput(f"unknown spooled event {event!r}", reason="bad-spool")
            recorder(store, payload, settings)
            return validate_session_id(payload.get("session_id"))

        touched = spool.replay(self.home, record)
        log.info("replayed spooled payloads of %d session(s)", len(touched))
        for other in touched:
            if other != self.session_id:
                await asyncio.to_thread(launch.notify, self.home, other, {"type": "wake"},
                                        attempts=1, timeout=0.2)

    async def process(self, *, include_open: bool = False) -> None:
        """Do all durable work there is: observe pending events, summarize finished prompts.

        A reprocess request (``memoir reprocess``) also replaces fallback
        summaries with the agent's own, once per request.
        """
        assert self.store is not None and self.session is not None
        reprocess = bool(self.session.reprocess_requested_at)
        if reprocess:
            self.agent_failures = 0  # the user asked for another try now
        await self.drain()
        for number in self.store.prompts_to_summarize(
                self.session.id, include_open=include_open, redo_fallback=reprocess):
            await self.summarize(number)
        if reprocess:
            self.store.clear_reprocess(self.session.id)
            self.session = self.store.get_session(self.session_id) or self.session

    async def finish(self) -> None:
        """Final pass when the session ends: drain, summarize the open turn too."""
        assert self.store is not None and self.session is not None
        await self.process(include_open=True)
        # A session SessionEnd marked failed (its worker hung) stays failed;
        # the summary written here is still what the next session sees.
        if self.store.set_status(self.session.id, "completed", self.stop_reason,
                                 only_if="active"):
            log.info("session %s completed (%s)", self.session_id, self.stop_reason)
        else:
            log.info("session %s finished (%s); status left as it was", self.session_id,
                     self.stop_reason)

    # -- the agent -----------------------------------------------------------

    async def _ensure_agent(self) -> MemoryAgent:
        if self.agent is not None:
            return self.agent
        assert self.store is not None and self.session is not None
        resume = self.session.agent_session_id
        self.agent_state = "starting"
        agent = self.agent_factory(self.settings.model, Path(agent_dir(self.home)), resume)
        try:
            await agent.start()
        except AgentError as e:
            if not resume:
                self.agent_state = "failed"
                raise
            # A resume the CLI rejects (transcript gone, another machine) must
            # not cost the session its memory: start fresh once.
            log.warning("agent resume %s failed (%s); starting a fresh agent session",
                        resume, e)
            agent = self.agent_factory(self.settings.model, Path(agent_dir(self.home)), None)
            await agent.start()
            resume = None
        self.agent = agent
        self.agent_state = "ready"
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

            self.agent_pids = tuple(c.pid for c in psutil.Process().children())
            self._write_pid_file()
        except Exception as e:  # bookkeeping only
            log.debug("cannot record agent pids: %s", e)

    async def _ask(self, text: str) -> str:
        """Send one message to the agent (starting it if needed); track failures.

        Every request resends the agent's whole conversation, so the worker
        keeps it under ``agent_context_limit``: a message that would take it
        past the limit goes to a fresh conversation instead (``_rollover``),
        which a recap of the session introduces.
        """
        assert self.store is not None and self.session is not None
        limit = self.settings.agent_context_limit
        if limit and self._conversation_open() and self.context_chars + len(text) > limit:
            await self._rollover(len(text))
        fresh = False
        try:
            agent = await self._ensure_agent()
            if not self._introduced:
                text = self._introduction() + "\n\n" + text
                self._introduced = fresh = True
            self.agent_state = "busy"
            reply = await agent.ask(text, self.settings.agent_timeout)
        except AgentError:
            self.agent_failures += 1
            self.last_agent_failure = time.monotonic()
            self.agent_state = "failed"
            # The CLI may have kept the message in the transcript that a resume
            # continues: count it, so the bound errs towards an early rollover.
            self.context_chars += len(text)
            await self._drop_agent()
            raise
        self.agent_state = "ready"
        self.agent_failures = 0
        self.context_chars += (len(SYSTEM_PROMPT) if fresh else 0) + len(text) + len(reply)
        agent_session = agent.session_id or self.session.agent_session_id
        self.store.set_agent_context(self.session.id, agent_session, self.context_chars)
        self.session = self.store.get_session(self.session_id) or self.session
        return reply

    def _conversation_open(self) -> bool:
        """True if the next message continues a conversation (live, or to resume)."""
        assert self.session is not None
        if self.agent is not None:
            return self._introduced
        return bool(self.session.agent_session_id)

    def _introduction(self) -> str:
        """The init prompt of a fresh conversation, with a bounded recap of the session."""
        assert self.store is not None and self.session is not None
        limit = self.settings.agent_context_limit
        budget = limit // RECAP_SHARE if limit else UNBOUNDED_RECAP_CHARS
        recap = session_recap(self.store.observations_for_session(self.session.id),
                              self.store.summaries_for_session(self.session.id), budget)
        first = self.store.prompt_text(self.session.id, 1)
        return init_prompt(self.session.project, first, _now_iso(), recap=recap)

    async def _rollover(self, incoming: int) -> None:
        """Close the agent's conversation and forget it: the next ask starts a fresh one.

        The stored agent session id goes with it, so a worker started after a
        crash does not resume the long conversation either.
        """
        assert self.store is not None and self.session is not None
        before = self.context_chars
        await self._drop_agent()
        self.store.set_agent_context(self.session.id, None, 0)
        self.session = self.store.get_session(self.session_id) or self.session
        self.context_chars = 0
        self.rollovers += 1
        log.info("session %s: agent conversation holds %d chars and the next message %d "
                 "(limit %d); starting a fresh conversation with a recap (rollover %d)",
                 self.session_id, before, incoming, self.settings.agent_context_limit,
                 self.rollovers)

    async def _drop_agent(self) -> None:
        agent, self.agent = self.agent, None
        self._introduced = False
        if agent is not None:
            await agent.close()

    def _agent_gave_up(self) -> bool:
        if self.agent_failures < MAX_AGENT_FAILURES:
            return False
        if time.monotonic() - self.last_agent_failure >= AGENT_COOLDOWN:
            self.agent_failures = MAX_AGENT_FAILURES - 1  # one more try, then cool down again
            return False
        return True

    # -- work ------------------------------------------------------------------

    async def drain(self) -> None:
        """Turn every pending event into observations, in order, batch by batch."""
        assert self.store is not None and self.session is not None
        while not self._agent_gave_up():
            pending = self.store.pending_events(self.session.id, BATCH_SIZE)
            if not pending:
                return
            # One prompt per batch, so each observation belongs to one prompt.
            batch = [e for e in pending if e.prompt_number == pending[0].prompt_number]
            ids = [e.id for e in batch]
            text = observation_prompt([_event_view(e) for e in batch],
                                      self.settings.max_field_chars)
            try:
                reply = await self._ask(text)
            except AgentError as e:
                log.warning("agent failed on events %s..%s of %s: %s",
                            ids[0], ids[-1], self.session_id, e)
                parked = self.store.note_attempt(ids)
                if parked:
                    log.warning("session %s: %d event(s) parked as failed after repeated "
                                "failures (memoir reprocess retries them)", self.session_id,
                                parked)
                if not self._agent_gave_up():  # back off 1 s, 2 s, ... before retrying
                    await asyncio.sleep(min(2 ** (self.agent_failures - 1), 10))
                continue
            from .parser import parse_observations  # ~8 ms of regexes, not before listening

            observations = parse_observations(reply)
            self.store.record_observations(self.session.id, ids, observations,
                                           batch[0].prompt_number)
            log.info("session %s: %d event(s) -> %d observation(s)",
                     self.session_id, len(ids), len(observations))

    async def summarize(self, prompt_number: int) -> None:
        """Write the summary of one prompt (the agent's, or a fallback from raw events)."""
        assert self.store is not None and self.session is not None
        prompt = self.store.prompt_text(self.session.id, prompt_number)
        response = self.store.prompt_response(self.session.id, prompt_number)
        summary = None
        note = None
        if not self._agent_gave_up():
            text = summary_prompt(prompt_number, prompt, self.settings.max_field_chars)
            if response:
                text += ("\n\nClaude's final reply to the user for this request "
                         "(for context):\n" + response[: self.settings.max_field_chars])
            try:
                reply = await self._ask(text)
            except AgentError as e:
                log.warning("agent failed to summarize prompt %d of %s: %s",
                            prompt_number, self.session_id, e)
            else:
                from .parser import parse_summary

                summary = parse_summary(reply)
                if summary is None and "<skip_summary" in reply:
                    note = "Built from raw events; the memory agent found nothing to summarize."
            if summary is None and note is None:
                log.warning("no usable summary for prompt %d of %s", prompt_number,
                            self.session_id)
        if summary is not None:
            self.store.save_summary(self.session.id, prompt_number, summary, "agent")
            log.info("session %s: summary of prompt %d stored", self.session_id, prompt_number)
            return
        events = self.store.events_for_prompt(self.session.id, prompt_number)
        digest = fallback_summary(prompt, response, events, **({"note": note} if note else {}))
        self.store.save_summary(self.session.id, prompt_number, digest, "fallback")
        log.info("session %s: fallback summary of prompt %d stored",
                 self.session_id, prompt_number)

    # -- teardown ----------------------------------------------------------------

    async def _shutdown(self) -> None:
        # Stop taking requests before the (possibly slow) agent close: a hook
        # that connects now must find no socket and spawn a new worker, not get
        # an ack from one that is about to exit.
        if self._server is not None:
            self._server.close()
        self._unlink(self.socket_path)
        try:
            await self._drop_agent()
        except Exception:
            log.exception("closing the agent failed")
        self._unlink(self.pid_path)
        if self.store is not None:
            try:
                if self.session is not None:
                    self.store.set_worker(self.session.id, None, None)
            except Exception:
                log.exception("cannot clear the worker pid of %s", self.session_id)
            self.store.close()

    @staticmethod
    def _unlink(path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("cannot remove %s: %s", path, e)


async def serve(worker: Worker) -> int:
    """Run ``worker`` with signal handlers that only set its stop flag."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        # Handlers only set a flag; the loop finishes the work and exits.
        loop.add_signal_handler(sig, worker.request_stop, signal.Signals(sig).name.lower())
    return await worker.run()
