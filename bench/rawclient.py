"""A lean HTTP/1.1 load client for the scenarios where the load generator must not saturate first: thousands
of paced streams (tens of thousands of reads a second) and fixed-rate load at thousands of requests a second,
on the CPU it shares with the fake upstream.

aiohttp's client costs about 15-20 us of Python per read and 100+ us per exchange; this one is an
``asyncio.Protocol`` that writes prepared request bytes on a keep-alive connection, stamps every read with
``time.perf_counter()`` and parses only what it must to find the end of the answer (the status line, then
``Content-Length`` or the chunked framing). The timed scenarios of ``runner.py`` keep aiohttp's client.

``Connection.exchange(request, on_body)`` sends one request and resolves to an ``Answer`` when its last byte
is in; ``on_body(now, data)`` is called at every read that carries body bytes (``data``: the read's bytes,
framing included), which is when a user would see the events in it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

_HEAD_END = b"\r\n\r\n"


def encode_request(host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """A keep-alive POST as bytes, ready to write."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("host", "content-length")]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass(slots=True)
class Answer:
    status: int
    size: int  # body bytes, framing excluded
    tail: bytes  # the body's last bytes
    sent: float  # perf_counter at the write
    done: float  # perf_counter at the read that completed it


class BodyParser:
    """Incremental end-of-body detection for one answer: ``feed(data)`` returns the bytes past this answer's
    end (b"" for none) once the answer is complete, None while more is expected."""

    def __init__(self) -> None:
        self.status = 0
        self.size = 0
        self.tail = b""
        self._head = b""
        self._length: int | None = None  # Content-Length; None for chunked
        self._data_left = 0  # data bytes left in the current chunk
        self._crlf_left = 0  # bytes left of the CRLF after a chunk's data (or after the last, empty chunk)
        self._final = False  # the zero-size chunk has been read
        self._pending = b""  # a partial size line
        self._in_body = False

    def feed(self, data: bytes) -> bytes | None:
        if not self._in_body:
            self._head += data
            head, sep, rest = self._head.partition(_HEAD_END)
            if not sep:
                return None
            self._start(head)
            data = rest
        return self._body(data) if self._length is None else self._plain(data)

    def _start(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        self.status = int(lines[0].split(b" ", 2)[1])
        self._in_body = True
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                self._length = int(value)

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        self.tail = (self.tail + data)[-64:]

    def _plain(self, data: bytes) -> bytes | None:
        assert self._length is not None
        need = self._length - self.size
        self._keep(data[:need])
        return data[need:] if self.size >= self._length else None

    def _body(self, data: bytes) -> bytes | None:
        """The chunked framing: size line, data, CRLF, ..., a zero-size chunk and an empty line (no trailers)."""
        while data or (self._final and not self._crlf_left):
            if self._data_left:
                take = data[: self._data_left]
                self._data_left -= len(take)
                self._keep(take)
                data = data[len(take):]
            elif self._crlf_left:
                skip = min(self._crlf_left, len(data))
                self._crlf_left -= skip
                data = data[skip:]
            elif self._final:
                return data
            else:
                line, sep, rest = (self._pending + data).partition(b"\r\n")
                if not sep:
                    self._pending += data
                    return None
                self._pending, data = b"", rest
                self._data_left = int(line.split(b";")[0], 16)
                self._crlf_left = 2
                self._final = self._data_left == 0
        return None


class Connection(asyncio.Protocol):
    """One keep-alive connection; one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self._parser: BodyParser | None = None
        self._answer: asyncio.Future[Answer] | None = None
        self._on_body: Callable[[float, bytes], None] | None = None
        self._sent = 0.0

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        _, protocol = await asyncio.get_running_loop().create_connection(cls, host, port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass of asyncio's

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(ConnectionError(f"connection lost: {exc}"))

    def exchange(self, request: bytes, on_body: Callable[[float, bytes], None] | None = None) -> asyncio.Future[Answer]:
        assert self.transport is not None and self._answer is None, "one exchange at a time"
        if self.closed.done():
            raise ConnectionError("connection closed")
        self._parser, self._on_body = BodyParser(), on_body
        self._answer = asyncio.get_running_loop().create_future()
        self._sent = time.perf_counter()
        self.transport.write(request)
        return self._answer

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        parser = self._parser
        if parser is None:
            return  # nothing asked: bytes after an answer (ignored)
        size_before = parser.size
        rest = parser.feed(data)
        if self._on_body is not None and parser.size > size_before:
            self._on_body(now, data)
        if rest is not None:
            answer, self._answer, self._parser = self._answer, None, None
            if answer is not None and not answer.done():
                answer.set_result(Answer(parser.status, parser.size, parser.tail, self._sent, now))

    @property
    def busy(self) -> bool:
        return self._answer is not None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Idle keep-alive connections to one server, opened on demand."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._idle: list[Connection] = []
        self.opened = 0

    async def get(self) -> Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed.done():
                return conn
        self.opened += 1
        return await Connection.open(self.host, self.port)

    def put(self, conn: Connection) -> None:
        if not conn.closed.done() and not conn.busy:
            self._idle.append(conn)

    async def fill(self, count: int) -> None:
        """Open connections until ``count`` are idle."""
        fresh = await asyncio.gather(*(Connection.open(self.host, self.port)
                                       for _ in range(max(0, count - len(self._idle)))))
        self.opened += len(fresh)
        self._idle.extend(fresh)

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
