"""The only code that talks to a Claude upstream, over one ``aiohttp.ClientSession`` per upstream. Failures
are mapped here, once, onto our error tree (``translator.errors``): refused or reset connections and
unreadable answers -> UpstreamUnavailable (502), timeouts -> UpstreamTimeout (504), error statuses ->
UpstreamStatusError with the upstream's own Claude error body (an HTML page from a load balancer is
wrapped into one). SSE framing is ``translator.sse``'s; the stream idle timeout is the route's.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import re
import ssl
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

import aiohttp
import orjson
from multidict import MultiMapping
from yarl import URL

from translator.config import UpstreamSettings
from translator.convert.fastpath import TextRun, text_runs
from translator.convert.tables import CLAUDE_ERROR_STATUS
from translator.errors import UpstreamStatusError, UpstreamTimeout, UpstreamUnavailable
from translator.sse import SSEDecoder, SSEEvent

_STATUS_ERROR_TYPE = {status: kind for kind, status in CLAUDE_ERROR_STATUS.items()}
_FORWARDED = ("anthropic-beta",)
# Uncompressed answers: the body is relayed as it comes, and SSE events are read as they come.
_SESSION_HEADERS = {"Accept-Encoding": "identity", "User-Agent": "translator"}
KEEPALIVE = 15.0  # seconds an idle connection is kept (aiohttp's default)
MAX_ERROR_BODY = 64 * 1024
ERROR_BODY_TIMEOUT = 2.0  # how long an error status's body may take to arrive after its head
FINISH_TIMEOUT = 1.0  # how long an ended stream's connection waits for its body's end to be kept
MAX_TRAILING = 64 * 1024  # what an ended stream may still send, unread, before its connection is closed
_STARTED = frozenset({"content_block_start", "content_block_delta", "message_delta", "message_stop"})


class UpstreamResponse:
    """A successful (2xx) upstream answer, read as JSON, as raw bytes, or as a stream of SSE events."""

    def __init__(self, resp: aiohttp.ClientResponse, drains: set[asyncio.Task[None]] | None = None) -> None:
        self._resp = resp
        self._drains = drains if drains is not None else set()  # the upstream's: cancelled when it closes
        self._draining = False
        self.status = resp.status
        self.headers = resp.headers
        self._body: bytes | None = None
        self._events = StreamEvents(self._read)

    def __enter__(self) -> UpstreamResponse:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if self._draining:
            return  # finish()'s task reads the body's end, then releases or closes the connection
        if exc is None:
            self._resp.release()  # (aiohttp keeps the connection only if the body was read to its end)
        else:
            self.close()

    def close(self) -> None:
        """Not read to the end (an error, or the client went away): drop the connection."""
        self._resp.close()

    @property
    def is_stream(self) -> bool:
        return self._resp.content_type == "text/event-stream"

    async def body(self) -> bytes:
        if self._body is None:
            with map_errors():
                self._body = await self._resp.read()
        return self._body

    async def json(self) -> Any:
        raw = await self.body()
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise UpstreamUnavailable(f"upstream answered {self.status} with a body that is not JSON") from e

    async def prime(self) -> None:
        """Read a stream up to its first content event (``StreamEvents.prime``)."""
        await self._events.prime()

    async def next_events(self, *, runs: bool = False) -> Sequence[SSEEvent | TextRun] | None:
        """The stream's next events (``StreamEvents.next``)."""
        return await self._events.next(runs=runs)

    async def _read(self) -> bytes:
        with map_errors():
            return await self._resp.content.readany()

    def abort(self, error: Exception) -> None:
        """Fail the stream: the pending read (or the next) raises ``error`` (the relay's idle clock)."""
        self._resp.content.set_exception(error)

    def finish(self) -> None:
        """The stream has ended (message_stop) and the client has its answer: the connection goes back to the
        pool, once the rest of its body (normally just the chunked encoding's last chunk) has come. With the
        body unfinished it is closed, and the next request pays a new connection (and, to a real
        upstream, a new TLS handshake). When that end has not come yet, a task of its own waits for it, so
        the handler returns at once (the client's next request on its connection waits for no upstream,
        and a client that leaves now has not cancelled a finished request); the task releases the
        connection, or closes it if the end takes over ``FINISH_TIMEOUT`` or ``MAX_TRAILING`` bytes come
        first. The upstream's ``close()`` cancels such tasks."""
        if self._resp.content.is_eof():  # the usual case: the end came with the last event (aiohttp released it)
            return
        self._draining = True
        task = asyncio.get_running_loop().create_task(self._drain())
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def _drain(self) -> None:
        left = MAX_TRAILING
        try:
            with contextlib.suppress(TimeoutError, aiohttp.ClientError):
                async with asyncio.timeout(FINISH_TIMEOUT):
                    while left >= 0 and (data := await self._resp.content.readany()):
                        left -= len(data)
        finally:  # also when cancelled
            self._resp.release()  # kept if the body has ended, else closed


