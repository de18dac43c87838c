"""The benchmark's Responses route: its request bodies, the passthrough's ``/v1/responses`` (against the fake
upstream, as in the benchmark), and its rows in the verdicts, from made-up samples (nothing timed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
import pytest
from aiohttp.test_utils import TestServer

from bench import analysis, passthrough, scenarios
from bench.loadgen import RunResult
from bench.runner import Sample
from bench.upstream import MESSAGE, FakeUpstream
from translator.sse import SSEDecoder

RESPONSES = scenarios.RESPONSES
TAIL = 64  # what the load generator keeps of an answer to check it (bench/loadgen.py)


@pytest.mark.parametrize("deltas", [0, 20, 500])
def test_a_responses_body_asks_for_deltas_as_max_output_tokens_and_is_not_stored(deltas: int) -> None:
    body = orjson.loads(scenarios.simple_bodies(deltas)[RESPONSES])
    assert body["input"] == "Say hello in one short sentence."
    assert body["max_output_tokens"] == (deltas or 64)
    assert body["store"] is False
    assert body.get("stream", False) is (deltas > 0)


def test_the_responses_history_has_the_same_conversation_as_items() -> None:
    bodies = scenarios.history_bodies()
    body, claude = orjson.loads(bodies[RESPONSES]), orjson.loads(bodies[scenarios.CLAUDE])
    items = body["input"]
    assert len(items) == len(claude["messages"]) == 201
    assert [item.get("type", "message") for item in items[:5]] == [
        "message", "function_call", "function_call_output", "message", "message"]
    assert items[1]["call_id"] == items[2]["call_id"] == claude["messages"][1]["content"][0]["id"]
    assert orjson.loads(items[1]["arguments"]) == claude["messages"][1]["content"][0]["input"]
    assert body["instructions"] == claude["system"]
    assert [t["name"] for t in body["tools"]] == [t["name"] for t in claude["tools"]]
    assert body["tools"][0]["type"] == "function" and "parameters" in body["tools"][0]
    assert body["store"] is False and "stream" not in body


def test_the_passthrough_wraps_the_input_and_asks_the_upstream_for_max_output_tokens_deltas() -> None:
    req = orjson.loads(scenarios.simple_bodies(20)[RESPONSES])
    body = orjson.loads(passthrough.responses_claude_body(req))
    assert body["messages"] == [{"role": "user", "content": "Say hello in one short sentence."}]
    assert body["max_tokens"] == 20  # the number of text deltas the fake upstream sends
    assert body["stream"] is True
    items = orjson.loads(scenarios.history_bodies()[RESPONSES])
    assert orjson.loads(passthrough.responses_claude_body(items))["messages"] == items["input"]


def test_the_passthroughs_answers_end_as_the_benchmark_expects() -> None:
    answer = passthrough.response(orjson.loads(MESSAGE))
    assert orjson.loads(answer)["output"][0]["content"][0]["text"].startswith("Hello!")
    assert orjson.loads(answer)["usage"] == {"input_tokens": 12, "output_tokens": 16, "total_tokens": 28}
    assert scenarios.EXPECT[(RESPONSES, False)] in answer[-TAIL:]
    assert scenarios.EXPECT[(RESPONSES, True)] in passthrough.completed_event()[-TAIL:]


async def test_the_passthrough_relays_a_stream_with_its_deltas_renamed_and_a_completed_event(
    aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    upstream = await aiohttp_server(FakeUpstream(1, 1.0, 60.0).app())
    server = await aiohttp_server(passthrough.create_app(str(upstream.make_url(""))))
    async with server.app[passthrough.SESSION].post(server.make_url("/v1/responses"),
                                                    data=scenarios.simple_bodies(3)[RESPONSES]) as resp:
        assert resp.status == 200
        raw = await resp.read()
    assert scenarios.EXPECT[(RESPONSES, True)] in raw[-TAIL:]
    names = [e.event for e in SSEDecoder().feed(raw)]
    assert names == ["message_start", "content_block_start", "ping", *["response.output_text.delta"] * 3,
                     "content_block_stop", "message_delta", "message_stop", "response.completed"]
    async with server.app[passthrough.SESSION].post(server.make_url("/v1/responses"),
                                                    data=scenarios.simple_bodies(0)[RESPONSES]) as resp:
        assert resp.status == 200
        assert orjson.loads(await resp.read())["object"] == "response"


def _sample(scenario: str, target: str, cpu_us: float, latency_ms: float) -> Sample:
    result = RunResult(latencies=[latency_ms / 1e3] * 100, elapsed=1.0)
    return Sample(scenario, target, 0, result, cpu_us * 100 / 1e6, 0, 50 * 1024)


def test_the_responses_route_has_the_same_throughput_budgets_and_no_memory_ones() -> None:
    per_event = {"proxy-responses": 20.0, "passthrough-responses": 10.0}  # us per stream event
    samples = []
    for c in (1, 64):
        for label, events in (("json", 0), ("stream20", 20), ("stream500", 500)):
            samples += [_sample(f"{label}-c{c}", "direct", 100, 1.0),
                        _sample(f"{label}-c{c}", "proxy-responses", 300 + per_event["proxy-responses"] * events, 2.0),
                        _sample(f"{label}-c{c}", "passthrough-responses",
                                200 + per_event["passthrough-responses"] * events, 2.0)]
    stats = analysis.scenario_stats(samples)
    mem = analysis.memory([], [])
    verdicts = {(v.target, v.detail): v for v in analysis.verdicts(scenarios.plan(quick=True), stats, mem)}
    cpu = verdicts[("CPU/request <= 1.5x passthrough", "responses json (worst: c1)")]
    assert cpu.value == pytest.approx(1.5) and cpu.met
    stream500 = verdicts[("CPU/request <= 1.5x passthrough", "responses stream500 (worst: c1)")]
    assert stream500.value == pytest.approx(10_300 / 5_200)
    assert not stream500.met
    event = verdicts[("CPU per stream event <= 25 us", "responses (worst: c1)")]
    assert event.value == pytest.approx(20.0) and event.met
    p99 = verdicts[("p99 added latency at c64 <= 1.5x passthrough", "responses json")]
    assert p99.value == pytest.approx(1.0) and p99.met
    assert not [key for key in verdicts if "responses" in key[1] and ("memory" in key[0] or "10 MB" in key[0])]
