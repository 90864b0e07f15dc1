"""Reading what was recorded: ``context``, ``sessions``, ``show``, ``status``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import IPCError
from .output import print_json


def cmd_context(args: argparse.Namespace) -> int:
    """Print exactly what SessionStart would inject for a project."""
    from ..config import load_settings
    from ..recall.context import build_context
    from ..recall.project import project_key
    from ..store import Store

    settings = load_settings()
    with Store.open(settings.home) as store:
        text = build_context(store, settings, project_key(args.cwd or os.getcwd()))
    if text:
        print(text)
    return 0


def _session_dict(stats: Any) -> dict[str, Any]:
    s = stats.session
    return {
        "session_id": s.claude_session_id,
        "project": s.project,
        "status": s.status,
        "started_at": s.started_at,
        "updated_at": s.updated_at,
        "ended_at": s.ended_at,
        "end_reason": s.end_reason,
        "worker_pid": s.worker_pid,
        "agent_session_id": s.agent_session_id,
        "prompts": stats.prompts,
        "events_total": stats.events_total,
        "events_pending": stats.events_pending,
        "observations": stats.observations,
        "summaries": stats.summaries,
    }


def cmd_sessions(args: argparse.Namespace) -> int:
    """List sessions, newest first, with their counts."""
    from ..config import load_settings
    from ..store import Store

    with Store.open(load_settings().home) as store:
        rows = [_session_dict(s) for s in store.session_stats()]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no sessions recorded yet")
        return 0
    header = f"{'SESSION':<36}  {'STATUS':<9}  {'PROMPTS':>7}  {'EVENTS':>6}  " \
             f"{'PENDING':>7}  {'OBS':>4}  {'SUMM':>4}  {'STARTED':<16}  PROJECT"
    print(header)
    for r in rows:
        print(f"{r['session_id']:<36}  {r['status']:<9}  {r['prompts']:>7}  "
              f"{r['events_total']:>6}  {r['events_pending']:>7}  {r['observations']:>4}  "
              f"{r['summaries']:>4}  {r['started_at'][:16].replace('T', ' '):<16}  "
              f"{r['project']}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """One session: its counts, summaries and observations."""
    from ..config import load_settings
    from ..paths import validate_session_id
    from ..store import Store

    session_id = validate_session_id(args.session)
    with Store.open(load_settings().home) as store:
        stats = store.session_stats(session_id)
        if not stats:
            print(f"memoir: no session {session_id}", file=sys.stderr)
            return 1
        info = _session_dict(stats[0])
        summaries = [s._asdict() for s in store.summaries_for_session(stats[0].session.id)]
        observations = [o._asdict() for o in store.observations_for_session(stats[0].session.id)]
    if args.json:
        print_json({**info, "summaries": summaries, "observations": observations})
        return 0
    for key, value in info.items():
        print(f"{key + ':':<18}{value}")
    for s in summaries:
        kind = " (fallback)" if s["kind"] == "fallback" else ""
        print(f"\n== summary of prompt {s['prompt_number']}{kind} ({s['created_at']})")
        for field in ("request", "investigated", "learned", "completed", "next_steps", "notes"):
            if s[field]:
                print(f"  {field}: {s[field]}")
    if observations:
        print("\n== observations")
        for o in observations:
            print(f"  [{o['type']}] {o['title']}" + (f": {o['subtitle']}" if o["subtitle"] else ""))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Health first (one line: healthy, or degraded and why), today's spend, live workers."""
    from .. import ipc
    from ..budget import budget_status
    from ..config import load_settings
    from ..health import check_health
    from ..paths import socket_path
    from ..store import Store

    settings = load_settings()
    home = settings.home
    with Store.open(home) as store:
        health = check_health(store, settings)
        sessions = store.sessions_with_workers()
        budget = budget_status(store, settings)
        backlog = store.search_backlog()
    if backlog and not args.json:
        # Degraded recall: records from before the search index are not found yet.
        print(f"search index: {backlog} older records not indexed yet (being indexed in the "
              "background; `memoir install` finishes it now)", file=sys.stderr)
    rows = []
    for s in sessions:
        row: dict[str, Any] = {"session_id": s.claude_session_id, "pid": s.worker_pid,
                               "project": s.project}
        try:
            ack = ipc.request(socket_path(home, s.claude_session_id), {"type": "ping"},
                              timeout=1.0)
            row.update(responsive=True, **(ack.get("state") or {}))
        except IPCError as e:
            row.update(responsive=False, error=str(e))
        rows.append(row)
    if args.json:
        # Today's spend in detail is in `memoir usage --json`.
        print_json({"health": {"level": health.level, "headline": health.headline(),
                               "reasons": health.reasons},
                    "workers": rows})
        return 0
    print(health.headline())
    for reason in health.reasons:
        print(f"  - {reason}")
    print(f"agent today: {budget.requests} request(s); {budget.reason}")
    if budget.reached:
        print("BUDGET REACHED: memory is degraded until tomorrow (fallback summaries); "
              "see `memoir usage`")
    print()
    if not rows:
        print("no live workers")
        return 0
    for r in rows:
        if r["responsive"]:
            held = f" ({r['held']} held for the prompt's batch)" if r.get("held") else ""
            print(f"{r['session_id']}  pid {r['pid']}  up {r.get('uptime', 0):.0f}s  "
                  f"idle {r.get('idle', 0):.0f}s  pending {r.get('pending')}{held}  "
                  f"agent {r.get('agent')}  {r['project']}")
        else:
            print(f"{r['session_id']}  pid {r['pid']}  UNRESPONSIVE ({r['error']})  "
                  f"{r['project']}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``context``, ``sessions``, ``show`` and ``status``."""
    text = "print what SessionStart would inject"
    p = sub.add_parser("context", help=text, description=text)
    p.add_argument("--cwd", type=Path, default=None,
                   help="project directory (default: the current directory)")
    p.set_defaults(func=cmd_context)

    text = "list recorded sessions"
    p = sub.add_parser("sessions", help=text, description=text)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_sessions)

    text = "show one session with its summaries"
    p = sub.add_parser("show", help=text, description=text)
    p.add_argument("session", help="Claude Code session id")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_show)

    text = "say whether memory is healthy (and if not why), then list live workers"
    p = sub.add_parser("status", help=text, description=text)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)
