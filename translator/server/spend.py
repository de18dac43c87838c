"""A request's spend: its key's budget checked at admission, and what it used recorded when it ends.

``gate.admit`` calls ``check_budget`` before the rate-limit lease (a refused request costs nothing). The
middleware calls ``record_usage`` when an API request ends, however it ends, with the usage its context holds
then (a stream cut short, or a client gone, included): the route's token metrics for every API request, and,
for an admitted one, its key's usage and cost. The rules are the gateway's (``translator.gateway.budgets``,
``usage``, ``prices``); this module only reads the request.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from translator.gateway.budgets import budget_refusal
from translator.gateway.keys import ClientKey
from translator.gateway.usage import NO_KEY, Counts
from translator.server.context import RequestContext
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


def record_usage(request: web.Request, ctx: RequestContext) -> None:
    """An API request's metrics, and an admitted one's usage and cost, counted once from its usage: in the
    background, so that the response does not wait for the usage store (the store's ``close`` waits for it)."""
    assert ctx.route is not None
    model = ctx.model or ""
    upstream_model = ctx.upstream_model or model
    cost = runtime(request).prices.cost(upstream_model, ctx.usage) if ctx.admitted else 0.0
    used = Counts.from_claude(ctx.usage, requests=1, cost_usd=cost)
    metrics = request.app[METRICS]
    ttft = ctx.ttft_ms / 1000 if ctx.ttft_ms is not None else None
    metrics.observe_request(ctx.route, model, ctx.upstream or "", ctx.status, ctx.latency(), ttft)
    metrics.add_usage(ctx.route, model, used)
    if ctx.admitted:
        name = ctx.key or NO_KEY
        metrics.add_key_usage(name, used)
        request.app[USAGE].record_soon(name, upstream_model, used, utc_now())
