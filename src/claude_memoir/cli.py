"""The ``memoir`` command line.

    memoir install [--scope user|project]   wire the hooks into Claude Code
    memoir uninstall [--scope user|project] take them out again
    memoir context [--cwd DIR]              print what SessionStart would inject
    memoir sessions [--json]                list recorded sessions with counts
    memoir show SESSION [--json]            one session with its summaries
    memoir status [--json]                  live workers
    memoir reprocess SESSION [--wait S]     retry parked events, replace fallback summaries
    memoir cleanup-sessions [--max-age 24h] [--dry-run] [--json]
    memoir doctor [--fix] [--live] [--json] check install, privacy, database, agent

Exit codes: 0 success, 1 failure, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .errors import InvalidInput, IPCError, MemoirError

log = logging.getLogger(__name__)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


# -- install -------------------------------------------------------------------


def cmd_install(args: argparse.Namespace) -> int:
    """Merge our hooks into the chosen settings.json."""
    from .install import install, precompile, settings_path

    path = settings_path(args.scope)
    result = install(path)
    if not precompile():
        print("note: could not write the package's bytecode; hooks will compile it each "
              "run (slower)", file=sys.stderr)
    if result.changed:
        print(f"claude-memoir hooks installed in {result.path}")
        if result.backup:
            print(f"previous settings kept in {result.backup}")
    else:
        print(f"claude-memoir hooks already installed in {result.path}")
    print(f"interpreter: {sys.executable}")
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    """Remove our hooks (and only ours) from the chosen settings.json."""
    from .install import settings_path, uninstall

    result = uninstall(settings_path(args.scope))
    if result.changed:
        print(f"claude-memoir hooks removed from {result.path}")
    else:
        print(f"no claude-memoir hooks in {result.path}")
    return 0


# -- reading -------------------------------------------------------------------


def cmd_context(args: argparse.Namespace) -> int:
    """Print exactly what SessionStart would inject for a project."""
    from .config import load_settings
    from .context import build_context, project_key
    from .store import Store

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
    from .config import load_settings
    from .store import Store

    with Store.open(load_settings().home) as store:
        rows = [_session_dict(s) for s in store.session_stats()]
    if args.json:
        _print_json(rows)
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
    from .config import load_settings
    from .paths import validate_session_id
    from .store import Store

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
        _print_json({**info, "summaries": summaries, "observations": observations})
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
    """Live workers: every session with a recorded worker, pinged."""
    from . import ipc
    from .config import load_settings
    from .paths import socket_path
    from .store import Store

    home = load_settings().home
    with Store.open(home) as store:
        sessions = store.sessions_with_workers()
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
        _print_json(rows)
        return 0
    if not rows:
        print("no live workers")
        return 0
    for r in rows:
        if r["responsive"]:
            print(f"{r['session_id']}  pid {r['pid']}  up {r.get('uptime', 0):.0f}s  "
                  f"idle {r.get('idle', 0):.0f}s  pending {r.get('pending')}  "
                  f"agent {r.get('agent')}  {r['project']}")
        else:
            print(f"{r['session_id']}  pid {r['pid']}  UNRESPONSIVE ({r['error']})  "
                  f"{r['project']}")
    return 0


# -- maintenance -----------------------------------------------------------------


def cmd_reprocess(args: argparse.Namespace) -> int:
    """Give a session's parked events and fallback summaries another try with the agent."""
    from . import launch
    from .config import load_settings
    from .paths import validate_session_id
    from .store import Store

    session_id = validate_session_id(args.session)
    home = load_settings().home
    with Store.open(home) as store:
        session = store.get_session(session_id)
        if session is None:
            print(f"memoir: no session {session_id}", file=sys.stderr)
            return 1
        # An ended session's worker exits when done; a live one keeps serving.
        unparked = store.request_reprocess(session.id, end=session.status != "active")
    outcome = launch.notify(home, session_id, {"type": "wake"})
    print(f"reprocessing {session_id}: {unparked} parked event(s) queued again "
          f"(worker {outcome})")
    if args.wait <= 0:
        return 0
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        with Store.open(home) as store:
            row = store.get_session(session_id)
            done = row is not None and row.reprocess_requested_at is None
            if done:
                assert row is not None
                kinds = [s.kind for s in store.summaries_for_session(row.id)]
                pending = store.count_pending(row.id)
                break
        time.sleep(0.2)
    else:
        print(f"memoir: reprocessing not finished after {args.wait:.0f}s; "
              "it goes on in the background", file=sys.stderr)
        return 1
    print(f"done: {kinds.count('agent')} agent summary(ies), {kinds.count('fallback')} "
          f"fallback, {pending} event(s) pending")
    return 0 if not kinds.count("fallback") else 1


