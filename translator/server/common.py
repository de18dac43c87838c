"""Helpers both API routes use: reading the JSON body, and resolving a model name."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from translator.errors import InvalidRequest


async def read_json_object(request: web.Request) -> tuple[dict[str, Any], bytes]:
    raw = await request.read()  # the app's client_max_size bounds it (413 past that)
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
