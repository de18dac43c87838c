"""``translator.convert.convert_response`` / ``convert_responses`` driven by real recorded Claude responses
(tests/fixtures/claude/responses, see tests/fixtures/SOURCES.md): exact output, invariants for every
recording, the finish_reason table, ``n`` > 1 and the JSON-tool mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from translator.convert import convert_response, convert_responses, openai_usage
from translator.convert.tables import FINISH_REASON

RESPONSES = Path(__file__).parent.parent / "fixtures" / "claude" / "responses"
ALL_RESPONSES = sorted(RESPONSES.iterdir())
CREATED = 1700000000
MODEL = "requested-model"


def load(name: str) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads((RESPONSES / name).read_bytes())
    return message


def convert(name: str, **kw: Any) -> dict[str, Any]:
    return convert_response(load(name), created=CREATED, model=MODEL, **kw)


def completion(
    message_id: str, model: str, message: dict[str, Any], finish: str, usage: dict[str, Any],
    tier: str | None = None,
) -> dict[str, Any]:
    """``tier``: the OpenAI name of the tier the recorded answer's usage says served it (none: not said)."""
    out = {
        "id": "chatcmpl-" + message_id,
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
    }
    return out if tier is None else {**out, "service_tier": tier}


def usage(prompt: int, completion: int, cached: int = 0, written: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": written,
    }


def test_fixture_set_is_complete() -> None:
    assert len(ALL_RESPONSES) == 17


# --- exact output ---


def test_exact_text() -> None:
    """One text block: content, refusal None, no tool_calls or reasoning keys."""
    assert convert("claude_response_text__vercel-ai.json") == completion(
        "msg_01VdEjxAP5ahtHKrrRdNBteQ",
        "claude-sonnet-4-5-20250929",
        {
            "role": "assistant",
            "content": (
                "Hello! I'm doing well, thanks for asking. How are you doing "
                "today? Is there anything I can help you with?"
            ),
            "refusal": None,
        },
        "stop",
        usage(12, 29),
        tier="default",
    )


def test_exact_thinking_text_tool_use() -> None:
    """thinking + text + tool_use with empty input: arguments "{}", the thinking block kept with its signature."""
    assert convert("claude_response_thinking_text_tool_use__pydantic-ai.json") == completion(
        "msg_01WvueFjZVbHcj4H4zUzeGv2",
        "claude-sonnet-4-20250514",
        {
            "role": "assistant",
            "content": (
                "I'll help you find the largest city in your country. First, "
                "let me determine which country you're from."
            ),
            "refusal": None,
            "tool_calls": [
                {
                    "id": "toolu_01YGzqpRE16Vricda3Aqcejo",
                    "type": "function",
                    "function": {"name": "get_user_country", "arguments": "{}"},
                }
            ],
            "reasoning_content": (
                'The user is asking about the largest city in "the user country". '
                "To answer this question, I first need to determine what country "
                'the user is from. I have access to a function called "get_user_country" '
                "that can help me find out the user's country. Once I know "
                "the country, I can then provide information about its largest "
                "city.\n\nLet me call the get_user_country function first."
            ),
            "thinking_blocks": [
                {
                    "signature": (
                        "EqEECkYICxgCKkAo3UA4WwDbB8ihhpykVCsPx6iMzwNTNP8dePIgYjNpu2EWrt5JbApWWONEZaf5"
                        "w46939Vu1SDU1//mDyr2/Vw+EgzsGM/71Y3P0MXKjXUaDHkHCRdukfBjp1m8TSIwzpBcCTBuNvX8"
                        "NFjVMEou+UuHA4AtNJpahNT/iGfsTwwon4x/mlYNE+EZSDRaLY+jKogD7Bi7ls1t/hhZPrU6wxlc"
                        "Kv6qqXXkGdFSSyrRFvRgG9325pNIk9Dwc/GJriXjj+nGkaNWMfNLdWHtCj/5fTw+qZQCeeyoxzZA"
                        "G+3Nxp1d694aCO/DkbTUf2B0JcCKVQBgyeTXmCDkZvSLwdalOb3Al4zV3H0ejqF++8r+5p8f67O2"
                        "MOrxVQHNhJGpIaynvlouJP++FQdTCxUDFlyuvyGYqpijxFFSY0yaZe4KpOaTv4XLZiDwd5WohnKB"
                        "3JUQnh0S5xY7AjDqPccxo0c88qO4XLRAa0TiDO6dP6o9SXz9zUiPxsBwAHymsZL/iomyZqKRJ3AM"
                        "jKo8cLFWwxWHq8HsCqrikq/HZ1R8tr2PpMIBH+TJ0FyFMGCYkVqfH0/HzEqGGre8iOA11XCU3r5d"
                        "wHXHfh4qgRP2lxTrGR7RcSGkNfmdTtziti2whEAWKhN0dcgNmRfJ2sKKSo/sNcTAcxOBUgJMB5L0"
                        "B/ze9H9oDR9WtGspFUsKYkAHvHeBlXKVa+SkcXhw9EK5/JwYAQ=="
                    ),
                    "thinking": (
                        'The user is asking about the largest city in "the user country". '
                        "To answer this question, I first need to determine what country "
                        'the user is from. I have access to a function called "get_user_country" '
                        "that can help me find out the user's country. Once I know "
                        "the country, I can then provide information about its largest "
                        "city.\n\nLet me call the get_user_country function first."
                    ),
                    "type": "thinking",
                }
            ],
        },
        "tool_calls",
        usage(398, 155),
        tier="default",
    )


