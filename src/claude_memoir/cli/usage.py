"""``memoir usage``: what the memory agent cost, per day and per project.

Figures are the agent requests' usage as the Agent SDK reported it, stored by
the workers (``agent_requests``): tokens split as the API bills them (uncached
input, cache read, cache write, output) and the cost in USD. "Per tool call"
divides by the tool events those requests carried.
"""

from __future__ import annotations

import argparse
import math
import os
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..store import UsageDay
from .output import print_json


def since_date(text: str, today: date | None = None) -> str:
    """The first local day of ``--since``: a duration (``7d`` = today and the six days
    before, ``24h`` = today) or a date ``YYYY-MM-DD``; InvalidInput otherwise."""
    from .sweep import parse_duration

    today = today or date.today()
    raw = text.strip() if isinstance(text, str) else ""
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        pass
    try:
        seconds = parse_duration(raw)
    except InvalidInput as e:
        raise InvalidInput(f"invalid --since {text!r}: use a duration (7d, 24h, 2w) or a date "
                           "(YYYY-MM-DD)", reason="bad-since") from e
    days = max(1, math.ceil(seconds / 86_400))
    return (today - timedelta(days=min(days, 36_500) - 1)).isoformat()


def _tokens_in(row: UsageDay) -> int:
    return row.input_tokens + row.cache_read_tokens + row.cache_write_tokens


def _total(rows: list[UsageDay], day: str = "", project: str = "") -> UsageDay:
    return UsageDay(day=day, project=project, requests=sum(r.requests for r in rows),
                    input_tokens=sum(r.input_tokens for r in rows),
                    output_tokens=sum(r.output_tokens for r in rows),
                    cache_read_tokens=sum(r.cache_read_tokens for r in rows),
                    cache_write_tokens=sum(r.cache_write_tokens for r in rows),
                    cost_usd=sum(r.cost_usd for r in rows),
                    tool_calls=sum(r.tool_calls for r in rows))


def _as_dict(row: UsageDay) -> dict[str, Any]:
    calls = row.tool_calls
    return {**row._asdict(), "cost_usd": round(row.cost_usd, 6),
            "input_tokens_per_tool_call": round(_tokens_in(row) / calls, 1) if calls else None,
            "output_tokens_per_tool_call": round(row.output_tokens / calls, 1) if calls else None,
            "requests_per_tool_call": round(row.requests / calls, 3) if calls else None}


def cmd_usage(args: argparse.Namespace) -> int:
    """Tokens and cost per day and per project; tokens per observed tool call."""
    from ..budget import budget_status
    from ..config import load_settings
    from ..recall.project import project_key
    from ..store import Store

    since = since_date(args.since)
    project = None if args.all else project_key(args.cwd or os.getcwd())
    settings = load_settings()
    with Store.open(settings.home) as store:
        rows = store.usage_per_day(since, project)
        budget = budget_status(store, settings)
    days = [_total([r for r in rows if r.day == d], day=d)
            for d in dict.fromkeys(r.day for r in rows)]
    projects = [_total([r for r in rows if r.project == p], project=p)
                for p in sorted({r.project for r in rows})]
    total = _total(rows)
    if args.json:
        print_json({"since": since, "project": project,
                    "days": [_as_dict(r) for r in rows],
                    "projects": [_as_dict(r) for r in projects],
                    "total": _as_dict(total), "budget": budget._asdict()})
        return 0
    scope = "all projects" if project is None else project
    print(f"memory agent usage since {since}, {scope}")
    if not rows:
        print("  no agent requests recorded")
    else:
        _table("DAY", [(r.day, r) for r in days] + [("total", total)])
        if project is None and len(projects) > 1:
            print()
            _table("PROJECT", [(r.project, r) for r in projects])
    print(f"today (all projects): {budget.reason}")
    return 0


def _table(first: str, rows: list[tuple[str, UsageDay]]) -> None:
    width = max(len(first), *(len(label) for label, _ in rows))
    print(f"{first:<{width}}  {'REQUESTS':>8}  {'INPUT':>10}  {'CACHE READ':>10}  "
          f"{'CACHE WRITE':>11}  {'OUTPUT':>9}  {'COST':>9}  {'TOOL CALLS':>10}  "
          f"{'IN/CALL':>8}  {'OUT/CALL':>8}")
    for label, r in rows:
        calls = r.tool_calls
        per_in = f"{_tokens_in(r) / calls:,.0f}" if calls else "-"
        per_out = f"{r.output_tokens / calls:,.0f}" if calls else "-"
        print(f"{label:<{width}}  {r.requests:>8,}  {r.input_tokens:>10,}  "
              f"{r.cache_read_tokens:>10,}  {r.cache_write_tokens:>11,}  "
              f"{r.output_tokens:>9,}  {'$' + format(r.cost_usd, '.4f'):>9}  {calls:>10,}  "
              f"{per_in:>8}  {per_out:>8}")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``usage``."""
    text = "tokens and cost of the memory agent, per day and project"
    p = sub.add_parser("usage", help=text, description=text + ". IN/CALL counts uncached "
                       "input, cache reads and cache writes per observed tool call.")
    p.add_argument("--since", default="7d", metavar="SPAN",
                   help="a duration back from today (7d, 24h, 2w) or a date YYYY-MM-DD "
                        "(default 7d: today and the six days before)")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--cwd", type=Path, default=None,
                       help="the project (default: the current directory)")
    scope.add_argument("--all", action="store_true", help="every project")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_usage)
