"""The caching fake upstream (``bench/caching_upstream.py``) bills as Claude's prompt-caching rules say: a
write at each breakpoint, a read of the longest prefix found within the lookback, the minimum length, TTLs."""

from __future__ import annotations

from typing import Any

import pytest

from bench.caching_upstream import LOOKBACK_BLOCKS, CacheRuleError, ClaudeCache, count_tokens

MARK = {"type": "ephemeral"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def text(value: str, **extra: Any) -> dict[str, Any]:
    return {"type": "text", "text": value, **extra}


def body(*blocks: dict[str, Any], system: list[dict[str, Any]] | None = None, **top: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 10, "system": system or [],
            "messages": [{"role": "user", "content": list(blocks)}], **top}


def tokens(*blocks: dict[str, Any]) -> int:
    return sum(count_tokens({k: v for k, v in b.items() if k != "cache_control"}) for b in blocks)


def usage(read: int, created: int, plain: int, created_1h: int = 0) -> dict[str, Any]:
    return {"input_tokens": plain, "cache_creation_input_tokens": created, "cache_read_input_tokens": read,
            "cache_creation": {"ephemeral_5m_input_tokens": created - created_1h,
                               "ephemeral_1h_input_tokens": created_1h}, "output_tokens": 2}


LONG = text("word " * 1100)
Q1, Q2 = text("First question?"), text("Second question?")


def test_write_then_read_then_plain_after_the_breakpoint() -> None:
    cache = ClaudeCache(Clock())
    system = [{**LONG, "cache_control": MARK}]
    assert cache.bill(body(Q1, system=system)) == usage(0, tokens(LONG), tokens(Q1))
    assert cache.bill(body(Q2, system=system)) == usage(tokens(LONG), 0, tokens(Q2))


def test_without_breakpoints_nothing_is_cached() -> None:
    cache = ClaudeCache(Clock())
    assert cache.bill(body(Q1, system=[LONG])) == usage(0, 0, tokens(LONG, Q1))
    assert cache.bill(body(Q1, system=[LONG])) == usage(0, 0, tokens(LONG, Q1))


def test_below_the_minimum_nothing_is_written() -> None:
    cache = ClaudeCache(Clock(), min_tokens={"claude-sonnet-*": 4096})
    system = [{**LONG, "cache_control": MARK}]
    assert cache.bill(body(Q1, system=system)) == usage(0, 0, tokens(LONG, Q1))
    assert cache.bill(body(Q1, system=system)) == usage(0, 0, tokens(LONG, Q1))


def test_a_later_breakpoint_finds_an_earlier_entry_within_the_lookback() -> None:
    cache = ClaudeCache(Clock())
    first = [LONG] + [text(f"block {i}") for i in range(LOOKBACK_BLOCKS - 1)]
    cache.bill(body(*first[:-1], {**first[-1], "cache_control": MARK}))
    near = [*first, *[text(f"more {i}") for i in range(LOOKBACK_BLOCKS - 1)]]
    assert cache.bill(body(*near[:-1], {**near[-1], "cache_control": MARK})) == usage(
        tokens(*first), tokens(*near) - tokens(*first), 0)


def test_an_entry_beyond_the_lookback_is_not_found() -> None:
    cache = ClaudeCache(Clock())
    first = [LONG, text("end of turn one")]
    cache.bill(body(first[0], {**first[1], "cache_control": MARK}))
    far = [*first, *[text(f"more {i}") for i in range(LOOKBACK_BLOCKS)]]
    assert cache.bill(body(*far[:-1], {**far[-1], "cache_control": MARK})) == usage(0, tokens(*far), 0)


def test_the_same_prefix_marked_again_is_read_exactly() -> None:
    """The previous turn's end marked again: read there, the rest written at the last breakpoint."""
    cache = ClaudeCache(Clock())
    first = [LONG, text("end of turn one")]
    cache.bill(body(first[0], {**first[1], "cache_control": MARK}))
    later = [text(f"more {i}") for i in range(LOOKBACK_BLOCKS + 5)]
    billed = cache.bill(body(first[0], {**first[1], "cache_control": MARK}, *later[:-1],
                             {**later[-1], "cache_control": MARK}))
    assert billed == usage(tokens(*first), tokens(*later), 0)


def test_entries_expire_with_their_ttl_and_reads_refresh_it() -> None:
    clock = Clock()
    cache = ClaudeCache(clock)
    five = [{**LONG, "cache_control": MARK}]
    assert cache.bill(body(Q1, system=five)) == usage(0, tokens(LONG), tokens(Q1))
    clock.now += 299
    assert cache.bill(body(Q1, system=five))["cache_read_input_tokens"] == tokens(LONG)  # refreshed
    clock.now += 299
    assert cache.bill(body(Q1, system=five))["cache_read_input_tokens"] == tokens(LONG)
    clock.now += 301
    assert cache.bill(body(Q1, system=five))["cache_read_input_tokens"] == 0  # expired: written again
    other = text("word " * 1200)
    hour = [{**other, "cache_control": {**MARK, "ttl": "1h"}}]
    assert cache.bill(body(Q1, system=hour)) == usage(0, tokens(other), tokens(Q1), created_1h=tokens(other))
    clock.now += 3000
    assert cache.bill(body(Q1, system=hour))["cache_read_input_tokens"] == tokens(other)


def test_top_level_cache_control_marks_the_last_block() -> None:
    cache = ClaudeCache(Clock())
    cache.bill(body(LONG, Q1, cache_control=MARK))
    assert cache.bill(body(LONG, Q1, cache_control=MARK)) == usage(tokens(LONG, Q1), 0, 0)


def test_more_than_four_breakpoints_are_refused() -> None:
    marked = [text(f"b{i}", cache_control=MARK) for i in range(5)]
    with pytest.raises(CacheRuleError, match="Found 5"):
        ClaudeCache(Clock()).bill(body(*marked))