def test_exact_four_parallel_tool_use() -> None:
    """Text and four parallel tool_use blocks, in order, arguments as compact JSON."""
    assert convert("claude_response_text_and_four_parallel_tool_use__pydantic-ai.json") == completion(
        "msg_011S3wxtqL5CVescWqS3zeg2",
        "claude-haiku-4-5-20251001",
        {
            "role": "assistant",
            "content": (
                "I'll help you find out who is the youngest by retrieving information "
                "about each family member. I'll retrieve their entity information "
                "to compare their ages."
            ),
            "refusal": None,
            "tool_calls": [
                {
                    "id": "toolu_0167cfEnoQaPviGdVXA95zcu",
                    "type": "function",
                    "function": {"name": "retrieve_entity_info", "arguments": '{"name":"Alice"}'},
                },
                {
                    "id": "toolu_01EEe2V5HD1Ac4rKiUR4HD2T",
                    "type": "function",
                    "function": {"name": "retrieve_entity_info", "arguments": '{"name":"Bob"}'},
                },
                {
                    "id": "toolu_01XFyAjstT3966qvRynZyVPo",
                    "type": "function",
                    "function": {"name": "retrieve_entity_info", "arguments": '{"name":"Charlie"}'},
                },
                {
                    "id": "toolu_013mnQZbgtK2oe3Mo3XKJsx3",
                    "type": "function",
                    "function": {"name": "retrieve_entity_info", "arguments": '{"name":"Daisy"}'},
                },
            ],
        },
        "tool_calls",
        usage(423, 202),
        tier="default",
    )


