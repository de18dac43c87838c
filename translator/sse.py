"""Server-Sent Events: the one module that knows how an event stream is framed (WHATWG HTML, "9.2
Server-sent events"). Nothing else in the proxy looks for line ends or blank lines.

``SSEDecoder.feed(bytes)`` takes bytes split anywhere (inside a line, a UTF-8 sequence or a CRLF) and returns
the events completed so far; ``flush()`` ends the stream. Each event keeps the bytes it came in (``raw``), so a
relay can pass a stream on exactly as the upstream wrote it. Data stays bytes, for orjson. ``encode_data`` and
``encode_event`` write one event each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark: a stream may start with one (and only one is stripped)


@dataclass(slots=True)
class SSEEvent:
    """One dispatched event. ``raw``: its bytes as they came, from the end of the event before it (so with
    any comments or stray blank lines between them) through its own closing blank line. ``complete`` is
    False for the one ``flush(unterminated=True)`` returns, whose blank line never came. Neither is compared."""

    event: str | None
    data: bytes
    raw: bytes = field(default=b"", compare=False, repr=False)
    complete: bool = field(default=True, compare=False)

    def json(self) -> Any:
        return orjson.loads(self.data)


class SSEDecoder:
    """The spec's line-by-line reading, kept across feeds. Lines are cut by ``bytes.splitlines``, which splits at
    exactly SSE's line ends (CRLF, LF, CR); a line whose end has not come yet waits, in pieces, for the feed
    that brings it (so a long line read in small pieces costs one join, not one per piece)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._partial: list[bytes] = []  # the start of a line whose end has not come
        self._raw: list[bytes] = []  # the lines of the event being read, as they came
        self._name: str | None = None
        self._data: list[bytes] = []
        self._at_start = True  # the stream's first bytes may be a BOM

    @property
    def idle(self) -> bool:
        """Between two events: past the stream's start, no line or event begun (not even a comment, nor a
        blank line that dispatched nothing). Bytes that start with a whole event may skip the decoder here."""
        return not (self._partial or self._raw or self._at_start)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events ``chunk`` completes (often none, often several)."""
        return self._read(chunk, final=False)

    def _read(self, chunk: bytes, *, final: bool) -> list[SSEEvent]:
        partial = self._partial
        if partial:
            if not final and chunk.find(b"\n") < 0 and chunk.find(b"\r") < 0 and not self._held_cr():
                partial.append(chunk)  # no line ends here: nothing to read yet
                return []
            partial.append(chunk)
            chunk = b"".join(partial)
            self._partial = []
        if self._at_start:
            if BOM.startswith(chunk[:3]) and len(chunk) < len(BOM) and not final:
                self._partial = [chunk]  # too few bytes to tell a BOM from data
                return []
            self._at_start = False
            if chunk.startswith(BOM):
                self._raw.append(BOM)
                chunk = chunk[len(BOM) :]
        lines = chunk.splitlines(keepends=True)
        if lines and not final and lines[-1][-1] != 0x0A:  # (LF)
            # no line end yet, or a CR that may be the first half of a CRLF: decided by the next feed (or flush)
            self._partial.append(lines.pop())
        events: list[SSEEvent] = []
        for line in lines:
            self._raw.append(line)
            content = line.rstrip(b"\r\n")
            if content:
                self._field(content)
            elif self._data:
                events.append(self._dispatch(b"".join(self._raw)))
                self._raw = []
            else:
                self._name = None  # a blank line with no data dispatches nothing, and forgets the name
        return events

    def _held_cr(self) -> bool:
        return bool(self._partial) and self._partial[-1].endswith(b"\r")

    def flush(self, *, unterminated: bool = False) -> list[SSEEvent]:
        """End of stream: a held-back CR ends its line after all. The spec discards an event whose blank line
        never came; with ``unterminated=True`` it is returned (its last line too, even without a line end),
        for the streams that end right after their last data line, as some Claude streams do. The caller
        decides what such an event is worth: a cut fragment fails as JSON. The decoder is then as new."""
        events = self._read(b"", final=True)
        if unterminated and self._data:
            events.append(self._dispatch(b"".join(self._raw), complete=False))
        self._reset()
        return events

    def _field(self, line: bytes) -> None:
        if line[0] == 0x3A:  # ":" starts a comment
            return
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._name = value.decode("utf-8", "replace")
        # id and retry: nothing the proxy needs; other fields are ignored, as the spec says

    def _dispatch(self, raw: bytes, *, complete: bool = True) -> SSEEvent:
        event = SSEEvent(self._name, b"\n".join(self._data), raw, complete)
        self._name, self._data = None, []
        return event


def encode_data(payload: Any) -> bytes:
    """One ``data:`` event with a JSON payload, as OpenAI streams are written."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def encode_event(name: str, payload: Any) -> bytes:
    """One named event with a JSON payload, as Claude streams are written."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


DONE = b"data: [DONE]\n\n"
