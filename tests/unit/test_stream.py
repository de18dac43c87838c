"""``translator.convert.StreamConverter`` driven by real recorded Claude streams (tests/fixtures/claude/streams,
see tests/fixtures/SOURCES.md): exact chunk sequences, protocol invariants for every recording, byte-split
robustness through ``SSEDecoder``, error paths, the JSON-tool mode, and parity with ``convert_response``
applied to the same stream folded into a message."""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from translator.convert import StreamConverter, StreamProtocolError, convert_response
from translator.errors import UpstreamUnavailable
from translator.sse import SSEDecoder, SSEEvent
from translator.upstream import StreamEvents

STREAMS = Path(__file__).parent.parent / "fixtures" / "claude" / "streams"
ALL_STREAMS = sorted(STREAMS.iterdir())
CREATED = 1700000000
MODEL = "requested-model"
# The anthropic-sdk-python capture ends without the blank line after its final event, so its
# ``message_stop`` is (rightly) never dispatched: the stream reads as cut short after ``message_delta``.
UNTERMINATED = "claude_stream_tool_use_input_truncated_by_max_tokens__anthropic-sdk-python.sse"
CUT_SHORT = {
    "error": {
        "message": "upstream stream ended before message_stop",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}
# Claude stop_reason -> OpenAI finish_reason, as the recordings need it (written out here, not imported).
FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "pause_turn": "stop",
}
MAPPED_BLOCKS = {"text", "tool_use", "thinking", "redacted_thinking"}

Event = dict[str, Any]
Chunk = dict[str, Any]


def claude_events(path: Path) -> list[Event]:
    """The event payloads of a recording: ``.sse`` through the SSE decoder, ``.chunks.jsonl`` (vercel/ai
    format, one data payload per line and no SSE framing) line by line."""
    data = path.read_bytes()
    if path.name.endswith(".chunks.jsonl"):
        return [orjson.loads(line) for line in data.splitlines() if line.strip()]
    decoder = SSEDecoder()
    return [event.json() for event in decoder.feed(data) + decoder.flush()]


def sse_bytes(path: Path) -> bytes:
    """The recording as SSE bytes: ``.sse`` as recorded; vercel lines framed as ``data:``-only events."""
    data = path.read_bytes()
    if path.name.endswith(".chunks.jsonl"):
        return b"".join(b"data: " + line + b"\n\n" for line in data.splitlines() if line.strip())
    return data


def run(events: Iterable[Event], *, finish: bool = True, **kw: Any) -> list[Chunk]:
    conv = StreamConverter(created=CREATED, model=MODEL, **kw)
    chunks = [chunk for event in events for chunk in conv.feed(event)]
    return chunks + conv.finish() if finish else chunks


def convert(name: str, **kw: Any) -> list[Chunk]:
    return run(claude_events(STREAMS / name), include_usage=True, **kw)


def header(chunk_id: str, model: str, *, include_usage: bool = True, tier: str | None = None) -> dict[str, Any]:
    """The fields every chunk of a stream repeats: with ``include_usage``, ``"usage": null`` too (the usage
    chunk itself overrides it); ``tier``: the served tier, when message_start's usage says."""
    head: dict[str, Any] = {"id": chunk_id, "object": "chat.completion.chunk", "created": CREATED, "model": model}
    if tier is not None:
        head["service_tier"] = tier
    if include_usage:
        head["usage"] = None
    return head


def without_usage(chunks: list[Chunk]) -> list[Chunk]:
    return [{k: v for k, v in c.items() if k != "usage"} for c in chunks]


def chunk(head: dict[str, Any], delta: dict[str, Any], finish: str | None = None) -> Chunk:
    return {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}


def usage(
    prompt: int, completion: int, cached: int = 0, written: int = 0, reasoning: int | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": written,
    }
    if reasoning is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return out


def test_fixture_set_is_complete() -> None:
    assert len(ALL_STREAMS) == 24


# --- exact chunk sequences ---


def test_exact_text() -> None:
    """Plain text: role chunk, one chunk per text_delta, the finish chunk, the usage chunk."""
    head = header("chatcmpl-msg_01QC4g3HwBThD4BaNtBckFDJ", "claude-sonnet-4-5-20250929", tier="default")
    assert convert("claude_stream_text__vercel-ai.chunks.jsonl") == [
        chunk(head, {"role": "assistant", "content": ""}),
        chunk(head, {"content": "Hello"}),
        chunk(head, {"content": "! I"}),
        chunk(head, {"content": "'m doing well, thank you for asking"}),
        chunk(head, {"content": ". How are you doing today?"}),
        chunk(head, {"content": " Is"}),
        chunk(head, {"content": " there anything I can help you with?"}),
        chunk(head, {}, "stop"),
        {**head, "choices": [], "usage": usage(12, 30)},
    ]


