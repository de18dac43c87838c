"""An OpenAI Chat Completions request -> a Claude Messages request.

Pure: the caller passes the upstream model id and its profile (resolved from config), and gets back the
Claude body plus what the response side needs to know (n, streaming, the forced JSON tool) and what the
caller should be told (ignored fields, adjustments).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from translator.convert.messages import convert_messages
from translator.convert.policy import screen
from translator.convert.tables import (
    CLAUDE_SERVICE_TIER,
    MIN_THINKING_BUDGET,
    MIN_THINKING_TOP_P,
    REASONING_BUDGET,
    REASONING_EFFORT,
    TOOL_CHOICE,
)
from translator.convert.wire import (
    ApproximateLocation,
    ChatCompletionRequest,
    ChatCompletionTool,
    ClaudeTool,
    ClaudeToolChoice,
    FunctionDefinition,
    MessageParam,
    ReasoningEffort,
    ThinkingConfig,
    WebSearchOptions,
    WebSearchTool,
)
from translator.errors import InvalidRequest
from translator.profiles import ModelProfile

JSON_TOOL_DEFAULT = "json_response"
MAX_USER_ID = 256  # Claude's metadata.user_id maxLength
MAX_BUDGET = 2**31 - 1  # far beyond any model's output; bounds the max_tokens we derive from it
MAX_N = 8


@dataclass(slots=True)
class ConvertedRequest:
    # The Claude request (a wire.ClaudeRequest), typed as a plain dict for the server, which changes it in
    # place (server/images.py) and clears it once sent.
    body: dict[str, Any]
    stream: bool = False
    include_usage: bool = False
    n: int = 1
    json_tool: str | None = None  # a forced tool whose input is the answer's content
    legacy_functions: bool = False  # the request's functions (no tools): the answer's call is a function_call
    ignored: list[str] = field(default_factory=list)
    adjustments: list[str] = field(default_factory=list)
    # Responses: a function flattened out of a namespace tool, by its Claude name -> (namespace, name), which
    # the answer's function_call items carry (Codex routes a call by both).
    tool_namespaces: dict[str, tuple[str, str]] = field(default_factory=dict)


def convert_request(
    raw: Mapping[str, Any], *, model: str, profile: ModelProfile, strict: bool = False
) -> ConvertedRequest:
    """``raw`` is the client's JSON object, read here as a ``ChatCompletionRequest``: that is a claim, which
    each step checks for the fields it reads (a wrong shape is an InvalidRequest naming the param)."""
    req = cast(ChatCompletionRequest, raw)
    out = ConvertedRequest(body={"model": model}, ignored=screen(req, strict=strict))
    system, messages = convert_messages(req.get("messages"))
    if system:
        out.body["system"] = system
    out.body["messages"] = messages
    trim_prefill(messages, out)
    set_max_tokens(req, _max_tokens_field(req), profile, out)
    # (each step below reads only the fields named in its guard: a request without them skips it)
    if not _SAMPLING_FIELDS.isdisjoint(req):
        sampling(req, out)
    if "stop" in req:
        _stop(req, out)
    if not _TOOL_FIELDS.isdisjoint(req):
        _tools(req, profile, out)
    if "response_format" in req:
        output_format(req["response_format"], "response_format", "json_schema", profile, out)
    if "thinking" in req or "reasoning_effort" in req:
        _thinking(req, out, profile)
    prefill_thinking(out)
    one_sampler(out)
    set_stream(req, out)
    if "n" in req:
        _n(req, out)
    if "user" in req or "safety_identifier" in req:
        set_user_id(req, out)
    if "service_tier" in req:
        set_service_tier(req, out)
    return out


_SAMPLING_FIELDS = frozenset({"temperature", "top_p", "top_k"})
_TOOL_FIELDS = frozenset({"tools", "functions", "web_search_options", "tool_choice", "function_call",
                          "parallel_tool_calls"})


def trim_prefill(messages: list[MessageParam], out: ConvertedRequest) -> None:
    """A final assistant turn is a prefill the answer continues; Claude refuses one ending in whitespace."""
    last = messages[-1]
    block = last["content"][-1]
    if last["role"] == "assistant" and block["type"] == "text" and block["text"] != block["text"].rstrip():
        block["text"] = block["text"].rstrip()  # never empty: whitespace-only text was dropped already
        out.adjustments.append("trailing whitespace trimmed from the final assistant message (a prefill)")


def prefill_thinking(out: ConvertedRequest) -> None:
    """With thinking off, Claude refuses thinking blocks in a final assistant message (a prefill); they
    go, and the prefill's text stays. (Earlier turns may keep theirs: Claude ignores those.)"""
    if out.body.get("thinking", {}).get("type") in ("enabled", "adaptive"):
        return
    last: MessageParam = out.body["messages"][-1]
    kept = [b for b in last["content"] if b["type"] not in ("thinking", "redacted_thinking")]
    if last["role"] == "assistant" and len(kept) < len(last["content"]):
        out.adjustments.append("thinking blocks dropped from the final assistant message: thinking is off")
        if kept:
            last["content"] = kept
        elif len(out.body["messages"]) > 1:
            out.body["messages"].pop()
        else:
            raise InvalidRequest("'messages' holds no user or assistant content", param="messages")


