"""bench.openloop: the open-loop schedule (requests start on time whatever the server does), when a step of the
rate search counts as kept, and a fixed-rate run against a real server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from bench.fleet import Child
from bench.openloop import FixedRate, RatePlan, due, schedule, step_met, verdicts, with_added
from bench.scenarios import DIRECT, simple_bodies
from bench.upstream import FakeUpstream


def test_the_schedule_is_one_request_every_1_over_rate() -> None:
    offsets = schedule(2500, 0.01)
    assert len(offsets) == 25
    assert offsets[:3] == [0.0, 0.0004, 0.0008]
    assert offsets[-1] == pytest.approx(0.0096)


def test_every_request_due_is_sent_at_once_however_late() -> None:
    offsets = schedule(1000, 0.01)  # 0, 1, ..., 9 ms
    assert due(offsets, 0, 0.0) == 1
    assert due(offsets, 1, 0.0005) == 1  # the next is not due yet
    assert due(offsets, 1, 0.0042) == 5  # 1, 2, 3 and 4 ms: late, all sent now
    assert due(offsets, 5, 1.0) == 10  # never past the end


def _row(p99_added: float, *, sent: int = 100, ok: int = 100, errors: int = 0,
         overloaded: bool = False) -> dict[str, Any]:
    return {"route": "openai", "kind": "json", "sent": sent, "ok": ok, "errors": errors, "overloaded": overloaded,
            "added": {"p99_added_ms": p99_added}}


def test_a_rate_is_kept_only_with_every_answer_no_backlog_and_p99_under_1_ms() -> None:
    assert step_met(_row(0.8))
    assert not step_met(_row(1.0))
    assert not step_met(_row(0.2, ok=99))
    assert not step_met(_row(0.2, errors=1))
    assert not step_met(_row(0.2, overloaded=True))


def test_an_overloaded_run_misses_its_target_whatever_its_p99() -> None:
    got = verdicts(RatePlan(), [_row(0.5), _row(0.5, overloaded=True), {**_row(0.1), "route": DIRECT}], [])
    assert [v["met"] for v in got] == [True, False]


async def test_a_fixed_rate_run_sends_on_schedule(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> None:
    server = await aiohttp_server(FakeUpstream(1, 1.0, 60.0).app())
    child = Child("upstream", None, server.port, None)  # type: ignore[arg-type]
    result = await FixedRate(child, DIRECT, simple_bodies(3)[DIRECT], True).run(rate=200, seconds=0.25)
    assert (result.sent, result.latency.count, result.errors, result.overloaded) == (50, 50, 0, False)
    assert result.lateness.count == 50


def test_a_proxy_run_is_load_bound_when_the_direct_run_could_not_keep_the_rate() -> None:
    latency = {"p50_ms": 1.0, "p99_ms": 2.0, "p999_ms": 3.0, "mean_ms": 1.2}
    proxy = {"latency": latency, "load_saturated": False}
    kept = {"latency": latency, "overloaded": False, "generator_behind": False, "load_saturated": False}
    assert not with_added(proxy, kept)["load_saturated"]
    assert with_added(proxy, {**kept, "overloaded": True})["load_saturated"]
    assert with_added(proxy, kept)["added"]["p99_added_ms"] == 0.0
