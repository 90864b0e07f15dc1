"""Usage accounting and the daily budget (issue 12).

Store tests use a real SQLite file; worker tests run the worker in-process with
the fake agent (which reports usage and a running total cost like the CLI); the
e2e test runs the real Agent SDK and CLI against the mock API, which reports
chosen token counts, and checks what was stored and what ``memoir usage`` shows.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import date, timedelta
from pathlib import Path

import pytest
from test_worker import SID, _count, _run_worker, _until

from claude_memoir.agent.models import Usage
from claude_memoir.budget import budget_status
from claude_memoir.cli.usage import since_date
from claude_memoir.config import load_settings
from claude_memoir.store import Store
from claude_memoir.worker.service import Worker
from conftest import HookRunner, api_env, db, memoir_command, payload, wait_for
from fakeagent import FakeAgentFactory
from mockapi import MockAnthropic, RecordedRequest


def _usage(total: float | None, tokens: int = 100) -> Usage:
    return Usage(input_tokens=tokens, output_tokens=tokens // 10, cache_read_tokens=tokens * 2,
                 cache_write_tokens=tokens // 2, cost_total_usd=total)


def _session(store: Store, sid: str = SID, project: str = "/proj") -> int:
    return store.upsert_session(sid, project, project).id


def test_a_request_costs_the_difference_of_the_running_total(memoir_home: Path) -> None:
    with Store.open(memoir_home) as store:
        s = _session(store)
        costs = [store.record_agent_request(s, kind="observe+summary", events=3, model="m",
                                            agent_session_id="agent-a", usage=_usage(total))
                 for total in (0.010, 0.025, 0.045)]
        # A fresh conversation (rollover) starts its own total.
        fresh = store.record_agent_request(s, kind="summary", events=0, model="m",
                                           agent_session_id="agent-b", usage=_usage(0.002))
        # A CLI that reports no cost: tokens still count, the cost is unknown.
        unknown = store.record_agent_request(s, kind="observe", events=1, model="m",
                                             agent_session_id="agent-c", usage=_usage(None))
        today = store.usage_today()
    assert costs == pytest.approx([0.010, 0.015, 0.020])
    assert fresh == pytest.approx(0.002) and unknown is None
    assert today.requests == 5
    assert today.cost_usd == pytest.approx(0.047)
    assert today.tokens == 5 * (100 + 10 + 200 + 50)


def test_usage_per_day_by_project_and_since(memoir_home: Path) -> None:
    today = date.today()
    with Store.open(memoir_home) as store:
        a = _session(store, SID, "/proj/a")
        b = _session(store, "22222222-2222-3333-4444-555555555555", "/proj/b")
        for sess, total in ((a, 0.01), (a, 0.03), (b, 0.5)):
            store.record_agent_request(sess, kind="observe+summary", events=10, model="m",
                                       agent_session_id=f"agent-{sess}", usage=_usage(total))
        # One of a's requests was made three days ago (local noon).
        old = (today - timedelta(days=3)).isoformat()
        store.conn.execute("UPDATE agent_requests SET created_at = strftime("
                           "'%Y-%m-%dT%H:%M:%fZ', ?, 'utc') WHERE id = 1", (f"{old} 12:00",))
        every = store.usage_per_day(old, None)
        only_a = store.usage_per_day(old, "/proj/a")
        recent = store.usage_per_day(today.isoformat(), None)
    assert [(r.day, r.project, r.requests) for r in every] == [
        (old, "/proj/a", 1), (today.isoformat(), "/proj/a", 1), (today.isoformat(), "/proj/b", 1)]
    assert [r.cost_usd for r in every] == pytest.approx([0.01, 0.02, 0.5])
    assert all(r.tool_calls == 10 and r.input_tokens == 100 and r.cache_read_tokens == 200
               and r.cache_write_tokens == 50 and r.output_tokens == 10 for r in every)
    assert [r.day for r in only_a] == [old, today.isoformat()]
    assert [r.project for r in recent] == ["/proj/a", "/proj/b"]


def test_usage_log_is_pruned_by_age(memoir_home: Path) -> None:
    from claude_memoir.store.usage import USAGE_RETENTION_DAYS

    with Store.open(memoir_home) as store:
        s = _session(store)
        for _ in range(3):
            store.record_agent_request(s, kind="observe", events=1, model="m",
                                       agent_session_id=None, usage=_usage(None))
        store.conn.execute("UPDATE agent_requests SET created_at = strftime("
                           "'%Y-%m-%dT%H:%M:%fZ', 'now', ?) WHERE id < 3",
                           (f"-{USAGE_RETENTION_DAYS + 1} days",))
        assert store.prune_usage(USAGE_RETENTION_DAYS) == 2
        assert [r[0] for r in store.conn.execute("SELECT id FROM agent_requests")] == [3]


def test_since_accepts_durations_and_dates() -> None:
    from claude_memoir.errors import InvalidInput

    day = date(2026, 12, 2)
    assert since_date("7d", day) == "2026-11-26"
    assert since_date("24h", day) == "2026-12-02"
    assert since_date("2w", day) == "2026-11-19"
    assert since_date("2026-10-01", day) == "2026-10-01"
    for bad in ("yesterday", "-3d", "", "7"):
        with pytest.raises(InvalidInput):
            since_date(bad, day)


def test_budget_status_by_cost_and_by_tokens(memoir_home: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with Store.open(memoir_home) as store:
        s = _session(store)
        store.record_agent_request(s, kind="observe", events=1, model="m",
                                   agent_session_id="x", usage=_usage(0.30, tokens=1000))
        status = budget_status(store, load_settings())
        assert not status.reached and "no daily budget set" in status.reason
        monkeypatch.setenv("MEMOIR_DAILY_BUDGET_USD", "0.50")
        status = budget_status(store, load_settings())
        assert not status.reached and status.limit_usd == 0.5
        assert status.spent_usd == pytest.approx(0.30)
        monkeypatch.setenv("MEMOIR_DAILY_BUDGET_USD", "0.25")
        status = budget_status(store, load_settings())
        assert status.reached and "daily budget of $0.25 reached" in status.reason
        monkeypatch.delenv("MEMOIR_DAILY_BUDGET_USD")
        monkeypatch.setenv("MEMOIR_DAILY_BUDGET_TOKENS", "3000")
        status = budget_status(store, load_settings())
        assert status.reached and status.spent_tokens == 3600
        assert "daily token budget of 3,000 reached" in status.reason


def _seed_prompts(home: Path, prompts: int, events: int) -> None:
    with Store.open(home) as store:
        session = store.upsert_session(SID, "/proj", "/proj")
        for p in range(prompts):
            number = store.add_prompt(session.id, f"request {p + 1}")
            for i in range(events):
                store.add_event(session.id, number, "Bash", {"command": f"make step{p}-{i}"},
                                {"stdout": "ok " * 50}, tool_use_id=f"toolu_{p}_{i}")
            store.finish_prompt(session.id, number, None)


def test_worker_records_each_request_usage(memoir_home: Path) -> None:
    _seed_prompts(memoir_home, 2, 3)
    factory = FakeAgentFactory()

    async def scenario(worker: Worker) -> None:
        await _until(lambda: _count(memoir_home, "SELECT COUNT(*) FROM summaries") == 2)

    _run_worker(memoir_home, factory, scenario)
    rows = db(memoir_home).execute("SELECT * FROM agent_requests ORDER BY id").fetchall()
    agent = factory.agents[0]
    assert [(r["kind"], r["events"]) for r in rows] == [("observe+summary", 3)] * 2
    assert [r["input_tokens"] for r in rows] == [len(m) // 4 for m in agent.messages]
    assert [r["output_tokens"] for r in rows] == [len(m) // 4 for m in agent.replies]
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(agent.cost_total)
    assert {r["agent_session_id"] for r in rows} == {"fake-agent-session"}


def test_budget_reached_stops_llm_calls_and_writes_labelled_fallbacks(
        memoir_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first prompt's request spends past the cap; the second prompt gets no LLM
    call but a fallback summary saying why; reprocess with more budget replaces it."""
    monkeypatch.setenv("MEMOIR_DAILY_BUDGET_USD", "0.0001")
    _seed_prompts(memoir_home, 2, 3)
    factory = FakeAgentFactory()

    async def scenario(worker: Worker) -> None:
        await _until(lambda: _count(memoir_home, "SELECT COUNT(*) FROM summaries") == 2)

    _run_worker(memoir_home, factory, scenario)
    assert len(factory.messages) == 1  # only prompt 1 reached the agent
    conn = db(memoir_home)
    rows = conn.execute("SELECT prompt_number, kind, notes FROM summaries"
                        " ORDER BY prompt_number").fetchall()
    assert [(r[0], r[1]) for r in rows] == [(1, "agent"), (2, "fallback")]
    assert "daily budget of $0.00 reached" in rows[1]["notes"]
    assert "memoir reprocess" in rows[1]["notes"]
    statuses = conn.execute("SELECT prompt_number, status FROM events ORDER BY id").fetchall()
    assert [tuple(r) for r in statuses] == [(1, "processed")] * 3 + [(2, "failed")] * 3
    # status and doctor say so.
    done = subprocess.run([*memoir_command(), "status"], capture_output=True, text=True,
                          env=dict(os.environ), timeout=30)
    assert "BUDGET REACHED" in done.stdout, done.stdout
    done = subprocess.run([*memoir_command(), "doctor", "--json"], capture_output=True,
                          text=True, env=dict(os.environ), timeout=60)
    budget = [f for f in json.loads(done.stdout) if f["check"] == "budget"]
    assert budget and budget[0]["level"] == "warn" and "reached" in budget[0]["detail"]

    # More budget, and the user asks for the agent's summaries after all.
    monkeypatch.setenv("MEMOIR_DAILY_BUDGET_USD", "100")
    with Store.open(memoir_home) as store:
        session = store.get_session(SID)
        assert session is not None
        store.request_reprocess(session.id, end=False)
    again = FakeAgentFactory()
    _run_worker(memoir_home, again, scenario)
    kinds = [r[0] for r in conn.execute("SELECT kind FROM summaries ORDER BY prompt_number")]
    assert kinds == ["agent", "agent"]
    assert _count(memoir_home, "SELECT COUNT(*) FROM events WHERE status != 'processed'") == 0