def set_user_id(req: Mapping[str, Any], out: ConvertedRequest) -> None:
    """A client's end-user id as Claude's metadata.user_id (which takes nothing else): ``safety_identifier``,
    the field that replaces ``user``, else ``user``."""
    user = req.get("safety_identifier")
    if not isinstance(user, str) or not user:
        user = req.get("user")
    if not isinstance(user, str) or not user:
        return
    if len(user) > MAX_USER_ID:
        user = hashlib.sha256(user.encode()).hexdigest()
        out.adjustments.append(f"user longer than {MAX_USER_ID} characters sent as its SHA-256 hex digest")
    out.body["metadata"] = {"user_id": user}


def set_service_tier(req: Mapping[str, Any], out: ConvertedRequest) -> None:
    """``service_tier`` as Claude's (``tables.CLAUDE_SERVICE_TIER``); one with no Claude counterpart runs on
    Claude's default, and says so."""
    tier = req.get("service_tier")
    if tier is None:
        return
    if not isinstance(tier, str):
        raise InvalidRequest("'service_tier' must be a string", param="service_tier")
    claude = CLAUDE_SERVICE_TIER.get(tier)
    if claude is None:
        out.adjustments.append(f"service_tier {tier} has no Claude counterpart: run on Claude's default tier (auto)")
    elif claude != "auto":  # (Claude's default: left unsent)
        out.body["service_tier"] = claude


def _number(req: Mapping[str, Any], name: str, kind: type | tuple[type, ...] = (int, float)) -> Any:
    value = req.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
        what = "an integer" if kind is int else "a number"
        raise InvalidRequest(f"'{name}' must be {what}", param=name)
    return value


def _max_tokens_field(req: ChatCompletionRequest) -> str:
    return "max_completion_tokens" if req.get("max_completion_tokens") is not None else "max_tokens"


def set_max_tokens(req: Mapping[str, Any], name: str, profile: ModelProfile, out: ConvertedRequest) -> None:
    """``max_tokens`` from the request's field ``name`` (the profile's default without it), within the
    model's output limit."""
    value = _number(req, name, int)
    if value is not None and value < 1:
        raise InvalidRequest(f"'{name}' must be at least 1", param=name)
    cap = profile.max_output_tokens
    if value is not None and cap is not None and value > cap:
        out.adjustments.append(f"{name} {value} lowered to {cap}, the model's output limit")
        value = cap
    out.body["max_tokens"] = value if value is not None else min(profile.max_tokens, cap or MAX_BUDGET)


def _grow_max_tokens(out: ConvertedRequest, profile: ModelProfile, by: int) -> None:
    """Room for thinking above our default max_tokens, within the model's output limit."""
    out.body["max_tokens"] = min(out.body["max_tokens"] + by, profile.max_output_tokens or MAX_BUDGET)


