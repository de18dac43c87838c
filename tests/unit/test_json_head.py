"""``json_head``: the top level of a JSON object, its arrays left unread (the Claude route's relay)."""

from __future__ import annotations

import orjson
import pytest

from translator.errors import InvalidRequest
from translator.server.common import UnreadArray, json_head, json_object


def test_arrays_are_left_unread_and_the_rest_is_python() -> None:
    raw = orjson.dumps({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "stream": True,
        "temperature": 0.5,
        "stop_sequences": ["\n\nHuman:"],
        "metadata": {"user_id": "u-1", "nested": {"a": [1, 2]}},
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
        "tools": [],
        "container": None,
    })
    assert json_head(raw) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "stream": True,
        "temperature": 0.5,
        "stop_sequences": UnreadArray(1),
        "metadata": {"user_id": "u-1", "nested": {"a": [1, 2]}},  # (objects whole, as plain Python values)
        "system": UnreadArray(1),
        "messages": UnreadArray(2),
        "tools": UnreadArray(0),
        "container": None,
    }
    assert type(json_head(raw)["metadata"]["nested"]["a"]) is list


def test_a_large_image_body_is_read_only_at_its_top_level() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 4_000_000}}
    raw = orjson.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [image]}]})
    assert json_head(raw) == {"model": "m", "max_tokens": 5, "messages": UnreadArray(1)}


def test_what_simdjson_cannot_hold_is_parsed_whole_as_every_route_parses_it() -> None:
    raw = b'{"model": "m", "max_tokens": 123456789012345678901234567890, "messages": []}'  # past 64 bits
    assert json_head(raw) == {"model": "m", "max_tokens": 1.2345678901234568e29, "messages": UnreadArray(0)}


def test_a_top_level_key_given_twice_is_refused() -> None:
    # The bytes go upstream as sent: a key allowed only haiku must not pass a check on one "model" while the
    # upstream reads the other.
    raw = b'{"model": "claude-opus-4-6", "messages": [], "model": "claude-haiku-4-5", "stream": 1, "stream": 2}'
    with pytest.raises(InvalidRequest, match=r"^request body has a top-level key more than once: model, stream$"):
        json_head(raw)
    assert json_head(b'{"model": "m", "metadata": {"a": 1}, "messages": [{"a": 1, "a": 2}]}')["model"] == "m"


@pytest.mark.parametrize(("raw", "message"), [
    (b'{"model": "m",', "request body is not valid JSON: "),
    (b"", "request body is not valid JSON: "),
    (b'{"text": "\xff"}', "request body is not valid JSON: "),
    (b"[1, 2]", "request body must be a JSON object"),
    (b'"text"', "request body must be a JSON object"),
    (b"42", "request body must be a JSON object"),
])
def test_bad_bodies_get_the_same_400_as_a_whole_parse(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest) as head_error:
        json_head(raw)
    with pytest.raises(InvalidRequest) as whole_error:
        json_object(raw)
    assert str(head_error.value).startswith(message)
    assert str(head_error.value) == str(whole_error.value)


def test_a_key_with_a_nul_character_is_read_like_any_other() -> None:
    """simdjson cannot look such a key up (found by the fuzz test: a 500 on the Claude route)."""
    assert json_head(b'{"\\u0000": null, "a\\u0000b": [1, 2], "model": "m"}') == {
        "\0": None, "a\0b": UnreadArray(2), "model": "m"}
