"""An OpenAI Responses request (``POST /v1/responses``) -> a Claude Messages request.

Pure, as ``request.py``, and built from its steps: the same max_tokens, sampling, tool choice, structured
output, thinking and user id rules, read from this API's fields. The caller passes the upstream model id
and its profile, and the items of the stored conversation ``previous_response_id`` names (``history``:
its input items, then its output items), taken as if they led ``input``. It gets back the chat route's
``ConvertedRequest`` (``n`` is 1; ``tool_namespaces`` pairs a flattened namespace function with its
namespace, for the answer's function calls).

Here: the field policy (``responses_policy``), ``instructions``, ``max_output_tokens``, ``text.format``,
``reasoning.effort``, ``safety_identifier``. Elsewhere: input items (``responses_input``), tools and tool
choice (``responses_tools``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

from translator.convert.content import response_text_blocks
from translator.convert.policy import screen
from translator.convert.request import (
    ConvertedRequest,
    one_sampler,
    output_format,
    prefill_thinking,
    reasoning_effort,
    sampling,
    set_max_tokens,
    set_service_tier,
    set_stream,
    set_tools,
    set_user_id,
    trim_prefill,
)
from translator.convert.responses_input import convert_input
from translator.convert.responses_policy import RESPONSES
from translator.convert.responses_tools import Tools, convert_tools, tool_choice
from translator.convert.responses_wire import ResponseCreateParams
from translator.convert.tables import REASONING_BUDGET
from translator.convert.wire import ReasoningEffort, TextBlock
from translator.errors import InvalidRequest
from translator.profiles import ModelProfile

# reasoning.effort values Chat Completions' reasoning_effort lacks -> the one they stand for here: max and
# xhigh both ask for Claude's max effort (and the largest budget).
_EFFORT_ALIASES: Final[dict[str, ReasoningEffort]] = {"max": "xhigh"}
_EFFORTS: Final = sorted([*REASONING_BUDGET, *_EFFORT_ALIASES])


def convert_responses_request(
    req: Mapping[str, Any],
    *,
    model: str,
    profile: ModelProfile,
    strict: bool = False,
    history: Sequence[Mapping[str, Any]] = (),
) -> ConvertedRequest:
    """``req`` is the client's JSON object, read as a ``ResponseCreateParams``: a claim each step checks for
    the fields it reads (a wrong shape is an InvalidRequest naming the param)."""
    raw = cast(ResponseCreateParams, req)
    out = ConvertedRequest(body={"model": model}, ignored=screen(req, strict=strict, policy=RESPONSES))
    tools = convert_tools(raw.get("tools"))
    system, messages, dropped = convert_input(raw.get("input"), history, tools.names)
    out.adjustments += dropped
    system = [*_instructions(raw), *system]
    if system:
        out.body["system"] = system
    out.body["messages"] = messages
    trim_prefill(messages, out)
    set_max_tokens(req, "max_output_tokens", profile, out)
    sampling(req, out)
    _tools(raw, tools, profile, out)
    if raw.get("text") is not None:
        _text(raw, profile, out)
    if raw.get("reasoning") is not None:
        _reasoning(raw, profile, out)
    prefill_thinking(out)
    one_sampler(out)
    set_stream(req, out)
    set_user_id(raw, out)
    set_service_tier(raw, out)
    return out


def _instructions(req: ResponseCreateParams) -> list[TextBlock]:
    """The system prompt, ahead of the system and developer messages of ``input``."""
    instructions = req.get("instructions")
    if instructions is None:
        return []
    if not isinstance(instructions, str):
        raise InvalidRequest("'instructions' must be a string", param="instructions")
    return response_text_blocks(instructions, "instructions")


def _tools(req: ResponseCreateParams, tools: Tools, profile: ModelProfile, out: ConvertedRequest) -> None:
    choice, allowed = tool_choice(req.get("tool_choice"), tools.names)
    custom, server = tools.custom, tools.server
    if allowed is not None:  # allowed_tools: only those are sent
        custom = [tool for tool in custom if tool["name"] in allowed]
        server = [tool for tool in server if tool["name"] in allowed]
        if not custom and not server and choice is not None and choice["type"] == "any":
            raise InvalidRequest("tool_choice.tools: none of the tools it allows is one the request sends, and "
                                 "mode required needs one", param="tool_choice.tools")
    set_tools(custom, server, choice, req.get("parallel_tool_calls"), profile, out)
    out.tool_namespaces = tools.names.namespaced()


def _text(req: ResponseCreateParams, profile: ModelProfile, out: ConvertedRequest) -> None:
    """``text.format`` as the chat route's ``response_format`` (verbosity: ignored, see the policy)."""
    text = req.get("text")
    if not isinstance(text, dict):
        raise InvalidRequest("'text' must be an object", param="text")
    fmt = text.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and not isinstance(fmt.get("name"), str):
        raise InvalidRequest("text.format.name must be a string (the spec requires it)", param="text.format.name")
    output_format(fmt, "text.format", None, profile, out)


def _reasoning(req: ResponseCreateParams, profile: ModelProfile, out: ConvertedRequest) -> None:
    """``reasoning.effort`` as the chat route's ``reasoning_effort``. The summary is always the thinking
    itself, whatever ``summary`` asks."""
    reasoning = req.get("reasoning")
    if not isinstance(reasoning, dict):
        raise InvalidRequest("'reasoning' must be an object", param="reasoning")
    effort = _effort(reasoning.get("effort"))
    if effort is None and reasoning.get("summary") is not None:
        out.adjustments.append("reasoning.summary without reasoning.effort: thinking stays off (Claude thinks only "
                               "when asked to), so there is no summary")
    if effort is None or effort == "none":
        return
    if not profile.thinking:
        out.adjustments.append("reasoning.effort dropped: the model has no extended thinking")
        return
    explicit = req.get("max_output_tokens") is not None
    reasoning_effort(effort, "reasoning.effort", explicit=explicit, profile=profile, out=out)


def _effort(value: object) -> ReasoningEffort | None:
    if value is None:
        return None
    effort = _EFFORT_ALIASES.get(value, value) if isinstance(value, str) else None
    if effort not in REASONING_BUDGET:
        raise InvalidRequest(f"reasoning.effort {value!r} is not one of {_EFFORTS}", param="reasoning.effort")
    return effort


