"""The daily budget of the memory agent: has today's spending reached its cap?

``MEMOIR_DAILY_BUDGET_USD`` caps the cost the SDK reports, and
``MEMOIR_DAILY_BUDGET_TOKENS`` the tokens (input, output, cache read and
write), summed over every session since local midnight from the store's
``agent_requests``. Workers ask before every request; once a cap is reached
they stop calling the LLM for the rest of the day and write fallback summaries
instead. ``memoir status`` and ``memoir doctor`` report it. The check happens
before a request, whose cost is only known after it: each worker may finish
the one request it had in flight when the cap was crossed.
"""

from __future__ import annotations

from .config import Settings
from .store import Store
from .values import Record


class BudgetStatus(Record):
    """Today's spending against the configured daily caps."""

    reached: bool
    spent_usd: float
    # 0.0: no cost cap.
    limit_usd: float
    # What to tell the user, e.g. "daily budget of $2.00 reached ($2.03 spent today)".
    reason: str
    spent_tokens: int = 0
    # 0: no token cap.
    limit_tokens: int = 0
    requests: int = 0


def budget_status(store: Store, settings: Settings) -> BudgetStatus:
    """Today's agent spending (all sessions) and whether a daily cap is reached."""
    today = store.usage_today()
    limit_usd, limit_tokens = settings.daily_budget_usd, settings.daily_budget_tokens
    spent = f"${today.cost_usd:.2f} and {today.tokens:,} tokens spent today"
    reasons = []
    if limit_usd > 0 and today.cost_usd >= limit_usd:
        reasons.append(f"daily budget of ${limit_usd:.2f} reached")
    if limit_tokens > 0 and today.tokens >= limit_tokens:
        reasons.append(f"daily token budget of {limit_tokens:,} reached")
    if reasons:
        reason = (f"{' and '.join(reasons)} ({spent}); the memory agent is not called "
                  "until tomorrow and prompts get fallback summaries")
    elif limit_usd > 0 or limit_tokens > 0:
        caps = " and ".join(c for c in (f"${limit_usd:.2f}" if limit_usd > 0 else "",
                                       f"{limit_tokens:,} tokens" if limit_tokens > 0 else "")
                            if c)
        reason = f"{spent} of a daily budget of {caps}"
    else:
        reason = f"{spent}; no daily budget set"
    return BudgetStatus(reached=bool(reasons), spent_usd=today.cost_usd, limit_usd=limit_usd,
                        reason=reason, spent_tokens=today.tokens, limit_tokens=limit_tokens,
                        requests=today.requests)
