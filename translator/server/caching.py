"""Automatic prompt caching on the routes: the one place that reads ``[caching]``, asks the memory of recent
prefixes (``translator.gateway.prefix_memory``) and has ``translator.convert.caching`` place the breakpoints.

The chat and Responses routes call ``cache_prompt`` on their converted request (``[caching] auto``); the
Claude route on the client's request, when it carries no ``cache_control`` (``[caching] claude_route``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from multidict import CIMultiDict

from translator.convert.caching import TTL_SECONDS, cache_ttl, measure, place_breakpoints
from translator.gateway.prefix_memory import PrefixMemory, make_prefix_memory
from translator.profiles import ModelProfile, cache_min_tokens, caching_on, takes_ttl_1h
from translator.server.state import REDIS, SETTINGS

PREFIX_MEMORY: web.AppKey[PrefixMemory] = web.AppKey("prefix_memory")
# The 1-hour TTL is honoured only with this beta (without it Claude keeps 5 minutes, or refuses the ttl).
EXTENDED_TTL_BETA = "extended-cache-ttl-2025-04-11"


@dataclass(slots=True)
class Cached:
    """What caching did to a request: the adjustments to report, and the beta the upstream call needs."""

    adjustments: list[str] = field(default_factory=list)
    beta: str | None = None

    def headers(self, client_headers: Mapping[str, str]) -> Mapping[str, str]:
        """The client's headers to send upstream, with the beta added to its ``anthropic-beta`` if needed."""
        if self.beta is None:
            return client_headers
        headers = CIMultiDict(client_headers)
        headers.add("anthropic-beta", self.beta)
        return headers


async def cache_prompt(
    request: web.Request,
    body: dict[str, Any],
    *,
    model: str,
    profile: ModelProfile,
    route: Literal["openai", "claude"],
    retention: object = None,
) -> Cached:
    """Place breakpoints on ``body`` (a Claude request, changed in place) where they pay. ``retention``: the
    request's ``prompt_cache_retention`` (checked even when caching is off: a wrong value is a 400)."""
    ttl, notes = cache_ttl(retention, takes_1h=takes_ttl_1h(model, profile))
    settings = request.app[SETTINGS].caching
    if not (settings.claude_route if route == "claude" else settings.auto) or not caching_on(profile):
        return Cached()
    prefixes = measure(body, min_tokens=cache_min_tokens(model, profile))
    if not prefixes.placeable:
        return Cached()  # the client's own breakpoints (nothing changes), or too short to be cached
    keys = prefixes.lookups()
    found = await request.app[PREFIX_MEMORY].seen(keys, TTL_SECONDS[ttl]) if keys else []
    seen = {key for key, was_seen in zip(keys, found, strict=True) if was_seen}
    placed = place_breakpoints(body, prefixes, seen=seen, ttl=ttl)
    if not placed:
        return Cached()
    return Cached([*notes, *placed], EXTENDED_TTL_BETA if ttl == "1h" else None)


async def prefix_memory_ctx(app: web.Application) -> AsyncIterator[None]:
    """The memory of recent prefixes, opened and closed with the app (in Redis with ``[redis] url``)."""
    settings = app[SETTINGS]
    redis = app.get(REDIS)  # the process's view of Redis outages, when redis.url is set
    memory = make_prefix_memory(settings.redis, settings.caching.max_prefixes, redis.health if redis else None)
    app[PREFIX_MEMORY] = memory
    try:
        yield
    finally:
        await memory.close()
