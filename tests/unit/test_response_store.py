"""The Responses route's store (translator/gateway/response_store.py), in memory and in a real Redis: what is
kept, for how long, how memory stays bounded, and that a store that cannot be read says so (503) instead of
answering as if there were no history."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.redis_server import redis_server_fixture, redis_url_fixture  # noqa: F401
from translator.config import RedisSettings
from translator.gateway.response_store import (
    MemoryResponseStore,
    RedisResponseStore,
    ResponseStore,
    StoredResponse,
    StoreUnavailable,
    make_response_store,
)

QUESTION = {"id": "item_1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}
ANSWER = {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
          "content": [{"type": "output_text", "text": "Hello", "annotations": []}]}


def stored(response_id: str = "resp_1", owner: str | None = "alice", text: str = "Hi") -> StoredResponse:
    question = {**QUESTION, "content": [{"type": "input_text", "text": text}]}
    return StoredResponse(owner, {"id": response_id, "object": "response", "output": [ANSWER]}, [], [question])


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ResponseStore]:
    if request.param == "memory":
        made: ResponseStore = MemoryResponseStore(ttl=60, max_bytes=1 << 20)
    else:
        made = RedisResponseStore(request.getfixturevalue("redis_url"), ttl=60)
    yield made
    await made.close()


async def test_a_stored_response_comes_back_whole(store: ResponseStore) -> None:
    await store.put("resp_1", stored())
    got = await store.get("resp_1")
    assert got == stored()
    assert got is not None and got.conversation() == [*stored().input, ANSWER]
    assert await store.get("resp_other") is None


async def test_delete_says_whether_there_was_one(store: ResponseStore) -> None:
    await store.put("resp_1", stored())
    assert await store.delete("resp_1") is True
    assert await store.delete("resp_1") is False
    assert await store.get("resp_1") is None


async def test_the_next_turn_continues_the_whole_conversation() -> None:
    first = stored("resp_1", text="one")
    second = StoredResponse("alice", {"id": "resp_2", "output": [{**ANSWER, "id": "msg_2"}]}, first.conversation(),
                            [{**QUESTION, "id": "item_2"}])
    assert [item["id"] for item in second.conversation()] == ["item_1", "msg_1", "item_2", "msg_2"]


async def test_memory_entries_expire() -> None:
    clock = Clock()
    store = MemoryResponseStore(ttl=60, max_bytes=1 << 20, clock=clock)
    await store.put("resp_1", stored())
    clock.now += 59.9
    assert await store.get("resp_1") is not None
    clock.now += 0.2
    assert await store.get("resp_1") is None


async def test_memory_is_bounded_by_size_and_the_oldest_go_first() -> None:
    size = len(stored("resp_0").dumps())
    store = MemoryResponseStore(ttl=60, max_bytes=size * 3)
    for n in range(5):
        await store.put(f"resp_{n}", stored(f"resp_{n}"))
    assert [await store.get(f"resp_{n}") is not None for n in range(5)] == [False, False, True, True, True]
    await store.put("resp_big", stored("resp_big", text="x" * size * 4))  # larger than the whole store: not kept
    assert await store.get("resp_big") is None and await store.get("resp_4") is not None


async def test_redis_entries_expire_natively(redis_url: str) -> None:
    """Redis holds the entry for the ttl and drops it by itself. The ttl is long enough (2 s) that reading the
    entry back right after storing it cannot miss it even if the test process is paused for a second."""
    store = RedisResponseStore(redis_url, ttl=2.0)
    client = aioredis.from_url(redis_url)
    try:
        await store.put("resp_1", stored())
        assert await store.get("resp_1") is not None
        assert 0 < await client.pttl("translator:response:resp_1") <= 2000  # Redis's own expiry, the store's ttl
        await asyncio.sleep(2.1)  # (sleeping longer only makes it more expired)
        assert await store.get("resp_1") is None
    finally:
        await store.close()
        await client.aclose()


async def test_redis_down_is_a_503_not_a_missing_history() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = RedisResponseStore(f"redis://127.0.0.1:{port}/0", ttl=60, timeout=0.5)
    try:
        await store.put("resp_1", stored())  # the answer went out already: counted, not raised
        with pytest.raises(StoreUnavailable) as info:
            await store.get("resp_1")
        assert (info.value.status, info.value.message) == (
            503, "the response store is unavailable; try again shortly")
        with pytest.raises(StoreUnavailable):
            await store.delete("resp_1")
    finally:
        await store.close()


async def test_make_response_store_picks_the_backend() -> None:
    memory = make_response_store(RedisSettings(), 60, 1 << 20)
    redis = make_response_store(RedisSettings(url="redis://127.0.0.1:1/0"), 60, 1 << 20)
    try:
        assert isinstance(memory, MemoryResponseStore) and isinstance(redis, RedisResponseStore)
    finally:
        await memory.close()
        await redis.close()