def test_exact_thinking_then_tool_use() -> None:
    """Thinking (its empty thinking_delta sends nothing) with the signature in thinking_blocks at the
    block's end, then a tool without arguments: arguments "" first, "{}" at the block's end."""
    head = header("chatcmpl-msg_01JdU4xqNHXL9QCFWkwCDKGr", "claude-haiku-4-5-20251001", tier="default")
    assert convert("claude_stream_thinking_then_tool_use__llm-anthropic.sse") == [
        chunk(head, {"role": "assistant", "content": ""}),
        chunk(head, {"reasoning_content": "The user wants me to:\n1"}),
        chunk(
            head,
            {
                "reasoning_content": (
                    ". Use the fixed_version tool\n2. Tell them the version\n3. "
                    "Make a short joke about it\n\nLet me first call the fixed_version "
                    "tool to see what version it returns."
                )
            },
        ),
        chunk(
            head,
            {
                "thinking_blocks": [
                    {
                        "type": "thinking",
                        "thinking": (
                            "The user wants me to:\n1. Use the fixed_version tool\n2. Tell "
                            "them the version\n3. Make a short joke about it\n\nLet me "
                            "first call the fixed_version tool to see what version it returns."
                        ),
                        "signature": (
                            "EoQDCm0IDhgCKkCDzGs2kL2PgnDCZU/nM2wG2P1VIXCRHVnhDDzBQxNF1fl4QBXEKLxRItNJ2MwF"
                            "dW9eeZPhsxSQIxD54cv3zs29MhljbGF1ZGUtaGFpa3UtNC01LTIwMjUxMDAxOABCCHRoaW5raW5n"
                            "Egy/OWlwTmmqUjC6L70aDJ4P0R5NfuIe9U5zAiIwCxPduXS2UxCNxJCee3i91qK3cAyAgxCjL2wk"
                            "Q5UD56iX1hXGOyuNaiH5k+dF5OCQKsQBxiAo+NjC61hV8nRYtaiP+C4inOcuMKuTG9Z1rysxTXkK"
                            "BTl3oMiOlnEPHHPpKpg4sYF2G5VoTg8JTon20hdZw4GfTEVupnU1qAmnMqyAgke9SoV7HBW/PyA/"
                            "FxL/q33xJ2gKFiD+BsgI9Z0koMmFKCvm2MoYE6u+ONEwKdFQXL1FKRW6t/bYbJGrLJLwxilsL82h"
                            "9j4xjggjMn8Npvpn+zsrDPW/8PuLd4Pu+/EsjoneYwyxQQtUVgzhVGhhANWRjSBwUxgB"
                        ),
                    }
                ]
            },
        ),
        chunk(
            head,
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "toolu_01825dXWLSoJwCst1qTsiWdb",
                        "type": "function",
                        "function": {"name": "fixed_version", "arguments": ""},
                    }
                ]
            },
        ),
        chunk(head, {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
        chunk(head, {}, "tool_calls"),
        {**head, "choices": [], "usage": usage(598, 92, reasoning=53)},
    ]


def test_exact_adaptive_thinking_opus46() -> None:
    """Adaptive thinking: text, then a thinking block with signature, then more text."""
    head = header("chatcmpl-msg_016xaB3rMXQHTBuAJvtvxaQx", "claude-opus-4-6", tier="default")
    assert convert("claude_stream_adaptive_thinking_opus46__llm-anthropic.sse") == [
        chunk(head, {"role": "assistant", "content": ""}),
        chunk(head, {"content": "\n\n"}),
        chunk(head, {"reasoning_content": "Brief"}),
        chunk(head, {"reasoning_content": " answer"}),
        chunk(head, {"reasoning_content": " with"}),
        chunk(head, {"reasoning_content": " two pet"}),
        chunk(head, {"reasoning_content": " pel"}),
        chunk(head, {"reasoning_content": "ican"}),
        chunk(head, {"reasoning_content": " names."}),
        chunk(
            head,
            {
                "thinking_blocks": [
                    {
                        "type": "thinking",
                        "thinking": "Brief answer with two pet pelican names.",
                        "signature": (
                            "EtABCkYICxgCKkCVRmhlD4SUFC1JfxwvjOHbkC3CPAIcWq1zn348H+o2blk997x12Vc5JMyLNWxB"
                            "6/bjLXUlJbHrROizHnvNtDaXEgz6UEiizB6ShSqw9cMaDN3d+Ba0ENx0lUZk7CIwdsIvrlZbePn/"
                            "CAF9+CeoO/fH53/gbO/WN3Effb0D41XifY7gyfQ8ftQWSLcsH+63KjjJYfLppl3C5/75CQsFv+3X"
                            "vurDwcdYbguoPM0RDiBHB2JRX/gKF0vzMKik41tZsSGAoENhIz4SWxgB"
                        ),
                    }
                ]
            },
        ),
        chunk(head, {"content": "1"}),
        chunk(head, {"content": ". **"}),
        chunk(head, {"content": "Captain"}),
        chunk(head, {"content": " Sc"}),
        chunk(head, {"content": "oop"}),
        chunk(head, {"content": "**"}),
        chunk(head, {"content": "\n2. **Gul"}),
        chunk(head, {"content": "let"}),
        chunk(head, {"content": "**"}),
        chunk(head, {}, "stop"),
        {**head, "choices": [], "usage": usage(34, 44)},
    ]


def test_exact_two_tool_use_blocks() -> None:
    """Two tool_use blocks with empty input (Claude block indexes 0 and 1, only "" fragments)."""
    head = header("chatcmpl-msg_01V2noLbAb2NgKnjaNw6Cn3w", "claude-haiku-4-5-20251001", tier="default")
    assert convert("claude_stream_two_tool_use_blocks__llm-anthropic.sse") == [
        chunk(head, {"role": "assistant", "content": ""}),
        chunk(
            head,
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "toolu_01LtHJmixrs9NcWQkK8hu8hj",
                        "type": "function",
                        "function": {"name": "pelican_name_generator", "arguments": ""},
                    }
                ]
            },
        ),
        chunk(head, {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
        chunk(
            head,
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "toolu_01N8a4jWyf116qKTMqKKmjyt",
                        "type": "function",
                        "function": {"name": "pelican_name_generator", "arguments": ""},
                    }
                ]
            },
        ),
        chunk(head, {"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
        chunk(head, {}, "tool_calls"),
        {**head, "choices": [], "usage": usage(542, 62)},
    ]


def test_exact_tool_use_empty_input() -> None:
    """Text, then a tool at Claude block index 1: its OpenAI index is 0 (our own counter)."""
    head = header("chatcmpl-msg_01GE2RKp1VYsPzdFs3sS9z5S", "claude-sonnet-4-5-20250929", tier="default")
    assert convert("claude_stream_tool_use_empty_input__vercel-ai.chunks.jsonl") == [
        chunk(head, {"role": "assistant", "content": ""}),
        chunk(head, {"content": "I'll update the issue list for"}),
        chunk(head, {"content": " you."}),
        chunk(
            head,
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "toolu_01QE1WLsSVp5hy5Q3GmGTmjP",
                        "type": "function",
                        "function": {"name": "updateIssueList", "arguments": ""},
                    }
                ]
            },
        ),
        chunk(head, {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
        chunk(head, {}, "tool_calls"),
        {**head, "choices": [], "usage": usage(565, 48)},
    ]


def test_exact_text_then_two_tool_use_with_args() -> None:
    """Text then two tools with arguments (Claude blocks 1 and 2 -> OpenAI tool indexes 0 and 1); old
    usage shape (message_delta carries output_tokens only)."""
    head = header("chatcmpl-msg_0138UNF3YbNp49KkqZtUBWqz", "claude-3-5-sonnet-20240620", tier="default")
    assert convert("claude_stream_text_then_two_tool_use_with_args__openllmetry.sse") == [
        chunk(head, {"role": "assistant", "content": ""}),
        chunk(head, {"content": "Certainly! I can"}),
        chunk(head, {"content": " help you with that information"}),
        chunk(head, {"content": ". To"}),
        chunk(head, {"content": " get the weather"}),
        chunk(head, {"content": " and current time in San"}),
        chunk(head, {"content": " Francisco, I'll nee"}),
        chunk(head, {"content": "d to use two separate"}),
        chunk(head, {"content": " functions."}),
        chunk(head, {"content": " Let me fetch that data"}),
        chunk(head, {"content": " for you."}),
        chunk(
            head,
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "toolu_014x5X91kx3fvdhpLvwXZWE2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            },
        ),
        chunk(head, {"tool_calls": [{"index": 0, "function": {"arguments": '{"'}}]}),
        chunk(head, {"tool_calls": [{"index": 0, "function": {"arguments": "locati"}}]}),
        chunk(head, {"tool_calls": [{"index": 0, "function": {"arguments": 'on": "San F'}}]}),
        chunk(head, {"tool_calls": [{"index": 0, "function": {"arguments": "ra"}}]}),
        chunk(head, {"tool_calls": [{"index": 0, "function": {"arguments": "ncisco,"}}]}),
        chunk(head, {"tool_calls": [{"index": 0, "function": {"arguments": ' CA"'}}]}),
        chunk(head, {"tool_calls": [{"index": 0, "function": {"arguments": ', "unit"'}}]}),
        chunk(head, {"tool_calls": [{"index": 0, "function": {"arguments": ': "celsius"}'}}]}),
        chunk(
            head,
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "toolu_0121kXsENLvoDZ72LCuAnCCz",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": ""},
                    }
                ]
            },
        ),
        chunk(head, {"tool_calls": [{"index": 1, "function": {"arguments": '{"timez'}}]}),
        chunk(head, {"tool_calls": [{"index": 1, "function": {"arguments": 'one":'}}]}),
        chunk(head, {"tool_calls": [{"index": 1, "function": {"arguments": ' "America/L'}}]}),
        chunk(head, {"tool_calls": [{"index": 1, "function": {"arguments": "os_Angele"}}]}),
        chunk(head, {"tool_calls": [{"index": 1, "function": {"arguments": 's"}'}}]}),
        chunk(head, {}, "tool_calls"),
        {**head, "choices": [], "usage": usage(506, 153)},
    ]