def test_exact_redacted_thinking() -> None:
    """redacted_thinking only: reasoning_content is empty, the block passes through whole."""
    assert convert("claude_response_redacted_thinking_then_text__pydantic-ai.json") == completion(
        "msg_01TbZ1ZKNMPq28AgBLyLX3c4",
        "claude-sonnet-4-5-20250929",
        {
            "role": "assistant",
            "content": (
                "I notice that your message appears to contain a command or "
                "trigger phrase that's attempting to access internal systems "
                "or special behaviors. I'm not able to respond to such requests.\n"
                "\nInstead, I'd be happy to have a regular conversation or "
                "help you with legitimate questions or tasks. Is there something "
                "specific I can assist you with today?"
            ),
            "refusal": None,
            "reasoning_content": "",
            "thinking_blocks": [
                {
                    "data": (
                        "EvgFCkYIBxgCKkBmxKtCnM3xlr1zpw0Ik4FY0bnznKLdj7THnWO4shd9HwIVkqwnbh16iMbUaK/y"
                        "21Cf3e2zpej0nWdCG/JL5N0xEgywjBGi+v35EN0uLGcaDK+qOqA2s01rnZ0ZLiIwAHciryf6vOoM"
                        "FDZlnCyaZHZW3oO8qmEGf/zyZgLzdE3WMFC1WxzUOnJDHiRRbAbVKt8EjEfzriU8Jbhw38s6vbMj"
                        "6ZkQW7xHrQqPoYbDJlnBuZKdj0n+9XmYNTqGbgChQnsCdFT47uxmimkxRzas5L/pE9XbElYde8WA"
                        "B0zDdbdSRhROBmDWuCsUh6JFtH9ydDWhxrQ2IU0pFQD/SrGLVueS1g/DfZgZNT/G3a+inH5lxQ+c"
                        "XgF8hUmpe0sM6Gbl8Yf5g9yNt4La+JobgcRC/rNktNgnSnuyBtpl2YPyloWmlOn+hqF0xgPcUhoH"
                        "+pLefiophUwJ3mjL4NIC4/S6TI5QP3CEuK03uT2STVWh2L3caF3SNCSV7faVE3aElTGjpRsHXCTu"
                        "jLe7CLGkhY7PL7/t8dfyQELFaPrh2O84UIJOvU/PRwN1KfrlVNi67IWs5s90EIg/byHE3EFdboXs"
                        "eLaxO878W01qzoYB30z0zbME7we8I0v2sDi1wzZDgTDffeqF1C9x6BU2jV/hK0NrvhShHowZdD4I"
                        "izQAaC8MiBoFpkcI6MfoXWVV0vxTLL+Wl3/Rvfzu/nsNSmgeT3DcX1yUYw/CqjeWMA1mEipfVSCa"
                        "v7yWLGhd3JC2BfoQvtxqbOFXQXVXcZBn9X62rzKQTq47xAtl46X18UAP0sx9bb/oeUDbalE57KnV"
                        "an68zdAN5jmUP5MOq/KO7xadmFKw+yQjORgKqb3Et6AriIrafjra+gNn5ciWpO7IdgOBpQ11LkFz"
                        "8KlBaK+wRrZRJ8kfBKx8dm9SHp69Dck9CNH4HGd+IjX/hcC+ZMBBMJ38OGK/LpFq7lCP5FldWx8S"
                        "Ch3/NyJXEjDLMdB6OosO0nmiVWAgZhgB"
                    ),
                    "type": "redacted_thinking",
                }
            ],
        },
        "stop",
        usage(92, 196),
        tier="default",
    )


def test_exact_cache_read_and_write() -> None:
    """prompt_tokens = 3 input + 1111 cache read + 418 cache write; cached_tokens = the cache read."""
    assert convert("claude_response_cache_read_and_write__pydantic-ai.json") == completion(
        "msg_01KPaKTJSqAKoZri7Ujrny58",
        "claude-sonnet-4-5-20250929",
        {
            "role": "assistant",
            "content": (
                "Python is a beginner-friendly, versatile programming language "
                "widely used for web development, data science, machine learning, "
                "automation, and scientific computing."
            ),
            "refusal": None,
        },
        "stop",
        usage(1532, 33, cached=1111, written=418),
        tier="default",
    )


@pytest.mark.parametrize(("name", "expected"), [
    # cached_tokens = the cache read, cache_write_tokens = the cache creation (both counted in prompt_tokens),
    # the two Claude counts alongside
    ("claude_response_cache_read_and_write__pydantic-ai.json", {
        "prompt_tokens": 1532, "completion_tokens": 33, "total_tokens": 1565,
        "prompt_tokens_details": {"cached_tokens": 1111, "cache_write_tokens": 418},
        "cache_read_input_tokens": 1111, "cache_creation_input_tokens": 418,
    }),
    # a 1-hour-TTL cache write (usage.cache_creation.ephemeral_1h_input_tokens) is in
    # cache_creation_input_tokens too: 17 input + 2056 written
    ("claude_response_cache_write_1h_ttl__dd-trace-py.json", {
        "prompt_tokens": 2073, "completion_tokens": 100, "total_tokens": 2173,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 2056},
        "cache_read_input_tokens": 0, "cache_creation_input_tokens": 2056,
    }),
    # the old usage shape (no cache fields): both details are 0, not missing
    ("claude_response_max_tokens__dd-trace-py.json", {
        "prompt_tokens": 22, "completion_tokens": 15, "total_tokens": 37,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0,
    }),
], ids=["cache read and write", "1h cache write", "no cache fields"])
def test_usage_written_out(name: str, expected: dict[str, Any]) -> None:
    assert convert(name)["usage"] == expected


