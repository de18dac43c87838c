"""bench.rawclient finds the end of an answer however the bytes are split, and with the fake upstream's paced
streams (bench.pacer) it times the gap between events; bench.histogram turns gaps into percentiles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
import pytest
from aiohttp.test_utils import TestServer

from bench.histogram import RESOLUTION_S, Histogram, added
from bench.rawclient import BodyParser, Connection, Pool, encode_request
from bench.upstream import PACED_MODEL, FakeUpstream

CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n")
PLAIN = b"HTTP/1.1 404 Not Found\r\nContent-Length: 11\r\nContent-Type: text/plain\r\n\r\nnot found !"
NEXT = b"HTTP/1.1 200 OK\r\n"


@pytest.mark.parametrize(("raw", "status", "body"), [(CHUNKED, 200, b"hello, world"), (PLAIN, 404, b"not found !")])
def test_the_end_of_an_answer_is_found_at_every_split(raw: bytes, status: int, body: bytes) -> None:
    for cut in range(1, len(raw)):
        for second in range(cut, len(raw) + 1):
            parser = BodyParser()
            pieces = [p for p in (raw[:cut], raw[cut:second], raw[second:] + NEXT) if p]
            fed = 0
            rest = None
            while rest is None and fed < len(pieces):
                rest = parser.feed(pieces[fed])
                fed += 1
            assert rest is not None, (cut, second)
            assert rest + b"".join(pieces[fed:]) == NEXT, (cut, second)
            assert (parser.status, parser.size, parser.tail) == (status, len(body), body)


def test_whole_chunks_read_one_at_a_time_are_taken_as_split_ones_are() -> None:
    head, _, body = CHUNKED.partition(b"\r\n\r\n")
    chunks = [b"5\r\nhello\r\n", b"7;ext=1\r\n, world\r\n", b"0\r\n\r\n"]
    assert b"".join(chunks) == body
    whole, split = BodyParser(), BodyParser()
    assert whole.feed(head + b"\r\n\r\n") is None and split.feed(head + b"\r\n\r\n") is None
    results = [whole.feed(c) for c in chunks]
    assert results == [None, None, b""]
    assert split.feed(body[:3]) is None and split.feed(body[3:]) == b""
    assert (whole.size, whole.tail) == (split.size, split.tail) == (12, b"hello, world")
    big = BodyParser()
    big.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    payload = bytes(range(256)) * 2
    assert big.feed(b"%x\r\n%s\r\n" % (len(payload), payload)) is None
    assert big.feed(b"0\r\n\r\n") == b""
    assert (big.size, big.tail) == (512, payload[-64:])


def test_bytes_past_the_end_are_handed_back() -> None:
    assert BodyParser().feed(CHUNKED + NEXT) == NEXT
    assert BodyParser().feed(PLAIN + NEXT) == NEXT


def test_histogram_percentiles_and_added() -> None:
    h = Histogram()
    for ms in range(1, 101):  # 1..100 ms
        h.add(ms / 1e3)
    assert h.count == 100
    assert h.percentile_ms(50) == pytest.approx(50, abs=RESOLUTION_S * 1e3 * 1.01)
    assert h.percentile_ms(99) == pytest.approx(99, abs=RESOLUTION_S * 1e3 * 1.01)
    other = Histogram()
    other.add(5.0)  # past 2 s: 1 ms buckets
    other.add(500.0)  # past the limit: counted, in the last bucket
    assert other.percentile_ms(50) == pytest.approx(5001.0)
    h.merge(other)
    assert (h.count, h.overflow) == (102, 1)
    assert added({"p50_ms": 52.0, "p99_ms": 58.5}, {"p50_ms": 50.0, "p99_ms": 51.0}) == {
        "p50_added_ms": 2.0, "p99_added_ms": 7.5}


async def test_a_paced_stream_arrives_one_event_per_interval(
    aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    pace = 0.05
    server = await aiohttp_server(FakeUpstream(1, 1.0, 60.0, pace=pace).app())
    body = orjson.dumps({"model": PACED_MODEL, "max_tokens": 5, "stream": True, "messages": []})
    request = encode_request(f"{server.host}:{server.port}", "/v1/messages", body, {"Content-Type": "application/json"})
    pool = Pool(server.host, server.port)
    conn: Connection = await pool.get()
    stamps: list[float] = []
    for _ in range(2):  # the same keep-alive connection, twice
        stamps.clear()
        answer = await conn.exchange(request, lambda now, data: stamps.append(now))
        assert answer.status == 200 and b"message_stop" in answer.tail
        pool.put(conn)
        conn = await pool.get()
    assert pool.opened == 1
    # Paced, not a burst: the pacer cannot send the five deltas faster than its schedule (a lower bound set by
    # the code, not a speed asserted of the machine), so they come in several reads. How many depends on the
    # machine: the first delta may share a read with the head, the last with the tail, and a stalled client
    # (a loaded CI runner) reads two at once; at least three reads takes a stall of three intervals.
    assert len(stamps) >= 3
    assert stamps[-1] - stamps[0] >= 3 * pace
    pool.close()
    conn.close()
