"""What SessionStart injects: recent summaries and observation titles of a project.

The text goes to the model as part of a system message on every request of the
new session, so it is bounded by ``context_budget`` characters: the newest
summaries first, whole ones only, then observation titles while room is left.
"""

from __future__ import annotations

import os

from ..config import Settings
from ..store import SessionRow, Store, SummaryRow
from .project import project_key

_HEADER = (
    "# claude-memoir: what happened in earlier sessions of this project\n"
    "Recorded automatically from past Claude Code sessions in {project}. "
    "Newest first. Use it as background; verify before relying on details.\n"
)
_FOOTER = "(end of claude-memoir context)"


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def render_summary(session: SessionRow, summary: SummaryRow) -> str:
    """One summary as a short Markdown section."""
    when = summary.created_at[:16].replace("T", " ")
    kind = " (fallback: built from raw events)" if summary.kind == "fallback" else ""
    lines = [f"## {when} UTC, session {session.claude_session_id[:8]}, "
             f"prompt {summary.prompt_number}{kind}"]
    for label, value in (
        ("Request", summary.request),
        ("Investigated", summary.investigated),
        ("Learned", summary.learned),
        ("Completed", summary.completed),
        ("Next steps", summary.next_steps),
        ("Notes", summary.notes),
    ):
        if value.strip():
            lines.append(f"- **{label}:** {_one_line(value, 600)}")
    return "\n".join(lines) + "\n"


def build_context(store: Store, settings: Settings, cwd: str | os.PathLike[str],
                  exclude_session: str | None = None) -> str:
    """The context text for a session starting in ``cwd`` ("" when there is no history)."""
    project = project_key(cwd)
    budget = settings.context_budget
    if budget <= 0:
        return ""
    summaries = store.recent_summaries(project, settings.context_summaries, exclude_session)
    observations = store.recent_observations(project, settings.context_observations,
                                             exclude_session)
    if not summaries and not observations:
        return ""
    header = _HEADER.format(project=os.path.basename(project.rstrip(os.sep)) or project)
    # The text is "\n".join(parts): each part costs its length plus one separator.
    parts = [header]
    used = len(header) + 1 + len(_FOOTER)
    for session, summary in summaries:
        section = render_summary(session, summary)
        if used + len(section) + 1 > budget:
            break
        parts.append(section)
        used += len(section) + 1
    if observations:
        title = "## Recent observations\n"
        lines = []
        room = budget - used - len(title) - 1
        for obs in observations:
            line = f"- [{obs.type}] {_one_line(obs.title, 160)}"
            if obs.subtitle:
                line += f": {_one_line(obs.subtitle, 160)}"
            line += "\n"
            if len(line) > room:
                break
            lines.append(line)
            room -= len(line)
        if lines:
            parts.append(title + "".join(lines))
    if len(parts) == 1:
        return ""  # nothing fitted: better no context than a bare header
    parts.append(_FOOTER)
    return "\n".join(parts)
