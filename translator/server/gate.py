"""Admission for the API routes: client key (401), model permission (403), per-key rate limits (429).

``admitted(request, model)`` wraps a request's work: it authenticates and authorizes before anything is
sent upstream, holds a rate-limit lease for the duration, and releases it with the tokens the request
used. Keys are never logged: the log line carries the key's name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from translator.gateway.keys import presented_key
from translator.gateway.ratelimit import RateLimitExceeded
from translator.server.keys import KEYRING, LIMITER, METRICS
from translator.server.middleware import EXTRA_HEADERS, FORWARD_KEY, LOG
from translator.server.tokens import tokens_used


def authenticate(request: web.Request) -> Any:
    ring = request.app[KEYRING]
    key = ring.authenticate(presented_key(request.headers))
    request[FORWARD_KEY] = ring.is_open  # our own client keys never go upstream
    if key is not None:
        request[LOG]["key"] = key.name
    return key


@asynccontextmanager
async def admitted(request: web.Request, asked: str, model: str) -> AsyncIterator[None]:
    ring = request.app[KEYRING]
    key = authenticate(request)
    if key is not None and not key.allows(asked):
        ring.authorize(key, model)  # the name asked, or the upstream id it resolves to, may be allowed
    if key is None or not key.has_limits:
        yield
        return
    limiter = request.app[LIMITER]
    try:
        lease = await limiter.acquire(key)
    except RateLimitExceeded as err:
        request.app[METRICS].rate_limited(err.key_name, err.limit)
        raise
    request[EXTRA_HEADERS] = limiter.headers(lease)
    try:
        yield
    finally:
        await limiter.release(lease, tokens_used(request[LOG].get("usage")))  # tokens_used never raises
