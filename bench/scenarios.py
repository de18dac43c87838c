"""What the benchmark runs: the request bodies, the targets they go to, and the scenario matrix (full and
``--quick``). Nothing here does I/O.

Targets: the proxy under test and the passthrough reference, each on the OpenAI route
(``/v1/chat/completions``), the Claude route (``/v1/messages``) and the Responses route (``/v1/responses``),
and ``direct`` (the fake upstream itself, with the Claude body), which the added latency is measured
against. With ``--baseline REF``, also the proxy as it was at REF (``baseline``), on the routes it has.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any

import orjson

MODEL = "claude-sonnet-4-5"
SLOW_MODEL = "bench-slow"  # bench/upstream.py holds these streams open until released
OPENAI, CLAUDE, RESPONSES, DIRECT = "openai", "claude", "responses", "direct"
ROUTES = (OPENAI, CLAUDE, RESPONSES)  # the routes the proxy and the passthrough serve
PROBED_ROUTES = (OPENAI, CLAUDE)  # the routes of the memory probes (big body, held streams)
PATHS = {OPENAI: "/v1/chat/completions", CLAUDE: "/v1/messages", RESPONSES: "/v1/responses", DIRECT: "/v1/messages"}
HEADERS = {
    OPENAI: {"Content-Type": "application/json", "Authorization": "Bearer bench"},
    RESPONSES: {"Content-Type": "application/json", "Authorization": "Bearer bench"},
    CLAUDE: {"Content-Type": "application/json", "x-api-key": "bench", "anthropic-version": "2023-06-01"},
    DIRECT: {"Content-Type": "application/json", "x-api-key": "bench", "anthropic-version": "2023-06-01"},
}
# What the last bytes of a good answer contain, by route and streamed or not. A Responses answer ends with
# the response object (streamed: in its last event, response.completed), whose usage is written once it is done.
EXPECT = {
    (OPENAI, True): b"[DONE]", (OPENAI, False): b"}",
    (RESPONSES, True): b"total_tokens", (RESPONSES, False): b"total_tokens",
    (CLAUDE, True): b"message_stop", (CLAUDE, False): b"output_tokens",
    (DIRECT, True): b"message_stop", (DIRECT, False): b"output_tokens",
}


@dataclass(frozen=True, slots=True)
class Target:
    server: str  # proxy | baseline | passthrough | upstream
    route: str  # openai | claude | direct

    @property
    def name(self) -> str:
        return "direct" if self.route == DIRECT else f"{self.server}-{self.route}"


DIRECT_TARGET = Target("upstream", DIRECT)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    kind: str  # json | stream | history
    deltas: int  # text deltas per streamed answer (0: not streamed)
    concurrency: int
    requests: int
    time_cap: float  # seconds; the run stops starting requests after this

    @property
    def streamed(self) -> bool:
        return self.deltas > 0


@dataclass(frozen=True, slots=True)
class Plan:
    quick: bool
    rounds: int
    budget_s: float  # no new round starts unless it should end within this many seconds of the start
    scenarios: tuple[Scenario, ...]
    big_body_bytes: int
    big_requests: int
    held_streams: int
    baseline_routes: tuple[str, ...] = ()  # the routes of the proxy at --baseline REF (none: no baseline)

    @property
    def baseline(self) -> bool:
        """Whether the proxy as it was at --baseline REF is measured too."""
        return bool(self.baseline_routes)

    @property
    def compared(self) -> tuple[Target, ...]:
        """The servers measured against each other in every scenario, route by route: the proxy, the baseline
        (on the routes it has) and the passthrough."""
        return tuple(Target(server, route) for route in ROUTES for server in ("proxy", "baseline", "passthrough")
                     if server != "baseline" or route in self.baseline_routes)

    @property
    def probed(self) -> tuple[Target, ...]:
        """The servers of the memory probes: the compared ones on ``PROBED_ROUTES``."""
        return tuple(t for t in self.compared if t.route in PROBED_ROUTES)

    @property
    def targets(self) -> tuple[Target, ...]:
        """Every target of a round: the compared servers and ``direct``."""
        return (*self.compared, DIRECT_TARGET)


# --- bodies ---

def openai_body(messages: list[dict[str, Any]], *, deltas: int = 0, tools: list[Any] | None = None,
                model: str = MODEL) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": deltas or 64}
    if tools:
        body["tools"] = tools
    if deltas:
        body["stream"] = True
    return body


def claude_body(messages: list[dict[str, Any]], *, deltas: int = 0, tools: list[Any] | None = None,
                system: str | None = None, model: str = MODEL) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "max_tokens": deltas or 64, "messages": messages}
    if system:
        body["system"] = system
    if tools:
        body["tools"] = tools
    if deltas:
        body["stream"] = True
    return body


def responses_body(input_: str | list[dict[str, Any]], *, deltas: int = 0, tools: list[Any] | None = None,
                   instructions: str | None = None, model: str = MODEL) -> dict[str, Any]:
    """``store: false``: the proxy's response store (on by default) does not grow during the benchmark."""
    body: dict[str, Any] = {"model": model, "input": input_, "max_output_tokens": deltas or 64, "store": False}
    if instructions:
        body["instructions"] = instructions
    if tools:
        body["tools"] = tools
    if deltas:
        body["stream"] = True
    return body


