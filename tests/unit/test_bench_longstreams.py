"""bench.longstreams: the gap between events as a user sees them (between the reads that bring them, in the
window only), when the load side counts as the limit, which run the targets are judged on, and streams left
unfinished."""

from __future__ import annotations

import asyncio

import pytest

from bench import longstreams
from bench.histogram import Histogram
from bench.longstreams import GapTimer, load_saturated, markdown, pace_kept, verdicts

EVENT = b"14\r\nevent: x\ndata: {}\n\n\r\n"


def test_gaps_are_between_reads_with_events_and_only_inside_the_window() -> None:
    hist = Histogram()
    timer = GapTimer(hist, start=1.0, end=2.0)
    timer(0.95, EVENT)  # before the window: only a reference point
    timer(1.00, EVENT)  # gap from a read before the window: not counted
    timer(1.05, EVENT)  # 50 ms
    timer(1.06, b"3\r\nab\n\r\n")  # no whole event: no gap, and not the reference for the next
    timer(1.20, EVENT + EVENT + EVENT)  # 150 ms: three events that came together
    timer(2.10, EVENT)  # past the window: not counted
    assert hist.count == 2
    assert timer.events == 4
    assert hist.percentile_ms(50) == pytest.approx(50.0, abs=0.02)
    assert hist.percentile_ms(100) == pytest.approx(150.0, abs=0.02)


def _row(load: float, upstream: float, late: int = 0, p99_added: float = 1.0, rss: float = 100.0) -> dict[str, object]:
    return {"load_cpu": load, "upstream_cpu": upstream, "late_starts": late, "rss_open_mb": rss,
            "added": {"p99_added_ms": p99_added}}


def test_the_load_side_is_the_limit_when_its_cpu_is_full_or_starts_are_late() -> None:
    assert load_saturated(_row(0.5, 0.45), shared=True)  # one CPU for both: 95%
    assert not load_saturated(_row(0.5, 0.45), shared=False)  # a CPU each: half full
    assert load_saturated(_row(0.1, 0.1, late=3), shared=True)
    assert not load_saturated(_row(0.3, 0.3), shared=True)


def test_targets_are_judged_at_2000_streams_or_else_the_largest_run() -> None:
    rows = {"500": {"direct": {}, "openai": _row(0, 0, p99_added=9.0)},
            "2000": {"direct": {}, "openai": _row(0, 0, p99_added=4.0, rss=260.0)}}
    got = {(v["target"], v["met"]) for v in verdicts(rows)}
    assert got == {("2000 streams: added p99 gap <= 5 ms", True), ("2000 streams: RSS < 250 MB", False)}
    short = verdicts({"200": rows["500"], "50": rows["2000"]})
    assert short[0]["target"].startswith("200 streams") and not short[0]["met"]


def test_the_section_renders() -> None:
    gaps = {"p50_ms": 50.0, "p99_ms": 55.0}
    row = {**_row(0.2, 0.2), "gaps": gaps, "server_cpu": 0.3, "rss_open_mb": 70.0, "kb_per_stream": 40.0,
           "delivered": 1.0, "errors": 0, "load_saturated": False}
    section = {"plan": {"interval_s": 0.05, "seconds": 60.0, "ramp_s": 5.0},
               "rows": {"2000": {"direct": {**row, "added": {}}, "openai": row}}, "targets": []}
    text = "\n".join(markdown(section))
    assert "| 2000 | openai | 50.00 | 55.00 |" in text


def test_a_direct_run_keeps_the_pace_with_its_events_on_time() -> None:
    assert pace_kept({"delivered": 0.99, "gaps": {"p50_ms": 50.1}}, 0.05)
    assert not pace_kept({"delivered": 0.57, "gaps": {"p50_ms": 50.1}}, 0.05)  # events missing
    assert not pace_kept({"delivered": 0.99, "gaps": {"p50_ms": 97.0}}, 0.05)  # every other tick


async def test_streams_still_open_after_the_wait_are_counted_unfinished(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(longstreams, "FINISH_S", 0.01)
    run = longstreams.StreamRun.__new__(longstreams.StreamRun)
    run.unfinished = 0
    done = asyncio.create_task(asyncio.sleep(0))
    stuck = asyncio.create_task(asyncio.sleep(3600))
    await run._finish([done, stuck])
    assert run.unfinished == 1 and stuck.cancelled()
