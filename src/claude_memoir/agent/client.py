"""The memory agent: a small model, reached through the Claude Agent SDK.

The worker talks to it through ``MemoryAgent``: ``start``, ``ask`` (one user
message in, the agent's full text reply out), ``close``. ``SdkAgent`` is the real
one: a ``ClaudeSDKClient`` connected to a streaming async generator, so one Claude
Code process serves the whole session (init prompt, observations, summaries)
instead of paying a CLI start per message.

Only the worker imports this module; the SDK itself is imported inside
``SdkAgent.start`` so even the worker can listen on its socket before paying the
~1 s import.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

from ..errors import AgentError
from ..log import get_logger
from .models import AgentReply, Usage
from .prompts import SYSTEM_PROMPT

log = get_logger(__name__)


class MemoryAgent(Protocol):
    """What the worker needs from an agent (the tests' fake implements it too)."""

    @property
    def session_id(self) -> str | None:
        """The agent's own SDK session id, once known."""
        ...

    async def start(self) -> None:
        """Start the agent (spawn its process, connect)."""
        ...

    async def ask(self, text: str, timeout: float) -> AgentReply:
        """Send one user message; return the agent's reply and the request's usage."""
        ...

    async def close(self) -> None:
        """Stop the agent and its process; never blocks for long."""
        ...


def agent_env() -> dict[str, str]:
    """Environment additions for the agent's Claude Code process.

    ``MEMOIR_WORKER=1`` makes every claude-memoir hook return at once should the
    agent's CLI ever load the user's hooks (belt and braces with
    ``setting_sources=[]``); the CLI's own chatter is switched off because the
    agent only needs the Messages API. ``CLAUDE_CODE_MAX_RETRIES=2``: the
    worker retries failed calls with its own backoff, and the CLI's default (10
    retries) turned one refused connection into minutes (measured: 2.4 s with
    2 retries).
    """
    return {
        "MEMOIR_WORKER": "1",
        "MEMOIR_AGENT_PARENT": str(os.getpid()),
        "CLAUDE_CODE_MAX_RETRIES": "2",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
    }


_LAUNCHER = """#!{python} -IS
# claude-memoir: start the memory agent's Claude Code CLI so that it dies with
# its worker, even when the worker is SIGKILLed (PR_SET_PDEATHSIG survives exec).
# Written by claude_memoir.agent; safe to delete.
import ctypes, os, signal, sys
REAL = {real!r}
parent = int(os.environ.get("MEMOIR_AGENT_PARENT") or 0)
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
except Exception:
    pass
if parent and os.getppid() != parent:
    sys.exit(1)  # the worker died before the signal was armed
os.execv(REAL, [REAL] + sys.argv[1:])
"""


def real_cli(sdk_file: str) -> str | None:
    """The Claude Code CLI the SDK would run: its bundled one, else ``claude`` on PATH."""
    bundled = Path(sdk_file).parent / "_bundled" / "claude"
    if bundled.is_file():
        return str(bundled)
    return shutil.which("claude")


def launcher(directory: Path, real: str) -> Path | None:
    """Write (if needed) and return the PDEATHSIG launcher, on Linux only.

    Without it, an agent CLI busy in a request when its worker is SIGKILLed
    keeps running unowned (claude-mem users found hundreds of such processes).
    """
    if sys.platform != "linux":
        return None
    path = directory / ".launch-claude"
    content = _LAUNCHER.format(python=sys.executable, real=real)
    try:
        if not path.exists() or path.read_text() != content:
            tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
            with os.fdopen(fd, "w") as fh:
                fh.write(content)
            os.replace(tmp, path)
    except OSError as e:
        log.warning("cannot write the agent launcher %s: %s", path, e)
        return None
    return path


class SdkAgent:
    """The real memory agent: one ``ClaudeSDKClient`` fed by an async generator."""

    def __init__(self, *, model: str, cwd: Path, resume: str | None = None,
                 project: str | None = None) -> None:
        self.model = model
        self.cwd = cwd
        self.resume = resume
        # The user's project: its .claude/settings*.json may hold the
        # apiKeyHelper the user's own Claude Code authenticates with.
        self.project = project
        self._session_id: str | None = resume
        self._client: Any = None
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue()

    @property
    def session_id(self) -> str | None:
        """The agent's SDK session id (from the CLI's messages), once known."""
        return self._session_id

    async def _messages(self) -> AsyncIterator[dict[str, Any]]:
        # The streaming input: the worker puts one user message at a time into
        # the outbox and waits for its reply before the next, so replies map to
        # requests one to one; None ends the stream (and the CLI's stdin).
        while True:
            text = await self._outbox.get()
            if text is None:
                return
            yield {
                "type": "user",
                "message": {"role": "user", "content": text},
                "parent_tool_use_id": None,
                "session_id": self._session_id or "default",
            }

    async def start(self) -> None:
        """Import the SDK, spawn the agent's Claude Code process and connect."""
        try:
            # Imported in a thread: the import takes ~1 s, and on the event
            # loop it would stall the worker's socket, so hooks waiting for an
            # ack would time out and retry.
            sdk = await asyncio.to_thread(importlib.import_module, "claude_agent_sdk")
        except ImportError as e:
            raise AgentError("claude-agent-sdk is not installed", reason="no-sdk") from e
        ClaudeAgentOptions, ClaudeSDKClient = sdk.ClaudeAgentOptions, sdk.ClaudeSDKClient
        self.cwd.mkdir(parents=True, exist_ok=True, mode=0o700)
        real = real_cli(sdk.__file__ or "")
        cli_path = launcher(self.cwd, real) if real else None
        from .auth import agent_settings

        options = ClaudeAgentOptions(
            model=self.model,
            system_prompt=SYSTEM_PROMPT,
            # No tool definitions at all: the agent only reads and writes text,
            # and the default sends ~12k tokens of tool schemas per request.
            tools=[],
            allowed_tools=[],
            # No user/project settings: with them the agent's CLI would run the
            # user's hooks, i.e. ours, and record itself recursively.
            setting_sources=[],
            # ... but the credential settings of the user's Claude Code
            # (apiKeyHelper, env keys) and disableAllHooks, through --settings:
            # without them a user who authenticates through a helper gets
            # "Not logged in" from the agent (auth.py).
            settings=json.dumps(agent_settings(self.project)),
            cwd=str(self.cwd),
            env=agent_env(),
            resume=self.resume,
            max_turns=1,
            cli_path=cli_path,
        )
        self._client = ClaudeSDKClient(options)
        try:
            await self._client.connect(self._messages())
        except Exception as e:
            self._client = None
            raise AgentError(f"agent failed to start: {e}", reason="start") from e
        log.info("memory agent started (model %s, resume %s)", self.model, self.resume)

    async def ask(self, text: str, timeout: float) -> AgentReply:
        """Send ``text`` and collect the reply up to its ResultMessage.

        The ResultMessage's ``usage`` covers this turn alone, while its
        ``total_cost_usd`` is the CLI's running total for the agent session
        (measured on CLI 2.1: it grows turn by turn and carries on across a
        resume); both go into the reply's ``Usage`` as reported.
        """
        if self._client is None:
            raise AgentError("agent is not started", reason="not-started")
        from claude_agent_sdk import AssistantMessage, ResultMessage, TextBlock

        await self._outbox.put(text)
        parts: list[str] = []
        usage: Usage | None = None
        try:
            async with asyncio.timeout(timeout):
                async for message in self._client.receive_messages():
                    if isinstance(message, AssistantMessage):
                        parts.extend(b.text for b in message.content if isinstance(b, TextBlock))
                    elif isinstance(message, ResultMessage):
                        if message.session_id:
                            self._session_id = message.session_id
                        usage = Usage.from_sdk(message.usage, message.total_cost_usd)
                        if message.is_error:
                            raise AgentError(
                                f"agent turn failed: {message.result or message.subtype}",
                                reason="turn-error",
                            )
                        break
        except TimeoutError as e:
            raise AgentError(f"agent did not answer within {timeout:.0f}s",
                             reason="timeout") from e
        except AgentError:
            raise
        except Exception as e:
            raise AgentError(f"agent failed: {e}", reason="sdk") from e
        return AgentReply(text="".join(parts), usage=usage)

    async def close(self) -> None:
        """End the stream and disconnect; the SDK terminates the CLI process."""
        client, self._client = self._client, None
        if client is None:
            return
        await self._outbox.put(None)
        try:
            async with asyncio.timeout(10):
                await client.disconnect()
        except Exception as e:  # a failing close must not keep the worker alive
            log.warning("agent disconnect failed: %s", e)


def default_agent_factory(model: str, cwd: Path, resume: str | None,
                          project: str | None = None) -> MemoryAgent:
    """Build the real agent (the worker's default)."""
    return SdkAgent(model=model, cwd=cwd, resume=resume, project=project)

