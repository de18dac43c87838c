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

import functools
import itertools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from translator.convert.errors import openai_error_from_claude
from translator.convert.response import completion_id, finish_reason, url_citations
from translator.convert.usage import openai_usage
from translator.errors import UpstreamProtocolError

Chunk = dict[str, Any]


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
    head: bytes = b""  # a tool block's argument chunk, JSON, up to the fragment's string
    tail: bytes = b""  # and after it


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
    ) -> None:
        """``include_usage``: every chunk carries ``"usage": null`` and, unless ``usage_chunk`` is False, the
        stream ends with the usage chunk. ``usage_chunk=False`` is for one of ``n`` > 1 merged streams, whose
        single usage chunk (the choices' usage summed) the caller writes. Without ``include_usage``, neither."""
        self._created = created
        self._model = model
        self._index = index
        self._include_usage = include_usage
        self._usage_chunk = include_usage and usage_chunk
        self._json_tool = json_tool
        self._id = stream_id
        self._base: dict[str, Any] | None = None
        self._blocks: dict[int, _Block] = {}
        self._tools = 0
        self._chars = 0
        self._claude_usage: dict[str, Any] = {}
        self._text_head = b""  # a text chunk's JSON up to its content string (set by message_start)
        self._text_tail = b""  # and after it
        self._last_heads: _Heads | None = None  # feed_run's last block
        self.finish_reason: str | None = None
        self.done = False

    @property
    def usage(self) -> dict[str, Any]:
        return openai_usage(self._claude_usage)

    def feed(self, event: dict[str, Any]) -> list[Chunk]:
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

    def feed_run(self, region: bytes, start: int) -> tuple[int, bytes] | None:
        """The hot path of a stream, most of whose events are text or tool-argument deltas: ``region`` holds
        whole SSE events as the upstream sent them (LF line ends), and at ``start`` one begins. The
        consecutive text (or argument) deltas from there for the same block -> where the run ends, and
        the SSE lines of the chunks it gives (``data: <chunk JSON>`` and a blank line, one per delta), each
        delta's JSON string copied across as it came, no event object built or encoded. None when ``feed``
        must take the event instead (any other event or shape, a block of another kind, before
        message_start, a string that is not valid JSON): the caller feeds it as usual.

        The run is cut out, its strings checked (escapes, UTF-8) and measured by one parse as a JSON
        array: C code, one call each per run, not per event. A run reaches over at most ``FAST_DELTA_MAX``
        bytes (a bigger event is left to ``feed``, which parses it), and ends before a string that is not
        JSON (which ``feed`` then reports)."""
        if not self._text_head or self.done:
            return None
        run = _cut_run(region, start, self._last_heads) or _matched_run(region, start)
        if run is None:
            return None
        index, text, end, strings, values = run
        if self._last_heads is None or self._last_heads[0] != index or self._last_heads[1] != text:
            self._last_heads = (index, text, *_run_patterns(index, text)[2:])
        state = self._blocks.get(index)
        if state is None or state.kind not in (("text",) if text else ("tool", "json")):
            return None
        if state.kind != "tool":
            self._chars += sum(map(len, values))  # annotation indexes count characters of the content
        if not text:
            if b"" in strings:  # an empty argument fragment is no chunk (as in feed)
                strings = [string for string in strings if string]
            state.has_input = state.has_input or bool(strings)
        if not strings:
            return end, b""
        head, tail = (state.head, state.tail) if state.kind == "tool" else (self._text_head, self._text_tail)
        chunk_head, chunk_tail = b'data: ' + head + b'"', b'"' + tail + b"\n\n"  # (the strings' own quotes)
        return end, chunk_head + (chunk_tail + chunk_head).join(strings) + chunk_tail

    def finish(self) -> list[Chunk]:
        """The upstream stream ended. Without ``message_stop`` it was cut short: say so, never 'stop'."""
        if self.done:
            return []
        self.done = True
        return [openai_error_from_claude("api_error", "upstream stream ended before message_stop")]

    # --- one method per Claude event type ---

    def _message_start(self, event: dict[str, Any]) -> list[Chunk]:
        msg = event.get("message") or {}
        self._claude_usage.update(msg.get("usage") or {})
        self._base = {
            "id": self._id or completion_id(msg.get("id")),
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": msg.get("model") or self._model,
        }
        self._text_head, self._text_tail = self._template({"content": ""}, b"content")
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, event: dict[str, Any]) -> list[Chunk]:
        block = event.get("content_block") or {}
        kind = block.get("type")
        state = _Block(_BLOCK_KINDS.get(kind, "other") if isinstance(kind, str) else "other")
        self._blocks[int(event.get("index", -1))] = state
        if state.kind == "tool" and block.get("name") == self._json_tool:
            state.kind = "json"
        if state.kind in ("tool", "json"):
            state.data = block
        if state.kind == "tool":
            state.tool_index, self._tools = self._tools, self._tools + 1
            call = {
                "index": state.tool_index,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            state.head, state.tail = self._template(
                {"tool_calls": [{"index": state.tool_index, "function": {"arguments": ""}}]}, b"arguments"
            )
            return [self._chunk({"tool_calls": [call]})]
        if state.kind == "text":
            state.start = self._chars
            state.citations = list(block.get("citations") or [])
        if state.kind == "redacted":
            state.data = block
        elif state.kind == "text" and block.get("text"):
            return [self._content(block["text"])]
        elif state.kind == "thinking" and block.get("thinking"):
            state.thinking.append(block["thinking"])
            return [self._chunk({"reasoning_content": block["thinking"]})]
        return []

    def _block_delta(self, event: dict[str, Any]) -> list[Chunk]:
        state = self._block(event, "content_block_delta")
        delta = event.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta" and state.kind == "text":
            return [self._content(delta.get("text", ""))]
        if kind == "input_json_delta" and delta.get("partial_json"):
            state.has_input = True
            if state.kind == "tool":
                fragment = {"index": state.tool_index, "function": {"arguments": delta["partial_json"]}}
                return [self._chunk({"tool_calls": [fragment]})]
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

    def _block_stop(self, event: dict[str, Any]) -> list[Chunk]:
        state = self._block(event, "content_block_stop")
        if state.kind == "thinking":
            block = {"type": "thinking", "thinking": "".join(state.thinking), "signature": state.signature}
            return [self._chunk({"thinking_blocks": [block]})]
        if state.kind == "redacted":
            return [self._chunk({"thinking_blocks": [state.data]})]
        if state.kind in ("tool", "json") and not state.has_input:
            return [self._empty_input(state)]
        if state.kind == "text" and state.citations:
            annotations = url_citations(state.citations, state.start, self._chars)
            return [self._chunk({"annotations": annotations})] if annotations else []
        return []

    def _message_delta(self, event: dict[str, Any]) -> list[Chunk]:
        usage = event.get("usage") or {}
        self._claude_usage.update({k: v for k, v in usage.items() if v is not None})
        stop = (event.get("delta") or {}).get("stop_reason")
        # tool calls the client must run still finish as "tool_calls", even in JSON-tool mode
        self.finish_reason = finish_reason(stop, json_tool=None if self._tools else self._json_tool)
        return [self._chunk({}, self.finish_reason)]

    def _message_stop(self, event: dict[str, Any]) -> list[Chunk]:
        self.done = True
        if not self._usage_chunk:
            return []
        assert self._base is not None
        return [{**self._base, "choices": [], "usage": self.usage}]

    def _ping(self, event: dict[str, Any]) -> list[Chunk]:
        return []

    def _error(self, event: dict[str, Any]) -> list[Chunk]:
        self.done = True
        err = event.get("error") or {}
        message = str(err.get("message") or "upstream stream error")
        return [openai_error_from_claude(str(err.get("type") or "api_error"), message)]

    # --- helpers ---

    def _content(self, text: str) -> Chunk:
        self._chars += len(text)  # annotation indexes count characters of the content
        return self._chunk({"content": text})

    def _empty_input(self, state: _Block) -> Chunk:
        """A tool called without arguments streams no input (or only ``""``): send the start block's input,
        ``{}``, as the non-streamed answer does, so the accumulated arguments parse as JSON."""
        arguments = orjson.dumps(state.data.get("input") or {}).decode()
        if state.kind == "json":
            return self._content(arguments)
        return self._chunk({"tool_calls": [{"index": state.tool_index, "function": {"arguments": arguments}}]})

    def _block(self, event: dict[str, Any], name: str) -> _Block:
        state = self._blocks.get(int(event.get("index", -1)))
        if state is None:
            raise StreamProtocolError(f"{name!r} for block {event.get('index')} without 'content_block_start'")
        return state

    def _template(self, delta: dict[str, Any], key: bytes) -> tuple[bytes, bytes]:
        """A chunk's JSON around ``delta``'s empty ``key`` string, for ``feed_run`` to put the delta's own
        JSON string between: the same bytes orjson would write for the whole chunk. (No string before it
        can hold ``"key":""``: a quote inside a JSON string is escaped.)"""
        marker = b'"' + key + b'":'
        head, _, tail = orjson.dumps(self._chunk(delta)).partition(marker + b'""')
        return head + marker, tail

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> Chunk:
        assert self._base is not None
        chunk: Chunk = {
            **self._base,
            "choices": [{"index": self._index, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self._include_usage:
            chunk["usage"] = None  # the spec: "All other chunks will also include a usage field, but with a null value"
        return chunk


# The regexes of _matched_run, for the runs _cut_run leaves (optional padding before the closing braces, as
# some gateways add; a string that is not JSON): the first event (its block index, of ten digits at most,
# as int() refuses thousands; its delta type; its string); per block and type, a run of them, and one (its
# string: the only group).
_ONE_DELTA = re.compile(  # any one of them: its block index, "text" for a text delta, and its string
    rb'event: content_block_delta\ndata: \{"type":"content_block_delta","index":(0|[1-9][0-9]{0,9}),"delta":\{'
    rb'"type":"(?:text_delta","(text)|input_json_delta","partial_json)":("[^"\\]*(?:\\.[^"\\]*)*")\}[ \t]*\}[ \t]*\n\n'
)
_RUN_EVENT = (
    rb'event: content_block_delta\ndata: \{"type":"content_block_delta","index":%d,"delta":\{'
    rb'"type":"%s","%s":(%s"[^"\\]*(?:\\.[^"\\]*)*")\}[ \t]*\}[ \t]*\n\n'
)

_RUN_EVENT_HEAD = (  # the same event up to its string, as plain bytes
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":{"type":"%s","%s":'
)
_QUOTED_TAIL = b'"}}\n\n'  # and from its closing quote on
_DELTA_HEAD = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'  # then the index,
_TEXT_KEY = b'"delta":{"type":"text_delta","text":"'  # and a comma before either
_ARGUMENTS_KEY = b'"delta":{"type":"input_json_delta","partial_json":"'
_CUT_EVENTS = 64


# A run: (block index, text or not, where it ends, its strings without their quotes, their values).
_Run = tuple[int, bool, int, list[bytes], list[str]]
# A block's delta events: (block index, text or not, head, a test for it, what follows it).
_Heads = tuple[int, bool, bytes, Callable[[bytes], bool], Callable[[bytes], bytes]]


def _cut_run(region: bytes, start: int, last: _Heads | None) -> _Run | None:
    """The run at ``start`` where every event in it is exactly as Claude writes them (a head, one JSON
    string, ``_QUOTED_TAIL``), found by bytes searches alone; else None, and the regex reads it. ``last``:
    the block and heads of the last run, tried first (one stream's deltas are mostly one block's).

    Each string is checked by one parse of them all: joined as ``["s1",<LF>"s2",...]``, the line feeds lie
    outside the strings (inside one a raw line feed is no JSON), so the array holds exactly as many as
    there are events only where each string ends at its event's own closing quote."""
    if last is not None and region.startswith(last[2], start):  # the block of the last run goes on
        index, text, head, starts, string_of = last
    else:
        at = start + len(_DELTA_HEAD)
        comma = region.find(b",", at, at + 12)
        if comma <= at or not region.startswith(_DELTA_HEAD, start):
            return None
        digits = region[at:comma]
        text = region.startswith(_TEXT_KEY, comma + 1)
        if not digits.isdigit() or not (text or region.startswith(_ARGUMENTS_KEY, comma + 1)):
            return None
        index = int(digits)
        head, starts, string_of = _run_patterns(index, text)[2:]
        if not region.startswith(head, start):  # (the head says "0" where the event says "00")
            return None
    limit = start + FAST_DELTA_MAX
    first = region.find(_QUOTED_TAIL, start + len(head), limit)
    if first < 0:
        return None
    end = first + len(_QUOTED_TAIL)
    if not region.startswith(head, end):  # one event alone, as a slow stream brings them
        raw = region[start + len(head) - 1 : end - len(_QUOTED_TAIL) + 1]  # (with its quotes)
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        return (index, text, end, [raw[1:-1]], [value]) if type(value) is str else None
    pieces = region[start:limit].split(_QUOTED_TAIL, _CUT_EVENTS)
    pieces.pop()  # what follows the last tail: no whole event
    strings = list(map(string_of, pieces))
    body = head + (_QUOTED_TAIL + head).join(strings) + _QUOTED_TAIL
    if not region.startswith(body, start):  # a piece that is not such an event: the run ends before it
        pieces = list(itertools.takewhile(starts, pieces))
        strings = list(map(string_of, pieces))
        body = head + (_QUOTED_TAIL + head).join(strings) + _QUOTED_TAIL
    try:
        values = orjson.loads(b'["' + b'",\n"'.join(strings) + b'"]')
    except orjson.JSONDecodeError:
        return None
    return (index, text, start + len(body), strings, values) if len(values) == len(strings) else None


def _matched_run(region: bytes, start: int) -> _Run | None:
    """``_cut_run`` for any other run, by regex: padding before the braces, a string that is not JSON
    (the run then ends before it)."""
    first = _ONE_DELTA.match(region, start, start + FAST_DELTA_MAX)
    if first is None:
        return None
    index, text = int(first[1]), first[2] is not None
    run, one = _run_patterns(index, text)[:2]
    match = run.match(region, start, start + FAST_DELTA_MAX)
    if match is None:  # (never: the first event alone is a run)
        return None
    end = match.end()
    raws = one.findall(region, start, end)
    try:
        values = orjson.loads(b"[" + b",".join(raws) + b"]")
    except orjson.JSONDecodeError:
        good = _valid_prefix(one, region, start, end)  # (the rare path: one parse per event)
        if good is None:
            return None
        end, raws = good
        values = orjson.loads(b"[" + b",".join(raws) + b"]")
    return index, text, end, [raw[1:-1] for raw in raws], values


@functools.lru_cache(maxsize=64)  # block indexes are small numbers; the cache is bounded all the same
def _run_patterns(
    index: int, text: bool
) -> tuple[re.Pattern[bytes], re.Pattern[bytes], bytes, Callable[[bytes], bool], Callable[[bytes], bytes]]:
    """The run's pattern and one event's; an event's head (up to its string's opening quote), a test for
    bytes that start with it, and what follows it (C callables: ``_cut_run`` maps them over the events)."""
    kind, key = (b"text_delta", b"text") if text else (b"input_json_delta", b"partial_json")
    run = re.compile(b"(?:" + _RUN_EVENT % (index, kind, key, b"?:") + b")+")
    one = re.compile(_RUN_EVENT % (index, kind, key, b""))
    head = _RUN_EVENT_HEAD % (index, kind, key) + b'"'
    return run, one, head, operator.methodcaller("startswith", head), operator.itemgetter(slice(len(head), None))


def _valid_prefix(one: re.Pattern[bytes], region: bytes, start: int, end: int) -> tuple[int, list[bytes]] | None:
    """The events of a run before its first string that is not JSON: where they end, and their strings
    (None if the first is not)."""
    raws: list[bytes] = []
    stop = start
    for event in one.finditer(region, start, end):
        try:
            orjson.loads(event[1])
        except orjson.JSONDecodeError:
            break
        raws.append(event[1])
        stop = event.end()
    return (stop, raws) if raws else None


# Bigger events go through feed: for them a regex costs more than orjson's parse, and it would hold the
# event loop (and every other stream) while it runs. Real deltas are a few words.
FAST_DELTA_MAX = 16 * 1024

_BLOCK_KINDS = {"text": "text", "tool_use": "tool", "thinking": "thinking", "redacted_thinking": "redacted"}

_HANDLERS = {
    "message_start": StreamConverter._message_start,
    "content_block_start": StreamConverter._block_start,
    "content_block_delta": StreamConverter._block_delta,
    "content_block_stop": StreamConverter._block_stop,
    "message_delta": StreamConverter._message_delta,
    "message_stop": StreamConverter._message_stop,
    "ping": StreamConverter._ping,
    "error": StreamConverter._error,
}
