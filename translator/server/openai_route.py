"""``POST /v1/chat/completions``: the OpenAI shape in, a Claude upstream behind, the OpenAI shape out.

The handler is thin: convert (pure), send, convert back. Streams go through the relay
(``translator.server.streaming``), each event converted by ``StreamConverter`` and written as soon as it
arrives. ``n`` > 1 runs n upstream requests at once and merges them into n choices (streamed: interleaved,
as OpenAI interleaves them).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import orjson
from aiohttp import web

from translator.convert import (
    ConvertedRequest,
    StreamConverter,
    StreamProtocolError,
    add_usage,
    convert_request,
    convert_responses,
)
from translator.convert.fastpath import FastChatConverter
from translator.convert.pause import resumable
from translator.convert.stream import Chunk
from translator.convert.usage import message_usage, sum_claude_usage
from translator.errors import TranslatorError, UpstreamUnavailable
from translator.router import UpstreamCall
from translator.server.caching import cache_prompt
from translator.server.common import policy_headers
from translator.server.context import CONTEXT
from translator.server.gate import Admission, admit
from translator.server.images import inline_images
from translator.server.resume import Resumed, resumed_message
from translator.server.state import IMAGE_SESSION, SETTINGS, runtime
from translator.server.streaming import EventStream, FastConvertedStream, Source, relay
from translator.sse import DONE, encode_data
from translator.upstream import UpstreamResponse

MESSAGES = "/v1/messages"
_T = TypeVar("_T")


async def chat_completions(request: web.Request) -> web.StreamResponse:
    async with admit(request, "openai", session_from=_session_from) as admission:
        settings = request.app[SETTINGS]
        body = admission.take_body()
        conv = convert_request(body, model=admission.model, profile=admission.profile, strict=settings.server.strict)
        if settings.images.fetch:
            await inline_images(conv.body, request.app[IMAGE_SESSION], settings.images)
        cached = await cache_prompt(request, conv.body, model=admission.model, profile=admission.profile,
                                    route="openai", retention=body.get("prompt_cache_retention"))
        conv.adjustments += cached.adjustments
        del body
        admission.ctx.stream, admission.ctx.n = conv.stream, conv.n
        call = _call(request, admission, orjson.dumps(conv.body), stream=conv.stream,
                     headers=cached.headers(request.headers))
        resume = resumable(conv.body)
        conv.body.clear()  # a large body (images) is held once, as the bytes that go upstream
        headers = policy_headers(conv)
        if conv.stream:
            return await _stream(request, call, conv, headers, resume=resume)
        return await _complete(request, call, conv, headers)


def _session_from(body: dict[str, Any]) -> object:
    """``prompt_cache_key`` names the conversation (stickiness keeps its upstream's prompt cache warm), else
    the end user."""
    key = body.get("prompt_cache_key")
    return key if isinstance(key, str) and key else body.get("user")


def _call(
    request: web.Request, admission: Admission, body: bytes, *, stream: bool, headers: Mapping[str, str]
) -> UpstreamCall:
    return UpstreamCall(
        "POST",
        MESSAGES,
        body,
        headers,
        model=admission.model,
        stream=stream,
        session=admission.session,
        forward_key=admission.ctx.forward_key,
    )


def _pass_request_id(source: UpstreamResponse, headers: dict[str, str]) -> None:
    """The upstream's request id, passed on as ``request-id`` (``x-request-id`` is ours: context.py);
    with n > 1, that of the choice whose answer came first."""
    request_id = source.headers.get("request-id")
    if request_id:
        headers.setdefault("request-id", request_id)


# --- non-streamed ---


async def _complete(
    request: web.Request, call: UpstreamCall, conv: ConvertedRequest, headers: dict[str, str]
) -> web.Response:
    ctx = request[CONTEXT]
    messages = await _at_once([_message(request, call, headers) for _ in range(conv.n)])
    ctx.usage = sum_claude_usage([message_usage(m) for m in messages])
    completion = convert_responses(messages, created=int(time.time()), model=call.model, json_tool=conv.json_tool,
                                   legacy=conv.legacy_functions)
    return web.Response(body=orjson.dumps(completion), content_type="application/json", headers=headers)


async def _message(request: web.Request, call: UpstreamCall, headers: dict[str, str]) -> dict[str, Any]:
    ctx = request[CONTEXT]
    async with runtime(request).pool.forward(call, ctx.attempted) as done:
        message = await done.response.json()
        _pass_request_id(done.response, headers)
    if not isinstance(message, dict):
        raise StreamProtocolError("upstream answered with JSON that is not a message object")
    return await resumed_message(request, call, message)


async def _at_once(calls: list[Coroutine[Any, Any, _T]]) -> list[_T]:
    """The choices' calls, run together; the first error of ours is the request's (not a group)."""
    if len(calls) == 1:
        return [await calls[0]]
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in calls]
    except* TranslatorError as eg:
        raise eg.exceptions[0] from None
    return [t.result() for t in tasks]


# --- streamed ---


async def _stream(
    request: web.Request, call: UpstreamCall, conv: ConvertedRequest, headers: dict[str, str], *, resume: bool
) -> web.StreamResponse:
    # Every upstream stream is opened (up to its first content event) before answering, so that an upstream
    # failure can still be retried elsewhere, or answered with a proper error status.
    ctx = request[CONTEXT]
    pool = runtime(request).pool
    async with AsyncExitStack() as stack:
        sources = await _at_once([stack.enter_async_context(pool.forward(call, ctx.attempted)) for _ in range(conv.n)])
        if not all(s.response.is_stream for s in sources):
            raise UpstreamUnavailable("upstream answered a streamed request with a body that is not a stream")
        _pass_request_id(sources[0].response, headers)
        # (a turn with server tools may pause: its next rounds are read on)
        relayed: list[Source] = [Resumed(request, s, call, stack) for s in sources] if resume else list(sources)
        created = int(time.time())
        stream_id = f"chatcmpl-{uuid.uuid4().hex}" if conv.n > 1 else None
        converters = [chat_converter(conv, i, created=created, model=call.model, stream_id=stream_id)
                      for i in range(conv.n)]

        def closing(clean: bool) -> bytes:
            if not clean:
                return b""  # the stream ended in an error chunk: no [DONE] after it
            usage = b""
            if stream_id is not None and conv.include_usage:  # n > 1: one usage chunk, the choices' summed
                usage = encode_data(_usage_chunk(stream_id, created, converters))
            return usage + DONE

        streams: list[EventStream] = [FastConvertedStream(converter, encode_data) for converter in converters]
        return await relay(request, relayed, streams, headers=headers, closing=closing)


def chat_converter(
    conv: ConvertedRequest, index: int, *, created: int, model: str, stream_id: str | None
) -> FastChatConverter:
    """The converter of one choice's Claude stream into OpenAI chunks (runs of text deltas on the fast path)."""
    return FastChatConverter(
        created=created,
        model=model,
        index=index,
        json_tool=conv.json_tool,
        legacy=conv.legacy_functions,
        stream_id=stream_id,
        include_usage=conv.include_usage,
        usage_chunk=conv.n == 1,  # n > 1: one usage chunk, the choices' summed, written by closing()
    )


def _usage_chunk(stream_id: str, created: int, converters: Sequence[StreamConverter]) -> Chunk:
    usage = converters[0].usage
    for converter in converters[1:]:
        usage = add_usage(usage, converter.usage)
    return {"id": stream_id, "object": "chat.completion.chunk", "created": created, "model": converters[0].model,
            "choices": [], "usage": usage}
