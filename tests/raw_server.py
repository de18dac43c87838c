"""A TCP (or TLS) server on 127.0.0.1 that writes exact bytes, for the upstream client's tests: what an
HTTP server library would not send (malformed, compressed, cut short, reset, silent)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

TLS = Path(__file__).parent / "fixtures" / "tls"
Then = Callable[[asyncio.StreamWriter], Awaitable[None]]
Handler = Callable[["RawServer", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """Each connection answers its requests with ``responses`` in turn (each written whole), then runs
    ``then`` (by default, waits for the client to close); or ``handler`` runs instead. Counts connections
    and keeps each request as received."""

    def __init__(
        self, *responses: bytes, then: Then | None = None, handler: Handler | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.responses, self.then, self.handler, self.tls = responses, then, handler, tls
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self._handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self.server.wait_closed()

    def url(self, scheme: str = "http", host: str = "127.0.0.1", path: str = "/base") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            if self.handler is not None:
                await self.handler(self, reader, writer)
                return
            for response in self.responses:
                await self.read_request(reader)
                writer.write(response)
                await writer.drain()
            await (self.then(writer) if self.then is not None else reader.read())
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, asyncio.CancelledError):
            pass  # (cancelled: the test is over)
        finally:
            writer.close()
            self._handlers.discard(task)


def ok(body: bytes, *headers: bytes) -> bytes:
    fields = b"".join(h + b"\r\n" for h in headers)
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), fields, body)


def server_tls(*, client_ca: bool = False) -> ssl.SSLContext:
    """The server side of TLS with ``localhost.crt`` (signed by the test CA); with ``client_ca``, a client
    certificate signed by that CA is required (mTLS)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(TLS / "localhost.crt", TLS / "localhost.key")
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(TLS / "ca.crt")
    return ctx
