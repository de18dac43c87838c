"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: the Claude shape, relayed.

Fidelity first: the body goes upstream as the client's bytes (re-encoded only when a model alias
rewrites ``model``), and the answer comes back as the upstream's bytes, event by event for streams. The
server still reads the events it needs for its log (usage, stop reason, errors), and a stream that ends
without ``message_stop`` gets an ``event: error`` so the SDK reports it instead of a clean end (a cut half
event is dropped first, or the two would merge into one broken event).

Like the OpenAI route, a request passes the gateway (client key, model permission, rate limits) and goes
through the upstream pool (failover before the first content event, stickiness by conversation).
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
from aiohttp import web

from translator.errors import InvalidRequest, TranslatorError, UpstreamUnavailable
from translator.router import UpstreamPool
from translator.server.common import farewell_on_shutdown, read_json_object, require_model
from translator.server.gate import admitted, authenticate
from translator.server.keys import POOL, RESOLVE
from translator.server.middleware import FORWARD_KEY, LOG, STARTED, prepare_stream, session_key
from translator.sse import BOM, SSEDecoder, encode_event, event_in
from translator.upstream import UpstreamResponse

_STREAM_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def messages(request: web.Request) -> web.StreamResponse:
    return await _handle(request, "/v1/messages", counting=False)


async def count_tokens(request: web.Request) -> web.StreamResponse:
    return await _handle(request, "/v1/messages/count_tokens", counting=True)


async def _handle(request: web.Request, path: str, *, counting: bool) -> web.StreamResponse:
    request[LOG]["route"] = "claude"
    app = request.app  # (a property of a property: looked up once)
    key = authenticate(request, app)  # 401 before the body is read (its metrics then name no model)
    body, raw = await read_json_object(request, app)
    asked = require_model(body)
    model, raw = _validated(request, app, body, raw, asked, need_max_tokens=not counting)
    streamed = not counting and body.get("stream") is True
    metadata = body.get("metadata")
    session = session_key(request, app, metadata.get("user_id") if isinstance(metadata, dict) else None)
    async with admitted(request, key, asked, model):
        return await _relay(request, app[POOL], path, raw, model=model, session=session, streamed=streamed)


def _validated(
    request: web.Request, app: web.Application, body: dict[str, Any], raw: bytes, asked: str, *, need_max_tokens: bool
) -> tuple[str, bytes]:
    """Check only what we must; return the upstream model and the bytes to send (the client's own unless an
    alias applies)."""
    if not isinstance(body.get("messages"), list):
        raise InvalidRequest("messages: field required, an array of messages", param="messages")
    max_tokens = body.get("max_tokens")
    if need_max_tokens and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)):
        raise InvalidRequest("max_tokens: field required, an integer", param="max_tokens")
    model, _ = app[RESOLVE](asked)
    request[LOG].update(model=asked, upstream_model=model, stream=body.get("stream") is True)
    if model == asked:
        return model, raw
    return model, with_model(raw, body, asked, model)


def with_model(raw: bytes, body: dict[str, Any], asked: str, model: str) -> bytes:
    """The client's bytes with only the model's value replaced, when it can be found unambiguously (one
    ``"model"`` key in the whole body, holding ``"<asked>"`` as orjson encodes it); else the body
    re-encoded. Splicing keeps everything else exactly as sent: number spellings, integers past 64 bits,
    key order, duplicates."""
    matches = list(re.finditer(rb'"model"\s*:\s*' + re.escape(orjson.dumps(asked)), raw))
    if len(matches) == 1 and len(re.findall(rb'"model"\s*:', raw)) == 1:  # the only "model" key: the top
        start, end = matches[0].span()
        return raw[:start] + b'"model":' + orjson.dumps(model) + raw[end:]
    return orjson.dumps({**body, "model": model})


