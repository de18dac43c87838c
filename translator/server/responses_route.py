"""``/v1/responses``: the OpenAI Responses API on a Claude upstream.

``POST /v1/responses`` converts the request (``translator.convert.responses_request``), sends it through the
upstream pool and converts the answer back (``responses_response``, or ``responses_stream`` event by event
through the relay). ``POST /v1/responses/input_tokens`` asks the upstream's ``count_tokens``.

With ``[responses] store`` on, a response made with ``store`` (the spec's default) is kept with its
conversation (``translator.gateway.response_store``): ``previous_response_id`` continues it, and
``GET``/``DELETE /v1/responses/{id}`` and ``GET /v1/responses/{id}/input_items`` read it, and an input's
``item_reference`` is replaced by the stored item it names. A stored response belongs to the key that made it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

import orjson
from aiohttp import web

from translator.convert import StreamProtocolError
from translator.convert.fastpath import FastResponsesConverter
from translator.convert.pause import resumable
from translator.convert.request import ConvertedRequest
from translator.convert.responses_request import convert_responses_request
from translator.convert.responses_response import item_id, request_echo, response_from_message, response_of
from translator.convert.usage import message_usage
from translator.errors import InvalidRequest, NotFound, UpstreamUnavailable
from translator.gateway.response_store import StoredResponse
from translator.router import UpstreamCall
from translator.server.caching import cache_prompt
from translator.server.common import policy_headers
from translator.server.context import CONTEXT
from translator.server.gate import Admission, admit, authenticate
from translator.server.images import inline_images
from translator.server.resume import Resumed, resumed_message
from translator.server.state import IMAGE_SESSION, RESPONSE_STORE, SETTINGS, runtime
from translator.server.streaming import FastConvertedStream, Source, relay
from translator.sse import encode_event


def _session_from(body: dict[str, Any]) -> object:
    """``prompt_cache_key`` names the conversation (the upstream's prompt cache is what stickiness keeps
    warm), else the end user."""
    for name in ("prompt_cache_key", "safety_identifier", "user"):
        if isinstance(body.get(name), str) and body[name]:
            return body[name]
    return None


async def create_response(request: web.Request) -> web.StreamResponse:
    async with admit(request, "responses", session_from=_session_from) as admission:
        req = admission.take_body()
        history = await _history(request, req.get("previous_response_id"))
        await _dereference(request, req.get("input"))
        conv = _converted(request, admission, req, history)
        if request.app[SETTINGS].images.fetch:
            await inline_images(conv.body, request.app[IMAGE_SESSION], request.app[SETTINGS].images)
        cached = await cache_prompt(request, conv.body, model=admission.model, profile=admission.profile,
                                    route="openai", retention=req.get("prompt_cache_retention"))
        conv.adjustments += cached.adjustments
        admission.ctx.stream = conv.stream
        turn = _Turn(request, admission, req, history, conv)
        headers = cached.headers(request.headers)
        call = UpstreamCall("POST", "/v1/messages", orjson.dumps(conv.body), headers, model=admission.model,
                            stream=conv.stream, session=admission.session, forward_key=admission.ctx.forward_key)
        conv.body.clear()
        if conv.stream:
            return await _stream(request, call, turn)
        return await _complete(request, call, turn)


def _converted(
    request: web.Request, admission: Admission, req: dict[str, Any], history: list[dict[str, Any]]
) -> ConvertedRequest:
    strict = request.app[SETTINGS].server.strict
    return convert_responses_request(req, model=admission.model, profile=admission.profile, strict=strict,
                                     history=history)


class _Turn:
    """One request's answer-to-be: its ids, what its response echoes, and what to store once answered."""

    def __init__(
        self,
        request: web.Request,
        admission: Admission,
        req: dict[str, Any],
        history: list[dict[str, Any]],
        conv: ConvertedRequest,
    ) -> None:
        self.request = request
        self.response_id = f"resp_{uuid.uuid4().hex}"
        self.created_at = int(time.time())
        self.model = admission.model
        self.owner = admission.ctx.key
        self.store = req.get("store") is not False and request.app[SETTINGS].responses.store
        self.echo = request_echo(req, conv.body, stored=self.store)
        self.json_tool = conv.json_tool
        self.namespaces = conv.tool_namespaces
        self.history = history
        self.input = _input_items(req.get("input"), self.response_id)
        self.headers = policy_headers(conv)
        self.resumable = resumable(conv.body)

    async def stored(self, response: Mapping[str, Any]) -> None:
        if self.store:
            stored = StoredResponse(self.owner, response, self.history, self.input)
            await self.request.app[RESPONSE_STORE].put(self.response_id, stored)


