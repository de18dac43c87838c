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
from translator.gateway.keys import KeyRing
from translator.gateway.metrics import Metrics
from translator.gateway.ratelimit import make_rate_limiter
from translator.gateway.response_store import make_response_store
from translator.gateway.sticky import make_sticky_store
from translator.profiles import ModelProfile
from translator.router import UpstreamPool
from translator.server import claude_route, models_route, openai_route, responses_route
from translator.server.caching import prefix_memory_ctx
from translator.server.gate import authenticate
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
    RESOLVE,
    RESPONSE_STORE,
    SETTINGS,
)
from translator.upstream import Upstream


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready until shutdown begins: a load balancer then stops sending before we stop accepting."""
    if request.app[DRAINING].is_set():
        return web.json_response({"status": "draining"}, status=503)
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    authenticate(request)  # with client keys configured, metrics (key names, traffic) need a key too
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
    app.cleanup_ctx.append(_upstream_ctx)
    app.cleanup_ctx.append(_response_store_ctx)
    app.cleanup_ctx.append(prefix_memory_ctx)  # automatic prompt caching's memory of recent prefixes
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
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
    app[LIMITER] = make_rate_limiter(settings.redis)
    sticky = make_sticky_store(settings.redis)
    app[POOL] = UpstreamPool(
        upstreams,
        settings.routing,
        sticky,
        on_health=app[METRICS].set_upstream_health,
        on_attempt=app[METRICS].upstream_attempt,
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
        for upstream in upstreams:
            await upstream.close()
        if demo is not None:
            await demo.cleanup()


async def _response_store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = make_response_store(settings.redis.url, settings.responses.ttl_seconds,
                                settings.responses.max_store_bytes)
    app[RESPONSE_STORE] = store
    try:
        yield
    finally:
        await store.close()
