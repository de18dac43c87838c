"""``/v1/responses`` through the real server against the fake upstream: the request upstream, the answer
back (JSON and SSE), stored responses (previous_response_id, GET, DELETE, input_items, per-key ownership,
the store off), input_tokens, and the gateway's keys, limits and log line on the new route."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import CLIENT_KEYS
from tests.fakes import FakeUpstream
from translator.gateway.keys import hash_key

ALICE = "sk-tr-alice-responses-0123456789"
BOB = "sk-tr-bob-responses-0123456789"
CLIENT_KEYS.update({ALICE, BOB})
KEYS = [{"name": "alice", "hash": hash_key(ALICE), "models": ["claude-*"]},
        {"name": "bob", "hash": hash_key(BOB), "models": ["claude-*"]}]

MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
           "content": [{"type": "text", "text": "Hello there"}], "stop_reason": "end_turn", "stop_sequence": None,
           "usage": {"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 3}}
STREAM = [
    {"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None,
                                          "usage": {"input_tokens": 5, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " there"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
     "usage": {"output_tokens": 2}},
    {"type": "message_stop"},
]


def sse_events(body: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in body.split(b"\n") if line.startswith(b"data: ")]


async def test_a_string_input_is_answered_with_a_response_object(proxy, fake_upstream: FakeUpstream) -> None:
    fake_upstream.json(MESSAGE, headers={"request-id": "req_up_9"})
    resp = await proxy.post("/v1/responses", json={"model": "claude-x", "input": "Hi", "store": False})
    assert resp.status == 200
    assert resp.headers["request-id"] == "req_up_9"
    body = await resp.json()
    assert body["object"] == "response" and body["id"].startswith("resp_") and body["status"] == "completed"
    assert [item["type"] for item in body["output"]] == ["message"]
    assert body["output"][0]["content"][0]["text"] == "Hello there"
    assert body["usage"]["input_tokens"] == 8 and body["usage"]["input_tokens_details"]["cached_tokens"] == 3
    sent = fake_upstream.last.json
    assert fake_upstream.last.path == "/v1/messages"
    assert sent["model"] == "claude-x"
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    assert "store" not in sent and "input" not in sent


async def test_without_v1_too(proxy, fake_upstream: FakeUpstream) -> None:
    fake_upstream.json(MESSAGE)
    resp = await proxy.post("/responses", json={"model": "claude-x", "input": "Hi"})
    assert resp.status == 200


async def test_the_stream_runs_in_order_and_ends_completed(proxy, fake_upstream: FakeUpstream) -> None:
    fake_upstream.events(STREAM, chunk_size=7)
    resp = await proxy.post("/v1/responses", json={"model": "claude-x", "input": "Hi", "stream": True})
    assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
    events = sse_events(await resp.read())
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert deltas == ["Hello", " there"]
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Hello there"


async def test_an_upstream_error_before_the_first_byte_is_an_http_error(proxy, fake_upstream: FakeUpstream) -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    for _ in range(3):
        fake_upstream.json(overloaded, status=529)
    resp = await proxy.post("/v1/responses", json={"model": "claude-x", "input": "Hi", "stream": True})
    assert resp.status == 503
    assert (await resp.json())["error"]["message"] == "Overloaded"


async def test_an_error_midstream_ends_in_response_failed(proxy, fake_upstream: FakeUpstream) -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded midway"}}
    fake_upstream.events([*STREAM[:3], error])
    resp = await proxy.post("/v1/responses", json={"model": "claude-x", "input": "Hi", "stream": True})
    events = sse_events(await resp.read())
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["message"] == "Overloaded midway"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


@pytest.mark.parametrize("body,param", [
    ({"model": "claude-x", "input": 42}, "input"),
    ({"model": "claude-x", "input": [{"type": "function_call_output"}]}, "input"),
    ({"input": "hi"}, "model"),
])
async def test_malformed_input_is_a_400_naming_its_param(
    proxy, fake_upstream: FakeUpstream, server_log, body, param
) -> None:
    resp = await proxy.post("/v1/responses", json=body)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["type"] == "invalid_request_error" and (error["param"] or "").startswith(param)
    assert fake_upstream.requests == []
    # the log line says what the client was told, place and all, and no shorter detail beside it
    line = [orjson.loads(x) for x in server_log().splitlines() if '"request"' in x][-1]
    assert (line["status"], line["error"], "error_detail" in line) == (400, "invalid_request_error", False)


# --- stored responses ---


async def test_previous_response_id_continues_the_stored_conversation(proxy, fake_upstream: FakeUpstream) -> None:
    fake_upstream.json(MESSAGE)
    first = await (await proxy.post("/v1/responses", json={"model": "claude-x", "input": "Hi"})).json()
    fake_upstream.json({**MESSAGE, "content": [{"type": "text", "text": "Fine"}]})
    resp = await proxy.post("/v1/responses", json={"model": "claude-x", "input": "How are you?",
                                                  "previous_response_id": first["id"]})
    assert resp.status == 200
    sent = fake_upstream.last.json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert orjson.dumps(sent[1]).count(b"Hello there") == 1
    assert orjson.dumps(sent[2]).count(b"How are you?") == 1


async def test_get_delete_and_input_items(proxy, fake_upstream: FakeUpstream) -> None:
    fake_upstream.json(MESSAGE)
    made = await (await proxy.post("/v1/responses", json={"model": "claude-x", "input": "Hi"})).json()
    got = await proxy.get(f"/v1/responses/{made['id']}")
    assert got.status == 200 and await got.json() == made
    items = await (await proxy.get(f"/v1/responses/{made['id']}/input_items")).json()
    assert items["object"] == "list" and items["has_more"] is False
    assert [i["role"] for i in items["data"]] == ["user"] and items["first_id"] == items["data"][0]["id"]
    deleted = await proxy.delete(f"/v1/responses/{made['id']}")
    assert await deleted.json() == {"id": made["id"], "object": "response.deleted", "deleted": True}
    gone = await proxy.get(f"/v1/responses/{made['id']}")
    assert gone.status == 404 and (await gone.json())["error"]["type"] == "invalid_request_error"
    again = await proxy.post("/v1/responses", json={"model": "claude-x", "input": "x",
                                                   "previous_response_id": made["id"]})
    assert again.status == 400 and (await again.json())["error"]["param"] == "previous_response_id"


async def test_store_false_keeps_nothing(proxy, fake_upstream: FakeUpstream) -> None:
    fake_upstream.json(MESSAGE)
    made = await (await proxy.post("/v1/responses", json={"model": "claude-x", "input": "Hi", "store": False})).json()
    assert (await proxy.get(f"/v1/responses/{made['id']}")).status == 404


async def test_a_streamed_response_is_stored_too(proxy, fake_upstream: FakeUpstream) -> None:
    fake_upstream.events(STREAM)
    events = sse_events(await (await proxy.post("/v1/responses", json={"model": "claude-x", "input": "Hi",
                                                                        "stream": True})).read())
    final = events[-1]["response"]
    got = await (await proxy.get(f"/v1/responses/{final['id']}")).json()
    assert got == final


async def test_with_the_store_off_previous_response_id_is_refused(make_proxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(responses={"store": False})
    resp = await proxy.post("/v1/responses", json={"model": "claude-x", "input": "x",
                                                  "previous_response_id": "resp_123"})
    assert resp.status == 400
    assert "store = false" in (await resp.json())["error"]["message"]
    assert (await proxy.get("/v1/responses/resp_123")).status == 404
    assert fake_upstream.requests == []


async def test_a_stored_response_belongs_to_its_key(make_proxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(keys=KEYS, upstream={"api_key": "sk-upstream-responses"})
    fake_upstream.json(MESSAGE)
    alice = {"Authorization": f"Bearer {ALICE}"}
    bob = {"Authorization": f"Bearer {BOB}"}
    made = await (await proxy.post("/v1/responses", json={"model": "claude-x", "input": "Hi"}, headers=alice)).json()
    assert (await proxy.get(f"/v1/responses/{made['id']}", headers=alice)).status == 200
    assert (await proxy.get(f"/v1/responses/{made['id']}", headers=bob)).status == 404
    assert (await proxy.delete(f"/v1/responses/{made['id']}", headers=bob)).status == 404
    stolen = await proxy.post("/v1/responses", json={"model": "claude-x", "input": "x",
                                                    "previous_response_id": made["id"]}, headers=bob)
    assert stolen.status == 400
    assert (await proxy.get(f"/v1/responses/{made['id']}")).status == 401


TOOL_TURN = {**MESSAGE, "content": [
    {"type": "text", "text": "Let me look."},
    {"type": "tool_use", "id": "toolu_7", "name": "get_weather", "input": {"city": "Paris"}}],
    "stop_reason": "tool_use"}
WEATHER_FN = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {
    "city": {"type": "string"}}}}


async def test_an_item_reference_is_the_stored_item_it_names(proxy, fake_upstream: FakeUpstream) -> None:
    """The Vercel AI SDK's tool loop (unless store is false): the earlier answer's message comes back as an
    item_reference, its function call and the output inline."""
    fake_upstream.json(TOOL_TURN)
    first = await (await proxy.post("/v1/responses", json={"model": "claude-x", "input": "Weather?",
                                                            "tools": [WEATHER_FN]})).json()
    message, call = first["output"]
    assert (message["type"], call["type"]) == ("message", "function_call")
    fake_upstream.json({**MESSAGE, "content": [{"type": "text", "text": "Sunny."}]})
    resp = await proxy.post("/v1/responses", json={"model": "claude-x", "tools": [WEATHER_FN], "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
        {"type": "item_reference", "id": message["id"]},
        {"type": "function_call", "call_id": call["call_id"], "name": "get_weather", "arguments": call["arguments"]},
        {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"},
    ]})
    assert resp.status == 200
    assert fake_upstream.last.json["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_7", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_7", "content": "sunny"}]},
    ]
    second = (await resp.json())["id"]
    listed = await (await proxy.get(f"/v1/responses/{second}/input_items?order=asc")).json()
    assert listed["data"][1] == message  # the item itself, kept as the input it stood for
    fake_upstream.json({"input_tokens": 17})
    counted = await proxy.post("/v1/responses/input_tokens", json={"model": "claude-x", "input": [
        {"role": "user", "content": "Weather?"}, {"type": "item_reference", "id": call["id"]}], "tools": [WEATHER_FN]})
    assert (counted.status, (await counted.json())["input_tokens"]) == (200, 17)
    assert fake_upstream.last.json["messages"][1] == {"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_7", "name": "get_weather", "input": {"city": "Paris"}}]}


async def test_an_item_reference_to_nothing_stored_is_a_400_naming_it(make_proxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(keys=KEYS, upstream={"api_key": "sk-upstream-responses"})
    alice = {"Authorization": f"Bearer {ALICE}"}
    fake_upstream.json(MESSAGE)
    made = await (await proxy.post("/v1/responses", json={"model": "claude-x", "input": "Hi"}, headers=alice)).json()
    mine = made["output"][0]["id"]
    unknown = f"msg_{'0' * 32}_0"
    for key, item_id in [(ALICE, unknown), (ALICE, "msg_abc"), (ALICE, mine.replace("_0", "_5")), (BOB, mine)]:
        resp = await proxy.post("/v1/responses", headers={"Authorization": f"Bearer {key}"}, json={
            "model": "claude-x", "input": ["x", {"type": "item_reference", "id": item_id}][1:]})
        assert resp.status == 400
        assert (await resp.json())["error"] == {
            "message": f"input[0]: no stored item with id {item_id!r} (it may have expired, or its response was "
                       "made with store false): send the item itself",
            "type": "invalid_request_error", "param": "input[0].id", "code": None}
    assert len(fake_upstream.requests) == 1


async def test_with_the_store_off_an_item_reference_is_refused(make_proxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(responses={"store": False})
    resp = await proxy.post("/v1/responses", json={"model": "claude-x", "input": [
        {"role": "user", "content": "Hi"}, {"type": "item_reference", "id": f"msg_{'a' * 32}_0"}]})
    assert resp.status == 400
    assert (await resp.json())["error"] == {
        "message": "input[1]: item_reference needs stored responses, which this proxy does not keep ([responses] "
                   "store = false): send the item itself",
        "type": "invalid_request_error", "param": "input[1].type", "code": "unsupported_parameter"}
    assert fake_upstream.requests == []


async def test_input_tokens_asks_count_tokens(proxy, fake_upstream: FakeUpstream) -> None:
    fake_upstream.json({"input_tokens": 17})
    resp = await proxy.post("/v1/responses/input_tokens", json={"model": "claude-x", "input": "Hi",
                                                               "instructions": "Be brief", "max_output_tokens": 9})
    assert resp.status == 200
    assert await resp.json() == {"object": "response.input_tokens", "input_tokens": 17}
    assert fake_upstream.last.path == "/v1/messages/count_tokens"
    sent = fake_upstream.last.json
    assert set(sent) <= {"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config"}
    assert sent["model"] == "claude-x" and "max_tokens" not in sent


async def test_the_log_line_and_metrics_name_the_route(proxy, fake_upstream: FakeUpstream, server_log) -> None:
    fake_upstream.json(MESSAGE)
    await proxy.post("/v1/responses", json={"model": "claude-x", "input": "Hi"})
    line = [orjson.loads(x) for x in server_log().splitlines() if '"request"' in x][-1]
    assert line["route"] == "responses" and line["status"] == 200 and line["model"] == "claude-x"
    assert line["usage"] == {"input_tokens": 8, "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0},
                             "output_tokens": 2, "output_tokens_details": {"reasoning_tokens": 0},
                             "total_tokens": 10}
    metrics = await (await proxy.get("/metrics")).text()
    assert 'translator_requests_total{model="claude-x",route="responses",status="200",upstream="default"} 1.0' \
        in metrics


NAMESPACE_TOOLS = [
    {"type": "function", "name": "exec_command", "parameters": {"type": "object", "properties": {}}},
    {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.",
     "tools": [{"type": "function", "name": "spawn_agent", "description": "Spawn one.",
                "parameters": {"type": "object", "properties": {"task": {"type": "string"}}}}]},
]
SPAWN = {"type": "tool_use", "id": "toolu_9", "name": "spawn_agent", "input": {"task": "look"}}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_call_to_a_namespace_function_comes_back_with_its_namespace(
    proxy, fake_upstream: FakeUpstream, stream: bool
) -> None:
    # Codex finds the tool to run by namespace and name: without the namespace it answers "unsupported call"
    message = {**MESSAGE, "content": [SPAWN], "stop_reason": "tool_use"}
    if stream:
        fake_upstream.events([
            {"type": "message_start", "message": {**message, "content": [], "stop_reason": None}},
            {"type": "content_block_start", "index": 0, "content_block": {**SPAWN, "input": {}}},
            {"type": "content_block_delta", "index": 0,
             "delta": {"type": "input_json_delta", "partial_json": '{"task": "look"}'}},
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 4}},
            {"type": "message_stop"},
        ])
    else:
        fake_upstream.json(message)
    resp = await proxy.post("/v1/responses", json={"model": "claude-x", "input": "go", "tools": NAMESPACE_TOOLS,
                                                  "stream": stream, "store": False})
    assert [t["name"] for t in fake_upstream.last.json["tools"]] == ["exec_command", "spawn_agent"]
    if stream:
        events = sse_events(await resp.read())
        done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
        output = events[-1]["response"]["output"]
        assert done == output
    else:
        output = (await resp.json())["output"]
    assert output == [{"id": output[0]["id"], "type": "function_call", "status": "completed",
                       "arguments": '{"task":"look"}', "call_id": "toolu_9", "name": "spawn_agent",
                       "namespace": "multi_agent_v1"}]


async def test_a_streamed_response_is_stored_before_its_last_event_goes_out(proxy, fake_upstream: FakeUpstream) -> None:
    """A client that continues at once (previous_response_id as soon as response.completed came) must find it,
    even when the store takes its time (Redis): the stream ends only once it is stored."""
    from translator.server.state import RESPONSE_STORE

    store = proxy.app[RESPONSE_STORE]
    put = store.put

    async def slow_put(response_id: str, stored: Any) -> None:
        await asyncio.sleep(0.3)
        await put(response_id, stored)

    store.put = slow_put
    fake_upstream.events(STREAM)
    resp = await proxy.post("/v1/responses", json={"model": "claude-x", "input": "Hi", "stream": True})
    async for line in resp.content:  # as a client reads it: event by event, not waiting for the end
        if line.startswith(b"data: ") and (event := orjson.loads(line[6:]))["type"] == "response.completed":
            break
    url = proxy.make_url(f"/v1/responses/{event['response']['id']}")
    async with aiohttp.ClientSession() as other, other.get(url) as got:  # (another connection, another client)
        assert got.status == 200
    resp.release()
