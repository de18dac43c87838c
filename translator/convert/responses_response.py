"""A Claude message -> an OpenAI Responses ``response`` object (``POST /v1/responses``), and the pieces the
stream converter (``responses_stream.py``) builds its events from, so that both forms of one answer agree
exactly. The request side is ``responses_request.py``.

Output items, in Claude's block order (openapi.yaml ``Response.output``):
- ``thinking`` / ``redacted_thinking`` -> a ``reasoning`` item: the thinking text as its one ``summary_text``
  part (none for redacted thinking, or thinking without text) and, always, the block itself as
  ``encrypted_content`` (``reasoning.encode_block``). A client sends it back to continue a thinking tool
  loop, which Claude refuses without the signed block; clients that did not ask for it ignore it.
- ``text`` -> the ``output_text`` part of a ``message`` item. Consecutive text blocks make ONE message with ONE
  ``output_text`` part, its ``url_citation`` annotations indexing into the joined text: Claude splits a cited
  answer into many blocks, while clients (and OpenAI's own answers) take a message's text as one part. Blocks
  without an item (below) do not split a message; an empty text block opens none. Text after a server tool's
  blocks starts a new paragraph of the message (``response.SERVER_TOOL_BREAK``), as on the chat route.
- ``tool_use`` -> a ``function_call`` item (``call_id``: the tool_use id; ``arguments``: the input as compact
  JSON). The forced JSON tool (structured output through a tool, ``json_tool``) is message text instead, as
  in ``response.py``.
- server tools (``server_tool_use``, ``web_search_tool_result``, MCP, code execution, ...) ran upstream: no
  item. Their outcome is in the text that follows, with its citations. (A ``web_search_call`` item would come
  back in the client's next input, where it has no Claude form.)
- ``stop_reason: "refusal"`` adds a ``refusal`` part (``REFUSAL``) to the last message, or a message of its own
  when the last item is not one. The text before it stays: it was streamed already.

Status: ``completed``, or ``incomplete`` on a length stop (``tables.RESPONSE_INCOMPLETE``), the last item (the
one being written when the limit struck) then ``incomplete`` too if it has a status (messages and calls).

Item ids come from the response id and the output index (``item_id``): no randomness here, and both forms of
an answer name their items alike.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, NotRequired, TypedDict, cast

import orjson

from translator.convert.reasoning import encode_block
from translator.convert.response import SERVER_TOOL_BREAK, url_citations
from translator.convert.tables import RESPONSE_INCOMPLETE
from translator.convert.usage import openai_usage, served_tier
from translator.convert.wire import (
    Citation,
    ClaudeMessage,
    ClaudeUsage,
    ContentBlock,
    IncompleteReason,
    ItemStatus,
    RedactedThinkingBlock,
    ResponseErrorCode,
    ResponseStatus,
    ThinkingBlock,
)
from translator.errors import UpstreamProtocolError

# The refusal part's text: Claude's refusal stop carries no words of its own ("Streaming refusals").
REFUSAL: Final = "Claude declined to continue this response (stop_reason: refusal)."


# --- the shapes (openapi.yaml: Response, OutputItem, OutputMessage, ReasoningItem, FunctionToolCall) ---


class URLCitationAnnotation(TypedDict):
    type: Literal["url_citation"]
    start_index: int
    end_index: int
    url: str
    title: str


class OutputText(TypedDict):
    type: Literal["output_text"]
    annotations: list[URLCitationAnnotation]
    logprobs: list[Any]  # always empty: Claude has no logprobs
    text: str


class OutputRefusal(TypedDict):
    type: Literal["refusal"]
    refusal: str


class MessageItem(TypedDict):
    id: str
    type: Literal["message"]
    status: ItemStatus
    content: list[OutputText | OutputRefusal]
    role: Literal["assistant"]


class SummaryText(TypedDict):
    type: Literal["summary_text"]
    text: str


class ReasoningItem(TypedDict):
    id: str
    type: Literal["reasoning"]
    summary: list[SummaryText]
    encrypted_content: NotRequired[str]  # absent only in the stream's output_item.added: the block is not whole yet


class FunctionCallItem(TypedDict):
    id: str
    type: Literal["function_call"]
    status: ItemStatus
    arguments: str
    call_id: str
    name: str
    namespace: NotRequired[str]  # a function of a namespace tool (Codex finds its tools by namespace and name)


Namespaces = Mapping[str, tuple[str, str]]  # a Claude tool name -> its namespace and its function's own name
NO_NAMESPACES: Namespaces = {}


OutputItem = MessageItem | ReasoningItem | FunctionCallItem


class InputTokensDetails(TypedDict):
    cached_tokens: int  # Claude's cache_read_input_tokens
    cache_write_tokens: int  # Claude's cache_creation_input_tokens


class OutputTokensDetails(TypedDict):
    reasoning_tokens: int  # Claude's output_tokens_details.thinking_tokens, 0 when it sends none


class ResponseUsage(TypedDict):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class ResponseError(TypedDict):
    code: ResponseErrorCode
    message: str


class IncompleteDetails(TypedDict):
    reason: IncompleteReason


class Response(TypedDict):
    """The keys in OpenAI's order; the request's echo (``request_echo``) typed loosely, as the client sent it."""

    id: str
    object: Literal["response"]
    created_at: int
    status: ResponseStatus
    background: Any
    error: ResponseError | None
    incomplete_details: IncompleteDetails | None
    instructions: Any
    max_output_tokens: Any
    max_tool_calls: Any
    model: str
    output: list[OutputItem]
    parallel_tool_calls: Any
    previous_response_id: Any
    prompt_cache_key: Any
    reasoning: Any
    safety_identifier: Any
    service_tier: Any
    store: Any
    temperature: Any
    text: Any
    tool_choice: Any
    tools: Any
    top_logprobs: Any
    top_p: Any
    truncation: Any
    usage: ResponseUsage | None
    user: Any
    metadata: Any


# --- the request's echo ---

# The request fields a response echoes, with the spec's defaults (CreateResponse, Response) for those the
# request leaves out or sends as null. service_tier: OpenAI reports the tier that served the request, never
# "auto"; the request's is echoed, "auto" and none as "default" (Claude's standard tier).
ECHO_DEFAULTS: Final[Mapping[str, Any]] = {
    "background": False,
    "instructions": None,
    "max_output_tokens": None,
    "max_tool_calls": None,
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "prompt_cache_key": None,
    "reasoning": {"effort": None, "summary": None},
    "safety_identifier": None,
    "service_tier": "default",
    "store": True,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "top_logprobs": 0,
    "top_p": 1.0,
    "truncation": "disabled",
    "user": None,
    "metadata": {},
}


def request_echo(
    req: Mapping[str, Any], sent: Mapping[str, Any] | None = None, *, stored: bool | None = None
) -> dict[str, Any]:
    """The fields of a Responses request that its response object repeats, defaults filled in. With ``sent``,
    the Claude request made of it, the sampling, the token limit and the tool choice are the values it ran with
    (clamped, lowered, dropped to Claude's default of 1; a forced tool relaxed to auto under thinking), as
    OpenAI reports them; ``stored``: whether it is kept."""
    echo = {key: copy.deepcopy(default if req.get(key) is None else req[key]) for key, default in ECHO_DEFAULTS.items()}
    if sent is not None:
        echo["temperature"], echo["top_p"] = sent.get("temperature", 1.0), sent.get("top_p", 1.0)
        if echo["max_output_tokens"] is not None:
            echo["max_output_tokens"] = sent.get("max_tokens", echo["max_output_tokens"])
        if (sent.get("tool_choice") or {}).get("type") == "auto":  # (auto as asked, or a forced one relaxed)
            echo["tool_choice"] = _as_auto(echo["tool_choice"])
    if stored is not None:
        echo["store"] = stored
    if echo["service_tier"] == "auto":
        echo["service_tier"] = "default"  # as OpenAI reports "auto": by the tier it resolved to
    if isinstance(req.get("reasoning"), dict):  # (the fields given, the others null)
        echo["reasoning"] = {**ECHO_DEFAULTS["reasoning"], **echo["reasoning"]}
    if isinstance(echo["text"], dict) and echo["text"].get("format") is None:
        echo["text"] = {**echo["text"], "format": {"type": "text"}}
    return echo


def _as_auto(choice: Any) -> Any:
    """A Responses tool_choice that ran as Claude's ``auto``: an allowed_tools list keeps its tools."""
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        return {**choice, "mode": "auto"}
    return "auto"


# --- the response object ---


def response_object(
    *,
    response_id: str,
    created_at: int,
    model: str,
    echo: Mapping[str, Any],
    status: ResponseStatus,
    output: Sequence[OutputItem],
    usage: ResponseUsage | None,
    error: ResponseError | None = None,
    incomplete: IncompleteReason | None = None,
    served: str | None = None,
) -> Response:
    """The envelope, for every status: the stream sends it in_progress, then completed, incomplete or failed.
    ``served``: the tier that served it (``usage.served_tier``), which ``service_tier`` reports once known (as
    OpenAI's does), in place of the request's."""
    e = {**ECHO_DEFAULTS, **echo}
    if served is not None:
        e["service_tier"] = served
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": e["background"],
        "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": e["instructions"],
        "max_output_tokens": e["max_output_tokens"],
        "max_tool_calls": e["max_tool_calls"],
        "model": model,
        "output": list(output),
        "parallel_tool_calls": e["parallel_tool_calls"],
        "previous_response_id": e["previous_response_id"],
        "prompt_cache_key": e["prompt_cache_key"],
        "reasoning": e["reasoning"],
        "safety_identifier": e["safety_identifier"],
        "service_tier": e["service_tier"],
        "store": e["store"],
        "temperature": e["temperature"],
        "text": e["text"],
        "tool_choice": e["tool_choice"],
        "tools": e["tools"],
        "top_logprobs": e["top_logprobs"],
        "top_p": e["top_p"],
        "truncation": e["truncation"],
        "usage": usage,
        "user": e["user"],
        "metadata": e["metadata"],
    }


