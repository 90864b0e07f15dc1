"""Tests for claude_memoir.agent.parser: tolerant parsing of the agent's XML replies."""

from __future__ import annotations

import random

import pytest

from claude_memoir.agent.parser import (
    MAX_LIST_ITEMS,
    MAX_OBSERVATIONS,
    MAX_SUBTITLE_CHARS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    OBSERVATION_TYPES,
    Observation,
    Summary,
    parse_observations,
    parse_summary,
)

CANONICAL_OBSERVATION = """
<observation>
  <type>bugfix</type>
  <title>Fixed off-by-one in paginate()</title>
  <subtitle>Cursor skipped the last row of each page</subtitle>
  <facts>
    <fact>src/app/pager.py: paginate() used range(start, end - 1)</fact>
    <fact>pytest tests/test_pager.py: 12 passed</fact>
  </facts>
  <narrative>The cursor lost one row per page. Changed the bound to end.</narrative>
  <concepts><concept>pagination</concept><concept>off-by-one</concept></concepts>
  <files_read><file>src/app/pager.py</file><file>tests/test_pager.py</file></files_read>
  <files_modified><file>src/app/pager.py</file></files_modified>
</observation>
"""

CANONICAL_SUMMARY = """
<summary>
  <request>Fix the pagination bug</request>
  <investigated>pager.py and its tests</investigated>
  <learned>The bound was exclusive twice</learned>
  <completed>Fixed paginate() and added a regression test</completed>
  <next_steps>Check the API layer for the same pattern</next_steps>
  <notes>Tests run with pytest -q</notes>
</summary>
"""


def _obs(title: str = "t", **fields: str) -> str:
    """A minimal observation block with a title and any extra raw fields."""
    inner = f"<title>{title}</title>" + "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    return f"<observation>{inner}</observation>"


# --------------------------------------------------------------------------- #
# Observations
# --------------------------------------------------------------------------- #


def test_canonical_observation_round_trips_every_field() -> None:
    [obs] = parse_observations(CANONICAL_OBSERVATION)
    assert obs == Observation(
        type="bugfix",
        title="Fixed off-by-one in paginate()",
        subtitle="Cursor skipped the last row of each page",
        facts=[
            "src/app/pager.py: paginate() used range(start, end - 1)",
            "pytest tests/test_pager.py: 12 passed",
        ],
        narrative="The cursor lost one row per page. Changed the bound to end.",
        concepts=["pagination", "off-by-one"],
        files_read=["src/app/pager.py", "tests/test_pager.py"],
        files_modified=["src/app/pager.py"],
    )


def test_observation_is_frozen() -> None:
    [obs] = parse_observations(CANONICAL_OBSERVATION)
    with pytest.raises(AttributeError):
        obs.title = "x"  # type: ignore[misc]


def test_several_blocks_with_prose_between_keep_order() -> None:
    text = (
        "Here is what I saw:\n"
        + _obs("first", type="feature")
        + "\nand then, a bit later & unrelated < stuff,\n"
        + _obs("second", type="discovery")
        + "\n```\nsome code x < y && z\n```\n"
        + _obs("third", type="decision")
        + "\nThat's all."
    )
    result = parse_observations(text)
    assert [o.title for o in result] == ["first", "second", "third"]
    assert [o.type for o in result] == ["feature", "discovery", "decision"]


def test_missing_fields_are_empty() -> None:
    [obs] = parse_observations("<observation><narrative>only this</narrative></observation>")
    assert obs.narrative == "only this"
    assert obs.title == "" and obs.subtitle == ""
    assert obs.facts == [] and obs.concepts == []
    assert obs.files_read == [] and obs.files_modified == []
    assert obs.type == "change"


@pytest.mark.parametrize("raw_type", ["weird", "bugfix|feature", "", "   "])
def test_unknown_type_becomes_change(raw_type: str) -> None:
    [obs] = parse_observations(_obs(type=raw_type))
    assert obs.type == "change"