def test_exact_max_tokens() -> None:
    """max_tokens -> length; the old usage shape without cache fields."""
    assert convert("claude_response_max_tokens__dd-trace-py.json") == completion(
        "msg_01GxAX7svS7SnakLHe57YHrV",
        "claude-3-opus-20240229",
        {"role": "assistant", "content": 'When Nietzsche famously declared "God is dead" in his', "refusal": None},
        "length",
        usage(22, 15),
    )


def test_exact_stop_sequence() -> None:
    """stop_sequence -> stop (the matched "Paris" is not in the text, and OpenAI has no field for it)."""
    assert convert("claude_response_stop_sequence__pydantic-ai.json") == completion(
        "msg_01376yZQxHcw9pER2Ab2SvQb",
        "claude-sonnet-4-5-20250929",
        {"role": "assistant", "content": "The beautiful city of ", "refusal": None},
        "stop",
        usage(32, 5),
        tier="default",
    )


def test_exact_pause_turn_web_search() -> None:
    """pause_turn -> stop; server_tool_use and web_search_tool_result blocks leave no trace but a paragraph
    break between the text before and after them."""
    assert convert("claude_response_pause_turn_web_search__pydantic-ai.json") == completion(
        "msg_01WUxwtx6NsdkWnEyL8BMy1q",
        "claude-sonnet-4-5-20250929",
        {
            "role": "assistant",
            "content": (
                "I'll run these searches for you one at a time. Let me begin:\n\nNow "
                "continuing with the remaining searches:\n\nNow I'll continue with "
                "the remaining searches as requested:\n\nNow continuing with the "
                "remaining searches. Let me search for traffic and air quality "
                "news:\n\nI'll continue with the remaining searches. Since you "
                "asked for 15 searches total, let me complete the rest. I'll "
                "skip ahead as some variations would return similar results:"
            ),
            "refusal": None,
            "reasoning_content": (
                "The user wants me to run 15 separate web searches, one at "
                "a time, and not answer until all searches are complete. They "
                "want me to gather up-to-date context on various topics related "
                "to San Francisco and some other topics. Let me start with "
                "the searches one by one.\n\nLet me start with search 1."
            ),
            "thinking_blocks": [
                {
                    "signature": (
                        "Es4DCkYICxgCKkB5MhEEIPtdNWk9yXaAfT8RsjJkikctY6zbHKDkHBUoETEAbz/wTSlwBpbYuVA8"
                        "nAaht7DntgJG9lTFgGkfQW4REgzcrggIhD/fXJOvBmcaDJRZQi3w1vdb95qs1CIw8I3fR7wD9gW9"
                        "LivHfOB+ss79R60D2/DWsI86jKOKzwoxqj9WhMejo6bzB1DDJb2qKrUCEExHwQoFKBN/lwag70ro"
                        "8ceebwicbbHgeuSXCg9Y++SU/L83yBVaBYGbtyvUeulx+Dn8sk/TKt5/9gKVgY34L9I40pnyFX03"
                        "J+lCBzB6rpaeKXkrdxv+Kvp+scTgao77X2/tW2hyZYB6DRZWExqiQ7i1UKSAoLiLIa93vpeUT7Q0"
                        "72K0I0dw5AgNHR0FPb1JicMpQ3j1CTRfxHolk8/xI/9Y327bjdNF0fvxN305UI4WEcfjhALClFPh"
                        "LQmduamWEnA+T35CIdW/T6TkA7VqrqRktIAu27DfgSlWAbI8YWYFfRUQQ3FMi9if52giMzuWhRnJ"
                        "g/p+fLCwKjhXcttxZL1waLtJQT27oSHsDROifRqNel3FenexzuyInRYhC2I1Y2U4ObFl5ibMAy+J"
                        "Jh3W3VrJSWkfGAE="
                    ),
                    "thinking": (
                        "The user wants me to run 15 separate web searches, one at "
                        "a time, and not answer until all searches are complete. They "
                        "want me to gather up-to-date context on various topics related "
                        "to San Francisco and some other topics. Let me start with "
                        "the searches one by one.\n\nLet me start with search 1."
                    ),
                    "type": "thinking",
                }
            ],
        },
        "stop",
        usage(401468, 792),
        tier="default",
    )


