"""A request's spend: its key's budget checked at admission, and what it used recorded when it ends.

``gate.admit`` calls both: ``check_budget`` before the rate-limit lease (a refused request costs nothing),
``recorded`` around the route's work, so every admitted request is counted, with the usage its context holds
when it ends (a stream cut short, or a client gone, included). The rules are the gateway's
(``translator.gateway.budgets``, ``usage``, ``prices``); this module only reads the request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from translator.gateway.budgets import budget_refusal
from translator.gateway.keys import ClientKey
from translator.gateway.usage import NO_KEY, Counts
from translator.server.context import CONTEXT
from translator.server.state import METRICS, USAGE, runtime


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def check_budget(request: web.Request, key: ClientKey | None) -> None:
    """Refuse the key (``BudgetExceeded``) when it used its budget up for this UTC day or month. While the
    usage store (Redis) does not answer, as ``redis.on_error`` says: "allow" lets it through, "deny" refuses it
    (``UsageUnavailable``, 503)."""
    if key is None or not key.has_budget:
        return
    now = utc_now()
    spent = await request.app[USAGE].spent(key.name, key.budget_period, now)
    if spent is None:
        return  # the usage store is down and redis.on_error is "allow": served, unmetered by the budget
    refusal = budget_refusal(key, spent, now)
    if refusal is not None:
        request.app[METRICS].rate_limited(key.name, "budget")
        raise refusal


@asynccontextmanager
async def recorded(request: web.Request, key: ClientKey | None) -> AsyncIterator[None]:
    """Record the request, with what it used and cost, however it ends: in the background, so that neither the
    response nor the rate-limit lease waits for the usage store (the store's ``close`` waits for it)."""
    try:
        yield
    finally:
        ctx = request[CONTEXT]
        model = ctx.upstream_model or ctx.model or ""
        counts = Counts.from_claude(ctx.usage, requests=1, cost_usd=runtime(request).prices.cost(model, ctx.usage))
        name = key.name if key is not None else NO_KEY
        request.app[METRICS].add_key_usage(name, counts)
        request.app[USAGE].record_soon(name, model, counts, utc_now())  # (the response is not held for it)
