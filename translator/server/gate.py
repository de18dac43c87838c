"""Admission for the API routes: client key (401), model permission (403), budgets, per-key rate limits
(429), and the prologue every API route starts with (``admit``).

``admit`` authenticates before the body is read (a caller without a key learns nothing and costs no
parsing), reads the JSON body, requires and resolves the model, authorizes the key for it, checks its
budget, holds a rate-limit lease (released with the tokens the request used, read from its context) and
names the conversation for stickiness; what an admitted request used is recorded when it ends
(``translator.server.spend``). It takes the app's current runtime (keys, models, upstreams, prices) for the
request, which keeps it to its end whatever a reload does meanwhile. Keys are never logged: the log line
carries the key's name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from translator.gateway.keys import ClientKey, presented_keys
from translator.gateway.ratelimit import Lease, RateLimitExceeded
from translator.gateway.usage import Counts
from translator.profiles import ModelProfile
from translator.server.common import json_object, read_body, require_model
from translator.server.context import CONTEXT, RequestContext, Route
from translator.server.spend import check_budget
from translator.server.state import LIMITER, METRICS, runtime


@dataclass(slots=True)
class Admission:
    """A request let in: its context, its body, the model asked and the upstream model it resolves to."""

    ctx: RequestContext
    body: dict[str, Any]
    raw: bytes  # the body's bytes, as the client sent them
    asked: str
    model: str
    profile: ModelProfile
    session: str | None  # names the conversation, for upstream stickiness

    def take_body(self) -> dict[str, Any]:
        """The body, no longer held here: a large one (images) is then not kept twice once converted."""
        body, self.body, self.raw = self.body, {}, b""
        return body


@asynccontextmanager
async def admit(
    request: web.Request,
    route: Route,
    *,
    session_from: Callable[[dict[str, Any]], object],
    parse: Callable[[bytes], dict[str, Any]] = json_object,
) -> AsyncIterator[Admission]:
    """The prologue of an API route. ``session_from``: the body's own name for the conversation, if any;
    ``parse``: how much of the body the route reads (``common.json_head`` for a relay: its top level only).

    Before any work for the caller: the key is authorized for the model (the name asked, or the upstream id
    it resolves to), its budget checked, and a rate-limit lease held, if the key has limits, until the
    request ends: released with the tokens it used. What an admitted request used is recorded when it ends
    (``spend.record_usage``, from the middleware)."""
    ctx = request[CONTEXT]
    ctx.route = route
    key = authenticate(request)  # 401 before the body is read (its metrics then name no model)
    raw = await read_body(request)
    body = parse(raw)
    asked = require_model(body)
    model, profile = runtime(request).resolve(asked)
    ctx.model, ctx.upstream_model = asked, model
    if key is not None and not key.allows(asked):
        runtime(request).keyring.authorize(key, model)
    await check_budget(request, key)
    lease = await _lease(request, key)
    ctx.admitted = True
    try:
        admission = Admission(ctx, body, raw, asked, model, profile, session_key(request, session_from(body)))
        del body, raw  # held by the admission alone, which the route may empty
        yield admission
    finally:  # also when cancelled: what was generated counts against the key's limits
        if lease is not None:
            await request.app[LIMITER].release(lease, Counts.from_claude(ctx.usage).tokens)


def authenticate(request: web.Request) -> ClientKey | None:
    """The caller's key (None when the proxy is open); 401 when missing or not one of ours."""
    ring = runtime(request).keyring  # (the request's runtime from here on: a reload does not change it)
    ctx = request[CONTEXT]
    ctx.forward_key = ring.is_open  # our own client keys never go upstream
    if ring.is_open:
        return None
    key = ring.authenticate(presented_keys(request.headers))
    if key is not None:
        ctx.key = key.name
    return key


async def _lease(request: web.Request, key: ClientKey | None) -> Lease | None:
    """A rate-limit lease for a key with limits (429 when over one, with its headers)."""
    if key is None or not key.has_limits:
        return None
    limiter = request.app[LIMITER]
    try:
        lease = await limiter.acquire(key)
    except RateLimitExceeded as err:
        request.app[METRICS].rate_limited(err.key_name, err.limit)
        raise
    request[CONTEXT].extra_headers.update(limiter.headers(lease))
    return lease


def session_key(request: web.Request, from_body: object) -> str | None:
    """What names a conversation, for upstream stickiness: the body's own name, else a session header."""
    if isinstance(from_body, str) and from_body:
        return from_body
    for name in runtime(request).settings.routing.session_headers:
        value = request.headers.get(name)
        if value:
            return value
    return None
