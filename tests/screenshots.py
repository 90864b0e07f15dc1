"""The README's screenshots: ``python -m tests.screenshots [DIR]`` (default ``docs/``).

Records a small demo history (two projects, a few sessions with observations,
summaries, one user edit and one stored XSS attempt) in a temporary store,
starts a real ``memoir ui`` on it and photographs its pages in headless
Chromium.
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "web"))

from claude_memoir.agent.models import Summary  # noqa: E402
from claude_memoir.store import Store  # noqa: E402
from seeding import observation, record_session  # noqa: E402
from viewerkit import CHROMIUM, CHROMIUM_ARGS, start_viewer, stop_viewer  # noqa: E402

SHOP = "/home/dev/projects/shop"
DOCS = "/home/dev/projects/handbook"
SESSION = "5e1c0a7e-2b8d-4c61-9f3a-0d4e2c6b9a11"


def seed(home: Path) -> None:
    record_session(home, "1a2b3c4d-0000-4000-8000-000000000001", DOCS, [
        ("Reorganise the onboarding guide", [
            observation("Onboarding guide split into three chapters", type="change",
                        facts=["setup, first week, glossary"], files_modified=["guide.md"])],
         Summary(request="Reorganise the onboarding guide", completed="Three chapters",
                 learned="The glossary was duplicated in two places"))])
    time.sleep(0.01)
    record_session(home, "1a2b3c4d-0000-4000-8000-000000000002", SHOP, [
        ("Why do coupon codes fail for some users?", [
            observation("Coupon lookup is case-sensitive", type="discovery",
                        facts=["codes stored upper-case", "input not normalised"],
                        narrative="Users typing lower-case codes got 'invalid coupon'.",
                        files_read=["shop/coupons.py"])],
         Summary(request="Why do coupon codes fail for some users?",
                 completed="Normalised coupon input to upper case",
                 learned="Codes are stored upper-case", next_steps="Backfill old orders"))])
    time.sleep(0.01)
    record_session(home, SESSION, SHOP, [
        ("Fix the checkout rounding bug", [
            observation("Checkout truncated totals before tax", type="bugfix",
                        facts=["total() used int() on a float", "Decimal with ROUND_HALF_UP"],
                        narrative="Totals like 10.005 became 10.00; money is now Decimal "
                                  "end to end and rounded once, at the end.",
                        files_read=["shop/cart.py"], files_modified=["shop/checkout.py"],
                        concepts=["money", "rounding"]),
            observation("<img src=x onerror=alert('stored XSS')> shown as text",
                        type="discovery", facts=["<script>alert(1)</script>"],
                        narrative="Tool output is data: the viewer escapes it.")],
         Summary(request="Fix the checkout rounding bug",
                 investigated="cart.py and checkout.py totals",
                 learned="int() truncates; floats cannot hold cents exactly",
                 completed="Totals use Decimal with ROUND_HALF_UP",
                 next_steps="Add a regression test for 10.005")),
        ("Add that regression test", [
            observation("Regression test for half-cent totals", type="feature",
                        facts=["test_checkout_rounds_half_up"],
                        files_modified=["tests/test_checkout.py"])],
         Summary(request="Add that regression test", completed="Test added and passing")),
    ])
    with Store.open(home) as store:
        session = store.get_session(SESSION)
        assert session is not None
        first = store.observations_for_session(session.id)[0]
        store.edit_observation(first.id, facts=[*first.facts, "Checked by hand: 10.005 → 10.01"])
        # Three weeks of agent requests, for the usage chart.
        rng = random.Random(7)
        with store.transaction() as conn:
            for days_ago in range(21):
                for _ in range(rng.randint(0, 12)):
                    tokens = rng.randint(3_000, 14_000)
                    conn.execute(
                        "INSERT INTO agent_requests (session_id, created_at, kind, events, model,"
                        " input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,"
                        " cost_usd) VALUES (?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?),"
                        " 'observe', 5, 'claude-haiku-4-5', ?, ?, ?, 0, ?)",
                        (session.id, f"-{days_ago} days", tokens // 4, tokens // 10,
                         tokens, tokens * 1.1e-6))


def main(argv: list[str] | None = None) -> int:
    out = Path((argv or sys.argv[1:] or ["docs"])[0])
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="memoir-shots-"))
    try:
        seed(tmp / "home")
        viewer = start_viewer(tmp / "home")
        try:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1100, "height": 720})
                page.goto(viewer.login_url)
                shots = {
                    "viewer-projects.png": "/",
                    "viewer-timeline.png": f"/project?p={SHOP}",
                    "viewer-session.png": f"/session/{SESSION}",
                    "viewer-search.png": "/search?q=rounding",
                    "viewer-usage.png": "/usage",
                }
                for name, path in shots.items():
                    page.goto(viewer.base + path, wait_until="load")
                    page.screenshot(path=str(out / name), full_page=name != "viewer-session.png")
                    print(out / name)
                browser.close()
        finally:
            stop_viewer(viewer)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
