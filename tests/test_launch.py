"""Waking a worker: outcomes and the retry/backoff bound, over real Unix sockets."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from claude_memoir import launch
from claude_memoir.paths import ensure_private_dir, socket_path

SID = "0a0a0a0a-1111-2222-3333-444444444444"


@pytest.fixture
def server(memoir_home: Path) -> Iterator[tuple[socket.socket, list[dict]]]:
    """A listening socket at the session's path; the test decides how it answers."""
    path = socket_path(memoir_home, SID)
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
    assert time.monotonic() - started < 0.2  # no retries when nobody is there


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


def test_silent_worker_is_retried_with_bounded_backoff(
        server: tuple[socket.socket, list[dict]], memoir_home: Path) -> None:
    # Connections are accepted by the kernel (listen backlog) but never answered.
    started = time.monotonic()
    outcome = launch.notify(memoir_home, SID, {"type": "wake"})
    elapsed = time.monotonic() - started
    assert outcome == "unanswered"
    # 4 attempts x 0.25 s + sleeps 0.1 + 0.2 + 0.4 = 1.7 s; well under 2.5 s.
    assert 1.6 <= elapsed < 2.5