def test_exact_redacted_thinking_x2_then_text() -> None:
    """Two redacted_thinking blocks (data only, no deltas) pass through whole in thinking_blocks."""
    head = header("chatcmpl-msg_018XZkwvj9asBiffg3fXt88s", "claude-sonnet-4-5-20250929", tier="default")
    assert convert("claude_stream_redacted_thinking_x2_then_text__pydantic-ai.sse") == [
        chunk(head, {"role": "assistant", "content": ""}),
        chunk(
            head,
            {
                "thinking_blocks": [
                    {
                        "type": "redacted_thinking",
                        "data": (
                            "EqkECkYIBxgCKkA8AZ4noDfV5VcOJe/p3JTRB6Xz5297mrWhl3MbHSXDKTMfuB/Z52U2teiWWTN0"
                            "gg4eQ4bGS9TPilFX/xWTIq9HEgyOmstSPriNwyn1G7AaDC51r0hQ062qEd55IiIwYQj3Z3MSBBv0"
                            "bSVdXi60LEHDvC7tzzmpQfw5Hb6R9rtyOz/6vC/xPw9/E1mUqfBqKpADO2HS2QlE/CnuzR901nZO"
                            "n0TOw7kEXwH7kg30c85b9W7iKALgEejY9sELMBdPyIZNlTgKqNOKtY3R/aV5rGIRPTHh2Wh9Ijmq"
                            "sf/TT7i//Z+InaYTo6f/fxF8R0vFXMRPOBME4XIscb05HcNhh4c9FDkpqQGYKaq31IR1NNwPWA0B"
                            "svdDz7SIo1nfx4H+X0qKKqqegKnQ3ynaXiD5ydT1C4U7fku4ftgF0LGwIk4PwXBE+4BP0DcKr1HV"
                            "3cn7YSyNakBSDTvRJMKcXW6hl7X3w2a4//sxjC1Cjq0uzkIHkhzRWirN0OSXt+g3m6b1ex0wGmSy"
                            "uO17Ak6kgVBpxwPugtrqsflG0oujFem44hecXJ9LQNssPf4RSlcydiG8EXp/XLGTe0YfHbe3kJag"
                            "kowSH/Dm6ErXBiVs7249brncyY8WA+7MOoqIM82YIU095B9frCqDJDUWnN84VwOszRrcaywmpJXZ"
                            "O4aeQLMC1kXD5Wabu+O/00tD/X67EWkkWuR0AhDIXXjpot45vnBd4ewJ/hgB"
                        ),
                    }
                ]
            },
        ),
        chunk(
            head,
            {
                "thinking_blocks": [
                    {
                        "type": "redacted_thinking",
                        "data": (
                            "EtgBCkYIBxgCKkDQfGkwzflEJP5asG3oQfJXcTwJLoRznn8CmuczWCsJ36dv93X9H0NCeaJRbi5B"
                            "rCA2DyMgFnRKRuzZx8VTv5axEgwkFmcHJk8BSiZMZRQaDDYv2KZPfbFgRa2QjyIwm47f5YYsSK9C"
                            "T/oh/WWpU1HJJVHr8lrC6HG1ItRdtMvYQYmEGy+KhyfcIACfbssVKkDGv/NKqNMOAcu0bd66gJ2+"
                            "R1R0PX11Jxn2Nd1JtZqkxx7vMT/PXtHDhm9jkDZ2k/6RjRRFuab/DBV3yRYdZ1J0GAE="
                        ),
                    }
                ]
            },
        ),
        chunk(head, {"content": "I notice that you've sent what"}),
        chunk(head, {"content": " appears to be some"}),
        chunk(head, {"content": " kind of test string"}),
        chunk(head, {"content": " or command. I don't have"}),
        chunk(head, {"content": ' any special "magic string"'}),
        chunk(head, {"content": " triggers or backdoor commands"}),
        chunk(head, {"content": " that would expose internal systems or"}),
        chunk(head, {"content": " change my behavior."}),
        chunk(head, {"content": "\n\nI'm Claude"}),
        chunk(head, {"content": ", an AI assistant create"}),
        chunk(head, {"content": "d by Anthropic to"}),
        chunk(head, {"content": " be helpful, harmless"}),
        chunk(head, {"content": ", and honest. How"}),
        chunk(head, {"content": " can I assist you today with"}),
        chunk(head, {"content": " a legitimate task or question?"}),
        chunk(head, {}, "stop"),
        {**head, "choices": [], "usage": usage(92, 189)},
    ]


def test_exact_stop_sequence_after_prefill() -> None:
    """stop_reason stop_sequence -> finish_reason stop."""
    head = header("chatcmpl-msg_01KozUDYHvRtgs3NLgG7jzN9", "claude-haiku-4-5-20251001", tier="default")
    assert convert("claude_stream_stop_sequence_after_prefill__llm-anthropic.sse") == [
        chunk(head, {"role": "assistant", "content": ""}),
        chunk(head, {"content": "\ndef pel"}),
        chunk(head, {"content": 'ican():\n    return "A large waterbird with a long bill and a'}),
        chunk(head, {"content": ' throat pouch for catching fish."'}),
        chunk(head, {"content": "\n"}),
        chunk(head, {}, "stop"),
        {**head, "choices": [], "usage": usage(16, 28)},
    ]


def test_exact_cache_write() -> None:
    """max_tokens -> length; a cache write counts in prompt_tokens (18 + 1031), not as cached."""
    head = header("chatcmpl-msg_01N1s2vim6CWk85jtJPHcuea", "claude-sonnet-4-20250514", tier="default")
    assert convert("claude_stream_cache_write__dd-trace-py.sse") == [
        chunk(head, {"role": "assistant", "content": ""}),
        chunk(head, {"content": "Here"}),
        chunk(head, {"content": " are the key principles for designing scalable systems:\n\n##"}),
        chunk(head, {"content": " 1. **Horizontal Scaling (Scale Out)**\n-"}),
        chunk(
            head,
            {
                "content": (
                    " Add more servers rather than upgrading existing hardware\n"
                    "- Design stateless services that can run"
                )
            },
        ),
        chunk(
            head, {"content": (" on multiple instances\n- Use load balancers to distribute traffic across instances")}
        ),
        chunk(head, {"content": "\n\n## 2. **Loose Coupling & High Cohesion**\n- Design"}),
        chunk(
            head,
            {
                "content": (
                    " independent, modular components\n- Use APIs and message queues for communication\n- Minimize"
                )
            },
        ),
        chunk(head, {"content": " dependencies"}),
        chunk(head, {}, "length"),
        {**head, "choices": [], "usage": usage(1049, 100, written=1031)},
    ]


