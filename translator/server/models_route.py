"""``GET /v1/models`` and ``/v1/models/{id}``: the upstream's models plus the configured aliases.

OpenAI's list shape by default; Claude's (``data``, ``has_more``, ``first_id``, ``last_id``) when the
request carries ``anthropic-version``, as the anthropic SDKs send it. The upstream list is cached for
``models.list_cache_seconds`` when the proxy holds the upstream key (with clients' own keys, each may
see a different list, so nothing is shared between them). The cache belongs to the runtime (its upstreams):
a reload starts with none, and a listing still in flight on the old runtime fills only the old one's.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from translator.errors import NotFound, TranslatorError, UpstreamProtocolError, UpstreamStatusError
from translator.server.context import CONTEXT
from translator.server.errors import is_claude_shape
from translator.server.gate import authenticate
from translator.server.state import runtime
from translator.upstream import Upstream


async def list_models(request: web.Request) -> web.Response:
    models = await _models(request)
    if is_claude_shape(request):
        body: dict[str, Any] = {"data": models, "has_more": False,
                                "first_id": models[0]["id"] if models else None,
                                "last_id": models[-1]["id"] if models else None}
    else:
        body = {"object": "list", "data": [_openai_model(m) for m in models]}
    return web.json_response(body)


async def get_model(request: web.Request) -> web.Response:
    wanted = request.match_info["model_id"]
    found = next((m for m in await _models(request) if m["id"] == wanted), None)
    if found is None:
        # Not listed under that id: the upstream may know it by another name (Anthropic's own aliases, such
        # as claude-sonnet-4-5 for the dated id it lists), so ask it.
        found = await _fetched(request, wanted)
    if found is None:
        raise NotFound(f"model {wanted!r} not found", param="model", code="model_not_found")
    return web.json_response(found if is_claude_shape(request) else _openai_model(found))


async def _fetched(request: web.Request, wanted: str) -> dict[str, Any] | None:
    """``GET /v1/models/{id}`` from the first upstream serving that name that knows it; None if none does."""
    for upstream in runtime(request).pool.upstreams:
        if not upstream.serves(wanted):
            continue
        headers = upstream.headers(request.headers, version=request.headers.get("anthropic-version"),
                                   forward_key=request[CONTEXT].forward_key)
        try:
            async with upstream.request("GET", f"/v1/models/{quote(wanted, safe='')}", headers) as resp:
                model = await resp.json()
        except UpstreamStatusError as err:
            if err.status == 404:
                continue
            raise
        if isinstance(model, dict) and isinstance(model.get("id"), str):
            return model
        raise UpstreamProtocolError("upstream answered /v1/models/{id} without a model")
    return None


async def _models(request: web.Request) -> list[dict[str, Any]]:
    authenticate(request)  # with client keys configured, listing needs one too (401)
    current = runtime(request)
    settings, pool, cache = current.settings, current.pool, current.models_cache
    # Shared (cacheable) only when the proxy holds every upstream's key: clients' own keys may see other lists.
    shared = settings.demo or all(u.settings.api_key for u in pool.upstreams)
    listed: list[dict[str, Any]]
    if shared and cache and time.monotonic() - cache["at"] < settings.models.list_cache_seconds:
        listed = cache["data"]
    else:
        listed = await _listed_upstream(request, pool.upstreams)
        if shared:
            cache.update(at=time.monotonic(), data=listed)
    by_id = {m["id"]: m for m in listed}
    aliases = [
        {**by_id.get(target, {"type": "model", "created_at": "1970-01-01T00:00:00Z"}),
         "id": alias, "display_name": f"{alias} (alias of {target})"}
        for alias, target in settings.models.aliases.items()
    ]
    return listed + aliases


async def _listed_upstream(request: web.Request, upstreams: list[Upstream]) -> list[dict[str, Any]]:
    """Every upstream's models (those it is configured to serve), merged by id in upstream order. An
    upstream that fails is left out; if all fail, the first failure is the answer."""
    results = await asyncio.gather(*(_listed_by(request, u) for u in upstreams), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, TranslatorError):
            raise result
    lists = [r for r in results if isinstance(r, list)]
    if not lists:
        raise next(r for r in results if isinstance(r, TranslatorError))
    merged: dict[str, dict[str, Any]] = {}
    for models in lists:
        for model in models:
            merged.setdefault(model["id"], model)
    return list(merged.values())


async def _listed_by(request: web.Request, upstream: Upstream) -> list[dict[str, Any]]:
    headers = upstream.headers(request.headers, version=request.headers.get("anthropic-version"),
                               forward_key=request[CONTEXT].forward_key)
    async with upstream.request("GET", "/v1/models?limit=1000", headers) as resp:
        payload = await resp.json()
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise UpstreamProtocolError("upstream answered /v1/models without a list of models")
    return [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str) and upstream.serves(m["id"])]


def _openai_model(model: dict[str, Any]) -> dict[str, Any]:
    try:
        created = int(datetime.fromisoformat(str(model.get("created_at"))).timestamp())
    except ValueError:
        created = 0
    return {"id": model["id"], "object": "model", "created": created, "owned_by": "anthropic"}
