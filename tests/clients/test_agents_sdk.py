"""The OpenAI Agents SDK (``openai-agents``, which speaks the Responses API) against the proxy's
``/v1/responses``, in front of the fake upstream: an agent with a ``@function_tool``, run to its final output
with ``Runner.run`` and ``Runner.run_streamed``. The upstream first calls the tool, then answers with text.

Offline: the agent's model is given its own ``AsyncOpenAI`` client (no global default client), and tracing,
which would upload to OpenAI, is off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import openai
import pydantic
import pytest
from aiohttp.test_utils import TestClient

from tests.clients.test_openai_responses import claude, streamed
from tests.fakes import FakeUpstream

agents = pytest.importorskip("agents")
from agents import Agent, ModelSettings, OpenAIResponsesModel, RunConfig, Runner, function_tool  # noqa: E402
from openai.types.shared import Reasoning  # noqa: E402

agents.set_tracing_disabled(True)

MakeProxy = Callable[..., Awaitable[TestClient]]
THINKING = {"type": "thinking", "thinking": "The user wants the weather: call the tool.",
            "signature": "EqMBCkYIBxgCKkBsignatureOfTheThinkingBlock=="}
CALL = {"type": "tool_use", "id": "toolu_01AgentCall", "name": "get_weather", "input": {"city": "Paris"}}
ANSWER = "It is sunny in Paris, 21C."
RUN = RunConfig(tracing_disabled=True)


@pytest.fixture
async def client(make_proxy: MakeProxy) -> AsyncIterator[openai.AsyncOpenAI]:
    proxy = await make_proxy()
    async with openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="sk-test", max_retries=0,
                                  timeout=20) as made:
        yield made


def weather_agent(client: openai.AsyncOpenAI, calls: list[str], model: str = "claude-sonnet-4-5",
                  **settings: Any) -> Any:
    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"sunny in {city}, 21C"

    return Agent(name="forecaster", instructions="Be brief.", tools=[get_weather],
                 model=OpenAIResponsesModel(model=model, openai_client=client),
                 model_settings=ModelSettings(**settings))


def tool_schema() -> dict[str, Any]:
    return {"type": "object", "properties": {"city": {"title": "City", "type": "string"}}, "required": ["city"],
            "title": "get_weather_args", "additionalProperties": False}


async def test_runner_run_calls_the_tool_then_answers(client: openai.AsyncOpenAI, fake_upstream: FakeUpstream) -> None:
    fake_upstream.json(claude(CALL, stop="tool_use"))
    fake_upstream.json(claude({"type": "text", "text": ANSWER}))
    calls: list[str] = []
    result = await Runner.run(weather_agent(client, calls), "What is the weather in Paris?", run_config=RUN)
    assert result.final_output == ANSWER
    assert calls == ["Paris"]
    assert [item.type for item in result.new_items] == [
        "tool_call_item", "tool_call_output_item", "message_output_item"]
    assert result.new_items[0].raw_item.call_id == "toolu_01AgentCall"
    assert result.new_items[1].output == "sunny in Paris, 21C"
    assert result.last_response_id is not None and result.last_response_id.startswith("resp_")

    first, second = (request.json for request in fake_upstream.requests)
    assert first["system"] == [{"type": "text", "text": "Be brief."}]
    assert first["tools"] == [{"name": "get_weather", "description": "The weather in a city.", "strict": True,
                               "input_schema": tool_schema()}]
    assert first["messages"] == [{"role": "user", "content": [{"type": "text",
                                                               "text": "What is the weather in Paris?"}]}]
    assert second["messages"][1:] == [
        {"role": "assistant", "content": [CALL]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01AgentCall",
                                      "content": "sunny in Paris, 21C"}]},
    ]
    assert "stream" not in first and "stream" not in second


async def test_runner_run_streamed_with_reasoning(client: openai.AsyncOpenAI, fake_upstream: FakeUpstream) -> None:
    """Streamed, thinking on: the thinking block goes out as a reasoning item and the SDK sends it back in the
    next turn's input, ahead of the call, as Claude requires."""
    fake_upstream.events(streamed(claude(THINKING, CALL, stop="tool_use")))
    fake_upstream.events(streamed(claude({"type": "text", "text": ANSWER})))
    calls: list[str] = []
    agent = weather_agent(client, calls, reasoning=Reasoning(effort="low"))
    result = Runner.run_streamed(agent, "What is the weather in Paris?", run_config=RUN)
    raw: list[str] = []
    items: list[str] = []
    async for event in result.stream_events():
        if event.type == "raw_response_event":
            raw.append(event.data.type)
        elif event.type == "run_item_stream_event":
            items.append(event.name)
    assert result.final_output == ANSWER
    assert calls == ["Paris"]
    assert items == ["reasoning_item_created", "tool_called", "tool_output", "message_output_created"]
    assert raw.count("response.created") == 2 and raw.count("response.completed") == 2
    assert raw.count("response.function_call_arguments.done") == 1
    assert raw.count("response.output_text.delta") == 6  # the fake streams the answer a word at a time
    assert [item.type for item in result.new_items] == [
        "reasoning_item", "tool_call_item", "tool_call_output_item", "message_output_item"]

    first, second = (request.json for request in fake_upstream.requests)
    assert first["stream"] is True and first["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert second["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert second["messages"][1:] == [
        {"role": "assistant", "content": [THINKING, CALL]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01AgentCall",
                                      "content": "sunny in Paris, 21C"}]},
    ]


class Forecast(pydantic.BaseModel):
    city: str
    celsius: float


async def test_an_output_type_beside_tools_on_a_model_without_native_structured_output(
    client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
) -> None:
    """claude-sonnet-4-0: the answer's schema is a JSON tool offered beside the agent's tool, the model bound to
    call one of them (forcing the JSON tool would leave get_weather uncallable); its call is the final output."""
    fake_upstream.json(claude(CALL, stop="tool_use"))
    answer = {"type": "tool_use", "id": "toolu_01Final", "name": "final_output",
              "input": {"city": "Paris", "celsius": 21}}
    fake_upstream.json(claude(answer, stop="tool_use"))
    calls: list[str] = []
    agent = weather_agent(client, calls, model="claude-sonnet-4-0").clone(output_type=Forecast)
    result = await Runner.run(agent, "What is the weather in Paris?", run_config=RUN)
    assert result.final_output == Forecast(city="Paris", celsius=21)
    assert calls == ["Paris"]
    for request in fake_upstream.requests:
        sent = request.json
        assert [tool["name"] for tool in sent["tools"]] == ["get_weather", "final_output"]
        assert sent["tool_choice"] == {"type": "any"}
        assert "output_config" not in sent
