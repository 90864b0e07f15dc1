"""The worker's service: the loop that serves a session until its work is done.

``python -m claude_memoir.worker`` (``entry.py``) takes the session's lock and
listens first; then it imports this module (asyncio, the agent's modules: most of
a worker's start-up) and runs a :class:`Worker` on the socket it already holds.
From then on the worker turns the session's durable work in SQLite into
observations and summaries (``pipeline``), through its agent (``conversation``):

* pending tool events → batched observation messages → observations (stored in
  the same transaction that marks the events processed);
* prompts that Stop finished → one summary each;
* an end request from SessionEnd (or the idle watchdog, or SIGTERM) → drain,
  summarize what is left, mark the session completed and exit.

Socket messages only wake it up; the database says what to do. Store calls run
on the store thread (``storethread``), so the loop always answers its socket.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

from .. import ipc
from ..agent.client import default_agent_factory
from ..config import Settings
from ..errors import MemoirError
from ..log import get_logger
from ..paths import db_path, pid_path, socket_path, validate_session_id
from ..procs import PidRecord, create_time, is_alive, write_pid_file
from ..store import SessionRow
from ..store.usage import USAGE_RETENTION_DAYS
from .conversation import AgentFactory, Conversation
from .listener import listen_on
from .pipeline import Pipeline
from .server import start_server
from .storethread import StoreThread

log = get_logger("claude_memoir.worker")

# How often the loop wakes on its own to check the idle watchdog.
TICK = 1.0
# Seconds between a hook's wake-up and the work it triggers. The hook that woke
# us is still finishing (closing, printing, interpreter teardown) while the
# user's Claude Code waits for it; on a 2-core machine the worker and its
# agent CLI starting work at once measurably slowed that hook. Events that
# arrive meanwhile join the same batch.
WAKE_DELAY = 0.05
# Passes in a row the loop may fail on the store before the worker gives up
# (about a minute at one pass a second), and fewer once it was asked to stop.
LOOP_FAILURES = 60
LOOP_FAILURES_WHEN_STOPPING = 5
# Seconds a starting worker retries a store it cannot open or read.
STORE_OPEN_WAIT = 30.0
# Seconds a ping's pending count may wait on SQLite (see Worker._count_pending).
PING_READ_WAIT = 0.02
# Seconds of search-index backfill per round of the loop (Store.backfill_search):
# short, because the store's write lock is held meanwhile and hooks wait on it.
BACKFILL_SLICE = 0.2


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
        # A socket entry.main already bound and listens on (connections
        # queue in its backlog while this module loads); None: bind in listen().
        self._listener = listener
        self.session_id = validate_session_id(session_id)
        self.socket_path = Path(socket_path(self.home, session_id))
        self.pid_path = Path(pid_path(self.home, session_id))
        self.db = StoreThread(self.home)
        self.conversation = Conversation(settings, self.session_id, self.db, agent_factory,
                                         self._agent_pids_changed)
        self.pipeline = Pipeline(settings, self.session_id, self.db, self.conversation)
        self.started = time.monotonic()
        self.last_activity = time.monotonic()
        self.stop_reason: str | None = None
        # The Claude Code process this session runs in: (pid, create time).
        self.parent: tuple[int, float] | None = None
        self.agent_pids: tuple[int, ...] = ()
        self.create_time: float = 0.0
        # Pending events as of the last ping's count: its fallback when even a
        # bounded read cannot get through.
        self.pending = 0
        self._reader: sqlite3.Connection | None = None
        # Rows older than the search index still to index (assume some until
        # the first backfill call says otherwise; it returns at once if none).
        self._search_backlog = 1
        # Set when the session finished: _shutdown then merges the search index.
        self._merge_index = False
        self._wake = asyncio.Event()
        self._started_recorded = False
        self._server: asyncio.AbstractServer | None = None

    @property
    def session(self) -> SessionRow | None:
        """The session's row as last read."""
        return self.conversation.session

    # -- requests ----------------------------------------------------------

    def _count_pending(self) -> int:
        """Pending events right now, for a ping: a read bounded to ``PING_READ_WAIT``.

        The one store access on the event loop, and a read: in WAL mode a
        reader never waits for a writer's lock, so this costs ~0.1 ms even
        while another process holds the write lock for seconds (the case the
        store thread exists for). Whoever pings (``memoir status``, a
        benchmark waiting for the worker to settle) must see events a hook
        just committed, not the count of the last pass.
        """
        session = self.session
        if session is None:
            return self.pending
        try:
            if self._reader is None:
                uri = f"file:{db_path(self.home)}?mode=ro"
                self._reader = sqlite3.connect(uri, uri=True, timeout=PING_READ_WAIT)
            row = self._reader.execute(
                "SELECT COUNT(*) FROM events WHERE session_id = ? AND status = 'pending'",
                (session.id,)).fetchone()
            self.pending = int(row[0])
        except sqlite3.Error as e:
            log.debug("ping: pending count unavailable (%s); reporting the last one", e)
        return self.pending

    def state(self) -> dict[str, Any]:
        """What ``ping`` reports (never waits on SQLite's write lock)."""
        conv = self.conversation
        return {
            "session_id": self.session_id,
            "pid": os.getpid(),
            "uptime": round(time.monotonic() - self.started, 3),
            "idle": round(time.monotonic() - self.last_activity, 3),
            "pending": self._count_pending(),
            # Of those, held back until their prompt finishes (prompt capture).
            "held": self.pipeline.held,
            "agent": conv.state,
            "agent_context_chars": conv.context_chars,
            "agent_rollovers": conv.rollovers,
            "agent_pids": list(self.agent_pids),
            "parent_pid": self.parent[0] if self.parent else None,
            "stopping": self.stop_reason,
        }

    def handle(self, message: dict[str, Any]) -> ipc.Ack:
        """Apply one request and return its ack (never raises, never blocks)."""
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
        self._server = await start_server(self._listener, self.handle)

    def _write_pid_file(self) -> None:
        write_pid_file(self.pid_path, PidRecord(pid=os.getpid(), create_time=self.create_time,
                                                session_id=self.session_id,
                                                agent_pids=self.agent_pids))

    def _agent_pids_changed(self, pids: tuple[int, ...]) -> None:
        self.agent_pids = pids
        self._write_pid_file()

    async def run(self) -> int:
        """Serve the session until its work is done and it was asked to stop."""
        await self.listen()
        log.info("worker %d listening on %s for session %s",
                 os.getpid(), self.socket_path, self.session_id)
        try:
            session = await self._open_store()
            if session is None:
                # Its first prompt may wait in the spool (the database was
                # locked when the hook ran): replay it before giving up.
                await self.pipeline.replay_spool()
                session = await self.db.call(lambda store: store.get_session(self.session_id))
            if session is None:
                log.error("session %s is not in the store; nothing to do", self.session_id)
                return 0
            self.conversation.adopt(session)
            self.create_time = create_time(os.getpid()) or 0.0
            parent = os.environ.get("MEMOIR_PARENT_PID", "")
            if parent.isdigit():
                self.adopt_parent(int(parent))
                if self.parent is None:
                    log.info("session %s: Claude Code pid %s is already gone", self.session_id,
                             parent)
                    self.request_stop("parent-gone")
            self._write_pid_file()
            pid, started = os.getpid(), self.create_time
            await self.db.call(lambda store: store.set_worker(session.id, pid, started))
            watchdog = asyncio.create_task(self._watchdog())
            try:
                await self._loop()
            finally:
                watchdog.cancel()
            return 0
        finally:
            await self._shutdown()

    async def _open_store(self) -> SessionRow | None:
        """Open the store and read the session, waiting out a locked database.

        Bounded by ``STORE_OPEN_WAIT``: a store that stays unusable (a
        permission problem, a full disk) ends the worker with the error in
        the log instead of a process that waits forever; the work stays in
        SQLite (or the spool) for the next worker.
        """
        deadline = time.monotonic() + STORE_OPEN_WAIT
        while True:
            try:
                await self.db.open()
                return await self.db.call(lambda store: store.get_session(self.session_id))
            except MemoirError as e:
                if time.monotonic() >= deadline or self.stop_reason not in (None, "parent-gone"):
                    raise
                log.warning("session %s: store not ready (%s): %s; retrying",
                            self.session_id, e.reason, e)
                await asyncio.sleep(TICK)

    async def _refresh(self) -> SessionRow | None:
        return await self.db.call(lambda store: store.get_session(self.session_id))

    async def _loop(self) -> None:
        self._wake.set()  # drain whatever is already pending at start
        first = True
        failures = 0  # passes in a row that failed on the store
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=TICK)
            except TimeoutError:
                pass
            else:
                if not first:  # a hook's wake-up, not our own start
                    await asyncio.sleep(WAKE_DELAY)
            first = False
            self._wake.clear()
            try:
                await self.pipeline.replay_spool()
                session = await self._refresh()
                if session is not None:
                    self.conversation.session = session
                    # SessionEnd's recorded reason (clear, logout, ...) wins over
                    # a watchdog's: Claude Code exits right after SessionEnd.
                    if session.end_requested_at and self.stop_reason in (None, "parent-gone",
                                                                         "idle"):
                        self.stop_reason = session.end_reason or "session-end"
                session = self.session
                assert session is not None
                await self.pipeline.process(session)
                if self.stop_reason is not None:
                    await self.finish()
                    return
                if self._search_backlog:
                    # Index records older than the search index a little per
                    # round (migration 0004), after this session's own work.
                    self._search_backlog = await self.db.call(
                        lambda store: store.backfill_search(budget=BACKFILL_SLICE))
            except MemoirError as e:
                # A locked or briefly unwritable database: everything is still
                # in SQLite, so wait and go round again rather than die.
                failures += 1
                if e.reason == "corrupt":
                    # A hook found the file damaged and moved it aside: this
                    # connection still points at the old file. Open the new one.
                    log.error("session %s: the database is damaged (%s); reopening it",
                              self.session_id, e)
                    await self._reopen_store()
                limit = LOOP_FAILURES_WHEN_STOPPING if self.stop_reason else LOOP_FAILURES
                if failures >= limit:
                    # Bounded: a worker that cannot use its store ends (the work
                    # stays in SQLite or the spool, and the next hook starts a
                    # fresh worker) instead of retrying forever, deaf to its stop.
                    log.error("session %s: work loop failed %d times in a row (%s): %s; "
                              "exiting", self.session_id, failures, e.reason, e)
                    return
                log.warning("session %s: work loop failed (%s): %s; retrying",
                            self.session_id, e.reason, e)
                await asyncio.sleep(TICK)
            else:
                failures = 0

    async def _reopen_store(self) -> None:
        """Open the store again after a hook moved a damaged file aside (never raises)."""
        try:
            await self.db.reopen()
        except MemoirError as e:
            log.warning("session %s: reopening the store failed (%s): %s", self.session_id,
                        e.reason, e)

    async def _watchdog(self) -> None:
        """Idle timeout and parent watch, in a task of their own.

        Separate from the work loop so they keep ticking while the loop waits
        on a slow agent call; they only set the stop flag.
        """
        while self.stop_reason is None:
            await asyncio.sleep(TICK)
            await self._record_started()
            self.check_watchdogs()

    async def _record_started(self) -> None:
        """Record once that this worker runs: clears an earlier "cannot import" in status.

        Off the start-up path (the watchdog's first tick, or the final pass),
        so it delays no work; bookkeeping only, so a locked database is logged,
        not fatal.
        """
        if self._started_recorded:
            return
        self._started_recorded = True
        try:
            await self.db.call(lambda store: store.record_ok("worker"))
        except MemoirError as e:
            log.warning("session %s: cannot record the worker's health: %s",
                        self.session_id, e)

    def check_watchdogs(self) -> None:
        """Request a stop if the session went idle or its Claude Code process is gone."""
        if self.stop_reason is not None:
            return
        idle = time.monotonic() - self.last_activity
        if self.settings.idle_timeout > 0 and idle >= self.settings.idle_timeout:
            log.info("session %s idle for %.0fs; finishing", self.session_id, idle)
            self.request_stop("idle")
            return
        if self.parent is not None and not is_alive(*self.parent):
            log.info("session %s: Claude Code pid %d is gone; finishing",
                     self.session_id, self.parent[0])
            self.request_stop("parent-gone")

    async def finish(self) -> None:
        """Final pass when the session ends: drain, summarize the open turn too."""
        session = self.session
        assert session is not None
        await self._record_started()
        await self.pipeline.process(session, include_open=True)
        # A session SessionEnd marked failed (its worker hung) stays failed;
        # the summary written here is still what the next session sees.
        reason = self.stop_reason
        # Retention of the usage log: an indexed delete, once per worker, at its
        # end rather than its start (where hooks may be waiting on it).
        await self.db.call(lambda store: store.prune_usage(USAGE_RETENTION_DAYS))
        if await self.db.call(lambda store: store.set_status(
                session.id, "completed", reason, only_if="active")):
            log.info("session %s completed (%s)", self.session_id, reason)
        else:
            log.info("session %s finished (%s); status left as it was", self.session_id,
                     reason)
        # A session that is over takes its agent's transcript with it: nothing
        # of the memory agent stays in the user's Claude Code session lists.
        # One that only went idle (or a worker stopped by a signal) keeps it,
        # so a worker started when the user comes back resumes the
        # conversation; the retention sweep removes it a day later if nobody does.
        if session.end_requested_at or reason == "parent-gone":
            try:
                await self.conversation.forget()
            except MemoirError as e:
                log.warning("cannot forget the agent conversation (%s): %s", e.reason, e)
        # Retention runs here so that it happens for a user who never types a
        # command: once per finished session, in short transactions.
        from .. import retention

        settings = self.settings
        try:
            await self.db.call(lambda store: retention.sweep(settings, store,
                                                             merge_index=False))
        except MemoirError as e:
            log.warning("retention sweep failed (%s): %s", e.reason, e)
        # The search index's merge (up to SEARCH_MERGE_BUDGET seconds) waits
        # for _shutdown, after the socket is gone.
        self._merge_index = True

    # -- teardown ----------------------------------------------------------------

    async def _shutdown(self) -> None:
        # Stop taking requests before the (possibly slow) agent close: a hook
        # that connects now must find no socket and spawn a new worker, not get
        # an ack from one that is about to exit.
        if self._server is not None:
            self._server.close()
        self._unlink(self.socket_path)
        try:
            await self.conversation.close()
        except Exception:
            log.exception("closing the agent failed")
        if self._merge_index:
            # After the socket is gone: a worker started meanwhile for this
            # session (resumed) waits for our lock, and finds no answer that
            # would make it leave the session to us.
            from ..retention import SEARCH_MERGE_BUDGET

            try:
                await self.db.call(lambda store: store.merge_search_index(SEARCH_MERGE_BUDGET))
            except MemoirError as e:
                log.warning("search index merge failed (%s): %s", e.reason, e)
        self._unlink(self.pid_path)
        session = self.session
        try:
            if session is not None:
                await self.db.call(lambda store: store.set_worker(session.id, None, None))
        except Exception:
            log.exception("cannot clear the worker pid of %s", self.session_id)
        try:
            await self.db.close()
        except Exception:
            log.exception("cannot close the store of %s", self.session_id)
        if self._reader is not None:
            self._reader.close()

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
