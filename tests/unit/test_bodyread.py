"""translator.bodyread.readany against aiohttp's own StreamReader.readany: two readers fed the same way (as
aiohttp's HTTP parser feeds a chunked body: a chunk's start, its data, its end; the body's end or an
error), read the same way (readany, or read(n), which leaves the first chunk part-read); every read gives
the same bytes, and leaves the reader in the same state. Then on aiohttp's own connection protocol and
parser, with backpressure (where the parser, resumed, may parse more at once): the same bytes, the same end,
never a stall, and on a broken body the same error."""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

import aiohttp
import pytest
from aiohttp import StreamReader
from aiohttp.streams import EmptyStreamReader
from hypothesis import given, settings
from hypothesis import strategies as st

from translator import bodyread
from translator.bodyread import readany

LIMIT = 64  # the readers' low water mark (bytes); high water is twice that


class Protocol:
    """What a StreamReader calls on its connection's protocol: flow control."""

    def __init__(self, refill: StreamReader | None = None) -> None:
        self.paused = False
        self.resumed = 0
        self.connected = True
        self.refill = refill  # resume_reading feeds it more (as aiohttp's parser, resumed, does)

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self, resume_parser: bool = True) -> None:
        self.paused = False
        self.resumed += 1
        if self.refill is not None:
            reader, self.refill = self.refill, None
            reader.begin_http_chunk_receiving()
            reader.feed_data(b"refill")
            reader.end_http_chunk_receiving()


def state(reader: StreamReader) -> dict[str, Any]:
    splits = reader._http_chunk_splits
    return {
        "buffer": b"".join(reader._buffer)[reader._buffer_offset :],
        "size": reader._size,
        "cursor": reader._cursor,
        "splits": None if splits is None else list(splits),
        "eof": reader.is_eof(),
        "paused": reader._protocol.paused,  # type: ignore[attr-defined]
    }


def pair(refill: bool = False, limit: int = LIMIT) -> list[StreamReader]:
    loop = asyncio.get_running_loop()
    readers = []
    for _ in range(2):
        protocol = Protocol()
        reader = StreamReader(protocol, limit, loop=loop)  # type: ignore[arg-type]
        protocol.refill = reader if refill else None
        readers.append(reader)
    return readers


def chunk(reader: StreamReader, data: bytes) -> None:
    reader.begin_http_chunk_receiving()
    reader.feed_data(data)
    reader.end_http_chunk_receiving()


async def test_the_whole_buffer_in_one_read() -> None:
    ours, theirs = pair(limit=2**16)  # aiohttp's default
    for reader in (ours, theirs):
        for i in range(20):
            chunk(reader, b"event %d\n\n" % i)
    assert await readany(ours) == await theirs.readany() == b"".join(b"event %d\n\n" % i for i in range(20))
    assert state(ours) == state(theirs)
    # theirs: once a chunk (each time the parser is fed again, the costliest part of a chunk's read)
    assert ours._protocol.resumed == 1  # type: ignore[attr-defined]
    assert theirs._protocol.resumed == 20  # type: ignore[attr-defined]


async def test_a_part_read_first_chunk_and_the_chunk_ends_behind_the_cursor() -> None:
    ours, theirs = pair()
    for reader in (ours, theirs):
        chunk(reader, b"0123456789")
        chunk(reader, b"abcdef")
        assert await reader.read(4) == b"0123"
    assert ours._buffer_offset == 4
    assert await readany(ours) == await theirs.readany() == b"456789abcdef"
    assert state(ours) == state(theirs)
    assert list(ours._http_chunk_splits or []) == [16]  # the last chunk ends at the cursor: kept for readchunk()
    assert ours._buffer_offset == 0


async def test_one_chunk_read_in_two() -> None:
    ours, theirs = pair()
    for reader in (ours, theirs):
        chunk(reader, b"0123456789")
        await reader.read(3)
    assert await readany(ours) == await theirs.readany() == b"3456789"
    assert state(ours) == state(theirs)


async def test_a_paused_connection_is_resumed_once_drained() -> None:
    ours, theirs = pair()
    for reader in (ours, theirs):
        for _ in range(3):
            chunk(reader, b"x" * 50)  # past high water (128): the reader pauses the connection
        assert reader._protocol.paused  # type: ignore[attr-defined]
    assert await readany(ours) == await theirs.readany() == b"x" * 150
    assert state(ours) == state(theirs)
    assert not ours._protocol.paused  # type: ignore[attr-defined]