@pytest.mark.parametrize(
    ("raw_type", "expected"),
    [("Bugfix", "bugfix"), (" FEATURE \n", "feature"), ("bug-fix", "bugfix")],
)
def test_type_is_normalized(raw_type: str, expected: str) -> None:
    [obs] = parse_observations(_obs(type=raw_type))
    assert obs.type == expected
    assert obs.type in OBSERVATION_TYPES


def test_entities_are_unescaped() -> None:
    text = (
        "<observation><title>a &amp; b &lt;T&gt;</title>"
        "<facts><fact>x &lt; y &#38;&#x26; z</fact></facts>"
        "<narrative>&quot;quoted&quot; &apos;s</narrative></observation>"
    )
    [obs] = parse_observations(text)
    assert obs.title == "a & b <T>"
    assert obs.facts == ["x < y && z"]
    assert obs.narrative == "\"quoted\" 's"


def test_stray_ampersand_and_angle_bracket_survive() -> None:
    [obs] = parse_observations(
        "<observation><title>if a < b && c</title><narrative>R&D</narrative></observation>"
    )
    assert obs.title == "if a < b && c"
    assert obs.narrative == "R&D"


def test_cdata_wrappers_are_stripped() -> None:
    text = (
        "<observation><title><![CDATA[Fixed <div> & co]]></title>"
        "<narrative><![CDATA[literal &amp; stays </narrative> inside]]></narrative>"
        "</observation>"
    )
    [obs] = parse_observations(text)
    assert obs.title == "Fixed <div> & co"
    assert obs.narrative == "literal &amp; stays </narrative> inside"


def test_truncated_final_block_is_parsed_to_the_end() -> None:
    text = (
        _obs("complete")
        + "\n<observation>\n  <type>feature</type>\n  <title>Cut off</title>\n"
        "  <facts><fact>one</fact><fact>two is cut"
    )
    result = parse_observations(text)
    assert [o.title for o in result] == ["complete", "Cut off"]
    assert result[1].type == "feature"
    assert result[1].facts == ["one", "two is cut"]


def test_unclosed_field_ends_at_next_field() -> None:
    text = "<observation><title>No close<narrative>story</narrative></observation>"
    [obs] = parse_observations(text)
    assert obs.title == "No close"
    assert obs.narrative == "story"


def test_unclosed_block_does_not_swallow_the_next() -> None:
    text = "<observation><title>A</title>\n<observation><title>B</title></observation>"
    assert [o.title for o in parse_observations(text)] == ["A", "B"]


def test_bullet_list_fallback() -> None:
    text = (
        "<observation><title>t</title><facts>\n"
        "- first fact\n"
        "* second fact\n"
        "\n"
        "   plain third   \n"
        "- first fact\n"
        "</facts><files_modified>\n  a.py\n  b.py\n</files_modified></observation>"
    )
    [obs] = parse_observations(text)
    assert obs.facts == ["first fact", "second fact", "plain third"]
    assert obs.files_modified == ["a.py", "b.py"]


def test_list_items_are_deduplicated_in_order_and_stripped() -> None:
    text = (
        "<observation><title>t</title><concepts>"
        "<concept> b </concept><concept>a</concept><concept>b</concept>"
        "<concept></concept><concept>c</concept></concepts></observation>"
    )
    [obs] = parse_observations(text)
    assert obs.concepts == ["b", "a", "c"]


def test_values_keep_inner_newlines() -> None:
    [obs] = parse_observations(_obs(narrative="\n  line one\n  line two\n"))
    assert obs.narrative == "line one\n  line two"


def test_observation_cap() -> None:
    text = "\n".join(_obs(f"obs {i}") for i in range(80))
    result = parse_observations(text)
    assert len(result) == MAX_OBSERVATIONS == 50
    assert result[-1].title == "obs 49"


