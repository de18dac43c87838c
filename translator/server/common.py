"""Helpers both API routes use: reading the JSON body, and resolving a model name."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web

from translator.errors import ClientTooSlow, InvalidRequest
from translator.server.keys import DRAINING, SETTINGS


async def read_json_object(request: web.Request) -> tuple[dict[str, Any], bytes]:
    if request.content.is_eof():  # the whole body came with the headers (most requests): no wait
        raw = await request.read()
    else:
        limit = request.app[SETTINGS].server.client_read_timeout
        try:
            async with asyncio.timeout(limit):
                raw = await request.read()  # the app's client_max_size bounds it (413 past that)
        except TimeoutError:
            raise ClientTooSlow(f"request body not received within {limit:g} s") from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidRequest(f"request body is not valid JSON: {e}") from e
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    return body, raw


def require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' must be a non-empty string", param="model")
    return model


def header_text(items: list[str]) -> str:
    """Header values are latin-1 on the wire; keep ours ASCII whatever the user's strings hold."""
    return "; ".join(items).encode("ascii", "backslashreplace").decode()


@contextlib.asynccontextmanager
async def farewell_on_shutdown(request: web.Request, resp: web.StreamResponse, farewell: bytes) -> AsyncIterator[None]:
    """A stream still open when the shutdown grace period ends is cancelled; it ends with a proper error
    event (the client can retry elsewhere) instead of a cut connection."""
    try:
        yield
    except asyncio.CancelledError:
        if request.app[DRAINING].is_set():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await resp.write(farewell)
                    await resp.write_eof()  # a complete response, so the client reads the error, not a cut
        raise