def response_from_message(
    message: Mapping[str, Any],
    *,
    response_id: str,
    created_at: int,
    model: str,
    echo: Mapping[str, Any],
    json_tool: str | None = None,
    namespaces: Namespaces = NO_NAMESPACES,
) -> Response:
    """``message`` is the upstream's JSON object, read as a ``ClaudeMessage``: a shape that breaks that claim
    is reported as an ``UpstreamProtocolError``. ``namespaces``: the request's flattened namespace functions
    (``ConvertedRequest.tool_namespaces``), whose calls get their namespace back."""
    try:
        return _response(cast(ClaudeMessage, message), response_id=response_id, created_at=created_at, model=model,
                         echo=echo, json_tool=json_tool, namespaces=namespaces)
    except (AttributeError, TypeError, ValueError, KeyError) as e:
        raise UpstreamProtocolError(f"upstream answer is not a Claude message: {type(e).__name__}") from e


def _response(
    msg: ClaudeMessage, *, response_id: str, created_at: int, model: str, echo: Mapping[str, Any],
    json_tool: str | None, namespaces: Namespaces,
) -> Response:
    out = _Output(response_id, namespaces)
    for block in msg.get("content") or []:
        out.block(block, json_tool=json_tool)
    out.close()
    stop = msg.get("stop_reason")
    if stop == "refusal":
        out.refusal()
    reason = incomplete_reason(stop)
    if reason is not None:
        out.mark_incomplete()
    return response_object(
        response_id=response_id, created_at=created_at, model=msg.get("model") or model, echo=echo,
        status="incomplete" if reason else "completed", output=out.items,
        usage=response_usage(msg.get("usage") or {"output_tokens": 0}), incomplete=reason,
        served=served_tier(msg.get("usage")),
    )


