"""Wiring claude-memoir into Claude Code: ``install``, ``uninstall``, ``doctor``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .output import print_json


def cmd_install(args: argparse.Namespace) -> int:
    """Merge our hooks into the chosen settings.json and register the MCP server."""
    from .install import install, install_mcp, mcp_config_path, precompile, settings_path

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
    mcp = install_mcp(mcp_config_path(args.scope))
    if mcp.changed:
        print(f"MCP server `memoir` (tools search, timeline, get_observations) registered "
              f"in {mcp.path}")
        if args.scope == "project":
            print("Claude Code asks once to approve the project's .mcp.json servers")
    else:
        print(f"MCP server `memoir` already registered in {mcp.path}")
    _build_search_index()
    print(f"interpreter: {sys.executable}")
    return 0


def _build_search_index() -> None:
    """Migrate the store now and index its older records, rather than in a hook later."""
    import time

    from ..config import load_settings
    from ..store import Store

    started = time.monotonic()
    with Store.open(load_settings().home) as store:
        backlog = store.search_backlog()
        if backlog:
            print(f"indexing {backlog} earlier records for search…", flush=True)
            store.backfill_search(budget=float("inf"))
            print(f"search index built in {time.monotonic() - started:.1f} s")


def cmd_uninstall(args: argparse.Namespace) -> int:
    """Remove our hooks and MCP server (and only ours) from Claude Code's settings."""
    from .install import mcp_config_path, settings_path, uninstall, uninstall_mcp

    result = uninstall(settings_path(args.scope))
    if result.changed:
        print(f"claude-memoir hooks removed from {result.path}")
    else:
        print(f"no claude-memoir hooks in {result.path}")
    mcp = uninstall_mcp(mcp_config_path(args.scope))
    if mcp.changed:
        print(f"MCP server `memoir` removed from {mcp.path}")
    else:
        print(f"no claude-memoir MCP server in {mcp.path}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check the install, permissions, database, runtime leftovers and the agent."""
    from ..config import load_settings
    from .doctor import as_json, run_checks

    findings = run_checks(load_settings(), Path(os.getcwd()), fix=args.fix, live=args.live)
    failed = any(f.level == "fail" for f in findings)
    if args.json:
        print_json(as_json(findings))
        return 1 if failed else 0
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    for f in findings:
        print(f"[{marks[f.level]}] {f.check}: {f.detail}")
        if f.fix:
            print(f"       fix: {f.fix}")
    print("\nall good" if not failed and all(f.level == "ok" for f in findings)
          else ("\nproblems found" if failed else "\nworks, with warnings"))
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``install``, ``uninstall`` and ``doctor``."""
    for name, func, text in (
        ("install", cmd_install, "merge claude-memoir's hooks into Claude Code's settings.json "
         "and register its MCP server"),
        ("uninstall", cmd_uninstall, "remove claude-memoir's hooks and MCP server (only ours)"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--scope", choices=("user", "project"), default="user",
                       help="user: ~/.claude/settings.json and ~/.claude.json (default); "
                            "project: ./.claude/settings.json and ./.mcp.json")
        p.set_defaults(func=func)

    text = "check install, permissions, database and agent"
    p = sub.add_parser("doctor", help=text, description=text)
    p.add_argument("--fix", action="store_true",
                   help="apply safe fixes: tighten permissions, move a damaged database aside")
    p.add_argument("--live", action="store_true",
                   help="also make one real request through the memory agent (a few tokens)")
    p.add_argument("--json", action="store_true", help="machine-readable findings")
    p.set_defaults(func=cmd_doctor)
