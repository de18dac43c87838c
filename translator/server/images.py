"""Opt-in (``[images] fetch = true``): download http(s) image URLs and send them inline as base64.

Off by default: Claude fetches URL images itself, and a proxy that fetches arbitrary URLs for its
clients is a server-side request forgery risk. When on, every fetch is bounded in size, redirects and
time, and any failure is a 400 naming the URL.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import aiohttp

from translator.config import ImageSettings
from translator.convert.content import IMAGE_TYPES
from translator.errors import InvalidRequest


def _url_images(blocks: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(blocks, list):
        return
    for block in blocks:
        if block.get("type") == "image" and block.get("source", {}).get("type") == "url":
            yield block
        elif block.get("type") == "tool_result":
            yield from _url_images(block.get("content"))


async def inline_images(body: dict[str, Any], session: aiohttp.ClientSession, cfg: ImageSettings) -> None:
    blocks = [b for m in body["messages"] for b in _url_images(m["content"])]
    if blocks:
        await asyncio.gather(*(_inline(b, session, cfg) for b in blocks))


async def _inline(block: dict[str, Any], session: aiohttp.ClientSession, cfg: ImageSettings) -> None:
    url = block["source"]["url"]
    try:
        async with session.get(
            url, timeout=aiohttp.ClientTimeout(total=cfg.timeout), max_redirects=cfg.max_redirects
        ) as resp:
            if resp.status != 200:
                raise InvalidRequest(f"could not fetch image {url}: HTTP {resp.status}")
            media_type = resp.content_type
            if media_type not in IMAGE_TYPES:
                raise InvalidRequest(f"image {url} has type {media_type!r} (jpeg, png, gif, webp)")
            if resp.content_length is not None and resp.content_length > cfg.max_bytes:
                raise InvalidRequest(f"image {url} is larger than {cfg.max_bytes} bytes")
            data = bytearray()
            async for piece in resp.content.iter_any():  # read() with a size stops at the first chunk
                data += piece
                if len(data) > cfg.max_bytes:
                    break
    except (TimeoutError, aiohttp.ClientError) as e:
        raise InvalidRequest(f"could not fetch image {url}: {type(e).__name__}") from e
    if len(data) > cfg.max_bytes:
        raise InvalidRequest(f"image {url} is larger than {cfg.max_bytes} bytes")
    block["source"] = {"type": "base64", "media_type": media_type, "data": base64.b64encode(bytes(data)).decode()}
