"""Server-Sent Events: the one module that knows how an event stream is framed (WHATWG HTML, "9.2
Server-sent events"). Nothing else in the proxy looks for line ends or blank lines.

``SSEDecoder.feed(bytes)`` takes bytes split anywhere (inside a line, a UTF-8 sequence or a CRLF) and returns
the events completed so far; ``flush()`` ends the stream. Each event keeps the bytes it came in (``raw``), so a
relay can pass a stream on exactly as the upstream wrote it. Data stays bytes, for orjson. ``encode_data`` and
``encode_event`` write one event each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark: a stream may start with one (and only one is stripped)
_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
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
    """The spec's line-by-line reading, kept across feeds: the bytes of the event being read wait in a buffer
    until its blank line comes."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._buf = bytearray()  # bytes since the last dispatched event (a bytearray: appends cost no copy)
        self._pos = 0  # where in _buf the next unread line starts
        self._scan = 0  # where the search for its end goes on (no line end before it)
        self._name: str | None = None
        self._data: list[bytes] = []
        self._at_start = True  # the stream's first bytes may be a BOM

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events ``chunk`` completes (often none, often several)."""
        return self._read(chunk, final=False)

    def _read(self, chunk: bytes, *, final: bool) -> list[SSEEvent]:
        buf = self._buf
        buf += chunk
        if self._at_start:
            if BOM.startswith(buf[:3]) and len(buf) < len(BOM) and not final:
                return []  # too few bytes to tell a BOM from data
            self._at_start = False
            if buf.startswith(BOM):
                self._pos = self._scan = len(BOM)
        events: list[SSEEvent] = []
        start, pos, scan = 0, self._pos, self._scan  # start: where the current event's bytes begin
        while (end := _LINE_END.search(buf, scan)) is not None:
            if end.end() == len(buf) and end.group() == b"\r" and not final:
                scan = end.start()  # maybe the first half of a CRLF: decided by the next feed (or flush)
                break
            line, pos = bytes(buf[pos : end.start()]), end.end()
            scan = pos
            if line:
                self._field(line)
            elif self._data:
                events.append(self._dispatch(bytes(buf[start:pos])))
                start = pos
            else:
                self._name = None  # a blank line with no data dispatches nothing, and forgets the name
        else:
            scan = len(buf)
        del buf[:start]
        self._pos, self._scan = pos - start, scan - start
        return events

    def flush(self, *, unterminated: bool = False) -> list[SSEEvent]:
        """End of stream: a held-back CR ends its line after all. The spec discards an event whose blank line
        never came; with ``unterminated=True`` it is returned (its last line too, even without a line end),
        for the streams that end right after their last data line, as some Claude streams do. The caller
        decides what such an event is worth: a cut fragment fails as JSON. The decoder is then as new."""
        events = self._read(b"", final=True)
        if unterminated:
            rest = bytes(self._buf[self._pos :])
            if rest:
                self._field(rest)
            if self._data:
                events.append(self._dispatch(bytes(self._buf), complete=False))
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
