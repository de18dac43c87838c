"""``GET /v1/usage``: the usage table per UTC day, key and model, and each key's budget, for an admin.

Query: ``key`` (one key's rows), ``since`` and ``until`` (UTC days, ``YYYY-MM-DD``, both included; by default
the current month up to today). It needs an admin key once keys are configured (``KeyRing.require_admin``),
as ``/metrics`` does: both show every key's name and traffic.

    {"object": "usage", "since": "2026-12-01", "until": "2026-12-07",
     "data": [{"date", "key", "model", "requests", "input_tokens", "output_tokens",
               "cache_read_input_tokens", "cache_creation_input_tokens", "cost_usd"}, ...],
     "budgets": [{"key", "period", "budget_tokens", "budget_usd", "used_tokens", "used_usd", "renews_at"}, ...]}
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from translator.errors import InvalidRequest
from translator.gateway.keys import ClientKey, presented_keys
from translator.gateway.usage import UsageStore, period_end
from translator.server.spend import utc_now
from translator.server.state import KEYRING, USAGE


async def get_usage(request: web.Request) -> web.Response:
    ring = request.app[KEYRING]
    ring.require_admin(presented_keys(request.headers))
    now = utc_now()
    today = now.date()
    since = _day(request, "since", today.replace(day=1))
    until = _day(request, "until", today)
    if since > until:
        raise InvalidRequest("since: a day no later than until", param="since")
    key = request.query.get("key") or None
    store = request.app[USAGE]
    rows = await store.rows(since, until, key)
    budgeted = [k for k in ring.keys if k.has_budget and (key is None or k.name == key)]
    return web.json_response({
        "object": "usage",
        "since": since.isoformat(),
        "until": until.isoformat(),
        "data": [row.as_dict() for row in rows],
        "budgets": [await _budget(store, k, now) for k in budgeted],
    })


def _day(request: web.Request, name: str, default: dt.date) -> dt.date:
    value = request.query.get(name)
    if not value:
        return default
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{name}: a day as YYYY-MM-DD", param=name) from None


async def _budget(store: UsageStore, key: ClientKey, now: dt.datetime) -> dict[str, Any]:
    spent = await store.spent(key.name, key.budget_period, now)
    return {
        "key": key.name,
        "period": key.budget_period,
        "budget_tokens": key.budget_tokens,
        "budget_usd": key.budget_usd,
        "used_tokens": spent.tokens,
        "used_usd": round(spent.cost_usd, 6),
        "renews_at": period_end(key.budget_period, now).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
