"""Budgets per key: refused at or past a budget, with a message naming it and when it renews."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from translator.config import KeySettings, Settings
from translator.errors import BudgetExceeded
from translator.gateway.budgets import budget_refusal
from translator.gateway.keys import ClientKey, hash_key
from translator.gateway.usage import Spent

NOW = dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.UTC)


def key(**budget: object) -> ClientKey:
    return ClientKey.from_settings(KeySettings.model_validate({"name": "alice", "hash": hash_key("k"), **budget}))


def test_under_every_budget_is_let_through() -> None:
    assert budget_refusal(key(budget_tokens=100, budget_usd=1.0), Spent(99, 0.99), NOW) is None
    assert budget_refusal(key(), Spent(10**9, 10**6), NOW) is None  # no budget at all


def test_at_the_token_budget_is_refused_until_the_month_ends() -> None:
    err = budget_refusal(key(budget_tokens=100), Spent(100, 0.0), NOW)
    assert isinstance(err, BudgetExceeded)
    assert err.message == ("key 'alice' used its monthly budget of 100 tokens (used 100); "
                           "it renews at 2027-01-01T00:00:00Z")
    assert (err.status, err.claude_type, err.openai_status, err.code) == (400, "invalid_request_error", 429,
                                                                         "insufficient_quota")


def test_a_daily_usd_budget_names_both_when_both_are_used_up() -> None:
    err = budget_refusal(key(budget_tokens=10, budget_usd=0.5, budget_period="day"), Spent(12, 0.5012), NOW)
    assert err is not None
    assert err.message == ("key 'alice' used its daily budget of 10 tokens (used 12) and $0.50 (used $0.5012); "
                           "it renews at 2027-01-01T00:00:00Z")
    err = budget_refusal(key(budget_usd=0.5, budget_period="day"), Spent(12, 0.75),
                         dt.datetime(2026, 12, 7, 11, 0, tzinfo=dt.UTC))
    assert err is not None
    assert err.message == "key 'alice' used its daily budget of $0.50 (used $0.7500); it renews at 2026-12-08T00:00:00Z"


def test_budget_settings_are_validated() -> None:
    for bad in ({"budget_period": "week"}, {"budget_tokens": 0}, {"budget_usd": 0}, {"admin": "maybe"}):
        with pytest.raises(ValidationError):
            KeySettings.model_validate({"name": "alice", "hash": hash_key("k"), **bad})
    for bad_price in ({"model": "m", "input": -1, "output": 1}, {"model": "m", "input": 1}, {"input": 1, "output": 1}):
        with pytest.raises(ValidationError):
            Settings.model_validate({"prices": [bad_price]})
    assert key().budget_period == "month"
    assert not key().admin and not key().has_budget
