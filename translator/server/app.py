"""``create_app(settings)``: routes, middleware, and the upstreams with their connections (opened and closed
with the app). With ``settings.demo`` the built-in offline upstream runs in-process on 127.0.0.1 and the
proxy talks to it over real HTTP, exactly as it would to Anthropic. ``reload_app`` applies re-read settings
to a running app (SIGHUP; see ``runtime.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from translator.config import Settings, one_line
from translator.demo import create_demo_app
from translator.gateway.keys import presented_keys
from translator.gateway.metrics import Metrics
from translator.gateway.ratelimit import make_rate_limiter
from translator.gateway.redis_health import RedisBackend, RedisHealth
from translator.gateway.response_store import make_response_store
from translator.gateway.sticky import make_sticky_store
from translator.gateway.usage import make_usage_store
from translator.log import log
from translator.server import claude_route, models_route, openai_route, responses_route, usage_route
from translator.server.caching import prefix_memory_ctx
from translator.server.images import image_session
from translator.server.middleware import handle_requests
from translator.server.runtime import RuntimeHolder, open_runtime, reloaded_settings
from translator.server.state import (
    CLOSING,
    DRAINING,
    IMAGE_SESSION,
    INFLIGHT,
    LIMITER,
    METRICS,
    REDIS,
    RESPONSE_STORE,
    RUNTIME,
    SETTINGS,
    USAGE,
    WORKERS,
    runtime,
)


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
    runtime(request).keyring.require_admin(presented_keys(request.headers))
    body, content_type = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": content_type})


def runner_kwargs(settings: Settings) -> dict[str, Any]:
    """How the HTTP server itself is set up: the same in production (cli.serve) and in tests."""
    return {
        "handler_cancellation": True,  # a client that goes away cancels its handler, and so the upstream call
        "max_line_size": settings.server.max_header_bytes,
        "max_field_size": settings.server.max_header_bytes,
    }


def create_app(settings: Settings, *, workers: int = 1) -> web.Application:
    """``workers``: how many processes serve the port (what a reload must respect: ``workers_refusal``)."""
    app = web.Application(middlewares=[handle_requests], client_max_size=settings.server.max_body_bytes)
    app[SETTINGS] = settings
    app[WORKERS] = workers
    app[METRICS] = Metrics()
    app[DRAINING] = asyncio.Event()
    app[CLOSING] = asyncio.Event()
    app[INFLIGHT] = set()
    app.cleanup_ctx.append(_redis_ctx)
    app.cleanup_ctx.append(_upstream_ctx)
    app.cleanup_ctx.append(_response_store_ctx)
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
    demo: web.AppRunner | None = None
    demo_url = None
    if settings.demo:
        demo = web.AppRunner(create_demo_app(), access_log=None)
        await demo.setup()
        site = web.TCPSite(demo, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        demo_url = f"http://127.0.0.1:{port}"
    health = _redis_health(app)
    app[LIMITER] = make_rate_limiter(settings.redis, health)
    sticky = make_sticky_store(settings.redis, health)
    first = await open_runtime(settings, sticky=sticky, metrics=app[METRICS], demo_url=demo_url, health=health)
    app[RUNTIME] = RuntimeHolder(first, sticky=sticky, metrics=app[METRICS], demo_url=demo_url, health=health)
    if settings.images.fetch:
        app[IMAGE_SESSION] = image_session(settings.images)
    try:
        yield
    finally:
        if settings.images.fetch:
            await app[IMAGE_SESSION].close()
        await app[LIMITER].close()
        await app[RUNTIME].close()
        await sticky.close()
        if demo is not None:
            await demo.cleanup()


async def reload_app(app: web.Application, load: Callable[[], Settings]) -> bool:
    """Re-read the settings (``load``) and apply them (see ``runtime.py``): True when applied. A config that
    does not load or validate is refused: logged, counted in ``translator_config_reloads_total``, and the
    running one stays."""
    holder, inflight = app[RUNTIME], app[INFLIGHT]
    async with holder.lock:
        try:
            settings, changed = reloaded_settings(app[SETTINGS], load(), workers=app[WORKERS])
            await holder.replace(settings, inflight)
        except (OSError, ValueError) as err:  # (a TOML, UTF-8, validation or TLS file mistake)
            log.error("config reload refused; the running config stays", error=one_line(err))
            app[METRICS].config_reload("refused")
            return False
    for section in changed:
        log.warning("config reload: this section changed but needs a restart; it keeps its running values",
                    section=section)
    log.info("config reloaded", upstreams=[u.name for u in settings.upstream_list], keys=len(settings.keys))
    app[METRICS].config_reload("applied")
    return True


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
    store = make_usage_store(app[SETTINGS].redis, _redis_health(app))
    app[USAGE] = store
    try:
        yield
    finally:
        await store.close()
