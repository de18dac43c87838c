"""Claude stream events -> OpenAI ``chat.completion.chunk`` objects, one event at a time.

``StreamConverter.feed(event)`` returns the chunks that event produces (often one, sometimes none) so
the route can write each as soon as its event arrives; ``finish()`` closes the stream. Protocol facts
(Claude "Streaming Messages"; OpenAI chat.completion.chunk):
- the first chunk carries ``role``; one ``id`` and choice ``index`` for the whole stream;
- a tool call's first chunk carries our own tool counter as ``index`` (never Claude's block index, which
  also counts text and thinking blocks), ``id``, ``name`` and ``arguments: ""``; later chunks only
  argument fragments, or ``"{}"`` at the block's end if none came (a tool called without arguments);
- the usage chunk has ``choices: []`` (clients fold a choice delta there as a duplicate event); with
  ``include_usage`` (``stream_options.include_usage``) every other chunk carries ``"usage": null``, as the
  OpenAI spec says, and without it no chunk has a ``usage`` key; error chunks never do;
- an ``error`` event becomes a chunk with a top-level ``error`` object, which the openai SDKs raise on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, TypedDict, cast

import orjson

from translator.convert.errors import openai_error_body, openai_error_from_claude
from translator.convert.response import SERVER_TOOL_BREAK, completion_id, finish_reason, url_citations
from translator.convert.usage import openai_usage, served_tier
from translator.convert.wire import (
    ChatCompletionChunk,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChunkChoice,
    ClaudeUsage,
    CompletionUsage,
    FinishReason,
    OpenAIErrorResponse,
    RedactedThinkingBlock,
    ThinkingBlock,
)
from translator.errors import TranslatorError, UpstreamProtocolError

Chunk = ChatCompletionChunk | OpenAIErrorResponse
Event = Mapping[str, Any]  # one Claude stream event as parsed: the upstream's, so every field is checked as read


class StreamProtocolError(UpstreamProtocolError):
    """The upstream's events broke the Claude streaming protocol."""


@dataclass(slots=True)
class _Block:
    kind: str  # text | tool | json | thinking | redacted | other
    tool_index: int = -1
    thinking: list[str] = field(default_factory=list)
    signature: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    has_input: bool = False  # a tool or json block got a non-empty input_json_delta
    start: int = 0  # a text block's first character in the content
    citations: list[Any] = field(default_factory=list)


