"""OpenAI ``messages`` -> Claude ``system`` + ``messages`` (``translator.convert.messages``).

Each case asserts the whole (system, messages) pair; each error case the exact status and param.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from translator.convert.messages import convert_messages
from translator.errors import InvalidRequest

JSONObject = dict[str, Any]

PNG_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
PDF_B64 = base64.b64encode(b"%PDF-1.4 fake").decode()
TXT_B64 = base64.b64encode("plain text, caf\u00e9".encode()).decode()


def text(value: str, **extra: Any) -> JSONObject:
    return {"type": "text", "text": value, **extra}


def user(*blocks: JSONObject) -> JSONObject:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: JSONObject) -> JSONObject:
    return {"role": "assistant", "content": list(blocks)}


def call(call_id: str, name: str, arguments: Any) -> JSONObject:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def tool_use(call_id: str, name: str, input_: JSONObject) -> JSONObject:
    return {"type": "tool_use", "id": call_id, "name": name, "input": input_}


def tool_result(call_id: str, content: Any = None) -> JSONObject:
    block: JSONObject = {"type": "tool_result", "tool_use_id": call_id}
    if content is not None:
        block["content"] = content
    return block


HI = {"role": "user", "content": "Hi"}

CASES: list[tuple[str, list[JSONObject], list[JSONObject], list[JSONObject]]] = [
    # (id, OpenAI messages, Claude system, Claude messages)
    ("user string", [HI], [], [user(text("Hi"))]),
    (
        "user part array",
        [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
        [],
        [user(text("a"), text("b"))],
    ),
    (
        "empty text parts and empty messages carry nothing",
        [
            {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "a"}]},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": ""},
            {"role": "user", "content": None},
        ],
        [],
        [user(text("a"))],
    ),
    (
        "system hoisted",
        [{"role": "system", "content": "Be brief."}, HI],
        [text("Be brief.")],
        [user(text("Hi"))],
    ),
    (
        "developer hoisted",
        [{"role": "developer", "content": "Be kind."}, HI],
        [text("Be kind.")],
        [user(text("Hi"))],
    ),
    (
        "several system and developer messages stay separate blocks, in order, wherever they are",
        [
            {"role": "system", "content": "One."},
            {"role": "developer", "content": [{"type": "text", "text": "Two."}, {"type": "text", "text": "Three."}]},
            HI,
            {"role": "system", "content": "Four."},
            {"role": "user", "content": "Again"},
        ],
        [text("One."), text("Two."), text("Three."), text("Four.")],
        [user(text("Hi"), text("Again"))],
    ),
    (
        "system part keeps cache_control; an empty system part is dropped",
        [
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": "Long rules", "cache_control": {"type": "ephemeral"}},
                    {"type": "text", "text": ""},
                ],
            },
            HI,
        ],
        [text("Long rules", cache_control={"type": "ephemeral"})],
        [user(text("Hi"))],
    ),
    (
        "consecutive user messages merge into one turn",
        [HI, {"role": "user", "content": "there"}],
        [],
        [user(text("Hi"), text("there"))],
    ),
    (
        "consecutive assistant messages merge into one turn",
        [HI, {"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}],
        [],
        [user(text("Hi")), assistant(text("a"), text("b"))],
    ),
    (
        "assistant refusal part is text to the model",
        [HI, {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]}, HI],
        [],
        [user(text("Hi")), assistant(text("I can't.")), user(text("Hi"))],
    ),
    (
        "assistant tool_calls -> tool_use; tool messages -> one user turn of tool_result blocks, then text",
        [
            HI,
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [call("c1", "weather", '{"city": "Paris"}'), call("c2", "time", "")],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "c2", "content": "noon"},
            {"role": "user", "content": "Thanks"},
        ],
        [],
        [
            user(text("Hi")),
            assistant(
                text("Checking."), tool_use("c1", "weather", {"city": "Paris"}), tool_use("c2", "time", {})
            ),
            user(tool_result("c1", "sunny"), tool_result("c2", "noon"), text("Thanks")),
        ],
    ),
    (
        "tool_result blocks lead the user turn even when the user text came first",
        [
            HI,
            {"role": "assistant", "content": None, "tool_calls": [call("c1", "f", "{}")]},
            {"role": "user", "content": "also this"},
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
        ],
        [],
        [user(text("Hi")), assistant(tool_use("c1", "f", {})), user(tool_result("c1", "done"), text("also this"))],
    ),
    (
        "tool arguments: missing -> {}, an object passes, JSON text is parsed",
        [
            HI,
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f"}},
                    call("c2", "g", {"x": 1}),
                    call("c3", "h", '{"nested": {"a": [1, 2]}}'),
                ],
            },
        ],
        [],
        [
            user(text("Hi")),
            assistant(
                tool_use("c1", "f", {}), tool_use("c2", "g", {"x": 1}), tool_use("c3", "h", {"nested": {"a": [1, 2]}})
            ),
        ],
    ),
    (
        "tool result content: empty string -> no content; parts -> blocks",
        [
            HI,
            {"role": "assistant", "tool_calls": [call("c1", "f", ""), call("c2", "g", "")]},
            {"role": "tool", "tool_call_id": "c1", "content": ""},
            {
                "role": "tool",
                "tool_call_id": "c2",
                "content": [
                    {"type": "text", "text": "chart:"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                ],
            },
        ],
        [],
        [
            user(text("Hi")),
            assistant(tool_use("c1", "f", {}), tool_use("c2", "g", {})),
            user(
                tool_result("c1"),
                tool_result(
                    "c2",
                    [
                        text("chart:"),
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                    ],
                ),
            ),
        ],
    ),
    (
        "legacy function_call and function role results pair by name, in order",
        [
            HI,
            {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": '{"a": 1}'}},
            {"role": "function", "name": "f", "content": "one"},
            {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": ""}},
            {"role": "function", "name": "f", "content": "two"},
        ],
        [],
        [
            user(text("Hi")),
            assistant(tool_use("call_legacy_1", "f", {"a": 1})),
            user(tool_result("call_legacy_1", "one")),
            assistant(tool_use("call_legacy_2", "f", {})),
            user(tool_result("call_legacy_2", "two")),
        ],
    ),
    (
        "images: data URL -> base64 source, http(s) URL -> url source, legacy string form, cache_control kept",
        [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
                    {"type": "image_url", "image_url": "http://example.com/b.gif"},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:IMAGE/WEBP;base64,{PNG_B64}"},
                        "cache_control": {"type": "ephemeral"},
                    },
                ],
            }
        ],
        [],
        [
            user(
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
                {"type": "image", "source": {"type": "url", "url": "http://example.com/b.gif"}},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/webp", "data": PNG_B64},
                    "cache_control": {"type": "ephemeral"},
                },
            )
        ],
    ),
    (
        "image/jpg (non-standard, accepted by OpenAI) -> image/jpeg",
        [user({"type": "image_url", "image_url": {"url": f"data:image/jpg;base64,{PNG_B64}"}})],
        [],
        [user({"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG_B64}})],
    ),
    (
        "file parts: PDF data URL, bare base64 PDF, text/plain data URL, bare base64 .TXT",
        [
            {
                "role": "user",
                "content": [
                    {"type": "file", "file": {
                        "filename": "a.pdf", "file_data": f"data:application/pdf;base64,{PDF_B64}"
                    }},
                    {"type": "file", "file": {"file_data": PDF_B64}},
                    {"type": "file", "file": {"filename": "n.txt", "file_data": f"data:text/plain;base64,{TXT_B64}"}},
                    {"type": "file", "file": {"filename": "NOTES.TXT", "file_data": TXT_B64}},
                    {"type": "text", "text": "Summarize."},
                ],
            }
        ],
        [],
        [
            user(
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64},
                    "title": "a.pdf",
                },
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64}},
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "plain text, caf\u00e9"},
                    "title": "n.txt",
                },
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "plain text, caf\u00e9"},
                    "title": "NOTES.TXT",
                },
                text("Summarize."),
            )
        ],
    ),
]

CASES += [
    (
        "whitespace-only text is dropped everywhere (Claude refuses text without non-whitespace)",
        [
            {"role": "system", "content": " "},
            {"role": "developer", "content": [{"type": "text", "text": "\n"}, {"type": "text", "text": "Rules."}]},
            {"role": "user", "content": "  \n"},
            {"role": "user", "content": [{"type": "text", "text": " "}, {"type": "text", "text": "Hi"}]},
            {"role": "assistant", "content": "\t", "tool_calls": [call("c1", "f", "{}")]},
            {"role": "tool", "tool_call_id": "c1", "content": "  "},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "  "}]},
        ],
        [text("Rules.")],
        [user(text("Hi")), assistant(tool_use("c1", "f", {})),
         {"role": "user", "content": [tool_result("c1"), tool_result("c2")]}],
    ),
    (
        "tool ids from other providers are rewritten to Claude's alphabet, in the call and its result alike",
        [HI, {"role": "assistant", "tool_calls": [call("functions.get:0", "get", "{}")]},
         {"role": "tool", "tool_call_id": "functions.get:0", "content": "ok"}],
        [],
        [user(text("Hi")), assistant(tool_use("functions_get_0", "get", {})),
         {"role": "user", "content": [tool_result("functions_get_0", "ok")]}],
    ),
]

CASES += [
    (
        "an id holding a space or a line end is rewritten too (the ids are checked all at once, joined by spaces)",
        [HI, {"role": "assistant", "tool_calls": [call("call 1", "f", "{}"), call("ok_2", "f", "{}"),
                                                  call("end\n", "f", "{}")]},
         {"role": "tool", "tool_call_id": "call 1", "content": "a"},
         {"role": "tool", "tool_call_id": "ok_2", "content": "b"},
         {"role": "tool", "tool_call_id": "end\n", "content": "c"}],
        [],
        [user(text("Hi")),
         assistant(tool_use("call_1", "f", {}), tool_use("ok_2", "f", {}), tool_use("end_", "f", {})),
         {"role": "user", "content": [tool_result("call_1", "a"), tool_result("ok_2", "b"), tool_result("end_", "c")]}],
    ),
    (
        "two ids that rewrite alike stay apart, and never take an id another call already has",
        [HI, {"role": "assistant", "tool_calls": [call("call.1", "f", "{}"), call("call:1", "f", "{}"),
                                                  call("call_1", "f", "{}")]},
         {"role": "tool", "tool_call_id": "call:1", "content": "b"},
         {"role": "tool", "tool_call_id": "call.1", "content": "a"},
         {"role": "tool", "tool_call_id": "call_1", "content": "c"}],
        [],
        [user(text("Hi")),
         assistant(tool_use("call_1_2", "f", {}), tool_use("call_1_3", "f", {}), tool_use("call_1", "f", {})),
         {"role": "user", "content": [tool_result("call_1_3", "b"), tool_result("call_1_2", "a"),
                                      tool_result("call_1", "c")]}],
    ),
]


@pytest.mark.parametrize(("messages", "system", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_convert_messages(messages: list[JSONObject], system: list[JSONObject], expected: list[JSONObject]) -> None:
    assert convert_messages(messages) == (system, expected)


def test_thinking_blocks_go_back_byte_identical_before_text_and_tool_use() -> None:
    signed = {"type": "thinking", "thinking": "Let me look.", "signature": "EqQBCkYIBxgCKkB+sig=="}
    redacted = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT"}
    msgs = [
        HI,
        {
            "role": "assistant",
            "content": "Looking.",
            "reasoning_content": "Let me look.",  # the readable copy; the signed blocks are what Claude checks
            "thinking_blocks": [signed, redacted],
            "tool_calls": [call("toolu_1", "f", "{}")],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "ok"},
    ]
    system, turns = convert_messages(msgs)
    assert (system, turns) == (
        [],
        [
            user(text("Hi")),
            assistant(signed, redacted, text("Looking."), tool_use("toolu_1", "f", {})),
            user(tool_result("toolu_1", "ok")),
        ],
    )
    sent = orjson.dumps(turns[1]["content"][:2])
    assert sent == orjson.dumps([signed, redacted])  # same keys, same order, same bytes


ERRORS: list[tuple[str, Any, str, str]] = [
    # (id, messages, param, a phrase the message must hold)
    ("missing", None, "messages", "non-empty array"),
    ("empty", [], "messages", "non-empty array"),
    ("only system", [{"role": "system", "content": "rules"}], "messages", "no user or assistant content"),
    ("not an object", ["hi"], "messages[0]", "must be an object"),
    ("unknown role", [{"role": "bot", "content": "x"}], "messages[0].role", "'bot' is not a known role"),
    ("content not string or parts", [{"role": "user", "content": 5}], "messages[0].content", "array of content parts"),
    (
        "image part in system",
        [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}, HI],
        "messages[0].content[0]",
        "text part",
    ),
    (
        "unknown part type",
        [{"role": "user", "content": [{"type": "video", "video": {}}]}],
        "messages[0].content[0].type",
        "'video' is not supported",
    ),
    (
        "audio input",
        [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}],
        "messages[0].content[0].input_audio",
        "audio input",
    ),
    (
        "image type not supported",
        [user({"type": "image_url", "image_url": {"url": "data:image/svg+xml;base64,PHN2Zz4="}})],
        "messages[0].content[0].image_url.url",
        "'image/svg+xml' is not supported",
    ),
    (
        "image data URL not base64",
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}]}],
        "messages[0].content[0].image_url.url",
        "base64 data URL",
    ),
    (
        "image URL scheme",
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/a.png"}}]}],
        "messages[0].content[0].image_url.url",
        "data: or http(s)",
    ),
    (
        "file by id",
        [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}],
        "messages[0].content[0].file.file_id",
        "file_id",
    ),
    (
        "file type not a document",
        [{"role": "user", "content": [{"type": "file", "file": {"file_data": f"data:image/png;base64,{PNG_B64}"}}]}],
        "messages[0].content[0].file.file_data",
        "'image/png' is not supported",
    ),
    (
        "text file not UTF-8 base64",
        [{"role": "user", "content": [{"type": "file", "file": {"filename": "a.txt", "file_data": "!!!"}}]}],
        "messages[0].content[0].file.file_data",
        "nor base64 UTF-8 text",
    ),
    (
        "invalid argument JSON names the message",
        [HI, {"role": "assistant", "tool_calls": [call("c1", "f", '{"city": "Par')]}],
        "messages[1].tool_calls[0].function.arguments",
        "messages[1].tool_calls[0].function.arguments is not valid JSON",
    ),
    (
        "arguments JSON that is not an object",
        [HI, {"role": "assistant", "tool_calls": [call("c1", "f", "[1, 2]")]}],
        "messages[1].tool_calls[0].function.arguments",
        "must be a JSON object",
    ),
    (
        "arguments null",
        [HI, {"role": "assistant", "tool_calls": [call("c1", "f", "null")]}],
        "messages[1].tool_calls[0].function.arguments",
        "must be a JSON object",
    ),
    (
        "tool call without id",
        [HI, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": ""}}]}],
        "messages[1].tool_calls[0].id",
        "non-empty string",
    ),
    (
        "tool call without name",
        [HI, {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"arguments": ""}}]}],
        "messages[1].tool_calls[0].function.name",
        "must be a string",
    ),
    (
        "tool_calls not an array",
        [HI, {"role": "assistant", "tool_calls": {"id": "c1"}}],
        "messages[1].tool_calls",
        "must be an array",
    ),
    (
        "tool message without tool_call_id",
        [HI, {"role": "tool", "content": "x"}],
        "messages[1].tool_call_id",
        "non-empty string",
    ),
    (
        "function message without a function_call",
        [HI, {"role": "function", "name": "f", "content": "x"}],
        "messages[1].name",
        "follows no function_call",
    ),
    (
        "an image in an assistant turn (OpenAI allows text and refusal parts there, Claude no images)",
        [HI, {"role": "assistant", "content": [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}]}],
        "messages[1].content[0]",
        "must be a text part",
    ),
    (
        "thinking_blocks of another type",
        [HI, {"role": "assistant", "content": "x", "thinking_blocks": [{"type": "text", "text": "x"}]}],
        "messages[1].thinking_blocks",
        "thinking or redacted_thinking",
    ),
]


# Errors deep in a message, each named in full (their paths are put together on the way out): the param,
# and the message's whole text.
PLACED: list[tuple[str, Any, str, str]] = [
    ("second call's arguments", [HI, {"role": "assistant", "tool_calls": [
        {"id": "a", "function": {"name": "f", "arguments": "{}"}},
        {"id": "b", "function": {"name": "g", "arguments": "[1]"}}]}],
     "messages[1].tool_calls[1].function.arguments",
     "messages[1].tool_calls[1].function.arguments must be a JSON object"),
    ("legacy call's arguments", [HI, {"role": "assistant", "function_call": {"name": "f", "arguments": "{"}}],
     "messages[1].function_call.function.arguments",
     "messages[1].function_call.function.arguments is not valid JSON: "),
    ("function result without a call", [{"role": "function", "name": "f", "content": "x"}],
     "messages[0].name", "messages[0]: a function message for 'f' follows no function_call of that name"),
    ("second part's image type", [{"role": "user", "content": [
        {"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AA"}}]}],
     "messages[0].content[1].image_url.url",
     "messages[0].content[1]: image type 'image/tiff' is not supported (jpeg, png, gif, webp)"),
    ("text file not base64", [{"role": "user", "content": [
        {"type": "file", "file": {"file_data": "data:text/plain;base64,@@", "filename": "a.txt"}}]}],
     "messages[0].content[0].file.file_data",
     "messages[0].content[0]: file data that is neither a PDF nor base64 UTF-8 text (only those two are supported)"),
    ("bare base64 of an image named a.png", [{"role": "user", "content": [
        {"type": "file", "file": {"file_data": "iVBORw0KGgo=", "filename": "a.png"}}]}],
     "messages[0].content[0].file.file_data",
     "messages[0].content[0]: file data that is neither a PDF nor base64 UTF-8 text (only those two are supported)"),
    ("system part not text", [{"role": "system", "content": [{"type": "image_url"}]}, HI],
     "messages[0].content[0]", "messages[0].content[0] must be a text part with a string 'text'"),
    ("tool result part", [HI, {"role": "tool", "tool_call_id": "c", "content": [{"type": "input_audio"}]}],
     "messages[1].content[0].input_audio", "messages[1].content[0]: audio input is not supported by Claude models"),
    ("developer content", [HI, {"role": "developer", "content": 3}],
     "messages[1].content", "messages[1].content must be a string or an array of content parts"),
]


@pytest.mark.parametrize(("messages", "param", "phrase"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_invalid_messages_are_400_naming_the_param(messages: Any, param: str, phrase: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        convert_messages(messages)
    assert (err.value.status, err.value.param) == (400, param)
    assert phrase in err.value.message
    if param.startswith("messages["):
        assert err.value.message.startswith(param.partition(".")[0])  # the message's place comes first


@pytest.mark.parametrize(("messages", "param", "text"), [e[1:] for e in PLACED], ids=[e[0] for e in PLACED])
def test_an_error_deep_in_a_message_names_its_place_in_full(messages: Any, param: str, text: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        convert_messages(messages)
    assert (err.value.status, err.value.param, str(err.value)) == (400, param, err.value.message)
    assert err.value.message.startswith(text)
