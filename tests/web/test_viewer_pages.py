"""The viewer as a user sees it: a real server, a real headless Chromium (Debian's)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from claude_memoir.agent.models import Summary
from claude_memoir.store import Store
from seeding import observation, record_session
from viewerkit import RunningViewer, chromium, page, viewer  # noqa: F401

pytestmark = pytest.mark.e2e

SID_A = "eeeeeeee-5555-4555-8555-eeeeeeeeeeee"
SID_B = "ffffffff-6666-4666-8666-ffffffffffff"
PROJECT = "/home/dev/projects/shop"

HOSTILE_TITLE = '<img src=x onerror="window.__pwned = \'title\'">'
HOSTILE_FACT = "<script>window.__pwned = 'fact'</script>"
HOSTILE_NARRATIVE = "</textarea><svg onload=\"window.__pwned='narrative'\"></svg>"
HOSTILE_PROMPT = "<iframe src=\"javascript:window.top.__pwned='prompt'\"></iframe>"
HOSTILE_PROJECT = "/tmp/<b onmouseover=\"window.__pwned='project'\">x</b>"


def seed_shop(home: Path) -> None:
    record_session(home, SID_A, PROJECT, [
        ("Fix the checkout rounding bug",
         [observation("Checkout rounds totals half-down", type="bugfix",
                      facts=["total() used int()", "Decimal fixes it"],
                      narrative="Totals were truncated before tax.",
                      files_modified=["shop/checkout.py"])],
         Summary(request="Fix the checkout rounding bug", completed="Totals use Decimal",
                 learned="int() truncates", next_steps="Add a regression test")),
    ])
    time.sleep(0.01)
    record_session(home, SID_B, PROJECT, [
        ("Add a coupon field", [observation("Coupon codes are validated server-side")],
         Summary(request="Add a coupon field", completed="Coupon field added")),
    ], status="active")


def no_script_ran(pg: Any) -> None:
    assert pg.evaluate("() => window.__pwned === undefined"), pg.evaluate("window.__pwned")
    # Confirmations are the viewer's own (asked before a delete); nothing else.
    assert [kind for kind, _ in pg.dialogs if kind != "confirm"] == [] and pg.errors == []


def test_timeline_shows_each_session_with_its_summary(
        page: Any, viewer: RunningViewer, memoir_home: Path) -> None:  # noqa: F811
    seed_shop(memoir_home)
    page.goto(viewer.base + "/")
    assert page.url == viewer.base + "/"  # signed in by cookie, token gone from the URL
    row = page.locator("table.projects tr", has_text=PROJECT)
    assert row.locator("td.num").all_inner_texts() == ["2", "2"]
    row.get_by_role("link", name=PROJECT).click()
    page.wait_for_selector("ol.timeline")
    entries = page.locator("ol.timeline > li")
    assert entries.count() == 2
    # Newest first, each with its rolled-up summary.
    assert "Add a coupon field" in entries.nth(0).inner_text()
    first = entries.nth(1).inner_text()
    assert "Fix the checkout rounding bug" in first and "Totals use Decimal" in first
    assert "Add a regression test" in first
    entries.nth(1).locator("a.session-link").click()
    page.wait_for_selector("article.observation")
    obs = page.locator("article.observation")
    assert obs.locator("h3.title").inner_text() == "Checkout rounds totals half-down"
    assert obs.locator("ul.facts li").all_inner_texts() == ["total() used int()",
                                                            "Decimal fixes it"]
    assert "shop/checkout.py" in obs.locator("p.files").inner_text()
    assert page.locator("blockquote.prompt").inner_text() == "Fix the checkout rounding bug"
    assert "int() truncates" in page.locator(".summary dd.learned").inner_text()
    # Raw events on demand.
    assert page.locator("#events").count() == 0
    page.get_by_role("link", name="Show raw events").click()
    page.wait_for_selector("#events details.event")
    assert "Bash" in page.locator("#events summary").first.inner_text()
    no_script_ran(page)


def test_hostile_content_renders_as_text_everywhere(
        page: Any, viewer: RunningViewer, memoir_home: Path) -> None:  # noqa: F811
    record_session(memoir_home, SID_A, HOSTILE_PROJECT, [
        (HOSTILE_PROMPT, [observation(HOSTILE_TITLE, facts=[HOSTILE_FACT],
                                      narrative=HOSTILE_NARRATIVE, subtitle=HOSTILE_PROMPT,
                                      files_read=[HOSTILE_TITLE])],
         Summary(request=HOSTILE_TITLE, completed=HOSTILE_FACT))])
    page.goto(viewer.base + "/")
    assert page.locator("a.project-link").inner_text() == HOSTILE_PROJECT
    assert page.locator("main b").count() == 0
    page.locator("a.project-link").click()
    page.wait_for_selector("ol.timeline")
    assert page.locator(".summary-line .request").inner_text() == HOSTILE_TITLE
    assert page.locator("main img, main script, main svg, main iframe").count() == 0
    page.locator("a.session-link").click()
    page.wait_for_selector("article.observation")
    article = page.locator("article.observation")
    assert article.locator("h3.title").inner_text() == HOSTILE_TITLE
    assert article.locator("ul.facts li").inner_text() == HOSTILE_FACT
    assert article.locator("p.narrative").inner_text() == HOSTILE_NARRATIVE
    assert page.locator("blockquote.prompt").inner_text() == HOSTILE_PROMPT
    # The edit form holds the same text as text, not as markup.
    article.get_by_role("button", name="Edit").click()
    assert article.locator("input[name=title]").input_value() == HOSTILE_TITLE
    assert article.locator("textarea[name=narrative]").input_value() == HOSTILE_NARRATIVE
    # No element came from stored text, and the only script is the viewer's own.
    assert page.locator("main img, main svg, main iframe, main b").count() == 0
    assert page.locator("script").count() == 1
    # One more arriving live (server-sent event) while the page is open.
    with Store.open(memoir_home) as store:
        session = store.get_session(SID_A)
        assert session is not None
        store.record_observations(session.id, [], [observation(
            HOSTILE_FACT, facts=[HOSTILE_TITLE], narrative=HOSTILE_NARRATIVE)], 1)
    page.wait_for_selector("#new-observations article.observation")
    live = page.locator("#new-observations article.observation")
    assert live.locator("h3.title").inner_text() == HOSTILE_FACT
    assert live.locator("ul.facts li").inner_text() == HOSTILE_TITLE
    assert page.locator("main img, main svg, main iframe").count() == 0
    assert page.locator("script").count() == 1
    page.mouse.move(10, 10)
    no_script_ran(page)
    assert page.dialogs == []


def test_new_observation_appears_without_reload(
        page: Any, viewer: RunningViewer, memoir_home: Path) -> None:  # noqa: F811
    seed_shop(memoir_home)
    page.goto(f"{viewer.base}/session/{SID_B}")
    page.wait_for_selector("html[data-live=open]")
    page.evaluate("() => { window.__sameDocument = true; }")
    assert page.locator("#observation-count").inner_text() == "1"
    with Store.open(memoir_home) as store:
        session = store.get_session(SID_B)
        assert session is not None
        store.record_observations(session.id, [], [observation(
            "Coupons expire at midnight UTC", facts=["expiry uses utcnow()"])], 1)
    page.wait_for_selector("text=Coupons expire at midnight UTC", timeout=10_000)
    live = page.locator("#new-observations article.observation")
    assert live.locator("ul.facts li").inner_text() == "expiry uses utcnow()"
    assert page.locator("#observation-count").inner_text() == "2"
    assert page.evaluate("() => window.__sameDocument") is True  # no reload happened
    # A page of another session shows it in the live panel instead.
    page.goto(f"{viewer.base}/session/{SID_A}")
    page.wait_for_selector("html[data-live=open]")
    with Store.open(memoir_home) as store:
        session = store.get_session(SID_B)
        assert session is not None
        store.record_observations(session.id, [], [observation("Second live one")], 1)
    page.wait_for_selector("#live-list >> text=Second live one", timeout=10_000)
    assert page.locator("#live").is_visible()
    no_script_ran(page)


def test_edit_and_delete_from_the_page(
        page: Any, viewer: RunningViewer, memoir_home: Path) -> None:  # noqa: F811
    seed_shop(memoir_home)
    page.goto(f"{viewer.base}/session/{SID_A}")
    article = page.locator("article.observation")
    oid = int(article.get_attribute("data-observation"))
    article.get_by_role("button", name="Edit").click()
    article.locator("input[name=title]").fill("Checkout truncated totals (corrected)")
    article.locator("textarea[name=facts]").fill("int() truncated\nDecimal rounds half-up")
    article.get_by_role("button", name="Save").click()
    page.wait_for_selector("text=Checkout truncated totals (corrected)")
    article = page.locator(f"#obs-{oid}")
    assert article.locator(".edited").inner_text() == "edited"
    assert article.locator("ul.facts li").all_inner_texts() == ["int() truncated",
                                                                "Decimal rounds half-up"]
    with Store.open(memoir_home) as store:
        row = store.get_observation(oid)
        assert row is not None and row.edited_at is not None
        assert row.title == "Checkout truncated totals (corrected)"

    # Delete the observation, then the summary: gone from the page and the store.
    page.locator(f"#obs-{oid}").get_by_role("button", name="Delete").click()
    page.wait_for_selector(f"#obs-{oid}", state="detached")
    page.locator(".summary").get_by_role("button", name="Delete summary").click()
    page.wait_for_selector(".summary", state="detached")
    assert [kind for kind, _ in page.dialogs] == ["confirm", "confirm"]
    page.reload()
    assert page.locator("article.observation").count() == 0
    assert page.locator(".summary").count() == 0
    with Store.open(memoir_home) as store:
        assert store.get_observation(oid) is None
        session = store.get_session(SID_A)
        assert session is not None and store.summaries_for_session(session.id) == []

    # Forget the whole session: the page moves to the project, which lists one.
    page.get_by_role("button", name="Forget session").click()
    page.wait_for_url(lambda url: url.startswith(f"{viewer.base}/project?p="))
    assert page.locator("ol.timeline > li").count() == 1
    with Store.open(memoir_home) as store:
        assert store.get_session(SID_A) is None

    # Forget the project from the projects page.
    page.goto(viewer.base + "/")
    page.locator("table.projects tr", has_text=PROJECT).get_by_role(
        "button", name="Forget").click()
    page.locator("table.projects tr", has_text=PROJECT).wait_for(state="detached")
    with Store.open(memoir_home) as store:
        assert store.session_stats() == []
    no_script_ran(page)


def test_search_page_uses_the_search_engine(
        page: Any, viewer: RunningViewer, memoir_home: Path) -> None:  # noqa: F811
    seed_shop(memoir_home)
    record_session(memoir_home, "abababab-7777-4777-8777-abababababab", "/other/project", [
        ("rounding elsewhere", [observation(HOSTILE_TITLE + " rounding")], None)])
    page.goto(viewer.base + "/")
    page.locator("header form.search input[name=q]").fill("rounding")
    page.locator("header form.search input[name=q]").press("Enter")
    page.wait_for_selector("ol.results li")
    titles = page.locator("ol.results a.result-title").all_inner_texts()
    with Store.open(memoir_home) as store:
        from claude_memoir.recall.search import search

        expected = [r.title or "(untitled)" for r in search(store, "rounding", project=None,
                                                            limit=50)]
    assert titles == expected and len(titles) >= 3
    assert "Checkout rounds totals half-down" in titles
    assert HOSTILE_TITLE + " rounding" in titles  # as text
    assert page.locator("main img").count() == 0
    page.locator("ol.results a.result-title", has_text="Checkout rounds").click()
    page.wait_for_selector("article.observation")
    assert SID_A in page.url
    page.goto(viewer.base + "/search?q=zzzznothing")
    assert "Nothing found" in page.locator("main").inner_text()
    no_script_ran(page)


def test_health_banner_says_what_memoir_status_says(
        page: Any, viewer: RunningViewer, memoir_home: Path) -> None:  # noqa: F811
    import subprocess

    from conftest import memoir_command

    seed_shop(memoir_home)
    page.goto(viewer.base + "/")
    status = subprocess.run([*memoir_command(), "status"], capture_output=True, text=True,
                            timeout=30)
    assert status.stdout.startswith("healthy")
    assert page.locator("#health").inner_text() == status.stdout.splitlines()[0]
    with Store.open(memoir_home) as store:
        session = store.get_session(SID_B)
        assert session is not None
        store.save_summary(session.id, 1, Summary(request="x"), "fallback")
    page.reload()
    status = subprocess.run([*memoir_command(), "status"], capture_output=True, text=True,
                            timeout=30)
    banner = page.locator("#health.degraded")
    assert banner.locator("strong").inner_text() == status.stdout.splitlines()[0]
    assert banner.locator("strong").inner_text().startswith("DEGRADED")
    assert "memoir reprocess SESSION" in banner.locator("li").first.inner_text()


class _Usage:
    def __init__(self, tokens: int, cost: float) -> None:
        self.input_tokens, self.output_tokens = tokens, tokens // 10
        self.cache_read_tokens, self.cache_write_tokens = tokens * 2, 0
        self.cost_total_usd = cost


def test_usage_chart_shows_tokens_and_cost_per_day(
        page: Any, viewer: RunningViewer, memoir_home: Path) -> None:  # noqa: F811
    seed_shop(memoir_home)
    page.goto(viewer.base + "/usage")
    assert page.locator("#usage-empty").is_visible()
    with Store.open(memoir_home) as store:
        session = store.get_session(SID_A)
        assert session is not None
        store.record_agent_request(session.id, kind="observe", events=3, model="m",
                                   agent_session_id="agent-1", usage=_Usage(1000, 0.25))
        store.record_agent_request(session.id, kind="summary", events=0, model="m",
                                   agent_session_id="agent-1", usage=_Usage(500, 0.40))
        day = store.usage_per_day("2000-01-01", None)
    assert len(day) == 1
    page.reload()
    meta = page.locator("main p.meta").inner_text()
    # 1000+100+2000 and 500+50+1000 tokens; the second cost is a running total.
    assert "2 request(s), 4,650 tokens, $0.40" in meta
    bars = page.locator("#chart-tokens rect.bar")
    assert bars.count() == 30
    assert bars.nth(29).get_attribute("height") == "160"  # today, the peak
    assert bars.nth(0).get_attribute("height") == "0"
    assert page.locator("#chart-tokens rect.bar title").nth(29).text_content() == \
        f"{day[0].day}: 4,650 tokens, 2 request(s)"
    assert page.locator("#chart-cost rect.bar").nth(29).get_attribute("height") == "160"
    # Per project: another project has none.
    page.goto(viewer.base + "/usage?p=/elsewhere")
    assert page.locator("#usage-empty").is_visible()
    no_script_ran(page)
