"""Automatic prompt caching (``translator.convert.caching``): the exact breakpoints, per case."""

from __future__ import annotations

import copy
import hashlib
import tracemalloc
from typing import Any

import orjson
import pytest

from translator.convert import caching
from translator.convert.caching import (
    ANCHOR_GAP,
    CHARS_PER_TOKEN,
    cache_ttl,
    has_breakpoints,
    measure,
    place_breakpoints,
)
from translator.errors import InvalidRequest

MIN = 1024
EPHEMERAL = {"type": "ephemeral"}
LONG = "All work and no play makes a dull prompt. " * 120  # about 5,000 characters: over 1,024 tokens
SHORT = "Be brief."


def text(value: str, **extra: Any) -> dict[str, Any]:
    return {"type": "text", "text": value, **extra}


def tool(name: str, description: str = "A tool.", **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": description, "input_schema": {"type": "object", "properties": {}}, **extra}


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def call(n: int) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{n}", "name": "search", "input": {"q": str(n)}}


def result(n: int) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": f"toolu_{n}", "content": f"result {n}"}


def request(**fields: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 1024, **fields}


def place(body: dict[str, Any], *, seen: tuple[str, ...] = (), min_tokens: int = MIN, ttl: Any = "5m") -> list[str]:
    prefixes = measure(body, min_tokens=min_tokens)
    keys = {"stable": prefixes.stable_key, "prompt": prefixes.prompt_key}
    return place_breakpoints(body, prefixes, seen={keys[k] for k in seen}, ttl=ttl)


CHAT = [user(text("Hello")), assistant(text("Hi.")), user(text("And now?"))]


def test_system_only_conversation_marks_system_end_and_last_block() -> None:
    body = request(system=[text(SHORT), text(LONG)], messages=copy.deepcopy(CHAT))
    assert place(body) == [
        "prompt cache breakpoint on system[1] (the end of tools and system)",
        "prompt cache breakpoint on messages[2].content[0] (the conversation's last block)",
    ]
    assert body["system"] == [text(SHORT), text(LONG, cache_control=EPHEMERAL)]
    assert body["messages"] == [user(text("Hello")), assistant(text("Hi.")),
                                user(text("And now?", cache_control=EPHEMERAL))]


def test_tools_only_mark_the_last_tool() -> None:
    tools = [tool("a", LONG), tool("b")]
    body = request(tools=copy.deepcopy(tools), messages=copy.deepcopy(CHAT))
    assert place(body) == [
        "prompt cache breakpoint on tools[1] (the end of the tools)",
        "prompt cache breakpoint on messages[2].content[0] (the conversation's last block)",
    ]
    assert body["tools"] == [tools[0], tool("b", cache_control=EPHEMERAL)]


def test_tools_and_system_mark_the_system_end_only() -> None:
    """One breakpoint at the end of the stable prefix: the system's last block covers the tools before it."""
    tools = [tool("a", LONG), tool("b")]
    body = request(tools=copy.deepcopy(tools), system=[text(SHORT)], messages=copy.deepcopy(CHAT))
    assert place(body)[0] == "prompt cache breakpoint on system[0] (the end of tools and system)"
    assert body["tools"] == tools
    assert body["system"] == [text(SHORT, cache_control=EPHEMERAL)]


def test_single_turn_unseen_is_left_alone() -> None:
    """A prefix seen once is not worth a write (1.25x): neither the system nor the prompt is marked."""
    body = request(system=[text(LONG)], messages=[user(text("Question one?"))])
    before = copy.deepcopy(body)
    assert place(body) == []
    assert body == before


def test_single_turn_with_a_stable_prefix_seen_marks_the_system() -> None:
    body = request(system=[text(LONG)], messages=[user(text("Question two?"))])
    assert place(body, seen=("stable",)) == ["prompt cache breakpoint on system[0] (the end of tools and system)"]
    assert body["messages"] == [user(text("Question two?"))]


def test_single_turn_with_the_whole_prompt_seen_marks_its_last_block() -> None:
    body = request(messages=[user(text(LONG))])
    assert place(body, seen=("prompt",)) == [
        "prompt cache breakpoint on messages[0].content[0] (the conversation's last block)"]


def test_below_the_minimum_nothing_is_marked() -> None:
    body = request(system=[text(SHORT)], messages=copy.deepcopy(CHAT))
    assert measure(body, min_tokens=MIN).total_tokens < MIN
    assert place(body, seen=("stable", "prompt")) == []
    assert "cache_control" not in str(body)


def test_a_short_stable_prefix_with_a_long_history_marks_the_history_only() -> None:
    body = request(system=[text(SHORT)], messages=[user(text(LONG)), assistant(text("Ok.")), user(text("More?"))])
    assert place(body) == ["prompt cache breakpoint on messages[2].content[0] (the conversation's last block)"]
    assert body["system"] == [text(SHORT)]


def test_the_minimum_is_the_models() -> None:
    """The same request, under a 4,096-token minimum (Haiku 4.5, Opus 4.5): not cached."""
    body = request(system=[text(LONG)], messages=copy.deepcopy(CHAT))
    assert 1024 <= measure(body, min_tokens=MIN).total_tokens < 4096
    assert place(copy.deepcopy(body), min_tokens=4096) == []
    assert len(place(body, min_tokens=1024)) == 2


def tool_loop(turns: int, calls_per_turn: int) -> list[dict[str, Any]]:
    """A task, then per turn an assistant calling tools and a user turn of their results."""
    messages = [user(text("Do the task."))]
    n = 0
    for _ in range(turns):
        calls = [call(n + i) for i in range(calls_per_turn)]
        messages += [assistant(*calls), user(*[result(n + i) for i in range(calls_per_turn)])]
        n += calls_per_turn
    return messages


def test_tool_loop_within_the_lookback_marks_the_last_block() -> None:
    body = request(system=[text(LONG)], messages=tool_loop(12, 1))
    assert place(body) == [
        "prompt cache breakpoint on system[0] (the end of tools and system)",
        "prompt cache breakpoint on messages[24].content[0] (the conversation's last block)",
    ]


def test_tool_loop_past_the_lookback_adds_the_previous_turns_end() -> None:
    """The last turn called 10 tools: 20 blocks since the previous request's breakpoint, past what Claude's
    lookback finds, so that breakpoint is marked again (a read) besides the new last block (a write)."""
    body = request(system=[text(LONG)], messages=tool_loop(3, 10))
    assert place(body) == [
        "prompt cache breakpoint on system[0] (the end of tools and system)",
        "prompt cache breakpoint on messages[4].content[9] (the previous turn's end, beyond the lookback)",
        "prompt cache breakpoint on messages[6].content[9] (the conversation's last block)",
    ]
    assert body["messages"][4]["content"][9] == {**result(19), "cache_control": EPHEMERAL}
    assert body["messages"][6]["content"][9] == {**result(29), "cache_control": EPHEMERAL}
    assert str(body).count("cache_control") == 3


def test_the_anchor_starts_at_its_gap() -> None:
    just_under = tool_loop(2, (ANCHOR_GAP - 1) // 2)  # (the last turn: calls and results, gap 2 x calls)
    at = tool_loop(2, ANCHOR_GAP // 2)
    assert len(place(request(system=[text(LONG)], messages=just_under))) == 2
    assert len(place(request(system=[text(LONG)], messages=at))) == 3


def test_thinking_is_never_marked() -> None:
    """Thinking blocks take no cache_control: the last block that does is marked."""
    signed = {"type": "thinking", "thinking": "Hm.", "signature": "sig"}
    body = request(system=[text(LONG)], messages=[user(text("Go.")), assistant(signed, call(1)),
                                                  user(result(1)), assistant(signed)])
    assert place(body)[-1] == "prompt cache breakpoint on messages[2].content[0] (the conversation's last block)"
    assert body["messages"][3] == assistant(signed)


def test_claude_string_shapes_become_blocks_where_marked() -> None:
    body = request(system=LONG, messages=[{"role": "user", "content": "Hello"},
                                          {"role": "assistant", "content": "Hi."},
                                          {"role": "user", "content": "Again"}])
    assert len(place(body)) == 2
    assert body["system"] == [text(LONG, cache_control=EPHEMERAL)]
    assert body["messages"][0]["content"] == "Hello"
    assert body["messages"][2]["content"] == [text("Again", cache_control=EPHEMERAL)]


def test_one_hour_ttl() -> None:
    body = request(system=[text(LONG)], messages=copy.deepcopy(CHAT))
    assert place(body, ttl="1h") == [
        "prompt cache breakpoint on system[0] (the end of tools and system), ttl 1h",
        "prompt cache breakpoint on messages[2].content[0] (the conversation's last block), ttl 1h",
    ]
    assert body["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


@pytest.mark.parametrize("body", [
    request(cache_control=EPHEMERAL, messages=CHAT),
    request(tools=[tool("a", cache_control=EPHEMERAL)], messages=CHAT),
    request(system=[text(LONG, cache_control=EPHEMERAL)], messages=CHAT),
    request(messages=[user(text("Hi", cache_control=EPHEMERAL))]),
    request(messages=[user({**result(1), "content": [text("r", cache_control=EPHEMERAL)]})]),
], ids=["top-level", "tool", "system", "message block", "inside a tool result"])
def test_the_clients_own_breakpoints_are_seen(body: dict[str, Any]) -> None:
    assert has_breakpoints(body)


def test_no_breakpoints_of_the_clients() -> None:
    assert not has_breakpoints(request(system=[text(LONG)], tools=[tool("a")], messages=tool_loop(2, 2)))


def test_keys_do_not_depend_on_the_markers_placed() -> None:
    body = request(system=[text(LONG)], messages=[user(text(LONG))])
    before = measure(body, min_tokens=MIN)
    place(body, seen=("stable", "prompt"))
    assert str(body).count("cache_control") == 2
    after = measure({**body, "system": [text(LONG)], "messages": [user(text(LONG))]}, min_tokens=MIN)
    assert (before.stable_key, before.prompt_key) == (after.stable_key, after.prompt_key)


def test_keys_name_the_model_and_the_prefix() -> None:
    one = measure(request(system=[text(LONG)], messages=[user(text("A"))]), min_tokens=MIN)
    other_question = measure(request(system=[text(LONG)], messages=[user(text("B"))]), min_tokens=MIN)
    other_model = measure({**request(system=[text(LONG)], messages=[user(text("A"))]), "model": "claude-opus-4-1"},
                          min_tokens=MIN)
    assert one.stable_key == other_question.stable_key != other_model.stable_key
    assert one.prompt_key != other_question.prompt_key


def test_estimate_and_lookups() -> None:
    body = request(system=[text(LONG)], messages=[user(text("Q"))])
    prefixes = measure(body, min_tokens=MIN)
    assert prefixes.stable_tokens == len(b'"claude-sonnet-4-5"\0null\0' + f'[{{"type":"text","text":"{LONG}"}}]'
                                         .encode()) // CHARS_PER_TOKEN
    assert prefixes.lookups() == [prefixes.stable_key, prefixes.prompt_key]
    assert None not in prefixes.lookups()
    assert measure(body, min_tokens=10**6).lookups() == []  # too short to be cached: not even hashed
    conversation = measure(request(system=[text(LONG)], messages=CHAT), min_tokens=MIN)
    assert conversation.prompt_key is None
    assert conversation.lookups() == [conversation.stable_key]  # a conversation caches without asking


@pytest.mark.parametrize(("retention", "takes_1h", "expected"), [
    (None, True, ("5m", [])),
    ("in_memory", True, ("5m", [])),
    ("24h", True, ("1h", [])),
    ("24h", False, ("5m", ["prompt_cache_retention 24h: the model takes only the 5-minute cache TTL"])),
])
def test_retention(retention: object, takes_1h: bool, expected: Any) -> None:
    assert cache_ttl(retention, takes_1h=takes_1h) == expected


@pytest.mark.parametrize("retention", ["forever", 24, {"ttl": "1h"}])
def test_retention_wrong(retention: object) -> None:
    with pytest.raises(InvalidRequest) as info:
        cache_ttl(retention, takes_1h=True)
    assert info.value.param == "prompt_cache_retention"


@pytest.mark.parametrize("body", [
    {"model": "m", "system": 7, "tools": "x", "messages": [None, 3, {"role": "user"}]},
    {"model": "m", "system": [None, "s"], "tools": [1, None], "messages": [{"role": "user", "content": [1, None]}]},
    {"model": "m", "messages": [{"role": "assistant", "content": ""}, {"role": "user", "content": LONG}]},
    {"model": "m", "system": "", "messages": "not a list"},
    {"model": "m", "messages": [{"role": "user", "content": [text(LONG)]}, "junk", {"role": "assistant"},
                                {"role": "user", "content": [text("x")]}]},
], ids=["wrong types", "lists of junk", "empty strings", "messages not a list", "junk between turns"])
def test_odd_shapes_never_crash(body: dict[str, Any]) -> None:
    """The Claude route's bodies are the client's (only ``messages`` being a list is checked): whatever
    their shape, placing breakpoints never raises, and marks only blocks that are objects."""
    assert not has_breakpoints(body)
    for seen in ((), ("stable", "prompt")):
        trial = copy.deepcopy(body)
        placed = place(trial, seen=seen, min_tokens=1)
        assert str(trial).count("cache_control") == len(placed)


def image(data: str) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}


def test_an_image_counts_by_its_base64_length_as_in_the_json() -> None:
    """Base64 data is left out of what is serialized, yet the estimate is the whole JSON's, as before."""
    data = "iVBORw0KGgo" * 500
    messages = [user(text("What is this?"), image(data)),
                assistant(call(1)), user({**result(1), "content": [image(data[::-1]), text("done")]})]
    body = request(system=[text(SHORT)], messages=messages)
    before = copy.deepcopy(body)
    prefixes = measure(body, min_tokens=MIN)
    assert prefixes.total_tokens == prefixes.stable_tokens + len(orjson.dumps(messages)) // CHARS_PER_TOKEN
    assert body == before


def test_two_images_give_two_prompt_keys() -> None:
    """The data is not in the hashed JSON: it is hashed apart, so that images of one size still differ."""
    one, other = "A" * 8000, "A" * 7999 + "B"
    keys = [measure(request(messages=[user(text("Q"), image(data))]), min_tokens=MIN).prompt_key
            for data in (one, other, "".join(["A"] * 8000))]
    assert None not in keys
    assert keys[0] != keys[1]
    assert keys[0] == keys[2]  # (an equal string, not the same object)
    swapped = [measure(request(messages=[user(image(a), image(b))]), min_tokens=MIN).prompt_key
               for a, b in ((one, other), (other, one))]
    assert swapped[0] != swapped[1]


def test_a_text_prompts_key_is_the_hash_of_its_json() -> None:
    """The keys of a request without base64 data are the same as before the data was left out (a memory of
    recent prefixes, in Redis, outlives an upgrade)."""
    body = request(system=[text(SHORT)], messages=[user(text(LONG))])
    stable = b'"claude-sonnet-4-5"\0null\0' + orjson.dumps(body["system"])
    expected = hashlib.sha256(b"prompt\0" + stable + b"\0" + orjson.dumps(body["messages"])).hexdigest()
    assert measure(body, min_tokens=MIN).prompt_key == expected


def test_a_big_image_body_is_not_serialized(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bench's 10 MB request (5 base64 images): caching serializes a few hundred bytes of it, and
    allocates less than a quarter of it at once (one image's bytes, while they are hashed)."""
    data = "QUJD" * (2 * 1024 * 1024 // 4)
    body = request(messages=[user(text("What is in these images?"), *[image(data) for _ in range(5)])])
    written: list[int] = []
    dumps = orjson.dumps

    def counting_dumps(value: Any) -> bytes:
        written.append(len(out := dumps(value)))
        return out

    monkeypatch.setattr(caching.orjson, "dumps", counting_dumps)
    tracemalloc.start()
    try:
        prefixes = measure(body, min_tokens=MIN)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert prefixes.total_tokens > 5 * len(data) // CHARS_PER_TOKEN
    assert prefixes.prompt_key is not None
    assert max(written) < 1000
    assert peak < 5 * len(data) / 4


def test_a_conversation_with_a_long_stable_prefix_is_not_serialized(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its tools and system reach the minimum: so does the whole prompt, and a conversation has no prompt key.
    Only the stable prefix is serialized."""
    body = request(system=[text(LONG)], messages=tool_loop(50, 2))
    written: list[Any] = []
    dumps = orjson.dumps
    monkeypatch.setattr(caching.orjson, "dumps", lambda value: written.append(value) or dumps(value))
    prefixes = measure(body, min_tokens=MIN)
    assert body["messages"] not in written
    assert (prefixes.stable_cacheable, prefixes.prompt_cacheable, prefixes.lookups()) == (
        True, True, [prefixes.stable_key])
    assert len(place(body)) == 2  # the system, the last block


def test_the_clients_own_breakpoints_stop_the_measuring() -> None:
    body = request(system=[text(LONG)], messages=[user(text(LONG, cache_control=EPHEMERAL))])
    prefixes = measure(body, min_tokens=MIN)
    assert prefixes.clients_own
    assert (prefixes.placeable, prefixes.lookups()) == (False, [])
    assert place_breakpoints(body, prefixes, seen=set()) == []