def sampling(req: Mapping[str, Any], out: ConvertedRequest) -> None:
    temperature = _number(req, "temperature")
    if temperature is not None:
        clamped = min(max(float(temperature), 0.0), 1.0)  # OpenAI allows 0..2, Claude 0..1
        if clamped != temperature:
            out.adjustments.append(f"temperature {temperature} clamped to {clamped:g}")
        out.body["temperature"] = clamped
    for name, kind in (("top_p", (int, float)), ("top_k", int)):
        value = _number(req, name, kind)
        if value is not None:
            out.body[name] = value


def one_sampler(out: ConvertedRequest) -> None:
    """Newer Claude models (Sonnet 4.5 and later) answer 400 to temperature and top_p together. A no-op
    goes first (top_p 1, a default many OpenAI clients send; temperature 1, Claude's default); else
    temperature stays, the one OpenAI clients set on purpose far more often."""
    if "top_p" not in out.body or "temperature" not in out.body:
        return
    if out.body["top_p"] == 1:
        del out.body["top_p"]
        out.adjustments.append("top_p 1 dropped: a no-op, and refused beside temperature by newer Claude models")
    elif out.body["temperature"] == 1:
        del out.body["temperature"]
        out.adjustments.append("temperature 1 dropped: Claude's default, and refused beside top_p by newer models")
    else:
        top_p = out.body.pop("top_p")
        out.adjustments.append(f"top_p {top_p} dropped: newer Claude models refuse it beside temperature")


def _stop(req: ChatCompletionRequest, out: ConvertedRequest) -> None:
    stop = req.get("stop")
    if stop is None:
        return
    sequences = [stop] if isinstance(stop, str) else stop
    if not isinstance(sequences, list) or not all(isinstance(s, str) for s in sequences):
        raise InvalidRequest("'stop' must be a string or an array of strings", param="stop")
    kept = [s for s in sequences if s.strip()]
    if len(kept) < len(sequences):
        # Claude answers 400 to a whitespace-only stop sequence; drop it and say so.
        dropped = [s for s in sequences if not s.strip()]
        out.adjustments.append(f"whitespace-only stop sequences dropped: {dropped!r}")
    if kept:
        out.body["stop_sequences"] = kept


def _tools(req: ChatCompletionRequest, profile: ModelProfile, out: ConvertedRequest) -> None:
    """``tools`` and the legacy ``functions``. A request with functions only is answered in their form, one
    ``function_call`` a turn (the legacy form holds no more): Claude is told to call one tool at a time."""
    custom = [_tool(t, f"tools[{i}]") for i, t in enumerate(_list(req, "tools"))]
    out.legacy_functions = not custom and bool(_list(req, "functions"))
    custom += [function_tool(f, f"functions[{i}]") for i, f in enumerate(_list(req, "functions"))]
    server = [] if req.get("web_search_options") is None else [_web_search(req["web_search_options"])]
    if "tool_choice" in req and req.get("function_call") is not None:
        out.ignored.append("function_call")  # (tool_choice, its successor, is the one read)
    parallel = False if out.legacy_functions else req.get("parallel_tool_calls")
    set_tools(custom, server, _tool_choice(req), parallel, profile, out,
              choice_param="tool_choice" if "tool_choice" in req else "function_call")


def set_tools(
    custom: list[ClaudeTool],
    server: list[WebSearchTool],
    choice: ClaudeToolChoice | None,
    parallel: object,
    profile: ModelProfile,
    out: ConvertedRequest,
    *,
    choice_param: str = "tool_choice",
) -> None:
    """The client's tools, then the server tools, with the tool choice (``parallel``: the request's
    parallel_tool_calls). A choice naming a tool the request does not send is a 400 naming ``choice_param``:
    ours to say, before Claude says it less clearly."""
    if not profile.structured_output:
        _drop_strict(custom, out)
    tools: Sequence[ClaudeTool | WebSearchTool] = [*custom, *server]
    if choice is not None and choice["type"] == "tool" and all(tool["name"] != choice["name"] for tool in tools):
        raise InvalidRequest(f"{choice_param} names {choice['name']!r}, which is not one of the request's tools",
                             param=choice_param)
    if tools:
        out.body["tools"] = tools
    if parallel is False and tools:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if choice is not None:
        if not tools:
            out.adjustments.append("tool_choice dropped: the request has no tools")
        else:
            out.body["tool_choice"] = choice