async def _relay(
    request: web.Request, pool: UpstreamPool, path: str, raw: bytes, *, model: str, session: str | None, streamed: bool
) -> web.StreamResponse:
    if request.query_string:
        path = f"{path}?{request.query_string}"
    # The pool fails over (connect errors, 429/5xx/529, an error event before any content) before anything
    # has gone to the client; a stream is read up to its first content event for that, then replayed.
    async with pool.forward(
        "POST",
        path,
        raw,
        request.headers,
        model=model,
        stream=streamed,
        session=session,
        version=request.headers.get("anthropic-version"),
        forward_key=request[FORWARD_KEY],  # (set by authenticate)
        trace=request[LOG],
    ) as done:
        source = done.response
        if streamed and source.is_stream:
            request[LOG]["ttft_ms"] = round((time.perf_counter() - request[STARTED]) * 1000, 2)
            return await _relay_stream(request, source)
        data = await source.body()
        _check_message(request, data)
        return web.Response(
            body=data, status=source.status, content_type="application/json", headers=_passed_headers(source)
        )


def _passed_headers(source: UpstreamResponse) -> dict[str, str]:
    request_id = source.headers.get("request-id")
    return {"request-id": request_id} if request_id else {}


def _check_message(request: web.Request, data: bytes) -> None:
    """A 2xx answer must be a JSON object (a message, a token count); anything else is a bad upstream
    answer (502), not something to hand an SDK as JSON. Its usage goes to the log."""
    try:
        answer = orjson.loads(data)
    except orjson.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        raise UpstreamUnavailable(f"upstream answered {request.path} with a body that is not a JSON object")
    usage = answer.get("usage")
    if isinstance(usage, dict):
        request[LOG]["usage"] = usage


async def _relay_stream(request: web.Request, source: UpstreamResponse) -> web.StreamResponse:
    resp = web.StreamResponse(headers={**_STREAM_HEADERS, **_passed_headers(source)})
    await prepare_stream(request, resp)
    watch = _StreamWatch()
    async with farewell_on_shutdown(request, resp, _SHUTDOWN_EVENT):
        try:
            try:
                end = await _relay_until_end(source, resp, watch)
            except TranslatorError as err:
                watch.failed = True
                error = {"type": err.claude_type, "message": err.message}
                end = encode_event("error", {"type": "error", "error": error})
            else:
                if not watch.complete:
                    # What is pending (if anything) is a cut event: dropped, or our error would merge into it.
                    error = {"type": "api_error", "message": "upstream stream ended before message_stop"}
                    end = encode_event("error", {"type": "error", "error": error})
        finally:  # also when cancelled: what was generated counts against the key's limits
            request[LOG].update(usage=watch.usage, stop_reason=watch.stop_reason, stream_error=watch.error)
        # The stream's last bytes and the final chunk frame in one send, not two: each send wakes the client.
        await resp.write_eof(end)
    if watch.complete and not watch.failed and watch.error is None:  # ended in message_stop: keep the connection
        source.finish()
    return resp


_SHUTDOWN_EVENT = encode_event(
    "error",
    {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "the proxy is shutting down; retry the request"},
    },
)


async def _relay_until_end(source: UpstreamResponse, resp: web.StreamResponse, watch: _StreamWatch) -> bytes:
    """Relay the stream event by event up to its end; the bytes of the event that completed it (through
    message_stop or error) are returned unwritten, for the caller to send with the response's end."""
    pending = bytearray()  # the start of an event whose closing blank line has not arrived yet
    while data := await source.read():
        if not pending and data.endswith(b"\n\n"):
            done = data  # the usual read: whole events, nothing held back (no copies)
        else:
            searched = max(0, len(pending) - 3)
            pending += data
            cut = _events_end(pending, searched)
            if not cut:
                continue
            done = bytes(pending[:cut])
            del pending[:cut]
        watch.feed(done)
        if watch.complete:  # message_stop (or error) ends the stream: nothing after it goes out
            return done[: watch.ended_at if watch.ended_at is not None else _end_of_last_event(done)]
        await resp.write(done)
    if pending and not watch.complete:
        # The upstream's last event lacks its blank line. Read it as ended: a message_stop there
        # completes the stream, and the bytes go out as sent.
        watch.feed(bytes(pending) + b"\n\n")
        if watch.complete:
            return bytes(pending)
    return b""


_EVENT_ENDS = (b"\n\n", b"\r\r", b"\r\n\r\n")


