"""Recall from the command line: ``search``, and ``mcp`` (the stdio MCP server)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .output import print_json

# Seconds `memoir search` spends indexing older records before it searches.
SEARCH_BACKFILL_SECONDS = 20.0


def cmd_search(args: argparse.Namespace) -> int:
    """Search the project's memory (or every project's with --all)."""
    from ..config import load_settings
    from ..recall.project import project_key
    from ..recall.search import search
    from ..store import Store

    query = " ".join(args.query)
    project = None if args.all else project_key(args.cwd or os.getcwd())
    types = [t for raw in args.type for t in raw.replace(",", " ").split()]
    with Store.open(load_settings().home) as store:
        # Records from before the search index existed are indexed in steps
        # (migration 0004); finish the job here when it is small, else say so.
        backlog = store.backfill_search(budget=SEARCH_BACKFILL_SECONDS)
        results = search(store, query, project=project, types=types, file=args.file,
                         since=args.since, limit=args.limit)
    if backlog:
        print(f"note: {backlog} older records are not indexed yet (the index is being built "
              "in the background); run `memoir search` again later", file=sys.stderr)
    if args.json:
        print_json([r._asdict() for r in results])
        return 0
    where = "all projects" if project is None else project
    if not results:
        print(f"no results in {where}" + ("" if project is None else " (try --all)"),
              file=sys.stderr)
        return 0
    for r in results:
        label = {"observation": "obs", "summary": "summary", "prompt": "prompt"}[r.kind]
        line = (f"{label} {r.id:<6} {r.created_at[:16].replace('T', ' ')}  "
                f"[{r.type}] {r.title}")
        print(line)
        details = f"session {r.session[:8]}  score {r.score:.2f}"
        if project is None:
            details += f"  {r.project}"
        print(f"    {details}")
        if r.snippet and r.snippet != r.title:
            print(f"    {r.snippet}")
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    """Serve the MCP tools on stdin/stdout until Claude Code closes the stream."""
    from ..config import load_settings
    from ..recall.mcp_server import serve

    serve(load_settings())
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``search`` and ``mcp``."""
    text = "search the memory of this project (observations, summaries, prompts)"
    p = sub.add_parser("search", help=text, description=text + ". Ranked by relevance "
                       "(BM25), newest first among equals; identifiers and paths match "
                       "their words (ReconcileLedger ~ reconcile_ledger ~ 'reconcile ledger').")
    p.add_argument("query", nargs="*", help="words, identifiers or paths (ledg* for a prefix)")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--cwd", type=Path, default=None,
                       help="project directory (default: the current directory; any "
                            "directory of the same git repository or worktree)")
    scope.add_argument("--all", action="store_true", help="search every project")
    p.add_argument("--type", action="append", default=[], metavar="T",
                   help="observation type (bugfix, feature, refactor, change, discovery, "
                        "decision), summary or prompt; repeat or comma-separate")
    p.add_argument("--file", default=None, metavar="PATH",
                   help="only observations that read or modified this file (path suffix)")
    p.add_argument("--since", default=None, metavar="DATE",
                   help="only records since a date (2026-01-31), ISO time, or age (7d, 12h)")
    p.add_argument("--limit", type=int, default=20, metavar="N",
                   help="most results (default 20, at most 200)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_search)

    text = "serve the memory as MCP tools on stdio (search, timeline, get_observations)"
    p = sub.add_parser("mcp", help=text, description=text + "; registered by "
                       "`memoir install`, started by Claude Code")
    p.set_defaults(func=cmd_mcp)
