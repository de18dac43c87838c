"""What automatic prompt caching reads of a model (``translator.profiles``) and of the settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from translator.config import Settings, load_settings
from translator.profiles import cache_min_tokens, caching_on, takes_ttl_1h

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("model", "minimum"), [
    ("claude-sonnet-4-5-20250929", 1024),
    ("claude-sonnet-4-6", 1024),
    ("claude-opus-4-1-20250805", 1024),
    ("claude-3-7-sonnet-20250219", 1024),
    ("claude-haiku-4-5-20251001", 4096),
    ("claude-opus-4-5-20251101", 4096),
    ("claude-opus-4-6", 4096),
    ("claude-opus-4-7", 2048),
    ("claude-3-5-haiku-20241022", 2048),
    ("claude-3-haiku-20240307", 2048),
    ("claude-opus-5", 512),
    ("claude-something-new", 1024),
])
def test_minimum_by_family(model: str, minimum: int) -> None:
    _, profile = Settings().resolve_model(model)
    assert cache_min_tokens(model, profile) == minimum


def test_a_profile_overrides_the_family() -> None:
    settings = Settings.model_validate({"models": {"profiles": {"claude-haiku-*": {
        "cache_min_tokens": 2000, "prompt_caching": False, "cache_ttl_1h": False}}}})
    model, profile = settings.resolve_model("claude-haiku-4-5")
    assert (cache_min_tokens(model, profile), caching_on(profile), takes_ttl_1h(model, profile)) == (2000, False, False)
    model, profile = settings.resolve_model("claude-sonnet-4-5")
    assert (cache_min_tokens(model, profile), caching_on(profile), takes_ttl_1h(model, profile)) == (1024, True, True)


def test_one_hour_ttl_by_family() -> None:
    for model, takes in [("claude-3-7-sonnet-20250219", False), ("claude-3-5-haiku-20241022", False),
                         ("claude-sonnet-4-20250514", True), ("claude-opus-4-6", True)]:
        _, profile = Settings().resolve_model(model)
        assert takes_ttl_1h(model, profile) is takes, model


def test_caching_settings() -> None:
    settings = load_settings(str(ROOT / "config.example.toml"), env={})
    assert (settings.caching.auto, settings.caching.claude_route, settings.caching.max_prefixes) == (True, False,
                                                                                                     100_000)
    with pytest.raises(ValidationError):
        Settings.model_validate({"caching": {"max_prefixes": 0}})
    with pytest.raises(ValidationError):
        Settings.model_validate({"caching": {"automatic": True}})