def cmd_cleanup_sessions(args: argparse.Namespace) -> int:
    """Fail stale sessions, end orphaned workers and agents, remove stale files."""
    from .cleanup import cleanup, parse_duration
    from .config import load_settings

    max_age = parse_duration(args.max_age)
    report = cleanup(load_settings().home, max_age, dry_run=args.dry_run)
    if args.json:
        _print_json(report)
        return 0
    verb = "would" if args.dry_run else "did"
    print(f"cleanup ({verb}, max age {args.max_age}):")
    for key, label in (("sessions_failed", "sessions marked failed"),
                       ("workers_ended", "unresponsive workers ended"),
                       ("agents_ended", "orphaned agent processes ended"),
                       ("sockets_removed", "stale sockets removed"),
                       ("pid_files_removed", "stale pid files removed"),
                       ("live_workers", "live workers left alone")):
        items = report[key]  # type: ignore[literal-required]
        print(f"  {label}: {len(items)}" + (f" ({', '.join(map(str, items))})" if items else ""))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check the install, permissions, database, runtime leftovers and the agent."""
    from .config import load_settings
    from .doctor import as_json, run_checks

    findings = run_checks(load_settings(), Path(os.getcwd()), fix=args.fix, live=args.live)
    failed = any(f.level == "fail" for f in findings)
    if args.json:
        _print_json(as_json(findings))
        return 1 if failed else 0
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    for f in findings:
        print(f"[{marks[f.level]}] {f.check}: {f.detail}")
        if f.fix:
            print(f"       fix: {f.fix}")
    print("\nall good" if not failed and all(f.level == "ok" for f in findings)
          else ("\nproblems found" if failed else "\nworks, with warnings"))
    return 1 if failed else 0


# -- plumbing --------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="memoir", description="Persistent memory for Claude Code.")
    parser.add_argument("--version", action="version", version=f"memoir {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, func, text in (
        ("install", cmd_install, "merge claude-memoir's hooks into Claude Code's settings.json"),
        ("uninstall", cmd_uninstall, "remove claude-memoir's hooks (only ours)"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--scope", choices=("user", "project"), default="user",
                       help="user: ~/.claude/settings.json (default); "
                            "project: ./.claude/settings.json")
        p.set_defaults(func=func)

    p = sub.add_parser("context", help="print what SessionStart would inject")
    p.add_argument("--cwd", type=Path, default=None,
                   help="project directory (default: the current directory)")
    p.set_defaults(func=cmd_context)

    p = sub.add_parser("sessions", help="list recorded sessions")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_sessions)

    p = sub.add_parser("show", help="show one session with its summaries")
    p.add_argument("session", help="Claude Code session id")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("status", help="list live workers")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("reprocess", help="retry parked events and replace fallback summaries")
    p.add_argument("session", help="Claude Code session id")
    p.add_argument("--wait", type=float, default=120.0, metavar="SECONDS",
                   help="wait this long for the result (0: return at once; default 120)")
    p.set_defaults(func=cmd_reprocess)

    p = sub.add_parser("cleanup-sessions",
                       help="fail stale sessions, end orphaned workers, remove stale sockets")
    p.add_argument("--max-age", default="24h", metavar="DURATION",
                   help="active sessions untouched this long are marked failed "
                        "(e.g. 90m, 24h, 7d; default 24h)")
    p.add_argument("--dry-run", action="store_true", help="report only, change nothing")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=cmd_cleanup_sessions)

    p = sub.add_parser("doctor", help="check install, permissions, database and agent")
    p.add_argument("--fix", action="store_true",
                   help="apply safe fixes: tighten permissions, move a damaged database aside")
    p.add_argument("--live", action="store_true",
                   help="also make one real request through the memory agent (a few tokens)")
    p.add_argument("--json", action="store_true", help="machine-readable findings")
    p.set_defaults(func=cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``memoir`` console script."""
    args = build_parser().parse_args(argv)
    from .config import load_settings
    from .log import setup_logging

    settings = load_settings()
    setup_logging(settings.home, settings.log_level)
    try:
        return int(args.func(args))
    except MemoirError as e:
        print(f"memoir: {e}", file=sys.stderr)
        log.error("%s failed (%s): %s", args.command, e.reason, e)
        return 2 if isinstance(e, InvalidInput) else 1


if __name__ == "__main__":
    sys.exit(main())
