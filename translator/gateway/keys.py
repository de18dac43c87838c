"""Client API keys: minting, hashing, authentication and model permissions.

The proxy never stores a client key, only ``"sha256:<hex>"`` of it: a leaked config file then grants nothing.
Keys are 32 random bytes, so a plain (unsalted, fast) SHA-256 is enough; a slow password hash would only cost
latency on every request without adding safety against guessing.

Authentication hashes the presented key and compares it with **every** configured hash using
``hmac.compare_digest``, never a dict lookup or an early ``break``: the time taken then depends only on how many
keys are configured, not on which one (if any) matched or how many leading bytes were right.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from translator.config import KeySettings
from translator.errors import AuthenticationFailed, PermissionDenied

KEY_PREFIX = "sk-tr-"
HASH_PREFIX = "sha256:"
_HEX_DIGITS = frozenset("0123456789abcdef")


def new_key() -> str:
    """A fresh client key; the prefix makes it recognisable in secret scanners and support tickets."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The form stored in the config: ``"sha256:" + hex digest`` of the key's UTF-8 bytes."""
    return HASH_PREFIX + _digest(key).hex()


def _digest(key: str) -> bytes:
    # surrogatepass: a header decoded with odd bytes must still hash (to a value no configured key has).
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def presented_keys(headers: Mapping[str, str]) -> list[str]:
    """The keys a client sent: ``x-api-key`` (Claude SDKs), then ``Authorization: Bearer`` (OpenAI SDKs).
    Both count: Claude Code with ``ANTHROPIC_API_KEY`` left set and the proxy's key as
    ``ANTHROPIC_AUTH_TOKEN`` sends the two at once.

    Header names and the ``Bearer`` scheme are matched case-insensitively, so a plain ``dict`` works as well as
    aiohttp's case-insensitive headers. Blank values count as absent.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    found = []
    api_key = lowered.get("x-api-key", "").strip()
    if api_key:
        found.append(api_key)
    scheme, _, credentials = lowered.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        found.append(credentials.strip())
    return found


@dataclass(frozen=True)
class ClientKey:
    """One configured client key, as the rest of the gateway sees it (the hash, never the key)."""

    name: str
    key_hash: str
    models: tuple[str, ...]
    rpm: int | None
    tpm: int | None
    concurrency: int | None
    admin: bool = False  # may read /metrics and /v1/usage
    budget_tokens: int | None = None
    budget_usd: float | None = None
    budget_period: Literal["day", "month"] = "month"

    @classmethod
    def from_settings(cls, settings: KeySettings) -> ClientKey:
        return cls(
            name=settings.name,
            key_hash=_normalized_hash(settings.hash, settings.name),
            models=tuple(settings.models),
            rpm=settings.rpm,
            tpm=settings.tpm,
            concurrency=settings.concurrency,
            admin=settings.admin,
            budget_tokens=settings.budget_tokens,
            budget_usd=settings.budget_usd,
            budget_period=settings.budget_period,
        )

    @property
    def short_hash(self) -> str:
        """The first 8 hex digits of the hash: enough to tell keys apart in logs, useless to an attacker."""
        return self.key_hash.removeprefix(HASH_PREFIX)[:8]

    @property
    def has_limits(self) -> bool:
        """Whether any rate limit applies, so a limiter can skip keys without any."""
        return self.rpm is not None or self.tpm is not None or self.concurrency is not None

    @property
    def has_budget(self) -> bool:
        return self.budget_tokens is not None or self.budget_usd is not None

    def allows(self, model: str) -> bool:
        """Exact names first (so ``[`` in a real name is not read as a glob), then case-sensitive globs."""
        return model in self.models or any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models)


def _normalized_hash(value: str, name: str) -> str:
    """``sha256:<64 hex>`` in lower case; anything else is a config mistake worth failing start-up for."""
    hex_part = value.strip().removeprefix(HASH_PREFIX).lower()
    if not value.strip().startswith(HASH_PREFIX) or len(hex_part) != 64 or not set(hex_part) <= _HEX_DIGITS:
        raise ValueError(f"key '{name}': hash must be 'sha256:' and 64 hex digits (see `translator keys create`)")
    return HASH_PREFIX + hex_part


class KeyRing:
    """The configured client keys. With none configured the proxy is open and every request is anonymous."""

    def __init__(self, keys: Sequence[KeySettings]) -> None:
        self._keys = tuple(ClientKey.from_settings(k) for k in keys)
        _check_unique(self._keys)
        self._digests = tuple(bytes.fromhex(k.key_hash.removeprefix(HASH_PREFIX)) for k in self._keys)

    @property
    def is_open(self) -> bool:
        return not self._keys

    @property
    def keys(self) -> tuple[ClientKey, ...]:
        return self._keys

    def authenticate(self, presented: str | Sequence[str] | None) -> ClientKey | None:
        """The key's identity, None when the proxy is open; ``AuthenticationFailed`` when missing or unknown.
        Several presented keys (both auth headers): the first that is one of ours."""
        if self.is_open:
            return None
        candidates = [presented] if isinstance(presented, str) else list(presented or [])
        candidates = [c for c in candidates if c]
        if not candidates:
            raise AuthenticationFailed("missing API key: send it as 'x-api-key' or 'Authorization: Bearer <key>'")
        for candidate in candidates:
            found = self._match(_digest(candidate))
            if found is not None:
                return found
        raise AuthenticationFailed("invalid API key")

    def _match(self, candidate: bytes) -> ClientKey | None:
        found: ClientKey | None = None
        for key, expected in zip(self._keys, self._digests, strict=True):
            # compare_digest runs for every key: no early exit, so timing does not reveal which one matched.
            if hmac.compare_digest(candidate, expected) and found is None:
                found = key
        return found

    def authorize(self, key: ClientKey | None, model: str) -> None:
        """Raise ``PermissionDenied`` unless the key may use the model (anonymous callers may use any)."""
        if key is not None and not key.allows(model):
            raise PermissionDenied(f"key '{key.name}' may not use model '{model}'")

    def require_admin(self, presented: Sequence[str]) -> None:
        """For ``/metrics`` and ``/v1/usage``, which show every key's name and traffic: open when the proxy is
        open (no keys), else an admin key (``AuthenticationFailed`` without a key of ours, ``PermissionDenied``
        with one that is not an admin's)."""
        key = self.authenticate(presented)
        if key is not None and not key.admin:
            raise PermissionDenied(f"key '{key.name}' is not an admin key ([[keys]] admin = true)")


def _check_unique(keys: Sequence[ClientKey]) -> None:
    """Duplicate names would merge two keys' limits and logs; duplicate hashes would make identity ambiguous."""
    names: set[str] = set()
    hashes: set[str] = set()
    for key in keys:
        if key.name in names:
            raise ValueError(f"two keys are named '{key.name}'")
        if key.key_hash in hashes:
            raise ValueError(f"key '{key.name}' has the same hash as another key")
        names.add(key.name)
        hashes.add(key.key_hash)
