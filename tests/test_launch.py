"""Waking a worker: outcomes and the retry/backoff bound, over real Unix sockets."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_memoir import launch
from claude_memoir.paths import ensure_private_dir, socket_path
from claude_memoir.worker import reaper
from conftest import wait_for

SID = "0a0a0a0a-1111-2222-3333-444444444444"


@pytest.fixture
def server(memoir_home: Path) -> Iterator[tuple[socket.socket, list[dict]]]:
    """A listening socket at the session's path; the test decides how it answers."""
    path = Path(socket_path(memoir_home, SID))
    ensure_private_dir(path.parent)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.listen(16)
    received: list[dict] = []
    yield sock, received
    sock.close()


def _answer(sock: socket.socket, received: list[dict], ack: dict) -> None:
    def loop() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                received.append(json.loads(conn.makefile("rb").readline()))
                conn.sendall(json.dumps(ack).encode() + b"\n")

    threading.Thread(target=loop, daemon=True).start()


def test_absent_worker_without_spawn(memoir_home: Path) -> None:
    started = time.monotonic()
    assert launch.notify(memoir_home, SID, {"type": "wake"}, spawn=False) == "absent"
    # No retries when nobody is there: the first backoff alone would add 0.1 s
    # and the whole ladder 0.7 s; the bound leaves room for a loaded machine.
    assert time.monotonic() - started < 0.5


def test_acked_and_carries_claude_pid(server: tuple[socket.socket, list[dict]],
                                      memoir_home: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    sock, received = server
    _answer(sock, received, {"ok": True})
    monkeypatch.setenv("CLAUDE_PID", "4242")
    assert launch.notify(memoir_home, SID, {"type": "finalize", "prompt_number": 3}) == "acked"
    assert received == [{"type": "finalize", "prompt_number": 3, "claude_pid": 4242}]


def test_refused_request(server: tuple[socket.socket, list[dict]], memoir_home: Path) -> None:
    sock, received = server
    _answer(sock, received, {"ok": False, "error": "nope"})
    assert launch.notify(memoir_home, SID, {"type": "wake"}) == "refused"
    assert len(received) == 1  # an answer, even a refusal, is not retried


def test_silent_worker_gets_one_wait_then_a_reaper(
        server: tuple[socket.socket, list[dict]], memoir_home: Path) -> None:
    # Connections are accepted by the kernel (listen backlog) but never answered:
    # a hung worker. Retrying it would only hold up the user's tool call.
    started = time.monotonic()
    outcome = launch.notify(memoir_home, SID, {"type": "wake"}, timeout=0.25)
    elapsed = time.monotonic() - started
    assert outcome == "unanswered"
    # One 0.25 s wait, no retry (a retry would add at least 0.1 s of backoff
    # and another 0.25 s wait).
    assert 0.25 <= elapsed < 0.85
    # The reaper pings with real patience (2 x 1 s) and finds no worker of
    # ours to end (no pid file: a worker still starting looks the same). It
    # says so in the log and leaves the socket: unlinking a starting worker's
    # socket would leave it running but unreachable.
    log = memoir_home / "logs" / "memoir.log"
    wait_for(lambda: log.exists() and "no worker of ours could be identified" in log.read_text(),
             timeout=15, message="the reaper's verdict in the log")
    assert Path(socket_path(memoir_home, SID)).exists()


def test_transient_errors_are_retried_with_bounded_backoff(
        server: tuple[socket.socket, list[dict]], memoir_home: Path) -> None:
    # A worker that closes without answering (e.g. shutting down): retried
    # 4 times with 0.1 + 0.2 + 0.4 s of backoff in between, then a reaper.
    sock, _ = server
    connections: list[float] = []

    def close_at_once() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            connections.append(time.monotonic())
            conn.close()

    threading.Thread(target=close_at_once, daemon=True).start()
    started = time.monotonic()
    assert launch.notify(memoir_home, SID, {"type": "wake"}) == "unanswered"
    elapsed = time.monotonic() - started
    assert len(connections) == 4
    gaps = [b - a for a, b in zip(connections, connections[1:], strict=False)]
    # Bounds, not exact values: a loaded 2-core machine may wake a sleeper
    # late, never early. Each gap at least its backoff, and each one longer
    # than the one before (doubling), the total within the hook's bound.
    for gap, backoff in zip(gaps, (0.1, 0.2, 0.4), strict=True):
        assert backoff <= gap < backoff + 0.25, gaps
    assert gaps[0] < gaps[1] < gaps[2], gaps
    assert 0.7 <= elapsed < 1.7


def test_reaper_leaves_a_live_worker_alone(memoir_home: Path,
                                           server: tuple[socket.socket, list[dict]]) -> None:
    sock, received = server
    _answer(sock, received, {"ok": True, "type": "ping"})
    assert reaper.end_unresponsive(memoir_home, SID, wait=0.5) == "answered"
    assert Path(socket_path(memoir_home, SID)).exists()


def test_only_one_reaper_per_session(memoir_home: Path,
                                     server: tuple[socket.socket, list[dict]]) -> None:
    """A second reaper (hooks of a burst all saw the same silence) leaves at once."""
    outcome: list[str] = []
    first = threading.Thread(
        target=lambda: outcome.append(reaper.end_unresponsive(memoir_home, SID, wait=0.5)))
    first.start()
    time.sleep(0.2)
    started = time.monotonic()
    assert reaper.end_unresponsive(memoir_home, SID, wait=0.5) == "busy"
    assert time.monotonic() - started < 0.5  # not the first reaper's 2 x 0.5 s pings
    first.join(5)
    # Silent, but no worker of ours to end (no pid file): nothing was ended.
    assert outcome == ["unidentified"]
    assert Path(socket_path(memoir_home, SID)).exists()
