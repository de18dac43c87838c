"""``POST /v1/chat/completions``: the OpenAI shape in, a Claude upstream behind, the OpenAI shape out.

The handler is thin: convert (pure), send, convert back. Streams are converted event by event and each
chunk is written as soon as its event arrives. ``n`` > 1 runs n upstream requests at once and merges
them into n choices (streamed: interleaved, as OpenAI interleaves them).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
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
    openai_error_body,
)
from translator.convert.errors import openai_error_from_claude
from translator.convert.stream import Chunk
from translator.errors import TranslatorError, UpstreamUnavailable
from translator.router import Attempted, UpstreamPool
from translator.server.common import farewell_on_shutdown, header_text, read_json_object, require_model
from translator.server.gate import admitted, authenticate
from translator.server.images import inline_images
from translator.server.keys import IMAGE_SESSION, POOL, RESOLVE, SETTINGS
from translator.server.middleware import FORWARD_KEY, LOG, STARTED, prepare_stream, session_key
from translator.sse import DONE, SSEDecoder, SSEEvent, encode_data, events_in
from translator.upstream import UpstreamResponse

MESSAGES = "/v1/messages"
_T = TypeVar("_T")
Write = Callable[[bytes], Awaitable[None]]


async def chat_completions(request: web.Request) -> web.StreamResponse:
    app = request.app  # (a property of a property: looked up once)
    settings = app[SETTINGS]
    request[LOG]["route"] = "openai"
    key = authenticate(request, app)  # 401 before the body is read (its metrics then name no model)
    req = (await read_json_object(request, app))[0]  # the raw bytes are not kept: a 10 MB body is held once
    asked = require_model(req)
    model, profile = app[RESOLVE](asked)
    request[LOG].update(model=asked, upstream_model=model)
    async with admitted(request, key, asked, model):  # keys and limits before any work (or fetch) for the caller
        conv = convert_request(req, model=model, profile=profile, strict=settings.server.strict)
        session = session_key(request, app, req.get("user"))
        del req  # a large body (images) is not held twice: the converted copy is all we need now
        if settings.images.fetch:
            await inline_images(conv.body, app[IMAGE_SESSION], settings.images)
        request[LOG].update(stream=conv.stream, n=conv.n)
        call = _Call(request, app[POOL], orjson.dumps(conv.body), model, session)
        conv.body.clear()
        # (answered here, not in a helper coroutine: every await of the request resumes through each layer)
        headers = _policy_headers(conv)
        created = int(time.time())
        if conv.stream:
            return await _stream(request, call, conv, created, headers)
        messages = [await _complete(call, headers)] if conv.n == 1 else await _complete_all(call, conv.n, headers)
        completion = convert_responses(messages, created=created, model=model, json_tool=conv.json_tool)
        request[LOG]["usage"] = completion["usage"]
        return web.Response(body=orjson.dumps(completion), content_type="application/json", headers=headers)


@dataclass(slots=True)
class _Call:
    """One request's upstream call, opened once per choice."""

    request: web.Request
    pool: UpstreamPool
    body: bytes
    model: str
    session: str | None

    def open(self, *, stream: bool) -> AbstractAsyncContextManager[Attempted]:
        return self.pool.forward(
            "POST",
            MESSAGES,
            self.body,
            self.request.headers,
            model=self.model,
            stream=stream,
            session=self.session,
            forward_key=self.request[FORWARD_KEY],  # (set by authenticate)
            trace=self.request[LOG],
        )


def _pass_request_id(source: UpstreamResponse, headers: dict[str, str]) -> None:
    """The upstream's request id as ``x-request-id``, where the openai SDKs read it (``_request_id``);
    with n > 1, that of the choice whose answer came first."""
    request_id = source.headers.get("request-id")
    if request_id:
        headers.setdefault("x-request-id", request_id)


def _policy_headers(conv: ConvertedRequest) -> dict[str, str]:
    headers = {}
    if conv.ignored:
        headers["x-translator-ignored"] = header_text(conv.ignored)
    if conv.adjustments:
        headers["x-translator-adjustments"] = header_text(conv.adjustments)
    return headers


async def _complete_all(call: _Call, n: int, headers: dict[str, str]) -> list[dict[str, Any]]:
    """n > 1: the n answers, asked for at once."""
    return await _at_once([_complete(call, headers) for _ in range(n)])


