"""Page load times of the viewer on a large store: ``python -m tests.bench_viewer [--runs N]``.

From the repository root, after the test command. Builds a store of 10,000
sessions, 200,000 observations and 50 projects (``tests.benchmarks``'s history,
plus 300 raw events in one session), starts a real ``memoir ui`` on it and
measures every page two ways: the server's answer (an HTTP GET, time to the
whole body) and a real headless Chromium's load (navigation to the load
event, the page's script and stylesheet included). Prints a table; medians
over ``--runs`` loads each, after one warm-up load.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "web"))

from tests.benchmarks import build_history  # noqa: E402

from claude_memoir.store import Store  # noqa: E402
from viewerkit import CHROMIUM, CHROMIUM_ARGS, start_viewer, stop_viewer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--observations", type=int, default=200_000)
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="memoir-bench-viewer-"))
    home = tmp / "home"
    try:
        projects = [f"/home/dev/projects/project-{i:02d}" for i in range(50)]
        built = build_history(home, projects, args.sessions, args.observations)
        with Store.open(home) as store:
            newest = store.session_stats()[0].session
            for i in range(300):
                store.add_event(newest.id, 1, "Bash", {"command": f"pytest -k case{i}"},
                                {"stdout": "passed " * 200})
            timeline = store.timeline(newest.project, limit=51)
            older = timeline[-2].session.id  # the last of the first page of 50
            word = (store.observations_for_session(newest.id)[0].title.split() or ["x"])[0]
        print(f"store: {built['sessions']:,.0f} sessions, {built['observations']:,.0f} "
              f"observations, {built['summaries']:,.0f} summaries, "
              f"{built['megabytes']:.0f} MB (built in {built['seconds']:.0f} s)")
        pages = {
            "projects": "/",
            "timeline (newest 50)": f"/project?p={quote(newest.project)}",
            "timeline (older page)": f"/project?p={quote(newest.project)}"
                                     f"&before={older}",
            "session": f"/session/{newest.claude_session_id}",
            "session + 300 raw events": f"/session/{newest.claude_session_id}?events=1",
            "search": f"/search?q={quote(word)}",
            "usage": "/usage",
        }
        viewer = start_viewer(home)
        try:
            results = measure(viewer, pages, args.runs)
        finally:
            stop_viewer(viewer)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{'page':<28} {'server (HTTP GET)':>18} {'Chromium load':>15}  bytes")
    for name, (server, browser, size) in results.items():
        print(f"{name:<28} {server:>15.1f} ms {browser:>12.1f} ms  {size:,}")
    return 0


def measure(viewer: Any, pages: dict[str, str], runs: int) -> dict[str, tuple[float, float, int]]:
    from playwright.sync_api import sync_playwright

    out: dict[str, tuple[float, float, int]] = {}
    opener = urllib.request.build_opener()
    opener.addheaders = [("Cookie", viewer.cookie)]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(viewer.login_url)
        for name, path in pages.items():
            server: list[float] = []
            loads: list[float] = []
            size = 0
            for i in range(runs + 1):
                started = time.perf_counter()
                with opener.open(viewer.base + path, timeout=60) as resp:
                    body = resp.read()
                elapsed = (time.perf_counter() - started) * 1000
                size = len(body)
                started = time.perf_counter()
                page.goto(viewer.base + path, wait_until="load")
                loaded = (time.perf_counter() - started) * 1000
                if i:  # the first load warms caches
                    server.append(elapsed)
                    loads.append(loaded)
            out[name] = (statistics.median(server), statistics.median(loads), size)
        browser.close()
    return out


if __name__ == "__main__":
    sys.exit(main())