ACCU = ("https://www.accuweather.com/en/us/san-francisco/94103/weather-forecast/347629",
        "San Francisco, CA Weather Forecast | AccuWeather")
WU = ("https://www.wunderground.com/weather/us/ca/san-francisco",
      "San Francisco, CA Weather Conditions | Weather Underground")
WU_HOURLY = ("https://www.wunderground.com/hourly/us/ca/san-francisco",
             "San Francisco, CA Hourly Weather Forecast | Weather Underground")


def cite(start: int, end: int, source: tuple[str, str]) -> dict[str, Any]:
    return {"type": "url_citation",
            "url_citation": {"start_index": start, "end_index": end, "url": source[0], "title": source[1]}}


def test_exact_web_search_with_citations() -> None:
    """Text blocks carrying web_search_result_location citations: the text joined, each cited block's span
    an OpenAI url_citation annotation."""
    assert convert("claude_response_web_search_with_citations__pydantic-ai.json") == completion(
        "msg_0119wM5YxCLg3hwUWrxEQ9Y8",
        "claude-sonnet-4-20250514",
        {
            "role": "assistant",
            "content": (
                "Based on the search results, here's the weather information "
                "for San Francisco today (September 16, 2025):\n\n**Current "
                "Conditions:**\n- Temperature: 66°F with clear skies\n- Wind: "
                "W at 3 mph with gusts up to 5 mph\n- Air quality is poor and "
                "unhealthy for sensitive groups\n\n**Today's Forecast:**\n- "
                "High: 78°F with partly cloudy skies\n- Winds W at 10 to 20 "
                "mph\n- 8% chance of precipitation\n- Some clouds in the morning "
                "will give way to mainly sunny skies for the afternoon\n\n**Tonight:**\n"
                "- Low: 57°F with clear to partly cloudy conditions\n- Winds "
                "W at 10 to 20 mph\n\nOverall, it's a pleasant day in San Francisco "
                "with mild temperatures and mostly sunny conditions, though "
                "the air quality is poor, so sensitive individuals should limit "
                "outdoor activities."
            ),
            "refusal": None,
            "annotations": [
                cite(133, 167, ACCU), cite(170, 209, ACCU), cite(212, 266, ACCU), cite(292, 327, WU),
                cite(330, 353, WU), cite(356, 382, WU), cite(385, 465, WU_HOURLY), cite(482, 530, WU),
                cite(533, 556, WU),
            ],
            "reasoning_content": (
                "The user is asking about the weather in San Francisco today. "
                "This is asking for current, real-time information that would "
                "require a web search since weather conditions change frequently "
                "and I need up-to-date information. According to the guidelines, "
                "I should search for current conditions or recent events, and "
                "this clearly falls under that category.\n\nI should search "
                "for San Francisco weather today to get the most current information."
            ),
            "thinking_blocks": [
                {
                    "signature": (
                        "Et0ECkYIBxgCKkCXTXBKWJ3QYffHphenTDDE5jxo/vbyyvFuY7Gi5PGLYFdjxF0KQ4BGT7bGzB53"
                        "hSRPgJtjUD975U7TZ4f9IheWEgy4pMKmvEJ0D9XDrxsaDDpjMZqhX/EnpJmjGyIwreKtd2Xj+Rpg"
                        "uF1YI50dldiwk6qQNW2rK+xLwmWY5qF75b7WZrmOZ3endXYEQjBMKsQDmsnYnUODvD5Uh/yRIUgO"
                        "p+6P5JrYjLabtsC3wfuIISLVe5QhC/3Ep7K/x55u97qy/DIhCAOz38x4YId37Pqq8XARrRq5CPwz"
                        "xBzsMfPwpeV5eRHLQmasZxpOhivd1lMLC7B6D9EdpWefKWE+Ux1cMxpfaQj45cpMn93qLyCLGtNq"
                        "nZJ2nPT7eoOtavZ9VvN5LsJOIWYEkxK+iq/6XYSJE5JlqBtDt9Y5P1QT/QnhFwfxjD/Cs3+RrGzK"
                        "p2loEjmeYzNBwEfbY+pyKHJUS3bsxWyyi0d9Gc6Zfj4Xiuf/G0ninvXpSQheXi5gcvqIir6ZhcC4"
                        "0vHwvdVtJipSLkqMoPQcppCTOa2ATFyLKZIlug2OjoWIHrC5xnkCuKLXVMtHTF0mdrW0R/Sgecne"
                        "quYprzPeCc+Niqf4CVk62qtp+H06oWKQvHbP+s7kuAbdnhJjkcETiN8fP7+eLzKjRFAVnT0tixaN"
                        "FjB6lWbg2ePyQDhqeVn6i/ULCzKyoY/hSIfZXUFwTCSDW42WvITFfPfWBBW+p6R/8peJ/KS2q0wH"
                        "T2G3N4N7xFaNLOTXE0iPPtWsdqZw4cNQi9IUGKayqZ+/02tJYaEYAQ=="
                    ),
                    "thinking": (
                        "The user is asking about the weather in San Francisco today. "
                        "This is asking for current, real-time information that would "
                        "require a web search since weather conditions change frequently "
                        "and I need up-to-date information. According to the guidelines, "
                        "I should search for current conditions or recent events, and "
                        "this clearly falls under that category.\n\nI should search "
                        "for San Francisco weather today to get the most current information."
                    ),
                    "type": "thinking",
                }
            ],
        },
        "stop",
        usage(8984, 520),
        tier="default",
    )