async def test_what_resuming_feeds_comes_with_the_next_read() -> None:
    ours, theirs = pair(refill=True)
    for reader in (ours, theirs):
        chunk(reader, b"first")
        chunk(reader, b"second")
    assert await readany(ours) == await theirs.readany() == b"firstsecond"
    assert state(ours) == state(theirs)
    assert await readany(ours) == await theirs.readany() == b"refill"


async def test_a_read_waits_for_data() -> None:
    ours, theirs = pair()
    reads = [asyncio.ensure_future(readany(ours)), asyncio.ensure_future(theirs.readany())]
    await asyncio.sleep(0)
    assert not any(r.done() for r in reads)
    for reader in (ours, theirs):
        chunk(reader, b"late")
    assert await asyncio.gather(*reads) == [b"late", b"late"]
    assert state(ours) == state(theirs)


async def test_the_end_and_after() -> None:
    ours, theirs = pair()
    for reader in (ours, theirs):
        chunk(reader, b"last")
        reader.feed_eof()
    assert await readany(ours) == await theirs.readany() == b"last"
    assert await readany(ours) == await theirs.readany() == b""
    assert state(ours) == state(theirs)
    assert ours.is_eof()


async def test_a_wait_ends_at_the_end() -> None:
    ours, theirs = pair()
    reads = [asyncio.ensure_future(readany(ours)), asyncio.ensure_future(theirs.readany())]
    await asyncio.sleep(0)
    for reader in (ours, theirs):
        reader.feed_eof()
    assert await asyncio.gather(*reads) == [b"", b""]


async def test_the_readers_exception_is_raised() -> None:
    ours, theirs = pair()
    for reader in (ours, theirs):
        chunk(reader, b"lost")
        reader.set_exception(ConnectionResetError("reset"))
    for read in (readany(ours), theirs.readany()):
        with pytest.raises(ConnectionResetError, match="reset"):
            await read


async def test_a_waiting_read_gets_the_exception() -> None:
    ours, theirs = pair()
    reads = [asyncio.ensure_future(readany(ours)), asyncio.ensure_future(theirs.readany())]
    await asyncio.sleep(0)
    for reader in (ours, theirs):
        reader.set_exception(ConnectionResetError("reset"))
    for read in reads:
        with pytest.raises(ConnectionResetError):
            await read


async def test_other_readers_and_layouts_read_as_aiohttp_does(monkeypatch: pytest.MonkeyPatch) -> None:
    assert bodyread.FITS  # the aiohttp this runs with is the one it was written against
    assert await readany(EmptyStreamReader()) == b""  # (a subclass: its own readany)
    ours, _ = pair()
    chunk(ours, b"abc")
    monkeypatch.setattr(bodyread, "FITS", False)
    monkeypatch.setattr(bodyread, "_take_all", None)  # not reached
    assert await readany(ours) == b"abc"


def test_a_layout_without_a_field_or_another_release_does_not_fit() -> None:
    class Other:
        __slots__ = tuple(name for name in bodyread._FIELDS if name != "_cursor")

        async def _wait(self, name: str) -> None:
            pass

    assert bodyread._fits(StreamReader, "3.14.5")
    assert not bodyread._fits(Other, "3.14.5")
    assert not bodyread._fits(StreamReader, "3.15.0")  # not checked against: aiohttp's own readany
    assert not bodyread._fits(StreamReader, "4.0.0a1")
    assert aiohttp.__version__.startswith("3.14.") == bodyread.FITS


async def test_a_timed_out_read_raises_as_aiohttps_does() -> None:
    class Expired:  # the request's total timeout, run out: every read raises
        def assert_timeout(self) -> None:
            raise TimeoutError

    loop = asyncio.get_running_loop()
    for read in (readany, StreamReader.readany):
        reader = StreamReader(Protocol(), LIMIT, timer=Expired(), loop=loop)  # type: ignore[arg-type]
        chunk(reader, b"late")
        with pytest.raises(TimeoutError):
            await read(reader)


# One op: feed a chunk of n bytes, read(n), readany, feed the end, set an exception.
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("chunk"), st.integers(0, 90)),
        st.tuples(st.just("read"), st.integers(1, 40)),
        st.tuples(st.just("readany"), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None, database=None)
