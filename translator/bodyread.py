"""Reading an upstream body as it arrives, in one piece per read.

aiohttp's ``StreamReader.readany()`` hands over what is buffered one HTTP chunk at a time: for each, a
bookkeeping pass over the chunk boundaries and a call down to the transport's flow control
(``resume_reading``), and then a join. Claude writes every SSE event as a chunk of its own, so that is
about 140 bytecodes per event in the pure-Python reader, some 3,300 per 20-event stream: a tenth of all the
proxy's instructions on such a request. ``readany(reader)`` below returns what ``readany()`` returns,
taking the whole buffer at once, and leaves the reader as it leaves it (buffer, counters, chunk ends,
flow control), with one difference, only after backpressure: when the reader had paused its connection
(over twice ``read_bufsize`` unread, or over ``read_bufsize // 16`` chunks), the parser, resumed, parses
what it held back once the whole buffer is taken, not after the first chunks; so it may parse more at
once, and the reads after that one fall at other points of the same bytes (on a body that then turns out
broken, a little more or less of it comes before the same exception).

It reads the reader's own fields, so it is used only on the exact ``StreamReader`` class, of the aiohttp
release it was checked against (3.14: its fields must also all be there); on any other reader or release,
it is aiohttp's own ``readany()``. ``tests/unit/test_bodyread.py`` holds the two to the same bytes and the
same state, read after read, and, on aiohttp's own protocol and parser, to the same bytes and errors.
"""

from __future__ import annotations

import aiohttp
from aiohttp import StreamReader

# The reader's fields this reads and writes (all of them slots of aiohttp's StreamReader)
_FIELDS = (
    "_buffer",
    "_buffer_offset",
    "_cursor",
    "_eof",
    "_exception",
    "_http_chunk_splits",
    "_low_water",
    "_low_water_chunks",
    "_protocol",
    "_size",
    "_timer",
)


CHECKED = ("3.14",)  # the aiohttp releases (major.minor) whose StreamReader this was checked against


def _fits(cls: type, version: str) -> bool:
    slots = {name for klass in cls.__mro__ for name in getattr(klass, "__slots__", ())}
    fields = all(name in slots for name in _FIELDS) and callable(getattr(cls, "_wait", None))
    return fields and ".".join(version.split(".")[:2]) in CHECKED


FITS = _fits(StreamReader, aiohttp.__version__)  # False: every read is aiohttp's own readany()


async def readany(reader: StreamReader) -> bytes:
    """``await reader.readany()``: what the body has brought since the last read (waiting for something if
    nothing has come yet), b"" at its end; the reader's exception, if it has one."""
    if type(reader) is not StreamReader or not FITS:
        return await reader.readany()
    if reader._exception is not None:
        raise reader._exception
    while not reader._buffer and not reader._eof:
        await reader._wait("readany")
    return _take_all(reader)


def _take_all(reader: StreamReader) -> bytes:
    """``StreamReader._read_nowait(-1)`` in one step: the whole buffer, as its chunks one by one give it."""
    reader._timer.assert_timeout()
    buffer = reader._buffer
    if not buffer:
        return b""
    data = buffer.popleft() if len(buffer) == 1 else b"".join(buffer)
    buffer.clear()
    if reader._buffer_offset:  # a read of n bytes took the first chunk's start
        data = data[reader._buffer_offset :]
        reader._buffer_offset = 0
    reader._size -= len(data)
    cursor = reader._cursor = reader._cursor + len(data)
    # Chunk ends (offsets from the body's start, rising) behind the cursor are dropped, as each chunk's read
    # drops them: at most the last stays, if it is the cursor (readchunk() then says a chunk ended there).
    splits = reader._http_chunk_splits
    if splits:
        last = splits[-1]
        splits.clear()
        if last >= cursor:
            splits.append(last)
    if reader._size < reader._low_water and (splits is None or len(splits) < reader._low_water_chunks):
        reader._protocol.resume_reading()  # (each chunk's read calls it; here once, after all: see above)
    return data
