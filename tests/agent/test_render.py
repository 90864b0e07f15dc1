"""Tool-aware compact rendering (issue 12): each event sent once, compactly.

Payloads are the real captures from Claude Code (tests/payloads), grown where a
test needs size.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from claude_memoir.agent.parser import parse_observations, parse_summary
from claude_memoir.agent.prompts import EventView, batch_prompt, observation_prompt
from conftest import payload

FILE = "".join(f"line {i:04d}: def handler_{i}(request): return request.body\n"
               for i in range(400))  # ~22,000 characters


def _view(name: str, id: int = 1, **changes: Any) -> EventView:
    data = copy.deepcopy(payload(name))
    for key, value in changes.items():
        data[key] = value
    return EventView(id=id, tool_name=data["tool_name"], tool_input=data.get("tool_input"),
                     tool_response=data.get("tool_response"),
                     failed=data["hook_event_name"] == "PostToolUseFailure",
                     error=data.get("error"), prompt_number=1,
                     created_at="2026-12-01T10:00:00Z")


def _write(content: str, id: int = 1) -> EventView:
    base = payload("post_tool_use_write")
    return _view("post_tool_use_write", id,
                 tool_input=dict(base["tool_input"], content=content),
                 tool_response=dict(base["tool_response"], content=content))


def test_write_sends_its_content_once() -> None:
    content = "UNIQUE-CONTENT-MARK\n" + "x = 1\n" * 100
    message = observation_prompt([_write(content)], 4000)
    assert message.count("UNIQUE-CONTENT-MARK") == 1
    assert "<file>/tmp/rc1/proj/notes.md</file>" in message
    assert "<output>created</output>" in message
    assert "structuredPatch" not in message and "userModified" not in message


def test_edit_sends_old_and_new_strings_not_the_file() -> None:
    base = payload("post_tool_use_edit")
    event = _view("post_tool_use_edit", tool_input=dict(
        base["tool_input"], old_string="line 0007: OLD", new_string="line 0007: NEW"),
        tool_response=dict(base["tool_response"], originalFile=FILE,
                           oldString="line 0007: OLD", newString="line 0007: NEW"))
    message = observation_prompt([event], 4000)
    assert "<old>line 0007: OLD</old>" in message and "<new>line 0007: NEW</new>" in message
    assert "handler_200" not in message  # nothing of the original file
    assert len(message) < 1200


def test_read_keeps_head_and_tail_of_the_file_text() -> None:
    base = payload("post_tool_use_read")
    file = dict(base["tool_response"]["file"], content=FILE, numLines=400, totalLines=400)
    event = _view("post_tool_use_read", tool_response=dict(base["tool_response"], file=file))
    message = observation_prompt([event], 4000)
    assert "line 0000: def handler_0(request)" in message  # head, as plain lines
    assert "line 0399: def handler_399(request)" in message  # tail
    assert re.search(r"characters elided", message)
    assert "<lines>400 of 400 lines</lines>" in message
    assert "\\n" not in message  # file text, not JSON with escaped newlines
    assert len(message) < 4000 + 600


def test_repeated_identical_outputs_are_referenced_not_resent() -> None:
    base = payload("post_tool_use_bash")
    out = "collected 120 items\n" + "test_x.py ......\n" * 40 + "120 passed"
    runs = [_view("post_tool_use_bash", id=i, tool_input={"command": f"pytest -q  # run {i}"},
                  tool_response=dict(base["tool_response"], stdout=out)) for i in (5, 6, 7)]
    message = observation_prompt(runs, 4000)
    assert message.count("collected 120 items") == 1
    assert message.count('<stdout same_as="5"/>') == 2
    assert all(f"# run {i}" in message for i in (5, 6, 7))  # each event still there


def test_write_then_read_of_the_same_text_is_referenced() -> None:
    content = "".join(f"setting_{i} = {i}\n" for i in range(50))
    base = payload("post_tool_use_read")
    read = _view("post_tool_use_read", id=2, tool_response=dict(
        base["tool_response"], file=dict(base["tool_response"]["file"], content=content)))
    message = observation_prompt([_write(content, id=1), read], 4000)
    assert message.count("setting_49 = 49") == 1
    assert '<output same_as="1"/>' in message


def test_failed_tool_shows_its_error() -> None:
    message = observation_prompt([_view("post_tool_use_failure_bash")], 4000)
    assert "<command>echo oops &gt;&amp;2; exit 3</command>" in message
    assert "<error>Exit code 3\noops</error>" in message


def test_unknown_tool_and_odd_shapes_fall_back_to_json() -> None:
    odd = EventView(id=1, tool_name="WebFetch", tool_input={"url": "https://x.test"},
                    tool_response={"code": 200, "result": "page"}, failed=False, error=None,
                    prompt_number=1, created_at="t")
    message = observation_prompt([odd], 4000)
    assert '<input>{"url": "https://x.test"}</input>' in message
    assert '<output>{"code": 200, "result": "page"}</output>' in message
    # A Read whose response was stored as bounded JSON text (too big to keep whole).
    text = '{"type": "text", "file": {"content": "' + "y" * 9000
    bounded = _view("post_tool_use_read", tool_response=text)
    assert '<output>{"type": "text"' in observation_prompt([bounded], 4000)


def test_compact_rendering_is_much_smaller_for_file_tools() -> None:
    """The three file tools as Claude Code reports them, rendered: the compact form
    is less than half of sending input and response as JSON (what was done before)."""
    import json

    base = payload("post_tool_use_edit")
    edit = _view("post_tool_use_edit", tool_response=dict(base["tool_response"],
                                                          originalFile=FILE[:6000]))
    events = [_write(FILE[:6000], id=1), edit]
    compact = len(observation_prompt(events, 4000))
    naive = sum(min(len(json.dumps(e.tool_input)), 4000) + min(len(json.dumps(e.tool_response)),
                                                                4000) for e in events)
    assert compact < naive / 2, (compact, naive)


def test_batch_prompt_asks_for_observations_then_the_summary() -> None:
    message = batch_prompt([_view("post_tool_use_bash")], 4000, 3, "make it <fast>",
                           "Done: it is fast now.")
    assert message.index("MEMOIR-OBSERVE") < message.index("MEMOIR-SUMMARY-REQUEST")
    assert "prompt #3 is finished" in message
    assert "<user_request>make it &lt;fast&gt;</user_request>" in message
    assert "<final_reply>Done: it is fast now.</final_reply>" in message
    # The message itself holds no block the parser would take for a reply.
    assert parse_observations(message) == [] and parse_summary(message) is None
    assert batch_prompt([], 4000, 3, "x", None).startswith("[MEMOIR-SUMMARY-REQUEST]")