@given(ops=OPS, end=st.sampled_from(["eof", "error", None]))
def test_any_sequence_reads_as_aiohttp_reads(ops: list[tuple[str, int]], end: str | None) -> None:
    asyncio.run(_replay(ops, end))


async def _replay(ops: list[tuple[str, int]], end: str | None) -> None:
    ours, theirs = pair()
    fed = 0
    for op, n in ops:
        if op == "chunk":
            for reader in (ours, theirs):
                chunk(reader, bytes(range(fed, fed + n)) if fed + n <= 256 else b"z" * n)
            fed = (fed + n) % 200
        elif op == "read" and ours._buffer:
            assert await ours.read(n) == await theirs.read(n)
        elif op == "readany" and ours._buffer:
            assert await readany(ours) == await theirs.readany()
        assert state(ours) == state(theirs)
    if end == "eof":
        for reader in (ours, theirs):
            reader.feed_eof()
        assert await readany(ours) == await theirs.readany()
        assert await readany(ours) == await theirs.readany() == b""
    elif end == "error":
        for reader in (ours, theirs):
            reader.set_exception(ValueError("cut"))
        for read in (readany(ours), theirs.readany()):
            with pytest.raises(ValueError):
                await read
    assert state(ours) == state(theirs)


# On aiohttp's own connection protocol and HTTP parser (the C one where built), with backpressure: the one
# place where the two can part (see the module's docstring). The same bytes, the same end, the same errors.


class Transport:
    """The socket under aiohttp's ResponseHandler: only its flow control is used."""

    def __init__(self) -> None:
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_closing(self) -> bool:
        return False


def response(body_chunks: list[bytes], *, deflate: bool = False) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
    if deflate:
        head += b"Content-Encoding: deflate\r\n"
    framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in body_chunks if c)
    return head + b"\r\n" + framed + b"0\r\n\r\n"


async def read_all(raw: bytes, bufsize: int, ours: bool, feeds: int) -> tuple[list[bytes], BaseException | None]:
    """Every read of the body ``raw`` carries, fed to the protocol in ``feeds`` pieces (the next one whenever the
    reader's buffer is empty)."""
    from aiohttp.client_proto import ResponseHandler

    protocol = ResponseHandler(asyncio.get_running_loop())
    protocol.connection_made(Transport())  # type: ignore[arg-type]
    protocol.set_response_params(read_bufsize=bufsize)
    head = raw.index(b"\r\n\r\n") + 4  # the head first (the reader is made there), then the body in pieces
    step = -(-(len(raw) - head) // feeds)
    pieces = [raw[i : i + step] for i in range(head, len(raw), step)]
    protocol.data_received(raw[:head])
    reader = protocol._buffer[0][0][1]  # (the message's payload: what ClientResponse.content is)
    reads: list[bytes] = []
    try:
        while True:
            while pieces and not reader._buffer:  # (a piece may hold only framing)
                protocol.data_received(pieces.pop(0))
            data = await asyncio.wait_for(readany(reader) if ours else reader.readany(), 1)  # no stall
            if not data:
                break
            reads.append(data)
    except aiohttp.ClientPayloadError as err:
        return reads, err
    assert reader.is_eof()
    return reads, None


BODIES = st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=200)


@settings(max_examples=150, deadline=None, database=None)
@given(chunks=BODIES, bufsize=st.sampled_from([16, 64, 256, 2**16]), feeds=st.integers(1, 5))
def test_aiohttps_parser_under_backpressure_gives_the_same_bytes(chunks: list[bytes], bufsize: int, feeds: int) -> None:
    raw = response(chunks)
    ours, _ = asyncio.run(read_all(raw, bufsize, True, feeds))
    theirs, _ = asyncio.run(read_all(raw, bufsize, False, feeds))
    assert b"".join(ours) == b"".join(theirs) == b"".join(chunks)
    if bufsize == 2**16:  # no backpressure: the same reads, one for one
        assert ours == theirs


def test_a_body_broken_under_backpressure_ends_in_the_same_error() -> None:
    text = bytes(range(65, 91)) * 4
    packed = zlib.compress(text)
    chunks = [packed[i : i + 1] for i in range(len(packed) - 6)] + [b"\xff" * 6]  # its end corrupted
    results = [asyncio.run(read_all(response(chunks, deflate=True), 16, ours, 1)) for ours in (True, False)]
    for reads, err in results:
        assert isinstance(err, aiohttp.ClientPayloadError)
        assert text.startswith(b"".join(reads))  # a part of the same text, as far as each got
