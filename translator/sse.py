"""A pure Server-Sent Events codec (WHATWG HTML, "9.2 Server-sent events").

``SSEDecoder.feed(bytes)`` takes bytes split anywhere (inside a line, a UTF-8 sequence or a CRLF) and
returns the events completed so far; ``flush()`` ends the stream. Data is kept as bytes so that JSON
payloads go straight to orjson. Encoding helpers write one event per call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import orjson

BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark: a stream may start with one


class SSEEvent(NamedTuple):
    event: str | None
    data: bytes

    def json(self) -> Any:
        return orjson.loads(self.data)


class SSEDecoder:
    """Events are cut at blank lines first, then each event's few lines are read; the bytes of an
    event not yet complete wait in a buffer (nothing is half-parsed between feeds)."""

    __slots__ = ("_buf", "_start")

    def __init__(self) -> None:
        self._buf = b""
        self._start = True  # before the first bytes that can't be (part of) a leading BOM

    @property
    def idle(self) -> bool:
        """Nothing buffered, and past the stream's start (where a BOM may be): the next chunk starts at an
        event, as it came, so a reader may take whole events from it itself and feed only the rest."""
        return not self._buf and not self._start

    def feed(self, chunk: bytes, only: tuple[bytes, ...] = ()) -> list[SSEEvent]:
        """The events ``chunk`` completes. With ``only``, an event whose bytes contain none of those
        strings is skipped unparsed (a reader that wants a few event types among many deltas)."""
        blocks = self._blocks(chunk)
        if only:
            blocks = [block for block in blocks if any(s in block for s in only)]
        return [e for block in blocks if (e := event_in(block)) is not None] if blocks else []

    def feed_lazily(self, chunk: bytes) -> Iterator[SSEEvent]:
        """``feed``, parsing each event only when the caller gets to it (one that stops early, at the
        event it looks for, leaves the rest unparsed; the decoder's buffer is updated at once)."""
        return (e for block in self._blocks(chunk) if (e := event_in(block)) is not None)

    def feed_region(self, chunk: bytes) -> bytes:
        """``feed``'s events as the bytes they came in, for a reader that scans many at once: every event
        ``chunk`` completes, in one piece (LF line ends, through the last blank line; b"" if none). Cut
        at blank lines (``events_in``), the piece gives ``feed``'s events."""
        buf, tail = self._joined(chunk)
        end = buf.rfind(b"\n\n") + 2
        if end < 2:
            self._buf = buf + tail
            return b""
        self._buf = buf[end:] + tail
        return buf[:end]

    def _blocks(self, chunk: bytes) -> list[bytes]:
        """The complete events' bytes (LF line ends), the incomplete rest kept for the next feed."""
        buf, tail = self._joined(chunk)
        blocks = buf.split(b"\n\n")
        self._buf = blocks.pop() + tail
        return blocks

    def _joined(self, chunk: bytes) -> tuple[bytes, bytes]:
        """What is buffered and ``chunk``, with LF line ends and no BOM, and a trailing CR held back."""
        buf = self._buf + chunk if self._buf else chunk
        if self._start:
            if BOM.startswith(buf):  # empty, or a BOM (or the start of one) split off: wait for more
                return b"", buf
            self._start = False
            buf = buf.removeprefix(BOM)  # the stream's UTF-8 decode strips one leading BOM
        tail = b""
        if buf.find(b"\r") >= 0:  # (find, not in: on 3.11 ``in`` first raises and clears a TypeError)
            if buf.endswith(b"\r"):  # maybe the first half of a CRLF: decide on the next feed
                buf, tail = buf[:-1], b"\r"
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return buf, tail

    def flush(self) -> list[SSEEvent]:
        """End of stream. A CR held back by ``feed`` ends its line after all; an event not followed by a
        blank line is dropped (the spec discards an incomplete event)."""
        rest, self._buf = self._buf, b""
        if not rest.endswith(b"\r"):
            return []
        blocks = (rest[:-1] + b"\n").replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n\n")
        blocks.pop()
        return [e for block in blocks if (e := event_in(block)) is not None]


def events_in(region: bytes) -> list[SSEEvent]:
    """The events of whole blocks of an SSE stream (what ``SSEDecoder.feed_region`` returns, or a part of
    it cut at an event's start)."""
    return [e for block in region.split(b"\n\n") if block and (e := event_in(block)) is not None]


def event_in(block: bytes) -> SSEEvent | None:
    """One event's lines (no blank line among them but leading ones) -> the event, or None without data."""
    if block[:7] == b"event: ":  # the shape Claude sends: "event: <name>\ndata: <json>" (the hot path)
        head, _, rest = block.partition(b"\n")
        if rest[:6] == b"data: " and rest.find(b"\n") < 0:  # (no newline at all: rest is empty)
            name = _HEADS.get(head)
            if name is None:
                name = _name(head[7:])
                if len(_HEADS) < 256:  # as _NAMES: bounded
                    _HEADS[head] = name
            return _new(SSEEvent, (name, rest[6:]))
    name = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line[0] == 0x3A:  # blank, or ":" starts a comment
            continue
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = _name(value)
    return SSEEvent(name, b"\n".join(data)) if data else None


_NAMES: dict[bytes, str] = {}
_HEADS: dict[bytes, str] = {}  # a whole "event: <name>" line -> the name: no slice per event
# SSEEvent's own constructor is a Python function; tuple.__new__ builds the same NamedTuple without it.
_new = tuple.__new__


def _name(raw: bytes) -> str:
    name = _NAMES.get(raw)
    if name is None:
        name = raw.decode("utf-8", "replace")
        if len(_NAMES) < 256:  # the few event types there are; never grows with odd input
            _NAMES[raw] = name
    return name


def encode_data(payload: Any) -> bytes:
    """One ``data:`` event with a JSON payload, as OpenAI streams are written."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def encode_event(name: str, payload: Any) -> bytes:
    """One named event with a JSON payload, as Claude streams are written."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


DONE = b"data: [DONE]\n\n"
