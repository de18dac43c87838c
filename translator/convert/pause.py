"""Turns Claude paused, resumed for OpenAI clients.

Claude ends a turn with ``stop_reason: pause_turn`` when a server tool loop (web search) ran long: the caller is
to send the request again with the paused turn as the last assistant message, and Claude goes on where it
stopped. An OpenAI client cannot: the server tools' blocks have no OpenAI form. So the chat and Responses
routes resume it themselves, up to ``MAX_ROUNDS`` requests, and answer with the rounds joined into one turn
(the Claude route passes ``pause_turn`` on: Claude clients resume it themselves).

- ``resumed_body``: the next round's request.
- ``joined``: the rounds' messages (non-streamed) as one: contents in order, usage summed, the last stop reason.
- ``PauseJoiner``: the rounds' streams as one, fed one event (or run of text deltas) at a time: a paused round's
  ``message_delta`` and ``message_stop`` are held back, the next round's ``message_start`` dropped and its
  block indexes moved past the earlier rounds', the last ``message_delta`` given the rounds' summed usage.
  It keeps the blocks so far (``content``) for the next round's request.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from translator.convert.fastpath import TextRun
from translator.errors import UpstreamProtocolError

MAX_ROUNDS: Final = 8  # requests for one answer: a turn still paused after them ends as it is
PAUSED: Final = "pause_turn"


def resumable(body: Mapping[str, Any]) -> bool:
    """Whether the request offers a server tool, without which Claude never pauses a turn."""
    return any(isinstance(tool, dict) and "type" in tool for tool in body.get("tools", ()))


def resumed_body(body: Mapping[str, Any], content: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The request again, the paused turn's blocks so far its last (assistant) message."""
    return {**body, "messages": [*body["messages"], {"role": "assistant", "content": list(content)}]}


def joined(messages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The rounds' messages as one: the first's id and model, every round's blocks, the last's stop."""
    if len(messages) == 1:
        return dict(messages[0])
    return {
        **messages[0],
        "content": [block for message in messages for block in message.get("content") or []],
        "stop_reason": messages[-1].get("stop_reason"),
        "stop_sequence": messages[-1].get("stop_sequence"),
        "usage": summed_usage([message.get("usage") or {} for message in messages]),
    }


def summed_usage(usages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Claude usage objects added up: numbers summed, nested counts (``cache_creation``, ``server_tool_use``)
    summed key by key, anything else the last round's."""
    total: dict[str, Any] = {}
    for usage in usages:
        for key, value in usage.items():
            if isinstance(value, bool) or value is None:
                total[key] = value
            elif isinstance(value, int | float):
                total[key] = total.get(key, 0) + value
            elif isinstance(value, dict):
                total[key] = summed_usage([total.get(key) or {}, value])
            else:
                total[key] = value
    return total


class PauseJoiner:
    """The events of each round's stream, in order, as one stream's (see the module)."""

    def __init__(self) -> None:
        self.rounds = 1
        self.paused = False  # the round being read ended in pause_turn (its end held back)
        self._offset = 0  # where this round's block indexes start
        self._blocks: dict[int, dict[str, Any]] = {}  # every round's, at their joined index
        self._json: dict[int, list[str]] = {}  # a tool block's input, as its deltas came
        self._usage: list[dict[str, Any]] = []  # each round's usage, from its message_start and message_delta

    @property
    def usage(self) -> dict[str, Any] | None:
        """The rounds' usage summed, once a round has paused (before: the stream's own says it all)."""
        return summed_usage(self._usage) if self.rounds > 1 or self.paused else None

    @property
    def content(self) -> list[dict[str, Any]]:
        """The blocks so far, whole, in order."""
        return [self._blocks[i] for i in sorted(self._blocks)]

    def next_round(self) -> None:
        """The paused round has ended: what comes next is the next round's stream."""
        self.rounds += 1
        self.paused = False
        self._offset = max(self._blocks, default=-1) + 1

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "message_start":
            self._usage.append(dict((event.get("message") or {}).get("usage") or {}))
            return [event] if self.rounds == 1 else []
        if kind in ("content_block_start", "content_block_delta", "content_block_stop"):
            index = int(event.get("index", 0)) + self._offset
            if self._offset:  # (the first round's events go on as they came)
                event = {**event, "index": index}
            self._keep(event, index)
            return [event]
        if kind == "message_delta":
            return self._message_delta(event)
        if kind == "message_stop" and self.paused:
            return []
        return [event]

    def feed_run(self, run: TextRun) -> TextRun:
        block = self._blocks.get(run.block + self._offset)
        if block is not None and block.get("type") == "text":
            block["text"] = block.get("text", "") + "".join(run.texts)
        return run._replace(block=run.block + self._offset) if self._offset else run

    def _message_delta(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        if self._usage:
            self._usage[-1].update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
        if (event.get("delta") or {}).get("stop_reason") == PAUSED and self.rounds < MAX_ROUNDS:
            self.paused = True
            return []
        if self.rounds == 1:
            return [event]
        return [{**event, "usage": summed_usage(self._usage)}]

    def _keep(self, event: dict[str, Any], index: int) -> None:
        if event["type"] == "content_block_start":
            self._blocks[index] = copy.deepcopy(event.get("content_block") or {})
            return
        block = self._blocks.get(index)
        if block is None:
            return
        if event["type"] == "content_block_stop":
            if index in self._json:
                raw = "".join(self._json.pop(index))
                try:
                    block["input"] = orjson.loads(raw) if raw else block.get("input", {})
                except orjson.JSONDecodeError as e:
                    raise UpstreamProtocolError("upstream sent a tool input that is not JSON") from e
            return
        _apply(block, event.get("delta") or {}, self._json.setdefault(index, []) if "input" in block else [])


def _apply(block: dict[str, Any], delta: Mapping[str, Any], json: list[str]) -> None:
    """A delta, applied to the block it adds to."""
    match delta.get("type"):
        case "text_delta":
            block["text"] = block.get("text", "") + delta.get("text", "")
        case "input_json_delta":
            json.append(delta.get("partial_json", ""))
        case "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
        case "signature_delta":
            block["signature"] = delta.get("signature", "")
        case "citations_delta":
            block.setdefault("citations", []).append(delta.get("citation"))