def test_field_caps() -> None:
    text = _obs(
        "T" * 5000,
        subtitle="S" * 5000,
        narrative="N" * 50_000,
    )
    [obs] = parse_observations(text)
    assert len(obs.title) == MAX_TITLE_CHARS == 200
    assert len(obs.subtitle) == MAX_SUBTITLE_CHARS == 300
    assert len(obs.narrative) == MAX_TEXT_CHARS == 10_000


def test_list_caps() -> None:
    facts = "".join(f"<fact>fact {i}</fact>" for i in range(120))
    long_fact = "<fact>" + "F" * 20_000 + "</fact>"
    [obs] = parse_observations(f"<observation><facts>{long_fact}{facts}</facts></observation>")
    assert len(obs.facts) == MAX_LIST_ITEMS == 50
    assert len(obs.facts[0]) == MAX_TEXT_CHARS
    assert obs.facts[-1] == "fact 48"


def test_empty_blocks_are_skipped() -> None:
    text = (
        "<observation></observation>"
        "<observation/>"
        "<observation><type>bugfix</type><concepts><concept>x</concept></concepts>"
        "<files_read><file>a.py</file></files_read></observation>"
        "<observation><title>   </title><facts></facts></observation>"
        + _obs("real")
    )
    assert [o.title for o in parse_observations(text)] == ["real"]


def test_facts_alone_make_an_observation() -> None:
    [obs] = parse_observations("<observation><facts><fact>f</fact></facts></observation>")
    assert obs.facts == ["f"] and obs.title == ""


def test_case_insensitive_tags_with_attributes_and_whitespace() -> None:
    text = (
        '<Observation id="1" kind=\'x\'>\n'
        "  <TYPE>Refactor</TYPE>\n"
        '  < Title lang="en" >Split module</ title >\n'
        "  <Facts><Fact>moved a</Fact><FACT>moved b</fact></Facts>\n"
        "  <Files_Modified><FILE>m.py</FILE></Files_Modified>\n"
        "</OBSERVATION >"
    )
    [obs] = parse_observations(text)
    assert obs.type == "refactor"
    assert obs.title == "Split module"
    assert obs.facts == ["moved a", "moved b"]
    assert obs.files_modified == ["m.py"]


def test_similar_tag_names_are_not_confused() -> None:
    text = (
        "<observations><observation><title>inner</title>"
        "<facts><fact>f</fact></facts><files_read><file>r.py</file></files_read>"
        "</observation></observations>"
    )
    [obs] = parse_observations(text)
    assert obs.title == "inner"
    assert obs.facts == ["f"]
    assert obs.files_read == ["r.py"]


def test_observation_does_not_run_into_a_following_summary() -> None:
    text = "<observation><title>t</title><narrative>cut" + CANONICAL_SUMMARY
    [obs] = parse_observations(text)
    assert obs.narrative == "cut"
    assert parse_summary(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n",
        "I looked at the events and there is nothing worth recording.",
        "<skip/>",
        "<observation",
        "</observation><observation>",
        "<<<>>>&&&;;</",
        "<title>outside</title><facts><fact>x</fact></facts>",
    ],
)
def test_garbage_gives_nothing(text: str) -> None:
    assert parse_observations(text) == []
    assert parse_summary(text) is None


def test_random_bytes_do_not_raise() -> None:
    rng = random.Random(1234)
    for _ in range(200):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        text = raw.decode("utf-8", errors="replace")
        assert isinstance(parse_observations(text), list)
        parse_summary(text)
        latin = raw.decode("latin-1")
        assert isinstance(parse_observations(latin), list)
        parse_summary(latin)


def test_random_tag_soup_does_not_raise() -> None:
    rng = random.Random(99)
    pieces = [
        "<observation>", "</observation>", "<title>", "</title>", "<facts>", "<fact>",
        "</fact>", "</facts>", "<summary>", "</summary>", "<request>", "<notes>",
        "<![CDATA[", "]]>", "&amp;", "&", "<", ">", "text", "\n", "- ", "<observation/>",
    ]
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 60)))
        for obs in parse_observations(text):
            assert obs.title or obs.narrative or obs.facts
        parse_summary(text)


