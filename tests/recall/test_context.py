"""build_context: what SessionStart injects, built from a real SQLite store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from claude_memoir.agent.models import Observation, Summary
from claude_memoir.config import Settings, load_settings
from claude_memoir.recall.context import build_context, render_summary
from claude_memoir.recall.project import project_key
from claude_memoir.store import SessionRow, Store

FOOTER = "(end of claude-memoir context)"
HEADER_START = "# claude-memoir: what happened in earlier sessions of this project\n"
# The first line of a rendered summary section: "## 2025-01-01 12:00 UTC, session ..."
SUMMARY_HEADING = re.compile(r"^## \d{4}-\d\d-\d\d \d\d:\d\d UTC, session ", re.M)
OBS_HEADING = "## Recent observations\n"


# -- helpers ------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "work" / "proj"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def store(memoir_home: Path) -> Store:
    s = Store.open(memoir_home)
    yield s
    s.close()


def settings(monkeypatch: pytest.MonkeyPatch, **env: object) -> Settings:
    """Settings as a user would set them: MEMOIR_* variables, read by load_settings()."""
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    return load_settings()


def new_session(store: Store, session_id: str, proj: Path) -> SessionRow:
    return store.upsert_session(session_id, project_key(proj), str(proj))


def add_summary(store: Store, session: SessionRow, summary: Summary,
                kind: str = "agent") -> int:
    number = store.add_prompt(session.id, summary.request or "a prompt")
    store.save_summary(session.id, number, summary, kind)  # type: ignore[arg-type]
    return number


def add_observations(store: Store, session: SessionRow,
                     observations: list[Observation]) -> list[int]:
    number = store.current_prompt_number(session.id) or store.add_prompt(session.id, "work")
    event = store.add_event(session.id, number, "Bash", {"command": "true"}, {"stdout": ""})
    assert event is not None
    ids = store.record_observations(session.id, [event], observations, number)
    assert len(ids) == len(observations)
    return ids


def summary_headings(text: str) -> list[str]:
    return SUMMARY_HEADING.findall(text)


def obs_lines(text: str) -> list[str]:
    if OBS_HEADING not in text:
        return []
    block = text.split(OBS_HEADING, 1)[1]
    return [line for line in block.splitlines() if line.startswith("- [")]


def one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def obs_line(obs: object) -> str:
    line = f"- [{obs.type}] {one_line(obs.title, 160)}"  # type: ignore[attr-defined]
    if obs.subtitle:  # type: ignore[attr-defined]
        line += f": {one_line(obs.subtitle, 160)}"  # type: ignore[attr-defined]
    return line


def assert_not_bare(text: str) -> None:
    """Non-empty context must carry at least one summary or observation line."""
    if text:
        assert summary_headings(text) or obs_lines(text), f"bare header:\n{text}"


# -- basics ---------------------------------------------------------------------------


def test_no_history_gives_empty_string(store: Store, project: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_context(store, settings(monkeypatch), project) == ""


def test_session_without_summaries_or_observations_gives_empty_string(
        store: Store, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = new_session(store, "sess-empty", project)
    store.add_prompt(s.id, "hello")
    assert build_context(store, settings(monkeypatch), project) == ""


def test_history_is_shown_with_header_and_footer(store: Store, project: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    s = new_session(store, "abcdef0123456789", project)
    add_summary(store, s, Summary(request="Fix the ZEPHYRMARK login bug",
                                        completed="Patched auth.py"))
    text = build_context(store, settings(monkeypatch), project)
    assert text.startswith(HEADER_START)
    assert "proj" in text.splitlines()[1]
    assert "session abcdef01, prompt 1" in text
    assert "- **Request:** Fix the ZEPHYRMARK login bug" in text
    assert "- **Completed:** Patched auth.py" in text
    assert "Investigated" not in text  # empty fields are left out
    assert text.endswith(FOOTER)


def test_other_projects_history_not_shown(store: Store, tmp_path: Path, project: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # A sibling whose path has ours as a prefix must not leak in either.
    other = tmp_path / "work" / "proj-other"
    other.mkdir()
    mine = new_session(store, "sess-mine", project)
    theirs = new_session(store, "sess-theirs", other)
    add_summary(store, mine, Summary(request="MINEMARK request"))
    add_observations(store, mine, [Observation(type="feature", title="MINEOBS title")])
    add_summary(store, theirs, Summary(request="THEIRSMARK request"))
    add_observations(store, theirs, [Observation(type="bugfix", title="THEIRSOBS t")])

    st = settings(monkeypatch)
    text = build_context(store, st, project)
    assert "MINEMARK" in text and "MINEOBS" in text
    assert "THEIRSMARK" not in text and "THEIRSOBS" not in text

    lonely = tmp_path / "work" / "lonely"
    lonely.mkdir()
    assert build_context(store, st, lonely) == ""


def test_project_is_matched_through_symlinks(store: Store, tmp_path: Path, project: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    s = new_session(store, "sess-link", project)
    add_summary(store, s, Summary(request="LINKMARK request"))
    link = tmp_path / "link-to-proj"
    link.symlink_to(project)
    assert "LINKMARK" in build_context(store, settings(monkeypatch), link)
    assert "LINKMARK" in build_context(store, settings(monkeypatch), str(project) + "/.")


def test_newest_summaries_and_observations_first(store: Store, project: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    words = ["ALPHAWORD", "BRAVOWORD", "CHARLIEWORD"]
    for i, word in enumerate(words):
        s = new_session(store, f"sess-order-{i}", project)
        add_summary(store, s, Summary(request=f"{word} request",
                                            learned=f"{word.lower()} learned"))
        add_observations(store, s, [Observation(type="change", title=f"{word} obs")])
    text = build_context(store, settings(monkeypatch), project)

    summary_part, obs_part = text.split(OBS_HEADING)
    positions = [summary_part.index(f"{w} request") for w in words]
    assert positions[2] < positions[1] < positions[0], text
    obs_positions = [obs_part.index(f"{w} obs") for w in words]
    assert obs_positions[2] < obs_positions[1] < obs_positions[0], text


def test_newest_first_within_one_session(store: Store, project: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    s = new_session(store, "sess-multi", project)
    for word in ("FIRSTPROMPT", "SECONDPROMPT", "THIRDPROMPT"):
        add_summary(store, s, Summary(request=word))
    text = build_context(store, settings(monkeypatch), project)
    assert text.index("THIRDPROMPT") < text.index("SECONDPROMPT") < text.index("FIRSTPROMPT")
    assert "prompt 3" in text and "prompt 1" in text


# -- the budget --------------------------------------------------------------------


def _filler(i: int, field: str, length: int) -> str:
    words = f"{field}{i} lorem ipsum dolor sit amet consectetur adipiscing elit "
    return (words * (length // len(words) + 1))[:length]


@pytest.fixture
def big_history(store: Store, project: Path) -> list[str]:
    """40 summaries with long fields of varied length, 200 observations; returns markers."""
    markers = []
    for i in range(40):
        s = new_session(store, f"big-session-{i:03d}", project)
        marker = f"MARKER-{i:03d}-END"
        markers.append(marker)
        length = 40 + (i * 137) % 900
        add_summary(store, s, Summary(
            request=f"{marker} " + _filler(i, "req", length),
            investigated=_filler(i, "inv", length // 2),
            learned=_filler(i, "lrn", length),
            completed=_filler(i, "cmp", 30 + (i * 53) % 300),
            next_steps=_filler(i, "nxt", 60) if i % 3 else "",
            notes=_filler(i, "nts", 700) if i % 4 == 0 else "",
        ), kind="fallback" if i % 5 == 0 else "agent")
        add_observations(store, s, [
            Observation(
                type=("bugfix", "feature", "refactor", "change", "discovery", "decision")[j % 6],
                title=f"obs {i}-{j} " + _filler(j, "title", (i * 31 + j * 17) % 220),
                subtitle=_filler(j, "sub", (i + j) % 4 * 60),
            )
            for j in range(5)
        ])
    return markers


@pytest.mark.parametrize("budget", [300, 1000, 6000, 20000])
def test_budget_respected_with_whole_sections(store: Store, project: Path, big_history: list[str],
                                              monkeypatch: pytest.MonkeyPatch,
                                              budget: int) -> None:
    st = settings(monkeypatch, MEMOIR_CONTEXT_BUDGET=budget, MEMOIR_CONTEXT_SUMMARIES=40,
                  MEMOIR_CONTEXT_OBSERVATIONS=200)
    assert st.context_budget == budget
    text = build_context(store, st, project)
    assert len(text) <= budget
    assert_not_bare(text)

    recent = store.recent_summaries(project_key(project), 40)
    assert len(recent) == 40
    included = []
    for session, summary in recent:
        marker = summary.request.split()[0]
        if marker in text:
            # The whole section, every line of it, not just its first line.
            assert render_summary(session, summary) in text, f"{marker} cut in:\n{text}"
            included.append(text.index(marker))
    assert included == sorted(included), "summaries not newest first"
    assert len(summary_headings(text)) == len(included)

    # Observation lines are whole and newest first.
    expected = [obs_line(o) for o in store.recent_observations(project_key(project), 200)]
    shown = obs_lines(text)
    assert shown == expected[:len(shown)]

    if budget >= 6000:
        assert included, "a 6000-character budget holds at least one summary"
    if budget >= 20000:
        assert len(included) >= 5


def test_budget_respected_with_default_limits(store: Store, project: Path,
                                              big_history: list[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for budget in (300, 1000, 6000):
        text = build_context(store, settings(monkeypatch, MEMOIR_CONTEXT_BUDGET=budget), project)
        assert len(text) <= budget
        assert_not_bare(text)
        assert len(summary_headings(text)) <= 5
        assert len(obs_lines(text)) <= 15


def test_default_budget_is_6000(store: Store, project: Path, big_history: list[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    st = settings(monkeypatch)
    assert st.context_budget == 6000
    text = build_context(store, st, project)
    assert 0 < len(text) <= 6000


def test_budget_zero_gives_empty_string(store: Store, project: Path, big_history: list[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    st = settings(monkeypatch, MEMOIR_CONTEXT_BUDGET=0)
    assert st.context_budget == 0
    assert build_context(store, st, project) == ""


def test_budget_too_small_for_a_summary_gives_titles_only(store: Store, project: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    s = new_session(store, "sess-small", project)
    add_summary(store, s, Summary(
        request="HUGEMARK " + _filler(1, "req", 2000), learned=_filler(1, "lrn", 2000),
        completed=_filler(1, "cmp", 2000)))
    add_observations(store, s, [
        Observation(type="bugfix", title="Fixed the parser"),
        Observation(type="discovery", title="Config lives in /etc"),
    ])
    text = build_context(store, settings(monkeypatch, MEMOIR_CONTEXT_BUDGET=600), project)
    assert len(text) <= 600
    assert "HUGEMARK" not in text
    assert not summary_headings(text)
    assert obs_lines(text) == ["- [discovery] Config lives in /etc", "- [bugfix] Fixed the parser"]


def test_never_a_bare_header_at_any_budget(store: Store, project: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    s = new_session(store, "sess-sweep", project)
    add_summary(store, s, Summary(request="SWEEPMARK " + _filler(2, "req", 300)))
    add_observations(store, s, [Observation(type="change", title=f"title number {i}",
                                                  subtitle="sub" * (i % 3))
                                for i in range(6)])
    seen_titles_only = seen_summary = False
    for budget in range(0, 1200):
        text = build_context(store, settings(monkeypatch, MEMOIR_CONTEXT_BUDGET=budget), project)
        assert len(text) <= budget
        assert_not_bare(text)
        if text and not summary_headings(text):
            seen_titles_only = True
        if summary_headings(text):
            seen_summary = True
    assert seen_titles_only and seen_summary


def test_footer_intact_at_every_budget(store: Store, project: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever fits, the text is whole: it ends with the complete footer line."""
    s = new_session(store, "sess-footer", project)
    add_summary(store, s, Summary(request="FOOTMARK", completed="done " * 20))
    add_observations(store, s, [Observation(type="bugfix", title=f"title {i}",
                                                  subtitle="sub" * (i % 3))
                                for i in range(10)])
    cut = []
    for budget in range(0, 1500):
        text = build_context(store, settings(monkeypatch, MEMOIR_CONTEXT_BUDGET=budget), project)
        assert len(text) <= budget
        if text and not text.endswith(FOOTER):
            cut.append((budget, text[-40:]))
    assert not cut, f"footer cut at {len(cut)} budgets, e.g. {cut[:3]}"


