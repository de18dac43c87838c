"""The parameter policy (``translator.convert.policy``): every OpenAI request field is mapped, ignored (and
reported), or rejected with a 400 naming it."""

from __future__ import annotations

from typing import Any

import pytest

from translator.convert.policy import IGNORED, MAPPED, REJECTED_VALUES, screen
from translator.errors import InvalidRequest

# The properties of CreateChatCompletionRequest (with ModelResponseProperties and
# CreateModelResponseProperties) in OpenAI's openapi.yaml, the corpus snapshot (openai/openai-openapi@f85dbe223d40).
OPENAI_REQUEST_FIELDS = {
    "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
    "max_completion_tokens", "max_tokens", "messages", "metadata", "modalities", "model", "moderation", "n",
    "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_options",
    "prompt_cache_retention", "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier",
    "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p",
    "user", "verbosity", "web_search_options",
}  # fmt: skip


def test_every_openai_field_has_a_policy() -> None:
    assert not OPENAI_REQUEST_FIELDS - (MAPPED | IGNORED)


def test_mapped_and_ignored_are_disjoint() -> None:
    assert not MAPPED & IGNORED


def test_rejected_values_belong_to_mapped_fields() -> None:
    assert set(REJECTED_VALUES) == {"logprobs", "top_logprobs", "audio", "modalities"}
    assert set(REJECTED_VALUES) <= MAPPED


def test_screen_lists_ignored_and_unknown_fields_sorted() -> None:
    body = {"model": "m", "messages": [], "seed": 1, "zzz_unknown": 1, "logit_bias": {}, "temperature": 1}
    assert screen(body, strict=False) == ["logit_bias", "seed", "zzz_unknown"]


def test_screen_lists_every_ignored_field() -> None:
    assert screen(dict.fromkeys(IGNORED, 1), strict=False) == sorted(IGNORED)


def test_screen_lists_nothing_for_mapped_fields() -> None:
    assert screen(dict.fromkeys(MAPPED - set(REJECTED_VALUES), 1), strict=False) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("logprobs", True),
        ("top_logprobs", 1),
        ("top_logprobs", 20),
        ("audio", {"voice": "alloy", "format": "mp3"}),
        ("modalities", ["audio"]),
        ("modalities", ["text", "audio"]),
    ],
)
@pytest.mark.parametrize("strict", [False, True])
def test_rejected_values(name: str, value: Any, strict: bool) -> None:
    with pytest.raises(InvalidRequest) as err:
        screen({name: value}, strict=strict)
    assert (err.value.status, err.value.param, err.value.code) == (400, name, "unsupported_parameter")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("logprobs", False),
        ("logprobs", None),
        ("top_logprobs", 0),
        ("top_logprobs", None),
        ("audio", None),
        ("modalities", ["text"]),
        ("modalities", None),
    ],
)
def test_harmless_values_pass(name: str, value: Any) -> None:
    assert screen({name: value}, strict=True) == []


def test_strict_mode_names_the_first_ignored_field() -> None:
    with pytest.raises(InvalidRequest) as err:
        screen({"seed": 1, "frequency_penalty": 0.5, "model": "m"}, strict=True)
    assert (err.value.status, err.value.param, err.value.code, err.value.message) == (
        400,
        "frequency_penalty",
        "unsupported_parameter",
        "'frequency_penalty' has no Claude equivalent and this proxy runs in strict mode",
    )


def test_strict_mode_rejects_unknown_fields_too() -> None:
    with pytest.raises(InvalidRequest) as err:
        screen({"model": "m", "custom_thing": 1}, strict=True)
    assert err.value.param == "custom_thing"


NESTED = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "Rules.", "name": "ops"},
        {"role": "user", "name": "ann", "content": [
            {"type": "text", "text": "Look"},
            {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "auto"}},
            {"type": "image_url", "image_url": {"url": "https://x/b.png", "detail": "high"}},
        ]},
        {"role": "assistant", "content": "Hm.", "reasoning_content": "unsigned thoughts"},
        {"role": "function", "name": "f", "content": "its name pairs it with a call: mapped"},
    ],
    "web_search_options": {"search_context_size": "high"},
    "seed": 1,
}


def test_fields_inside_messages_and_options_with_no_claude_form_are_listed() -> None:
    assert screen(NESTED, strict=False) == [
        "seed",
        "messages[].name",
        "messages[].content[].image_url.detail",
        "messages[].reasoning_content",
        "web_search_options.search_context_size",
    ]


def test_strict_mode_names_the_first_nested_field_by_its_path() -> None:
    with pytest.raises(InvalidRequest) as err:
        screen({k: v for k, v in NESTED.items() if k != "seed"}, strict=True)
    assert (err.value.status, err.value.param, err.value.code) == (400, "messages[0].name", "unsupported_parameter")


def test_nested_screen_leaves_malformed_shapes_to_the_converter() -> None:
    odd = {"model": "m", "messages": ["x", {"role": "user", "content": ["x", 1]}], "web_search_options": 3}
    assert screen(odd, strict=True) == []