class _Output:
    """The output items of a whole message, in the making: text gathers into the open message until an item
    of another type comes."""

    def __init__(self, response_id: str, namespaces: Namespaces) -> None:
        self.response_id = response_id
        self.namespaces = namespaces
        self.items: list[OutputItem] = []
        self._text: list[str] | None = None  # the open message's text, None when no message is open
        self._annotations: list[URLCitationAnnotation] = []
        self._chars = 0
        self._after_server_tool = False

    def block(self, block: ContentBlock, *, json_tool: str | None) -> None:
        if block.get("type") is None:
            return  # (a block without a type is one we do not know, as below)
        match block["type"]:
            case "text":
                if self._after_server_tool and self._text:
                    self.text(SERVER_TOOL_BREAK, None)
                self._after_server_tool = False
                self.text(block.get("text") or "", block.get("citations"))
            case "tool_use" if json_tool is not None and block.get("name") == json_tool:
                self.text(orjson.dumps(block.get("input") or {}).decode(), None)
            case "tool_use":
                index = self._next()
                self.items.append(function_call_item(
                    item_id("function_call", self.response_id, index), call_id=block["id"], name=block["name"],
                    arguments=orjson.dumps(block.get("input") or {}).decode(), status="completed",
                    namespaces=self.namespaces))
            case "thinking" | "redacted_thinking":
                index = self._next()
                self.items.append(reasoning_item(item_id("reasoning", self.response_id, index), block))
            case _:  # server tools and their results, and block types yet to come: no item (module docstring)
                self._after_server_tool = True

    def text(self, piece: str, citations: list[Citation] | None) -> None:
        if not piece:
            return
        if self._text is None:
            index = self._next()
            self.items.append(message_item(item_id("message", self.response_id, index), [], "in_progress"))
            self._text, self._annotations, self._chars = [], [], 0
        self._annotations += url_annotations(citations, self._chars, self._chars + len(piece))
        self._chars += len(piece)
        self._text.append(piece)

    def close(self) -> None:
        """Finish the open message, if one is."""
        if self._text is None:
            return
        message = cast(MessageItem, self.items[-1])
        message["content"] = [output_text("".join(self._text), self._annotations)]
        message["status"] = "completed"
        self._text = None

    def refusal(self) -> None:
        if not self.items or self.items[-1]["type"] != "message":
            self.items.append(message_item(item_id("message", self.response_id, len(self.items)), [], "completed"))
        cast(MessageItem, self.items[-1])["content"].append(refusal_part(REFUSAL))

    def mark_incomplete(self) -> None:
        last = self.items[-1] if self.items else None
        if last is not None and last["type"] != "reasoning":  # (a reasoning item has no status)
            last["status"] = "incomplete"

    def _next(self) -> int:
        """The next item's output index, the open message (if any) finished first."""
        self.close()
        return len(self.items)


