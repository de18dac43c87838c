"""Soak: a few hundred concurrent streams, on the chat, Claude and Responses routes, against the fault upstream
answering a mix of healthy and broken streams. Every client gets a complete answer (``[DONE]`` /
``message_stop``) or a well-formed error, exactly as the fault matrix (test_faults.py) says for its fault;
afterwards the process holds no more file descriptors, tasks, memory (traced) or upstream responses than
before."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp.test_utils import TestClient

from bench import soak
from tests.faults import FaultUpstream, fault_upstream_fixture  # noqa: F401
from tests.integration.test_faults import (
    BUGS,
    LEAKS,
    ROUTES,
    Outcome,
    check,
    expect,
    request_body,
    resources,
    tracing_memory,
)

MakeProxy = Callable[..., Awaitable[TestClient]]

STREAMS = 300
# Healthy answers half the time, broken ones of every kind the proxy handles correctly today (a fault joins the
# mix by itself once its BUGS / LEAKS entries are gone). Slow ones (drip, huge, trickle) have their own tests.
CANDIDATES = ["reset_before_headers", "stall_before_headers", "html_502", "invalid_json", "not_sse", "wrong_shape",
              "error_first", "reset_mid", "stall_mid", "no_message_stop"]
BROKEN = [f for f in CANDIDATES if not any((f, r, True) in BUGS or (f, r, True) in LEAKS for r in ROUTES)]
# Healthy streams are mostly paced (an event every PACE seconds), and each holds its last event until
# OPEN_TOGETHER streams are under way at once (FaultUpstream.hold), so that the streams really overlap however
# fast or slow the machine is. A proxy that could not hold that many open together would never release them:
# their streams would be cut by stream_idle_timeout, and their outcomes fail.
PACE = 0.2
OPEN_TOGETHER = STREAMS // 6
MIX = ["paced"] * (len(BROKEN) - 1) + ["ok"] + BROKEN
# Generous timeouts: 300 streams on a busy 2-core machine are slow (one event loop runs the clients, the proxy
# and the upstream, under tracemalloc), and only the shape of each outcome is checked, not its timing. Every
# new connection is set up at once (no keep-alive): connect_timeout is only a bound, as wide as the total.
# Read and idle timeouts end the stalled faults, so they set the test's length: wide enough that a second's
# pause of the process is no false timeout, no wider.
UPSTREAM = {"read_timeout": 10.0, "stream_idle_timeout": 10.0, "total_timeout": 60, "connect_timeout": 60}


class _Soak:
    def __init__(self, proxy: TestClient, faults: FaultUpstream) -> None:
        self.base = str(proxy.make_url("")).rstrip("/")
        self.in_flight = self.peak_in_flight = 0  # requests sent and not yet answered in full
        self.open = self.peak_open = 0  # streams under way (their 200 arrived, their end not yet)
        self.hold = faults.hold = asyncio.Event()  # paced streams end once OPEN_TOGETHER are open

    async def one(self, session: aiohttp.ClientSession, route: str, fault: str) -> Outcome:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            async with session.post(self.base + ROUTES[route], json=request_body(route, fault, True)) as resp:
                self.open += resp.status == 200
                self.peak_open = max(self.peak_open, self.open)
                if self.open >= OPEN_TOGETHER:
                    self.hold.set()
                raw = await resp.read()
                self.open -= resp.status == 200
                return Outcome(resp.status, resp.content_type, raw, 0.0)
        finally:
            self.in_flight -= 1

    async def run(self, cases: list[tuple[str, str]]) -> list[Outcome]:
        # Our own session: no connection limit (the TestClient's allows 100), and closed after, so that every
        # connection of the run is gone when resources are counted.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            return await asyncio.gather(*(self.one(session, route, fault) for route, fault in cases))


def _check(cases: list[tuple[str, str]], outcomes: list[Outcome]) -> None:
    complete = 0
    for (route, fault), out in zip(cases, outcomes, strict=True):
        check(out, expect(fault, route, True), route, True, timing=False)
        complete += fault in ("ok", "paced")
    assert complete == len(cases) // 2


async def test_concurrent_streams_all_end_well_formed_and_leave_nothing_behind(
    make_proxy: MakeProxy, fault_upstream: FaultUpstream
) -> None:
    assert len(BROKEN) >= 5
    # Without keep-alive upstream, no idle pooled connection outlives the run and fds must return exactly.
    fault_upstream.keep_alive = False
    fault_upstream.pace = PACE
    proxy = await make_proxy(upstream={**UPSTREAM, "base_url": fault_upstream.url}, routing={"max_attempts": 1})
    cases = list(itertools.islice(itertools.cycle(itertools.product(ROUTES, MIX)), STREAMS))
    # Warm up at full size: caches, metrics series, and the tables that grow with the connection count.
    _check(cases, await _Soak(proxy, fault_upstream).run(cases))

    soak = _Soak(proxy, fault_upstream)
    with tracing_memory():
        before = await resources(fault_upstream)
        _check(cases, await soak.run(cases))
        grown = await resources(fault_upstream) - before

    assert fault_upstream.total == 2 * STREAMS
    # They did run at once: every request in flight together, and many streams open together.
    assert soak.peak_in_flight == STREAMS
    assert soak.peak_open >= OPEN_TOGETHER, soak.peak_open
    assert grown.fds <= 2, grown
    assert grown.tasks <= 2, grown
    assert grown.responses <= 0, grown
    assert grown.memory <= 1024 * 1024, grown


def test_the_real_server_writes_only_json_lines_while_clients_leave() -> None:
    """A few seconds of bench/soak.py's mixed load on `translator serve` (streams and not, on the chat, Claude
    and Responses routes, clients that leave mid-stream or before the head, bodies that are not JSON,
    malformed HTTP with a key in it): every answer as expected, every line on stdout JSON and none a warning
    or an error (no traceback), nothing on stderr but the start-up line, the key nowhere. (Memory is the
    full soak's to judge: `python -m bench.soak --minutes 30`.)"""
    report = soak.run(soak.Options(seconds=6, connections=8))
    assert report.errors == []
    assert report.non_json_lines == []
    assert report.problem_lines == []
    assert report.stderr_lines == []
    assert not report.key_in_output
    for kind in ("leave_mid_stream", "leave_early", "malformed_http", "bad_json", "responses_stream"):
        assert report.requests[kind] > 0, kind
    assert report.stream_ends["client_gone"] > 0
    # One line per request: a client that left before its request was read may have none.
    assert report.sent - report.requests["leave_early"] <= report.request_lines <= report.sent
