"""Client keys: hashing, header parsing, constant-time authentication, model globs, and `translator keys`."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from translator.config import KeySettings
from translator.errors import AuthenticationFailed, PermissionDenied
from translator.gateway.keys import (
    ClientKey,
    KeyRing,
    hash_key,
    new_key,
    presented_keys,
)

ALICE_KEY = "sk-tr-alice-secret"
BOB_KEY = "sk-tr-bob-secret"
CAROL_KEY = "sk-tr-carol-secret"


def settings(name: str, key: str, **extra: object) -> KeySettings:
    return KeySettings.model_validate({"name": name, "hash": hash_key(key), **extra})


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing([
        settings("alice", ALICE_KEY),
        settings("bob", BOB_KEY, models=["claude-sonnet-4-5", "claude-haiku-*"], rpm=60, tpm=1000, concurrency=2),
        settings("carol", CAROL_KEY, models=["gpt-[45]o"]),
    ])


# ---- minting and hashing ----------------------------------------------------------------------------------------


def test_new_key_is_prefixed_random_and_urlsafe() -> None:
    minted = {new_key() for _ in range(50)}
    assert len(minted) == 50
    for key in minted:
        assert re.fullmatch(r"sk-tr-[A-Za-z0-9_-]{43}", key), key  # 32 bytes -> 43 base64url characters


def test_hash_key_is_sha256_hex_with_prefix() -> None:
    assert hash_key("abc") == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert hash_key("abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()


# ---- presented key ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-api-key": "k1"}, "k1"),
        ({"X-Api-Key": " k1 "}, "k1"),
        ({"Authorization": "Bearer k2"}, "k2"),
        ({"authorization": "bearer k2"}, "k2"),
        ({"Authorization": "BEARER   k2  "}, "k2"),
        ({"x-api-key": "k1", "Authorization": "Bearer k2"}, "k1"),  # x-api-key wins
        ({"x-api-key": "  ", "Authorization": "Bearer k2"}, "k2"),  # a blank one does not
        ({"Authorization": "Basic dXNlcjpwYXNz"}, None),
        ({"Authorization": "Bearer"}, None),
        ({"Authorization": "Bearer   "}, None),
        ({}, None),
    ],
)
def test_presented_key(headers: dict[str, str], expected: str | None) -> None:
    assert (presented_keys(headers) or [None])[0] == expected


def test_presented_key_reads_aiohttp_headers() -> None:
    from multidict import CIMultiDict, CIMultiDictProxy

    assert presented_keys(CIMultiDictProxy(CIMultiDict({"AUTHORIZATION": "Bearer k3"}))) == ["k3"]


# ---- ClientKey --------------------------------------------------------------------------------------------------


def test_client_key_from_settings_and_short_hash() -> None:
    key = ClientKey.from_settings(settings("bob", BOB_KEY, models=["a", "b*"], rpm=5))
    assert key == ClientKey(
        name="bob", key_hash=hash_key(BOB_KEY), models=("a", "b*"), rpm=5, tpm=None, concurrency=None
    )
    assert key.short_hash == hash_key(BOB_KEY)[7:15]
    assert len(key.short_hash) == 8


def test_uppercase_hash_in_config_is_normalized() -> None:
    upper = "sha256:" + hash_key(ALICE_KEY)[7:].upper()
    ring = KeyRing([KeySettings(name="alice", hash=upper)])
    assert ring.authenticate(ALICE_KEY) is not None


@pytest.mark.parametrize(
    "bad", ["", "sha256:", "md5:" + "0" * 64, "sha256:" + "0" * 63, "sha256:" + "g" * 64, "0" * 64]
)
def test_malformed_hash_fails_at_start_up(bad: str) -> None:
    with pytest.raises(ValueError, match="not 'sha256:' and 64 hex digits"):  # (the config's own check)
        KeySettings(name="x", hash=bad)
    with pytest.raises(ValueError, match="key 'x': hash must be"):  # (and the ring's, for settings made unchecked)
        KeyRing([KeySettings.model_construct(name="x", hash=bad, models=["*"], rpm=None, tpm=None, concurrency=None)])


def test_duplicate_names_or_hashes_fail_at_start_up() -> None:
    with pytest.raises(ValueError, match="two keys are named 'a'"):
        KeyRing([settings("a", ALICE_KEY), settings("a", BOB_KEY)])
    with pytest.raises(ValueError, match="key 'b' has the same hash"):
        KeyRing([settings("a", ALICE_KEY), settings("b", ALICE_KEY)])


@pytest.mark.parametrize(
    ("patterns", "model", "allowed"),
    [
        (["*"], "anything-at-all", True),
        (["claude-sonnet-4-5"], "claude-sonnet-4-5", True),
        (["claude-sonnet-4-5"], "claude-sonnet-4-5-20250929", False),
        (["claude-haiku-*"], "claude-haiku-4-5", True),
        (["claude-haiku-*"], "Claude-Haiku-4-5", False),  # case-sensitive
        (["claude-?-x"], "claude-3-x", True),
        (["gpt-[45]o"], "gpt-4o", True),
        (["gpt-[45]o"], "gpt-3o", False),
        (["odd[name]"], "odd[name]", True),  # an exact name is matched before globbing
        ([], "claude-sonnet-4-5", False),
    ],
)
def test_allows_exact_names_and_globs(patterns: list[str], model: str, allowed: bool) -> None:
    key = ClientKey(name="k", key_hash=hash_key("k"), models=tuple(patterns), rpm=None, tpm=None, concurrency=None)
    assert key.allows(model) is allowed


# ---- KeyRing ----------------------------------------------------------------------------------------------------


def test_open_ring_lets_everyone_in_anonymously() -> None:
    ring = KeyRing([])
    assert ring.is_open
    assert ring.authenticate(None) is None
    assert ring.authenticate("whatever") is None
    ring.authorize(None, "any-model")  # no error


def test_authenticate_returns_the_matching_key(ring: KeyRing) -> None:
    assert not ring.is_open
    assert [k.name for k in ring.keys] == ["alice", "bob", "carol"]
    bob = ring.authenticate(BOB_KEY)
    assert bob is not None
    assert (bob.name, bob.rpm, bob.tpm, bob.concurrency) == ("bob", 60, 1000, 2)
    alice = ring.authenticate(ALICE_KEY)
    assert alice is not None and alice.name == "alice"


@pytest.mark.parametrize("missing", [None, ""])
def test_missing_key_is_401(ring: KeyRing, missing: str | None) -> None:
    with pytest.raises(AuthenticationFailed, match=r"^missing API key") as info:
        ring.authenticate(missing)
    assert info.value.status == 401


@pytest.mark.parametrize("wrong", ["sk-tr-nope", ALICE_KEY + "x", ALICE_KEY[:-1], hash_key(ALICE_KEY), "\udcff"])
def test_wrong_key_is_401(ring: KeyRing, wrong: str) -> None:
    with pytest.raises(AuthenticationFailed, match=r"^invalid API key$") as info:
        ring.authenticate(wrong)
    assert info.value.status == 401
    assert info.value.claude_type == "authentication_error"


@pytest.mark.parametrize(("presented", "expected"), [(ALICE_KEY, "alice"), (CAROL_KEY, "carol"), ("bad", None)])
def test_authenticate_compares_against_every_hash(
    ring: KeyRing, monkeypatch: pytest.MonkeyPatch, presented: str, expected: str | None
) -> None:
    """The constant-time path: compare_digest runs once per configured key whether the first, last, or no key
    matches, always on two 32-byte digests (never the raw key)."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    if expected is None:
        with pytest.raises(AuthenticationFailed):
            ring.authenticate(presented)
    else:
        found = ring.authenticate(presented)
        assert found is not None and found.name == expected
    assert len(calls) == 3
    digest = hashlib.sha256(presented.encode()).digest()
    assert all(a == digest and len(b) == 32 for a, b in calls)
    assert [b.hex() for _, b in calls] == [k.key_hash[7:] for k in ring.keys]