def test_exact_pause_turn_web_search() -> None:
    """pause_turn -> stop; of its 168 events the server_tool_use / web_search_tool_result blocks and
    their input_json_deltas produce nothing but a paragraph break before the text that follows them."""
    head = header("chatcmpl-msg_01SC6GnkBDsmEDqyXQpQ2ipm", "claude-sonnet-4-5-20250929", tier="default")
    assert convert("claude_stream_pause_turn_web_search__pydantic-ai.sse") == [
        chunk(head, {"role": "assistant", "content": ""}),
        chunk(head, {"reasoning_content": "The user wants me to run"}),
        chunk(
            head,
            {
                "reasoning_content": (
                    " a series of web searches. They've listed 15 different search queries and want me to do them"
                )
            },
        ),
        chunk(
            head,
            {
                "reasoning_content": (
                    " one at a time, waiting until all searches are complete before "
                    "providing a summary.\n\nLet me start with the searches in "
                    'order:\n1. "San Francisco'
                )
            },
        ),
        chunk(
            head,
            {
                "reasoning_content": (
                    ' weather today"\n2. "San Francisco sunrise time today"\n'
                    '3. "Golden Gate Bridge traffic today"\n4. "San Francisco '
                    'air quality today"\n5. "San Francisco events this week"\n'
                    '6. "San Francisco ferry schedule today"\n7. "prevailing '
                    "information on quantum computing today"
                )
            },
        ),
        chunk(
            head,
            {
                "reasoning_content": (
                    '"\n8. "latest news on the stock market today"\n9. "latest '
                    'news on the weather in San Francisco today"\n10. "latest '
                    'news on the traffic in San Francisco today"\n11. "latest '
                    'news on the air quality in San Francisco today"\n12. "latest '
                    "news on the"
                )
            },
        ),
        chunk(
            head,
            {
                "reasoning_content": (
                    ' events in San Francisco this week"\n13. "latest news on '
                    'the ferry schedule in San Francisco today"\n14. "latest '
                    'news on the quantum computing in San Francisco today"\n15. '
                    '"latest news on the stock market in San Francisco today"\n'
                    "\nI should do these"
                )
            },
        ),
        chunk(head, {"reasoning_content": " searches one at a time as requested. Let me start."}),
        chunk(
            head,
            {
                "thinking_blocks": [
                    {
                        "type": "thinking",
                        "thinking": (
                            "The user wants me to run a series of web searches. They've "
                            "listed 15 different search queries and want me to do them "
                            "one at a time, waiting until all searches are complete before "
                            "providing a summary.\n\nLet me start with the searches in "
                            'order:\n1. "San Francisco weather today"\n2. "San Francisco '
                            'sunrise time today"\n3. "Golden Gate Bridge traffic today"\n'
                            '4. "San Francisco air quality today"\n5. "San Francisco '
                            'events this week"\n6. "San Francisco ferry schedule today"\n'
                            '7. "prevailing information on quantum computing today"\n'
                            '8. "latest news on the stock market today"\n9. "latest '
                            'news on the weather in San Francisco today"\n10. "latest '
                            'news on the traffic in San Francisco today"\n11. "latest '
                            'news on the air quality in San Francisco today"\n12. "latest '
                            'news on the events in San Francisco this week"\n13. "latest '
                            'news on the ferry schedule in San Francisco today"\n14. "latest '
                            'news on the quantum computing in San Francisco today"\n15. '
                            '"latest news on the stock market in San Francisco today"\n'
                            "\nI should do these searches one at a time as requested. Let "
                            "me start."
                        ),
                        "signature": (
                            "EuwJCm4IDxgCKkBjID0+egpRzHnlwt9pXf871ag+Lc6A7JcKM276KGCVdkc0t7fMMk87dKfygXQg"
                            "Nyr1hMxif96/NjOjLMj3sZiWMhpjbGF1ZGUtc29ubmV0LTQtNS0yMDI1MDkyOTgAQgh0aGlua2lu"
                            "ZxIM2N8KgtyvRGV1Ywr6GgwMHch1u/CpTtz1zGsiMI/GwKX3MRiHQ9odG4KYkiVpCNsN7/6V0ouI"
                            "IW5uQZxI5XSVNIPAlxwQGNy9B7qDKCqrCMVkdiw3xik8OT9/fNA2pzrJP6pH1PxTLXPlVkojpsF1"
                            "IGTtLuO+ecjHkKTYIWaJVmV3HJGOAb9aNmouXmvY2FP4cVjUBuL5hVPkQCse8M07YHS4upyQ3cF0"
                            "Vz4WSw7KGLY9nVGNvVYEXFPeTlQ9E/KXgnbSqVtIXW0VICfBHY6j2oOb+q5ytt7fKyioGIHh0OSd"
                            "Ob4/U47oFxnESLeLbdLWh2u/XQZOw9e8dtFLeFqnsOi2mFR9HIHf3lDvdQ1L7iY0zXVKrTXXKqZ6"
                            "Asajj7EWjwqJr+wovNtI1fx3NjZZdS/PvUaDgECrv4R6o0tTLVOcn0wse99Diq169UaF9Yzr4jbp"
                            "bHs/WFZKC3/ScHtbJqnJoevcak8BoUeIlG5UZQe0yELTPSrVlOJ28X6FyaK591YhqkgKZh04XXzQ"
                            "bJZY2tV2jH6QpzJwQdp3n6F2OVz9RmCV6tyYE4zLDeYClPxetgaVLnRWteSGO5r0tI2A8hLvij6S"
                            "VGru+HPCGyPeoiTG2c2jX9DGu28fbbbO15wkwfFildnh5YpuBWbkZe/Fr2eKlfVhnTRRzpy+3EsT"
                            "KTEWykBecTY9UlkQw0wVhwvAJKnoM8ArB3Lk+eZf/MMoQ1Juf09EwLfgZRV5qA3EnsCEpR2dwVsN"
                            "jYKU0jBNoBEdQPCQ3tXZ5LPVt9ez41lOQZagOOvr/xiELTvUqeDniGC96lHF3zqbrXps6HknGWXX"
                            "T7oEv01Jpvg/cgIKdM+zr6BPIT/pC90Tm5ESCjn+S1c0Y9IUD5AR4zfWvsXB99GyKZNTw+iand06"
                            "JlisV9a31K1r9jIy896MIQzTM5Nt4NAMStoUmHQL8PAm/2URr4V6u7v696WH6txF+PppnjE8+YjW"
                            "MpfLU2yErLsY/K7Ub6KRYo4MW/ZwgFGkOKEdpi5WfDJ4VhkzMpiivMZ8CUOv6LrRE5N/FKwGZ+Ry"
                            "3tLectnTDrNZTW8P9a19R9CE+bKOOAMbUb4elPzA361mApZQII5Vq6B6KFnixtCv9pzYomqHLS11"
                            "jhqmKMMYV13+m82p/o0Ye16nHM16HnRORxrYg176KyywyroMXoCmq8YuwhzPbIarWEgNHgdnXfpL"
                            "GZ+XcA0p/sQTJ1MTO0EqF1JFwEdI+0lCYdtEKqR7Ilohq9hmxYQU+bSRoGt4XHUHenzvLPBA502l"
                            "t/wLgy7KoqjvErVPJHqaf1vBo8BJBKijnFlUeNDNXlIrq4zf3JaOiZ/QAPFyq1ecVyNmtcdWJPtw"
                            "0v+TvIYoDlAV4bOnD/7fF+EbBKCk/BB+i0kC2P91WQWHuiSZRVap3n2N/e4PStu/3pl0rNZl9BN0"
                            "rHZ2hGec9hlbeGwZayRGGhfaDiUMZRHe1CZPstuURPeOlRbCVNGeXzlDIuXJNkt36aLg5h/n+3fw"
                            "B2JU3RNwqNCIGAE="
                        ),
                    }
                ]
            },
        ),
        chunk(head, {"content": "I'll run these searches one at a time as requested. Let me start:"}),
        chunk(head, {"content": "\n\n"}),  # (a search ran between: a new paragraph)
        chunk(head, {"content": "Let"}),
        chunk(head, {"content": " me continue with the remaining searches you requested:"}),
        chunk(head, {"content": "\n\n"}),
        chunk(head, {"content": "Now"}),
        chunk(head, {"content": " continuing with the remaining searches:"}),
        chunk(head, {}, "stop"),
        {**head, "choices": [], "usage": usage(404500, 943, reasoning=261)},
    ]


def test_exact_json_tool_mode() -> None:
    """A forced JSON tool (response_format emulation): its input fragments are the answer's content, and the
    turn finishes with "stop", not "tool_calls"."""
    head = header("chatcmpl-msg_01AusY9WEbCaj3N7Tv5J4YjH", "claude-haiku-4-5-20251001", tier="default")
    name = "claude_stream_tool_use_only_with_caller__anthropic-sdk-python.sse"
    assert convert(name, json_tool="get_weather") == [
        chunk(head, {"role": "assistant", "content": ""}),
        chunk(head, {"content": '{"'}),
        chunk(head, {"content": "loca"}),
        chunk(head, {"content": "tio"}),
        chunk(head, {"content": 'n": '}),
        chunk(head, {"content": '"San Fr'}),
        chunk(head, {"content": "anci"}),
        chunk(head, {"content": 'sco, CA"'}),
        chunk(head, {"content": ', "'}),
        chunk(head, {"content": 'units": "f"}'}),
        chunk(head, {}, "stop"),
        {**head, "choices": [], "usage": usage(656, 74)},
    ]


def test_exact_json_tool_mode_with_empty_input() -> None:
    head = header("chatcmpl-msg_01GE2RKp1VYsPzdFs3sS9z5S", "claude-sonnet-4-5-20250929", tier="default")
    assert convert("claude_stream_tool_use_empty_input__vercel-ai.chunks.jsonl", json_tool="updateIssueList") == [
        chunk(head, {"role": "assistant", "content": ""}),
        chunk(head, {"content": "I'll update the issue list for"}),
        chunk(head, {"content": " you."}),
        chunk(head, {"content": "{}"}),
        chunk(head, {}, "stop"),
        {**head, "choices": [], "usage": usage(565, 48)},
    ]


def test_json_tool_leaves_other_tools_alone() -> None:
    chunks = convert("claude_stream_text_then_two_tool_use_with_args__openllmetry.sse", json_tool="get_time")
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    assert {tc["index"] for tc in calls} == {0}
    assert calls[0]["function"] == {"name": "get_weather", "arguments": ""}
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert content.endswith(' Let me fetch that data for you.{"timezone": "America/Los_Angeles"}')
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"  # get_weather must still run