class StreamEvents:
    """A stream's SSE events, as the reads that complete them arrive (``read`` gives the body's next bytes,
    b"" at its end)."""

    def __init__(self, read: Callable[[], Awaitable[bytes]]) -> None:
        self._read = read
        self._decoder = SSEDecoder()
        self._primed: list[SSEEvent] = []  # the events prime() read, for next() to give first
        self._ended = False  # the stream's last events have been read

    async def prime(self) -> None:
        """Read up to the first content event, so that the request can still be retried elsewhere when the
        upstream fails before that (an ``error`` event first, a reset, a stall). The events read are given
        first by ``next()``."""
        while data := await self._read():
            self._primed += self._decoder.feed(data)
            if _started(self._primed):
                return
        # The stream ended before any content. A last event missing only its blank line still counts.
        self._primed += self._decoder.flush(unterminated=True)
        self._ended = True
        if not _started(self._primed):
            raise UpstreamUnavailable("upstream stream ended before its first event")

    async def next(self, *, runs: bool = False) -> Sequence[SSEEvent | TextRun] | None:
        """The next events (first those ``prime()`` read); at the end, a last event missing only its blank
        line (``complete`` False); None once the stream has ended. With ``runs``, the runs of text deltas that
        start between two events come as ``TextRun``s, undecoded (the fast path: ``convert.fastpath``)."""
        if self._primed:
            primed, self._primed = self._primed, []
            return primed
        while not self._ended:
            data = await self._read()
            events: Sequence[SSEEvent | TextRun]
            if data:
                events = self._feed_runs(data) if runs else self._decoder.feed(data)
            else:
                events, self._ended = self._decoder.flush(unterminated=True), True
            if events:
                return events
        return None

    def _feed_runs(self, data: bytes) -> list[SSEEvent | TextRun]:
        """``data``'s events, each run of text deltas taken whole where the decoder stands between two events,
        the rest decoded."""
        events: list[SSEEvent | TextRun] = []
        decoded = 0  # data[:decoded] is read
        for run in text_runs(data):
            if run.start > decoded:
                events += self._decoder.feed(data[decoded : run.start])
            if self._decoder.idle:
                events.append(run)
            else:  # the run's first bytes end something else (a line, an event) begun before them
                events += self._decoder.feed(data[run.start : run.end])
            decoded = run.end
        if decoded < len(data):
            events += self._decoder.feed(data[decoded:])
        return events


def _started(events: list[SSEEvent]) -> bool:
    """Whether ``events`` hold a content event (the stream has started), with no ``error`` before it."""
    for event in events:
        if event.event == "error":
            raise stream_error(event)
        if event.event in _STARTED:
            return True
    return False


def stream_error(event: SSEEvent) -> UpstreamStatusError:
    """An ``error`` event before any content: treated like the error status it stands for."""
    try:
        body = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not (isinstance(error, dict) and isinstance(error.get("type"), str) and isinstance(error.get("message"), str)):
        body = {"type": "error", "error": {"type": "api_error", "message": "upstream stream error"}}
    status = CLAUDE_ERROR_STATUS.get(body["error"]["type"], 500)
    return UpstreamStatusError(status, body)


