"""The viewer's ASGI application: pages, the JSON endpoints for changes, live updates.

Pages are rendered on the server by Jinja2 with autoescaping on: everything
shown came from tool output or an agent, so it is text, never markup. The
page's own script (``static/app.js``) builds the live updates with
``textContent`` only, and the Content-Security-Policy forbids inline script,
so even a missed escape could not run code.

Store access happens in Starlette's thread pool (sync endpoints), one short
connection per request: SQLite connections are not shared between threads,
and WAL lets the viewer read while hooks and workers write.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import InvalidInput, MemoirError
from ..log import get_logger
from ..paths import validate_session_id
from ..store import Store
from . import features
from .auth import TokenAuth

log = get_logger(__name__)

# Rows per page of a timeline, and raw events shown for a session at most.
TIMELINE_PAGE = 50
MAX_EVENTS_SHOWN = 500
# Characters of one raw tool input/response shown on the page.
EVENT_PREVIEW_CHARS = 4000
# Seconds between two looks for new observations, and between keep-alives.
LIVE_POLL = 1.0
LIVE_KEEPALIVE = 15.0


def _env() -> Environment:
    env = Environment(loader=PackageLoader("claude_memoir.web", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["when"] = lambda ts: (ts or "")[:16].replace("T", " ")
    env.filters["preview"] = _preview
    return env


def _preview(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1)
    if len(text) > EVENT_PREVIEW_CHARS:
        more = len(text) - EVENT_PREVIEW_CHARS
        return text[:EVENT_PREVIEW_CHARS] + f"\n… ({more} more characters)"
    return text


class Viewer:
    """The application's state: where the store is, the token, the templates."""

    def __init__(self, home: str, token: str, stopping: threading.Event) -> None:
        self.home = home
        self.token = token
        self.templates = _env()
        # Set when the server is asked to stop: live streams end at their next
        # tick instead of holding the shutdown until uvicorn cancels them.
        self.stopping = stopping

    @contextmanager
    def store(self) -> Iterator[Store]:
        with Store.open(self.home) as store:
            yield store

    def render(self, name: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        from ..config import load_settings

        with self.store() as store:
            health = features.health(store, load_settings())
            last_id = store.last_observation_id()
        html = self.templates.get_template(name).render(
            token=self.token, health=health, last_observation_id=last_id, **context)
        return HTMLResponse(html, status_code=status)

    # -- pages -----------------------------------------------------------------

    def projects(self, request: Request) -> Response:
        with self.store() as store:
            projects = store.projects()
        return self.render("projects.html", projects=projects)

    def project(self, request: Request) -> Response:
        key = request.query_params.get("p", "")
        raw = request.query_params.get("before", "")
        before = int(raw) if raw.isdigit() else None
        with self.store() as store:
            entries = store.timeline(key, before=before, limit=TIMELINE_PAGE + 1)
        more = len(entries) > TIMELINE_PAGE
        entries = entries[:TIMELINE_PAGE]
        if not entries and before is None:
            return self.render("missing.html", what=f"project {key}", status=404)
        older = entries[-1].session.id if more else None
        return self.render("timeline.html", project=key, entries=entries, older=older)

    def session(self, request: Request) -> Response:
        try:
            sid = validate_session_id(request.path_params["sid"])
        except InvalidInput:
            return self.render("missing.html", what="that session", status=404)
        with_events = request.query_params.get("events") == "1"
        with self.store() as store:
            session = store.get_session(sid)
            if session is None:
                return self.render("missing.html", what=f"session {sid}", status=404)
            prompts = store.prompts_for_session(session.id)
            observations = store.observations_for_session(session.id)
            summaries = store.summaries_for_session(session.id)
            events = (store.events_for_session(session.id, MAX_EVENTS_SHOWN + 1)
                      if with_events else [])
        by_prompt: dict[int, dict[str, Any]] = {}
        for p in prompts:
            by_prompt.setdefault(p.prompt_number, {})["prompt"] = p
        for o in observations:
            by_prompt.setdefault(o.prompt_number, {}).setdefault("observations", []).append(o)
        for s in summaries:
            by_prompt.setdefault(s.prompt_number, {})["summary"] = s
        return self.render("session.html", session=session,
                           turns=sorted(by_prompt.items()),
                           observation_count=len(observations), with_events=with_events,
                           events=events[:MAX_EVENTS_SHOWN],
                           events_cut=len(events) > MAX_EVENTS_SHOWN)

    def search(self, request: Request) -> Response:
        query = request.query_params.get("q", "").strip()
        project = request.query_params.get("p") or None
        results: list[Any] = []
        error = None
        if query and features.search_available():
            with self.store() as store:
                try:
                    results = features.search(store, query, project=project)
                except MemoirError as e:
                    error = str(e)
        return self.render("search.html", query=query, project=project, results=results,
                           error=error, available=features.search_available())

    def usage(self, request: Request) -> Response:
        project = request.query_params.get("p") or None
        days = 30
        chart = None
        if features.usage_available():
            with self.store() as store:
                chart = features.usage_chart(store, days=days, project=project)
        return self.render("usage.html", chart=chart, days=days, project=project,
                           available=features.usage_available())

    # -- changes (token header required by TokenAuth) ------------------------------

    async def edit_observation(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body must be JSON")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        title, narrative, facts = body.get("title"), body.get("narrative"), body.get("facts")
        if (title is not None and not isinstance(title, str)) or (
                narrative is not None and not isinstance(narrative, str)) or (
                facts is not None and (not isinstance(facts, list)
                                       or not all(isinstance(f, str) for f in facts))):
            return _error(400, "title and narrative are strings, facts a list of strings")
        oid = request.path_params["oid"]

        def edit() -> Any:
            with self.store() as store:
                return store.edit_observation(oid, title=title, facts=facts, narrative=narrative)

        try:
            row = await run_in_threadpool(edit)
        except InvalidInput as e:
            return _error(400, str(e))
        if row is None:
            return _error(404, f"no observation {oid}")
        return JSONResponse({"ok": True, "observation": _observation_json(row)})

    def delete_observation(self, request: Request) -> Response:
        with self.store() as store:
            gone = store.delete_observation(request.path_params["oid"])
        return JSONResponse({"ok": True}) if gone else _error(404, "no such observation")

    def delete_summary(self, request: Request) -> Response:
        with self.store() as store:
            gone = store.delete_summary(request.path_params["mid"])
        return JSONResponse({"ok": True}) if gone else _error(404, "no such summary")

    def delete_session(self, request: Request) -> Response:
        try:
            sid = validate_session_id(request.path_params["sid"])
        except InvalidInput as e:
            return _error(400, str(e))
        with self.store() as store:
            sessions = store.sessions_to_forget(claude_session_id=sid)
            if not sessions:
                return _error(404, f"no session {sid}")
            store.forget_sessions([s.id for s in sessions])
            store.reclaim_space()
        return JSONResponse({"ok": True, "sessions": 1})

    def delete_project(self, request: Request) -> Response:
        key = request.query_params.get("p", "")
        with self.store() as store:
            sessions = store.sessions_to_forget(project=key)
            if not sessions:
                return _error(404, "no such project")
            store.forget_sessions([s.id for s in sessions])
            store.reclaim_space()
        return JSONResponse({"ok": True, "sessions": len(sessions)})

    # -- live updates ------------------------------------------------------------

    async def live(self, request: Request) -> Response:
        """Server-sent events: each observation stored after ``after`` as it appears."""
        try:
            after = max(0, int(request.query_params.get("after", "0")))
        except ValueError:
            after = 0

        def fetch(last: int) -> list[Any]:
            with self.store() as store:
                return store.observations_after(last)

        async def stream() -> AsyncIterator[str]:
            last = after
            quiet = 0.0
            yield "retry: 2000\n\n"
            while not self.stopping.is_set() and not await request.is_disconnected():
                try:
                    new = await run_in_threadpool(fetch, last)
                except MemoirError as e:  # a busy store: try again next tick
                    log.warning("viewer live update: %s", e)
                    new = []
                for item in new:
                    last = item.observation.id
                    data = {**_observation_json(item.observation), "session": item.session,
                            "project": item.project}
                    yield f"id: {last}\nevent: observation\ndata: {json.dumps(data)}\n\n"
                quiet = 0.0 if new else quiet + LIVE_POLL
                if quiet >= LIVE_KEEPALIVE:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
                await asyncio.sleep(LIVE_POLL)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"x-accel-buffering": "no"})


