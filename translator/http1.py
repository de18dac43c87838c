"""The upstream's HTTP/1.1 client: keep-alive connections to one origin over the event loop's own
transports, answers parsed by httptools (llhttp, the parser of Node.js).

Why not aiohttp's client: per exchange it runs about 3,000 bytecodes (``ClientSession._request``,
``ClientRequest``, ``ClientResponse``, and a ``StreamReader`` with bookkeeping for every HTTP chunk, which
Claude sends one per event), a third of all the proxy's per request. This does the same exchange in a few
hundred, and a body piece costs one list append. What the proxy needs of a client, and all it does:

- ``Origin(base_url, ...)``: one scheme, host and port (and a base path), its idle connections reused most
  recent first and closed after ``keepalive`` seconds unused; no cap on connections (like the proxy's
  aiohttp connector before, ``limit=0``). A new connection tries the host's addresses by Happy Eyeballs
  (aiohappyeyeballs, as aiohttp does: a broken IPv6 route costs 0.25 s, not the connect timeout). TLS
  with the system's certificates, checked against the host.
- ``await origin.request(method, path, headers, body)``: the answer's head, with its body still arriving
  (``Response.content``); the caller ends it with ``release()`` (the connection is kept if the body was
  read to its end and both sides allow keep-alive) or ``close()``.
- Bodies framed by Content-Length, chunked, or by the connection's end; unread bytes past ``HIGH_WATER``
  pause the socket. It asks for ``identity`` (uncompressed) answers: one that comes compressed anyway, or
  with a transfer coding other than chunked, is refused (``BadResponse``), as is a head over ``MAX_HEAD``
  bytes or ``MAX_HEADERS`` fields, over ``MAX_HEAD`` bytes of chunk framing or trailers in a row (trailers
  are not kept), and a 101 (we never ask to switch protocols).
- Timeouts: ``connect`` (DNS, TCP and TLS), ``read`` (the longest wait for the head, or between two reads,
  not counted while we hold the socket paused) and ``total`` (the whole exchange, connecting included, to
  the body's end).
- Through an HTTP proxy (``proxy="http://[user:password@]host:port"``): an https origin by a ``CONNECT``
  tunnel, TLS end to end inside it (the proxy sees neither the key nor the prompt); an http origin by
  requests in absolute form. Credentials in the proxy URL go as Basic ``Proxy-Authorization``. Which proxy,
  if any, is the caller's choice (``translator.config.proxy_for`` reads the environment's).
- Never: redirects (a redirect would resend the key and the prompt elsewhere), cookies, HTTP/2,
  ``Expect: 100-continue``. A request on a kept connection that the server has just
  closed fails (``ServerDisconnected``) and is not sent again: the router's failover decides, as for any
  other failure (aiohttp resends only idempotent methods, and we send POST).

Failures raise ``HttpClientError`` subclasses (``UpstreamTimedOut`` for timeouts), mapped onto the error tree
in ``translator.upstream``.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections.abc import Mapping
from itertools import chain
from urllib.parse import unquote_to_bytes, urlsplit

import aiohappyeyeballs
import httptools
from multidict import CIMultiDict, CIMultiDictProxy

KEEPALIVE = 15.0  # seconds an idle connection is kept (aiohttp's default)
HAPPY_EYEBALLS_DELAY = 0.25  # seconds before the next address is tried alongside (RFC 8305; aiohttp's value)
HIGH_WATER = 256 * 1024  # unread body bytes past which the socket is paused until they are taken
MAX_HEAD = 64 * 1024  # bytes of an answer's head (aiohttp: 8190 a line)
MAX_HEADERS = 256  # fields in an answer's head
_DEFAULT_PORTS = {"http": 80, "https": 443}
_BASE_HEADERS = "Accept: */*\r\nAccept-Encoding: identity\r\nUser-Agent: translator\r\n"


class HttpClientError(Exception):
    """The exchange failed: no connection, a connection lost, a malformed answer."""


class UpstreamTimedOut(HttpClientError):
    """A connect, read or total timeout passed."""


class ConnectFailed(HttpClientError):
    """No connection could be made (refused, unreachable, DNS, TLS)."""


class ServerDisconnected(HttpClientError):
    """The connection ended before the answer did."""


class BadResponse(HttpClientError):
    """The answer is not valid HTTP/1.1, or is one we do not take (compressed, too big a head, a 101)."""


class Body:
    """A response body as it arrives. ``read()`` takes all that has come at once (one join, not one
    read per HTTP chunk); ``b""`` at its end. An error set by the connection (or ``set_exception``) is
    raised by the next read, even over data not read yet (as aiohttp's reader does)."""

    __slots__ = ("_chunks", "_conn", "_done", "_error", "_waiter")

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self._chunks: list[bytes] = []  # appended to by the connection, as the parser hands it pieces
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    def is_eof(self) -> bool:
        return self._done and not self._chunks

    def set_exception(self, exc: BaseException) -> None:
        self._error = exc
        self._wake()

    async def read(self) -> bytes:
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._done:
                return b""
            self._waiter = self._conn.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._error is not None:
            raise self._error
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        if self._conn.paused:
            self._conn.resume()
        return data

    async def read_all(self) -> bytes:
        parts = []
        while data := await self.read():
            parts.append(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    # --- fed by the connection ---

    def _end(self) -> None:
        self._done = True
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if not self._done and self._error is None:
            self._error = exc
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Response:
    """An answer's head (``status``, ``headers``), its body in ``content``."""

    __slots__ = ("_conn", "_content_type", "content", "headers", "status")

    def __init__(self, conn: _Connection, status: int, headers: CIMultiDictProxy[str]) -> None:
        self._conn = conn
        self.status = status
        self.headers = headers
        self.content = Body(conn)
        self._content_type: str | None = None

    @property
    def content_type(self) -> str:
        """The media type alone, lower case (``application/octet-stream`` when none is given)."""
        if self._content_type is None:
            raw = self.headers.get("Content-Type")
            self._content_type = raw.partition(";")[0].strip().lower() if raw else "application/octet-stream"
        return self._content_type

    def release(self) -> None:
        """Done with it: the connection goes back to the pool if the body came whole, else it is closed."""
        self._conn.done(self)

    def close(self) -> None:
        """Done with it, and its connection is closed (unless it was released already: then nothing)."""
        if self._conn.current is self:
            self._conn.close()


class _Connection(asyncio.Protocol):
    """One connection: at most one exchange at a time."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.loop = origin.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.paused = False
        self.reusable = True
        self.idle_since = 0.0
        self._head: asyncio.Future[Response] | None = None
        self.current: Response | None = None  # the answer of the exchange under way
        self._raw_headers: list[tuple[str, str]] = []
        self._head_bytes = 0  # read so far while the head is incomplete
        self._framing_bytes = 0  # read since the last body piece
        self._chunks: list[bytes] = []  # the current answer's body pieces (its Body's list, once it has one)
        self._read_timeout = origin.read_timeout
        self._until_eof = False
        self._complete = False
        self._last_read = 0.0
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # --- one exchange ---

    def send(self, data: bytes, started: float) -> asyncio.Future[Response]:
        assert self.transport is not None and self._head is None
        self._head = self.loop.create_future()
        self.current = None
        self._raw_headers = []
        self._head_bytes = self._framing_bytes = 0
        self._chunks = []
        self._until_eof = self._complete = False
        now = self._last_read = self.loop.time()
        self._deadline = started + self.origin.total_timeout
        self._timer = self.loop.call_at(min(now + self._read_timeout, self._deadline), self._check_time)
        self.transport.write(data)
        return self._head

    def done(self, response: Response) -> None:
        """The caller is done with ``response``: keep the connection if the exchange ended cleanly."""
        if response is not self.current:
            return  # (an earlier exchange's answer, released twice)
        if self._complete and response.content.is_eof() and self.reusable and not self.lost:
            self.current = None
            self._head = None
            self.origin.put_back(self)
        else:
            self.close()

    def close(self) -> None:
        self._stop_timer()
        self.reusable = False
        if self.transport is not None and not self.lost:
            self.transport.close()
        self._fail(ServerDisconnected("connection closed"))
        self.origin.forget(self)

    def pause(self) -> None:
        self.paused = True
        if self.transport is not None and not self.lost:
            self.transport.pause_reading()

    def resume(self) -> None:
        self.paused = False
        self._last_read = self.loop.time()  # (the read timeout did not run while paused)
        if self.transport is not None and not self.lost:
            self.transport.resume_reading()

    # --- the protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self._head is None or self._complete:  # bytes nobody asked for: the connection can't be trusted
            self.reusable = False
            self.transport.close()  # type: ignore[union-attr]
            return
        self._last_read = self.loop.time()
        started, pieces = self.current, len(self._chunks)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as e:  # raised by one of ours, below
            cause = e.__context__
            self._abort(cause if isinstance(cause, HttpClientError) else BadResponse(f"bad HTTP response: {cause}"))
            return
        except httptools.HttpParserError as e:
            self._abort(BadResponse(f"malformed HTTP response: {e}"))
            return
        except httptools.HttpParserUpgrade:
            self._abort(BadResponse("the server switched protocols, which was never asked for"))
            return
        current = self.current
        if current is None:
            if not self.lost:  # the head is not complete yet
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD:
                    self._abort(BadResponse(f"response head larger than {MAX_HEAD} bytes"))
            return
        if started is not None and len(self._chunks) == pieces and not self._complete:
            # Nothing for the body: chunk framing, or trailers (whose fields httptools gathers itself).
            self._framing_bytes += len(data)
            if self._framing_bytes > MAX_HEAD:
                self._abort(BadResponse(f"more than {MAX_HEAD} bytes of chunk framing or trailers"))
            return
        self._framing_bytes = 0
        body = current.content
        if body._chunks:
            body._wake()
            if not self.paused and sum(map(len, body._chunks)) > HIGH_WATER:
                self.pause()

    def eof_received(self) -> bool:
        return False  # (the transport closes; connection_lost follows)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.reusable = False
        self._stop_timer()
        if self.current is not None and self._until_eof and not self._complete and exc is None:
            self._finish_body()  # a body framed by the connection's end: it has ended
        elif exc is not None:
            self._fail(ServerDisconnected(f"connection lost: {type(exc).__name__}: {exc}"))
        else:
            self._fail(ServerDisconnected("server disconnected"))
        self.origin.forget(self)

    # --- httptools' callbacks ---

    def on_message_begin(self) -> None:
        if self._complete:  # bytes after the answer, in the same read: the connection can't be trusted
            self.reusable = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.current is not None:
            return  # a trailer (of a chunked body): not kept
        self._raw_headers.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        if self.current is not None or self._complete:  # a second answer to one request
            raise BadResponse("more than one response to one request")
        status = self.parser.get_status_code()
        if status < 200:  # 1xx (we never send Expect): skipped, the real answer follows
            self._raw_headers = []
            return
        fields = self._raw_headers
        if len(fields) > MAX_HEADERS:
            raise BadResponse(f"more than {MAX_HEADERS} header fields")
        if sum(map(len, chain.from_iterable(fields))) > MAX_HEAD:  # (in characters: bytes, at most)
            raise BadResponse(f"response head larger than {MAX_HEAD} bytes")
        headers = CIMultiDictProxy(CIMultiDict(fields))
        encoding = headers.get("Content-Encoding", "identity").strip().lower()
        if encoding != "identity":
            raise BadResponse(f"the answer is compressed ({encoding}), though only identity was accepted")
        coding = headers.get("Transfer-Encoding")
        if coding is not None and coding.strip().lower() != "chunked":
            raise BadResponse(f"unsupported Transfer-Encoding: {coding}")
        response = self.current = Response(self, status, headers)
        self._chunks = response.content._chunks
        self._until_eof = coding is None and "Content-Length" not in headers and status not in (204, 304)
        if not self.parser.should_keep_alive():
            self.reusable = False
        head = self._head
        if head is not None and not head.done():
            head.set_result(response)

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)  # (the reader is woken once per read, in data_received: not per piece)

    def on_message_complete(self) -> None:
        if self.current is not None:  # (else the end of a 1xx)
            self._finish_body()

    # --- inside ---

    def _finish_body(self) -> None:
        self._complete = True
        self._stop_timer()
        if not self.parser.should_keep_alive():
            self.reusable = False
        assert self.current is not None
        self.current.content._end()

    def _fail(self, exc: HttpClientError) -> None:
        head = self._head
        if head is not None and not head.done():
            head.set_exception(exc)
        elif self.current is not None and not self._complete:
            self.current.content._fail(exc)

    def _abort(self, exc: HttpClientError) -> None:
        self._fail(exc)
        self.close()

    def _check_time(self) -> None:
        self._timer = None
        now = self.loop.time()
        if now >= self._deadline:
            self._abort(UpstreamTimedOut(f"no complete answer within {self.origin.total_timeout:g} s"))
            return
        if self.paused:  # we hold the socket: the server is not late
            self._last_read = now
        due = self._last_read + self._read_timeout
        if now >= due:
            self._abort(UpstreamTimedOut(f"nothing read for {self._read_timeout:g} s"))
            return
        self._timer = self.loop.call_at(min(due, self._deadline), self._check_time)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Proxy:
    """An HTTP proxy on the way to one origin (``authority``: its ``host:port``)."""

    def __init__(self, url: str, authority: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError("not an http:// proxy URL")  # (never the URL: it may hold a password)
        try:
            port = parts.port or 80  # (as urllib and httpx read a proxy URL without one)
        except ValueError:
            raise ValueError("the proxy URL's port is not a number from 0 to 65535") from None
        self.host, self.port, self.authority = parts.hostname, port, authority
        self.auth_line = ""
        if parts.username is not None:
            pair = unquote_to_bytes(parts.username) + b":" + unquote_to_bytes(parts.password or "")
            self.auth_line = f"Proxy-Authorization: Basic {base64.b64encode(pair).decode()}\r\n"
        if "\0" in authority:  # (the CONNECT line is not built by _encode, which checks its own lines)
            raise ValueError("the origin's host holds a NUL")

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def tunnel(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        """``CONNECT`` on the proxy's fresh socket; on a 2xx the socket carries the origin's bytes."""
        request = f"CONNECT {self.authority} HTTP/1.1\r\nHost: {self.authority}\r\n{self.auth_line}\r\n"
        await loop.sock_sendall(sock, request.encode())
        head = b""
        while (end := _head_end(head)) < 0:  # (a proxy sends nothing after its head until we speak)
            data = await loop.sock_recv(sock, MAX_HEAD - len(head))
            if not data:
                raise ConnectionError(f"the proxy {self} closed the connection before answering CONNECT")
            head += data
            if len(head) >= MAX_HEAD and _head_end(head) < 0:
                raise ConnectionError(f"the proxy {self} answered CONNECT with a head over {MAX_HEAD} bytes")
        status_line = head.split(b"\n", 1)[0].rstrip(b"\r")
        fields = status_line.split(b" ", 2)
        status = fields[1] if len(fields) > 1 else b""
        if not fields[0].startswith(b"HTTP/1.") or len(status) != 3 or not status.isdigit() or status[:1] != b"2":
            answer = status_line.decode("latin-1")[:100]
            raise ConnectionError(f"the proxy {self} refused the tunnel to {self.authority}: {answer}")
        if end != len(head):
            raise ConnectionError(f"the proxy {self} sent bytes after its answer to CONNECT")


def _head_end(data: bytes) -> int:
    """Where a head ends (after its blank line, CRLF or bare LF line ends), or -1."""
    ends = [i + len(mark) for mark in (b"\r\n\r\n", b"\n\n") if (i := data.find(mark)) >= 0]
    return min(ends) if ends else -1


class Origin:
    """Connections to one ``scheme://host:port``, and requests sent over them."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        total_timeout: float,
        keepalive: float = KEEPALIVE,
        ssl_context: ssl.SSLContext | None = None,
        proxy: str | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or _DEFAULT_PORTS[parts.scheme]
        self.base_path = parts.path.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        authority = host if parts.port in (None, _DEFAULT_PORTS[parts.scheme]) else f"{host}:{self.port}"
        self._host_line = f"Host: {authority}\r\n"
        self._ssl = (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
        self.proxy = _Proxy(proxy, f"{host}:{self.port}") if proxy else None
        self._target = ""  # what goes before the path in the request line: the origin, to an http proxy
        self._proxy_line = ""
        if self.proxy is not None and self._ssl is None:
            self._target, self._proxy_line = f"http://{authority}", self.proxy.auth_line
        self.connect_timeout, self.read_timeout, self.total_timeout = connect_timeout, read_timeout, total_timeout
        self.keepalive = keepalive
        self._idle: list[_Connection] = []  # most recently used last
        self._open: set[_Connection] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False
        self.loop: asyncio.AbstractEventLoop  # set at the first request

    async def request(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> Response:
        """Send one request; return the answer once its head has come. Header names and values must not
        hold line breaks (ValueError)."""
        if self._closed:
            raise HttpClientError("the client is closed")
        data = self._encode(method, path, headers, body)
        conn = self._take_idle()
        if conn is None:
            started = asyncio.get_running_loop().time()
            conn = await self._connect()
        else:
            started = self.loop.time()
        head = conn.send(data, started)
        try:
            response = await head
        except BaseException:
            conn.close()  # (cancelled or failed before the answer: the connection is in an unknown state)
            raise
        if response.status == 407 and self._target:  # the proxy's, not the origin's (as a refused CONNECT)
            response.close()
            raise ConnectFailed(f"cannot connect to {self._where}: the proxy answered 407 (its credentials)")
        return response

    async def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self._open):
            conn.close()
        self._idle.clear()

    # --- connections ---

    def _take_idle(self) -> _Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if (
                conn.reusable and not conn.lost and not conn.transport.is_closing()  # type: ignore[union-attr]
                and self.loop.time() - conn.idle_since < self.keepalive
            ):
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Connection:
        self.loop = loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(min(self.connect_timeout, self.total_timeout)):
                host, port = (self.proxy.host, self.proxy.port) if self.proxy is not None else (self.host, self.port)
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                sock = await aiohappyeyeballs.start_connection(infos, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY)
                try:
                    if self.proxy is not None and self._ssl is not None:
                        await self.proxy.tunnel(loop, sock)
                    _, conn = await loop.create_connection(
                        lambda: _Connection(self), sock=sock, ssl=self._ssl,
                        server_hostname=self.host if self._ssl is not None else None,
                    )
                except BaseException:
                    sock.close()  # (the TLS handshake failed or was cancelled)
                    raise
        except TimeoutError:
            raise UpstreamTimedOut(f"no connection to {self._where} within {self.connect_timeout:g} s") from None
        except (OSError, ssl.SSLError) as e:
            raise ConnectFailed(f"cannot connect to {self._where}: {e}") from e
        self._open.add(conn)
        if self._closed:
            conn.close()
            raise HttpClientError("the client is closed")
        return conn

    @property
    def _where(self) -> str:
        return f"{self.host}:{self.port}" + (f" through the proxy {self.proxy}" if self.proxy else "")

    def put_back(self, conn: _Connection) -> None:
        conn.idle_since = self.loop.time()
        self._idle.append(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_at(conn.idle_since + self.keepalive, self._sweep)

    def forget(self, conn: _Connection) -> None:
        self._open.discard(conn)

    def _sweep(self) -> None:
        """Close the connections idle for ``keepalive`` seconds (oldest first in the list)."""
        self._sweeper = None
        cutoff = self.loop.time() - self.keepalive
        idle = self._idle
        expired = 0
        while expired < len(idle) and idle[expired].idle_since <= cutoff:
            expired += 1
        for conn in idle[:expired]:
            conn.close()
        del idle[:expired]
        if idle:
            self._sweeper = self.loop.call_at(idle[0].idle_since + self.keepalive, self._sweep)

    # --- the request's bytes ---

    def _encode(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
        fields = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        length = "" if body is None else f"Content-Length: {len(body)}\r\n"
        head = (
            f"{method} {self._target}{self.base_path}{path} HTTP/1.1\r\n"
            f"{self._host_line}{self._proxy_line}{_BASE_HEADERS}{fields}{length}\r\n"
        )
        # the request line, Host, (Proxy-Authorization), the base three, the end
        lines = len(headers) + 6 + (body is not None) + bool(self._proxy_line)
        if head.count("\n") != lines or head.count("\r") != lines or "\0" in head:
            raise ValueError("a header name or value holds a line break or a NUL")
        try:
            encoded = head.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raise ValueError("a header value cannot be encoded") from None
        return encoded + body if body else encoded
