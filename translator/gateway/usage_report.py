"""The usage report that ``GET /v1/usage`` answers and ``translator usage`` prints: the rows of a range of
UTC days, and where each budgeted key stands in its period.

    {"object": "usage", "since": "2026-12-01", "until": "2026-12-07",
     "data": [{"date", "key", "model", "requests", "input_tokens", "output_tokens",
               "cache_read_input_tokens", "cache_creation_input_tokens", "cost_usd"}, ...],
     "budgets": [{"key", "period", "budget_tokens", "budget_usd", "used_tokens", "used_usd", "renews_at"}, ...]}
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from translator.gateway.keys import ClientKey
from translator.gateway.usage import UsageStore, UsageUnavailable, period_end


def default_range(now: dt.datetime) -> tuple[dt.date, dt.date]:
    """The current UTC month, up to today."""
    today = now.astimezone(dt.UTC).date()
    return today.replace(day=1), today


async def usage_report(
    store: UsageStore, keys: Sequence[ClientKey], since: dt.date, until: dt.date, key: str | None,
    now: dt.datetime,
) -> dict[str, Any]:
    rows = await store.rows(since, until, key)
    budgeted = [k for k in keys if k.has_budget and (key is None or k.name == key)]
    return {
        "object": "usage",
        "since": since.isoformat(),
        "until": until.isoformat(),
        "data": [row.as_dict() for row in rows],
        "budgets": [await _budget(store, k, now) for k in budgeted],
    }


async def _budget(store: UsageStore, key: ClientKey, now: dt.datetime) -> dict[str, Any]:
    spent = await store.spent(key.name, key.budget_period, now)
    if spent is None:  # (Redis went down after the rows were read)
        raise UsageUnavailable("usage store unavailable")
    return {
        "key": key.name,
        "period": key.budget_period,
        "budget_tokens": key.budget_tokens,
        "budget_usd": key.budget_usd,
        "used_tokens": spent.tokens,
        "used_usd": round(spent.cost_usd, 6),
        "renews_at": period_end(key.budget_period, now).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