# --- invariants over every recording ---

FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "pause_turn": "stop",
}


def _texts_apart_from_server_tools(blocks: list[dict[str, Any]]) -> list[str]:
    """The text blocks' texts, a paragraph break before text that follows a server tool's blocks."""
    texts: list[str] = []
    after_server_tool = False
    for block in blocks:
        if block["type"] == "text":
            texts += ["\n\n", block["text"]] if after_server_tool and "".join(texts) else [block["text"]]
            after_server_tool = False
        elif block["type"] not in ("tool_use", "thinking", "redacted_thinking"):
            after_server_tool = True
    return texts


@pytest.mark.parametrize("path", ALL_RESPONSES, ids=lambda p: p.name)
def test_invariants(path: Path) -> None:
    msg = load(path.name)
    out = convert_response(msg, created=CREATED, model=MODEL)
    tier = {"standard": "default", "priority": "priority"}.get(msg["usage"].get("service_tier"))
    keys = {"id", "object", "created", "model", "choices", "usage"}
    assert out.keys() == (keys | {"service_tier"} if tier else keys)
    assert out.get("service_tier") == tier
    assert (out["id"], out["object"], out["created"], out["model"]) == (
        "chatcmpl-" + msg["id"],
        "chat.completion",
        CREATED,
        msg["model"],
    )
    [choice] = out["choices"]
    assert (choice["index"], choice["logprobs"], choice["finish_reason"]) == (0, None, FINISH[msg["stop_reason"]])
    message = choice["message"]
    blocks = msg["content"]
    texts = _texts_apart_from_server_tools(blocks)
    tools = [b for b in blocks if b["type"] == "tool_use"]
    thinking = [b for b in blocks if b["type"] in ("thinking", "redacted_thinking")]
    assert message["role"] == "assistant"
    assert message["refusal"] is None
    assert message["content"] == ("".join(texts) if texts else None)
    assert message.get("tool_calls") == (
        [
            {
                "id": b["id"],
                "type": "function",
                "function": {"name": b["name"], "arguments": orjson.dumps(b["input"]).decode()},
            }
            for b in tools
        ]
        or None
    )
    for call, block in zip(message.get("tool_calls", []), tools, strict=True):
        assert orjson.loads(call["function"]["arguments"]) == block["input"]
    assert message.get("thinking_blocks") == (thinking or None)
    assert message.get("reasoning_content") == (
        "".join(b["thinking"] for b in thinking if b["type"] == "thinking") if thinking else None
    )
    cited, offset = [], 0
    for text in texts:
        block = next((b for b in blocks if b["type"] == "text" and b["text"] == text), {})  # ({}: a break)
        cited += [(offset, offset + len(text), c["url"]) for c in block.get("citations") or [] if "url" in c]
        offset += len(text)
    got = [(a["url_citation"]["start_index"], a["url_citation"]["end_index"], a["url_citation"]["url"])
           for a in message.get("annotations", [])]
    assert got == cited
    for start, end, _ in cited:
        assert message["content"][start:end] in texts
    assert set(message) == {"role", "content", "refusal"} | {
        k for k, v in (("tool_calls", tools), ("thinking_blocks", thinking), ("reasoning_content", thinking),
                       ("annotations", cited)) if v
    }
    u = msg["usage"]
    read, written = u.get("cache_read_input_tokens") or 0, u.get("cache_creation_input_tokens") or 0
    assert out["usage"] == usage(u["input_tokens"] + read + written, u["output_tokens"], read, written)


