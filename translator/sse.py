"""A pure Server-Sent Events codec (WHATWG HTML, "9.2 Server-sent events").

``SSEDecoder.feed(bytes)`` takes bytes split anywhere (inside a line, a UTF-8 sequence or a CRLF) and
returns the events completed so far; ``flush()`` ends the stream. Data is kept as bytes so that JSON
payloads go straight to orjson. Encoding helpers write one event per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

_BOM = b"\xef\xbb\xbf"


@dataclass(slots=True, frozen=True)
class SSEEvent:
    event: str | None
    data: bytes

    def json(self) -> Any:
        return orjson.loads(self.data)


class SSEDecoder:
    __slots__ = ("_buf", "_data", "_event", "_start")

    def __init__(self) -> None:
        self._buf = b""
        self._event: str | None = None
        self._data: list[bytes] = []
        self._start = True  # before the first bytes that can't be (part of) a leading BOM

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk if self._buf else chunk
        if self._start:
            if _BOM.startswith(buf):  # empty, or a BOM (or the start of one) split off: wait for more
                self._buf = buf
                return []
            self._start = False
            buf = buf.removeprefix(_BOM)  # the stream's UTF-8 decode strips one leading BOM
        if b"\r" in buf:
            # A CR at the very end may be the first half of a CRLF: keep it for the next feed.
            hold = buf.endswith(b"\r")
            if hold:
                buf, tail = buf[:-1], b"\r"
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if hold:
                lines = buf.split(b"\n")
                self._buf = lines.pop() + tail
                return self._lines(lines)
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        return self._lines(lines)

    def flush(self) -> list[SSEEvent]:
        """End of stream. A CR held back by ``feed`` ends its line after all; an unterminated last line and
        an event not followed by a blank line are dropped (the spec discards an incomplete event)."""
        rest, self._buf = self._buf, b""
        events = self._lines([rest[:-1]]) if rest.endswith(b"\r") else []
        self._event, self._data = None, []
        return events

    def _lines(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(SSEEvent(self._event, b"\n".join(self._data)))
                self._event, self._data = None, []
                continue
            if line[0] == 0x3A:  # ":" starts a comment
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data.append(value)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
        return events


def encode_data(payload: Any) -> bytes:
    """One ``data:`` event with a JSON payload, as OpenAI streams are written."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def encode_event(name: str, payload: Any) -> bytes:
    """One named event with a JSON payload, as Claude streams are written."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


DONE = b"data: [DONE]\n\n"
