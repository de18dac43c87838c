"""Settings: a TOML file (see config.example.toml), then environment variables, then CLI flags.

Everything is validated once at start-up into frozen pydantic models; nothing reads the environment
or the file after that.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import ipaddress
import itertools
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from urllib.request import (  # type: ignore[attr-defined]  # (proxy_bypass_environment: not in typeshed)
    getproxies_environment,
    proxy_bypass_environment,
)

from pydantic import BaseModel, ConfigDict, Field, FilePath, ValidationError, field_validator, model_validator

from translator.profiles import BUILTIN_PROFILES, ModelProfile

ANTHROPIC_API = "https://api.anthropic.com"


class _Frozen(BaseModel):
    # (errors name the field and what is wrong, never the value: it may be a key or a proxy's password)
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class ServerSettings(_Frozen):
    host: str = "127.0.0.1"
    # With no [[keys]] the proxy is open to anyone who reaches it, so it binds loopback only unless this is true.
    allow_open_access: bool = False
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    strict: bool = False  # every ignored OpenAI field becomes a 400
    log_level: str = "info"
    max_concurrent_requests: int = Field(1024, ge=1)  # API requests in flight; past it: 503 + Retry-After
    client_read_timeout: float = Field(60.0, gt=0)  # seconds to receive a request body (slow clients: 408)
    max_header_bytes: int = Field(16384, ge=1024)  # longest request line or header field
    drain_seconds: float = Field(0.0, ge=0)  # on SIGTERM: /readyz says 503 this long before we stop accepting
    shutdown_grace_seconds: float = Field(30.0, ge=0)  # then in-flight requests get this long to finish
    # Written with the serving process's pid (the parent's, with workers) while it runs: `translator reload`
    # reads it to know whom to signal. Empty: none (then `translator reload --pid PID`, or send SIGHUP).
    pid_file: str = ""


class UpstreamSettings(_Frozen):
    name: str = "default"
    base_url: str = ANTHROPIC_API
    api_key: str = Field("", repr=False)  # empty: forward the client's own key (never in a repr, nor is proxy)
    auth: Literal["x-api-key", "bearer"] = "x-api-key"
    anthropic_version: str = "2023-06-01"
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(600.0, gt=0)  # longest wait for the first byte, or between two bytes
    stream_idle_timeout: float = Field(120.0, gt=0)  # longest wait between two stream events (Claude pings)
    total_timeout: float = Field(900.0, gt=0)
    weight: float = Field(1.0, gt=0)  # share of requests among the upstreams serving a model
    models: list[str] = ["*"]  # exact names or glob patterns of the upstream model ids it serves
    # An http:// or https:// proxy to reach it through, [user:password@]host:port; "" for none. Unset: the
    # environment's (HTTPS_PROXY or HTTP_PROXY by the base URL's scheme, else ALL_PROXY; NO_PROXY), never
    # for a loopback host.
    proxy: str | None = Field(None, repr=False)
    max_connections: int = Field(0, ge=0)  # connections open to it at once; 0: no cap
    # TLS: CA certificates to trust besides the system's (an internal gateway's own CA), and a client
    # certificate (with its key, unless the certificate file holds it) for gateways that ask for one.
    ca_file: FilePath | None = None
    client_cert: FilePath | None = None
    client_key: FilePath | None = None

    @field_validator("base_url")
    @classmethod
    def _http_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http:// or https:// URL with a host (such as https://api.anthropic.com)")
        return value

    @field_validator("proxy")
    @classmethod
    def _http_proxy(cls, value: str | None) -> str | None:
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("proxy: an http:// or https:// URL with a host (socks proxies are not supported)")
            try:
                parts.port  # noqa: B018 (a port that is not a number raises, naming it: maybe a password's piece)
            except ValueError:
                raise ValueError("proxy: the port is not a number from 0 to 65535 (a password holding / ? # "
                                 "or @ must be percent-encoded)") from None
        return value

    @model_validator(mode="after")
    def _key_with_its_cert(self) -> UpstreamSettings:
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key is set without client_cert: the key is the certificate's own")
        return self


class RoutingSettings(_Frozen):
    max_attempts: int = Field(3, ge=1)  # upstream attempts for one request, the first included
    max_retry_seconds: float = Field(30.0, ge=0)  # total time spent waiting between attempts
    failures_before_cooldown: int = Field(3, ge=1)  # consecutive failures that take an upstream out
    cooldown_seconds: float = Field(30.0, ge=0)  # how long it stays out before it is probed again
    sticky_ttl_seconds: float = Field(3600.0, ge=0)  # how long a conversation keeps its upstream; 0: off
    # Headers naming a conversation, besides metadata.user_id (Claude route) and user (OpenAI route).
    session_headers: list[str] = ["x-session-id", "x-claude-code-session-id"]


class KeySettings(_Frozen):
    """A client key: stored as a hash (``translator keys create`` prints both)."""

    name: str
    hash: str  # "sha256:<hex>"
    models: list[str] = ["*"]  # exact names or glob patterns this key may use
    rpm: int | None = Field(None, ge=1)  # requests per minute
    tpm: int | None = Field(None, ge=1)  # tokens (input + output) per minute
    concurrency: int | None = Field(None, ge=1)  # requests in flight at once
    # Usage and budgets (translator.gateway.usage): an admin key may read /metrics and /v1/usage; past a
    # budget (tokens, or USD from [[prices]]) in its UTC day or month, the key is refused until the next one.
    admin: bool = False
    budget_tokens: int | None = Field(None, ge=1)  # input + output + cache tokens in the period
    budget_usd: float | None = Field(None, gt=0)
    budget_period: Literal["day", "month"] = "month"

    @field_validator("hash")
    @classmethod
    def _sha256_hash(cls, value: str) -> str:
        if not _KEY_HASH.fullmatch(value.strip()):
            raise ValueError("not 'sha256:' and 64 hex digits (`translator keys create` prints one)")
        return value

    @property
    def has_limits(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.concurrency is not None

    @property
    def has_budget(self) -> bool:
        return self.budget_tokens is not None or self.budget_usd is not None


class PriceSettings(_Frozen):
    """A ``[[prices]]`` entry: USD per million tokens for the models its glob matches, ahead of the built-in
    table. Cache prices left out follow Anthropic's rule: 5-minute writes 1.25x input, 1-hour writes 2x,
    reads 0.1x."""

    model: str  # an exact upstream model id or a glob
    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_write_5m: float | None = Field(None, ge=0)
    cache_write_1h: float | None = Field(None, ge=0)
    cache_read: float | None = Field(None, ge=0)


_KEY_HASH = re.compile(r"sha256:[0-9a-fA-F]{64}")
REDIS_SCHEMES = ("redis", "rediss", "unix")  # what redis-py's from_url reads


class RedisSettings(_Frozen):
    url: str = ""  # e.g. redis://127.0.0.1:6379/0; empty: limits and stickiness live in process memory
    # While Redis does not answer, a rate-limited key's request is let through unmetered ("allow", as Envoy's
    # rate limit filter does by default) or refused with 503 and Retry-After ("deny", and /readyz fails).
    on_error: Literal["allow", "deny"] = "allow"
    timeout_seconds: float = Field(1.0, gt=0)  # to connect, and for each reply: no Redis call hangs a request
    retry_seconds: float = Field(1.0, gt=0)  # while Redis is down, one call tries it again this often

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in REDIS_SCHEMES:
            raise ValueError("not a redis://, rediss:// or unix:// URL (leave it empty for no Redis)")
        return value


class ResponsesSettings(_Frozen):
    # Keep responses made with store (the Responses API's default) for previous_response_id, GET and DELETE:
    # in process memory, or in Redis when [redis] url is set.
    store: bool = True
    ttl_seconds: float = Field(3600.0, gt=0)  # how long a stored response can be continued
    max_store_bytes: int = Field(256 * 1024 * 1024, ge=1024)  # in memory: past it, the oldest go first


class ImageSettings(_Frozen):
    fetch: bool = False  # download http(s) image URLs and inline them as base64
    max_bytes: int = Field(5 * 1024 * 1024, ge=1)
    timeout: float = Field(10.0, gt=0)
    max_redirects: int = Field(3, ge=0)
    max_images: int = Field(20, ge=1)  # image URLs fetched per request
    # false: URLs that resolve to loopback, private, link-local or reserved addresses are refused (SSRF)
    allow_private_addresses: bool = False


class ProfileSettings(_Frozen):
    max_tokens: int | None = Field(None, ge=1)
    structured_output: bool | None = None
    thinking: bool | None = None  # false: reasoning_effort and thinking are dropped (and reported), not sent
    # budget: reasoning_effort -> thinking.type enabled + budget_tokens; adaptive: thinking.type adaptive +
    # output_config.effort (the 4.6 models and later, where budgets are deprecated or refused)
    thinking_mode: Literal["budget", "adaptive"] | None = None
    max_output_tokens: int | None = Field(None, ge=1)  # the model's output limit: max_tokens is capped to it
    # Automatic prompt caching ([caching]): false turns it off for these models; the minimum cacheable prompt
    # in tokens; whether the model takes the 1-hour cache TTL. Unset: the family's (translator.profiles).
    prompt_caching: bool | None = None
    cache_min_tokens: int | None = Field(None, ge=1)
    cache_ttl_1h: bool | None = None


class ModelSettings(_Frozen):
    default_max_tokens: int = Field(4096, ge=1)
    list_cache_seconds: float = Field(300.0, ge=0)  # how long GET /v1/models reuses the upstream's list
    aliases: dict[str, str] = {}
    # Glob pattern -> settings; the first matching pattern (in file order, then built-ins) wins.
    profiles: dict[str, ProfileSettings] = {}


class CachingSettings(_Frozen):
    # Place Claude's cache_control breakpoints for OpenAI-shape clients (chat and Responses routes), which
    # set none: see translator.convert.caching. A models.profiles entry can turn it off per model.
    auto: bool = True
    # The same on the Claude route, for requests that carry no cache_control (Claude clients such as Claude
    # Code place their own, so it is off by default).
    claude_route: bool = False
    max_prefixes: int = Field(100_000, ge=1)  # in memory: the recent prefixes' hashes kept at most


class Settings(_Frozen):
    server: ServerSettings = ServerSettings()
    upstream: UpstreamSettings = UpstreamSettings()
    upstreams: list[UpstreamSettings] = []  # several upstreams; when given, [upstream] is not used
    routing: RoutingSettings = RoutingSettings()
    images: ImageSettings = ImageSettings()
    models: ModelSettings = ModelSettings()
    keys: list[KeySettings] = []
    redis: RedisSettings = RedisSettings()
    responses: ResponsesSettings = ResponsesSettings()
    prices: list[PriceSettings] = []  # USD per million tokens, by model glob; before the built-in table
    caching: CachingSettings = CachingSettings()
    demo: bool = False

    @model_validator(mode="before")
    @classmethod
    def _name_upstreams(cls, data: Any) -> Any:
        """Each of several upstreams needs its own name: health, cool-downs, stickiness and metrics are kept
        by name. Unnamed ones are called upstream-1, upstream-2, ... in file order."""
        if isinstance(data, dict) and isinstance(data.get("upstreams"), list):
            listed = data["upstreams"]
            taken = {u["name"] for u in listed if isinstance(u, dict) and isinstance(u.get("name"), str)}
            fresh = (name for i in itertools.count(1) if (name := f"upstream-{i}") not in taken)
            data = {**data, "upstreams": [
                {"name": next(fresh), **u} if isinstance(u, dict) and "name" not in u else u for u in listed
            ]}
        return data

    @model_validator(mode="after")
    def _unique_upstream_names(self) -> Settings:
        names = [u.name for u in self.upstreams]
        if len(set(names)) < len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"upstream names must be unique: {', '.join(twice)} used more than once")
        return self

    @model_validator(mode="after")
    def _unique_keys(self) -> Settings:
        """Two keys of one name would share limits and log lines; two of one hash, an ambiguous identity."""
        names = [k.name for k in self.keys]
        if len(set(names)) < len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"key names must be unique: {', '.join(twice)} used more than once")
        hashes = [k.hash.strip().lower() for k in self.keys]
        if len(set(hashes)) < len(hashes):
            raise ValueError("two keys have the same hash")
        return self

    @property
    def upstream_list(self) -> list[UpstreamSettings]:
        return self.upstreams or [self.upstream]

    def resolve_model(self, name: str) -> tuple[str, ModelProfile]:
        """A client's model name -> the upstream model id and what we know of it. Each setting comes from
        the first matching pattern that sets it: the config's profiles, then the built-in table."""
        model = self.models.aliases.get(name, name)
        found: dict[str, Any] = {}
        configured = [(pattern, prof.model_dump(exclude_none=True)) for pattern, prof in self.models.profiles.items()]
        builtin = [(pattern, _set_fields(prof)) for pattern, prof in BUILTIN_PROFILES.items()]
        for pattern, fields in [*configured, *builtin]:
            if fnmatch.fnmatchcase(model, pattern):
                for key, value in fields.items():
                    found.setdefault(key, value)
        found.setdefault("max_tokens", self.models.default_max_tokens)
        return model, ModelProfile(**found)


