"""Admission for the API routes: client key (401), model permission (403), budgets, per-key rate limits
(429), and the prologue every API route starts with (``admit``).

``admit`` authenticates before the body is read (a caller without a key learns nothing and costs no
parsing), reads the JSON body, requires and resolves the model, authorizes the key for it, checks its
budget and records what the request used when it ends (``translator.server.spend``), holds a rate-limit
lease (released with the tokens the request used, read from its context) and names the conversation for
stickiness. Keys are never logged: the log line carries the key's name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from translator.gateway.keys import ClientKey, presented_keys
from translator.gateway.ratelimit import RateLimitExceeded
from translator.profiles import ModelProfile
from translator.server.common import read_json_object, require_model
from translator.server.context import CONTEXT, RequestContext, Route
from translator.server.spend import check_budget, recorded
from translator.server.state import KEYRING, LIMITER, METRICS, RESOLVE, SETTINGS
from translator.server.tokens import tokens_used


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
    request: web.Request, route: Route, *, session_from: Callable[[dict[str, Any]], object]
) -> AsyncIterator[Admission]:
    """The prologue of an API route. ``session_from``: the body's own name for the conversation, if any."""
    ctx = request[CONTEXT]
    ctx.route = route
    key = authenticate(request)  # 401 before the body is read (its metrics then name no model)
    body, raw = await read_json_object(request)
    asked = require_model(body)
    model, profile = request.app[RESOLVE](asked)
    ctx.model, ctx.upstream_model = asked, model
    async with admitted(request, key, asked, model), recorded(request, key):  # before any work for the caller
        admission = Admission(ctx, body, raw, asked, model, profile, session_key(request, session_from(body)))
        del body, raw  # held by the admission alone, which the route may empty
        yield admission


def authenticate(request: web.Request) -> ClientKey | None:
    """The caller's key (None when the proxy is open); 401 when missing or not one of ours."""
    ring = request.app[KEYRING]
    ctx = request[CONTEXT]
    ctx.forward_key = ring.is_open  # our own client keys never go upstream
    if ring.is_open:
        return None
    key = ring.authenticate(presented_keys(request.headers))
    if key is not None:
        ctx.key = key.name
    return key


@asynccontextmanager
async def admitted(request: web.Request, key: ClientKey | None, asked: str, model: str) -> AsyncIterator[None]:
    """Authorize the key for the model (the name asked, or the upstream id it resolves to), check its budget,
    and hold a rate-limit lease, if the key has limits, until the request ends: released with the tokens it
    used."""
    if key is not None and not key.allows(asked):
        request.app[KEYRING].authorize(key, model)
    await check_budget(request, key)
    if key is None or not key.has_limits:
        yield
        return
    limiter = request.app[LIMITER]
    try:
        lease = await limiter.acquire(key)
    except RateLimitExceeded as err:
        request.app[METRICS].rate_limited(err.key_name, err.limit)
        raise
    ctx = request[CONTEXT]
    ctx.extra_headers.update(limiter.headers(lease))
    try:
        yield
    finally:  # also when cancelled: what was generated counts against the key's limits
        await limiter.release(lease, tokens_used(ctx.usage))


def session_key(request: web.Request, from_body: object) -> str | None:
    """What names a conversation, for upstream stickiness: the body's own name, else a session header."""
    if isinstance(from_body, str) and from_body:
        return from_body
    for name in request.app[SETTINGS].routing.session_headers:
        value = request.headers.get(name)
        if value:
            return value
    return None
