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
    from ..store import Store

    settings = load_settings()
    with Store.open(settings.home) as store:
        text = build_context(store, settings, os.path.abspath(args.cwd or os.getcwd()))
    if text:
        print(text)
    else:  # stdout stays what SessionStart would inject: nothing
        print("memoir: nothing to inject for this project (no history recorded here yet, or "
              "MEMOIR_CONTEXT_BUDGET is 0)", file=sys.stderr)
    return 0


def _session_dict(stats: Any) -> dict[str, Any]:
    """A session for output: its fields, then its counts as ``*_count`` keys.

    Counts have names of their own so that no key means a number in one place
    and a list in another (``show --json`` adds the ``summaries`` and
    ``observations`` themselves).
    """
    s = stats.session
    return {
        "session_id": s.claude_session_id,
        "project": s.project,
        "cwd": s.cwd,
        "status": s.status,
        "started_at": s.started_at,
        "updated_at": s.updated_at,
        "ended_at": s.ended_at,
        "end_reason": s.end_reason,
        "worker_pid": s.worker_pid,
        "agent_session_id": s.agent_session_id,
        "prompt_count": stats.prompts,
        "event_count": stats.events_total,
        "pending_event_count": stats.events_pending,
        "observation_count": stats.observations,
        "summary_count": stats.summaries,
    }


def resolve_session(store: Any, text: str) -> Any:
    """The session ``text`` names: a full id, or a unique prefix (the context prints 8 chars).

    Raises InvalidInput for an invalid or ambiguous one; returns None if none matches.
    """
    from ..errors import InvalidInput
    from ..paths import validate_session_id

    text = validate_session_id(text)
    session = store.get_session(text)
    if session is not None:
        return session
    matches = store.session_ids_with_prefix(text, limit=6)
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise InvalidInput(f"session prefix {text!r} is ambiguous: it matches {shown}; "
                           "give more characters", reason="ambiguous-session")
    return store.get_session(matches[0]) if matches else None


def cmd_sessions(args: argparse.Namespace) -> int:
    """List sessions, newest first, with their counts."""
    from ..config import load_settings
    from ..recall.project import project_key
    from ..store import Store

    project = project_key(str(args.cwd)) if args.cwd is not None else None
    with Store.open(load_settings().home) as store:
        rows = [_session_dict(s) for s in store.session_stats(project=project,
                                                              limit=args.limit)]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no sessions recorded yet" if project is None
              else f"no sessions recorded for {project}")
        return 0
    header = f"{'SESSION':<36}  {'STATUS':<9}  {'PROMPTS':>7}  {'EVENTS':>6}  " \
             f"{'PENDING':>7}  {'OBS':>4}  {'SUMM':>4}  {'STARTED':<16}  PROJECT"
    print(header)
    for r in rows:
        print(f"{r['session_id']:<36}  {r['status']:<9}  {r['prompt_count']:>7}  "
              f"{r['event_count']:>6}  {r['pending_event_count']:>7}  "
              f"{r['observation_count']:>4}  {r['summary_count']:>4}  "
              f"{r['started_at'][:16].replace('T', ' '):<16}  "
              f"{r['project']}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """One session: its counts, summaries and observations."""
    from ..config import load_settings
    from ..store import Store

    with Store.open(load_settings().home) as store:
        session = resolve_session(store, args.session)
        if session is None:
            print(f"memoir: no session {args.session}", file=sys.stderr)
            return 1
        stats = store.session_stats(session.claude_session_id)
        info = _session_dict(stats[0])
        summaries = [s._asdict() for s in store.summaries_for_session(session.id)]
        observations = [o._asdict() for o in store.observations_for_session(session.id)]
    if args.json:
        print_json({**info, "summaries": summaries, "observations": observations})
        return 0
    for key, value in info.items():
        print(f"{(key + ':').ljust(17)} {value}")
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
    """Health first (one line: healthy, or degraded and why), then disk, spend, workers."""
    from .. import ipc
    from ..budget import budget_status
    from ..config import load_settings
    from ..health import check_health
    from ..paths import socket_path
    from ..retention import usage
    from ..store import Store

    settings = load_settings()
    home = settings.home
    with Store.open(home) as store:
        health = check_health(store, settings)
        sessions = store.sessions_with_workers()
        backlog = store.search_backlog()
        disk = usage(home, store)
        budget = budget_status(store, settings)
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
        print_json({"health": {"level": health.level, "headline": health.headline(),
                               "reasons": health.reasons},
                    "workers": rows, "storage": disk, "agent_today": budget._asdict()})
        return 0
    print(health.headline())
    for reason in health.reasons:
        print(f"  - {reason}")
    print()
    print(_storage_line(disk))
    print(f"agent today: {budget.requests} request(s); {budget.reason}")
    if budget.reached:
        print("BUDGET REACHED: memory is degraded until tomorrow (fallback summaries); "
              "see `memoir usage`")
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


def _positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _storage_line(disk: Any) -> str:
    """One line of what $MEMOIR_HOME holds on disk."""
    from ..retention import human

    line = (f"storage: database {human(disk['database_bytes'])} "
            f"({human(disk['database_free_bytes'])} free for reuse), "
            f"logs {human(disk['log_bytes'])}, "
            f"spool {disk['spool_files']} file(s) {human(disk['spool_bytes'])}")
    if disk["rejected_files"]:
        line += f", {disk['rejected_files']} rejected file(s) kept (see `memoir doctor`)"
    return line


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``context``, ``sessions``, ``show`` and ``status``."""
    text = "print what SessionStart would inject"
    p = sub.add_parser("context", help=text, description=text)
    p.add_argument("--cwd", type=Path, default=None,
                   help="project directory (default: the current directory)")
    p.set_defaults(func=cmd_context)

    text = "list recorded sessions"
    p = sub.add_parser("sessions", help=text, description=text)
    p.add_argument("--limit", type=_positive_int, default=0, metavar="N",
                   help="only the N newest sessions")
    p.add_argument("--cwd", type=Path, default=None, metavar="DIR",
                   help="only sessions of the project at DIR")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_sessions)

    text = "show one session with its summaries"
    p = sub.add_parser("show", help=text, description=text)
    p.add_argument("session", help="Claude Code session id, or a unique prefix of it "
                   "(the 8 characters the context shows)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_show)

    text = "say whether memory is healthy (and if not why), then disk, spend, workers"
    p = sub.add_parser("status", help=text, description=text)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)
