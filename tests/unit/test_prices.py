"""Price table: built-in prices by model glob, config entries first, each usage count priced at its rate."""

from __future__ import annotations

import pytest

from translator.config import PriceSettings
from translator.gateway.prices import BUILTIN_PRICES, Price, PriceTable


def test_cache_rates_follow_anthropics_multipliers_unless_given() -> None:
    assert Price.of(3, 15) == Price(3, 15, 3.75, 6, pytest.approx(0.3))
    assert Price.of(4, 20, cache_read=0.2) == Price(4, 20, 5, 8, 0.2)
    entry = PriceSettings(model="m", input=2, output=8, cache_write_1h=3)
    assert Price.from_settings(entry) == Price(2, 8, 2.5, 3, pytest.approx(0.2))


@pytest.mark.parametrize("model,expected", [
    ("claude-opus-4-1-20250805", Price(15, 75, 18.75, 30, 1.5)),
    ("claude-opus-4-20250514", Price(15, 75, 18.75, 30, 1.5)),
    ("claude-opus-4-6", Price(5, 25, 6.25, 10, 0.5)),
    ("claude-opus-5-5", Price(4, 20, 5, 8, 0.2)),
    ("claude-sonnet-4-5-20250929", Price(3, 15, 3.75, 6, pytest.approx(0.3))),
    ("claude-sonnet-5-5", Price(2, 10, 2.5, 4, 0.2)),
    ("claude-haiku-4-5", Price(1, 5, 1.25, 2, 0.1)),
    ("claude-3-haiku-20240307", Price(0.25, 1.25, 0.30, 0.50, 0.03)),
    ("claude-fable-5-1", Price(10, 50, 12.5, 20, 0.25)),
])
def test_builtin_prices_match_anthropics_list(model: str, expected: Price) -> None:
    assert PriceTable().price(model) == expected


def test_a_model_without_a_price_costs_nothing() -> None:
    table = PriceTable()
    assert table.price("gpt-4o") is None
    assert table.cost("gpt-4o", {"input_tokens": 1000, "output_tokens": 1000}) == 0.0


def test_configured_prices_come_before_the_builtin_ones() -> None:
    table = PriceTable([PriceSettings(model="claude-sonnet-*", input=1, output=2),
                        PriceSettings(model="my-model", input=10, output=20)])
    assert table.price("claude-sonnet-4-5") == Price(1, 2, 1.25, 2, 0.1)
    assert table.price("my-model") == Price(10, 20, 12.5, 20, 1)
    assert table.price("claude-opus-4-6") == BUILTIN_PRICES["claude-opus-4-6*"]


def test_each_count_is_priced_at_its_own_rate() -> None:
    table = PriceTable([PriceSettings(model="m", input=1, output=10, cache_write_5m=2, cache_write_1h=3,
                                      cache_read=0.5)])
    usage = {"input_tokens": 1_000_000, "output_tokens": 2_000_000, "cache_read_input_tokens": 4_000_000,
             "cache_creation_input_tokens": 3_000_000}
    assert table.cost("m", usage) == 1 + 20 + 2 + 6
    # 1-hour writes, when the usage splits the writes by lifetime, at the 1-hour rate
    lifetimes = {"ephemeral_5m_input_tokens": 2_000_000, "ephemeral_1h_input_tokens": 1_000_000}
    split = {**usage, "cache_creation": lifetimes}
    assert table.cost("m", split) == 1 + 20 + 2 + 4 + 3


def test_odd_usage_costs_nothing_and_breaks_nothing() -> None:
    table = PriceTable()
    assert table.cost("claude-opus-4-6", None) == 0.0
    assert table.cost("claude-opus-4-6", {"input_tokens": "n/a", "output_tokens": True,
                                          "cache_creation": {"ephemeral_1h_input_tokens": 10**9}}) == 0.0
