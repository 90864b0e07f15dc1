"""Who can reach the viewer: token, cookie, token header for changes, loopback only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

from claude_memoir.agent.models import Summary
from claude_memoir.store import Store
from conftest import memoir_command
from seeding import observation, record_session
from viewerkit import RunningViewer, start_viewer, stop_viewer, viewer  # noqa: F401

SID = "dddddddd-4444-4444-8444-dddddddddddd"


def test_first_line_is_the_url_and_only_the_token_opens_it(viewer: RunningViewer) -> None:  # noqa: F811
    assert viewer.login_url.startswith("http://127.0.0.1:") and "/?token=" in viewer.login_url
    assert len(viewer.token) >= 40
    # No token, a wrong token, a wrong cookie: 401, for pages, assets and the stream.
    for path in ("/", "/project?p=x", "/live", "/static/app.js", "/search?q=x"):
        assert viewer.request(path, cookie=False)[0] == 401, path
        assert viewer.request(path, headers={"Cookie": f"memoir_token_{viewer.port}=nope"},
                              cookie=False)[0] == 401, path
    assert viewer.request("/?token=wrong", cookie=False)[0] == 401
    # The printed URL signs in: a private cookie, and the token leaves the address bar.
    status, headers, _ = viewer.request(f"/?token={viewer.token}", cookie=False)
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert cookie.startswith(viewer.cookie) and "HttpOnly" in cookie \
        and "SameSite=Strict" in cookie
    status, headers, body = viewer.request("/")
    assert status == 200 and "<h1>Projects</h1>" in body
    assert "script-src 'self'" in headers["content-security-policy"]
    # A token link never redirects off the site.
    status, headers, _ = viewer.request(f"//evil.example/?token={viewer.token}", cookie=False)
    assert status == 303 and headers["location"].startswith("/") \
        and not headers["location"].startswith("//")


def test_changes_need_the_token_header_from_our_own_origin(
        viewer: RunningViewer, memoir_home: Path) -> None:  # noqa: F811
    row = record_session(memoir_home, SID, "/p", [("a", [observation("keep me")],
                                                   Summary(request="r"))])
    with Store.open(memoir_home) as store:
        oid = store.observations_for_session(row.id)[0].id
    path = f"/api/observations/{oid}"
    # A cookie alone (what a link or a form from another site would carry): refused.
    assert viewer.request(path, method="DELETE")[0] == 403
    assert viewer.request(path, method="DELETE",
                          headers={"X-Memoir-Token": "wrong"})[0] == 403
    assert viewer.request(path, method="DELETE", headers={
        "X-Memoir-Token": viewer.token, "Origin": "http://evil.example"})[0] == 403
    assert viewer.request(f"/api/sessions/{SID}", method="DELETE")[0] == 403
    with Store.open(memoir_home) as store:
        assert store.get_observation(oid) is not None
        assert store.get_session(SID) is not None
    # Bad edits are refused with a reason and change nothing.
    for body in (b"not json", b'["a"]', b'{"title": 5}', b'{"title": "  "}',
                 b'{"facts": "one"}'):
        status, _, text = viewer.request(path, method="POST", data=body, headers={
            "X-Memoir-Token": viewer.token, "Content-Type": "application/json"})
        assert status == 400 and '"ok":false' in text, body
    # With the header, from the page's origin: done.
    status, _, _ = viewer.request(path, method="DELETE", headers={
        "X-Memoir-Token": viewer.token, "Origin": viewer.base})
    assert status == 200
    with Store.open(memoir_home) as store:
        assert store.get_observation(oid) is None
    assert viewer.request(path, method="DELETE",
                          headers={"X-Memoir-Token": viewer.token})[0] == 404


def test_answers_only_on_loopback_and_to_its_own_host_name(
        viewer: RunningViewer) -> None:  # noqa: F811
    listening = [c.laddr for c in psutil.Process(viewer.proc.pid).net_connections("inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening
    # A DNS name rebound to 127.0.0.1 carries its own Host: refused.
    assert viewer.request("/", headers={"Host": "evil.example"})[0] == 403
    assert viewer.request("/", headers={"Host": f"localhost:{viewer.port}"})[0] == 200


def test_pages_answer_for_unknown_and_hostile_ids(viewer: RunningViewer) -> None:  # noqa: F811
    assert viewer.request("/session/..%2F..%2Fetc%2Fpasswd")[0] == 404
    assert viewer.request("/session/no-such-session")[0] == 404
    assert viewer.request("/project?p=/nowhere")[0] == 404
    assert viewer.request("/api/observations/abc", method="DELETE",
                          headers={"X-Memoir-Token": viewer.token})[0] in (404, 405)


def test_ui_without_its_extra_says_what_to_install(memoir_home: Path) -> None:
    # The extra's modules made unimportable, as in an install without [ui].
    code = ("import sys; sys.modules['starlette'] = None; sys.modules['uvicorn'] = None;"
            "from claude_memoir.cli.main import main; sys.exit(main(['ui', '--no-open']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=30, env=dict(os.environ))
    assert r.returncode == 1
    assert "pip install 'claude-memoir[ui]'" in r.stderr
    assert "starlette" in r.stderr and "Traceback" not in r.stderr


def test_a_busy_port_is_a_clear_error(memoir_home: Path) -> None:
    first = start_viewer(memoir_home)
    try:
        r = subprocess.run([*memoir_command(), "ui", "--no-open", "--port", str(first.port)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and f"cannot listen on 127.0.0.1:{first.port}" in r.stderr
    finally:
        stop_viewer(first)


def test_stops_promptly_on_sigterm_with_a_live_stream_open(memoir_home: Path) -> None:
    import http.client
    import time

    running = start_viewer(memoir_home)
    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
    conn.request("GET", "/live?after=0", headers={"Cookie": running.cookie})
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("content-type", "").startswith("text/event-stream")
    assert response.readline() == b"retry: 2000\n"
    started = time.monotonic()
    running.proc.terminate()
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert running.proc.wait(timeout=10) in (0, -15)
    assert time.monotonic() - started < 4
    assert running.proc.stderr is not None
    assert "ERROR" not in running.proc.stderr.read()
    conn.close()
    stop_viewer(running)


def test_bad_port_is_a_usage_error(memoir_home: Path) -> None:
    r = subprocess.run([*memoir_command(), "ui", "--no-open", "--port", "70000"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--port must be 0-65535" in r.stderr