def test_recordings_cover_the_block_kinds_and_stop_reasons() -> None:
    kinds = {b["type"] for p in ALL_RESPONSES for b in load(p.name)["content"]}
    stops = {load(p.name)["stop_reason"] for p in ALL_RESPONSES}
    assert kinds == {"text", "thinking", "redacted_thinking", "tool_use", "server_tool_use", "web_search_tool_result"}
    assert stops == set(FINISH)


# --- finish_reason ---


@pytest.mark.parametrize(
    ("stop_reason", "json_tool", "finish"),
    [
        ("end_turn", None, "stop"),
        ("stop_sequence", None, "stop"),
        ("max_tokens", None, "length"),
        ("model_context_window_exceeded", None, "length"),
        ("tool_use", None, "tool_calls"),
        ("refusal", None, "content_filter"),
        ("pause_turn", None, "stop"),
        ("a_future_reason", None, "stop"),
        (None, None, "stop"),
        (42, None, "stop"),
        ("tool_use", "get_weather", "stop"),  # the forced JSON tool's input is the answer
        ("end_turn", "get_weather", "stop"),
        ("max_tokens", "get_weather", "length"),
        ("refusal", "get_weather", "content_filter"),
    ],
)
def test_finish_reason(stop_reason: Any, json_tool: str | None, finish: str) -> None:
    msg = {**load("claude_response_tool_choice_list_single__pydantic-ai.json"), "stop_reason": stop_reason}
    out = convert_response(msg, created=CREATED, model=MODEL, json_tool=json_tool)
    assert out["choices"][0]["finish_reason"] == finish


def test_finish_reason_table_is_covered() -> None:
    """Every Claude stop_reason of the table is among the cases above, mapped as listed there."""
    assert FINISH_REASON == {
        "end_turn": "stop",
        "stop_sequence": "stop",
        "max_tokens": "length",
        "model_context_window_exceeded": "length",
        "tool_use": "tool_calls",
        "refusal": "content_filter",
        "pause_turn": "stop",
    }


# --- n > 1 ---


def test_convert_responses_n3() -> None:
    names = [
        "claude_response_cache_read_and_write__pydantic-ai.json",
        "claude_response_text_and_four_parallel_tool_use__pydantic-ai.json",
        "claude_response_max_tokens__dd-trace-py.json",
    ]
    msgs = [load(n) for n in names]
    out = convert_responses(msgs, created=CREATED, model=MODEL)
    singles = [convert_response(m, created=CREATED, model=MODEL)["choices"][0] for m in msgs]
    assert out == {
        "id": "chatcmpl-msg_01KPaKTJSqAKoZri7Ujrny58",
        "object": "chat.completion",
        "created": CREATED,
        "model": "claude-sonnet-4-5-20250929",
        "service_tier": "default",  # (the first answer's: each says "standard")
        "choices": [{**single, "index": i} for i, single in enumerate(singles)],
        # (3 + 1111 + 418) + 423 + 22 prompt; 33 + 202 + 15 completion
        "usage": usage(1977, 250, cached=1111, written=418),
    }
    assert out["usage"]["prompt_tokens_details"] == {"cached_tokens": 1111, "cache_write_tokens": 418}
    assert [c["finish_reason"] for c in out["choices"]] == ["stop", "tool_calls", "length"]
    assert [c["index"] for c in out["choices"]] == [0, 1, 2]
    assert [len(c["message"].get("tool_calls", [])) for c in out["choices"]] == [0, 4, 0]