def _set_fields(profile: ModelProfile) -> dict[str, Any]:
    """A built-in profile's fields that it sets (None: left to a broader pattern, or to the default)."""
    return {name: value for name, value in dataclasses.asdict(profile).items() if value is not None}


LOOPBACK = ("127.", "::1", "localhost")


def open_access_refusal(settings: Settings) -> str | None:
    """With no client keys anyone who reaches the port spends the upstream key: loopback only, unless told.
    Checked at start and on every reload (a reload that removes the last key must not open the proxy)."""
    exposed = not settings.server.host.startswith(LOOPBACK)
    if exposed and not settings.keys and not settings.server.allow_open_access:
        return (
            f"refusing to bind {settings.server.host} with no client keys configured: anyone who can reach it "
            "could use the upstream. Add [[keys]] (see `translator keys create`) or set "
            "server.allow_open_access = true."
        )
    return None


_ENV: dict[str, tuple[str, str]] = {
    "ANTHROPIC_BASE_URL": ("upstream", "base_url"),
    "ANTHROPIC_API_KEY": ("upstream", "api_key"),
    "TRANSLATOR_HOST": ("server", "host"),
    "TRANSLATOR_PORT": ("server", "port"),
    "TRANSLATOR_ALLOW_OPEN_ACCESS": ("server", "allow_open_access"),
}