def test_no_request_at_all_once_the_budget_is_spent(memoir_home: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMOIR_DAILY_BUDGET_TOKENS", "1000")
    _seed_prompts(memoir_home, 1, 2)
    with Store.open(memoir_home) as store:
        session = store.get_session(SID)
        assert session is not None
        store.record_agent_request(session.id, kind="observe", events=1, model="m",
                                   agent_session_id="earlier", usage=_usage(0.1, tokens=1000))
    factory = FakeAgentFactory()

    async def scenario(worker: Worker) -> None:
        await _until(lambda: _count(memoir_home, "SELECT COUNT(*) FROM summaries") == 1)

    _run_worker(memoir_home, factory, scenario)
    assert factory.agents == []  # not even started: no warm-up, no keep-alive
    (row,) = db(memoir_home).execute("SELECT kind, notes FROM summaries").fetchall()
    assert row["kind"] == "fallback" and "token budget" in row["notes"]


FIXED = {"input_tokens": 1200, "output_tokens": 300, "cache_read_input_tokens": 5000,
         "cache_creation_input_tokens": 800}
# claude-haiku-4-5 list prices per million tokens: input 1, output 5, cache read
# 0.10, cache write (5 min) 1.25.
FIXED_COST = (1200 * 1 + 300 * 5 + 5000 * 0.10 + 800 * 1.25) / 1e6


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_usage_as_the_sdk_reports_it_is_stored_and_shown(
        run_hook: HookRunner, memoir_home: Path, mock_api: MockAnthropic,
        tmp_path: Path) -> None:
    def fixed(req: RecordedRequest, blocks: list[dict[str, object]]) -> dict[str, int]:
        return dict(FIXED)

    mock_api.usage = fixed
    env = api_env(mock_api, tmp_path)
    project = payload("stop")["cwd"]
    for number, text in ((1, "first request"), (2, "second request")):
        assert run_hook("user-prompt-submit", dict(payload("user_prompt_submit"),
                                                   session_id=SID, prompt=text),
                        env=env).returncode == 0
        for i in range(3):
            data = dict(payload("post_tool_use_bash"), session_id=SID,
                        tool_use_id=f"toolu_u{number}{i}",
                        tool_input={"command": f"echo {number}-{i}"},
                        tool_response={"stdout": f"{number}-{i}", "stderr": ""})
            assert run_hook("post-tool-use", data, env=env).returncode == 0
        assert run_hook("stop", dict(payload("stop"), session_id=SID), env=env).returncode == 0
        wait_for(lambda n=number: _count(memoir_home, "SELECT COUNT(*) FROM summaries") == n,
                 timeout=90, message=f"the summary of prompt {number}")
    agent_requests = mock_api.messages_requests(agent=True)
    rows = db(memoir_home).execute("SELECT * FROM agent_requests ORDER BY id").fetchall()
    assert len(rows) == len(agent_requests) == 2  # one per prompt
    for r in rows:
        assert (r["kind"], r["events"]) == ("observe+summary", 3)
        assert (r["input_tokens"], r["output_tokens"], r["cache_read_tokens"],
                r["cache_write_tokens"]) == (1200, 300, 5000, 800)
        assert r["cost_usd"] == pytest.approx(FIXED_COST)
    done = subprocess.run([*memoir_command(), "usage", "--cwd", project, "--json"],
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=30)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    (day,) = shown["days"]
    assert (day["requests"], day["tool_calls"], day["input_tokens"]) == (2, 6, 2400)
    assert day["cost_usd"] == pytest.approx(2 * FIXED_COST, abs=1e-6)
    assert day["input_tokens_per_tool_call"] == pytest.approx((2400 + 10000 + 1600) / 6, 0.01)
    text = subprocess.run([*memoir_command(), "usage", "--cwd", project], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=30).stdout
    assert f"${2 * FIXED_COST:.4f}" in text and "total" in text
    bad = subprocess.run([*memoir_command(), "usage", "--since", "lately"], capture_output=True,
                         text=True, env={**os.environ, **env}, timeout=30)
    assert bad.returncode == 2 and "invalid --since" in bad.stderr and not bad.stdout
