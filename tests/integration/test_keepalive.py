"""Upstream connections are kept across streamed requests, on both routes.

A stream is over for the client at ``message_stop``; the upstream's body ends a moment later (the chunked
encoding's last chunk, often in a packet of its own). The proxy answers the client first, then reads that
end, so that the connection goes back to the pool: closing it would cost the next request a new connection
and, to a real upstream, a new TLS handshake. An upstream that does not end its body soon, or keeps on
sending after ``message_stop``, has its connection closed instead. Error answers are read to their end
too (within bounds): their message reaches the client whole, and the retry reuses the connection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.fakes import FakeUpstream, Reply
from translator import upstream
from translator.server.state import RUNTIME

START = {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                              "model": "claude-x", "content": [], "stop_reason": None,
                                              "usage": {"input_tokens": 3, "output_tokens": 1}}}
TEXT_START = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
DELTA = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}
BLOCK_STOP = {"type": "content_block_stop", "index": 0}
MESSAGE_DELTA = {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                 "usage": {"output_tokens": 2}}
STOP = {"type": "message_stop"}
STREAM = b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps(e))
                  for e in (START, TEXT_START, DELTA, BLOCK_STOP, MESSAGE_DELTA, STOP))

ROUTES = {
    "openai": ("/v1/chat/completions",
               {"model": "claude-x", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
               b"data: [DONE]\n\n"),
    "claude": ("/v1/messages",
               {"model": "claude-x", "max_tokens": 9, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
               b"event: message_stop\n"),
}


async def _streamed(proxy: TestClient, route: str) -> bytes:
    path, body, ending = ROUTES[route]
    async with asyncio.timeout(5):
        resp = await proxy.post(path, json=body)
        assert resp.status == 200
        answer = await resp.read()  # the whole answer, its last chunk frame included
    assert ending in answer and b"error" not in answer
    return answer


async def _handled(server_log: Callable[[], str], count: int) -> None:
    """Until the proxy has logged ``count`` requests: its handlers have returned."""
    async with asyncio.timeout(5):
        while sum(orjson.loads(x).get("event") == "request" for x in server_log().splitlines()) < count:
            await asyncio.sleep(0.005)


async def _next_on_the_same_connection(proxy: TestClient, fake_upstream: FakeUpstream, route: str) -> bool:
    """Another stream; whether the upstream saw it come on the connection of the one before."""
    fake_upstream.sse(STREAM)
    await _streamed(proxy, route)
    first, second = fake_upstream.requests[-2:]
    return first.peer == second.peer


def _draining(proxy: TestClient) -> set[asyncio.Task[None]]:
    """The tasks still waiting for a stream's body to end (the connections not yet released or closed)."""
    return proxy.server.app[RUNTIME].current.pool.upstreams[0].drains


async def _drained(proxy: TestClient) -> None:
    async with asyncio.timeout(5):
        while _draining(proxy):
            await asyncio.sleep(0.005)


@pytest.mark.parametrize("route", ROUTES)
async def test_the_client_has_its_answer_before_the_upstream_body_ends_and_the_connection_is_kept(
    proxy: TestClient, fake_upstream: FakeUpstream, server_log: Callable[[], str], route: str
) -> None:
    end = asyncio.Event()
    fake_upstream.sse(STREAM, end=end)
    await _streamed(proxy, route)  # answered in full while the upstream still holds its body's end
    await _handled(server_log, 1)  # and the handler is done: a task waits for the end
    assert len(_draining(proxy)) == 1
    end.set()
    await _drained(proxy)
    assert await _next_on_the_same_connection(proxy, fake_upstream, route)  # one connection, reused


@pytest.mark.parametrize("route", ROUTES)
async def test_an_upstream_that_never_ends_its_body_has_its_connection_closed(
    proxy: TestClient, fake_upstream: FakeUpstream, route: str, monkeypatch: Any
) -> None:
    monkeypatch.setattr(upstream, "FINISH_TIMEOUT", 0.05)
    fake_upstream.sse(STREAM, end=asyncio.Event())  # never set
    await _streamed(proxy, route)
    await _drained(proxy)  # after FINISH_TIMEOUT, not never
    assert not await _next_on_the_same_connection(proxy, fake_upstream, route)


@pytest.mark.parametrize("route", ROUTES)
async def test_an_upstream_that_goes_on_after_message_stop_has_its_connection_closed(
    proxy: TestClient, fake_upstream: FakeUpstream, route: str, monkeypatch: Any
) -> None:
    monkeypatch.setattr(upstream, "MAX_TRAILING", 100)
    end = asyncio.Event()
    trailing = b": keep-alive\n\n" * 20  # 300 bytes after message_stop, none of them sent on
    fake_upstream.sse(STREAM + trailing, chunk_size=len(STREAM), end=end)
    answer = await _streamed(proxy, route)
    assert b"keep-alive" not in answer
    await _drained(proxy)  # without waiting for the body's end
    end.set()
    assert not await _next_on_the_same_connection(proxy, fake_upstream, route)


@pytest.mark.parametrize("route", ROUTES)
async def test_a_stream_whose_end_came_with_its_last_event_keeps_its_connection(
    proxy: TestClient, fake_upstream: FakeUpstream, server_log: Callable[[], str], route: str
) -> None:
    for count in (1, 2, 3):
        fake_upstream.sse(STREAM)
        await _streamed(proxy, route)
        await _handled(server_log, count)
    assert len({r.peer for r in fake_upstream.requests}) == 1