def _events_end(buf: bytearray, start: int) -> int:
    """Where the last complete event in ``buf`` ends (0: none); boundaries before ``start`` were seen."""
    ends = [i + len(sep) for sep in _EVENT_ENDS if (i := buf.rfind(sep, start)) >= 0]
    return max(ends, default=0)


_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")


def _end_of_last_event(done: bytes) -> int:
    """Where the event that ended the stream (message_stop or error) ends in ``done`` (run once a stream).
    The search starts at the event holding the first mention of either name; the deltas before it are
    not looked at."""
    mentions = [i for i in (done.find(b"message_stop"), done.find(b"error")) if i >= 0]
    if not mentions:
        return len(done)
    first = min(mentions)
    start = max((i + len(sep) for sep in _EVENT_ENDS if (i := done.rfind(sep, 0, first)) >= 0), default=0)
    for boundary in _BOUNDARY.finditer(done, start):
        block = done[start : boundary.start()]
        if b"message_stop" in block or b"error" in block:  # only those can be it: the rest stay unparsed
            events = SSEDecoder().feed(block + b"\n\n")
            if events and events[0].event in ("message_stop", "error"):
                return boundary.end()
        start = boundary.end()
    return len(done)


_MESSAGE, _ERROR = _WATCHED = (b"message_", b"error")  # the events the watch reads: message_*, error


class _StreamWatch:
    """Reads the relayed stream for the log: usage, stop reason, errors, and whether it completed.
    Only the few event types it needs are parsed; the rest are counted by name alone."""

    def __init__(self) -> None:
        self._decoder = SSEDecoder()  # for streams with CR line ends
        self._first = True
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.error: str | None = None
        self.complete = False
        self.ended_at: int | None = None  # where, in the chunk that completed the stream, its last event ends
        self.failed = False

    def feed(self, data: bytes) -> None:
        """``data`` ends at an event boundary, so only the events holding a mention of the ones read need be
        cut out and parsed: a chunk with none (most chunks: content deltas) is skipped whole, and the deltas
        around a stream's first and last events are not looked at."""
        bom = 0
        if self._first:
            self._first = False
            if data.startswith(BOM):  # (a stream's first event is whole in its first chunk)
                data, bom = data[len(BOM) :], len(BOM)
        if data.find(b"\r") >= 0:  # CR line ends: the decoder reads them
            # (data ends at an event's end: a CR the decoder holds back, as maybe half a CRLF, ends a line)
            for event in self._decoder.feed(data, only=_WATCHED) + self._decoder.feed(b"\n", only=_WATCHED):
                self._event(event.event, event.data)
            return
        pos = 0
        while (mention := _first_mention(data, pos)) >= 0:
            cut = data.rfind(b"\n\n", pos, mention)
            start = pos if cut < 0 else cut + 2  # the event holding the mention starts after a blank line
            end = data.find(b"\n\n", mention)
            found = event_in(data[start:] if end < 0 else data[start:end])  # (one event: no blank line in it)
            end = len(data) if end < 0 else end + 2
            if found is not None:
                self._event(found.event, found.data)
            if self.complete:
                self.ended_at = bom + end  # (in the chunk as it came)
                return
            pos = end

    def _event(self, name: str | None, data: bytes) -> None:
        if name in ("message_stop", "error"):
            self.complete = True  # an error event is a proper end too: the SDK raises on it
        if name not in ("message_start", "message_delta", "error"):
            return
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamUnavailable(f"upstream sent a {name} event that is not JSON") from None
        # Only for the log: a field of an odd shape is skipped, never a reason to break the relay.
        if name == "message_start":
            self.usage.update(_obj(_obj(_obj(payload).get("message")).get("usage")))
        elif name == "message_delta":
            self.usage.update({k: v for k, v in _obj(_obj(payload).get("usage")).items() if v is not None})
            self.stop_reason = _obj(_obj(payload).get("delta")).get("stop_reason")
        else:
            self.error = _obj(_obj(payload).get("error")).get("type")


def _first_mention(data: bytes, pos: int) -> int:
    """Where the first of ``_WATCHED`` occurs in ``data`` from ``pos`` (-1: neither)."""
    message = data.find(_MESSAGE, pos)
    error = data.find(_ERROR, pos) if message < 0 else data.find(_ERROR, pos, message)
    return error if error >= 0 else message


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
