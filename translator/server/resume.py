"""Turns Claude paused (``pause_turn``), resumed upstream for the OpenAI-shape routes (``convert.pause``).

``resumed_message``: a non-streamed answer, asked again while it is paused, its rounds joined.
``Resumed``: a streamed answer's source for the relay, which reads the next round's stream when one ends
paused, the rounds joined event by event (``PauseJoiner``). The next round goes through the pool like the
first (failover, the attempts counted in the log line); its failure ends the stream with an error event.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

import orjson
from aiohttp import web

from translator.convert import StreamProtocolError
from translator.convert.fastpath import TextRun
from translator.convert.pause import MAX_ROUNDS, PAUSED, PauseJoiner, joined, resumed_body
from translator.convert.usage import message_usage
from translator.errors import TranslatorError, UpstreamUnavailable
from translator.router import Attempted, UpstreamCall
from translator.server.context import CONTEXT
from translator.server.state import runtime
from translator.server.streaming import event_json
from translator.sse import SSEEvent
from translator.upstream import Upstream


def resumed_call(call: UpstreamCall, content: Sequence[dict[str, Any]]) -> UpstreamCall:
    body = orjson.loads(call.body or b"{}")
    return dataclasses.replace(call, body=orjson.dumps(resumed_body(body, content)))


async def resumed_message(request: web.Request, call: UpstreamCall, message: dict[str, Any]) -> dict[str, Any]:
    """``message``, and while the turn is paused the next rounds', as one message. (Should a round fail, the
    usage of those before it is the request's.)"""
    rounds = [message]
    while message.get("stop_reason") == PAUSED and len(rounds) < MAX_ROUNDS:
        so_far = joined(rounds)
        content = so_far.get("content")
        if not isinstance(content, list) or not content:  # (no blocks to send back: converted as it came)
            break
        request[CONTEXT].usage = message_usage(so_far)
        next_call = resumed_call(call, content)
        async with runtime(request).pool.forward(next_call, request[CONTEXT].attempted) as done:
            message = await done.response.json()
        if not isinstance(message, dict):
            raise StreamProtocolError("upstream answered with JSON that is not a message object")
        rounds.append(message)
    return joined(rounds)


class Resumed:
    """A relay source (``upstream``, ``response``) over the rounds of one streamed turn. Its
    ``stack`` holds the later rounds' responses open until the relay is done."""

    def __init__(self, request: web.Request, first: Attempted, call: UpstreamCall, stack: AsyncExitStack) -> None:
        self._request, self._current, self._call, self._stack = request, first, call, stack
        self._joiner = PauseJoiner()
        self._opening = False  # the next round is being asked for: the pool's timeouts are its

    def rounds_usage(self) -> dict[str, Any] | None:
        """The usage of every round so far, once one has paused (the relay's report prefers it: a stream that
        ends in a later round, or a client that leaves, still counts the earlier rounds)."""
        return self._joiner.usage

    @property
    def upstream(self) -> Upstream:
        return self._current.upstream

    @property
    def response(self) -> Resumed:
        return self

    async def next_events(self, *, runs: bool = False) -> Sequence[SSEEvent | TextRun] | None:
        while True:
            events = await self._current.response.next_events(runs=runs)
            if events is None:
                if not self._joiner.paused:
                    return None
                await self._next_round()
                continue
            joined_events = [out for event in events for out in self._joined(event)]
            if joined_events:
                return joined_events

    def abort(self, error: Exception) -> None:
        if not self._opening:  # (the idle clock: the round being read)
            self._current.response.abort(error)

    def finish(self) -> None:
        self._current.response.finish()

    def _joined(self, event: SSEEvent | TextRun) -> list[SSEEvent | TextRun]:
        if isinstance(event, TextRun):
            return [self._joiner.feed_run(event)]
        if event.event == "ping":
            return [event]
        try:
            payload = event_json(event.data)
            outs = self._joiner.feed(payload)
        except (TranslatorError, TypeError, ValueError, AttributeError):
            return [event]  # a broken event goes on as it came: the converter says what is wrong with it
        return [event if out is payload else SSEEvent(str(out.get("type")), orjson.dumps(out)) for out in outs]

    async def _next_round(self) -> None:
        self._current.response.finish()
        call = resumed_call(self._call, self._joiner.content)
        self._opening = True
        try:
            self._current = await self._stack.enter_async_context(
                runtime(self._request).pool.forward(call, self._request[CONTEXT].attempted))
        finally:
            self._opening = False
        if not self._current.response.is_stream:
            raise UpstreamUnavailable("upstream answered a streamed request with a body that is not a stream")
        self._joiner.next_round()