@pytest.mark.parametrize(("name", "expected"), [
    # message_start: input 11, cache_read 1031, cache_creation 0; message_delta: output 100
    ("claude_stream_cache_read__dd-trace-py.sse", {
        "prompt_tokens": 1042, "completion_tokens": 100, "total_tokens": 1142,
        "prompt_tokens_details": {"cached_tokens": 1031, "cache_write_tokens": 0},
        "cache_read_input_tokens": 1031, "cache_creation_input_tokens": 0,
    }),
    # message_start: input 18, cache_read 0, cache_creation 1031; message_delta: output 100
    ("claude_stream_cache_write__dd-trace-py.sse", {
        "prompt_tokens": 1049, "completion_tokens": 100, "total_tokens": 1149,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 1031},
        "cache_read_input_tokens": 0, "cache_creation_input_tokens": 1031,
    }),
], ids=["cache read", "cache write"])
def test_usage_with_cache_tokens(name: str, expected: dict[str, Any]) -> None:
    chunks = convert(name)
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == expected


# --- stream_options.include_usage: "usage": null on every other chunk ---

TEXT_EVENTS = claude_events(STREAMS / "claude_stream_text__vercel-ai.chunks.jsonl")


def test_include_usage_puts_null_usage_on_every_other_chunk() -> None:
    """OpenAI: "All other chunks will also include a usage field, but with a null value"; the usage chunk is
    last, with ``choices: []``."""
    chunks = run(TEXT_EVENTS, include_usage=True)
    head = {"id": "chatcmpl-msg_01QC4g3HwBThD4BaNtBckFDJ", "object": "chat.completion.chunk", "created": CREATED,
            "model": "claude-sonnet-4-5-20250929", "service_tier": "default"}
    assert chunks[0] == {
        **head,
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                     "finish_reason": None}],
        "usage": None,
    }
    assert chunks[-2] == {
        **head,
        "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
        "usage": None,
    }
    assert [c["usage"] for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert all(c["choices"] for c in chunks[:-1])
    assert chunks[-1] == {**head, "choices": [], "usage": usage(12, 30)}


def test_without_include_usage_no_chunk_has_a_usage_key() -> None:
    chunks = run(TEXT_EVENTS)
    assert not any("usage" in c for c in chunks)
    assert chunks == without_usage(run(TEXT_EVENTS, include_usage=True)[:-1])


def test_error_chunks_carry_no_usage() -> None:
    conv = StreamConverter(created=CREATED, model=MODEL, include_usage=True)
    sent = [c for e in TEXT_EVENTS[:4] for c in conv.feed(e)]
    assert [c["usage"] for c in sent] == [None, None]
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert conv.feed(error) == [
        {"error": {"message": "Overloaded", "type": "server_error", "param": None, "code": "overloaded"}}
    ]
    cut = StreamConverter(created=CREATED, model=MODEL, include_usage=True)
    for event in TEXT_EVENTS[:4]:
        cut.feed(event)
    assert cut.finish() == [CUT_SHORT]


def test_usage_chunk_false_keeps_the_nulls_and_leaves_the_usage_chunk_to_the_caller() -> None:
    """n > 1: each choice's stream carries ``"usage": null``; the route writes one summed usage chunk."""
    conv = StreamConverter(created=CREATED, model=MODEL, index=1, stream_id="chatcmpl-shared", include_usage=True,
                           usage_chunk=False)
    chunks = [c for e in TEXT_EVENTS for c in conv.feed(e)]
    assert conv.done
    assert chunks == [
        {**c, "id": "chatcmpl-shared", "choices": [{**c["choices"][0], "index": 1}]}
        for c in run(TEXT_EVENTS, include_usage=True)[:-1]
    ]
    assert all(c["usage"] is None and c["choices"] for c in chunks)
    assert conv.usage == usage(12, 30)


def test_id_and_choice_index_can_be_given() -> None:
    """n > 1: one id for all the merged streams, one choice index per stream."""
    events = claude_events(STREAMS / "claude_stream_text__vercel-ai.chunks.jsonl")
    chunks = run(events, index=2, stream_id="chatcmpl-shared", include_usage=True)
    assert {c["id"] for c in chunks} == {"chatcmpl-shared"}
    assert {c["choices"][0]["index"] for c in chunks if c["choices"]} == {2}


def test_model_falls_back_to_the_requested_one() -> None:
    chunks = run([{"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 3}}}])
    head = header("chatcmpl-msg_1", MODEL, include_usage=False)
    assert chunks[0] == chunk(head, {"role": "assistant", "content": ""})


# --- invariants over every recording ---


def _tool_blocks(events: list[Event]) -> list[dict[str, Any]]:
    return [
        e["content_block"]
        for e in events
        if e["type"] == "content_block_start" and e["content_block"]["type"] == "tool_use"
    ]


@pytest.mark.parametrize("path", ALL_STREAMS, ids=lambda p: p.name)
def test_invariants(path: Path) -> None:
    events = claude_events(path)
    start = events[0]["message"]
    [message_delta] = [e for e in events if e["type"] == "message_delta"]
    chunks = run(events, include_usage=True)
    stopped = events[-1]["type"] == "message_stop"
    assert stopped == (path.name != UNTERMINATED)
    *choice_chunks, last = chunks
    tier = {"standard": "default", "priority": "priority"}.get(start["usage"].get("service_tier"))
    head = header("chatcmpl-" + start["id"], start["model"], tier=tier)

    keys = {"id", "object", "created", "model", "choices", "usage"}
    for c in choice_chunks:
        assert c.keys() == (keys | {"service_tier"} if tier else keys)
        assert {k: c[k] for k in head} == head
        [choice] = c["choices"]
        assert choice.keys() == {"index", "delta", "logprobs", "finish_reason"}
        assert choice["index"] == 0
        assert choice["logprobs"] is None
        assert set(choice["delta"]) <= {
            "role", "content", "reasoning_content", "tool_calls", "thinking_blocks", "annotations"}
    deltas = [c["choices"][0]["delta"] for c in choice_chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert not any("role" in d for d in deltas[1:])
    assert all(deltas[1:-1])  # only the finishing chunk has an empty delta
    finishes = [c["choices"][0]["finish_reason"] for c in choice_chunks]
    assert finishes == [None] * (len(finishes) - 1) + [FINISH[message_delta["delta"]["stop_reason"]]]
    assert deltas[-1] == {}

    if stopped:
        claude_usage = {**start["usage"], **{k: v for k, v in message_delta["usage"].items() if v is not None}}
        read = claude_usage.get("cache_read_input_tokens") or 0
        written = claude_usage.get("cache_creation_input_tokens") or 0
        prompt = claude_usage["input_tokens"] + read + written
        thinking = (claude_usage.get("output_tokens_details") or {}).get("thinking_tokens")
        expected_usage = usage(prompt, claude_usage["output_tokens"], read, written, thinking)
        assert last == {**head, "choices": [], "usage": expected_usage}
        assert run(events) == without_usage(choice_chunks)  # without include_usage: no usage chunk, no nulls
    else:
        assert last == CUT_SHORT

    tools = _tool_blocks(events)
    calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
    assert all(len(d["tool_calls"]) == 1 for d in deltas if "tool_calls" in d)
    firsts = [tc for tc in calls if "id" in tc]
    assert firsts == [
        {"index": i, "id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": ""}}
        for i, b in enumerate(tools)
    ]
    current = -1
    for tc in calls:
        if "id" in tc:
            current = tc["index"]
        else:  # a fragment of the tool call started last, never empty
            assert tc == {"index": current, "function": {"arguments": tc["function"]["arguments"]}}
            assert tc["function"]["arguments"]


def test_recordings_cover_every_stop_reason_and_block_kind() -> None:
    stops, blocks, delta_kinds = set(), set(), set()
    for path in ALL_STREAMS:
        for e in claude_events(path):
            if e["type"] == "message_delta":
                stops.add(e["delta"]["stop_reason"])
            elif e["type"] == "content_block_start":
                blocks.add(e["content_block"]["type"])
            elif e["type"] == "content_block_delta":
                delta_kinds.add(e["delta"]["type"])
    assert stops == set(FINISH)
    assert blocks == MAPPED_BLOCKS | {
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "bash_code_execution_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "tool_search_tool_result",
    }
    assert delta_kinds == {"text_delta", "input_json_delta", "thinking_delta", "signature_delta", "citations_delta"}


@pytest.mark.parametrize("path", ALL_STREAMS, ids=lambda p: p.name)
def test_unmapped_blocks_and_deltas_produce_nothing(path: Path) -> None:
    conv = StreamConverter(created=CREATED, model=MODEL)
    kinds: dict[int, str] = {}
    for event in claude_events(path):
        if event["type"] == "content_block_start":
            kinds[event["index"]] = event["content_block"]["type"]
        out = conv.feed(event)
        unmapped = "index" in event and kinds[event["index"]] not in MAPPED_BLOCKS
        if unmapped or event.get("delta", {}).get("type") == "citations_delta" or event["type"] == "ping":
            assert out == [], event
    assert conv.done == (path.name != UNTERMINATED)


def test_unknown_event_and_delta_types_are_skipped() -> None:
    events = claude_events(STREAMS / "claude_stream_text__vercel-ai.chunks.jsonl")
    expected = run(events)
    noisy = [
        {"type": "future_event", "index": 0},  # even before message_start
        events[0],
        events[1],
        {"type": "content_block_delta", "index": 0, "delta": {"type": "future_delta", "x": 1}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "citations_delta", "citation": {}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": ""}},
        {"type": "future_event"},
        *events[2:],
    ]
    assert run(noisy) == expected


# --- byte splits through the SSE decoder ---


@pytest.mark.parametrize("path", ALL_STREAMS, ids=lambda p: p.name)
def test_random_byte_splits_give_identical_chunks(path: Path) -> None:
    data = sse_bytes(path)
    whole = run(claude_events(path), include_usage=True)
    rng = random.Random(path.name)
    for _ in range(3):
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, min(len(data) - 1, 2000))))
        decoder = SSEDecoder()
        conv = StreamConverter(created=CREATED, model=MODEL, include_usage=True)
        chunks: list[Chunk] = []
        for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
            for event in decoder.feed(data[a:b]):
                chunks += conv.feed(event.json())
        for event in decoder.flush():
            chunks += conv.feed(event.json())
        assert chunks + conv.finish() == whole


# --- the end of the stream, errors, protocol violations ---


@pytest.mark.parametrize("path", [p for p in ALL_STREAMS if p.name != UNTERMINATED], ids=lambda p: p.name)
def test_finish_without_message_stop_is_an_error(path: Path) -> None:
    events = claude_events(path)
    assert events[-1] == {"type": "message_stop"}
    conv = StreamConverter(created=CREATED, model=MODEL, include_usage=True)
    chunks = [c for e in events[:-1] for c in conv.feed(e)]
    assert chunks == run(events, include_usage=True)[:-1]  # everything up to the usage chunk was already sent
    assert not conv.done
    assert conv.finish() == [CUT_SHORT]
    assert conv.done
    assert conv.finish() == []


def test_finish_after_message_stop_adds_nothing_and_later_events_are_refused() -> None:
    conv = StreamConverter(created=CREATED, model=MODEL)
    for event in claude_events(STREAMS / "claude_stream_two_tool_use_blocks__llm-anthropic.sse"):
        conv.feed(event)
    assert conv.done
    assert conv.finish_reason == "tool_calls"
    assert conv.finish() == []
    with pytest.raises(StreamProtocolError, match="after the stream ended"):
        conv.feed({"type": "ping"})


@pytest.mark.parametrize(
    ("claude_type", "openai_type", "code"),
    [
        ("overloaded_error", "server_error", "overloaded"),
        ("api_error", "server_error", None),
        ("rate_limit_error", "rate_limit_error", "rate_limit_exceeded"),
        ("invalid_request_error", "invalid_request_error", None),
        ("timeout_error", "timeout_error", "timeout"),
        ("some_future_error", "server_error", None),
    ],
)
def test_error_event_mid_stream(claude_type: str, openai_type: str, code: str | None) -> None:
    events = claude_events(STREAMS / "claude_stream_text__vercel-ai.chunks.jsonl")
    conv = StreamConverter(created=CREATED, model=MODEL, include_usage=True)
    sent = [c for e in events[:4] for c in conv.feed(e)]  # message_start, text block start, ping, "Hello"
    assert [c["choices"][0]["delta"] for c in sent] == [{"role": "assistant", "content": ""}, {"content": "Hello"}]
    error = {"type": "error", "error": {"type": claude_type, "message": "Overloaded"}}
    assert conv.feed(error) == [{"error": {"message": "Overloaded", "type": openai_type, "param": None, "code": code}}]
    assert conv.done
    assert conv.finish_reason is None
    assert conv.finish() == []
    with pytest.raises(StreamProtocolError):
        conv.feed(events[5])


def test_error_event_before_message_start_and_without_details() -> None:
    assert run([{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]) == [
        {"error": {"message": "Overloaded", "type": "server_error", "param": None, "code": "overloaded"}}
    ]
    assert run([{"type": "error"}]) == [
        {"error": {"message": "upstream stream error", "type": "server_error", "param": None, "code": None}}
    ]


REAL = claude_events(STREAMS / "claude_stream_text_then_two_tool_use_with_args__openllmetry.sse")


@pytest.mark.parametrize(
    "event",
    [*[e for e in REAL if e["type"] not in ("message_start", "ping")][::4], REAL[-2], REAL[-1]],
    ids=lambda e: e["type"],
)
def test_events_before_message_start_are_a_protocol_error(event: Event) -> None:
    conv = StreamConverter(created=CREATED, model=MODEL)
    assert conv.feed({"type": "ping"}) == []
    with pytest.raises(StreamProtocolError, match="before 'message_start'"):
        conv.feed(event)


@pytest.mark.parametrize(
    "event",
    [
        {"type": "content_block_delta", "index": 5, "delta": {"type": "text_delta", "text": "x"}},
        {"type": "content_block_stop", "index": 5},
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "x"}},
    ],
)
def test_block_events_without_their_start_are_a_protocol_error(event: Event) -> None:
    conv = StreamConverter(created=CREATED, model=MODEL)
    conv.feed(REAL[0])
    conv.feed(REAL[1])  # block 0 (text) starts
    with pytest.raises(StreamProtocolError, match="without 'content_block_start'"):
        conv.feed(event)


def test_stream_protocol_error_is_an_upstream_failure() -> None:
    assert issubclass(StreamProtocolError, UpstreamUnavailable)


# --- parity with the non-streaming conversion ---


def fold_claude(events: list[Event]) -> tuple[dict[str, Any], dict[str, str]]:
    """The Claude message a stream describes (as the Anthropic SDKs accumulate it), and the raw streamed
    input JSON of each tool_use block, by tool id. An input that never completed (cut by max_tokens) cannot
    be a message's ``input``: it is left ``{}`` there."""
    message: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    inputs: dict[int, str] = {}
    for e in events:
        if e["type"] == "message_start":
            message = copy.deepcopy(e["message"])
        elif e["type"] == "content_block_start":
            blocks[e["index"]] = copy.deepcopy(e["content_block"])
            if e["content_block"]["type"] == "tool_use":
                inputs[e["index"]] = ""
        elif e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta":
            if e["index"] in inputs:
                inputs[e["index"]] += e["delta"]["partial_json"]
        elif e["type"] == "content_block_delta":
            _fold_delta(blocks[e["index"]], e["delta"])
        elif e["type"] == "message_delta":
            message.update(e["delta"])
            message["usage"].update({k: v for k, v in e["usage"].items() if v is not None})
    for index, raw in inputs.items():
        blocks[index]["input"] = orjson.loads(raw) if raw and _is_json(raw) else {}
    message["content"] = [blocks[i] for i in sorted(blocks)]
    return message, {blocks[i]["id"]: raw for i, raw in inputs.items()}


_DELTA_FIELDS = {"text_delta": "text", "thinking_delta": "thinking", "signature_delta": "signature"}


def _fold_delta(block: dict[str, Any], delta: dict[str, Any]) -> None:
    if delta["type"] in _DELTA_FIELDS:
        field = _DELTA_FIELDS[delta["type"]]
        block[field] += delta[field]
    elif delta["type"] == "citations_delta":
        block["citations"] = [*(block.get("citations") or []), delta["citation"]]


def _is_json(raw: str) -> bool:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return True


def fold_chunks(chunks: list[Chunk]) -> dict[str, Any]:
    """What an OpenAI client accumulates from the chunks."""
    content, reasoning, thinking_blocks, finishes, annotations = [], [], [], [], []
    calls: dict[int, dict[str, Any]] = {}
    folded: dict[str, Any] = {"id": chunks[0]["id"], "model": chunks[0]["model"], "usage": None}
    for c in chunks:
        if not c["choices"]:
            folded["usage"] = c["usage"]
            continue
        [choice] = c["choices"]
        delta = choice["delta"]
        content.append(delta.get("content", ""))
        reasoning.append(delta.get("reasoning_content", ""))
        thinking_blocks += delta.get("thinking_blocks", [])
        annotations += delta.get("annotations", [])
        for tc in delta.get("tool_calls", []):
            call = calls.setdefault(tc["index"], {"function": {"arguments": ""}})
            if "id" in tc:
                call.update(id=tc["id"], type=tc["type"])
                call["function"]["name"] = tc["function"]["name"]
            call["function"]["arguments"] += tc["function"]["arguments"]
        finishes.append(choice["finish_reason"])
    assert sorted(calls) == list(range(len(calls)))
    folded["message"] = {
        "content": "".join(content) or None,
        "reasoning_content": "".join(reasoning) or None,
        "thinking_blocks": thinking_blocks or None,
        "tool_calls": [calls[i] for i in sorted(calls)] or None,
        "annotations": annotations or None,
    }
    folded["finish_reason"] = [f for f in finishes if f] or None
    return folded


def _parsed(calls: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if calls is None:
        return None
    return [{**c, "function": {**c["function"], "arguments": orjson.loads(c["function"]["arguments"])}} for c in calls]


PARITY_CASES = [(p, None) for p in ALL_STREAMS] + [
    (p, tools[0]["name"]) for p in ALL_STREAMS if (tools := _tool_blocks(claude_events(p))) and p.name != UNTERMINATED
]


@pytest.mark.parametrize(("path", "json_tool"), PARITY_CASES, ids=[f"{p.name}-{j or 'tools'}" for p, j in PARITY_CASES])
def test_stream_and_non_stream_conversions_agree(path: Path, json_tool: str | None) -> None:
    events = claude_events(path)
    message, raw_inputs = fold_claude(events)
    conv = StreamConverter(created=CREATED, model=MODEL, include_usage=True, json_tool=json_tool)
    folded = fold_chunks([c for e in events for c in conv.feed(e)])
    expected = convert_response(message, created=CREATED, model=MODEL, json_tool=json_tool)
    [choice] = expected["choices"]
    want, got = choice["message"], folded["message"]
    tools = [b for b in message["content"] if b["type"] == "tool_use"]
    calls = [b for b in tools if b["name"] != json_tool]
    for number, block in enumerate(calls):
        raw = raw_inputs[block["id"]]
        if raw and not _is_json(raw):  # the input cut by max_tokens: streamed as it came; no message holds it
            assert path.name == UNTERMINATED
            assert got["tool_calls"][number]["function"]["arguments"] == raw
            got["tool_calls"][number]["function"]["arguments"] = "{}"
    for block in tools:
        if block["name"] == json_tool:  # the answer is the JSON as the model wrote it, whitespace and all
            compact = orjson.dumps(block["input"]).decode()
            want["content"] = want["content"].replace(compact, raw_inputs[block["id"]] or compact, 1)
    assert folded["id"] == expected["id"]
    assert folded["model"] == expected["model"]
    assert got["content"] == (want["content"] or None)
    assert got["reasoning_content"] == (want.get("reasoning_content") or None)
    assert got["thinking_blocks"] == want.get("thinking_blocks")
    assert got["annotations"] == want.get("annotations")
    assert _parsed(got["tool_calls"]) == _parsed(want.get("tool_calls"))
    assert folded["finish_reason"] == [choice["finish_reason"]]
    assert (folded["usage"] or conv.usage) == expected["usage"]


def test_usage_chunk_alone_adds_nothing_without_include_usage() -> None:
    assert run(TEXT_EVENTS, usage_chunk=True) == run(TEXT_EVENTS)
    assert run(TEXT_EVENTS, usage_chunk=False) == run(TEXT_EVENTS)
    assert not any("usage" in c for c in run(TEXT_EVENTS, usage_chunk=True))


# --- as the route reads a stream: the relay's pump, the OpenAI route's converted stream -------------


def _by_feed(path: Path, **options: Any) -> list[Any]:
    """A recording through ``feed`` alone, event by event, up to its end."""
    decoder = SSEDecoder()
    events = decoder.feed(path.read_bytes()) + decoder.flush(unterminated=True)
    conv = StreamConverter(created=1, model="m", **options)
    out: list[Any] = []
    for event in events:
        if conv.done:
            break
        out += conv.feed(orjson.loads(event.data))
    return out


def _chat_stream(**options: Any) -> Any:
    from translator.convert import ConvertedRequest
    from translator.server.openai_route import chat_converter
    from translator.server.streaming import ConvertedStream
    from translator.sse import encode_data

    conv = ConvertedRequest(body={}, include_usage=options.pop("include_usage", False),
                            json_tool=options.pop("json_tool", None))
    converter = chat_converter(conv, options.pop("index", 0), created=1, model="m",
                               stream_id=options.pop("stream_id", None))
    return ConvertedStream(converter, encode_data)


def _upstream_stream(reads: list[bytes]) -> Any:
    """An upstream stream as the relay's ``pump`` reads it: the given reads, then its end."""
    pending = reads[::-1]

    async def read() -> bytes:
        return pending.pop() if pending else b""

    return SimpleNamespace(next_events=StreamEvents(read).next, abort=lambda error: None)


def _source(reads: list[bytes]) -> Any:
    upstream = SimpleNamespace(settings=SimpleNamespace(stream_idle_timeout=60.0))
    return SimpleNamespace(upstream=upstream, response=_upstream_stream(reads))


async def _pumped(reads: list[bytes], **options: Any) -> tuple[list[Any], Any]:
    from translator.server.streaming import pump

    stream, written = _chat_stream(**options), []

    async def write(data: bytes) -> None:
        written.append(data)

    end = await pump(_source(reads), stream, write)
    out = b"".join(written) + end
    assert out.endswith(b"\n\n") or not out
    return [orjson.loads(line.removeprefix(b"data: ")) for line in out.split(b"\n\n") if line], stream.converter


def _route_chunks(data: bytes, pieces: int | None, **options: Any) -> tuple[list[Any], StreamConverter]:
    """A recording as the OpenAI route converts it: read in pieces of ``pieces`` bytes (None: at once)."""
    reads = [data] if pieces is None else [data[i : i + pieces] for i in range(0, len(data), pieces)]
    return asyncio.run(_pumped(reads, **options))


def _reads(data: bytes, how: str) -> list[bytes]:
    if how == "by event":  # as a live stream brings them: one event a read
        return [event + b"\n\n" for event in data.split(b"\n\n") if event]
    size = {"bytewise": 1, "7 bytes": 7, "whole": len(data)}[how]
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("how", ["by event", "bytewise", "7 bytes", "whole"])
@pytest.mark.parametrize("options", [{}, {"include_usage": True}, {"index": 2, "stream_id": "chatcmpl-x"},
                                     {"json_tool": "get_weather"}],
                         ids=["plain", "usage", "choice 2", "json tool"])
@pytest.mark.parametrize("path", sorted(STREAMS.glob("*.sse")), ids=lambda p: p.name)
async def test_the_route_pumps_every_recording_as_feed_converts_it(
    path: Path, how: str, options: dict[str, Any]
) -> None:
    expected = _by_feed(path, **options)
    chunks, conv = await _pumped(_reads(path.read_bytes(), how), **options)
    assert chunks == expected  # annotations too: their character offsets count the text as it came
    assert conv.failed == any("error" in c for c in expected)


async def test_a_read_that_goes_on_with_the_line_before_it_is_decoded_not_taken_as_an_event() -> None:
    # The ping's data line has no end when its read ends: the next read continues that line (SSE), so the
    # delta it starts with is no event of its own, and is not taken as one.
    head, ping = _text_stream().removesuffix(b'event: message_stop\ndata: {"type":"message_stop"}\n\n'), (
        b'event: ping\ndata: {"type":"ping"}')
    reads = [head, ping, _delta(b'"lost"') + _delta(b'"a"'), b'event: message_stop\ndata: {"type":"message_stop"}\n\n']
    chunks, _ = await _pumped(reads)
    assert _contents(chunks) == ["", "a"]


def _text_stream(*middle: bytes) -> bytes:
    head = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","model":"m","usage":{}}}\n\n'
            b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
            b'"content_block":{"type":"text","text":""}}\n\n')
    return head + b"".join(middle) + b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def _delta(text: bytes, index: int = 0, pad: bytes = b"") -> bytes:
    return (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
            b'"delta":{"type":"text_delta","text":%s}%s}\n\n' % (index, text, pad))


def _contents(chunks: list[Any]) -> list[Any]:
    return [c["choices"][0]["delta"].get("content") for c in chunks if c.get("choices")]


def test_a_block_index_of_thousands_of_digits_is_reported_not_a_crash() -> None:
    huge = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%s,' % (b"1" * 5000)
    for pad in (b"", b" "):
        event = huge + b'"delta":{"type":"text_delta","text":"a"}%s}\n\n' % pad
        chunks, conv = _route_chunks(_text_stream(_delta(b'"ok"'), event), None)
        assert _contents(chunks) == ["", "ok"] and chunks[-1]["error"]["type"] == "server_error" and conv.failed


@pytest.mark.parametrize("bad", [b'"\\ud800"', b'"\\x"', b'"a\x01b"', b'"\xff"'],
                         ids=["lone surrogate", "bad escape", "control character", "not UTF-8"])
def test_a_string_that_is_not_json_is_reported_after_what_came_before_it(bad: bytes) -> None:
    chunks, conv = _route_chunks(_text_stream(_delta(b'"ok"'), _delta(bad), _delta(b'"never"')), None)
    assert _contents(chunks) == ["", "ok"]  # what came before it still goes out, then the error
    assert chunks[-1]["error"]["type"] == "server_error"
    assert chunks[-1]["error"]["message"].startswith("upstream stream event is not JSON: ") and conv.failed


def test_a_raw_blank_line_inside_a_string_is_reported_not_split_into_two_events() -> None:
    # JSON forbids a raw line feed in a string; cut at its blank line, the halves would join as valid JSON
    chunks, conv = _route_chunks(_text_stream(_delta(b'"ok"'), _delta(b'"abcd\n\n' + b"x" * 120 + b'yz"')), None)
    assert _contents(chunks) == ["", "ok"] and conv._chars == 2
    assert chunks[-1]["error"]["message"].startswith("upstream stream event is not JSON: ") and conv.failed


def test_a_delta_line_inside_another_event_is_not_an_event_of_its_own() -> None:
    # One block with an id line first: SSE reads it as one event (the id ignored); so does the route.
    inner = b"id: 7\n" + _delta(b'"x"')
    chunks, _ = _route_chunks(_text_stream(_delta(b'"a"'), inner, _delta(b'"b"')), None)
    assert _contents(chunks) == ["", "a", "x", "b"]
    # And a data line before it makes the event's data two lines: not JSON, reported as a broken stream.
    chunks, _ = _route_chunks(_text_stream(_delta(b'"a"'), b"data: 1\n" + _delta(b'"x"')), None)
    assert _contents(chunks) == ["", "a"]
    assert chunks[-1]["error"]["message"].startswith("upstream stream event is not JSON: ")


def test_pings_are_skipped_by_their_name_unread() -> None:
    ping = b"event: ping\ndata: {not json\n\n"
    chunks, conv = _route_chunks(_text_stream(ping, _delta(b'"a"'), ping, ping, _delta(b'"b"')), None)
    assert _contents(chunks) == ["", "a", "b"] and conv.done and not any("error" in c for c in chunks)


# Strings a reader that trusted the bytes between two events would misread: each must be one whole JSON
# string, with no line end, no unescaped quote and no escaped closing quote in it.
@pytest.mark.parametrize(("bad", "then"), [
    (b'"c\\"', b'","e"'),  # an escaped closing quote: the next event's bytes would close the string
    (b'"a","b"', b'"c"'),  # two strings in one event (not JSON)
    (b'"a"b"', b'"c"'),  # an unescaped quote inside
    (b'"a', b'"c"'),  # no closing quote at all
    (b'1', b'"c"'),  # not a string
], ids=["escaped quote", "two strings", "inner quote", "unclosed", "number"])
@pytest.mark.parametrize("pieces", [None, 1], ids=["whole", "bytewise"])
def test_a_bad_delta_ends_the_stream_in_an_error_never_a_guess(bad: bytes, then: bytes, pieces: int | None) -> None:
    chunks, conv = _route_chunks(_text_stream(_delta(b'"ok"'), _delta(b'"ok2"'), _delta(bad), _delta(then)), pieces)
    assert _contents(chunks) == ["", "ok", "ok2"]  # what came before it, then the error: never a guess
    assert chunks[-1]["error"]["type"] == "server_error" and conv.failed


def test_braces_quotes_and_escapes_inside_strings_are_text() -> None:
    texts = [b'"}}"', b'"\\\\"', b'"\\"}}\\\\n\\\\n"', b'"event: content_block_delta"', b'"\\u00e9"']
    chunks, conv = _route_chunks(_text_stream(*(_delta(t) for t in texts), _delta(b'""')), None)
    assert _contents(chunks) == ["", *(orjson.loads(t) for t in texts), ""]
    assert conv._chars == sum(len(orjson.loads(t)) for t in texts)


def test_a_big_delta_is_converted_whole() -> None:
    big = _delta(b'"%s"' % (b"y" * 100_000))
    chunks, _ = _route_chunks(_text_stream(big, _delta(b'"z"')), None)
    assert _contents(chunks) == ["", "y" * 100_000, "z"]


def test_an_upstream_failure_mid_stream_is_told_whole_to_the_log_and_without_its_address_to_the_client() -> None:
    """The client's error event says ``<upstream>``; the relay's ``failed`` (the request's log line) gets the
    whole text."""
    from translator.errors import UpstreamUnavailable
    from translator.server.context import RequestContext
    from translator.server.streaming import pump

    head = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","model":"m",'
            b'"usage":{"input_tokens":1}}}\n\n')
    reads = iter([head])

    async def next_events(runs: bool = False) -> Any:
        for data in reads:
            return [SSEEvent(event="message_start", data=data.split(b"data: ")[1].strip(), raw=data, complete=True)]
        raise UpstreamUnavailable("upstream unavailable: ClientOSError: reset by host 10.0.0.5:443")

    source = SimpleNamespace(upstream=SimpleNamespace(settings=SimpleNamespace(stream_idle_timeout=60.0)),
                             response=SimpleNamespace(next_events=next_events, abort=lambda error: None))
    ctx = RequestContext("POST", "/v1/chat/completions")
    written: list[bytes] = []

    async def write(data: bytes) -> None:
        written.append(data)

    end = asyncio.run(pump(source, _chat_stream(), write, ctx.failed_with))  # type: ignore[arg-type]
    out = b"".join(written) + end
    assert b"reset by host <upstream>" in out and b"10.0.0.5" not in out
    assert ctx.error_detail == "upstream unavailable: ClientOSError: reset by host 10.0.0.5:443"