async def _complete(request: web.Request, call: UpstreamCall, turn: _Turn) -> web.Response:
    ctx = request[CONTEXT]
    async with runtime(request).pool.forward(call, ctx.attempted) as done:
        message = await done.response.json()
        request_id = done.response.headers.get("request-id")
    if not isinstance(message, dict):
        raise StreamProtocolError("upstream answered with JSON that is not a message object")
    message = await resumed_message(request, call, message)
    ctx.usage = message_usage(message)
    response = response_from_message(message, response_id=turn.response_id, created_at=turn.created_at,
                                     model=turn.model, echo=turn.echo, json_tool=turn.json_tool,
                                     namespaces=turn.namespaces)
    await turn.stored(response)
    headers = {**turn.headers, **({"request-id": request_id} if request_id else {})}
    return web.Response(body=orjson.dumps(response), content_type="application/json", headers=headers)


async def _stream(request: web.Request, call: UpstreamCall, turn: _Turn) -> web.StreamResponse:
    ctx = request[CONTEXT]
    async with AsyncExitStack() as stack:
        done = await stack.enter_async_context(runtime(request).pool.forward(call, ctx.attempted))
        if not done.response.is_stream:
            raise UpstreamUnavailable("upstream answered a streamed request with a body that is not a stream")
        request_id = done.response.headers.get("request-id")
        headers = {**turn.headers, **({"request-id": request_id} if request_id else {})}
        converter = FastResponsesConverter(
            response_id=turn.response_id, created_at=turn.created_at, model=turn.model, echo=turn.echo,
            json_tool=turn.json_tool, namespaces=turn.namespaces,
        )
        stream = FastConvertedStream(converter, _encoded_event)

        async def store() -> None:  # before response.completed goes out: a next turn may name it at once
            if converter.response is not None:
                await turn.stored(converter.response)

        # (a turn with server tools may pause: its next rounds are read on)
        source: Source = Resumed(request, done, call, stack) if turn.resumable else done
        return await relay(request, [source], [stream], headers=headers, before_end=store)


def _encoded_event(event: dict[str, Any]) -> bytes:
    return encode_event(event["type"], event)