def _list(req: ChatCompletionRequest, name: Literal["tools", "functions"]) -> list[Any]:
    value = req.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest(f"'{name}' must be an array", param=name)
    return value


def _tool(tool: ChatCompletionTool, where: str) -> ClaudeTool:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise InvalidRequest(
            f"{where}.type {kind!r} is not supported (only 'function')", param=f"{where}.type"
        )
    return function_tool(tool.get("function"), f"{where}.function")


def function_tool(fn: FunctionDefinition, where: str) -> ClaudeTool:
    """A function (a chat tool's ``function``; a Responses function tool, which has the same keys)."""
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise InvalidRequest(f"{where}.name must be a non-empty string", param=f"{where}.name")
    schema = fn.get("parameters")
    if schema is None or schema == {}:  # no parameters; Claude's input_schema must still say type object
        schema = {"type": "object", "properties": {}}
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise InvalidRequest(f"{where}.parameters must be a JSON Schema object", param=f"{where}.parameters")
    if "type" not in schema:  # implied by OpenAI, required by Claude's input_schema
        schema = {"type": "object", **schema}
    out: ClaudeTool = (
        {"name": fn["name"], "description": fn["description"], "input_schema": schema}
        if fn.get("description") else {"name": fn["name"], "input_schema": schema}
    )
    if fn.get("strict") is True:
        out["strict"] = True  # Claude's strict tool use: inputs guaranteed to match the schema
    return out


def _drop_strict(tools: list[ClaudeTool], out: ConvertedRequest) -> None:
    """Strict tool use is part of Claude's structured outputs: a model without them answers 400 to it."""
    dropped = [tool["name"] for tool in tools if tool.pop("strict", False)]
    if dropped:
        out.adjustments.append(f"strict dropped from tools {dropped!r}: the model has no strict tool use")


def _web_search(options: WebSearchOptions) -> WebSearchTool:
    location = options.get("user_location") if isinstance(options, dict) else None
    return web_search_tool(location.get("approximate") if isinstance(location, dict) else None)


def web_search_tool(approximate: ApproximateLocation | None) -> WebSearchTool:
    """Claude's web search server tool; ``approximate``: the user's city, region, country, timezone."""
    tool: WebSearchTool = {"type": "web_search_20250305", "name": "web_search"}
    if isinstance(approximate, dict):
        tool["user_location"] = {"type": "approximate", **approximate}
    return tool


def _tool_choice(req: ChatCompletionRequest) -> ClaudeToolChoice | None:
    name: Literal["tool_choice", "function_call"] = "tool_choice" if "tool_choice" in req else "function_call"
    choice = req.get(name)
    if choice is None:
        return None
    if isinstance(choice, str) and choice in TOOL_CHOICE:
        return {"type": TOOL_CHOICE[choice]}
    fn = choice.get("function") if isinstance(choice, dict) and name == "tool_choice" else choice
    if isinstance(fn, dict) and isinstance(fn.get("name"), str):
        return {"type": "tool", "name": fn["name"]}
    raise InvalidRequest(f"'{name}' must be auto, none, required, or a named function", param=name)


def output_format(
    fmt: object, where: str, spec_key: str | None, profile: ModelProfile, out: ConvertedRequest
) -> None:
    """The answer's format (``where``: its field, ``response_format`` or ``text.format``; ``spec_key``: the
    key of a json_schema format's spec in it, None where the spec's keys are the format's own)."""
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if not isinstance(fmt, dict) or kind not in ("text", "json_schema", "json_object"):
        raise InvalidRequest(f"{where} type {kind!r} is not supported", param=f"{where}.type")
    if kind == "json_schema":
        _json_schema(fmt.get(spec_key) if spec_key else fmt, where, spec_key, profile, out)
    elif kind == "json_object":
        json_tool(out, JSON_TOOL_DEFAULT, {"type": "object"}, None, where)


