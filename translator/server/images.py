"""Opt-in (``[images] fetch = true``): download http(s) image URLs and send them inline as base64.

Off by default: Claude fetches URL images itself, and a proxy that fetches arbitrary URLs for its
clients is a server-side request forgery risk. When on, every fetch is bounded in size, redirects and
time, and any failure is a 400 naming the URL.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver
from yarl import URL

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
    if len(blocks) > cfg.max_images:
        raise InvalidRequest(f"at most {cfg.max_images} image URLs are fetched per request")
    if blocks:
        await asyncio.gather(*(_inline(b, session, cfg) for b in blocks))


async def _inline(block: dict[str, Any], session: aiohttp.ClientSession, cfg: ImageSettings) -> None:
    url = block["source"]["url"]
    try:
        async with asyncio.timeout(cfg.timeout):
            media_type, data = await _fetch(session, url, cfg)
    except (TimeoutError, aiohttp.ClientError, OSError) as e:
        raise InvalidRequest(f"could not fetch image {url}") from e  # no detail: no probing of networks
    block["source"] = {"type": "base64", "media_type": media_type, "data": base64.b64encode(bytes(data)).decode()}


async def _fetch(session: aiohttp.ClientSession, url: str, cfg: ImageSettings) -> tuple[str, bytearray]:
    """Redirects are followed here, hop by hop, so each target is checked like the first."""
    for _ in range(cfg.max_redirects + 1):
        _check_target(url, cfg)
        async with session.get(url, allow_redirects=False) as resp:
            if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                url = str(resp.url.join(URL(resp.headers["Location"])))
                continue
            if resp.status != 200:
                raise InvalidRequest(f"could not fetch image {url}")
            media_type = resp.content_type
            if media_type not in IMAGE_TYPES:
                raise InvalidRequest(f"image {url} has type {media_type!r} (jpeg, png, gif, webp)")
            if resp.content_length is not None and resp.content_length > cfg.max_bytes:
                raise InvalidRequest(f"image {url} is larger than {cfg.max_bytes} bytes")
            data = bytearray()
            async for piece in resp.content.iter_any():  # read() with a size stops at the first chunk
                data += piece
                if len(data) > cfg.max_bytes:
                    raise InvalidRequest(f"image {url} is larger than {cfg.max_bytes} bytes")
            return media_type, data
    raise InvalidRequest(f"could not fetch image {url}: more than {cfg.max_redirects} redirects")


def _check_target(url: str, cfg: ImageSettings) -> None:
    """An address literal must be public; host names are checked by PublicResolver when they resolve."""
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidRequest(f"could not fetch image {url}")
    with contextlib.suppress(ValueError):
        if not cfg.allow_private_addresses and not ipaddress.ip_address(parsed.host).is_global:
            raise InvalidRequest(f"could not fetch image {url}")


class PublicResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then keeps only public addresses: a URL cannot make the
    proxy reach loopback, private, link-local (cloud metadata) or reserved addresses. The connection uses
    the address checked here, so a DNS answer that changes in between does not get around it."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
        infos = await self._inner.resolve(host, port, family)
        public = [i for i in infos if ipaddress.ip_address(i["host"]).is_global]
        if not public:
            raise OSError(f"{host} has no public address")
        return public

    async def close(self) -> None:
        await self._inner.close()


def image_session(cfg: ImageSettings) -> aiohttp.ClientSession:
    resolver = None if cfg.allow_private_addresses else PublicResolver()
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver), cookie_jar=aiohttp.DummyCookieJar())
