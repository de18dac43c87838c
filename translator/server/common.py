"""Helpers the API routes share: reading the JSON body (whole, or only its top level), requiring a model,
header-safe text."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
import simdjson
from aiohttp import web

from translator.convert.request import ConvertedRequest
from translator.errors import BodyTooLarge, ClientTooSlow, InvalidRequest
from translator.server.state import SETTINGS


async def read_body(request: web.Request) -> bytes:
    """The body's bytes, bounded in size (413) and time (408)."""
    settings = request.app[SETTINGS].server
    if request.content.is_eof():  # the whole body came with the headers (most requests): no wait
        raw = _received_body(request, settings.max_body_bytes)
    else:
        try:
            async with asyncio.timeout(settings.client_read_timeout):
                raw = await _read_body(request, settings.max_body_bytes)
        except TimeoutError:
            raise ClientTooSlow(f"request body not received within {settings.client_read_timeout:g} s") from None
    return raw


def json_object(raw: bytes) -> dict[str, Any]:
    """The body parsed whole: a JSON object (400 otherwise)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidRequest(f"request body is not valid JSON: {e}") from e
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    return body


@dataclass(frozen=True, slots=True)
class UnreadArray:
    """A top-level array that ``json_head`` left unread: only its length is known."""

    length: int


def json_head(raw: bytes) -> dict[str, Any]:
    """The top level of a JSON object without its arrays: for a route that relays the bytes and reads only a
    few fields (the Claude route: model, stream, metadata). Each top-level array (``messages``, ``tools``,
    ``system`` as blocks: the bulk of a body, images included) is an ``UnreadArray``; objects and scalars are
    their Python values. simdjson's lazy document validates the whole body but builds no Python object for
    what is not asked, so a body of megabytes costs no copy of itself. A top-level key given twice is a 400:
    the proxy would check one value (a key's model permission, say) and the upstream might take the other.
    A body simdjson refuses is parsed
    whole as ``json_object`` parses it: its errors, and what it accepts that simdjson does not (integers past
    64 bits), stay as they are on every route."""
    try:
        document = simdjson.Parser().parse(raw)
    except (ValueError, RuntimeError):  # not JSON, or JSON simdjson cannot hold: the whole parse decides
        return _head(json_object(raw))
    if not isinstance(document, simdjson.Object):
        raise InvalidRequest("request body must be a JSON object")
    keys = list(document.keys())
    if len(set(keys)) < len(keys):  # the bytes go upstream as sent: which value would it take?
        raise InvalidRequest(f"request body has a top-level key more than once: {_repeated(keys)}")
    if any("\0" in key for key in keys):  # (a key simdjson cannot look up: it reads it as a C string)
        return _head(json_object(raw))
    # (``document[key]``: a lazy proxy for an array, where ``items()`` would build every value)
    return {key: _unread(document[key]) for key in keys}


def _repeated(keys: list[str]) -> str:
    return ", ".join(sorted(key for key, n in Counter(keys).items() if n > 1))


def _head(top: dict[str, Any]) -> dict[str, Any]:
    return {key: _unread(value) for key, value in top.items()}


def _unread(value: Any) -> Any:
    if isinstance(value, (list, simdjson.Array)):
        return UnreadArray(len(value))
    if isinstance(value, simdjson.Object):
        return value.as_dict()
    return value


def _received_body(request: web.Request, limit: int) -> bytes:
    """The body, all of it already received: taken from the stream's buffer at once."""
    raw = request.content.read_nowait()
    if len(raw) > limit:
        raise BodyTooLarge(f"request body is larger than {limit} bytes")
    return raw


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The body, bounded by ``limit`` (413 past it). Read from the stream rather than ``request.read()``,
    which keeps a copy for the request's lifetime: a 10 MB body of images is then held once, not twice."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' must be a non-empty string", param="model")
    return model


def header_text(items: list[str]) -> str:
    """Header values are latin-1 on the wire; keep ours ASCII whatever the user's strings hold."""
    text = "; ".join(items)
    if text.isascii() and text.isprintable():
        return text
    # Control characters (a header can hold none) and non-ASCII become \x.. escapes; the rest stays as is.
    return "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii") for c in text)


def policy_headers(conv: ConvertedRequest) -> dict[str, str]:
    """What the conversion ignored and adjusted, for the caller to see (``x-translator-ignored``,
    ``x-translator-adjustments``)."""
    headers = {}
    if conv.ignored:
        headers["x-translator-ignored"] = header_text(conv.ignored)
    if conv.adjustments:
        headers["x-translator-adjustments"] = header_text(conv.adjustments)
    return headers