def _json_schema(
    spec: object, fmt_where: str, spec_key: str | None, profile: ModelProfile, out: ConvertedRequest
) -> None:
    where = f"{fmt_where}.{spec_key}" if spec_key else fmt_where
    if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
        raise InvalidRequest(f"{where}.schema must be an object", param=f"{where}.schema")
    if profile.structured_output:
        out.body["output_config"] = {"format": {"type": "json_schema", "schema": spec["schema"]}}
        if spec.get("description"):
            out.ignored.append(f"{where}.description")
        return
    json_tool(out, str(spec.get("name") or JSON_TOOL_DEFAULT), _tool_schema(spec["schema"], f"{where}.schema"),
              spec.get("description"), fmt_where)
    if spec.get("strict"):
        out.adjustments.append(f"{where}.strict dropped: without native structured output the JSON tool's input "
                               "is not held to the schema")


def _tool_schema(schema: dict[str, Any], param: str) -> dict[str, Any]:
    """A tool's input is an object: a schema whose root is anything else needs native structured output."""
    if schema.get("type", "object") != "object":
        raise InvalidRequest(
            f"{param}: a root that is not an object needs a model with native "
            "structured output (models.profiles structured_output = true)",
            param=param,
        )
    return schema if "type" in schema else {"type": "object", **schema}


def json_tool(out: ConvertedRequest, name: str, schema: dict[str, Any], description: object, where: str) -> None:
    """No native structured output: a tool whose input becomes the answer, called once. Its name is the
    schema's unless one of the client's own tools has it.

    Alone, or beside tools the request rules out (``tool_choice: none``), it is forced. Beside tools the model
    may call (an agent loop with an answer schema: Codex's ``--output-schema``, an Agents SDK ``output_type``,
    the openai SDK's ``parse`` with tools, LangChain's structured output beside tools), forcing it would leave
    them uncallable: the model must call some tool (``any``), and calling the JSON tool is how it answers. A
    tool the request names is kept: that turn calls it, and the JSON tool waits for a later one."""
    tools = out.body.get("tools", [])
    taken = {tool.get("name") for tool in tools}
    if name in taken:
        name = JSON_TOOL_DEFAULT
        suffix = 2
        while name in taken:
            name, suffix = f"{JSON_TOOL_DEFAULT}_{suffix}", suffix + 1
    tool: ClaudeTool = {
        "name": name,
        "description": str(description or "Respond with JSON matching this schema."),
        "input_schema": schema,
    }
    out.body["tools"] = [*tools, tool]
    out.json_tool = name
    choice = out.body.get("tool_choice")
    if not tools or (choice is not None and choice["type"] == "none"):
        if choice is not None:
            out.adjustments.append(f"tool_choice replaced: {where} forces the JSON tool")
        out.body["tool_choice"] = {"type": "tool", "name": name, "disable_parallel_tool_use": True}
    elif choice is not None and choice["type"] == "tool":
        out.adjustments.append(f"{where}: its JSON tool offered beside the request's tools; the tool_choice "
                               "naming one of them kept (the model has no native structured output)")
    else:
        any_tool: ClaudeToolChoice = {"type": "any"}
        if choice is not None and "disable_parallel_tool_use" in choice:  # (parallel_tool_calls: false)
            any_tool["disable_parallel_tool_use"] = choice["disable_parallel_tool_use"]
        out.body["tool_choice"] = any_tool
        out.adjustments.append(f"{where}: its JSON tool offered beside the request's tools, tool_choice any (the "
                               "model has no native structured output): the JSON tool's call is the answer")


