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

Token counts are estimated from the JSON's length, ``CHARS_PER_TOKEN`` bytes a token: no tokenizer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

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
    total_tokens: int  # the whole prompt
    conversation: bool  # an assistant turn already: the conversation is likely to go on
    stable_key: str | None = None
    prompt_key: str | None = None  # (never in a conversation, which caches without asking)

    @property
    def stable_cacheable(self) -> bool:
        return self.stable_tokens >= self.min_tokens

    @property
    def prompt_cacheable(self) -> bool:
        return self.total_tokens >= self.min_tokens

    def lookups(self) -> list[str]:
        """The keys to ask the memory of recent prefixes about (and to record in it)."""
        return [key for key in (self.stable_key, self.prompt_key) if key is not None]


def has_breakpoints(body: Mapping[str, Any]) -> bool:
    """Whether the client set any ``cache_control`` itself (top-level automatic caching included): then
    the request is left as it is."""
    if "cache_control" in body:
        return True
    tools, system, messages = body.get("tools"), body.get("system"), body.get("messages")
    return (_any_marked(tools) or _any_marked(system)
            or any(_any_marked(m.get("content")) for m in _list(messages) if isinstance(m, dict)))


def _any_marked(blocks: object) -> bool:
    for block in _list(blocks):
        if isinstance(block, dict) and ("cache_control" in block or _any_marked(block.get("content"))):
            return True
    return False


def measure(body: Mapping[str, Any], *, min_tokens: int) -> Prefixes:
    """The request's prefixes. Each part is serialized once, as compact JSON: its length estimates the
    tokens, its hash names the prefix (before any breakpoint is placed, so a marker never changes a key).
    A prefix too short to be cached is not hashed: most requests are, and cost one serialization."""
    stable = b"\0".join([orjson.dumps(body.get("model")), orjson.dumps(body.get("tools")),
                         orjson.dumps(body.get("system"))])
    messages = orjson.dumps(body.get("messages"))
    has_stable = bool(body.get("tools") or body.get("system"))
    stable_tokens = (len(stable) // CHARS_PER_TOKEN) if has_stable else 0
    conversation = any(isinstance(m, dict) and m.get("role") == "assistant" for m in _list(body.get("messages"))[:-1])
    prefixes = Prefixes(min_tokens, stable_tokens, stable_tokens + len(messages) // CHARS_PER_TOKEN, conversation)
    return replace(
        prefixes,
        stable_key=_digest(b"stable\0" + stable) if prefixes.stable_cacheable else None,
        prompt_key=_digest(b"prompt\0" + stable + b"\0" + messages)
        if prefixes.prompt_cacheable and not conversation else None,
    )


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def place_breakpoints(
    body: dict[str, Any], prefixes: Prefixes, *, seen: Container[str], ttl: CacheTTL = "5m"
) -> list[str]:
    """Put ``cache_control`` where it pays (in place); return what was placed, for x-translator-adjustments.
    ``seen``: the keys of ``prefixes`` seen recently."""
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


def _previous_turn_end(messages: list[Any]) -> Position | None:
    """Where the previous request of this conversation ended: the last block before its latest assistant
    turn (the one the model answered then; a final assistant message is a prefill, not an answer)."""
    answered = [i for i, m in enumerate(messages[:-1]) if isinstance(m, dict) and m.get("role") == "assistant"]
    return _last_cacheable(messages, answered[-1]) if answered else None


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
