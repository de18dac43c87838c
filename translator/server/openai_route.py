"""``POST /v1/chat/completions``: the OpenAI shape in, a Claude upstream behind, the OpenAI shape out.

The handler is thin: convert (pure), send, convert back. Streams are converted event by event and each
chunk is written as soon as its event arrives. ``n`` > 1 runs n upstream requests at once and merges
them into n choices (streamed: interleaved, as OpenAI interleaves them).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import orjson
from aiohttp import web

from translator.convert import (
    ConvertedRequest,
    StreamConverter,
    StreamProtocolError,
    add_usage,
    convert_request,
    convert_responses,
    openai_error_body,
)
from translator.errors import TranslatorError
from translator.server.common import header_text, read_json_object, require_model
from translator.server.images import inline_images
from translator.server.keys import RESOLVE, SETTINGS, UPSTREAM
from translator.server.middleware import LOG
from translator.sse import DONE, SSEEvent, encode_data
from translator.upstream import Upstream, UpstreamResponse

MESSAGES = "/v1/messages"
Write = Callable[[bytes], Awaitable[None]]


async def chat_completions(request: web.Request) -> web.StreamResponse:
    settings, upstream = request.app[SETTINGS], request.app[UPSTREAM]
    req, _ = await read_json_object(request)
    asked = require_model(req)
    model, profile = request.app[RESOLVE](asked)
    conv = convert_request(req, model=model, profile=profile, strict=settings.server.strict)
    if settings.images.fetch:
        await inline_images(conv.body, upstream.session, settings.images)
    request[LOG].update(route="openai", model=asked, upstream_model=model, stream=conv.stream, n=conv.n)
    headers = _policy_headers(conv)
    upstream_headers = upstream.headers(request.headers)
    body = orjson.dumps(conv.body)
    created = int(time.time())
    if conv.stream:
        return await _stream(request, upstream, conv, upstream_headers, body, created, headers)
    messages = await _complete_all(upstream, upstream_headers, body, conv.n)
    completion = convert_responses(messages, created=created, model=model, json_tool=conv.json_tool)
    request[LOG]["usage"] = completion["usage"]
    return web.Response(body=orjson.dumps(completion), content_type="application/json", headers=headers)


def _policy_headers(conv: ConvertedRequest) -> dict[str, str]:
    headers = {}
    if conv.ignored:
        headers["x-translator-ignored"] = header_text(conv.ignored)
    if conv.adjustments:
        headers["x-translator-adjustments"] = header_text(conv.adjustments)
    return headers


async def _complete_all(upstream: Upstream, headers: Any, body: bytes, n: int) -> list[dict[str, Any]]:
    async def one() -> dict[str, Any]:
        async with upstream.request("POST", MESSAGES, headers, body) as resp:
            message = await resp.json()
        if not isinstance(message, dict):
            raise StreamProtocolError("upstream answered with JSON that is not a message object")
        return message

    if n == 1:
        return [await one()]
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one()) for _ in range(n)]
    except* TranslatorError as eg:
        raise eg.exceptions[0] from None
    return [t.result() for t in tasks]


async def _stream(
    request: web.Request,
    upstream: Upstream,
    conv: ConvertedRequest,
    upstream_headers: Any,
    body: bytes,
    created: int,
    headers: dict[str, str],
) -> web.StreamResponse:
    async with AsyncExitStack() as stack:
        # Open every upstream stream before answering, so an upstream error status is still ours to send.
        try:
            async with asyncio.TaskGroup() as group:
                opening = [
                    group.create_task(
                        stack.enter_async_context(upstream.request("POST", MESSAGES, upstream_headers, body))
                    )
                    for _ in range(conv.n)
                ]
        except* TranslatorError as eg:
            raise eg.exceptions[0] from None
        sources = [t.result() for t in opening]
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                **headers,
            }
        )
        await resp.prepare(request)
        model = str(conv.body["model"])
        stream_id = f"chatcmpl-{uuid.uuid4().hex}" if conv.n > 1 else None
        converters = [
            StreamConverter(
                created=created,
                model=model,
                index=i,
                json_tool=conv.json_tool,
                stream_id=stream_id,
                include_usage=conv.include_usage and conv.n == 1,
            )
            for i in range(conv.n)
        ]
        if conv.n == 1:
            clean = await _pump(sources[0], converters[0], resp.write)
        else:
            clean = await _pump_all(sources, converters, resp)
        if clean and conv.include_usage and conv.n > 1:
            usage = converters[0].usage
            for c in converters[1:]:
                usage = add_usage(usage, c.usage)
            await resp.write(
                encode_data(
                    {
                        "id": stream_id,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                )
            )
        if clean:
            await resp.write(DONE)
        request[LOG]["usage"] = converters[0].usage if conv.n == 1 else None
        await resp.write_eof()
        return resp


async def _pump(source: UpstreamResponse, conv: StreamConverter, write: Write) -> bool:
    """Convert one upstream stream onto the client. False if it ended in an error chunk."""
    try:
        async for event in source.events():
            chunks = conv.feed(_event_json(event))
            if chunks:
                await write(b"".join([encode_data(c) for c in chunks]))
                if conv.done:
                    return "error" not in chunks[-1]
            elif conv.done:
                return True
        tail = conv.finish()
    except TranslatorError as err:
        conv.done = True
        tail = [openai_error_body(err)]
    if tail:
        await write(b"".join([encode_data(c) for c in tail]))
    return False


class _ChoiceFailed(Exception):
    pass


async def _pump_all(
    sources: list[UpstreamResponse], converters: list[StreamConverter], resp: web.StreamResponse
) -> bool:
    lock = asyncio.Lock()

    async def write(data: bytes) -> None:
        async with lock:
            await resp.write(data)

    async def one(source: UpstreamResponse, conv: StreamConverter) -> None:
        if not await _pump(source, conv, write):
            raise _ChoiceFailed  # one choice failed: the client's stream ends there, the others stop

    failed = False
    try:
        async with asyncio.TaskGroup() as group:
            for source, conv in zip(sources, converters, strict=True):
                group.create_task(one(source, conv))
    except* _ChoiceFailed:
        failed = True
    return not failed


def _event_json(event: SSEEvent) -> dict[str, Any]:
    try:
        data = event.json()
    except ValueError as e:
        raise StreamProtocolError(f"upstream stream event is not JSON: {event.data[:100]!r}") from e
    if not isinstance(data, dict):
        raise StreamProtocolError("upstream stream event is not a JSON object")
    return data
