"""``python -m bench.caching``'s workloads meet their targets, in billed input tokens (deterministic: the
replayed bytes and the fake's token counts never change), and the usage the client is told is exact."""

from __future__ import annotations

from bench.caching import WORKLOADS, Billed, replay, report, run


async def test_every_target_is_met() -> None:
    rows = await run()
    assert [row.workload.name for row in rows] == [w.name for w in WORKLOADS]
    for row in rows:
        if not row.workload.target_text.startswith("("):
            assert row.met, f"{row.workload.name}: {row.ratio:.3f} of the cost without caching"
        assert row.on.reported_cached == row.on.read
    assert rows[3].on.cost == rows[3].off.cost  # unrelated prompts: nothing placed, nothing written
    assert "| 100 unrelated single-shot requests (short and long) | 100 |" in report(rows)


async def test_without_caching_nothing_is_cached() -> None:
    billed = await replay(WORKLOADS[1].requests(), auto=False)
    assert (billed.read, billed.written_5m, billed.written_1h) == (0, 0, 0)
    assert billed.cost == billed.plain


def test_cost_uses_claudes_multipliers() -> None:
    assert Billed(plain=100, written_5m=100, written_1h=100, read=100).cost == 100 + 125 + 200 + 10