# --- error answers: read to their end, so that the message is whole and the connection kept ---

RATE_LIMITED = {"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens "
                                            "has exceeded your per-minute rate limit " + "x" * 200}}
ONE_ATTEMPT = {"routing": {"max_attempts": 1}}


def _error_reply(payload: dict[str, Any], status: int, *, delay: float) -> Reply:
    raw = orjson.dumps(payload)
    return Reply(status, b"", "application/json", chunks=[raw[:40], raw[40:]], delay=delay)


async def test_an_error_body_in_two_reads_reaches_the_client_whole(make_proxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(**ONE_ATTEMPT)
    fake_upstream.replies.append(_error_reply(RATE_LIMITED, 429, delay=0.05))
    resp = await proxy.post("/v1/messages", json=ROUTES["claude"][1] | {"stream": False})
    assert resp.status == 429
    assert await resp.json() == RATE_LIMITED
    fake_upstream.replies.append(_error_reply(RATE_LIMITED, 429, delay=0.05))
    resp = await proxy.post("/v1/chat/completions", json=ROUTES["openai"][1] | {"stream": False})
    assert resp.status == 429
    assert (await resp.json())["error"]["message"] == RATE_LIMITED["error"]["message"]


async def test_an_error_body_that_stalls_is_answered_with_what_came(
    make_proxy, fake_upstream: FakeUpstream, monkeypatch: Any
) -> None:
    monkeypatch.setattr(upstream, "ERROR_BODY_TIMEOUT", 0.05)
    proxy = await make_proxy(**ONE_ATTEMPT)
    fake_upstream.replies.append(_error_reply(RATE_LIMITED, 529, delay=5))
    async with asyncio.timeout(2):
        resp = await proxy.post("/v1/messages", json=ROUTES["claude"][1] | {"stream": False})
        assert resp.status == 529
        error = (await resp.json())["error"]
    assert error["type"] == "overloaded_error"
    assert error["message"].startswith('upstream answered HTTP 529 (application/json): {"type":"error"')


@pytest.mark.parametrize("route", ROUTES)
async def test_the_connection_of_an_error_answer_is_kept_for_the_retry(
    proxy: TestClient, fake_upstream: FakeUpstream, route: str
) -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded " + "x" * 100}}
    fake_upstream.replies.append(_error_reply(overloaded, 529, delay=0.05))  # its body in two reads
    fake_upstream.sse(STREAM)
    await _streamed(proxy, route)  # retried after the 529, on the same connection
    first, second = fake_upstream.requests
    assert first.peer == second.peer


# --- the wait for a body's end is nobody's: not the client's, not the handler's ---


@pytest.mark.parametrize("route", ROUTES)
async def test_the_clients_next_request_does_not_wait_for_the_upstream_bodys_end(
    proxy: TestClient, fake_upstream: FakeUpstream, route: str, monkeypatch: Any
) -> None:
    monkeypatch.setattr(upstream, "FINISH_TIMEOUT", 30)
    end = asyncio.Event()
    fake_upstream.sse(STREAM, end=end)
    await _streamed(proxy, route)
    fake_upstream.sse(STREAM)
    await _streamed(proxy, route)  # on the same client connection, within _streamed's 5 s, while the end is held
    assert len(_draining(proxy)) == 1
    end.set()
    await _drained(proxy)


async def test_a_client_that_leaves_once_answered_leaves_a_finished_request(
    proxy: TestClient, fake_upstream: FakeUpstream, server_log: Callable[[], str]
) -> None:
    end = asyncio.Event()
    fake_upstream.sse(STREAM, end=end)
    path, body, _ = ROUTES["openai"]
    resp = await proxy.post(path, json=body)
    assert (await resp.read()).endswith(b"data: [DONE]\n\n")
    resp.close()  # the client's connection too
    await _handled(server_log, 1)
    (line,) = [x for x in map(orjson.loads, server_log().splitlines()) if x.get("event") == "request"]
    assert line["status"] == 200 and "cancelled" not in line
    end.set()
    await _drained(proxy)


async def test_n_choices_are_answered_at_once_and_their_ends_awaited_together(
    proxy: TestClient, fake_upstream: FakeUpstream, server_log: Callable[[], str], monkeypatch: Any
) -> None:
    monkeypatch.setattr(upstream, "FINISH_TIMEOUT", 30)
    ends = [asyncio.Event(), asyncio.Event()]
    for end in ends:
        fake_upstream.sse(STREAM, end=end)
    path, body, _ = ROUTES["openai"]
    async with asyncio.timeout(5):
        resp = await proxy.post(path, json=body | {"n": 2})
        assert (await resp.read()).endswith(b"data: [DONE]\n\n")
        await _handled(server_log, 1)
    assert len(_draining(proxy)) == 2
    for end in ends:
        end.set()
    await _drained(proxy)


async def test_shutdown_stops_the_waits_for_a_bodys_end(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.sse(STREAM, end=asyncio.Event())  # never set
    await _streamed(proxy, "claude")
    (task,) = _draining(proxy)
    async with asyncio.timeout(5):
        await proxy.close()  # the app's cleanup
    assert task.cancelled() and not _draining(proxy)