def _thinking(req: ChatCompletionRequest, out: ConvertedRequest, profile: ModelProfile) -> None:
    """Claude's own ``thinking`` object, if the client sent one (``reasoning_effort`` is then left aside),
    else ``reasoning_effort``."""
    if not profile.thinking:
        for name in ("thinking", "reasoning_effort"):
            if req.get(name) is not None:
                out.adjustments.append(f"{name} dropped: the model has no extended thinking")
    elif (thinking := req.get("thinking")) is not None:
        _client_thinking(req, out, profile, thinking)
    elif (effort := _effort(req)) is not None and effort != "none":
        reasoning_effort(effort, "reasoning_effort", explicit=_explicit_max_tokens(req), profile=profile, out=out)


def _client_thinking(
    req: ChatCompletionRequest, out: ConvertedRequest, profile: ModelProfile, thinking: ThinkingConfig
) -> None:
    if not isinstance(thinking, dict):
        raise InvalidRequest("'thinking' must be an object", param="thinking")
    on = thinking.get("type") in ("enabled", "adaptive")
    if on and _thinking_ruled_out(out):
        return
    if (budget := _budget(thinking)) is not None and not _explicit_max_tokens(req):
        thinking = _room_for_budget(out, profile, thinking, budget)
    out.body["thinking"] = thinking
    if on:
        _thinking_constraints(out)


def reasoning_effort(
    effort: ReasoningEffort, name: str, *, explicit: bool, profile: ModelProfile, out: ConvertedRequest
) -> None:
    """Thinking at an effort level (not "none"; ``name``: the request's field for it; ``explicit``: whether
    the request set the output limit, which thinking then has to fit under)."""
    if _thinking_ruled_out(out):
        if profile.thinking_mode == "adaptive":
            _set_effort(out, effort)  # on an adaptive model the effort level still applies on its own
        return
    thinking = _effort_thinking(effort, name, explicit, out, profile)
    if thinking is not None:
        out.body["thinking"] = thinking
        _thinking_constraints(out)


def _room_for_budget(
    out: ConvertedRequest, profile: ModelProfile, thinking: ThinkingConfig, budget: int
) -> ThinkingConfig:
    """A client's thinking budget with our default max_tokens: that grows by the budget, and where the
    model's output limit leaves too little room, the budget is lowered under it (a copy: the client's
    object is not changed)."""
    _grow_max_tokens(out, profile, budget)
    room = out.body["max_tokens"] - 1
    if budget > room >= MIN_THINKING_BUDGET:
        out.adjustments.append(f"thinking.budget_tokens {budget} lowered to {room}, under the output limit")
        return {**thinking, "budget_tokens": room}
    return thinking


def _thinking_ruled_out(out: ConvertedRequest) -> bool:
    """Whether something in the converted request rules thinking out (Claude would answer 400 with it);
    if so, the adjustment says what."""
    why = _why_thinking_must_stay_off(out)
    if why is not None:
        out.adjustments.append(f"thinking off for this request: {why}")
    return why is not None


def _why_thinking_must_stay_off(out: ConvertedRequest) -> str | None:
    if _tool_turn_without_thinking(out.body["messages"]):
        return ("the last assistant tool calls came back without their thinking_blocks, which Claude "
                "requires with thinking on")
    if out.json_tool is not None:
        return ("response_format needs its JSON tool forced, which thinking forbids (the model has no native "
                "structured output)")
    return None


def _set_effort(out: ConvertedRequest, effort: ReasoningEffort) -> None:
    """output_config.effort, beside a format response_format may have put there."""
    out.body["output_config"] = {**out.body.get("output_config", {}), "effort": REASONING_EFFORT[effort]}


def _effort_thinking(
    effort: ReasoningEffort, name: str, explicit: bool, out: ConvertedRequest, profile: ModelProfile
) -> ThinkingConfig | None:
    """reasoning_effort as the model asks for it: a token budget, or adaptive thinking at an effort level
    (with the same room above our default max_tokens, since thinking counts against it)."""
    budget = REASONING_BUDGET[effort]
    assert budget is not None
    if profile.thinking_mode == "adaptive":
        if not explicit:
            _grow_max_tokens(out, profile, budget)
        _set_effort(out, effort)
        return {"type": "adaptive"}
    fitted = _fit_budget(budget, name, explicit, out, profile)
    return None if fitted is None else {"type": "enabled", "budget_tokens": fitted}


