"""Repairing by hand: ``reprocess``, ``cleanup-sessions``."""

from __future__ import annotations

import argparse
import sys
import time

from .output import print_json


def cmd_reprocess(args: argparse.Namespace) -> int:
    """Give a session's parked events and fallback summaries another try with the agent."""
    from .. import launch
    from ..config import load_settings
    from ..store import Store
    from .browse import resolve_session

    home = load_settings().home
    with Store.open(home) as store:
        session = resolve_session(store, args.session)
        if session is None:
            print(f"memoir: no session {args.session}", file=sys.stderr)
            return 1
        session_id = session.claude_session_id
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
                summaries = store.summaries_for_session(row.id)
                kinds = [s.kind for s in summaries]
                pending = store.count_pending(row.id)
                break
        time.sleep(0.2)
    else:
        print(f"memoir: reprocessing not finished after {args.wait:.0f}s; "
              "it goes on in the background", file=sys.stderr)
        return 1
    print(f"done: {kinds.count('agent')} agent summary(ies), {kinds.count('fallback')} "
          f"fallback, {pending} event(s) pending")
    # Why the agent failed is in each fallback summary's notes (the pipeline
    # writes the agent's error there): say it, instead of a bare count.
    reasons = list(dict.fromkeys(s.notes for s in summaries if s.kind == "fallback" and s.notes))
    for reason in reasons[-3:]:
        print(f"  prompt(s) left with a fallback summary: {reason}")
    return 0 if not kinds.count("fallback") else 1


def cmd_cleanup_sessions(args: argparse.Namespace) -> int:
    """Fail stale sessions, end orphaned workers and agents, remove stale files."""
    from ..config import load_settings
    from .sweep import cleanup, parse_duration

    max_age = parse_duration(args.max_age)
    report = cleanup(load_settings().home, max_age, dry_run=args.dry_run)
    if args.json:
        print_json(report)
        return 0
    verb = "would" if args.dry_run else "did"
    print(f"cleanup ({verb}, max age {args.max_age}):")
    for key, label in (("sessions_failed", "sessions marked failed"),
                       ("workers_ended", "unresponsive workers ended"),
                       ("agents_ended", "orphaned agent processes ended"),
                       ("sockets_removed", "stale sockets removed"),
                       ("pid_files_removed", "stale pid files removed"),
                       ("live_workers", "live workers left alone"),
                       ("lock_files_removed", "unused lock files removed"),
                       ("agent_transcripts_removed", "memory agent transcripts removed"),
                       ("rejected_removed", "old rejected spool files / damaged databases "
                                            "removed")):
        items = report[key]  # type: ignore[literal-required]
        print(f"  {label}: {len(items)}" + (f" ({', '.join(map(str, items))})" if items else ""))
    if not args.dry_run:
        print(f"  event bodies emptied (processed over {load_settings().keep_events_days} days "
              f"ago): {report['event_bodies_pruned']}")
        print(f"  search index merge steps: {report['search_index_merge_steps']}")
    return 0


def _wait_seconds(text: str) -> float:
    """``--wait``: a number of seconds from 0 to 3600 (argparse exits 2 on anything else)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:  # also false for nan
        raise argparse.ArgumentTypeError(f"invalid seconds {text!r}: give 0 to 3600")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``reprocess`` and ``cleanup-sessions``."""
    text = "retry parked events and replace fallback summaries"
    p = sub.add_parser("reprocess", help=text, description=text)
    p.add_argument("session", help="Claude Code session id, or a unique prefix of it")
    p.add_argument("--wait", type=_wait_seconds, default=120.0, metavar="SECONDS",
                   help="wait this long for the result (0: return at once; default 120)")
    p.set_defaults(func=cmd_reprocess)

    text = "fail stale sessions, end orphaned workers, apply retention"
    p = sub.add_parser("cleanup-sessions", help=text, description=text)
    p.add_argument("--max-age", default="24h", metavar="DURATION",
                   help="active sessions untouched this long are marked failed "
                        "(e.g. 90m, 24h, 7d; default 24h)")
    p.add_argument("--dry-run", action="store_true", help="report only, change nothing")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=cmd_cleanup_sessions)