def _observation_json(row: Any) -> dict[str, Any]:
    return {k: row._asdict()[k] for k in (
        "id", "prompt_number", "type", "title", "subtitle", "facts", "narrative", "concepts",
        "files_read", "files_modified", "created_at", "edited_at")}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=status)


def create_app(home: str | os.PathLike[str], *, token: str, port: int,
               stopping: threading.Event | None = None) -> TokenAuth:
    """The viewer for the store under ``home``, behind the token check for ``port``.

    ``stopping``, once set, ends the live streams (the server is shutting down).
    """
    viewer = Viewer(os.fspath(home), token, stopping or threading.Event())
    static = StaticFiles(packages=[("claude_memoir.web", "static")])
    app = Starlette(routes=[
        Route("/", viewer.projects),
        Route("/project", viewer.project),
        Route("/session/{sid}", viewer.session),
        Route("/search", viewer.search),
        Route("/usage", viewer.usage),
        Route("/live", viewer.live),
        Route("/api/observations/{oid:int}", viewer.edit_observation, methods=["POST"]),
        Route("/api/observations/{oid:int}", viewer.delete_observation, methods=["DELETE"]),
        Route("/api/summaries/{mid:int}", viewer.delete_summary, methods=["DELETE"]),
        Route("/api/sessions/{sid}", viewer.delete_session, methods=["DELETE"]),
        Route("/api/projects", viewer.delete_project, methods=["DELETE"]),
        Mount("/static", static, name="static"),
    ])
    return TokenAuth(app, token=token, port=port)
