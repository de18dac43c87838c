"""The fast path for what long streams are made of: runs of text deltas, read from the upstream's bytes and
written as the client's bytes without a parse, a dict or a serialization per event.

The plain path (``translator.sse`` decodes each event, orjson parses it, the converter's ``feed`` builds the
client's chunk or event, orjson and the framing write it) stays the reference, and the only path for anything
else. This module holds the two halves of the shortcut:

- ``text_runs(data)`` finds, in one upstream read, the runs of ``content_block_delta`` events carrying a
  ``text_delta``, in the exact compact form Claude writes them (LF line ends, no other field) and only those;
  their texts are parsed once per run (one JSON array). A run is only a candidate: the caller
  (``upstream.StreamEvents``) takes it only where the SSE decoder stands between two events, and gives
  everything else, and any run whose texts do not parse, to the decoder.
- ``FastChatConverter`` and ``FastResponsesConverter``: the converters, each with ``takes_text(block)`` (does
  a text delta to that block, now, only write its text?) and ``write_texts(texts, encode)``, which writes
  a run of them from a template made by the converter's own plain code (so the bytes cannot drift from it).

``tests/unit/test_fastpath_property.py`` holds the fast path to the plain one, byte for byte, on generated
streams (escapes, astral characters, CR and CRLF line ends, reads cut anywhere).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any, NamedTuple

import orjson

from translator.convert.responses_stream import ResponsesStreamConverter
from translator.convert.stream import StreamConverter

Encode = Callable[[Any], bytes]

# One text delta as Claude writes it ("Streaming Messages": content_block_delta with a text_delta), around its
# block's index and its text's string literal; the literal has no raw line end (JSON's other rules on it are
# orjson's to check: text_runs). A run: one with an index JSON accepts (no leading zero), then those with the
# same index (\1).
_EVENT = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_DELTA = b',"delta":{"type":"text_delta","text":'
_END = b"}}\n\n"
_LITERAL = rb'"[^"\\\r\n]*+(?:\\[^\r\n][^"\\\r\n]*+)*+"'  # (possessive: a read cut inside a long one fails at once)
_ONE = re.escape(_EVENT) + b"%b" + re.escape(_DELTA) + _LITERAL + re.escape(_END)
_RUN = re.compile(_ONE % rb"(0|[1-9][0-9]{0,8})" + rb"(?:" + _ONE % rb"\1" + rb")*")


class TextRun(NamedTuple):
    """Consecutive text deltas to one content block: ``data[start:end]`` of the read they came in."""

    block: int  # the content block's index
    texts: list[str]
    start: int
    end: int

    def event(self, text: str) -> dict[str, Any]:
        """One of its deltas, as the plain path parses it."""
        return {"type": "content_block_delta", "index": self.block, "delta": {"type": "text_delta", "text": text}}


def text_runs(data: bytes) -> list[TextRun]:
    """The runs of text deltas in ``data``, in order; a run whose texts are not all valid JSON strings is left
    out (the plain path will say what is wrong with it)."""
    runs: list[TextRun] = []
    if b"\n\n" not in data:  # no event ends here (a long one's middle): nothing to look for
        return runs
    for run in _RUN.finditer(data):
        deltas = data[run.start() : run.end() - len(_END)].split(_END)  # (a literal has no line end)
        skip = len(_EVENT) + len(run[1]) + len(_DELTA)  # each delta's bytes before its literal
        try:
            texts = orjson.loads(b"[" + b",".join([delta[skip:] for delta in deltas]) + b"]")
        except orjson.JSONDecodeError:
            continue
        runs.append(TextRun(int(run[1]), texts, run.start(), run.end()))
    return runs


def _template(encoded: bytes, *marks: bytes) -> list[bytes]:
    """``encoded`` cut at each mark (in order, each once), the marks' text left out."""
    pieces = []
    for mark in marks:
        head, found, encoded = encoded.partition(mark)
        assert found, f"no {mark!r} in the template"
        pieces.append(head)
    return [*pieces, encoded]


class FastChatConverter(StreamConverter):
    """``StreamConverter``, writing runs of text deltas from a template: the chunk ``_content`` makes, with
    the text cut out."""

    _head: bytes = b""
    _tail: bytes = b""
    _template_base: object = None

    def takes_text(self, index: int) -> bool:
        """Whether a text delta to block ``index`` now only writes a content chunk (``_block_delta``)."""
        block = self._blocks.get(index)
        return not self.done and self._base is not None and block is not None and block.kind == "text"

    def write_texts(self, texts: Sequence[str], encode: Encode) -> bytes:
        """The client's bytes for ``texts``, each a text delta to a block that ``takes_text``."""
        if self._template_base is not self._base:  # made once per message_start
            self._template_base = self._base
            self._head, self._tail = _template(encode(self._chunk({"content": ""})), b'"content":""')
            self._head += b'"content":'
        self._chars += sum(map(len, texts))
        return self._head + (self._tail + self._head).join(map(orjson.dumps, texts)) + self._tail


class FastResponsesConverter(ResponsesStreamConverter):
    """``ResponsesStreamConverter``, writing runs of text deltas from a template: the
    ``response.output_text.delta`` event ``_write`` makes, with its sequence number and text cut out."""

    _template: tuple[bytes, bytes, bytes] = (b"", b"", b"")
    _template_for: tuple[str, int] | None = None

    def takes_text(self, index: int) -> bool:
        """Whether a text delta to block ``index`` now only adds to the open output_text part (``_write``)."""
        block = self._blocks.get(index)
        item = self._item
        return (not self.done and self._started and block is not None and block.kind == "text" and block.wrote
                and item is not None and item.kind == "message" and item.part_open)

    def write_texts(self, texts: Sequence[str], encode: Encode) -> bytes:
        """The client's bytes for ``texts``, each a text delta to a block that ``takes_text``."""
        item = self._item
        assert item is not None
        if self._template_for != (item.id, len(item.content)):  # made once per output_text part
            self._template_for = (item.id, len(item.content))
            event = {"type": "response.output_text.delta", "sequence_number": 0, **self._text_fields(item, "")}
            head, middle, tail = _template(encode(event), b'"sequence_number":0', b'"delta":""')
            self._template = (head + b'"sequence_number":', middle + b'"delta":', tail)
        head, middle, tail = self._template
        texts = list(filter(None, texts))  # an empty delta writes nothing
        if not texts:
            return b""
        item.pieces += texts
        item.chars += sum(map(len, texts))
        seq, self._seq = self._seq, self._seq + len(texts)
        # each event: head, its number, middle, its text, tail (iterated in C: no bytecode per event)
        numbered = zip(range(seq, self._seq), repeat(middle), map(orjson.dumps, texts))
        return head + (tail + head).join(map(b"%d%b%b".__mod__, numbered)) + tail
