"""A mock Anthropic Messages API served on 127.0.0.1 for the test suite.

Both Claude Code processes of a test talk to it: the user's ``claude -p`` session
and the memory agent the worker runs through the Agent SDK. They are told apart by
User-Agent (``sdk-cli`` vs ``sdk-py``), as measured on Claude Code 2.1.330, and the
memory agent's message kinds by the markers ``prompts.py`` puts in them.

Every request is recorded (path, headers, JSON body) so tests can assert on what
reached the "LLM": e.g. that session 2's first request carries session 1's summary.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Content of one assistant turn: list of blocks in Messages API form.
Blocks = list[dict[str, Any]]


@dataclass
class RecordedRequest:
    """One request as the mock received it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    # What the mock answered (None until it did, or for non-message paths):
    # lets a benchmark count output as well as input.
    reply: Blocks | None = None

    @property
    def user_agent(self) -> str:
        return self.headers.get("user-agent", "")

    @property
    def from_agent_sdk(self) -> bool:
        """True for the memory agent (Agent SDK), False for the user's CLI."""
        return "sdk-py" in self.user_agent

    def text(self) -> str:
        """Everything textual in the request (system + messages), for searching."""
        return json.dumps(self.body, ensure_ascii=False)

    def last_user_text(self) -> str:
        """Text of the last user message (string or text/tool_result blocks)."""
        for message in reversed(self.body.get("messages", [])):
            if message.get("role") != "user":
                continue
            return _content_text(message.get("content"))
        return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_result":
            parts.append(_content_text(block.get("content")))
    return "\n".join(parts)


def text_block(text: str) -> dict[str, Any]:
    """An assistant text block."""
    return {"type": "text", "text": text}


def tool_use_block(tool_id: str, name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    """An assistant tool_use block."""
    return {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}


AGENT_OBSERVATION = """<observation>
  <type>discovery</type>
  <title>{title}</title>
  <subtitle>Observed a {tool} call</subtitle>
  <facts><fact>The {tool} tool ran during the session</fact></facts>
  <narrative>The session ran {tool}; this is a mock observation.</narrative>
  <concepts><concept>testing</concept></concepts>
  <files_read></files_read>
  <files_modified></files_modified>
</observation>"""

AGENT_SUMMARY = """Here is the summary.
<summary>
  <request>{request}</request>
  <investigated>How the shell behaves in the project.</investigated>
  <learned>{marker}</learned>
  <completed>Created test.txt with echo.</completed>
  <next_steps>None.</next_steps>
  <notes>mock summary</notes>
</summary>"""


def default_agent_reply(req: RecordedRequest, summary_marker: str) -> Blocks:
    """The memory agent's mock behaviour: one observation per event a message carries,
    then a summary if the message asks for one (a finished prompt's batch asks both)."""
    last = req.last_user_text()
    parts = []
    if "MEMOIR-OBSERVE" in last:
        tools = re.findall(r"<tool>(.*?)</tool>", last) or ["unknown"]
        parts += [AGENT_OBSERVATION.format(title=f"Ran {tool} (mock)", tool=tool)
                  for tool in tools]
    if "MEMOIR-SUMMARY-REQUEST" in last:
        # The summary request's own <user_request> is the last one in the message
        # (an init prompt in front of it names the session's first request).
        found = re.findall(r"<user_request>(.*?)</user_request>", last, re.S)
        request = (found[-1].strip() if found else "the user's request")[:200]
        parts.append(AGENT_SUMMARY.format(request=request, marker=summary_marker))
    return [text_block("\n".join(parts) if parts else "Ready.")]


def estimated_usage(req: RecordedRequest, blocks: Blocks) -> dict[str, int]:
    """Usage as the API would report it, estimated at 4 characters a token: input from
    the request's system, messages and tools as JSON, output from the reply."""
    body = req.body
    chars_in = sum(len(json.dumps(body[key], ensure_ascii=False))
                   for key in ("system", "messages", "tools") if key in body)
    chars_out = sum(len(b.get("text", "")) if b.get("type") == "text"
                    else len(json.dumps(b.get("input", {}))) for b in blocks)
    return {"input_tokens": chars_in // 4, "output_tokens": max(chars_out // 4, 1),
            "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}


@dataclass
class ScriptedCli:
    """The user's session: run one Bash tool, then answer with a final text.

    Keyed on the conversation: if the last user message carries a tool_result the
    tool already ran, so finish; otherwise ask for the tool. Requests without
    tools (title generation and other side calls) get a short text.
    """

    command: str = "echo hello > test.txt && cat test.txt"
    final_text: str = "Done. MOCK_FINAL_REPLY"
    counter: int = 0

    def __call__(self, req: RecordedRequest) -> Blocks:
        body = req.body
        if not body.get("tools"):
            return [text_block("Mock title")]
        messages = body.get("messages", [])
        last = messages[-1] if messages else {}
        content = last.get("content")
        if isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in content
        ):
            return [text_block(self.final_text)]
        self.counter += 1
        return [
            text_block("Running the command."),
            tool_use_block(
                f"toolu_mock{self.counter:06d}",
                "Bash",
                {"command": self.command, "description": "Run the scripted command"},
            ),
        ]


@dataclass
class MockAnthropic:
    """The server, its request log and its behaviour.

    ``cli`` answers the user's Claude Code session, ``agent`` the memory agent;
    either may be replaced by a test. ``fail_agent`` makes agent requests fail
    with that HTTP status (e.g. 500) to simulate an unavailable LLM.
    ``agent_delay`` holds agent replies that many seconds (only those whose last
    user message contains ``delay_on``, if set), so a test can kill a worker
    while its request is in flight. ``usage`` says what each reply reports as
    its usage (default: ``estimated_usage``, 4 characters a token).
    """

    summary_marker: str = "MOCK-SUMMARY-MARKER"
    cli: Callable[[RecordedRequest], Blocks] = field(default_factory=ScriptedCli)
    agent: Callable[[RecordedRequest], Blocks] | None = None
    fail_agent: int | None = None
    agent_delay: float = 0.0
    delay_on: str | None = None
    usage: Callable[[RecordedRequest, Blocks], dict[str, int]] = estimated_usage
    requests: list[RecordedRequest] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> MockAnthropic:
        """Serve on an ephemeral 127.0.0.1 port in a daemon thread."""
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def messages_requests(self, *, agent: bool | None = None) -> list[RecordedRequest]:
        """Recorded POSTs to /v1/messages, optionally only the agent's or the CLI's."""
        with self._lock:
            reqs = [r for r in self.requests if r.path.split("?")[0] == "/v1/messages"]
        if agent is None:
            return reqs
        return [r for r in reqs if r.from_agent_sdk == agent]

    def take_requests(self) -> list[RecordedRequest]:
        """Every request recorded so far, forgotten by the mock: a long benchmark
        tallies them as it goes instead of holding every request body."""
        with self._lock:
            taken, self.requests = self.requests, []
        return taken

    def reply(self, req: RecordedRequest) -> Blocks:
        if req.from_agent_sdk:
            if self.agent is not None:
                return self.agent(req)
            return default_agent_reply(req, self.summary_marker)
        return self.cli(req)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _stream_events(blocks: Blocks, model: str, msg_id: str,
                   usage: dict[str, int]) -> list[bytes]:
    start_usage = {**usage, "output_tokens": 1}
    stop_reason = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    out = [
        _sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
        )
    ]
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            out.append(
                _sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": index,
                     "content_block": {"type": "text", "text": ""}},
                )
            )
            out.append(
                _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index,
                     "delta": {"type": "text_delta", "text": block["text"]}},
                )
            )
        else:
            out.append(
                _sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": index,
                     "content_block": {"type": "tool_use", "id": block["id"],
                                       "name": block["name"], "input": {}}},
                )
            )
            out.append(
                _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index,
                     "delta": {"type": "input_json_delta",
                               "partial_json": json.dumps(block["input"])}},
                )
            )
        out.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    out.append(
        _sse(
            "message_delta",
            {"type": "message_delta",
             "delta": {"stop_reason": stop_reason, "stop_sequence": None},
             "usage": {"output_tokens": usage["output_tokens"]}},
        )
    )
    out.append(_sse("message_stop", {"type": "message_stop"}))
    return out


