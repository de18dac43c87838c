"""A Claude thinking block carried through an OpenAI client as a Responses ``reasoning`` item's
``encrypted_content``, opaque to the client, and restored byte for byte when it comes back.

Claude refuses a follow-up turn of a thinking tool loop unless the turn's thinking block comes back
unchanged, signature included (or a ``redacted_thinking`` block's ``data``). Clients keep
``encrypted_content`` as an opaque string and send it back (Codex asks for it with
``include: ["reasoning.encrypted_content"]``). It is not encrypted by us: the block's own signature is what
Claude checks, so the content only has to survive the round trip; the prefix names the format.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

PREFIX = "claude-block-v1:"
_FIELDS = {"thinking": ("thinking", "signature"), "redacted_thinking": ("data",)}


def encode_block(block: dict[str, Any]) -> str:
    """A ``thinking`` or ``redacted_thinking`` block as an ``encrypted_content`` string."""
    kept = {"type": block["type"], **{name: block.get(name, "") for name in _FIELDS[block["type"]]}}
    return PREFIX + base64.urlsafe_b64encode(orjson.dumps(kept)).decode("ascii")


def decode_block(content: object) -> dict[str, Any] | None:
    """The block an ``encrypted_content`` string carries; None when it is not one of ours (another
    provider's, or damaged): the caller decides what that is worth."""
    if not isinstance(content, str) or not content.startswith(PREFIX):
        return None
    try:
        block = orjson.loads(base64.urlsafe_b64decode(content[len(PREFIX) :]))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(block, dict) or block.get("type") not in _FIELDS:
        return None
    fields = _FIELDS[block["type"]]
    if set(block) != {"type", *fields} or not all(isinstance(block[name], str) for name in fields):
        return None
    return block
