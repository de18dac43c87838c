"""Automatic prompt caching: Claude's ``cache_control`` breakpoints, placed for clients that set none.

OpenAI caches a long prompt prefix by itself; Claude caches only up to the breakpoints a request carries
(Anthropic's "Prompt caching" documentation). This module decides where those go, on a converted Claude
request. It is pure: whether a prefix was seen recently is the caller's to find out (``translator.gateway.
prefix_memory``), with the keys ``measure`` names.

Claude's rules it follows (the same documentation):

- The prefix runs in the order tools, system, messages; a breakpoint caches everything up to and
  including its block. At most 4 breakpoints a request.
- A hit is looked for at each breakpoint and at the block boundaries before it, about 20 blocks back
  (``LOOKBACK_BLOCKS``); a prefix cached further back than that is not found.
- Below the model's minimum cacheable length (1,024 tokens for most models, more for some: the
  profile's ``cache_min_tokens``) nothing is cached, and nothing is billed as a write.
- An entry lives 5 minutes, refreshed by each hit (``ttl: "1h"`` for an hour). A write costs 1.25x the
  input price (2x for an hour), a read 0.1x.

So a write only pays if the prefix is read again. The rules here (README, "Prompt caching"):

- the end of the stable prefix (the last system block, else the last tool) when tools and system are
  long enough, and either the conversation has had an assistant turn or this prefix was seen recently;
- the conversation's last block when the whole prompt is long enough, and either the conversation has had
  an assistant turn (it is likely to go on: the next turn reads what this one writes) or this very prompt
  was seen recently;
- in a tool loop whose last turn added more blocks than the lookback reaches, the end of the previous turn
  as well: the previous request wrote its cache there, and this request then reads it.

Token counts are estimated from the JSON's length, ``CHARS_PER_TOKEN`` bytes a token: no tokenizer. Base64
data (images, PDFs) counts by its length, as it would in the JSON, but is left out of what is serialized
(``measure``): the route serializes the body once, to send it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeGuard

import orjson

from translator.errors import InvalidRequest

CacheTTL = Literal["5m", "1h"]

CHARS_PER_TOKEN: Final = 4  # about 4 characters of English a token; JSON keys and punctuation make it generous
LOOKBACK_BLOCKS: Final = 20  # Claude looks for a hit about this many blocks before a breakpoint
ANCHOR_GAP: Final = LOOKBACK_BLOCKS - 4  # "about" 20: an anchor from this gap on, a little before it is needed
MAX_BREAKPOINTS: Final = 4  # Claude answers 400 to more
# Message blocks that take cache_control (thinking blocks do not: they are cached with the turn around them).
CACHEABLE: Final = frozenset({"text", "image", "document", "tool_use", "tool_result"})
TTL_SECONDS: Final[dict[CacheTTL, float]] = {"5m": 300.0, "1h": 3600.0}
# OpenAI's prompt_cache_retention -> Claude's TTL: "24h" (kept up to a day) asks for the longest Claude has.
RETENTION: Final[dict[str, CacheTTL]] = {"in_memory": "5m", "in-memory": "5m", "24h": "1h"}


def cache_ttl(retention: object, *, takes_1h: bool) -> tuple[CacheTTL, list[str]]:
    """The TTL for ``prompt_cache_retention`` (None: the default, 5 minutes), and an adjustment when the
    model cannot take what was asked."""
    if retention is None:
        return "5m", []
    if not isinstance(retention, str) or retention not in RETENTION:
        raise InvalidRequest("'prompt_cache_retention' must be 'in_memory' or '24h'", param="prompt_cache_retention")
    ttl = RETENTION[retention]
    if ttl == "1h" and not takes_1h:
        return "5m", ["prompt_cache_retention 24h: the model takes only the 5-minute cache TTL"]
    return ttl, []


@dataclass(frozen=True, slots=True)
class Prefixes:
    """A request's two prefixes, estimated in tokens, and named by a hash (of the model and the JSON) when
    one is long enough to be cached and the rules ask whether it was seen."""

    min_tokens: int  # the model's minimum cacheable prompt
    stable_tokens: int  # tools and system (0 without them)
    # The whole prompt; at least: in a conversation whose stable prefix alone reaches the minimum, the
    # messages are not measured (nothing depends on their size then), and this is stable_tokens.
    total_tokens: int
    conversation: bool  # an assistant turn already: the conversation is likely to go on
    stable_key: str | None = None
    prompt_key: str | None = None  # (never in a conversation, which caches without asking)
    clients_own: bool = False  # the client set cache_control itself: not measured, and left as it is

    @property
    def stable_cacheable(self) -> bool:
        return not self.clients_own and self.stable_tokens >= self.min_tokens

    @property
    def prompt_cacheable(self) -> bool:
        return not self.clients_own and self.total_tokens >= self.min_tokens

    @property
    def placeable(self) -> bool:
        """Whether a breakpoint may go anywhere: if not, there is nothing to ask or to place."""
        return self.stable_cacheable or self.prompt_cacheable

    def lookups(self) -> list[str]:
        """The keys to ask the memory of recent prefixes about (and to record in it)."""
        return [key for key in (self.stable_key, self.prompt_key) if key is not None]


def has_breakpoints(body: Mapping[str, Any]) -> bool:
    """Whether the client set any ``cache_control`` itself (top-level automatic caching included): then
    the request is left as it is."""
    return _survey(body).marked


@dataclass(slots=True)
class _Survey:
    """What one pass over a request's blocks finds."""

    marked: bool = False  # the client's own cache_control, somewhere
    data: bool = False  # a block with base64 data (an image, a PDF)

    def visit(self, blocks: list[Any]) -> bool:
        """Look at ``blocks`` and the blocks nested in them (a tool result's content); True once one carries
        cache_control (the rest need not be looked at)."""
        for block in blocks:
            if not isinstance(block, dict):
                continue
            if "cache_control" in block:
                self.marked = True
                return True
            if "source" in block and _base64_source(block["source"]):
                self.data = True
            content = block.get("content")
            if isinstance(content, list) and self.visit(content):
                return True
        return False


