"""Batching by prompt (issue 12): one agent request per prompt, not per tool call.

The worker runs in-process (real socket, real SQLite) with the fake agent, which
answers one observation per event a message carries and a summary when asked.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from test_worker import SID, _count, _request, _run_worker, _until

from claude_memoir.store import Store
from claude_memoir.worker.service import Worker
from conftest import db
from fakeagent import FakeAgentFactory


def _prompt(home: Path, text: str, events: int, *, finished: bool, tag: str = "") -> int:
    """Record a prompt with ``events`` Bash events (outputs tagged ``tag``); its number."""
    with Store.open(home) as store:
        session = store.upsert_session(SID, "/proj", "/proj")
        number = store.add_prompt(session.id, text)
        for i in range(events):
            store.add_event(session.id, number, "Bash", {"command": f"echo {tag}{i}"},
                            {"stdout": f"{tag}-out-{i} " + "x" * 300},
                            tool_use_id=f"toolu_{tag}{number}_{i}")
        if finished:
            store.finish_prompt(session.id, number, f"done with {text}")
        return number


def _add(home: Path, tag: str, count: int) -> None:
    with Store.open(home) as store:
        session = store.get_session(SID)
        assert session is not None
        number = store.current_prompt_number(session.id)
        for i in range(count):
            store.add_event(session.id, number, "Bash", {"command": f"echo {tag}{i}"},
                            {"stdout": f"{tag}-out-{i} " + "x" * 300},
                            tool_use_id=f"toolu_{tag}_{i}")


def _finish(home: Path, number: int) -> None:
    with Store.open(home) as store:
        session = store.get_session(SID)
        assert session is not None
        store.finish_prompt(session.id, number, None)


def _observes(factory: FakeAgentFactory) -> list[str]:
    return [m for m in factory.messages if "MEMOIR-OBSERVE" in m or "MEMOIR-SUMMARY" in m]


def test_finished_prompt_costs_one_request_with_events_and_summary(memoir_home: Path) -> None:
    _prompt(memoir_home, "fix the bug", 5, finished=True, tag="a")
    factory = FakeAgentFactory()

    async def scenario(worker: Worker) -> None:
        await _until(lambda: _count(memoir_home, "SELECT COUNT(*) FROM summaries") == 1)

    _run_worker(memoir_home, factory, scenario)
    (message,) = factory.messages  # no intro request, no separate summary request
    assert message.count("<event ") == 5 and "MEMOIR-SUMMARY-REQUEST" in message
    assert message.index("echo a0") < message.index("echo a4") < message.index(
        "MEMOIR-SUMMARY-REQUEST")
    conn = db(memoir_home)
    assert [r[0] for r in conn.execute("SELECT status FROM events")] == ["processed"] * 5
    assert _count(memoir_home, "SELECT COUNT(*) FROM observations") == 5
    (summary,) = conn.execute("SELECT kind, learned FROM summaries").fetchall()
    assert tuple(summary) == ("agent", "FAKE-LEARNED")
    # Claude's last reply goes along as context.
    assert "done with fix the bug" in message


def test_open_prompt_waits_then_sends_when_the_batch_is_large(memoir_home: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    # Each event is estimated at ~330 + 200 chars: the third passes 1,500.
    monkeypatch.setenv("MEMOIR_BATCH_CHARS", "1500")
    _prompt(memoir_home, "long task", 2, finished=False, tag="a")
    factory = FakeAgentFactory()

    async def scenario(worker: Worker) -> None:
        await asyncio.sleep(2.5)  # two passes of the loop at least
        assert _observes(factory) == []  # two small events wait for their prompt
        state = (await _request(memoir_home, {"type": "ping"}))["state"]
        assert (state["pending"], state["held"]) == (2, 2)  # what `memoir status` shows
        await asyncio.to_thread(_add, memoir_home, "b", 1)
        await _request(memoir_home, {"type": "wake"})
        await _until(lambda: _count(memoir_home, "SELECT COUNT(*) FROM observations") == 3)
        assert _count(memoir_home, "SELECT COUNT(*) FROM summaries") == 0
        await asyncio.to_thread(_add, memoir_home, "c", 1)
        await asyncio.to_thread(_finish, memoir_home, 1)
        await _request(memoir_home, {"type": "finalize", "prompt_number": 1})
        await _until(lambda: _count(memoir_home, "SELECT COUNT(*) FROM summaries") == 1)

    _run_worker(memoir_home, factory, scenario)
    sent = _observes(factory)
    assert [m.count("<event ") for m in sent] == [3, 1]
    assert "MEMOIR-SUMMARY-REQUEST" not in sent[0] and "MEMOIR-SUMMARY-REQUEST" in sent[1]


def test_open_prompt_sends_when_its_oldest_event_is_old(memoir_home: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMOIR_BATCH_SECONDS", "2")
    _prompt(memoir_home, "long task", 2, finished=False, tag="a")
    factory = FakeAgentFactory()
    seen: dict[str, int] = {}

    async def scenario(worker: Worker) -> None:
        await asyncio.sleep(0.8)
        seen["early"] = len(_observes(factory))
        await _until(lambda: _count(memoir_home, "SELECT COUNT(*) FROM observations") == 2,
                     timeout=10)

    _run_worker(memoir_home, factory, scenario)
    assert seen["early"] == 0
    first = _observes(factory)[0]
    assert first.count("<event ") == 2 and "MEMOIR-SUMMARY-REQUEST" not in first


@pytest.mark.parametrize("capture", ["prompt", "live"])
def test_each_summary_covers_exactly_its_own_prompt(memoir_home: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capture: str) -> None:
    """Two prompts back to back: prompt 2's events were queued before the worker
    summarized prompt 1. They must not reach the agent before prompt 1's summary
    request, and prompt 2 must get its own agent summary (the bug: they were
    drained into prompt 1's summary and prompt 2 ended with an empty fallback)."""
    monkeypatch.setenv("MEMOIR_CAPTURE", capture)
    _prompt(memoir_home, "first request", 3, finished=True, tag="p1-")
    _prompt(memoir_home, "second request", 3, finished=True, tag="p2-")
    factory = FakeAgentFactory()

    async def scenario(worker: Worker) -> None:
        await _until(lambda: _count(memoir_home, "SELECT COUNT(*) FROM summaries") == 2)

    _run_worker(memoir_home, factory, scenario)
    messages = factory.messages
    first_summary = next(i for i, m in enumerate(messages) if "prompt #1 is finished" in m)
    first_p2 = next(i for i, m in enumerate(messages) if "echo p2-" in m)
    assert first_summary <= first_p2
    assert "echo p2-" not in messages[first_summary]
    assert all("echo p1-" not in m for m in messages[first_p2:])
    rows = db(memoir_home).execute(
        "SELECT prompt_number, kind FROM summaries ORDER BY prompt_number").fetchall()
    assert [tuple(r) for r in rows] == [(1, "agent"), (2, "agent")]
    # Observations are filed under the prompt their events belong to.
    for obs in db(memoir_home).execute("SELECT prompt_number, event_ids FROM observations"):
        ids = json.loads(obs["event_ids"])
        numbers = {r[0] for r in db(memoir_home).execute(
            f"SELECT prompt_number FROM events WHERE id IN ({','.join('?' * len(ids))})", ids)}
        assert numbers == {obs["prompt_number"]}
    if capture == "prompt":
        assert len(_observes(factory)) == 2  # one request per prompt


def test_interrupted_prompt_is_summarized_when_the_next_one_begins(memoir_home: Path) -> None:
    """No Stop comes for an interrupted turn; the next prompt closes it."""
    _prompt(memoir_home, "interrupted", 2, finished=False, tag="a")
    _prompt(memoir_home, "next one", 1, finished=False, tag="b")
    factory = FakeAgentFactory()

    async def scenario(worker: Worker) -> None:
        await _until(lambda: _count(memoir_home, "SELECT COUNT(*) FROM summaries") == 1)
        await asyncio.sleep(1.5)

    _run_worker(memoir_home, factory, scenario)
    sent = _observes(factory)
    assert "prompt #1 is finished" in sent[0] and sent[0].count("<event ") == 2
    # Prompt 2 was summarized only when the worker was told to stop (test end).
    assert all("echo b0" not in m for m in sent[:1])


def test_oversize_batch_goes_in_several_requests_summary_with_the_last(
        memoir_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMOIR_BATCH_CHARS", "2000")
    _prompt(memoir_home, "big prompt", 10, finished=True, tag="a")
    factory = FakeAgentFactory()

    async def scenario(worker: Worker) -> None:
        await _until(lambda: _count(memoir_home, "SELECT COUNT(*) FROM summaries") == 1)

    _run_worker(memoir_home, factory, scenario)
    sent = _observes(factory)
    counts = [m.count("<event ") for m in sent]
    assert sum(counts) == 10 and len(sent) > 1 and all(counts)
    assert ["MEMOIR-SUMMARY-REQUEST" in m for m in sent] == [False] * (len(sent) - 1) + [True]
    # In order, each event exactly once.
    ids = [int(i) for m in sent for i in re.findall(r'<event id="(\d+)">', m)]
    assert ids == sorted(ids) and len(set(ids)) == 10
    assert _count(memoir_home, "SELECT COUNT(*) FROM observations") == 10
