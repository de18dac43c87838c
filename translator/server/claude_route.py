"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: the Claude shape, relayed.

Fidelity first: the body goes upstream as the client's bytes (re-encoded only when a model alias
rewrites ``model``, or when ``[caching] claude_route`` places prompt cache breakpoints), and the answer
comes back as the upstream's bytes, event by event for streams. The route still reads the events it needs
for its log (usage, stop reason, errors), and a stream that ends without ``message_stop`` gets an
``event: error`` so the SDK reports it instead of a clean end (a cut half event is dropped first, or the
two would merge into one broken event).

Like the OpenAI route, a request passes the gateway (client key, model permission, rate limits) and goes
through the upstream pool (failover before the first content event, stickiness by conversation).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from translator.errors import InvalidRequest, TranslatorError, UpstreamUnavailable
from translator.router import UpstreamCall
from translator.server.caching import cache_prompt
from translator.server.common import UnreadArray, header_text, json_head, json_object
from translator.server.gate import Admission, admit
from translator.server.state import SETTINGS, runtime
from translator.server.streaming import relay
from translator.sse import SSEEvent, encode_event
from translator.upstream import UpstreamResponse


async def messages(request: web.Request) -> web.StreamResponse:
    return await _handle(request, "/v1/messages", counting=False)


async def count_tokens(request: web.Request) -> web.StreamResponse:
    return await _handle(request, "/v1/messages/count_tokens", counting=True)


def _session_from(body: dict[str, Any]) -> object:
    metadata = body.get("metadata")
    return metadata.get("user_id") if isinstance(metadata, dict) else None


async def _handle(request: web.Request, path: str, *, counting: bool) -> web.StreamResponse:
    # The body goes upstream as sent: of it, only the top level is read (not its messages, tools or images),
    # unless [caching] claude_route may place breakpoints in its blocks.
    parse = json_object if request.app[SETTINGS].caching.claude_route else json_head
    async with admit(request, "claude", session_from=_session_from, parse=parse) as admission:
        streamed = not counting and admission.body.get("stream") is True
        admission.ctx.stream = admission.body.get("stream") is True
        body = _validated(admission, need_max_tokens=not counting)
        headers: Mapping[str, str] = request.headers
        if not counting:  # [caching] claude_route: breakpoints for a request that carries none
            cached = await cache_prompt(request, admission.body, model=admission.model, profile=admission.profile,
                                        route="claude")
            if cached.adjustments:
                body = orjson.dumps({**admission.body, "model": admission.model})
                headers = cached.headers(request.headers)
                admission.ctx.extra_headers["x-translator-adjustments"] = header_text(cached.adjustments)
        call = UpstreamCall(
            "POST",
            f"{path}?{request.query_string}" if request.query_string else path,
            body,
            headers,
            model=admission.model,
            stream=streamed,
            session=admission.session,
            version=request.headers.get("anthropic-version"),
            forward_key=admission.ctx.forward_key,
        )
        admission.take_body()
        # The pool fails over (connect errors, 429/5xx/529, an error event before any content) before anything
        # has gone to the client; a stream is read up to its first content event for that, then replayed.
        async with runtime(request).pool.forward(call, admission.ctx.attempted) as done:
            source = done.response
            if streamed and source.is_stream:
                headers = _passed_headers(source)
                return await relay(request, [done], [RelayedStream()], headers=headers)
            data = await source.body()
            admission.ctx.usage = _message_usage(request, data)
            return web.Response(
                body=data, status=source.status, content_type="application/json", headers=_passed_headers(source)
            )


def _validated(admission: Admission, *, need_max_tokens: bool) -> bytes:
    """Check only what we must; return the bytes to send (the client's own unless an alias applies)."""
    body = admission.body
    if not isinstance(body.get("messages"), (UnreadArray, list)):
        raise InvalidRequest("messages: field required, an array of messages", param="messages")
    max_tokens = body.get("max_tokens")
    if need_max_tokens and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)):
        raise InvalidRequest("max_tokens: field required, an integer", param="max_tokens")
    if admission.model == admission.asked:
        return admission.raw
    return with_model(admission.raw, admission.asked, admission.model)