@pytest.mark.parametrize(("claude_tier", "reported"), [("standard", "default"), ("priority", "priority"),
                                                       ("batch", None), (None, None)])
def test_the_tier_that_served_is_reported_by_its_openai_name(claude_tier: str | None, reported: str | None) -> None:
    msg = load("claude_response_text__vercel-ai.json")
    msg["usage"]["service_tier"] = claude_tier
    assert convert_response(msg, created=CREATED, model=MODEL).get("service_tier", None) == reported


def test_convert_responses_sums_cache_writes() -> None:
    msgs = [load("claude_response_cache_read_and_write__pydantic-ai.json"),
            load("claude_response_cache_write_1h_ttl__dd-trace-py.json")]
    assert convert_responses(msgs, created=CREATED, model=MODEL)["usage"] == {
        "prompt_tokens": 1532 + 2073,
        "completion_tokens": 33 + 100,
        "total_tokens": 1565 + 2173,
        "prompt_tokens_details": {"cached_tokens": 1111, "cache_write_tokens": 418 + 2056},
        "cache_read_input_tokens": 1111,
        "cache_creation_input_tokens": 418 + 2056,
    }


def test_convert_responses_n1_is_convert_response() -> None:
    for path in ALL_RESPONSES:
        msg = load(path.name)
        assert convert_responses([msg], created=CREATED, model=MODEL) == convert_response(
            msg, created=CREATED, model=MODEL
        )


# --- JSON-tool mode ---


def test_json_tool_input_becomes_the_content() -> None:
    out = convert("claude_response_tool_choice_list_single__pydantic-ai.json", json_tool="get_weather")
    assert out == completion(
        "msg_01NahiMLLfXaAJWTZGxZPjXx",
        "claude-sonnet-4-5-20250929",
        {"role": "assistant", "content": '{"city":"Paris"}', "refusal": None},
        "stop",
        usage(713, 33),
        tier="default",
    )


def test_json_tool_with_empty_input_after_thinking_and_text() -> None:
    out = convert("claude_response_thinking_text_tool_use__pydantic-ai.json", json_tool="get_user_country")
    message = out["choices"][0]["message"]
    assert message["content"] == (
        "I'll help you find the largest city in your country. First, let me determine which country you're from.{}"
    )
    assert "tool_calls" not in message
    assert message["thinking_blocks"][0]["type"] == "thinking"
    assert out["choices"][0]["finish_reason"] == "stop"


def test_json_tool_mode_with_other_tools_called_still_finishes_with_tool_calls() -> None:
    name = "claude_response_text_and_four_parallel_tool_use__pydantic-ai.json"
    plain, json_mode = convert(name), convert(name, json_tool="json_response")
    assert json_mode == plain
    assert json_mode["choices"][0]["finish_reason"] == "tool_calls"


# --- edges of the message shape ---


def test_empty_content_and_missing_fields() -> None:
    assert convert_response({"content": [], "usage": {}}, created=CREATED, model=MODEL) == {
        "id": "chatcmpl-unknown",
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage(0, 0),
    }


def test_empty_text_block_gives_empty_content() -> None:
    msg = {**load("claude_response_text__vercel-ai.json"), "content": [{"type": "text", "text": ""}]}
    assert convert_response(msg, created=CREATED, model=MODEL)["choices"][0]["message"]["content"] == ""


@pytest.mark.parametrize("odd", [2**64 - 1, 2**53 + 1, 1e300, 5.0, "5", True, -3, None])
def test_a_token_count_that_is_not_a_plausible_integer_counts_as_0(odd: Any) -> None:
    usage = openai_usage({"input_tokens": odd, "cache_read_input_tokens": odd, "output_tokens": 4,
                          "output_tokens_details": {"thinking_tokens": odd}})
    assert usage["prompt_tokens"] == 0 and usage["completion_tokens"] == 4 and usage["total_tokens"] == 4
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0, "cache_write_tokens": 0}
    orjson.dumps(usage)  # (a count past 64 bits would not encode: the route's answer would be a 500)


def test_real_counts_are_kept() -> None:
    usage = openai_usage({"input_tokens": 2**53, "cache_creation_input_tokens": 7, "output_tokens": 1})
    assert (usage["prompt_tokens"], usage["cache_creation_input_tokens"]) == (2**53 + 7, 7)
