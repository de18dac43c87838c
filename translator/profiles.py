"""What the proxy knows of each upstream model that a request does not say: a neutral module, read by
``translator.config`` (which resolves a model name to its profile) and by ``translator.convert`` (which
shapes a request by it), so that neither imports the other."""

from __future__ import annotations

import fnmatch
import functools
from dataclasses import dataclass
from typing import Literal

ThinkingMode = Literal["budget", "adaptive"]


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """What we know of an upstream model that the OpenAI request does not say."""

    max_tokens: int = 4096
    structured_output: bool = False  # Claude's native output_config.format json_schema
    thinking: bool = True  # extended thinking (claude-3-7-sonnet and later)
    # How reasoning_effort is asked for: "budget" (thinking.type enabled with budget_tokens, up to the 4.5
    # models) or "adaptive" (thinking.type adaptive with output_config.effort, 4.6 and later).
    thinking_mode: ThinkingMode = "budget"
    max_output_tokens: int | None = None  # the model's output limit: max_tokens never goes above it
    # Automatic prompt caching (translator.convert.caching): off for the model (false), its minimum cacheable
    # prompt in tokens, whether it takes the 1-hour cache TTL. None: the family's, from the tables below.
    prompt_caching: bool | None = None
    cache_min_tokens: int | None = None
    cache_ttl_1h: bool | None = None


def _profile(max_tokens: int, structured: bool, thinking: bool, mode: ThinkingMode, output: int) -> ModelProfile:
    return ModelProfile(max_tokens=max_tokens, structured_output=structured, thinking=thinking,
                        thinking_mode=mode, max_output_tokens=output)


# What the model families are known to take: default max_tokens, native structured output
# (output_config.format), extended thinking and how it is asked for, and the output limit. Every entry
# sets every field, so a broad pattern further down never fills in a gap for a family named above it.
BUILTIN_PROFILES: dict[str, ModelProfile] = {
    "claude-3-7-sonnet*": _profile(8192, False, True, "budget", 64000),
    "claude-3-5-*": _profile(4096, False, False, "budget", 8192),
    "claude-3-*": _profile(4096, False, False, "budget", 4096),
    "claude-sonnet-4-0*": _profile(8192, False, True, "budget", 64000),
    "claude-sonnet-4-2*": _profile(8192, False, True, "budget", 64000),  # claude-sonnet-4-20250514
    "claude-sonnet-4@*": _profile(8192, False, True, "budget", 64000),  # Vertex AI: claude-sonnet-4@20250514
    "claude-opus-4@*": _profile(8192, False, True, "budget", 32000),
    "claude-opus-4-0*": _profile(8192, False, True, "budget", 32000),
    "claude-opus-4-2*": _profile(8192, False, True, "budget", 32000),  # claude-opus-4-20250514
    "claude-opus-4-1*": _profile(8192, True, True, "budget", 32000),
    "claude-sonnet-4-5*": _profile(8192, True, True, "budget", 64000),
    "claude-haiku-4-5*": _profile(8192, True, True, "budget", 64000),
    "claude-opus-4-5*": _profile(8192, True, True, "budget", 64000),
    "claude-*-4-6*": _profile(8192, True, True, "adaptive", 128000),
    "claude-opus-4-7*": _profile(8192, True, True, "adaptive", 128000),
    "claude-opus-4-8*": _profile(8192, True, True, "adaptive", 128000),
    "claude-opus-5*": _profile(8192, True, True, "adaptive", 128000),
    "claude-sonnet-5*": _profile(8192, True, True, "adaptive", 128000),
    "claude-haiku-5*": _profile(8192, True, True, "adaptive", 128000),
    "claude-fable-5*": _profile(8192, True, True, "adaptive", 128000),
    # Anything else named claude-*: a newer family (adaptive thinking); the forced-tool JSON path is safe.
    "claude-*": ModelProfile(max_tokens=8192, structured_output=False, thinking=True, thinking_mode="adaptive"),
}

# The minimum cacheable prompt per model family, in tokens (Anthropic, "Prompt caching": "Cache
# limitations"; where sources differ, the lower figure: a breakpoint on a shorter prefix is not cached and
# costs nothing, one missed costs the discount). First match wins; anything else: 1,024.
CACHE_MIN_TOKENS: dict[str, int] = {
    "claude-3-7-sonnet*": 1024,
    "claude-3-5-haiku*": 2048,
    "claude-3-haiku*": 2048,
    "claude-haiku-4-5*": 4096,
    "claude-opus-4-5*": 4096,
    "claude-opus-4-6*": 4096,
    "claude-opus-4-7*": 2048,
    "claude-opus-5*": 512,
    "claude-fable-5*": 512,
}
# The 1-hour cache TTL is taken by the 4.x models and later; not by the claude-3 models.
NO_CACHE_TTL_1H: tuple[str, ...] = ("claude-3-*",)


def caching_on(profile: ModelProfile) -> bool:
    return profile.prompt_caching is not False


def cache_min_tokens(model: str, profile: ModelProfile) -> int:
    """The model's minimum cacheable prompt: the profile's, else its family's, else 1,024."""
    if profile.cache_min_tokens is not None:
        return profile.cache_min_tokens
    return _family_min_tokens(model)


def takes_ttl_1h(model: str, profile: ModelProfile) -> bool:
    if profile.cache_ttl_1h is not None:
        return profile.cache_ttl_1h
    return _family_takes_ttl_1h(model)


# (each model's family found once, not by a glob match per request; bounded: model names come from clients)
@functools.lru_cache(maxsize=1024)
def _family_min_tokens(model: str) -> int:
    return next((n for pattern, n in CACHE_MIN_TOKENS.items() if fnmatch.fnmatchcase(model, pattern)), 1024)


@functools.lru_cache(maxsize=1024)
def _family_takes_ttl_1h(model: str) -> bool:
    return not any(fnmatch.fnmatchcase(model, pattern) for pattern in NO_CACHE_TTL_1H)
