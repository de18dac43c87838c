"""A fake Claude upstream that caches prompts by Claude's rules, and bills usage as Claude reports it.

For the tests of automatic prompt caching and for ``python -m bench.caching``. The rules, from Anthropic's
prompt-caching documentation:

- The prompt is a sequence of blocks in the order tools, system, messages (a string system prompt or message
  content is one block). Each block boundary has a prefix hash: of the model and every block up to it,
  ``cache_control`` left out.
- A block with ``cache_control`` is a breakpoint (at most 4: more is a 400; a top-level ``cache_control`` is
  one on the last block). For each breakpoint the cache is looked up at its boundary and at the boundaries
  before it, ``LOOKBACK_BLOCKS`` in all; the longest prefix found is read.
- Past what was read, each breakpoint's prefix is written, if it is at least the model's minimum length.
  Entries expire after their TTL (``5m``, or ``1h``), counted from their last write or read.
- Usage: ``cache_read_input_tokens`` (the prefix read), ``cache_creation_input_tokens`` (from there to the
  last breakpoint written), ``input_tokens`` (the rest), with ``cache_creation`` split by TTL.

Tokens are counted by a stand-in tokenizer (``count_tokens``: words and punctuation marks of the block's
JSON), not the proxy's estimate. Every answer is the text ``ANSWER`` (JSON, or SSE when ``stream``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

LOOKBACK_BLOCKS = 20
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
ANSWER = "Noted."
_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(block: object) -> int:
    return len(_TOKEN.findall(orjson.dumps(block).decode()))


@dataclass(frozen=True, slots=True)
class Block:
    tokens: int  # the prefix's, up to and including this block
    digest: str  # the prefix's hash
    ttl: str | None  # a breakpoint's TTL; None: not a breakpoint


@dataclass
class ClaudeCache:
    """Claude's prompt cache, one account's; ``min_tokens``: glob of model -> minimum cacheable tokens (first
    match; 1,024 otherwise)."""

    clock: Callable[[], float] = time.monotonic
    min_tokens: Mapping[str, int] = field(default_factory=dict)
    entries: dict[str, tuple[float, float]] = field(default_factory=dict)  # digest -> (expires at, ttl)

    def bill(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The usage of one request, as Claude reports it; its cache reads and writes happen."""
        blocks = _blocks(body)
        breakpoints = [i for i, block in enumerate(blocks) if block.ttl is not None]
        if len(breakpoints) > 4:
            raise CacheRuleError(f"A maximum of 4 blocks with cache_control may be provided. Found {len(breakpoints)}.")
        now = self.clock()
        read_at = max((hit for b in breakpoints if (hit := self._lookup(blocks, b, now)) is not None), default=-1)
        read = blocks[read_at].tokens if read_at >= 0 else 0
        if read_at >= 0:
            self._touch(blocks[read_at].digest, now)
        minimum = self._minimum(str(body.get("model")))
        written = [b for b in breakpoints if b > read_at and blocks[b].tokens >= minimum]
        by_ttl = {"5m": 0, "1h": 0}
        start = read
        for b in written:
            ttl = blocks[b].ttl or "5m"
            self.entries[blocks[b].digest] = (now + TTL_SECONDS[ttl], TTL_SECONDS[ttl])
            by_ttl[ttl] += blocks[b].tokens - start
            start = blocks[b].tokens
        total = blocks[-1].tokens if blocks else 0
        created = start - read
        return {
            "input_tokens": total - read - created,
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
            "cache_creation": {"ephemeral_5m_input_tokens": by_ttl["5m"], "ephemeral_1h_input_tokens": by_ttl["1h"]},
            "output_tokens": 2,
        }

    def _lookup(self, blocks: list[Block], breakpoint: int, now: float) -> int | None:
        for i in range(breakpoint, max(-1, breakpoint - LOOKBACK_BLOCKS), -1):
            entry = self.entries.get(blocks[i].digest)
            if entry is not None and entry[0] > now:
                return i
        return None

    def _touch(self, digest: str, now: float) -> None:
        _, ttl = self.entries[digest]
        self.entries[digest] = (now + ttl, ttl)

    def _minimum(self, model: str) -> int:
        return next((n for pattern, n in self.min_tokens.items() if fnmatch.fnmatchcase(model, pattern)), 1024)


class CacheRuleError(ValueError):
    """A request Claude would refuse for its cache_control (400 invalid_request_error)."""


def _blocks(body: Mapping[str, Any]) -> list[Block]:
    """Every block of the prompt in prefix order, with its prefix's length and hash."""
    parts: list[Any] = list(body.get("tools") or [])
    system = body.get("system")
    parts += [{"type": "text", "text": system}] if isinstance(system, str) else list(system or [])
    for message in body.get("messages") or []:
        content = message.get("content")
        parts += [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
    if "cache_control" in body and parts:  # automatic caching: a breakpoint on the last block
        parts[-1] = {**parts[-1], "cache_control": body["cache_control"]}
    blocks = []
    running = hashlib.sha256(orjson.dumps(body.get("model")))
    tokens = 0
    for part in parts:
        marker = part.get("cache_control") if isinstance(part, dict) else None
        bare = {k: v for k, v in part.items() if k != "cache_control"} if isinstance(part, dict) else part
        running.update(orjson.dumps(bare))
        tokens += count_tokens(bare)
        ttl = marker.get("ttl", "5m") if isinstance(marker, dict) else None
        blocks.append(Block(tokens, running.copy().hexdigest(), ttl))
    return blocks


@dataclass
class CachingUpstream:
    """The fake as an aiohttp app: ``POST /v1/messages`` billed by ``cache``; every request's body, headers
    and usage kept in ``seen``."""

    cache: ClaudeCache = field(default_factory=ClaudeCache)
    seen: list[tuple[dict[str, Any], dict[str, str], dict[str, Any]]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        return app

    @property
    def usages(self) -> list[dict[str, Any]]:
        return [usage for _, _, usage in self.seen]

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        try:
            usage = self.cache.bill(body)
        except CacheRuleError as err:
            return web.json_response({"type": "error", "error": {"type": "invalid_request_error", "message": str(err)}},
                                     status=400)
        self.seen.append((body, dict(request.headers), usage))
        message_id = f"msg_cache{len(self.seen):016d}"
        if not body.get("stream"):
            return web.json_response(_message(message_id, body.get("model"), usage))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"".join(_event(e) for e in _events(message_id, body.get("model"), usage)))
        await response.write_eof()
        return response


def _message(message_id: str, model: object, usage: dict[str, Any]) -> dict[str, Any]:
    return {"id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": ANSWER}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": usage}


def _events(message_id: str, model: object, usage: dict[str, Any]) -> list[dict[str, Any]]:
    """Claude's stream: the input counts in message_start (output 1 so far), the final counts in
    message_delta."""
    start = {**_message(message_id, model, {**usage, "output_tokens": 1}), "content": [], "stop_reason": None}
    return [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": ANSWER}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                                         "output_tokens")}},
        {"type": "message_stop"},
    ]


def _event(payload: dict[str, Any]) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (payload["type"].encode(), orjson.dumps(payload))