def test_authorize_uses_the_key_globs(ring: KeyRing) -> None:
    bob = ring.authenticate(BOB_KEY)
    ring.authorize(bob, "claude-sonnet-4-5")
    ring.authorize(bob, "claude-haiku-4-5-20251001")
    with pytest.raises(PermissionDenied) as info:
        ring.authorize(bob, "claude-opus-4-1")
    assert info.value.message == "key 'bob' may not use model 'claude-opus-4-1'"
    assert info.value.status == 403
    ring.authorize(None, "claude-opus-4-1")  # anonymous (open proxy): no model restriction


def test_both_auth_headers_are_candidates_in_order() -> None:
    both = {"x-api-key": "sk-ant-api03-left-in-env", "Authorization": "Bearer " + ALICE_KEY}
    assert presented_keys(both) == ["sk-ant-api03-left-in-env", ALICE_KEY]
    assert presented_keys({"authorization": "bearer  k "}) == ["k"]
    assert presented_keys({"x-api-key": " ", "Authorization": "Basic abc"}) == []


def test_a_key_in_either_header_authenticates(ring: KeyRing) -> None:
    both = presented_keys({"x-api-key": "sk-ant-api03-left-in-env", "Authorization": "Bearer " + ALICE_KEY})
    key = ring.authenticate(both)
    assert key is not None and key.name == "alice"
    with pytest.raises(AuthenticationFailed, match="invalid API key"):
        ring.authenticate(["nope", "also-nope"])
    with pytest.raises(AuthenticationFailed, match="missing API key"):
        ring.authenticate([])