async def _at_once(calls: list[Coroutine[Any, Any, _T]]) -> list[_T]:
    """The n > 1 choices' calls, run together; the first error of ours is the request's (not a group)."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in calls]
    except* TranslatorError as eg:
        raise eg.exceptions[0] from None
    return [t.result() for t in tasks]


async def _complete(call: _Call, headers: dict[str, str]) -> dict[str, Any]:
    async with call.open(stream=False) as done:
        message = await done.response.json()
        _pass_request_id(done.response, headers)
    if not isinstance(message, dict):
        raise StreamProtocolError("upstream answered with JSON that is not a message object")
    return message


async def _stream(
    request: web.Request, call: _Call, conv: ConvertedRequest, created: int, headers: dict[str, str]
) -> web.StreamResponse:
    # Every upstream stream is opened (up to its first content event) before answering, so that an upstream
    # failure can still be retried elsewhere, or answered with a proper error status.
    if conv.n == 1:  # the common case: no exit stack, no task per request
        async with call.open(stream=True) as source:
            return await _stream_opened(request, call, conv, created, headers, [source])
    async with AsyncExitStack() as stack:
        return await _stream_opened(request, call, conv, created, headers, await _open_all(stack, call, conv.n))


async def _stream_opened(
    request: web.Request,
    call: _Call,
    conv: ConvertedRequest,
    created: int,
    headers: dict[str, str],
    sources: list[Attempted],
) -> web.StreamResponse:
    if not all(s.response.is_stream for s in sources):
        raise UpstreamUnavailable("upstream answered a streamed request with a body that is not a stream")
    request[LOG]["ttft_ms"] = round((time.perf_counter() - request[STARTED]) * 1000, 2)
    _pass_request_id(sources[0].response, headers)
    resp = web.StreamResponse(headers={**_STREAM_HEADERS, **headers})
    await prepare_stream(request, resp)
    stream_id = f"chatcmpl-{uuid.uuid4().hex}" if conv.n > 1 else None
    converters = [
        StreamConverter(
            created=created,
            model=call.model,
            index=i,
            json_tool=conv.json_tool,
            stream_id=stream_id,
            include_usage=conv.include_usage,
            usage_chunk=conv.n == 1,  # n > 1: one usage chunk, the choices' summed, written below
        )
        for i in range(conv.n)
    ]
    try:
        async with farewell_on_shutdown(request, resp, _SHUTDOWN_CHUNK):
            if conv.n == 1:
                clean, end = await _pump(sources[0].response, converters[0], resp.write)
            else:
                clean, end = await _pump_all([s.response for s in sources], converters, resp), b""
    finally:  # also when cancelled: what was generated counts against the key's limits
        request[LOG]["usage"] = _summed_usage(converters)
    if clean and conv.include_usage and conv.n > 1:
        end += encode_data(_usage_chunk(stream_id, created, call.model, converters))
    if clean:
        end += DONE
    # The stream's last chunks, [DONE] and the final chunk frame in one send, not three: each send wakes
    # the client up again.
    await resp.write_eof(end)
    if clean:  # the upstream streams ended as they should: their connections are kept for reuse
        for source in sources:
            source.response.finish()
    return resp


async def _open_all(stack: AsyncExitStack, call: _Call, n: int) -> list[Attempted]:
    """n > 1: the n upstream streams, opened at once."""
    return await _at_once([stack.enter_async_context(call.open(stream=True)) for _ in range(n)])


_SHUTDOWN_CHUNK = encode_data(
    openai_error_from_claude("overloaded_error", "the proxy is shutting down; retry the request")
)
_STREAM_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _summed_usage(converters: list[StreamConverter]) -> dict[str, Any]:
    usage = converters[0].usage
    for c in converters[1:]:
        usage = add_usage(usage, c.usage)
    return usage


def _usage_chunk(stream_id: str | None, created: int, model: str, converters: list[StreamConverter]) -> dict[str, Any]:
    usage = _summed_usage(converters)
    return {
        "id": stream_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage,
    }


async def _pump(source: UpstreamResponse, conv: StreamConverter, write: Write) -> tuple[bool, bytes]:
    """Convert one upstream stream onto the client. Returns whether it ended cleanly (not in an error
    chunk), and its last bytes, left unwritten: the caller sends them with the end of the response.

    Everything one upstream read brings is converted and written at once: one write per read, not per
    event, which halves the CPU of a busy stream (each write is a send and a chunk frame). A read that
    starts with deltas (a live stream brings one delta a read) has them converted before the decoder,
    which then reads only the rest."""
    decoder = SSEDecoder()
    try:
        while data := await source.read():
            out = b""
            if decoder.idle and (run := conv.feed_run(data, 0)) is not None:
                pos, out = run
                data = data[pos:]
            region = decoder.feed_region(data) if data else b""
            if region:
                more, last, _ = _convert(region, conv)
                if conv.done:
                    return last is None or "error" not in last, out + more
                out += more
            if out:
                await write(out)
        # A last event missing only its blank line still counts (real Claude streams end that way); a
        # fragment cut mid-line then fails as JSON, reported as a broken stream.
        out, last, _ = _convert(decoder.feed_region(b"\n\n"), conv)
        if conv.done:
            return last is None or "error" not in last, out
    except TranslatorError as err:
        conv.done = True
        return False, encode_data(openai_error_body(err))
    return False, out + b"".join([encode_data(c) for c in conv.finish()])


_DELTA_EVENT = b"event: content_block_delta\n"


def _convert(region: bytes, conv: StreamConverter) -> tuple[bytes, Chunk | None, bool]:
    """The SSE bytes of the chunks these whole events give, the last chunk (None if there was none), and
    whether there was any event at all. Runs of text or argument deltas go through ``feed_run`` in one
    piece each; the events between them, one by one."""
    out: list[bytes] = []  # the chunks' SSE lines
    last = None
    seen = False
    pos, size = 0, len(region)
    try:
        while pos < size and not conv.done:  # pos: where an event (or blank lines) starts
            start = region.find(_DELTA_EVENT, pos)
            if start < 0:
                start = size
            elif start > pos and region[start - 2 : start] != b"\n\n":  # a line inside another event
                start = _event_end(region, start)
            if start == pos:
                run = conv.feed_run(region, pos)
                if run is not None:
                    seen = True
                    pos, chunks = run
                    if chunks:
                        out.append(chunks)
                        last = _TEXT_CHUNK
                    continue
                start = _event_end(region, pos)  # an event the run path leaves to the others
            events = events_in(region[pos:start])
            seen = seen or bool(events)
            chunk = _convert_events(events, conv, out)
            last = last if chunk is None else chunk
            pos = start
    except TranslatorError as err:  # a broken event: what came before it still goes out, then the error
        conv.done = True
        last = openai_error_body(err)
        out.append(encode_data(last))
    return b"".join(out), last, seen


def _event_end(region: bytes, start: int) -> int:
    end = region.find(b"\n\n", start)
    return len(region) if end < 0 else end + 2


def _convert_events(events: list[SSEEvent], conv: StreamConverter, out: list[bytes]) -> Chunk | None:
    """Each event's chunks' SSE lines onto ``out``; the last chunk (None if there was none)."""
    last = None
    for event in events:
        if event.event == "ping":  # a keep-alive, skipped unread (by its name, as the Anthropic SDKs skip it)
            continue
        for chunk in conv.feed(_event_json(event.data)):
            out.append(encode_data(chunk))
            last = chunk
        if conv.done:
            break
    return last


_TEXT_CHUNK: Chunk = {}  # stands for a text chunk written by the fast path: not an error


class _ChoiceFailed(Exception):
    pass


async def _pump_all(
    sources: list[UpstreamResponse], converters: list[StreamConverter], resp: web.StreamResponse
) -> bool:
    lock = asyncio.Lock()
    stopped = False

    async def write(data: bytes) -> None:
        async with lock:
            if stopped:  # another choice ended the stream with its error: nothing may follow it
                raise _ChoiceFailed
            await resp.write(data)

    async def one(source: UpstreamResponse, conv: StreamConverter) -> None:
        nonlocal stopped
        clean, end = await _pump(source, conv, write)
        if end:
            await write(end)
        if not clean:
            stopped = True
            raise _ChoiceFailed  # one choice failed: the client's stream ends there, the others stop

    failed = False
    try:
        async with asyncio.TaskGroup() as group:
            for source, conv in zip(sources, converters, strict=True):
                group.create_task(one(source, conv))
    except* _ChoiceFailed:
        failed = True
    except* ConnectionResetError:
        raise ConnectionResetError("the client went away") from None  # logged as such, not as a bug
    return not failed


def _event_json(data: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise StreamProtocolError(f"upstream stream event is not JSON: {data[:100]!r}") from e
    if not isinstance(payload, dict):
        raise StreamProtocolError("upstream stream event is not a JSON object")
    return payload
