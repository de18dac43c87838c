"""``create_app(settings)``: routes, middleware, and the upstreams with their connections (opened and closed
with the app). With ``settings.demo`` the built-in offline upstream runs in-process on 127.0.0.1 and the
proxy talks to it over real HTTP, exactly as it would to Anthropic.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from translator.config import Settings
from translator.demo import create_demo_app
from translator.gateway.keys import KeyRing, presented_keys
from translator.gateway.metrics import Metrics
from translator.gateway.prices import PriceTable
from translator.gateway.ratelimit import make_rate_limiter
from translator.gateway.redis_health import RedisBackend, RedisHealth
from translator.gateway.response_store import make_response_store
from translator.gateway.sticky import make_sticky_store
from translator.gateway.upstream_health import make_shared_cooldowns
from translator.gateway.usage import make_usage_store
from translator.profiles import ModelProfile
from translator.router import UpstreamPool
from translator.server import claude_route, models_route, openai_route, responses_route, usage_route
from translator.server.caching import prefix_memory_ctx
from translator.server.images import image_session
from translator.server.middleware import handle_requests
from translator.server.state import (
    CLOSING,
    DRAINING,
    IMAGE_SESSION,
    INFLIGHT,
    KEYRING,
    LIMITER,
    METRICS,
    POOL,
    PRICES,
    REDIS,
    RESOLVE,
    RESPONSE_STORE,
    SETTINGS,
    USAGE,
)
from translator.upstream import Upstream


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready until shutdown begins: a load balancer then stops sending before we stop accepting.

    With Redis configured the body says whether it answered last (each probe PINGs it in the background for
    the next one, so a probe never waits on Redis). Only ``redis.on_error = "deny"`` makes an outage a 503:
    under "allow" the proxy serves on without Redis, and failing readiness on every replica at once (they
    share the one Redis) would take the whole service down for a degraded feature."""
    if request.app[DRAINING].is_set():
        return web.json_response({"status": "draining"}, status=503)
    redis = request.app.get(REDIS)
    if redis is None:
        return web.json_response({"status": "ready"})
    redis.refresh()
    if redis.health.up is False:
        if redis.refuses_when_down:
            return web.json_response({"status": "unavailable", "redis": "down"}, status=503)
        return web.json_response({"status": "ready", "redis": "down"})
    return web.json_response({"status": "ready", "redis": "up"})


async def metrics(request: web.Request) -> web.Response:
    # Every key's name and traffic: with client keys configured, for an admin key only (open otherwise).
    request.app[KEYRING].require_admin(presented_keys(request.headers))
    body, content_type = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": content_type})


def runner_kwargs(settings: Settings) -> dict[str, Any]:
    """How the HTTP server itself is set up: the same in production (cli.serve) and in tests."""
    return {
        "handler_cancellation": True,  # a client that goes away cancels its handler, and so the upstream call
        "max_line_size": settings.server.max_header_bytes,
        "max_field_size": settings.server.max_header_bytes,
    }


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[handle_requests], client_max_size=settings.server.max_body_bytes)
    app[SETTINGS] = settings
    app[KEYRING] = KeyRing(settings.keys)
    app[METRICS] = Metrics()
    app[DRAINING] = asyncio.Event()
    app[CLOSING] = asyncio.Event()
    app[INFLIGHT] = set()
    resolve: Callable[[str], tuple[str, ModelProfile]] = functools.lru_cache(maxsize=4096)(settings.resolve_model)
    app[RESOLVE] = resolve
    app[models_route.CACHE] = {}
    app.cleanup_ctx.append(_redis_ctx)
    app.cleanup_ctx.append(_upstream_ctx)
    app.cleanup_ctx.append(_response_store_ctx)
    app[PRICES] = PriceTable(settings.prices)
    app.cleanup_ctx.append(_usage_ctx)
    app.cleanup_ctx.append(prefix_memory_ctx)  # automatic prompt caching's memory of recent prefixes
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/usage", usage_route.get_usage)
    app.router.add_post("/v1/chat/completions", openai_route.chat_completions)
    app.router.add_post("/chat/completions", openai_route.chat_completions)
    app.router.add_post("/v1/messages", claude_route.messages)
    app.router.add_post("/v1/messages/count_tokens", claude_route.count_tokens)
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/responses", responses_route.create_response)
        app.router.add_post(f"{prefix}/responses/input_tokens", responses_route.input_tokens)
        app.router.add_get(f"{prefix}/responses/{{response_id}}", responses_route.get_response)
        app.router.add_delete(f"{prefix}/responses/{{response_id}}", responses_route.delete_response)
        app.router.add_get(f"{prefix}/responses/{{response_id}}/input_items", responses_route.list_input_items)
    app.router.add_get("/v1/models", models_route.list_models)
    app.router.add_get("/v1/models/{model_id:.+}", models_route.get_model)
    return app


async def _upstream_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    base_url = settings.upstream.base_url
    demo: web.AppRunner | None = None
    if settings.demo:
        demo = web.AppRunner(create_demo_app(), access_log=None)
        await demo.setup()
        site = web.TCPSite(demo, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base_url = f"http://127.0.0.1:{port}"
    upstreams = [
        Upstream(s, base_url) if settings.demo else Upstream(s, s.base_url, proxy=s.proxy or None)
        for s in settings.upstream_list
    ]
    for upstream in upstreams:
        await upstream.start()
    health = _redis_health(app)
    app[LIMITER] = make_rate_limiter(settings.redis, health)
    sticky = make_sticky_store(settings.redis, health)
    shared = make_shared_cooldowns(settings.redis, [u.name for u in upstreams], health)
    app[POOL] = UpstreamPool(
        upstreams,
        settings.routing,
        sticky,
        on_health=app[METRICS].set_upstream_health,
        on_attempt=app[METRICS].upstream_attempt,
        shared=shared,
    )
    for upstream in upstreams:
        app[METRICS].set_upstream_health(upstream.name, True)
    if settings.images.fetch:
        app[IMAGE_SESSION] = image_session(settings.images)
    try:
        yield
    finally:
        if settings.images.fetch:
            await app[IMAGE_SESSION].close()
        await app[LIMITER].close()
        await sticky.close()
        if shared is not None:
            await shared.close()
        for upstream in upstreams:
            await upstream.close()
        if demo is not None:
            await demo.cleanup()


async def _response_store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = make_response_store(settings.redis, settings.responses.ttl_seconds,
                                settings.responses.max_store_bytes, _redis_health(app))
    app[RESPONSE_STORE] = store
    try:
        yield
    finally:
        await store.close()


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """With ``redis.url``: the outage view every Redis user here shares, checked at start (a warning if Redis
    does not answer: the proxy still starts, and serves as ``redis.on_error`` says)."""
    settings, metrics = app[SETTINGS], app[METRICS]
    if not settings.redis.url:
        yield
        return
    redis = RedisBackend.open(settings.redis, on_change=metrics.redis_state, count_error=metrics.redis_error)
    app[REDIS] = redis
    await redis.check()
    try:
        yield
    finally:
        await redis.close()


def _redis_health(app: web.Application) -> RedisHealth | None:
    redis = app.get(REDIS)
    return redis.health if redis is not None else None


async def _usage_ctx(app: web.Application) -> AsyncIterator[None]:
    store = make_usage_store(app[SETTINGS].redis.url)
    app[USAGE] = store
    try:
        yield
    finally:
        await store.close()