class Upstream:
    """One upstream: its settings, the headers it is sent, and its own ``ClientSession`` (connection pool,
    TLS, proxy and timeouts), opened by ``start()`` and closed by ``close()`` (the app's cleanup_ctx)."""

    def __init__(self, settings: UpstreamSettings, base_url: str, *, proxy: str | None = None) -> None:
        """``proxy``: an http:// or https:// proxy to connect through (the settings' own, resolved from the
        environment at load time, is the caller's to pass: the demo upstream, for one, is never reached
        through a proxy)."""
        self.settings = settings
        self.name = settings.name
        self.base_url = base_url.rstrip("/")
        self.drains: set[asyncio.Task[None]] = set()  # streams whose body's end is still awaited (finish())
        self._proxy = proxy
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the session (aiohttp makes one in the running loop only)."""
        self._session = client_session(self.settings, self._proxy)

    async def close(self) -> None:
        """Stop waiting for any stream's end, then close every connection (at shutdown)."""
        drains = list(self.drains)
        for task in drains:
            task.cancel()
        await asyncio.gather(*drains, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def serves(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.settings.models)

    def headers(
        self, client: Mapping[str, str], *, version: str | None = None, forward_key: bool = True
    ) -> dict[str, str]:
        """Upstream auth is ours when configured; otherwise the client's own key goes through
        (unless it is one of our own client keys: ``forward_key=False``)."""
        out: dict[str, str] = {}
        out["anthropic-version"] = version or self.settings.anthropic_version
        for name in _FORWARDED:
            if name in client:  # a header sent several times is one comma-separated list (RFC 9110 5.3)
                values = client.getall(name) if isinstance(client, MultiMapping) else [client[name]]
                out[name] = ",".join(values)
        key = self.settings.api_key
        if key:
            if self.settings.auth == "bearer":
                out["Authorization"] = f"Bearer {key}"
            else:
                out["x-api-key"] = key
        elif not forward_key:
            pass
        elif "x-api-key" in client:
            out["x-api-key"] = client["x-api-key"]
        elif _anthropic_key_as_bearer(client.get("Authorization", "")):
            out["x-api-key"] = client["Authorization"].partition(" ")[2].strip()  # an Anthropic key sent the OpenAI way
        elif "Authorization" in client:
            out["Authorization"] = client["Authorization"]
        return out

    async def open(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> UpstreamResponse:
        """Send the request; an error status is raised, a 2xx answer returned open. The caller ends it:
        ``with response:`` releases the connection, or closes it on an exception."""
        if body is not None:
            headers = {**headers, "Content-Type": "application/json"}
        url = URL(self.base_url + path, encoded=True)  # (the path is sent as the caller quoted it)
        with map_errors():
            resp = await self._send(method, url, headers, body)
        if (unusable := _unusable(resp)) is not None:
            resp.close()
            raise unusable
        if resp.status >= 400:
            try:
                raise await status_error(resp)
            finally:
                resp.release()  # read to its end: the connection is kept (else it is closed)
        return UpstreamResponse(resp, self.drains)

    async def _send(
        self, method: str, url: URL, headers: Mapping[str, str], body: bytes | None
    ) -> aiohttp.ClientResponse:
        """The request, sent once more, at once, when it failed before any byte of an answer on a kept
        connection: the upstream (or a load balancer in front of it, whose idle timeout may be shorter
        than ours) closed that connection as it sat idle, so the request never reached it. That is no
        failure of the upstream's, and the router (health, back-off) never sees it. A request that fails
        so on a new connection is the upstream's failure, and is not sent again here."""
        try:
            return await self._request(method, url, headers, body)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            if not _on_kept_connection.get():
                raise
        return await self._request(method, url, headers, body)

    async def _request(
        self, method: str, url: URL, headers: Mapping[str, str], body: bytes | None
    ) -> aiohttp.ClientResponse:
        assert self._session is not None, "Upstream.start() first"
        _on_kept_connection.set(False)  # (set by the connector, in this task's context, once it has one)
        # (redirects are never followed: they would resend the key and the prompt elsewhere)
        return await self._session.request(method, url, headers=headers, data=body, allow_redirects=False)

    @asynccontextmanager
    async def request(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> AsyncIterator[UpstreamResponse]:
        """``open()`` as a context manager."""
        with await self.open(method, path, headers, body) as response:
            yield response


def client_session(settings: UpstreamSettings, proxy: str | None) -> aiohttp.ClientSession:
    """The upstream's session: no cap on connections unless ``max_connections`` sets one, idle ones kept
    ``KEEPALIVE`` seconds, Happy Eyeballs (aiohttp's 0.25 s: a broken IPv6 route costs that, not the
    connect timeout), the settings' TLS and timeouts; answers uncompressed, no cookies, and the proxy
    given, never the environment's (``trust_env``: resolved at load time, in ``translator.config``)."""
    connector = _Connector(
        limit=settings.max_connections, keepalive_timeout=KEEPALIVE, ssl=tls_context(settings)
    )
    timeout = aiohttp.ClientTimeout(
        total=settings.total_timeout,
        connect=settings.connect_timeout,  # (a free connection awaited under max_connections counts too)
        sock_connect=settings.connect_timeout,
        sock_read=settings.read_timeout,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        proxy=proxy,
        headers=_SESSION_HEADERS,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )


# Whether the request this task is sending went out on a kept connection (one an earlier request used).
_on_kept_connection: ContextVar[bool] = ContextVar("on_kept_connection", default=False)


class _Connector(aiohttp.TCPConnector):
    """aiohttp's connector, noting for each request whether its connection is a kept one (``_send`` resends
    only those). Cheaper than an aiohttp ``TraceConfig``, which sends a dozen signals per request: 82,000
    instructions of the proxy's 1.24 million per non-streamed request (bench.instructions)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._used: weakref.WeakSet[object] = weakref.WeakSet()  # connections a request has had

    async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:
        connection = await super().connect(req, traces, timeout)
        protocol = connection.protocol
        _on_kept_connection.set(protocol in self._used)
        self._used.add(protocol)
        return connection


def tls_context(settings: UpstreamSettings) -> ssl.SSLContext:
    """The system's CA certificates, plus ``ca_file``'s; the client certificate, when one is set."""
    context = ssl.create_default_context()
    if settings.ca_file is not None:
        context.load_verify_locations(cafile=settings.ca_file)
    if settings.client_cert is not None:
        context.load_cert_chain(settings.client_cert, settings.client_key)
    return context


def _unusable(resp: aiohttp.ClientResponse) -> UpstreamUnavailable | None:
    """An answer that is not the upstream's, or that we cannot read: a proxy's refusal (a 407 to a request
    for an http upstream; for an https one aiohttp raises on the CONNECT's), or a compressed body (we ask
    for identity: a body is relayed, and its events read, as it comes)."""
    if resp.status == 407:
        return UpstreamUnavailable("upstream unavailable: the proxy answered 407 (Proxy Authentication Required)")
    encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding != "identity":
        return UpstreamUnavailable(f"upstream answered compressed ({encoding}), though only identity was accepted")
    return None


def _anthropic_key_as_bearer(authorization: str) -> bool:
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and token.strip().startswith("sk-ant-api")


async def status_error(resp: aiohttp.ClientResponse) -> UpstreamStatusError:
    retry_after = resp.headers.get("retry-after")
    request_id = resp.headers.get("request-id")
    raw = b""  # read to its end (one read may hold only part of it), within bounds; what came is what there is
    with contextlib.suppress(TimeoutError, aiohttp.ClientError):
        async with asyncio.timeout(ERROR_BODY_TIMEOUT):
            while len(raw) < MAX_ERROR_BODY and (data := await resp.content.readany()):
                raw += data
    raw = raw[:MAX_ERROR_BODY]
    body: Any = None
    with contextlib.suppress(orjson.JSONDecodeError):
        body = orjson.loads(raw)
    if not (isinstance(body, dict) and isinstance(body.get("error"), dict)):
        kind = _STATUS_ERROR_TYPE.get(resp.status, "api_error")
        snippet = raw[:200].decode("utf-8", "replace").strip()
        message = f"upstream answered HTTP {resp.status} ({resp.content_type}): {snippet}"
        body = {"type": "error", "error": {"type": kind, "message": message}}
    return UpstreamStatusError(resp.status, body, retry_after=retry_after, request_id=request_id)


@contextmanager
def map_errors() -> Iterator[None]:
    """aiohttp's failures -> our error tree. (Its timeouts are ``TimeoutError``s, some of them
    ``ClientError``s too: they are checked first.)"""
    try:
        yield
    except TimeoutError as e:
        raise UpstreamTimeout(f"upstream timed out: {_shown(e)}" if str(e) else "upstream timed out") from e
    except aiohttp.ClientError as e:
        raise UpstreamUnavailable(f"upstream unavailable: {type(e).__name__}: {_shown(e)}") from e


_USERINFO = re.compile(r"(?<=//)[^/@\s'\"]*@")


def _shown(error: BaseException) -> str:
    """An error's text without the credentials of any URL in it: aiohttp names the proxy's URL, password
    and all, in some (a refused CONNECT), and the text goes to the client and the log."""
    return _USERINFO.sub("", str(error))
