"""The app's state: typed keys for what the app holds (settings, the runtime, the rate limiter ...).

What a reload replaces (the key ring, the model resolver, the price table, the upstream pool and the
settings they were made from) is one ``Runtime``, held by ``app[RUNTIME]``: a request reads it through
``runtime(request)``, which gives it the runtime current when it first asks (at admission) for the rest of
its life. ``app[SETTINGS]`` are the settings the process started with: read them only for what a reload
does not change (``[server]``, ``[redis]``, ``[responses]``, ``[images]``, ``demo``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

from translator.config import Settings
from translator.gateway.metrics import Metrics
from translator.gateway.ratelimit import RateLimiter
from translator.gateway.redis_health import RedisBackend
from translator.gateway.response_store import ResponseStore
from translator.gateway.usage import UsageStore
from translator.server.runtime import Runtime, RuntimeHolder

SETTINGS = web.AppKey("settings", Settings)
RUNTIME = web.AppKey("runtime", RuntimeHolder)
METRICS = web.AppKey("metrics", Metrics)
LIMITER: web.AppKey[RateLimiter] = web.AppKey("limiter")
DRAINING = web.AppKey("draining", asyncio.Event)  # set on SIGTERM: /readyz answers 503
INFLIGHT: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("inflight")  # the tasks of API requests in flight
IMAGE_SESSION = web.AppKey("image_session", aiohttp.ClientSession)  # only with images.fetch
CLOSING = web.AppKey("closing", asyncio.Event)  # set once the listener closed: new API requests get 503
RESPONSE_STORE: web.AppKey[ResponseStore] = web.AppKey("response_store")  # stored Responses API answers
REDIS = web.AppKey("redis", RedisBackend)  # only with redis.url: the Redis outage view, and its readiness
USAGE: web.AppKey[UsageStore] = web.AppKey("usage")  # usage per key, model and day (translator.gateway.usage)
WORKERS = web.AppKey("workers", int)  # processes serving the port (serve --workers): what a reload must respect

_PINNED = web.RequestKey("runtime", Runtime)


def runtime(request: web.Request) -> Runtime:
    """The settings, keys, models, prices and upstreams this request runs on: the app's current runtime when
    it first asks, kept to its end, so a reload meanwhile does not change them under it."""
    pinned = request.get(_PINNED)
    if pinned is None:
        pinned = request[_PINNED] = request.app[RUNTIME].current
    return pinned
