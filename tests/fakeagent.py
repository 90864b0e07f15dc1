"""An in-process fake memory agent behind the same interface as ``agent.SdkAgent``.

Cheap unit tests of the worker use it; tests that need the real thing run the
Agent SDK against ``mockapi``. It answers like the mock: one observation per
``<tool>`` in an observation message, a summary for a summary request.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from claude_memoir.agent.models import AgentReply, Usage
from claude_memoir.errors import AgentError

# What the fake agent bills: haiku's list prices per token (input, output).
PRICE_IN, PRICE_OUT = 1e-6, 5e-6


@dataclass
class FakeAgent:
    """Records every message; can be slow (``delay``) or fail (``fail_*``)."""

    resume: str | None = None
    delay: float = 0.0
    fail_start: bool = False
    fail_start_on_resume: bool = False
    # Fail this many asks in all, then succeed. A one-item list so every agent a
    # factory builds (the worker drops a failed agent and starts a new one)
    # draws from the same budget.
    fail_asks: list[int] = field(default_factory=lambda: [0])
    summary_text: str = "FAKE-LEARNED"
    # The session id a fresh (not resumed) agent reports.
    new_session_id: str = "fake-agent-session"
    messages: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    started: int = 0
    closed: int = 0
    # Running total cost of this agent's session, reported like the CLI does.
    cost_total: float = 0.0
    _session_id: str | None = None

    @property
    def session_id(self) -> str | None:
        return self._session_id

    async def start(self) -> None:
        if self.fail_start or (self.fail_start_on_resume and self.resume):
            raise AgentError("fake start failure", reason="start")
        self.started += 1
        self._session_id = self.resume or self.new_session_id

    async def ask(self, text: str, timeout: float) -> AgentReply:
        self.messages.append(text)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_asks[0] > 0:
            self.fail_asks[0] -= 1
            raise AgentError("fake ask failure", reason="sdk")
        reply = self._reply(text)
        self.replies.append(reply)
        tokens_in, tokens_out = len(text) // 4, len(reply) // 4
        self.cost_total += tokens_in * PRICE_IN + tokens_out * PRICE_OUT
        return AgentReply(text=reply, usage=Usage(input_tokens=tokens_in,
                                                  output_tokens=tokens_out,
                                                  cost_total_usd=self.cost_total))

    def _reply(self, text: str) -> str:
        """Observations for the events a message carries, then a summary if asked."""
        tools = re.findall(r"<tool>(.*?)</tool>", text)
        ids = re.findall(r'<event id="(\d+)">', text)
        parts = [
            f"<observation><type>change</type><title>Used {t} #{i}</title>"
            f"<subtitle>event {ids[i] if i < len(ids) else '?'}</subtitle>"
            f"<narrative>fake</narrative></observation>" for i, t in enumerate(tools)]
        if "MEMOIR-SUMMARY-REQUEST" in text:
            parts.append(f"<summary><request>req</request><learned>{self.summary_text}"
                         "</learned><completed>done</completed></summary>")
        return "\n".join(parts)

    async def close(self) -> None:
        self.closed += 1


@dataclass
class FakeAgentFactory:
    """Builds FakeAgents with shared settings and keeps them for inspection."""

    template: dict = field(default_factory=dict)
    agents: list[FakeAgent] = field(default_factory=list)

    def __call__(self, model: str, cwd: object, resume: str | None,
                 project: str | None = None) -> FakeAgent:
        # Each fresh conversation gets its own id, like the real CLI's.
        fresh = sum(1 for a in self.agents if a.resume is None)
        name = "fake-agent-session" + (f"-{fresh + 1}" if fresh else "")
        agent = FakeAgent(resume=resume, new_session_id=name, **self.template)
        self.agents.append(agent)
        return agent

    @property
    def messages(self) -> list[str]:
        return [m for a in self.agents for m in a.messages]
