"""Claude stream events -> OpenAI Responses stream events (``POST /v1/responses`` with ``stream: true``), one
event at a time, on ``StreamConverter``'s contract: ``feed(event)`` returns the events it produces, ``finish()``
ends a stream cut short, ``fail(err)`` one that broke; the route's relay writes each as it comes.

The events, in the order OpenAI sends them (openapi.yaml ResponseStreamEvent; the recordings in
tests/fixtures/responses), ``sequence_number`` counting every event from 0:
- ``response.created``, ``response.in_progress`` at message_start: the response in_progress, output empty;
- per output item, one item at a time (items never interleave):
  ``response.output_item.added`` (the item in_progress, empty), then
  message: ``response.content_part.added``, ``response.output_text.delta`` ...,
  ``response.output_text.annotation.added`` ... (at each cited text block's end), ``response.output_text.done``,
  ``response.content_part.done``; a refusal part after that: ``response.content_part.added``,
  ``response.refusal.delta``, ``response.refusal.done``, ``response.content_part.done``;
  reasoning: ``response.reasoning_summary_part.added``, ``response.reasoning_summary_text.delta`` ...,
  ``response.reasoning_summary_text.done``, ``response.reasoning_summary_part.done`` (none without text);
  function_call: ``response.function_call_arguments.delta`` ..., ``response.function_call_arguments.done``;
  then ``response.output_item.done`` with the whole item, as the final response holds it;
- ``response.completed``, or ``response.incomplete`` (a length stop), at message_stop: the whole response;
- on an error instead: ``error``, then ``response.failed`` (after created and in_progress if none came yet).

An item is finished when the next one starts or the message ends (message_delta), not at its block's end:
consecutive text blocks write one message, and whether the last item was cut short (incomplete) is known only
at message_delta. A reasoning item's ``encrypted_content`` needs the block's signature: it first comes in
output_item.done. Argument and JSON-tool fragments stream as Claude sends them; the done events and the items
carry the compact JSON of the same value (``compact_json``), as the non-streamed response does, so ``response``
(set once the stream is done) equals ``response_from_message`` of the same answer.

The ``error`` event carries its details both flat (code, message, param: the spec's ResponseErrorEvent) and
nested under ``error`` (what api.openai.com sends: the openai SDKs raise on it, as they do for OpenAI's own).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from translator.convert.response import SERVER_TOOL_BREAK
from translator.convert.responses_response import (
    NO_NAMESPACES,
    REFUSAL,
    FunctionCallItem,
    MessageItem,
    Namespaces,
    OutputItem,
    OutputRefusal,
    OutputText,
    ReasoningItem,
    Response,
    ResponseError,
    URLCitationAnnotation,
    compact_json,
    function_call_item,
    incomplete_reason,
    item_id,
    message_item,
    output_text,
    reasoning_item,
    refusal_part,
    response_object,
    response_usage,
    summary_text,
    url_annotations,
)
from translator.convert.stream import StreamProtocolError
from translator.convert.tables import (
    OPENAI_ERROR,
    OPENAI_ERROR_DEFAULT,
    RESPONSE_ERROR_CODE,
    RESPONSE_ERROR_CODE_DEFAULT,
)
from translator.convert.usage import served_tier
from translator.convert.wire import (
    IncompleteReason,
    ItemStatus,
    RedactedThinkingBlock,
    ResponseStatus,
    ThinkingBlock,
)
from translator.errors import TranslatorError

Event = Mapping[str, Any]  # one Claude stream event as parsed: the upstream's, so every field is checked as read
ResponsesEvent = dict[str, Any]  # one Responses stream event (the tests check them against the openai SDK's types)
ItemKind = Literal["message", "reasoning", "function_call"]


@dataclass(slots=True)
class _Block:
    """One Claude content block, as its events come."""

    kind: str  # text | json | tool | thinking | redacted | other
    start: Mapping[str, Any]  # the block as content_block_start gave it
    wrote: bool = False  # text, json: it has written into the message
    offset: int = 0  # text: the message text's length before it (its annotations' span starts there)
    first_piece: int = 0  # json: its first piece of the message text
    citations: list[Any] = field(default_factory=list)
    input: list[str] = field(default_factory=list)  # tool: the input's fragments
    thinking: list[str] = field(default_factory=list)
    signature: str = ""
    settled: bool = False  # tool: its input is whole (content_block_stop came)


@dataclass(slots=True)
class _Item:
    """The output item being written."""

    kind: ItemKind
    index: int
    id: str
    block: _Block | None = None  # reasoning, function_call: the block it is made of
    pieces: list[str] = field(default_factory=list)  # message: its text as written
    chars: int = 0  # message: the text's length
    annotations: list[URLCitationAnnotation] = field(default_factory=list)
    content: list[OutputText | OutputRefusal] = field(default_factory=list)  # message: its finished parts
    part_open: bool = False  # message: its output_text part is open; reasoning: its summary part


class ResponsesStreamConverter:
    def __init__(
        self,
        *,
        response_id: str,
        created_at: int,
        model: str,
        echo: Mapping[str, Any],
        json_tool: str | None = None,
        namespaces: Namespaces = NO_NAMESPACES,
    ) -> None:
        """``echo``: the request's fields the response repeats (``request_echo``); ``namespaces``: the
        request's flattened namespace functions, whose calls get their namespace back."""
        self._id = response_id
        self._created_at = created_at
        self._model = model
        self._echo = echo
        self._json_tool = json_tool
        self._namespaces = namespaces
        self._seq = 0
        self._started = False  # response.created went out
        self._blocks: dict[int, _Block] = {}
        self._item: _Item | None = None
        self._output: list[OutputItem] = []  # the finished items
        self._after_server_tool = False  # a server tool's blocks came since the last text block
        self._ended = False  # the output is finished (message_delta)
        self.claude_usage: dict[str, Any] = {}  # as Claude counts it, so far (checked where read: openai_usage)
        self.stop_reason: str | None = None  # Claude's
        self.error_type: str | None = None  # the Claude error type the stream ended with, if it did
        self.done = False  # the stream has ended: message_stop, or an error
        self.failed = False  # it ended in an error (response.failed was its last event)
        self.response: Response | None = None  # the final response object (completed, incomplete or failed)

    def feed(self, event: Event) -> list[ResponsesEvent]:
        kind = event.get("type")
        if self.done:
            raise StreamProtocolError(f"stream event {kind!r} after the stream ended")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            return []  # an event type newer than this code: nothing an OpenAI client could use
        if not self._started and kind not in ("message_start", "ping", "error"):
            raise StreamProtocolError(f"stream event {kind!r} before 'message_start'")
        seq, finished = self._seq, len(self._output)
        try:
            return handler(self, event)
        except (AttributeError, TypeError, ValueError, KeyError) as e:
            # A field of the wrong type: the upstream broke the protocol; say so, never crash the stream. What
            # the event made before it broke goes with it: its sequence numbers are not spent (the error event
            # follows the last event sent) nor its finished items (response.failed holds those sent as done).
            self._seq = seq
            del self._output[finished:]
            raise StreamProtocolError(f"malformed {kind!r} event from upstream: {type(e).__name__}") from e

    def finish(self) -> list[ResponsesEvent]:
        """The upstream stream ended. Without ``message_stop`` it was cut short: say so, never 'completed'."""
        if self.done:
            return []
        return self._failed("api_error", "upstream stream ended before message_stop")

    def fail(self, err: TranslatorError) -> list[ResponsesEvent]:
        """The stream broke (a broken event, a reset, a timeout): it ends in ``response.failed``."""
        if self.done:
            return []
        return self._failed(err.claude_type, err.message, err.param)

    # --- one method per Claude event type ---

    def _message_start(self, event: Event) -> list[ResponsesEvent]:
        if self._started:
            raise StreamProtocolError("a second 'message_start' in one stream")
        msg = event.get("message") or {}
        self.claude_usage.update(_usage(msg.get("usage")))
        self._model = msg.get("model") or self._model
        return self._start()

    def _block_start(self, event: Event) -> list[ResponsesEvent]:
        block = event.get("content_block") or {}
        kind = block.get("type")
        state = _Block(_BLOCK_KINDS.get(kind, "other") if isinstance(kind, str) else "other", block)
        if state.kind == "tool" and self._json_tool is not None and block.get("name") == self._json_tool:
            state.kind = "json"
        self._blocks[int(event.get("index", -1))] = state
        return _STARTS[state.kind](self, state)

    def _block_delta(self, event: Event) -> list[ResponsesEvent]:
        state = self._block(event, "content_block_delta")
        delta = event.get("delta") or {}
        kind = delta.get("type")
        handler = _DELTAS.get(kind) if isinstance(kind, str) else None
        # server-tool input, and delta types yet to come: no Responses form
        return handler(self, state, delta) if handler else []

    def _block_stop(self, event: Event) -> list[ResponsesEvent]:
        state = self._block(event, "content_block_stop")
        return _STOPS[state.kind](self, state)

    def _message_delta(self, event: Event) -> list[ResponsesEvent]:
        usage = event.get("usage") or {}
        self.claude_usage.update(_usage({k: v for k, v in usage.items() if v is not None}))
        self.stop_reason = (event.get("delta") or {}).get("stop_reason")
        return self._end_output()

    def _message_stop(self, event: Event) -> list[ResponsesEvent]:
        events = self._end_output()  # (if no message_delta came)
        reason = incomplete_reason(self.stop_reason)
        status: ResponseStatus = "incomplete" if reason else "completed"
        self.response = self._envelope(status, incomplete=reason)
        self.done = True
        return [*events, self._emit(f"response.{status}", response=self.response)]

    def _ping(self, event: Event) -> list[ResponsesEvent]:
        return []

    def _error(self, event: Event) -> list[ResponsesEvent]:
        err = event.get("error") or {}
        return self._failed(str(err.get("type") or "api_error"), str(err.get("message") or "upstream stream error"))

    # --- block starts, deltas and stops, by block kind ---

    def _start_text(self, state: _Block) -> list[ResponsesEvent]:
        state.citations = list(state.start.get("citations") or [])
        return self._server_tool_break() + self._write(state, state.start.get("text") or "")

    def _server_tool_break(self) -> list[ResponsesEvent]:
        """After a server tool's blocks, the message being written goes on in a new paragraph (as in
        ``responses_response``)."""
        after, self._after_server_tool = self._after_server_tool, False
        item = self._item
        if not (after and item is not None and item.kind == "message" and item.chars):
            return []
        return self._write(_Block("text", {}), SERVER_TOOL_BREAK)  # (a block of its own: no citation counts it)

    def _start_tool(self, state: _Block) -> list[ResponsesEvent]:
        return self._open("function_call", state)

    def _start_thinking(self, state: _Block) -> list[ResponsesEvent]:
        events = self._open("reasoning", state)
        state.signature = state.start.get("signature") or ""
        return events + self._think(state, state.start.get("thinking") or "")

    def _start_redacted(self, state: _Block) -> list[ResponsesEvent]:
        return self._open("reasoning", state)

    def _nothing(self, state: _Block) -> list[ResponsesEvent]:
        return []  # a JSON tool writes once its input comes

    def _server_tool(self, state: _Block) -> list[ResponsesEvent]:
        """A server tool's block (or one of a type yet to come): ran upstream, no item."""
        self._after_server_tool = self._after_server_tool or isinstance(state.start.get("type"), str)
        return []

    def _text_delta(self, state: _Block, delta: Mapping[str, Any]) -> list[ResponsesEvent]:
        return self._write(state, delta.get("text") or "") if state.kind == "text" else []

    def _input_delta(self, state: _Block, delta: Mapping[str, Any]) -> list[ResponsesEvent]:
        fragment = delta.get("partial_json")
        if not fragment or state.kind not in ("tool", "json"):
            return []
        if state.kind == "json":
            return self._write(state, fragment)
        state.input.append(fragment)
        return [self._arguments_delta(state, fragment)]

    def _thinking_delta(self, state: _Block, delta: Mapping[str, Any]) -> list[ResponsesEvent]:
        return self._think(state, delta.get("thinking") or "") if state.kind == "thinking" else []

    def _signature_delta(self, state: _Block, delta: Mapping[str, Any]) -> list[ResponsesEvent]:
        state.signature += delta.get("signature") or ""
        return []

    def _citations_delta(self, state: _Block, delta: Mapping[str, Any]) -> list[ResponsesEvent]:
        if state.kind == "text":
            state.citations.append(delta.get("citation"))
        return []

    def _stop_text(self, state: _Block) -> list[ResponsesEvent]:
        item = self._item
        if not state.wrote or item is None or item.kind != "message":
            return []
        events = []
        for annotation in url_annotations(state.citations, state.offset, item.chars):
            events.append(self._emit("response.output_text.annotation.added", item_id=item.id,
                                     output_index=item.index, content_index=len(item.content),
                                     annotation_index=len(item.annotations), annotation=annotation))
            item.annotations.append(annotation)
        return events

    def _stop_json(self, state: _Block) -> list[ResponsesEvent]:
        if not state.wrote:  # a JSON tool called without input: its start block's, "{}"
            return self._write(state, orjson.dumps(state.start.get("input") or {}).decode())
        item = self._item
        if item is not None and item.kind == "message":  # the done text holds the JSON compact, as a message's
            item.pieces[state.first_piece :] = [compact_json("".join(item.pieces[state.first_piece :]))]
            item.chars = sum(map(len, item.pieces))
        return []

    def _stop_tool(self, state: _Block) -> list[ResponsesEvent]:
        state.settled = True
        if state.input:
            return []
        # A tool called without arguments streams none (or only ""): send its start block's input, "{}", as
        # the non-streamed response has it, so that the accumulated arguments parse.
        fragment = orjson.dumps(state.start.get("input") or {}).decode()
        state.input.append(fragment)
        return [self._arguments_delta(state, fragment)]

    # --- items ---

    def _open(self, kind: ItemKind, block: _Block | None) -> list[ResponsesEvent]:
        """Finish the open item; start the next."""
        events = self._close()
        index = len(self._output)
        item = self._item = _Item(kind, index, item_id(kind, self._id, index), block)
        added: OutputItem
        if kind == "message":
            added = message_item(item.id, [], "in_progress")
        elif kind == "reasoning":
            added = {"id": item.id, "type": "reasoning", "summary": []}
        else:
            assert block is not None
            added = function_call_item(item.id, call_id=block.start["id"], name=block.start["name"], arguments="",
                                       status="in_progress", namespaces=self._namespaces)
        return [*events, self._emit("response.output_item.added", output_index=index, item=added)]

    def _write(self, state: _Block, piece: str) -> list[ResponsesEvent]:
        """Text for the message (opened if none is), in its output_text part (opened if it is not)."""
        if not piece:
            return []
        item = self._item
        events = [] if item is not None and item.kind == "message" else self._open("message", None)
        item = self._item
        assert item is not None
        if not item.part_open:
            item.part_open = True
            events.append(self._emit("response.content_part.added", item_id=item.id, output_index=item.index,
                                     content_index=len(item.content), part=output_text("", [])))
        if not state.wrote:
            state.wrote, state.offset, state.first_piece = True, item.chars, len(item.pieces)
        item.pieces.append(piece)
        item.chars += len(piece)
        events.append(self._emit("response.output_text.delta", **self._text_fields(item, piece)))
        return events

    def _text_fields(self, item: _Item, piece: str) -> dict[str, Any]:
        """An output_text.delta event's fields (``fastpath`` writes them from a template made by this)."""
        return {"item_id": item.id, "output_index": item.index, "content_index": len(item.content), "delta": piece,
                "logprobs": []}

    def _think(self, state: _Block, text: str) -> list[ResponsesEvent]:
        item = self._item
        if not text or item is None or item.block is not state:
            return []
        state.thinking.append(text)
        events = []
        if not item.part_open:
            item.part_open = True
            events.append(self._emit("response.reasoning_summary_part.added", item_id=item.id,
                                     output_index=item.index, summary_index=0, part=summary_text("")))
        events.append(self._emit("response.reasoning_summary_text.delta", item_id=item.id, output_index=item.index,
                                 summary_index=0, delta=text))
        return events

    def _arguments_delta(self, state: _Block, fragment: str) -> ResponsesEvent:
        item = self._item
        if item is None or item.block is not state:
            raise StreamProtocolError("tool input after its block's item ended")
        return self._emit("response.function_call_arguments.delta", item_id=item.id, output_index=item.index,
                          delta=fragment)

    def _end_output(self) -> list[ResponsesEvent]:
        """The message is over (message_delta): a refusal part if it was refused, then the last item finished."""
        if self._ended:
            return []
        self._ended = True
        events = self._refusal() if self.stop_reason == "refusal" else []
        return events + self._close(incomplete=incomplete_reason(self.stop_reason) is not None)

    def _refusal(self) -> list[ResponsesEvent]:
        item = self._item
        events = [] if item is not None and item.kind == "message" else self._open("message", None)
        item = self._item
        assert item is not None
        events += self._close_text(item)
        where = {"item_id": item.id, "output_index": item.index, "content_index": len(item.content)}
        events += [
            self._emit("response.content_part.added", **where, part=refusal_part("")),
            self._emit("response.refusal.delta", **where, delta=REFUSAL),
            self._emit("response.refusal.done", **where, refusal=REFUSAL),
            self._emit("response.content_part.done", **where, part=refusal_part(REFUSAL)),
        ]
        item.content.append(refusal_part(REFUSAL))
        return events

    def _close(self, *, incomplete: bool = False) -> list[ResponsesEvent]:
        """Finish the open item, if one is: its last events, then output_item.done with the whole item."""
        item = self._item
        if item is None:
            return []
        status: ItemStatus = "incomplete" if incomplete else "completed"
        events, done = _CLOSERS[item.kind](self, item, status)
        self._item = None
        self._output.append(done)
        return [*events, self._emit("response.output_item.done", output_index=item.index, item=done)]

    def _close_message(self, item: _Item, status: ItemStatus) -> tuple[list[ResponsesEvent], OutputItem]:
        events = self._close_text(item)
        done: MessageItem = message_item(item.id, item.content, status)
        return events, done

    def _close_text(self, item: _Item) -> list[ResponsesEvent]:
        if not item.part_open:
            return []
        item.part_open = False
        text = "".join(item.pieces)
        part = output_text(text, item.annotations)
        where = {"item_id": item.id, "output_index": item.index, "content_index": len(item.content)}
        item.content.append(part)
        return [self._emit("response.output_text.done", **where, text=text, logprobs=[]),
                self._emit("response.content_part.done", **where, part=part)]

    def _close_reasoning(self, item: _Item, status: ItemStatus) -> tuple[list[ResponsesEvent], OutputItem]:
        state = item.block
        assert state is not None
        block: ThinkingBlock | RedactedThinkingBlock
        if state.kind == "thinking":
            block = {"type": "thinking", "thinking": "".join(state.thinking), "signature": state.signature}
        else:  # passed on as the upstream sent it
            block = {"type": "redacted_thinking", "data": str(state.start.get("data") or "")}
        done: ReasoningItem = reasoning_item(item.id, block)
        if not item.part_open:
            return [], done
        where = {"item_id": item.id, "output_index": item.index, "summary_index": 0}
        text = done["summary"][0]["text"]
        return [self._emit("response.reasoning_summary_text.done", **where, text=text),
                self._emit("response.reasoning_summary_part.done", **where, part=summary_text(text))], done

    def _close_call(self, item: _Item, status: ItemStatus) -> tuple[list[ResponsesEvent], OutputItem]:
        state = item.block
        assert state is not None
        events = [] if state.settled else self._stop_tool(state)  # its block never stopped (cut by max_tokens)
        arguments = compact_json("".join(state.input))
        name = state.start["name"]
        done: FunctionCallItem = function_call_item(item.id, call_id=state.start["id"], name=name,
                                                    arguments=arguments, status=status, namespaces=self._namespaces)
        return [*events, self._emit("response.function_call_arguments.done", item_id=item.id, name=done["name"],
                                    output_index=item.index, arguments=arguments)], done

    # --- the response ---

    def _start(self) -> list[ResponsesEvent]:
        self._started = True
        return [self._emit("response.created", response=self._envelope("in_progress")),
                self._emit("response.in_progress", response=self._envelope("in_progress"))]

    def _failed(self, claude_type: str, message: str, param: str | None = None) -> list[ResponsesEvent]:
        events = [] if self._started else self._start()
        oa_type, code = OPENAI_ERROR_DEFAULT[0], RESPONSE_ERROR_CODE_DEFAULT
        if claude_type in OPENAI_ERROR:  # (narrows the string to a ClaudeErrorType)
            oa_type, code = OPENAI_ERROR[claude_type][0], RESPONSE_ERROR_CODE.get(claude_type, code)
        error: ResponseError = {"code": code, "message": message}
        events.append(self._emit("error", code=code, message=message, param=param,
                                 error={"type": oa_type, "code": code, "message": message, "param": param}))
        self.response = self._envelope("failed", error=error)
        self.done = self.failed = True
        self.error_type = claude_type
        return [*events, self._emit("response.failed", response=self.response)]

    def _envelope(
        self, status: ResponseStatus, *, error: ResponseError | None = None, incomplete: IncompleteReason | None = None
    ) -> Response:
        usage = response_usage(self.claude_usage) if status != "in_progress" and self.claude_usage else None
        output = self._output if status != "in_progress" else []
        return response_object(response_id=self._id, created_at=self._created_at, model=self._model,
                               echo=self._echo, status=status, output=output, usage=usage, error=error,
                               incomplete=incomplete, served=served_tier(self.claude_usage))

    def _emit(self, kind: str, **fields: Any) -> ResponsesEvent:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def _block(self, event: Event, name: str) -> _Block:
        state = self._blocks.get(int(event.get("index", -1)))
        if state is None:
            raise StreamProtocolError(f"{name!r} for block {event.get('index')} without 'content_block_start'")
        return state