HELLO = [{"role": "user", "content": "Say hello in one short sentence."}]


def simple_bodies(deltas: int, model: str = MODEL) -> dict[str, bytes]:
    claude = orjson.dumps(claude_body(HELLO, deltas=deltas, model=model))
    return {OPENAI: orjson.dumps(openai_body(HELLO, deltas=deltas, model=model)), CLAUDE: claude, DIRECT: claude,
            RESPONSES: orjson.dumps(responses_body(HELLO[0]["content"], deltas=deltas, model=model))}


def _tool_specs(count: int = 12) -> list[dict[str, Any]]:
    return [{
        "name": f"tool_{i}",
        "description": f"Benchmark tool number {i}: looks something up and returns a JSON document.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "what to look up"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                "filters": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["query"],
        },
    } for i in range(count)]


def history_bodies(messages: int = 200, filler: int = 0) -> dict[str, bytes]:
    """A tool-using conversation of ``messages`` messages (cycles of user, assistant tool call, tool
    result, assistant text) with 12 tools, as an OpenAI, a Claude and a Responses request (its input items:
    messages, function_call, function_call_output); answered as JSON. ``filler``: characters of plain text
    added to every question, tool result and answer."""
    pad = (FILLER * (filler // len(FILLER) + 1))[:filler]
    specs = _tool_specs()
    openai_msgs: list[dict[str, Any]] = [{"role": "system", "content": "You are a benchmark assistant."}]
    claude_msgs: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for i in range(messages // 4):
        question = f"Question {i}: " + "please look up the weather and summarise it. " * 4 + pad
        args = orjson.dumps({"query": f"weather {i}", "limit": 5}).decode()
        result = orjson.dumps({"temperature": 20 + i % 10, "summary": "sunny with light wind " * 5 + pad}).decode()
        answer = f"Answer {i}: " + "it is sunny and mild, with a light breeze from the west. " * 3 + pad
        call_id = f"call_{i:04d}"
        openai_msgs += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": f"tool_{i % 12}", "arguments": args}}]},
            {"role": "tool", "tool_call_id": call_id, "content": result},
            {"role": "assistant", "content": answer},
        ]
        claude_msgs += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": call_id, "name": f"tool_{i % 12}", "input": orjson.loads(args)}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": result}]},
            {"role": "assistant", "content": answer},
        ]
        items += [
            {"role": "user", "content": question},
            {"type": "function_call", "call_id": call_id, "name": f"tool_{i % 12}", "arguments": args},
            {"type": "function_call_output", "call_id": call_id, "output": result},
            {"role": "assistant", "content": answer},
        ]
    for conversation in (claude_msgs, openai_msgs, items):
        conversation.append({"role": "user", "content": "And tomorrow?"})
    claude_tools = [{"name": s["name"], "description": s["description"], "input_schema": s["parameters"]}
                    for s in specs]
    openai_tools = [{"type": "function", "function": s} for s in specs]
    responses_tools = [{"type": "function", **s} for s in specs]
    claude = orjson.dumps(claude_body(claude_msgs, tools=claude_tools, system="You are a benchmark assistant."))
    return {OPENAI: orjson.dumps(openai_body(openai_msgs, tools=openai_tools)), CLAUDE: claude, DIRECT: claude,
            RESPONSES: orjson.dumps(responses_body(items, tools=responses_tools,
                                                   instructions="You are a benchmark assistant."))}