def _input_items(value: object, response_id: str) -> list[dict[str, Any]]:
    """The request's input as the API's items, as ``input_items`` lists them: a string is one user message,
    each item has an id (the client's own kept), a type, a status, and a message's text is a list of parts."""
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    items = [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
    return [_input_item(item, item_id("input", response_id, n)) for n, item in enumerate(items)]


def _input_item(item: dict[str, Any], new_id: str) -> dict[str, Any]:
    item = {**item, "id": item["id"] if isinstance(item.get("id"), str) else new_id}
    kind = item.setdefault("type", "message")  # (an easy input message has none)
    if kind == "message" and isinstance(item.get("content"), str):
        text = item["content"]
        item["content"] = ([{"type": "output_text", "text": text, "annotations": []}] if item.get("role") == "assistant"
                           else [{"type": "input_text", "text": text}])
    if kind in _ITEMS_WITH_STATUS:
        item.setdefault("status", "completed")
    return item


_ITEMS_WITH_STATUS = frozenset({"message", "function_call", "function_call_output"})


# --- state: previous_response_id, GET, DELETE, input_items ---


async def _history(request: web.Request, previous: object) -> list[dict[str, Any]]:
    """The items ``previous_response_id`` continues from: never silently none."""
    if previous is None:
        return []
    if not isinstance(previous, str) or not previous:
        raise InvalidRequest("previous_response_id: a response id", param="previous_response_id")
    if not request.app[SETTINGS].responses.store:
        raise InvalidRequest("previous_response_id needs stored responses, which this proxy does not keep "
                             "([responses] store = false): send the whole conversation as input",
                             param="previous_response_id")
    stored = await _owned(request, previous)
    if stored is None:
        raise InvalidRequest(f"previous response with id {previous!r} not found (it may have expired)",
                             param="previous_response_id")
    return stored.conversation()


async def _dereference(request: web.Request, items: object) -> None:
    """Each ``item_reference`` in ``input`` replaced by the item it names, read from the stored response that
    holds it (the Vercel AI SDK sends an earlier answer's message so unless ``store`` is false)."""
    if not isinstance(items, list):
        return
    read: dict[str, dict[str, Any]] = {}  # a stored response's items by id, for each one read
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("type") == "item_reference":
            items[index] = await _referenced(request, item.get("id"), f"input[{index}]", read)


async def _referenced(request: web.Request, item: object, where: str, read: dict[str, dict[str, Any]]) -> Any:
    if not request.app[SETTINGS].responses.store:
        raise InvalidRequest(f"{where}: item_reference needs stored responses, which this proxy does not keep "
                             "([responses] store = false): send the item itself", param=f"{where}.type",
                             code="unsupported_parameter")
    response_id = response_of(item) if isinstance(item, str) else None
    if response_id is not None:
        if response_id not in read:
            stored = await _owned(request, response_id)
            kept = [*stored.input, *stored.response.get("output", [])] if stored is not None else []
            read[response_id] = {kept_item.get("id"): kept_item for kept_item in kept}
        if item in read[response_id]:
            return read[response_id][item]
    raise InvalidRequest(f"{where}: no stored item with id {item!r} (it may have expired, or its response "
                         "was made with store false): send the item itself", param=f"{where}.id")


async def _owned(request: web.Request, response_id: str) -> StoredResponse | None:
    """The stored response, if there is one that the caller's key may see."""
    stored = await request.app[RESPONSE_STORE].get(response_id)
    if stored is None or stored.owner != request[CONTEXT].key:
        return None
    return stored


async def _found(request: web.Request) -> StoredResponse:
    authenticate(request)
    response_id = request.match_info["response_id"]
    if not request.app[SETTINGS].responses.store:
        raise NotFound("this proxy does not store responses ([responses] store = false)", param="response_id")
    stored = await _owned(request, response_id)
    if stored is None:
        raise NotFound(f"no response with id {response_id!r} (it may have expired)", param="response_id")
    return stored


async def get_response(request: web.Request) -> web.Response:
    return web.json_response((await _found(request)).response, dumps=_dumps)


async def delete_response(request: web.Request) -> web.Response:
    stored = await _found(request)
    await request.app[RESPONSE_STORE].delete(stored.response["id"])
    return web.json_response({"id": stored.response["id"], "object": "response.deleted", "deleted": True})


async def list_input_items(request: web.Request) -> web.Response:
    """``GET /v1/responses/{id}/input_items``: the input items of that response, newest first by default
    (``order``, ``limit`` 1..100, ``after``), as the spec's list object."""
    stored = await _found(request)
    items = [*stored.history, *stored.input]
    order, limit, after = _list_params(request)
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [item.get("id") for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return web.json_response({
        "object": "list", "data": page, "first_id": page[0].get("id") if page else None,
        "last_id": page[-1].get("id") if page else None, "has_more": len(items) > limit,
    }, dumps=_dumps)


def _list_params(request: web.Request) -> tuple[str, int, str | None]:
    order = request.query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("order: 'asc' or 'desc'", param="order")
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        raise InvalidRequest("limit: a number from 1 to 100", param="limit") from None
    if not 1 <= limit <= 100:
        raise InvalidRequest("limit: a number from 1 to 100", param="limit")
    return order, limit, request.query.get("after")


async def input_tokens(request: web.Request) -> web.Response:
    """``POST /v1/responses/input_tokens``: the request as it would go upstream, counted by the upstream's
    ``count_tokens``."""
    async with admit(request, "responses", session_from=_session_from) as admission:
        req = admission.take_body()
        history = await _history(request, req.get("previous_response_id"))
        await _dereference(request, req.get("input"))
        conv = _converted(request, admission, req, history)
        body = {k: v for k, v in conv.body.items() if k in _COUNTED}
        call = UpstreamCall("POST", "/v1/messages/count_tokens", orjson.dumps(body), request.headers,
                            model=admission.model, forward_key=admission.ctx.forward_key)
        async with runtime(request).pool.forward(call, admission.ctx.attempted) as done:
            counted = await done.response.json()
    tokens = counted.get("input_tokens") if isinstance(counted, dict) else None
    if type(tokens) is not int:
        raise UpstreamUnavailable("upstream's count_tokens answered without input_tokens")
    return web.json_response({"object": "response.input_tokens", "input_tokens": tokens})


# What the Claude count_tokens endpoint takes of a Messages body.
_COUNTED = ("model", "messages", "system", "tools", "tool_choice", "thinking", "output_config")


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