# --- one function per shape, shared with the stream converter ---

_ID_PREFIX: Final = {"message": "msg", "reasoning": "rs", "function_call": "fc", "input": "item"}
# Any of the ids below: the response id's own part is the one group.
_ITEM_ID: Final = re.compile(rf"(?:{'|'.join(_ID_PREFIX.values())})_([0-9a-f]+)_[0-9]+")


def item_id(kind: Literal["message", "reasoning", "function_call", "input"], response_id: str, index: int) -> str:
    """An item's id: its kind's prefix, the response id's own part and the item's index (in the output, or for
    ``input``, in the request's input), as in ``msg_<id>_0``: unique as the response id is, and the same in both
    forms of an answer."""
    return f"{_ID_PREFIX[kind]}_{response_id.removeprefix('resp_')}_{index}"


def response_of(item: str) -> str | None:
    """The id of the response an ``item_id`` belongs to; None for an id that is not one of ours."""
    ours = _ITEM_ID.fullmatch(item)
    return f"resp_{ours[1]}" if ours is not None else None


def message_item(item_id: str, content: list[OutputText | OutputRefusal], status: ItemStatus) -> MessageItem:
    return {"id": item_id, "type": "message", "status": status, "content": content, "role": "assistant"}


def output_text(text: str, annotations: list[URLCitationAnnotation]) -> OutputText:
    return {"type": "output_text", "annotations": annotations, "logprobs": [], "text": text}


def refusal_part(text: str) -> OutputRefusal:
    return {"type": "refusal", "refusal": text}


def reasoning_item(item_id: str, block: ThinkingBlock | RedactedThinkingBlock) -> ReasoningItem:
    thinking = block.get("thinking") if block["type"] == "thinking" else None
    summary: list[SummaryText] = [summary_text(thinking)] if isinstance(thinking, str) and thinking else []
    return {"id": item_id, "type": "reasoning", "summary": summary,
            "encrypted_content": encode_block(cast(dict[str, Any], block))}


def summary_text(text: str) -> SummaryText:
    return {"type": "summary_text", "text": text}


def function_call_item(
    item_id: str, *, call_id: str, name: str, arguments: str, status: ItemStatus,
    namespaces: Namespaces = NO_NAMESPACES,
) -> FunctionCallItem:
    item: FunctionCallItem = {"id": item_id, "type": "function_call", "status": status, "arguments": arguments,
                              "call_id": call_id, "name": name}
    if name in namespaces:
        item["namespace"], item["name"] = namespaces[name]
    return item


def url_annotations(citations: list[Citation] | None, start: int, end: int) -> list[URLCitationAnnotation]:
    """A text block's web citations as ``url_citation`` annotations over its span of the text, as the chat
    route computes them (``response.url_citations``), in the Responses' flat shape."""
    return [{"type": "url_citation", **a["url_citation"]} for a in url_citations(citations, start, end)]


def compact_json(raw: str) -> str:
    """Streamed tool input (Claude's fragments, spaced as the model wrote them) in the compact form a whole
    message's ``input`` takes here; input cut short (by max_tokens) is no JSON, and stays as it came."""
    try:  # (the json module reads it: orjson would read an integer over 64 bits as a float, changing the value)
        return orjson.dumps(json.loads(raw)).decode()
    except (ValueError, TypeError):  # not JSON; or a value orjson cannot write (an integer over 64 bits)
        return raw


def incomplete_reason(stop_reason: object) -> IncompleteReason | None:
    if isinstance(stop_reason, str) and stop_reason in RESPONSE_INCOMPLETE:  # (the upstream's: anything may come)
        return RESPONSE_INCOMPLETE[stop_reason]
    return None


def response_usage(usage: Mapping[str, Any]) -> ResponseUsage:
    """Claude's usage in the Responses' shape: the input counts cache reads and writes, as ``openai_usage``."""
    counts = openai_usage(cast(ClaudeUsage, usage))
    details = counts.get("completion_tokens_details")
    return {
        "input_tokens": counts["prompt_tokens"],
        "input_tokens_details": {
            "cached_tokens": counts["prompt_tokens_details"]["cached_tokens"],
            "cache_write_tokens": counts["prompt_tokens_details"]["cache_write_tokens"],
        },
        "output_tokens": counts["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": details["reasoning_tokens"] if details else 0},
        "total_tokens": counts["total_tokens"],
    }