FILLER = "The quick brown fox jumps over the lazy dog, and the report goes on. "
MESSAGES_PER_MB = 500  # the 1 MB history has 500 messages


def sized_history_bodies(size: int) -> dict[str, bytes]:
    """A tool-using history of about ``size`` bytes (OpenAI request) of the same make-up at every size: 500
    messages a megabyte, each padded to about 2 KB, so that the cost of converting it should grow linearly."""
    messages = max(8, round(MESSAGES_PER_MB * size / 2**20 / 4) * 4)
    base = len(history_bodies(messages)[OPENAI])
    return history_bodies(messages, filler=max(0, (size - base) // (3 * (messages // 4))))


def big_bodies(size: int, images: int = 5) -> dict[str, bytes]:
    """About ``size`` bytes of request, nearly all of it base64 PNG data in ``images`` image parts."""
    per_image = size // images
    raw = os.urandom(per_image * 3 // 4)
    data = base64.b64encode(raw).decode()
    openai_parts: list[dict[str, Any]] = [{"type": "text", "text": "What is in these images?"}]
    claude_parts: list[dict[str, Any]] = [{"type": "text", "text": "What is in these images?"}]
    for _ in range(images):
        openai_parts.append({"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}})
        claude_parts.append({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}})
    claude = orjson.dumps(claude_body([{"role": "user", "content": claude_parts}]))
    openai = orjson.dumps(openai_body([{"role": "user", "content": openai_parts}]))
    return {OPENAI: openai, CLAUDE: claude, DIRECT: claude}


def held_bodies() -> dict[str, bytes]:
    return simple_bodies(1, model=SLOW_MODEL)


def bodies_for(scenario: Scenario) -> dict[str, bytes]:
    if scenario.kind == "history":
        return history_bodies()
    return simple_bodies(scenario.deltas)


# --- the matrix ---

# (label, kind, deltas, requests per concurrency) for the full run, sized for about 1-1.5 s per run of
# the slowest target on the 2-core reference machine (a full run: about 5 minutes before the Responses route's two
# targets joined each round); --quick divides the counts by 8.
_MATRIX: tuple[tuple[str, str, int, dict[int, int]], ...] = (
    ("json", "json", 0, {1: 1200, 16: 3000, 64: 3000}),
    ("stream20", "stream", 20, {1: 500, 16: 1500, 64: 1500}),
    ("stream500", "stream", 500, {1: 120, 16: 240, 64: 256}),
    ("history", "history", 0, {1: 300, 16: 600}),
)


def plan(*, quick: bool, rounds: int | None = None, budget: float | None = None,
         baseline_routes: tuple[str, ...] = ()) -> Plan:
    scale, cap = (8, 1.0) if quick else (1, 3.0)
    scenarios = tuple(
        Scenario(f"{label}-c{conc}", kind, deltas, conc, max(conc, count // scale), cap)
        for label, kind, deltas, counts in _MATRIX
        for conc, count in counts.items()
    )
    return Plan(
        quick=quick,
        rounds=rounds or (1 if quick else 12),
        budget_s=budget or (90.0 if quick else 540.0),
        scenarios=scenarios,
        big_body_bytes=10 * 1024 * 1024,
        big_requests=2 if quick else 5,
        held_streams=300 if quick else 2000,
        baseline_routes=baseline_routes,
    )
