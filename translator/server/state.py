"""The app's state: typed keys for what the app holds (settings, the upstream pool, the key ring ...)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from translator.config import Settings
from translator.gateway.keys import KeyRing
from translator.gateway.metrics import Metrics
from translator.gateway.prices import PriceTable
from translator.gateway.ratelimit import RateLimiter
from translator.gateway.redis_health import RedisBackend
from translator.gateway.response_store import ResponseStore
from translator.gateway.usage import UsageStore
from translator.profiles import ModelProfile
from translator.router import UpstreamPool

SETTINGS = web.AppKey("settings", Settings)
RESOLVE: web.AppKey[Callable[[str], tuple[str, ModelProfile]]] = web.AppKey("resolve")
POOL = web.AppKey("pool", UpstreamPool)
KEYRING = web.AppKey("keyring", KeyRing)
METRICS = web.AppKey("metrics", Metrics)
LIMITER: web.AppKey[RateLimiter] = web.AppKey("limiter")
DRAINING = web.AppKey("draining", asyncio.Event)  # set on SIGTERM: /readyz answers 503
INFLIGHT: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("inflight")  # the tasks of API requests in flight
IMAGE_SESSION = web.AppKey("image_session", aiohttp.ClientSession)  # only with images.fetch
CLOSING = web.AppKey("closing", asyncio.Event)  # set once the listener closed: new API requests get 503
RESPONSE_STORE: web.AppKey[ResponseStore] = web.AppKey("response_store")  # stored Responses API answers
REDIS = web.AppKey("redis", RedisBackend)  # only with redis.url: the Redis outage view, and its readiness
USAGE: web.AppKey[UsageStore] = web.AppKey("usage")  # usage per key, model and day (translator.gateway.usage)
PRICES = web.AppKey("prices", PriceTable)  # what a request cost (translator.gateway.prices)
