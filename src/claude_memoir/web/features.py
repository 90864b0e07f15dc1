"""The viewer's adapters to search, the health verdict and usage, built elsewhere.

Each is looked up when used, so the viewer works (saying what is missing) in
a build without one of them, and shows exactly what ``memoir search``,
``memoir status`` and the usage records say when they are there.
"""

from __future__ import annotations

import importlib
import time
from typing import Any

from ..values import Record

# Height in pixels of the usage chart's plot area.
CHART_HEIGHT = 160


def _module(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def search_available() -> bool:
    """Whether this build has the search engine (``claude_memoir.recall.search``)."""
    module = _module("claude_memoir.recall.search")
    return module is not None and hasattr(module, "search")


def search(store: Any, query: str, *, project: str | None, limit: int = 50) -> list[Any]:
    """Ranked results from the same engine as ``memoir search``."""
    module = _module("claude_memoir.recall.search")
    assert module is not None
    return list(module.search(store, query, project=project, limit=limit))


class HealthView(Record):
    """What the banner shows: the verdict of ``memoir status``, or that there is none."""

    available: bool
    level: str = "unknown"
    headline: str = ""
    reasons: list[str] = []


def health(store: Any, settings: Any) -> HealthView:
    """The same verdict as ``memoir status`` (``claude_memoir.health.check_health``)."""
    module = _module("claude_memoir.health")
    if module is None or not hasattr(module, "check_health"):
        return HealthView(available=False)
    verdict = module.check_health(store, settings)
    return HealthView(available=True, level=str(verdict.level), headline=verdict.headline(),
                      reasons=[str(r) for r in verdict.reasons])


def usage_available() -> bool:
    """Whether this build records agent usage (the store's ``usage_per_day``)."""
    from ..store import Store

    return hasattr(Store, "usage_per_day")


class ChartDay(Record):
    """One day's bar: tokens and cost, with the bar heights in pixels."""

    day: str
    requests: int
    tokens: int
    cost_usd: float
    tokens_height: int
    cost_height: int


class UsageChart(Record):
    """Agent tokens and cost per day over a window, ready to draw."""

    days: list[ChartDay]
    total_tokens: int
    total_cost_usd: float
    total_requests: int
    max_tokens: int
    max_cost_usd: float
    height: int = CHART_HEIGHT


def usage_chart(store: Any, *, days: int, project: str | None) -> UsageChart:
    """Tokens and cost per day for the last ``days`` days (every day, zero or not)."""
    # Local calendar days, as usage_per_day counts them (and the budget resets).
    since = time.strftime("%Y-%m-%d", time.localtime(time.time() - (days - 1) * 86400))
    totals: dict[str, list[float]] = {}  # day -> [requests, tokens, cost]
    for row in store.usage_per_day(since, project):
        tokens = sum(int(getattr(row, f, 0) or 0) for f in (
            "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"))
        entry = totals.setdefault(str(row.day)[:10], [0.0, 0.0, 0.0])
        entry[0] += int(getattr(row, "requests", 0) or 0)
        entry[1] += tokens
        entry[2] += float(getattr(row, "cost_usd", 0.0) or 0.0)
    labels = [time.strftime("%Y-%m-%d", time.localtime(time.time() - i * 86400))
              for i in range(days - 1, -1, -1)]
    max_tokens = max([int(totals.get(d, [0.0, 0.0, 0.0])[1]) for d in labels] + [0])
    max_cost = max([float(totals.get(d, [0.0, 0.0, 0.0])[2]) for d in labels] + [0.0])
    bars = []
    for d in labels:
        requests, day_tokens, cost = totals.get(d, [0.0, 0.0, 0.0])
        bars.append(ChartDay(
            day=d, requests=int(requests), tokens=int(day_tokens), cost_usd=float(cost),
            tokens_height=round(CHART_HEIGHT * day_tokens / max_tokens) if max_tokens else 0,
            cost_height=round(CHART_HEIGHT * cost / max_cost) if max_cost else 0))
    return UsageChart(days=bars, total_tokens=sum(b.tokens for b in bars),
                      total_cost_usd=sum(b.cost_usd for b in bars),
                      total_requests=sum(b.requests for b in bars),
                      max_tokens=max_tokens, max_cost_usd=max_cost)