def _survey(body: Mapping[str, Any]) -> _Survey:
    survey = _Survey(marked="cache_control" in body)
    if survey.marked or survey.visit(_list(body.get("tools"))) or survey.visit(_list(body.get("system"))):
        return survey
    for message in _list(body.get("messages")):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and survey.visit(content):
            break
    return survey


def measure(body: Mapping[str, Any], *, min_tokens: int) -> Prefixes:
    """The request's prefixes, after one pass over its blocks (which finds the client's own breakpoints:
    then nothing is measured). A part's compact JSON estimates its tokens by its length, and its hash names
    the prefix (taken before any breakpoint is placed, so a marker never changes a key); the messages' base64
    data is left out of their JSON, counted by its length and hashed apart, so a big image is never copied.
    Only what a rule reads is measured: not the messages of a conversation whose tools and system reach the
    minimum (no rule depends on their size then), and no key too short to be asked about."""
    survey = _survey(body)
    if survey.marked:
        return Prefixes(min_tokens, 0, 0, False, clients_own=True)
    stable = b"\0".join([orjson.dumps(body.get("model")), orjson.dumps(body.get("tools")),
                         orjson.dumps(body.get("system"))])
    stable_tokens = (len(stable) // CHARS_PER_TOKEN) if body.get("tools") or body.get("system") else 0
    stable_key = _digest(b"stable\0" + stable) if stable_tokens >= min_tokens else None
    messages = body.get("messages")
    conversation = isinstance(messages, list) and _latest_answer(messages) is not None
    if conversation and stable_tokens >= min_tokens:
        return Prefixes(min_tokens, stable_tokens, stable_tokens, True, stable_key)
    data: list[str] = []
    if survey.data:
        messages = [_message_without_data(message, data) for message in _list(messages)]
    messages_json = orjson.dumps(messages)
    total_tokens = stable_tokens + (len(messages_json) + sum(map(len, data))) // CHARS_PER_TOKEN
    prompt_key = None
    if total_tokens >= min_tokens and not conversation:
        prompt_key = _prompt_key(stable, messages_json, data)
    return Prefixes(min_tokens, stable_tokens, total_tokens, conversation, stable_key, prompt_key)


def _base64_source(source: object) -> TypeGuard[dict[str, Any]]:
    return isinstance(source, dict) and source.get("type") == "base64" and isinstance(source.get("data"), str)


def _message_without_data(message: Any, data: list[str]) -> Any:
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return message
    return {**message, "content": _blocks_without_data(content, data)}


def _blocks_without_data(blocks: list[Any], data: list[str]) -> list[Any]:
    """A shallow copy of ``blocks`` whose base64 sources (nested ones too) have an empty ``data``: theirs is
    appended to ``data``, in order."""
    out = []
    for block in blocks:
        if isinstance(block, dict):
            source = block.get("source")
            if _base64_source(source):
                data.append(source["data"])
                block = {**block, "source": {**source, "data": ""}}
            content = block.get("content")
            if isinstance(content, list):
                block = {**block, "content": _blocks_without_data(content, data)}
        out.append(block)
    return out


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _prompt_key(stable: bytes, messages_json: bytes, data: list[str]) -> str:
    """The whole prompt's hash: its JSON (the same bytes as the stable key's, then the messages'), then each
    base64 data left out of it, one at a time (a big one's bytes exist only while they are hashed)."""
    digest = hashlib.sha256(b"prompt\0" + stable + b"\0")
    digest.update(messages_json)
    for item in data:
        digest.update(b"\0")
        digest.update(item.encode())
    return digest.hexdigest()


def place_breakpoints(
    body: dict[str, Any], prefixes: Prefixes, *, seen: Container[str], ttl: CacheTTL = "5m"
) -> list[str]:
    """Put ``cache_control`` where it pays (in place); return what was placed, for x-translator-adjustments.
    ``seen``: the keys of ``prefixes`` seen recently."""
    if not prefixes.placeable:
        return []
    marker: dict[str, str] = {"type": "ephemeral"} if ttl == "5m" else {"type": "ephemeral", "ttl": ttl}
    placed: list[str] = []
    if prefixes.stable_cacheable and (prefixes.conversation or prefixes.stable_key in seen):
        placed += _mark_stable(body, marker)
    if prefixes.prompt_cacheable and (prefixes.conversation or prefixes.prompt_key in seen):
        placed += _mark_conversation(body, marker)
    assert len(placed) <= MAX_BREAKPOINTS
    suffix = "" if ttl == "5m" else f", ttl {ttl}"
    return [f"prompt cache breakpoint on {where}{suffix}" for where in placed]


def _mark_stable(body: dict[str, Any], marker: dict[str, str]) -> list[str]:
    """The end of tools and system: the last system block, else the last tool."""
    system = body.get("system")
    if isinstance(system, str) and system:
        body["system"] = system = [{"type": "text", "text": system}]
    if isinstance(system, list) and system and isinstance(system[-1], dict):
        system[-1]["cache_control"] = dict(marker)
        return [f"system[{len(system) - 1}] (the end of tools and system)"]
    tools = body.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[-1], dict):
        tools[-1]["cache_control"] = dict(marker)
        return [f"tools[{len(tools) - 1}] (the end of the tools)"]
    return []