def _make_handler(mock: MockAnthropic) -> type[BaseHTTPRequestHandler]:
    counter = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # keep pytest output clean

        def _send_json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            self._send_json(200, {"data": [], "has_more": False})

        def do_HEAD(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {}
            req = RecordedRequest(
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body if isinstance(body, dict) else {},
            )
            mock.record(req)
            path = self.path.split("?")[0]
            if path.endswith("/count_tokens"):
                self._send_json(200, {"input_tokens": 100})
                return
            if path != "/v1/messages":
                self._send_json(404, {"type": "error",
                                      "error": {"type": "not_found_error", "message": path}})
                return
            if req.from_agent_sdk and mock.fail_agent:
                self._send_json(mock.fail_agent, {"type": "error", "error": {
                    "type": "api_error", "message": "mock failure"}})
                return
            if req.from_agent_sdk and mock.agent_delay and (
                    mock.delay_on is None or mock.delay_on in req.last_user_text()):
                time.sleep(mock.agent_delay)
            try:
                blocks = mock.reply(req)
            except Exception as exc:  # a broken test script must show, not hang
                self._send_json(500, {"type": "error",
                                      "error": {"type": "api_error", "message": repr(exc)}})
                return
            req.reply = blocks
            usage = mock.usage(req, blocks)
            counter["n"] += 1
            msg_id = f"msg_mock{counter['n']:06d}"
            model = str(body.get("model", "mock-model"))
            if body.get("stream"):
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("connection", "close")
                self.end_headers()
                try:
                    for chunk in _stream_events(blocks, model, msg_id, usage):
                        self.wfile.write(chunk)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client was killed mid-stream: what fault tests do
                self.close_connection = True
                return
            stop_reason = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
            self._send_json(200, {
                "id": msg_id, "type": "message", "role": "assistant", "model": model,
                "content": blocks, "stop_reason": stop_reason, "stop_sequence": None,
                "usage": usage,
            })

    return Handler