class StreamConverter:
    def __init__(
        self,
        *,
        created: int,
        model: str,
        index: int = 0,
        include_usage: bool = False,
        json_tool: str | None = None,
        stream_id: str | None = None,
        usage_chunk: bool = True,
        legacy: bool = False,
    ) -> None:
        """``include_usage``: every chunk carries ``"usage": null`` and, unless ``usage_chunk`` is False, the
        stream ends with the usage chunk. ``usage_chunk=False`` is for one of ``n`` > 1 merged streams, whose
        single usage chunk (the choices' usage summed) the caller writes. Without ``include_usage``, neither.
        ``legacy``: the request had functions only, so a call streams as ``function_call`` deltas."""
        self._created = created
        self._model = model
        self._index = index
        self._include_usage = include_usage
        self._usage_chunk = include_usage and usage_chunk
        self._json_tool = json_tool
        self._legacy = legacy
        self._id = stream_id
        self._base: _Base | None = None
        self._blocks: dict[int, _Block] = {}
        self._tools = 0
        self._chars = 0
        self._after_server_tool = False  # a server tool's blocks came since the last text block
        self.claude_usage: dict[str, Any] = {}  # as Claude counts it, so far (checked where read: openai_usage)
        self.stop_reason: str | None = None  # Claude's
        self.finish_reason: FinishReason | None = None
        self.error_type: str | None = None  # the Claude error type the stream ended with, if it did
        self.done = False  # the stream has ended: message_stop, or an error
        self.failed = False  # it ended in an error (an error chunk was its last)

    @property
    def model(self) -> str:
        """The model the chunks name: the upstream's, once its message_start came."""
        return self._base["model"] if self._base is not None else self._model

    @property
    def usage(self) -> CompletionUsage:
        return openai_usage(cast(ClaudeUsage, self.claude_usage))

    def feed(self, event: Event) -> list[Chunk]:
        kind = event.get("type")
        if self.done:
            raise StreamProtocolError(f"stream event {kind!r} after the stream ended")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            return []  # an event type newer than this code: nothing an OpenAI client could use
        if self._base is None and kind not in ("message_start", "ping", "error"):
            raise StreamProtocolError(f"stream event {kind!r} before 'message_start'")
        try:
            return handler(self, event)
        except (AttributeError, TypeError, ValueError, KeyError) as e:
            # A field of the wrong type (a delta that is not an object, an index that is not a number):
            # the upstream broke the protocol; say so, never crash the stream.
            raise StreamProtocolError(f"malformed {kind!r} event from upstream: {type(e).__name__}") from e

    def finish(self) -> list[Chunk]:
        """The upstream stream ended. Without ``message_stop`` it was cut short: say so, never 'stop'."""
        if self.done:
            return []
        return self._failed("api_error", "upstream stream ended before message_stop")

    def fail(self, err: TranslatorError) -> list[Chunk]:
        """The stream broke (a broken event, a reset, a timeout): it ends in an error chunk (none once it has
        ended: nothing may follow its last chunk)."""
        if self.done:
            return []
        self.done = self.failed = True
        self.error_type = err.claude_type
        return [openai_error_body(err)]

    # --- one method per Claude event type ---

    def _message_start(self, event: Event) -> list[Chunk]:
        msg = event.get("message") or {}
        self.claude_usage.update(_usage(msg.get("usage")))
        self._base = {
            "id": self._id or completion_id(msg.get("id")),
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": msg.get("model") or self._model,
        }
        served = served_tier(msg.get("usage"))
        if served is not None:  # (on every chunk, as OpenAI's)
            self._base["service_tier"] = served
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, event: Event) -> list[Chunk]:
        block = event.get("content_block") or {}
        kind = block.get("type")
        state = _Block(_BLOCK_KINDS.get(kind, "other") if isinstance(kind, str) else "other")
        if state.kind == "tool" and not (isinstance(block.get("id"), str) and isinstance(block.get("name"), str)):
            raise StreamProtocolError("upstream sent a tool_use block without its id or name")
        self._blocks[int(event.get("index", -1))] = state
        if state.kind == "tool" and block.get("name") == self._json_tool:
            state.kind = "json"
        if state.kind in ("tool", "json"):
            state.data = block
        if state.kind == "tool":
            state.tool_index, self._tools = self._tools, self._tools + 1
            if self._legacy:
                return [self._chunk({"function_call": {"name": block["name"], "arguments": ""}})]
            call: ChoiceDeltaToolCall = {
                "index": state.tool_index,
                "id": block["id"],
                "type": "function",
                "function": {"name": block["name"], "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if state.kind == "text":
            return self._text_start(state, block)
        if state.kind == "redacted":
            state.data = block
        elif state.kind == "thinking" and block.get("thinking"):
            state.thinking.append(block["thinking"])
            return [self._chunk({"reasoning_content": block["thinking"]})]
        elif state.kind == "other" and isinstance(kind, str):  # a server tool's block: ran upstream, no form here
            self._after_server_tool = True
        return []

    def _text_start(self, state: _Block, block: Mapping[str, Any]) -> list[Chunk]:
        """A text block: after a server tool's blocks, a paragraph break first, as in ``response.py``."""
        chunks: list[Chunk] = [self._content(SERVER_TOOL_BREAK)] if self._after_server_tool and self._chars else []
        self._after_server_tool = False
        state.start = self._chars
        state.citations = list(block.get("citations") or [])
        if block.get("text"):
            chunks.append(self._content(block["text"]))
        return chunks

    def _block_delta(self, event: Event) -> list[Chunk]:
        state = self._block(event, "content_block_delta")
        delta = event.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta" and state.kind == "text":
            return [self._content(delta.get("text", ""))]
        if kind == "input_json_delta" and delta.get("partial_json"):
            state.has_input = True
            if state.kind == "tool":
                return [self._arguments(state, delta["partial_json"])]
            if state.kind == "json":
                return [self._content(delta["partial_json"])]
        elif kind == "thinking_delta" and delta.get("thinking"):
            state.thinking.append(delta["thinking"])
            return [self._chunk({"reasoning_content": delta["thinking"]})]
        elif kind == "signature_delta":
            state.signature += delta.get("signature", "")
        elif kind == "citations_delta" and state.kind == "text":
            state.citations.append(delta.get("citation"))
        # server-tool input, and delta types yet to come: no OpenAI form
        return []

    def _block_stop(self, event: Event) -> list[Chunk]:
        state = self._block(event, "content_block_stop")
        if state.kind == "thinking":
            block: ThinkingBlock = {"type": "thinking", "thinking": "".join(state.thinking),
                                    "signature": state.signature}
            return [self._chunk({"thinking_blocks": [block]})]
        if state.kind == "redacted":  # passed on as the upstream sent it
            return [self._chunk({"thinking_blocks": [cast(RedactedThinkingBlock, state.data)]})]
        if state.kind in ("tool", "json") and not state.has_input:
            return [self._empty_input(state)]
        if state.kind == "text" and state.citations:
            annotations = url_citations(state.citations, state.start, self._chars)
            return [self._chunk({"annotations": annotations})] if annotations else []
        return []

    def _message_delta(self, event: Event) -> list[Chunk]:
        usage = event.get("usage") or {}
        self.claude_usage.update(_usage({k: v for k, v in usage.items() if v is not None}))
        stop = self.stop_reason = (event.get("delta") or {}).get("stop_reason")
        # tool calls the client must run still finish as "tool_calls", even in JSON-tool mode
        self.finish_reason = finish_reason(stop, json_tool=None if self._tools else self._json_tool,
                                           legacy=self._legacy)
        return [self._chunk({}, self.finish_reason)]

    def _message_stop(self, event: Event) -> list[Chunk]:
        self.done = True
        if not self._usage_chunk:
            return []
        assert self._base is not None
        return [{**self._base, "choices": [], "usage": self.usage}]

    def _ping(self, event: Event) -> list[Chunk]:
        return []

    def _error(self, event: Event) -> list[Chunk]:
        err = event.get("error") or {}
        return self._failed(str(err.get("type") or "api_error"), str(err.get("message") or "upstream stream error"))

    # --- helpers ---

    def _content(self, text: str) -> ChatCompletionChunk:
        self._chars += len(text)  # annotation indexes count characters of the content
        return self._chunk({"content": text})

    def _empty_input(self, state: _Block) -> ChatCompletionChunk:
        """A tool called without arguments streams no input (or only ``""``): send the start block's input,
        ``{}``, as the non-streamed answer does, so the accumulated arguments parse as JSON."""
        arguments = orjson.dumps(state.data.get("input") or {}).decode()
        if state.kind == "json":
            return self._content(arguments)
        return self._arguments(state, arguments)

    def _arguments(self, state: _Block, arguments: str) -> ChatCompletionChunk:
        if self._legacy:
            return self._chunk({"function_call": {"arguments": arguments}})
        call: ChoiceDeltaToolCall = {"index": state.tool_index, "function": {"arguments": arguments}}
        return self._chunk({"tool_calls": [call]})

    def _block(self, event: Event, name: str) -> _Block:
        state = self._blocks.get(int(event.get("index", -1)))
        if state is None:
            raise StreamProtocolError(f"{name!r} for block {event.get('index')} without 'content_block_start'")
        return state

    def _failed(self, claude_type: str, message: str) -> list[Chunk]:
        self.done = self.failed = True
        self.error_type = claude_type
        return [openai_error_from_claude(claude_type, message)]

    def _chunk(self, delta: ChoiceDelta, finish: FinishReason | None = None) -> ChatCompletionChunk:
        assert self._base is not None
        choice: ChunkChoice = {"index": self._index, "delta": delta, "logprobs": None, "finish_reason": finish}
        base = self._base
        chunk: ChatCompletionChunk = {"id": base["id"], "object": base["object"], "created": base["created"],
                                      "model": base["model"], "choices": [choice]}
        if "service_tier" in base:
            chunk["service_tier"] = base["service_tier"]
        if self._include_usage:
            chunk["usage"] = None  # the spec: "All other chunks will also include a usage field, but with a null value"
        return chunk


_BLOCK_KINDS = {"text": "text", "tool_use": "tool", "thinking": "thinking", "redacted_thinking": "redacted"}

def _usage(value: object) -> dict[str, Any]:
    """The upstream's usage object as given (its counts are checked where they are read: openai_usage)."""
    return value if isinstance(value, dict) else {}


class _Base(TypedDict):
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    service_tier: NotRequired[str]


_HANDLERS: dict[str, Callable[[StreamConverter, Event], list[Chunk]]] = {
    "message_start": StreamConverter._message_start,
    "content_block_start": StreamConverter._block_start,
    "content_block_delta": StreamConverter._block_delta,
    "content_block_stop": StreamConverter._block_stop,
    "message_delta": StreamConverter._message_delta,
    "message_stop": StreamConverter._message_stop,
    "ping": StreamConverter._ping,
    "error": StreamConverter._error,
}
