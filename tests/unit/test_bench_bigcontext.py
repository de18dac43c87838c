"""bench.bigcontext: the linear-growth check of the chat route's conversion cost, the relay check of the Claude
route, and bodies of the asked size and make-up."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bench import scenarios
from bench.bigcontext import RELAY, ContextPlan, linear_fit, linearity, max_deviation, requests_for, verdicts

MB = 2**20


def test_a_line_is_linear_and_a_parabola_is_not() -> None:
    line = [(0.1, 150.0), (1.0, 1050.0), (4.0, 4050.0)]  # 1,000 us/MB plus 50 us
    assert linear_fit(line) == pytest.approx((1000.0, 50.0))
    assert max_deviation(line) == pytest.approx(0.0, abs=1e-9)
    parabola = [(x, 1000.0 * x * x) for x in (0.1, 1.0, 4.0)]
    assert max_deviation(parabola) > 0.5
    noisy = [(0.1, 110.0), (1.0, 1000.0), (4.0, 3900.0)]
    assert max_deviation(noisy) < 0.15


def _m(size_mb: float, above: float, parse: float = 1000.0) -> dict[str, Any]:
    return {"bytes": int(size_mb * MB), "cpu_above_small_us": above, "parse_us": parse}


def test_the_chat_route_verdict_reads_the_histories_only() -> None:
    rows = {"hello": {}, "history-100KB": {"openai": _m(0.1, 100.0)}, "history-1MB": {"openai": _m(1.0, 1000.0)},
            "history-4MB": {"openai": _m(4.0, 4000.0)}, "images-8MB": {"openai": _m(8.0, 99999.0)}}
    assert linearity(rows)["us_per_mb"] == pytest.approx(1000.0)
    assert verdicts(rows)[0]["met"]


def test_the_claude_route_is_a_relay_when_it_spends_less_than_a_parse_beyond_the_plain_relay() -> None:
    relay = {"claude": _m(1.0, 900.0, parse=1000.0), RELAY: _m(1.0, 300.0)}  # 600 us beyond: 0.6 parse
    parsing = {"claude": _m(1.0, 1500.0, parse=1000.0), RELAY: _m(1.0, 300.0)}  # 1.2 parses
    got = verdicts({"history-1MB": relay, "images-8MB": parsing})
    assert [(v["detail"], v["met"]) for v in got[1:]] == [("history-1MB", True), ("images-8MB", False)]


def test_sized_histories_keep_their_make_up() -> None:
    small, big = scenarios.sized_history_bodies(100 * 1024), scenarios.sized_history_bodies(MB)
    assert len(big[scenarios.OPENAI]) == pytest.approx(MB, rel=0.02)
    assert len(small[scenarios.OPENAI]) == pytest.approx(100 * 1024, rel=0.05)
    messages = orjson.loads(big[scenarios.OPENAI])["messages"]
    assert len(messages) == 502  # the system prompt, 500, the last question
    assert sum("tool_calls" in m for m in messages) == 125


def test_request_counts_shrink_with_size_within_bounds() -> None:
    plan = ContextPlan()
    assert [requests_for(plan, s) for s in (1024, MB, 4 * MB, 8 * MB)] == [40, 12, 4, 4]
