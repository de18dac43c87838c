"""What a request cost, in USD, from its Claude usage and a price table per model glob.

Prices are USD per million tokens, as Anthropic publishes them: base input, 5-minute and 1-hour cache
writes, cache reads ("cache hits and refreshes") and output. Claude's usage counts cached input apart from
``input_tokens`` (``cache_read_input_tokens``, ``cache_creation_input_tokens``), so each count is priced once,
at its own rate; when the usage splits the cache writes by lifetime (``cache_creation.ephemeral_1h_input_tokens``)
the 1-hour ones are priced at the 1-hour rate, and all others at the 5-minute rate.

The built-in table is Anthropic's public price list (platform.claude.com/docs/en/about-claude/pricing and the
models' overview pages, read 2026-12-07); ``[[prices]]`` entries in the config come first and override it.
A model no pattern matches has no price (``PriceTable.price`` says None): it costs 0 here, which a
``budget_usd`` cannot see (use ``budget_tokens``, or add a price).
What is kept and where lives in ``translator.gateway.usage``.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from translator.config import PriceSettings
from translator.gateway.usage import Counts

MTOK = 1_000_000


@dataclass(frozen=True)
class Price:
    """USD per million tokens of each kind."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float

    @classmethod
    def of(cls, input: float, output: float, *, cache_read: float | None = None) -> Price:
        """A price from its input and output rates, cache rates by Anthropic's multipliers (5-minute writes
        1.25x input, 1-hour writes 2x, reads 0.1x) unless the model's cache read is priced apart."""
        return cls(input, output, input * 1.25, input * 2, input * 0.1 if cache_read is None else cache_read)

    @classmethod
    def from_settings(cls, entry: PriceSettings) -> Price:
        base = cls.of(entry.input, entry.output, cache_read=entry.cache_read)
        return cls(
            base.input,
            base.output,
            base.cache_write_5m if entry.cache_write_5m is None else entry.cache_write_5m,
            base.cache_write_1h if entry.cache_write_1h is None else entry.cache_write_1h,
            base.cache_read,
        )


# Upstream model id glob -> price; the first match wins, so narrower patterns come first. Date-suffixed ids
# (claude-sonnet-4-5-20250929) and Vertex ids (claude-opus-4-1@20250805) match their family's pattern.
BUILTIN_PRICES: dict[str, Price] = {
    "claude-fable-5-1*": Price.of(10, 50, cache_read=0.25),
    "claude-mythos-5-1*": Price.of(10, 50, cache_read=0.25),
    "claude-fable-5*": Price.of(10, 50, cache_read=1),
    "claude-mythos-5*": Price.of(10, 50, cache_read=1),
    "claude-opus-5-5*": Price.of(4, 20, cache_read=0.20),
    "claude-opus-5*": Price.of(5, 25),
    "claude-opus-4-8*": Price.of(5, 25),
    "claude-opus-4-7*": Price.of(5, 25),
    "claude-opus-4-6*": Price.of(5, 25),
    "claude-opus-4-5*": Price.of(5, 25),
    "claude-opus-4*": Price.of(15, 75),  # Opus 4 and 4.1
    "claude-3-opus*": Price.of(15, 75),
    "claude-sonnet-5*": Price.of(2, 10),  # Sonnet 5 and 5.5
    "claude-sonnet-4*": Price.of(3, 15),  # Sonnet 4, 4.5, 4.6
    "claude-3-7-sonnet*": Price.of(3, 15),
    "claude-3-5-sonnet*": Price.of(3, 15),
    "claude-haiku-5-5*": Price.of(0.10, 0.50),  # prompts up to 100K tokens; longer ones cost more upstream
    "claude-haiku-4-5*": Price.of(1, 5),
    "claude-3-5-haiku*": Price.of(0.80, 4),
    "claude-3-haiku*": Price(0.25, 1.25, 0.30, 0.50, 0.03),
}


class PriceTable:
    """The configured prices (in order), then the built-in ones."""

    def __init__(self, configured: Sequence[PriceSettings] = (), builtin: Mapping[str, Price] = BUILTIN_PRICES):
        self._table = [(entry.model, Price.from_settings(entry)) for entry in configured]
        self._table += list(builtin.items())
        # Each model's price, found once: a glob match down the table for every request would cost more than
        # the rest of its accounting. Bounded: model names come from clients.
        self.price = functools.lru_cache(maxsize=1024)(self._find)

    def _find(self, model: str) -> Price | None:
        for pattern, price in self._table:
            if model == pattern or fnmatch.fnmatchcase(model, pattern):
                return price
        return None

    def cost(self, model: str, usage: object) -> float:
        """USD for one request's usage (Claude's shape); 0 for a model without a price."""
        price = self.price(model)
        if price is None:
            return 0.0
        counts = Counts.from_claude(usage)
        one_hour = min(_one_hour_writes(usage), counts.cache_creation_input_tokens)
        return (
            counts.input_tokens * price.input
            + counts.output_tokens * price.output
            + counts.cache_read_input_tokens * price.cache_read
            + (counts.cache_creation_input_tokens - one_hour) * price.cache_write_5m
            + one_hour * price.cache_write_1h
        ) / MTOK


def _one_hour_writes(usage: object) -> int:
    """The cache writes made with the 1-hour lifetime, when the usage says (``cache_creation`` breakdown)."""
    detail: Any = usage.get("cache_creation") if isinstance(usage, dict) else None
    if not isinstance(detail, dict):
        return 0
    value = detail.get("ephemeral_1h_input_tokens")
    return value if type(value) is int and value > 0 else 0