def _tool_turn_without_thinking(messages: list[MessageParam]) -> bool:
    """With thinking on, Claude wants the last assistant turn that called tools to start with its signed
    thinking. Clients that do not keep ``thinking_blocks`` (most OpenAI SDK users, LangChain, the Vercel AI
    SDK) send the calls alone; thinking then has to stay off for that request, or Claude answers 400."""
    last = next((m for m in reversed(messages) if m["role"] == "assistant"), None)
    if last is None or not any(b.get("type") == "tool_use" for b in last["content"]):
        return False
    return last["content"][0].get("type") not in ("thinking", "redacted_thinking")


def _effort(req: ChatCompletionRequest) -> ReasoningEffort | None:
    effort = req.get("reasoning_effort")
    if effort is None:
        return None
    if not isinstance(effort, str) or effort not in REASONING_BUDGET:
        raise InvalidRequest(
            f"reasoning_effort {effort!r} is not one of {sorted(REASONING_BUDGET)}",
            param="reasoning_effort",
        )
    return effort


def _explicit_max_tokens(req: ChatCompletionRequest) -> bool:
    return req.get("max_completion_tokens") is not None or req.get("max_tokens") is not None


def _budget(thinking: ThinkingConfig) -> int | None:
    budget = thinking.get("budget_tokens")
    if budget is None:
        return None
    if not isinstance(budget, int) or isinstance(budget, bool) or not 1 <= budget <= MAX_BUDGET:
        raise InvalidRequest(f"thinking.budget_tokens must be an integer from 1 to {MAX_BUDGET}",
                             param="thinking.budget_tokens")
    return budget


def _fit_budget(budget: int, name: str, explicit: bool, out: ConvertedRequest, profile: ModelProfile) -> int | None:
    """OpenAI's output limits count reasoning; Claude's budget must stay under max_tokens."""
    if not explicit:
        _grow_max_tokens(out, profile, budget)
    room: int = out.body["max_tokens"] - 1
    if room < MIN_THINKING_BUDGET:
        out.adjustments.append(f"{name} ignored: max_tokens {room + 1} leaves no room for thinking")
        return None
    return min(budget, room)


def _thinking_constraints(out: ConvertedRequest) -> None:
    """With thinking on, Claude allows no temperature but 1, no top_k, top_p only from 0.95, and no
    forced tool."""
    for name in ("temperature", "top_k"):
        if name in out.body and not (name == "temperature" and out.body[name] == 1):
            out.adjustments.append(f"{name} dropped: not allowed with thinking")
            del out.body[name]
    top_p = out.body.get("top_p")
    if top_p is not None and top_p < MIN_THINKING_TOP_P:
        out.adjustments.append(f"top_p {top_p} raised to {MIN_THINKING_TOP_P}: thinking allows 0.95..1")
        out.body["top_p"] = MIN_THINKING_TOP_P
    choice = out.body.get("tool_choice")
    if choice and choice["type"] in ("any", "tool"):
        out.adjustments.append(
            f"tool_choice {choice['type']} relaxed to auto: thinking forbids forcing a tool"
        )
        choice["type"] = "auto"
        choice.pop("name", None)


def set_stream(req: Mapping[str, Any], out: ConvertedRequest) -> None:
    out.stream = req.get("stream") is True
    if out.stream:
        out.body["stream"] = True
        opts = req.get("stream_options")
        out.include_usage = isinstance(opts, dict) and opts.get("include_usage") is True


def _n(req: ChatCompletionRequest, out: ConvertedRequest) -> None:
    n = _number(req, "n", int)
    if n is None:
        return
    if not 1 <= n <= MAX_N:
        raise InvalidRequest(f"'n' must be between 1 and {MAX_N}", param="n")
    out.n = n