def _mark_conversation(body: dict[str, Any], marker: dict[str, str]) -> list[str]:
    """The conversation's last block, and the end of the previous turn when the last turn added more
    blocks than Claude's lookback reaches."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    last = _last_cacheable(messages, len(messages))
    if last is None:
        return []
    placed = []
    anchor = _previous_turn_end(messages)
    if anchor is not None and _blocks_between(messages, anchor, last) >= ANCHOR_GAP:
        placed.append(f"{_mark(messages, anchor, marker)} (the previous turn's end, beyond the lookback)")
    placed.append(f"{_mark(messages, last, marker)} (the conversation's last block)")
    return placed


Position = tuple[int, int]  # (message, block)


def _last_cacheable(messages: list[Any], end: int) -> Position | None:
    """The last block before message ``end`` that takes cache_control (a string content is one text block)."""
    for i in range(end - 1, -1, -1):
        content = messages[i].get("content") if isinstance(messages[i], dict) else None
        if isinstance(content, str):
            if content:
                return i, 0
            continue
        blocks = _list(content)
        for j in range(len(blocks) - 1, -1, -1):
            if isinstance(blocks[j], dict) and blocks[j].get("type") in CACHEABLE:
                return i, j
    return None


def _latest_answer(messages: list[Any]) -> int | None:
    """The latest assistant turn the model answered (a final assistant message is a prefill, not an answer),
    looked for from the end."""
    for i in range(len(messages) - 2, -1, -1):
        if isinstance(messages[i], dict) and messages[i].get("role") == "assistant":
            return i
    return None


def _previous_turn_end(messages: list[Any]) -> Position | None:
    """Where the previous request of this conversation ended: the last block before its latest answer."""
    answered = _latest_answer(messages)
    return _last_cacheable(messages, answered) if answered is not None else None


def _blocks_between(messages: list[Any], start: Position, end: Position) -> int:
    """How many block boundaries lie after ``start`` up to ``end``."""
    count = 0
    for i in range(start[0], end[0] + 1):
        content = messages[i].get("content") if isinstance(messages[i], dict) else None
        size = 1 if isinstance(content, str) else len(_list(content))
        first = start[1] + 1 if i == start[0] else 0
        last = end[1] if i == end[0] else size - 1
        count += max(0, last - first + 1)
    return count


def _mark(messages: list[Any], at: Position, marker: dict[str, str]) -> str:
    i, j = at
    content = messages[i]["content"]
    if isinstance(content, str):
        messages[i]["content"] = content = [{"type": "text", "text": content}]
    content[j]["cache_control"] = dict(marker)
    return f"messages[{i}].content[{j}]"


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
