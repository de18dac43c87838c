"""Admission for the API routes: client key (401), model permission (403), per-key rate limits (429).

A route calls ``authenticate(request, app)`` first, before it reads the body (a caller without a key learns
nothing and costs no parsing), then wraps its work in ``admitted(request, key, asked, model)``, which
authorizes the model before anything is sent upstream, holds a rate-limit lease for the duration, and
releases it with the tokens the request used. Keys are never logged: the log line carries the key's name.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from translator.gateway.keys import ClientKey, presented_keys
from translator.gateway.ratelimit import RateLimitExceeded
from translator.server.keys import KEYRING, LIMITER, METRICS
from translator.server.middleware import EXTRA_HEADERS, FORWARD_KEY, LOG
from translator.server.tokens import tokens_used


def authenticate(request: web.Request, app: web.Application) -> ClientKey | None:
    """The caller's key (None when the proxy is open); 401 when missing or not one of ours. (``app``: the
    request's, which its handler has at hand: ``request.app`` is two property calls.)"""
    ring = app[KEYRING]
    request[FORWARD_KEY] = ring.is_open  # our own client keys never go upstream
    if ring.is_open:
        return None
    key = ring.authenticate(presented_keys(request.headers))
    if key is not None:
        request[LOG]["key"] = key.name
    return key


class admitted:  # lower case: used like contextlib's context managers (a class: cheaper, once per request)
    """Authorize the authenticated key on entry, and hold a rate-limit lease (if the key has limits) until exit,
    released with the tokens the request used."""

    __slots__ = ("_asked", "_key", "_lease", "_model", "_request")

    def __init__(self, request: web.Request, key: ClientKey | None, asked: str, model: str) -> None:
        self._request, self._key, self._asked, self._model = request, key, asked, model
        self._lease: Any = None

    async def __aenter__(self) -> None:
        request, key = self._request, self._key
        if key is not None and not key.allows(self._asked):
            request.app[KEYRING].authorize(key, self._model)  # the name asked, or the upstream id it resolves to
        if key is None or not key.has_limits:
            return
        limiter = request.app[LIMITER]
        try:
            self._lease = await limiter.acquire(key)
        except RateLimitExceeded as err:
            request.app[METRICS].rate_limited(err.key_name, err.limit)
            raise
        request[EXTRA_HEADERS] = limiter.headers(self._lease)

    async def __aexit__(self, *exc_info: object) -> None:
        if self._lease is not None:  # tokens_used never raises
            await self._request.app[LIMITER].release(self._lease, tokens_used(self._request[LOG].get("usage")))
