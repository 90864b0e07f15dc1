"""A real ``memoir ui`` server for tests, and a real headless Chromium to look at it."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from conftest import memoir_command

CHROMIUM = "/usr/bin/chromium"
# The flags that work on these machines: no sandbox as root, and no background
# traffic (the network is closed; Chromium would retry connections forever).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


class RunningViewer:
    """A ``memoir ui --no-open --port 0`` process and what it printed first."""

    def __init__(self, proc: subprocess.Popen[str], first_line: str) -> None:
        self.proc = proc
        self.login_url = first_line
        parts = urlsplit(first_line)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.port = int(parts.port or 0)
        self.token = first_line.split("token=", 1)[1]

    @property
    def cookie(self) -> str:
        return f"memoir_token_{self.port}={self.token}"

    def request(self, path: str, *, method: str = "GET", headers: dict[str, str] | None = None,
                cookie: bool = True, data: bytes | None = None) -> tuple[int, dict[str, str], str]:
        """One HTTP request without following redirects: (status, headers, body)."""
        all_headers = dict(headers or {})
        if cookie:
            all_headers.setdefault("Cookie", self.cookie)
        req = urllib.request.Request(self.base + path, method=method, headers=all_headers,
                                     data=data)
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def start_viewer(home: Path, *args: str, timeout: float = 20) -> RunningViewer:
    """Start the viewer for ``home`` and wait for the URL it prints first."""
    proc = subprocess.Popen([*memoir_command(), "ui", "--no-open", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MEMOIR_HOME": str(home)})
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        first = lines.get(timeout=timeout).strip()
    except queue.Empty:
        proc.kill()
        pytest.fail(f"memoir ui printed nothing in {timeout}s")
    if not first.startswith("http://127.0.0.1:"):
        proc.kill()
        pytest.fail(f"memoir ui's first line is not its URL: {first!r} "
                    f"(stderr: {proc.stderr.read() if proc.stderr else ''})")
    return RunningViewer(proc, first)


def stop_viewer(viewer: RunningViewer) -> None:
    viewer.proc.terminate()
    try:
        viewer.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        viewer.proc.kill()
        viewer.proc.wait(timeout=5)
    for stream in (viewer.proc.stdout, viewer.proc.stderr):
        if stream is not None:
            stream.close()


@pytest.fixture
def viewer(memoir_home: Path) -> Iterator[RunningViewer]:
    """A running viewer on the test's store."""
    running = start_viewer(memoir_home)
    try:
        yield running
    finally:
        stop_viewer(running)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (one browser per test module).

    Not per session: Playwright's sync API keeps an event loop running in this
    thread while it is started, and every later test calling asyncio.run()
    (the worker tests) would fail with "cannot be called from a running event
    loop".
    """
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                    headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Any, viewer: RunningViewer) -> Iterator[Any]:
    """A fresh browser context (no cookies), signed in with the URL the viewer printed.

    Every dialog (confirm) is accepted and remembered; every console error and
    page error is collected, so a test can assert that none happened.
    """
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    pg.dialogs = []  # type: ignore[attr-defined]
    pg.errors = []  # type: ignore[attr-defined]

    def on_dialog(dialog: Any) -> None:
        pg.dialogs.append((dialog.type, dialog.message))  # type: ignore[attr-defined]
        dialog.accept()

    pg.on("dialog", on_dialog)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))  # type: ignore[attr-defined]
    pg.goto(viewer.login_url)
    try:
        yield pg
    finally:
        context.close()