def with_model(raw: bytes, asked: str, model: str) -> bytes:
    """The client's bytes with only the model's value replaced, when it can be found unambiguously (one
    ``"model"`` key in the whole body, holding ``"<asked>"`` as orjson encodes it); else the body
    re-encoded. Splicing keeps everything else exactly as sent: number spellings, integers past 64 bits,
    key order, duplicates."""
    matches = list(re.finditer(rb'"model"\s*:\s*' + re.escape(orjson.dumps(asked)), raw))
    if len(matches) == 1 and len(re.findall(rb'"model"\s*:', raw)) == 1:  # the only "model" key: the top
        start, end = matches[0].span()
        return raw[:start] + b'"model":' + orjson.dumps(model) + raw[end:]
    return orjson.dumps({**json_object(raw), "model": model})


def _passed_headers(source: UpstreamResponse) -> dict[str, str]:
    request_id = source.headers.get("request-id")
    return {"request-id": request_id} if request_id else {}


def _message_usage(request: web.Request, data: bytes) -> dict[str, Any] | None:
    """A 2xx answer must be a JSON object (a message, a token count); anything else is a bad upstream
    answer (502), not something to hand an SDK as JSON. Its usage, for the log and the limits."""
    try:
        answer = orjson.loads(data)
    except orjson.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        raise UpstreamUnavailable(f"upstream answered {request.path} with a body that is not a JSON object")
    usage = answer.get("usage")
    return usage if isinstance(usage, dict) else None


def _error_event(claude_type: str, message: str) -> bytes:
    return encode_event("error", {"type": "error", "error": {"type": claude_type, "message": message}})


class RelayedStream:
    """A Claude stream passed on as the upstream's bytes, read on the way for the log: usage, stop reason,
    errors, and whether it completed. Only the events that say those are parsed."""

    def __init__(self) -> None:
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.error_type: str | None = None
        self.done = False  # message_stop or an error event came: nothing after it goes out
        self.failed = False

    def feed(self, event: SSEEvent) -> bytes:
        if not event.complete and event.event not in _ENDS:
            return b""  # a fragment the stream was cut in: dropped, or the error after it would merge into it
        handler = _WATCHED.get(event.event or "")
        if handler is not None:
            handler(self, _payload(event))
        self.done = self.done or event.event in _ENDS
        return event.raw

    def end(self) -> bytes:
        return self._failed("api_error", "upstream stream ended before message_stop")

    def fail(self, err: TranslatorError) -> bytes:
        return b"" if self.done else self._failed(err.claude_type, err.message)

    def _failed(self, claude_type: str, message: str) -> bytes:
        self.done = self.failed = True
        self.error_type = self.error_type or claude_type
        return _error_event(claude_type, message)

    # Only for the log: a field of an odd shape is skipped, never a reason to break the relay.

    def _message_start(self, payload: dict[str, Any]) -> None:
        self.usage.update(_obj(_obj(payload.get("message")).get("usage")))

    def _message_delta(self, payload: dict[str, Any]) -> None:
        self.usage.update({k: v for k, v in _obj(payload.get("usage")).items() if v is not None})
        self.stop_reason = _obj(payload.get("delta")).get("stop_reason")

    def _error(self, payload: dict[str, Any]) -> None:
        self.failed = True  # an error event is a proper end too (the SDK raises on it), but not a clean one
        self.error_type = _obj(payload.get("error")).get("type")


_ENDS = ("message_stop", "error")
_WATCHED = {
    "message_start": RelayedStream._message_start,
    "message_delta": RelayedStream._message_delta,
    "error": RelayedStream._error,
}


def _payload(event: SSEEvent) -> dict[str, Any]:
    try:
        return _obj(orjson.loads(event.data))
    except orjson.JSONDecodeError:
        raise UpstreamUnavailable(f"upstream sent a {event.event} event that is not JSON") from None


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