def load_settings(
    path: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    proxies: Mapping[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """``env`` stands in for ``os.environ``'s settings variables (``_ENV``), ``proxies`` for its proxy
    variables as urllib reads them (``getproxies_environment()``: ``{"https": ..., "no": ...}``)."""
    env = os.environ if env is None else env
    path = path or env.get("TRANSLATOR_CONFIG")
    data: dict[str, Any] = tomllib.loads(Path(path).read_text(encoding="utf-8")) if path else {}
    for var, (section, key) in _ENV.items():
        if env.get(var):
            _table(data, section)[key] = env[var]
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, key = dotted.rpartition(".")
        target = _table(data, section) if section else data
        target[key] = value
    settings = Settings.model_validate(data)
    return _with_env_proxies(settings, getproxies_environment() if proxies is None else proxies)


def workers_refusal(settings: Settings, workers: int) -> str | None:
    """Rate limits and budgets kept in process memory count per process: N workers would let a key through N
    times its limit, or spend N times its budget. So with several workers, they need Redis (shared and exact),
    or the server does not start."""
    if workers <= 1 or settings.redis.url:
        return None
    limited = [k.name for k in settings.keys if k.has_limits]
    budgeted = [k.name for k in settings.keys if k.has_budget]
    if not limited and not budgeted:
        return None
    kinds = [(kind, names) for kind, names in (("limit", limited), ("budget", budgeted)) if names]
    what = " and ".join({"limit": "rate limits", "budget": "budgets"}[kind] for kind, _ in kinds)
    whole = " or ".join(kind for kind, _ in kinds)
    listed = "; ".join(f"keys with {kind}s: {', '.join(names)}" for kind, names in kinds)
    return (f"--workers {workers} with {what} in process memory would let each worker through a key's "
            f"whole {whole} ({listed}): set [redis] url to share the {'s and '.join(k for k, _ in kinds)}s "
            "between workers, or run one worker")


def one_line(err: Exception) -> str:
    """A config mistake as one line: pydantic's report is a paragraph per error (location, message, a link)."""
    if not isinstance(err, ValidationError):
        return " ".join(str(err).split())
    return "; ".join(_one_error(e["loc"], e["msg"].removeprefix("Value error, ")) for e in err.errors())


def _one_error(loc: tuple[int | str, ...], message: str) -> str:
    return f"{_location(loc)}: {message}" if loc else message


def _location(loc: tuple[int | str, ...]) -> str:
    """``('keys', 1, 'hash')`` -> ``keys[1].hash``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _with_env_proxies(settings: Settings, proxies: Mapping[str, str]) -> Settings:
    """Each upstream whose ``proxy`` is unset gets the environment's, or "" (none). Resolved once, here,
    rather than by aiohttp per request (``trust_env``): the start-up line names it, a bad one stops the
    start, and loopback upstreams go direct, which ``NO_PROXY`` alone would not see to."""
    if settings.demo or not proxies:  # (the demo upstream is in process, on loopback)
        return settings

    def resolved(upstream: UpstreamSettings, section: str) -> UpstreamSettings:
        if upstream.proxy is not None:
            return upstream
        proxy = proxy_for(upstream.base_url, proxies)
        if proxy and "://" not in proxy:
            proxy = f"http://{proxy}"  # (a bare host:port, as curl reads it)
        try:
            UpstreamSettings._http_proxy(proxy)
        except ValueError as err:
            raise ValueError(f"the environment's proxy for {upstream.base_url}: {err}; set proxy in {section} "
                             'to override it ("" for none)') from None
        return upstream.model_copy(update={"proxy": proxy})

    if settings.upstreams:  # (then [upstream] is not used: nothing of it is resolved)
        listed = [resolved(u, f'[[upstreams]] "{u.name}"') for u in settings.upstreams]
        return settings.model_copy(update={"upstreams": listed})
    return settings.model_copy(update={"upstream": resolved(settings.upstream, "[upstream]")})


def proxy_for(url: str, proxies: Mapping[str, str]) -> str:
    """The proxy for an upstream at ``url`` ("" for none): by its scheme, else ``all`` (as curl and httpx
    read ALL_PROXY); none for a host on this machine or one that ``no`` names (urllib's reading of
    NO_PROXY: ``*``, or names matching the host, its ``host:port``, or a domain it is in)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not host or _loopback(host) or proxy_bypass_environment(f"{host}:{port}", proxies):
        return ""
    return proxies.get(parts.scheme) or proxies.get("all") or ""


def _loopback(host: str) -> bool:
    """A host on this machine, which a proxy would take for its own: localhost names, and loopback or
    unspecified addresses (``127.0.0.1``, ``::1``, ``0.0.0.0``)."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _table(data: dict[str, Any], section: str) -> dict[str, Any]:
    """The ``[section]`` table, made if absent; a section that is not a table is the config's mistake."""
    table = data.setdefault(section, {})
    if not isinstance(table, dict):
        raise ValueError(f"'{section}' must be a table ([{section}]), not {type(table).__name__}")
    return table