def test_pathological_input_is_fast() -> None:
    # Many openings without closings must not go quadratic.
    text = "<observation><title" * 20_000 + "<facts>" * 20_000
    assert parse_observations(text) == []
    assert parse_summary("<summary><request" * 20_000) is None


# --------------------------------------------------------------------------- #
# Summaries
# --------------------------------------------------------------------------- #


def test_canonical_summary_round_trips() -> None:
    assert parse_summary(CANONICAL_SUMMARY) == Summary(
        request="Fix the pagination bug",
        investigated="pager.py and its tests",
        learned="The bound was exclusive twice",
        completed="Fixed paginate() and added a regression test",
        next_steps="Check the API layer for the same pattern",
        notes="Tests run with pytest -q",
    )


def test_summary_last_wins() -> None:
    text = (
        "<summary><request>first</request><completed>draft</completed></summary>\n"
        "Let me restate that.\n"
        "<summary><request>second</request><completed>final</completed></summary>"
    )
    summary = parse_summary(text)
    assert summary is not None
    assert summary.request == "second"
    assert summary.completed == "final"


def test_empty_restatement_does_not_discard_real_summary() -> None:
    text = CANONICAL_SUMMARY + "<summary>  </summary>"
    summary = parse_summary(text)
    assert summary is not None and summary.request == "Fix the pagination bug"


def test_no_summary_gives_none() -> None:
    assert parse_summary(CANONICAL_OBSERVATION) is None
    assert parse_summary("<skip_summary/>") is None
    assert parse_summary("<summary></summary>") is None
    assert parse_summary("<summary><request> </request><notes></notes></summary>") is None


def test_summary_with_some_fields() -> None:
    summary = parse_summary(
        "prose <SUMMARY x='1'><Learned>SQLite WAL &amp; fsync</Learned>"
        "<next_steps>- add a test</next_steps></SUMMARY> more prose"
    )
    assert summary == Summary(learned="SQLite WAL & fsync", next_steps="- add a test")


def test_truncated_summary_is_parsed() -> None:
    summary = parse_summary("<summary><request>r</request><completed>half of it")
    assert summary is not None
    assert summary.request == "r"
    assert summary.completed == "half of it"


def test_summary_fields_are_capped() -> None:
    summary = parse_summary("<summary><notes>" + "n" * 30_000 + "</notes></summary>")
    assert summary is not None and len(summary.notes) == MAX_TEXT_CHARS


def test_observations_and_summary_in_one_reply() -> None:
    text = CANONICAL_OBSERVATION + "\n" + CANONICAL_SUMMARY
    assert len(parse_observations(text)) == 1
    assert parse_summary(text) is not None


def test_parse_reply_takes_observations_and_summary_of_one_batch() -> None:
    from claude_memoir.agent.parser import parse_reply

    reply = ("Here you go.\n<observation><type>bugfix</type><title>Fixed cursor</title>"
             "<facts><fact>db.py:12</fact></facts></observation>\n"
             "<observation><title>Ran tests</title><narrative>All green.</narrative>"
             "</observation>\n<summary><request>fix paging</request>"
             "<completed>cursor fixed</completed></summary>")
    parsed = parse_reply(reply)
    assert [o.title for o in parsed.observations] == ["Fixed cursor", "Ran tests"]
    assert parsed.summary is not None and parsed.summary.completed == "cursor fixed"
    assert not parsed.skipped_summary
    skipped = parse_reply("<observation><title>Read config</title></observation><skip_summary/>")
    assert skipped.summary is None and skipped.skipped_summary
    assert len(skipped.observations) == 1
    assert parse_reply("") == parse_reply(None)  # type: ignore[arg-type]
    assert parse_reply("").observations == [] and not parse_reply("").skipped_summary
