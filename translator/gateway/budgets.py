"""Budgets per client key: ``budget_tokens`` and/or ``budget_usd`` per UTC day or month.

A key is checked when a request is admitted, against what it used so far in its period (read from the usage
store, ``translator.gateway.usage``): at or past either budget it is refused (``BudgetExceeded``) until the
period ends. The request that crosses the line is not cut short, so a key can end a period a little over.
"""

from __future__ import annotations

import datetime as dt

from translator.errors import BudgetExceeded
from translator.gateway.keys import ClientKey
from translator.gateway.usage import Spent, period_end

_PERIOD_WORD = {"day": "daily", "month": "monthly"}


def budget_refusal(key: ClientKey, spent: Spent, now: dt.datetime) -> BudgetExceeded | None:
    """The error refusing the key, if it used a budget up; None while it has some left."""
    over = []
    if key.budget_tokens is not None and spent.tokens >= key.budget_tokens:
        over.append(f"{key.budget_tokens} tokens (used {spent.tokens})")
    if key.budget_usd is not None and spent.cost_usd >= key.budget_usd:
        over.append(f"${key.budget_usd:.2f} (used ${spent.cost_usd:.4f})")
    if not over:
        return None
    renews = period_end(key.budget_period, now).strftime("%Y-%m-%dT%H:%M:%SZ")
    return BudgetExceeded(
        f"key '{key.name}' used its {_PERIOD_WORD[key.budget_period]} budget of {' and '.join(over)}; "
        f"it renews at {renews}"
    )