_BLOCK_KINDS = {"text": "text", "tool_use": "tool", "thinking": "thinking", "redacted_thinking": "redacted"}


def _usage(value: object) -> dict[str, Any]:
    """The upstream's usage object as given (its counts are checked where they are read: openai_usage)."""
    return value if isinstance(value, dict) else {}


_C = ResponsesStreamConverter
_HANDLERS: dict[str, Callable[[_C, Event], list[ResponsesEvent]]] = {
    "message_start": _C._message_start,
    "content_block_start": _C._block_start,
    "content_block_delta": _C._block_delta,
    "content_block_stop": _C._block_stop,
    "message_delta": _C._message_delta,
    "message_stop": _C._message_stop,
    "ping": _C._ping,
    "error": _C._error,
}
_STARTS: dict[str, Callable[[_C, _Block], list[ResponsesEvent]]] = {
    "text": _C._start_text,
    "json": _C._nothing,
    "tool": _C._start_tool,
    "thinking": _C._start_thinking,
    "redacted": _C._start_redacted,
    "other": _C._server_tool,
}
_DELTAS: dict[str, Callable[[_C, _Block, Mapping[str, Any]], list[ResponsesEvent]]] = {
    "text_delta": _C._text_delta,
    "input_json_delta": _C._input_delta,
    "thinking_delta": _C._thinking_delta,
    "signature_delta": _C._signature_delta,
    "citations_delta": _C._citations_delta,
}
_STOPS: dict[str, Callable[[_C, _Block], list[ResponsesEvent]]] = {
    "text": _C._stop_text,
    "json": _C._stop_json,
    "tool": _C._stop_tool,
    "thinking": _C._nothing,
    "redacted": _C._nothing,
    "other": _C._server_tool,
}
_CLOSERS: dict[ItemKind, Callable[[_C, _Item, ItemStatus], tuple[list[ResponsesEvent], OutputItem]]] = {
    "message": _C._close_message,
    "reasoning": _C._close_reasoning,
    "function_call": _C._close_call,
}
