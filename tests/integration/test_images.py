"""Image URLs: passed to Claude as url sources by default; fetched and inlined only when configured."""

from __future__ import annotations

import base64

import pytest

from tests.fakes import FakeUpstream

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
           "content": [{"type": "text", "text": "a pixel"}], "stop_reason": "end_turn", "usage": {}}


def _request(url: str) -> dict:
    return {"model": "claude-x", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": url}}]}]}


async def test_url_images_are_passed_as_url_sources_by_default(proxy, fake_upstream: FakeUpstream) -> None:
    fake_upstream.json(MESSAGE)
    resp = await proxy.post("/v1/chat/completions", json=_request("https://example.com/cat.png"))
    assert resp.status == 200
    assert [r.method for r in fake_upstream.requests] == ["POST"]  # nothing fetched
    assert fake_upstream.last.json["messages"][0]["content"][1] == {
        "type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}


async def test_fetch_setting_inlines_images_as_base64(make_proxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(images={"fetch": True, "allow_private_addresses": True})
    fake_upstream.raw(200, PNG, content_type="image/png")
    fake_upstream.json(MESSAGE)
    url = str(fake_upstream.server.make_url("/pixel.png"))
    resp = await proxy.post("/v1/chat/completions", json=_request(url))
    assert resp.status == 200
    assert [(r.method, r.path) for r in fake_upstream.requests] == [("GET", "/pixel.png"), ("POST", "/v1/messages")]
    assert fake_upstream.last.json["messages"][0]["content"][1] == {
        "type": "image", "source": {"type": "base64", "media_type": "image/png",
                                    "data": base64.b64encode(PNG).decode()}}


async def test_fetch_enforces_the_size_limit(make_proxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(images={"fetch": True, "max_bytes": 10, "allow_private_addresses": True})
    fake_upstream.raw(200, PNG, content_type="image/png")
    url = str(fake_upstream.server.make_url("/pixel.png"))
    resp = await proxy.post("/v1/chat/completions", json=_request(url))
    assert resp.status == 400
    assert (await resp.json())["error"]["message"] == f"image {url} is larger than 10 bytes"
    assert len(fake_upstream.requests) == 1  # never sent upstream


async def test_fetch_rejects_what_is_not_an_image(make_proxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(images={"fetch": True, "allow_private_addresses": True})
    fake_upstream.raw(200, b"<html></html>", content_type="text/html")
    url = str(fake_upstream.server.make_url("/page"))
    resp = await proxy.post("/v1/chat/completions", json=_request(url))
    assert resp.status == 400
    assert (await resp.json())["error"]["message"] == f"image {url} has type 'text/html' (jpeg, png, gif, webp)"


async def test_fetch_reads_a_large_image_whole(make_proxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(images={"fetch": True, "allow_private_addresses": True})
    big = PNG + bytes(300_000)  # arrives in many network chunks
    fake_upstream.raw(200, big, content_type="image/png")
    fake_upstream.json(MESSAGE)
    url = str(fake_upstream.server.make_url("/big.png"))
    resp = await proxy.post("/v1/chat/completions", json=_request(url))
    assert resp.status == 200
    source = fake_upstream.last.json["messages"][0]["content"][1]["source"]
    assert base64.b64decode(source["data"]) == big


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "169.254.169.254", "[::1]", "10.0.0.1"])
async def test_fetch_refuses_private_addresses_by_default(make_proxy, fake_upstream: FakeUpstream, host) -> None:
    proxy = await make_proxy(images={"fetch": True, "timeout": 2})
    url = f"http://{host}:{fake_upstream.server.port}/pixel.png"
    resp = await proxy.post("/v1/chat/completions", json=_request(url))
    assert resp.status == 400
    assert (await resp.json())["error"]["message"] == f"could not fetch image {url}"
    assert fake_upstream.requests == []  # nothing reached the internal host, nothing went upstream


async def test_fetch_checks_every_redirect_hop(make_proxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(images={"fetch": True, "allow_private_addresses": True, "max_redirects": 1})
    first = str(fake_upstream.server.make_url("/a.png"))
    fake_upstream.raw(302, b"", content_type="text/plain", headers={"Location": "/b.png"})
    fake_upstream.raw(302, b"", content_type="text/plain", headers={"Location": "/c.png"})
    resp = await proxy.post("/v1/chat/completions", json=_request(first))
    assert resp.status == 400
    assert [r.path for r in fake_upstream.requests] == ["/a.png", "/b.png"]