# -- limits, labels, exclusion ----------------------------------------------------------


def test_summary_and_observation_limits(store: Store, project: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(8):
        s = new_session(store, f"sess-lim-{i}", project)
        add_summary(store, s, Summary(request=f"LIMMARK{i}X"))
        add_observations(store, s, [Observation(type="feature", title=f"LIMOBS{i}-{j}X")
                                    for j in range(3)])
    st = settings(monkeypatch, MEMOIR_CONTEXT_SUMMARIES=3, MEMOIR_CONTEXT_OBSERVATIONS=4)
    assert (st.context_summaries, st.context_observations) == (3, 4)
    text = build_context(store, st, project)
    assert len(summary_headings(text)) == 3
    assert [i for i in range(8) if f"LIMMARK{i}X" in text] == [5, 6, 7]
    assert obs_lines(text) == ["- [feature] LIMOBS7-2X", "- [feature] LIMOBS7-1X",
                               "- [feature] LIMOBS7-0X", "- [feature] LIMOBS6-2X"]

    st = settings(monkeypatch, MEMOIR_CONTEXT_SUMMARIES=0, MEMOIR_CONTEXT_OBSERVATIONS=2)
    text = build_context(store, st, project)
    assert not summary_headings(text)
    assert len(obs_lines(text)) == 2

    st = settings(monkeypatch, MEMOIR_CONTEXT_SUMMARIES=0, MEMOIR_CONTEXT_OBSERVATIONS=0)
    assert build_context(store, st, project) == ""


def test_fallback_summaries_are_labelled(store: Store, project: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    s = new_session(store, "sess-fallback", project)
    add_summary(store, s, Summary(request="AGENTMARK"), kind="agent")
    add_summary(store, s, Summary(request="FALLBACKMARK"), kind="fallback")
    text = build_context(store, settings(monkeypatch), project)
    headings = [line for line in text.splitlines() if SUMMARY_HEADING.match(line)]
    assert len(headings) == 2
    by_prompt = {("prompt 1" in h): h for h in headings}
    assert "fallback" not in by_prompt[True]       # prompt 1: the agent's summary
    assert "fallback" in by_prompt[False]          # prompt 2: the fallback
    section = text.split(by_prompt[False], 1)[1].split("\n## ", 1)[0]
    assert "FALLBACKMARK" in section


def test_exclude_session(store: Store, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keep = new_session(store, "sess-keep", project)
    drop = new_session(store, "sess-drop", project)
    add_summary(store, keep, Summary(request="KEEPMARK"))
    add_observations(store, keep, [Observation(type="change", title="KEEPOBS")])
    add_summary(store, drop, Summary(request="DROPMARK"))
    add_observations(store, drop, [Observation(type="change", title="DROPOBS")])
    st = settings(monkeypatch)

    text = build_context(store, st, project, exclude_session="sess-drop")
    assert "KEEPMARK" in text and "KEEPOBS" in text
    assert "DROPMARK" not in text and "DROPOBS" not in text
    both = build_context(store, st, project)
    assert "DROPMARK" in both and "KEEPMARK" in both

    only = project.parent / "solo"
    only.mkdir()
    solo = new_session(store, "sess-solo", only)
    add_summary(store, solo, Summary(request="SOLOMARK"))
    assert build_context(store, st, only, exclude_session="sess-solo") == ""


def test_observation_lines_carry_type_title_and_subtitle(store: Store, project: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    s = new_session(store, "sess-obs", project)
    add_observations(store, s, [
        Observation(type="decision", title="Use WAL mode"),
        Observation(type="discovery", title="Tests   need\na venv",
                          subtitle="found in\nCI logs"),
        Observation(type="bugfix", title="X" * 400),
    ])
    text = build_context(store, settings(monkeypatch), project)
    lines = obs_lines(text)
    assert lines[0].startswith("- [bugfix] XXXX")
    assert len(lines[0]) < 200  # a runaway title is shortened, not dumped
    assert lines[1] == "- [discovery] Tests need a venv: found in CI logs"
    assert lines[2] == "- [decision] Use WAL mode"
    # Observations only (no summary): still a complete context, not a bare header.
    assert text.startswith(HEADER_START) and text.endswith(FOOTER)


def test_env_budget_changes_between_calls(store: Store, project: Path, big_history: list[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    small = build_context(store, settings(monkeypatch, MEMOIR_CONTEXT_BUDGET=1000), project)
    large = build_context(store, settings(monkeypatch, MEMOIR_CONTEXT_BUDGET=20000), project)
    assert 0 < len(small) <= 1000 < len(large) <= 20000
    # A malformed value falls back to the default instead of breaking the hook.
    monkeypatch.setenv("MEMOIR_CONTEXT_BUDGET", "not-a-number")
    assert load_settings().context_budget == 6000
