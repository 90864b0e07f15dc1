"""Recorded sessions for tests of the viewer and the data commands, written
through the store's own recording calls (the rows hooks and the worker write)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from claude_memoir.agent.models import Observation, Summary
from claude_memoir.store import SessionRow, Store


def record_session(home: Path, sid: str, project: str,
                   turns: Sequence[tuple[str, Sequence[Observation], Summary | None]],
                   *, status: str = "completed") -> SessionRow:
    """A session with numbered prompts, one raw event, observations and a summary per turn."""
    with Store.open(home) as store:
        session = store.upsert_session(sid, project, project)
        for text, observations, summary in turns:
            number = store.add_prompt(session.id, text)
            event = store.add_event(session.id, number, "Bash", {"command": f"run {number}"},
                                    {"stdout": f"output of {text} " + "x" * 2000})
            assert event is not None
            store.record_observations(session.id, [event], observations, number)
            store.finish_prompt(session.id, number, f"done with {text}")
            if summary is not None:
                store.save_summary(session.id, number, summary)
        if status != "active":
            store.set_status(session.id, status)  # type: ignore[arg-type]
        row = store.get_session(sid)
        assert row is not None
        return row


def observation(title: str, **fields: object) -> Observation:
    """An observation with a title and plausible defaults."""
    values: dict[str, object] = {"type": "discovery", "subtitle": f"about {title}",
                                 "facts": [f"{title} fact one", f"{title} fact two"],
                                 "narrative": f"The story of {title}.",
                                 "files_read": ["src/app.py"], "files_modified": []}
    values.update(fields)
    return Observation(title=title, **values)  # type: ignore[arg-type]
