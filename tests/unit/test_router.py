"""``translator.router.UpstreamPool``'s choice of upstreams, with a clock of our own: cool-downs, and the
single probe that brings an upstream back."""

from __future__ import annotations

import random
from typing import Any

from tests.redis_server import redis_server_fixture, redis_url_fixture  # noqa: F401
from translator.config import RoutingSettings, UpstreamSettings
from translator.errors import UpstreamUnavailable
from translator.gateway.upstream_health import SharedCooldowns
from translator.router import PROBE_CLAIM, UpstreamPool
from translator.upstream import Upstream


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pool(*weights: float, clock: Clock, pool_kw: dict[str, Any] | None = None, **routing: object) -> UpstreamPool:
    upstreams = [Upstream(UpstreamSettings(name=f"u{i}", weight=w), "http://127.0.0.1:9")
                 for i, w in enumerate(weights)]
    settings = RoutingSettings.model_validate({"failures_before_cooldown": 1, "cooldown_seconds": 30, **routing})
    return UpstreamPool(upstreams, settings, clock=clock, rng=random.Random(1), **(pool_kw or {}))


def names(plan: list[Upstream]) -> list[str]:
    return [u.name for u in plan]


def test_a_cooling_upstream_is_a_last_resort() -> None:
    clock = Clock()
    p = pool(1e6, 1.0, clock=clock)
    assert names(p.plan("m")) == ["u0", "u1"]
    p.failed(p.upstreams[0], UpstreamUnavailable("down"))
    assert names(p.plan("m")) == ["u1", "u0"]


def test_one_request_probes_an_upstream_back_the_others_keep_away() -> None:
    clock = Clock()
    p = pool(1e6, 1.0, clock=clock)
    p.failed(p.upstreams[0], UpstreamUnavailable("down"))
    clock.now += 31  # the cool-down is over
    assert names(p.plan("m")) == ["u0", "u1"]  # this request probes u0
    assert names(p.plan("m")) == ["u1", "u0"]  # a concurrent one does not pile onto it
    assert names(p.plan("m")) == ["u1", "u0"]
    p.succeeded(p.upstreams[0])  # the probe answered: u0 is back for everyone
    assert names(p.plan("m")) == ["u0", "u1"]
    assert names(p.plan("m")) == ["u0", "u1"]


def test_a_failed_probe_cools_it_again_and_an_abandoned_claim_lapses() -> None:
    clock = Clock()
    p = pool(1e6, 1.0, clock=clock)
    p.failed(p.upstreams[0], UpstreamUnavailable("down"))
    clock.now += 31
    assert names(p.plan("m"))[0] == "u0"
    p.failed(p.upstreams[0], UpstreamUnavailable("still down"))
    clock.now += 1
    assert names(p.plan("m")) == ["u1", "u0"]  # cooling again
    clock.now += 30
    assert names(p.plan("m"))[0] == "u0"  # the next probe, once that cool-down is over
    clock.now += PROBE_CLAIM + 0.1  # that probe never answered (its request went elsewhere)
    assert names(p.plan("m"))[0] == "u0"  # so another request may probe it


def test_only_the_upstreams_tried_before_a_healthy_one_are_claimed() -> None:
    clock = Clock()
    p = pool(1.0, 1e6, 1e-6, clock=clock)  # u1 first, then u0, then u2
    p.failed(p.upstreams[2], UpstreamUnavailable("down"))
    clock.now += 31
    assert names(p.plan("m")) == ["u1", "u0", "u2"]  # u2 comes after healthy ones: not claimed
    assert names(p.plan("m")) == ["u1", "u0", "u2"]


async def test_cooldowns_from_other_processes_are_taken_in_and_ended(redis_url: str) -> None:
    clock = Clock()
    elsewhere = SharedCooldowns(redis_url, ["u0", "u1"], clock=clock)  # another process's view of Redis
    shared = SharedCooldowns(redis_url, ["u0", "u1"], clock=clock)
    events: list[tuple[str, bool]] = []
    p = pool(1e6, 1.0, clock=clock, pool_kw={"shared": shared, "on_health": lambda n, ok: events.append((n, ok))})
    try:
        await elsewhere.publish("u0", 300)
        await p.sync_health()
        assert (names(p.plan("m")), events) == (["u1", "u0"], [("u0", False)])
        await elsewhere.clear("u0")  # u0 answered over there
        clock.now += 1.0  # (readings are reused for a second)
        await p.sync_health()
        assert (names(p.plan("m")), events) == (["u0", "u1"], [("u0", False), ("u0", True)])
        p.failed(p.upstreams[0], UpstreamUnavailable("down"))  # here, and not in Redis: it stands
        clock.now += 1.0
        await p.sync_health()
        assert names(p.plan("m")) == ["u1", "u0"]
    finally:
        await elsewhere.close()
        await shared.close()
