from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from translator.config import Settings, UpstreamSettings, load_settings
from translator.convert import ModelProfile

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_loads_with_defaults() -> None:
    settings = load_settings(str(ROOT / "config.example.toml"), env={})
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8080
    assert settings.upstream.base_url == "https://api.anthropic.com"
    assert settings.upstream.auth == "x-api-key"
    assert settings.images.fetch is False


def test_environment_overrides_file_and_flags_override_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[server]\nport = 9000\n[upstream]\nbase_url = "http://file"\n')
    env = {
        "TRANSLATOR_CONFIG": str(cfg),
        "ANTHROPIC_BASE_URL": "http://env",
        "ANTHROPIC_API_KEY": "sk-env",
        "TRANSLATOR_HOST": "0.0.0.0",
    }
    settings = load_settings(env=env, overrides={"server.port": 9100, "server.host": None})
    assert settings.upstream.base_url == "http://env"
    assert settings.upstream.api_key == "sk-env"
    assert settings.server.host == "0.0.0.0"
    assert settings.server.port == 9100


def test_unknown_keys_are_rejected(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[server]\nprot = 1\n")
    with pytest.raises(ValidationError):
        load_settings(str(cfg), env={})


def test_model_aliases_and_profiles(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[models]\ndefault_max_tokens = 1000\n[models.aliases]\n"gpt-4o" = "claude-sonnet-4-5"\n'
        '[models.profiles."claude-sonnet-4-5*"]\nmax_tokens = 2000\n'
    )
    settings = load_settings(str(cfg), env={})
    assert settings.resolve_model("gpt-4o") == ("claude-sonnet-4-5", ModelProfile(2000, True, max_output_tokens=64000))
    assert settings.resolve_model("claude-3-haiku-20240307") == (
        "claude-3-haiku-20240307",
        ModelProfile(4096, False, thinking=False, max_output_tokens=4096),
    )
    assert settings.resolve_model("claude-3-5-haiku-latest")[1] == ModelProfile(
        4096, False, thinking=False, max_output_tokens=8192
    )
    assert settings.resolve_model("claude-3-7-sonnet-latest") == (
        "claude-3-7-sonnet-latest",
        ModelProfile(8192, False, thinking=True, max_output_tokens=64000),
    )
    assert settings.resolve_model("claude-opus-4-1")[1] == ModelProfile(8192, True, max_output_tokens=32000)
    assert settings.resolve_model("llama") == ("llama", ModelProfile(1000, False))


@pytest.mark.parametrize(("model", "mode", "structured", "output"), [
    ("claude-sonnet-4-20250514", "budget", False, 64000),
    ("claude-opus-4-0", "budget", False, 32000),
    ("claude-sonnet-4@20250514", "budget", False, 64000),  # Vertex AI's spelling
    ("claude-sonnet-4-5-20250929", "budget", True, 64000),  # not caught by a broader pattern below it
    ("claude-opus-4-5", "budget", True, 64000),
    ("claude-sonnet-4-6", "adaptive", True, 128000),
    ("claude-opus-4-7", "adaptive", True, 128000),
    ("claude-opus-5", "adaptive", True, 128000),
    ("claude-sonnet-5-5", "adaptive", True, 128000),
    ("claude-nova-9", "adaptive", False, None),  # an unknown newer family
])
def test_built_in_profiles_by_family(model: str, mode: str, structured: bool, output: int | None) -> None:
    profile = Settings().resolve_model(model)[1]
    assert (profile.thinking, profile.thinking_mode, profile.structured_output, profile.max_output_tokens) == (
        True, mode, structured, output)


def test_a_profile_can_turn_thinking_off(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[models.profiles."my-gateway-model"]\nthinking = false\nmax_tokens = 512\n')
    settings = load_settings(str(cfg), env={})
    assert settings.resolve_model("my-gateway-model") == ("my-gateway-model", ModelProfile(512, False, thinking=False))


def test_unnamed_upstreams_get_names_of_their_own() -> None:
    settings = Settings.model_validate({"upstreams": [{"base_url": "http://a"}, {"base_url": "http://b", "name": "b"},
                                                      {"base_url": "http://c"}]})
    assert [u.name for u in settings.upstream_list] == ["upstream-1", "b", "upstream-2"]
    clash = Settings.model_validate({"upstreams": [{"base_url": "http://a", "name": "upstream-1"},
                                                   {"base_url": "http://b"}]})
    assert [u.name for u in clash.upstream_list] == ["upstream-1", "upstream-2"]  # a name given is never reused


def test_two_upstreams_of_one_name_are_refused() -> None:
    with pytest.raises(ValidationError, match="upstream names must be unique: x used more than once"):
        Settings.model_validate({"upstreams": [{"base_url": "http://a", "name": "x"},
                                               {"base_url": "http://b", "name": "x"}]})


def test_a_bad_config_is_a_message_and_exit_2_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from translator.cli import main

    cfg = tmp_path / "c.toml"
    cfg.write_text("[server]\nprot = 1\n")
    assert main(["serve", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err == "translator: cannot load the settings: server.prot: Extra inputs are not permitted\n"
    assert "Traceback" not in err
    assert main(["serve", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "No such file or directory" in capsys.readouterr().err
    cfg.write_text("[server\n")
    assert main(["serve", "--config", str(cfg)]) == 2
    capsys.readouterr()
    cfg.write_text("server = 5\n")  # a key where a table belongs, which --port would write into
    assert main(["serve", "--config", str(cfg), "--port", "9"]) == 2
    assert "'server' must be a table ([server]), not int" in capsys.readouterr().err
    cfg.write_bytes(b"[server]\nhost = '\xff'\n")  # not UTF-8
    assert main(["serve", "--config", str(cfg)]) == 2


def test_config_warnings_for_settings_that_start_but_mislead() -> None:
    from translator.cli import config_warnings

    keys = [{"name": "a", "hash": "sha256:" + "0" * 64}]
    several = Settings.model_validate({"upstreams": [{"base_url": "http://a", "api_key": "k"}]})
    assert config_warnings(several, {"ANTHROPIC_API_KEY": "sk-ant"}) == [
        "ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL set up [upstream], which [[upstreams]] replaces: they are not used"
    ]
    keyless = Settings.model_validate({"keys": keys})
    assert config_warnings(keyless, {}) == [
        "client keys are configured but upstream default has no api_key: our keys are never forwarded, so "
        "requests reach it without credentials"
    ]
    partly = Settings.model_validate({"keys": keys, "upstreams": [{"base_url": "http://a", "api_key": "k"},
                                                                  {"base_url": "http://b"}]})
    assert config_warnings(partly, {})[0].startswith("client keys are configured but upstream upstream-2 has no")
    assert config_warnings(Settings.model_validate({"keys": keys, "upstream": {"api_key": "k"}}), {}) == []
    assert config_warnings(Settings(), {"ANTHROPIC_API_KEY": "sk-ant"}) == []


def test_big_blocks_go_back_to_the_os_on_glibc() -> None:
    import platform

    from translator.cli import return_big_blocks_to_the_os

    applied = return_big_blocks_to_the_os({})
    assert applied == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
    # an operator's own threshold stands
    assert return_big_blocks_to_the_os({"MALLOC_MMAP_THRESHOLD_": "33554432"}) is False
    assert return_big_blocks_to_the_os({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=33554432"}) is False
    assert return_big_blocks_to_the_os({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}) == applied


# --- the upstream's proxy: the settings' own, else the environment's ---


@pytest.mark.parametrize(
    ("proxies", "expected"),
    [
        ({"http": "http://plain:3"}, ""),  # the https upstream's scheme's only
        ({"all": "http://all:4"}, "http://all:4"),  # else ALL_PROXY
        ({"https": "proxy.corp:3128"}, "http://proxy.corp:3128"),  # a bare host:port, as curl reads it
        ({"https": "https://tls.corp:3129"}, "https://tls.corp:3129"),  # an https:// proxy
        ({"https": "http://p:1", "no": "anthropic.com"}, ""),  # a domain and its subdomains
        ({"https": "http://p:1", "no": ".anthropic.com"}, ""),
        ({"https": "http://p:1", "no": "*"}, ""),
        ({"https": "http://p:1", "no": "api.anthropic.com:443"}, ""),
        ({"https": "http://p:1", "no": "api.anthropic.com:8443, thropic.com"}, "http://p:1"),
        ({}, None),
    ],
)
def test_the_environments_proxy_for_the_upstream(proxies: dict[str, str], expected: str | None) -> None:
    assert load_settings(env={}, proxies=proxies).upstream.proxy == expected


@pytest.fixture
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """os.environ without its proxy variables, and not under CGI, for the test to set its own."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
            monkeypatch.delenv(name)
    return monkeypatch


def test_the_variables_are_read_as_urllib_reads_them(no_proxy_variables: pytest.MonkeyPatch) -> None:
    env = no_proxy_variables
    env.setenv("HTTPS_PROXY", "http://upper:1")
    assert load_settings(env={}).upstream.proxy == "http://upper:1"
    env.setenv("https_proxy", "http://lower:2")  # lower case first
    assert load_settings(env={}).upstream.proxy == "http://lower:2"
    env.setenv("https_proxy", "")  # an empty one unsets it
    assert load_settings(env={}).upstream.proxy is None


def test_http_proxy_is_not_read_under_cgi(no_proxy_variables: pytest.MonkeyPatch) -> None:
    env = {"ANTHROPIC_BASE_URL": "http://gw.example"}
    no_proxy_variables.setenv("HTTP_PROXY", "http://client-chosen:1")
    assert load_settings(env=env).upstream.proxy == "http://client-chosen:1"
    no_proxy_variables.setenv("REQUEST_METHOD", "")  # (set, even empty: CGI, where a client can set HTTP_PROXY)
    assert not load_settings(env=env).upstream.proxy


@pytest.mark.parametrize(
    ("url", "no_proxy", "proxied"),
    [
        ("http://10.1.2.3:9000", "10.1.2.3", False),
        ("http://10.1.2.3:9000", "10.1.2.3:9000", False),
        ("http://10.1.2.3:9000", "10.0.0.0/8", True),  # (CIDR ranges are not read: urllib's NO_PROXY)
        ("http://[2001:db8::1]:9000", "2001:db8::1", False),
        ("http://gateway.internal:8080", "internal", False),
        ("http://gateway.internal:8080", "ateway.internal", True),  # a suffix of the name is not its domain
        ("http://GW.Example.COM:8080", "example.com", False),
        ("http://gw.example.com.:8080", "example.com", False),  # (the host's trailing dot is ignored)
    ],
)
def test_no_proxy(url: str, no_proxy: str, proxied: bool) -> None:
    settings = load_settings(env={"ANTHROPIC_BASE_URL": url}, proxies={"http": "http://egress:3128", "no": no_proxy})
    assert settings.upstream.proxy == ("http://egress:3128" if proxied else "")


@pytest.mark.parametrize(
    "host", ["localhost", "localhost.", "a.localhost", "127.0.0.1", "127.0.0.2", "[::1]", "0.0.0.0", "[::]"]
)
def test_this_machine_goes_direct(host: str) -> None:
    settings = load_settings(env={"ANTHROPIC_BASE_URL": f"http://{host}:9000"}, proxies={"http": "http://egress:3128"})
    assert settings.upstream.proxy == ""


def test_the_settings_proxy_wins_and_empty_means_none(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[upstreams]]\nbase_url = "https://a.example"\nproxy = "http://mine:8080"\n'
                   '[[upstreams]]\nbase_url = "https://b.example"\nproxy = ""\n'
                   '[[upstreams]]\nbase_url = "http://c.example"\n')
    settings = load_settings(str(cfg), env={}, proxies={"https": "http://env:1", "http": "http://env:2"})
    assert [u.proxy for u in settings.upstream_list] == ["http://mine:8080", "", "http://env:2"]


def test_socks_proxies_are_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"the environment's proxy for https://api.anthropic.com: .*socks proxies are "
                                         r"not supported.*set proxy in \[upstream\]"):
        load_settings(env={}, proxies={"all": "socks5://127.0.0.1:1080"})
    cfg = tmp_path / "c.toml"
    cfg.write_text('[upstream]\nproxy = "socks5://proxy:1080"\n')
    with pytest.raises(ValidationError, match="not supported"):
        load_settings(str(cfg), env={}, proxies={})
    # The demo upstream is in process: the environment's proxies do not matter, even a broken one
    settings = load_settings(env={}, proxies={"all": "socks5://127.0.0.1:1080"}, overrides={"demo": True})
    assert settings.upstream.proxy is None


def test_a_proxy_password_never_shows_in_an_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    for bad in ("socks5://bob:hunter2@proxy.corp:1080", "http://bob:hunter2@proxy.corp:31 28",
                "http://bob:hunt/er2@proxy.corp:3128"):
        cfg.write_text(f'[upstream]\nproxy = "{bad}"\n')
        with pytest.raises(ValidationError) as caught:
            load_settings(str(cfg), env={}, proxies={})
        assert "hunt" not in str(caught.value) and "proxy" in str(caught.value)
        with pytest.raises(ValueError) as raised:
            load_settings(env={}, proxies={"https": bad})
        assert "hunt" not in str(raised.value) and "set proxy in [upstream]" in str(raised.value)


def test_with_several_upstreams_only_theirs_are_resolved(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[upstreams]]\nname = "a"\nbase_url = "https://a.example"\nproxy = ""\n'
                   '[[upstreams]]\nname = "b"\nbase_url = "https://b.example"\nproxy = "http://p:1"\n')
    broken = {"all": "socks5://127.0.0.1:1080"}
    assert [u.proxy for u in load_settings(str(cfg), env={}, proxies=broken).upstream_list] == ["", "http://p:1"]
    cfg.write_text(cfg.read_text().replace('proxy = "http://p:1"\n', ""))
    with pytest.raises(ValueError, match=r'the environment\'s proxy for https://b.example: .*\[\[upstreams\]\] "b"'):
        load_settings(str(cfg), env={}, proxies=broken)


# --- the upstream's TLS files ---


TLS = ROOT / "tests" / "fixtures" / "tls"


def test_tls_files_are_read_from_the_config(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[upstream]\nca_file = "{TLS / "ca.crt"}"\nclient_cert = "{TLS / "client.crt"}"\n'
                   f'client_key = "{TLS / "client.key"}"\nmax_connections = 50\n')
    upstream = load_settings(str(cfg), env={}, proxies={}).upstream
    assert (upstream.ca_file, upstream.client_cert, upstream.client_key) == (
        TLS / "ca.crt", TLS / "client.crt", TLS / "client.key")
    assert upstream.max_connections == 50
    assert UpstreamSettings().max_connections == 0  # (no cap)


@pytest.mark.parametrize(("fields", "error"), [
    ({"ca_file": "/nonexistent/ca.crt"}, r"upstream.ca_file\n  Path does not point to a file"),
    ({"client_cert": str(TLS)}, r"upstream.client_cert\n  Path does not point to a file"),  # (a folder)
    ({"client_key": str(TLS / "client.key")}, "client_key is set without client_cert"),
    ({"max_connections": -1}, r"upstream.max_connections\n  Input should be greater than or equal to 0"),
])
def test_tls_files_must_exist_and_a_key_needs_its_cert(fields: dict[str, object], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        Settings.model_validate({"upstream": fields})


def test_an_upstreams_key_and_proxy_stay_out_of_its_repr() -> None:
    shown = repr(Settings(upstream=UpstreamSettings(api_key="sk-ant-secret", proxy="http://ann:hunter2@p:3128")))
    assert "sk-ant-secret" not in shown and "hunter2" not in shown and "base_url='https://api.anthropic.com'" in shown


def test_redis_outage_policy_defaults_to_allow_and_takes_only_allow_or_deny() -> None:
    redis = Settings().redis
    assert (redis.on_error, redis.timeout_seconds, redis.retry_seconds) == ("allow", 1.0, 1.0)
    assert Settings.model_validate({"redis": {"on_error": "deny"}}).redis.on_error == "deny"
    with pytest.raises(ValidationError, match="on_error"):
        Settings.model_validate({"redis": {"on_error": "fail"}})
    with pytest.raises(ValidationError, match="timeout_seconds"):
        Settings.model_validate({"redis": {"timeout_seconds": 0}})


HASH_A, HASH_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


@pytest.mark.parametrize(("toml", "line"), [
    (f'[[keys]]\nname = "alice"\nhash = "{HASH_A}"\n[[keys]]\nname = "alice"\nhash = "{HASH_B}"\n',
     "key names must be unique: alice used more than once"),
    (f'[[keys]]\nname = "alice"\nhash = "{HASH_A}"\n[[keys]]\nname = "bob"\nhash = "sha256:{"A" * 64}"\n',
     "two keys have the same hash"),
    ('[[keys]]\nname = "alice"\nhash = "sk-tr-the-key-itself"\n',
     "keys[0].hash: not 'sha256:' and 64 hex digits (`translator keys create` prints one)"),
    (f'[[keys]]\nname = "alice"\nhash = "sha256:{"a" * 63}"\n',
     "keys[0].hash: not 'sha256:' and 64 hex digits (`translator keys create` prints one)"),
    ('[upstream]\nbase_url = "api.anthropic.com"\n',
     "upstream.base_url: not an http:// or https:// URL with a host (such as https://api.anthropic.com)"),
    ('[[upstreams]]\nbase_url = "https://a"\n[[upstreams]]\nbase_url = "ftp://b"\n',
     "upstreams[1].base_url: not an http:// or https:// URL with a host (such as https://api.anthropic.com)"),
    ('[redis]\nurl = "127.0.0.1:6379"\n',
     "redis.url: not a redis://, rediss:// or unix:// URL (leave it empty for no Redis)"),
    ('[redis]\nurl = "http://127.0.0.1:6379"\n',
     "redis.url: not a redis://, rediss:// or unix:// URL (leave it empty for no Redis)"),
])
def test_each_config_mistake_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, line: str
) -> None:
    from translator.cli import main

    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    assert main(["serve", "--config", str(cfg)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"translator: cannot load the settings: {line}\n"
    assert captured.out == ""  # nothing started: not even the "starting" log line


@pytest.mark.parametrize("url", ["", "redis://127.0.0.1:6379/0", "rediss://h:6380", "unix:///run/redis.sock"])
def test_redis_urls_redis_py_reads_are_accepted(url: str) -> None:
    assert Settings.model_validate({"redis": {"url": url}}).redis.url == url


def test_several_mistakes_share_the_one_line() -> None:
    from translator.config import one_line

    with pytest.raises(ValidationError) as caught:
        Settings.model_validate({"server": {"port": -1}, "keys": [{"name": "a", "hash": "x"}]})
    assert one_line(caught.value) == (
        "server.port: Input should be greater than or equal to 0; keys[0].hash: not 'sha256:' and 64 hex digits "
        "(`translator keys create` prints one)"
    )


def test_a_port_in_use_is_one_line_and_exit_2_before_listening(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from translator.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for workers in ("1", "2"):
            assert main(["serve", "--demo", "--port", str(port), "--workers", workers]) == 2
            err = capsys.readouterr().err
            assert err == f"translator: cannot listen on 127.0.0.1 port {port}: Address already in use\n"


def test_a_tls_file_that_is_not_pem_is_found_at_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from translator.cli import main

    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[upstream]\nbase_url = "https://gw"\nca_file = "{ca}"\n')
    assert main(["serve", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("translator: cannot load the settings: ") and err.count("\n") == 1


def test_limits_in_memory_with_several_workers_are_refused_naming_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from translator.cli import main
    from translator.config import workers_refusal

    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[[keys]]\nname = "alice"\nhash = "{HASH_A}"\nrpm = 3\n'
                   f'[[keys]]\nname = "bob"\nhash = "{HASH_B}"\n')
    assert main(["serve", "--demo", "--config", str(cfg), "--workers", "2"]) == 2
    assert capsys.readouterr().err == (
        "translator: --workers 2 with rate limits in process memory would let each worker through a key's whole "
        "limit (keys with limits: alice): set [redis] url to share the limits between workers, or run one worker\n"
    )
    settings = load_settings(str(cfg), env={})
    assert workers_refusal(settings, 1) is None  # one process: its memory is exact
    shared = settings.model_copy(update={"redis": settings.redis.model_copy(update={"url": "redis://r"})})
    assert workers_refusal(shared, 4) is None  # Redis: shared and exact
    unlimited = settings.model_copy(update={"keys": settings.keys[1:]})
    assert workers_refusal(unlimited, 4) is None  # nothing to count


def test_several_workers_refuse_budgets_in_process_memory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A budget counted per worker would let a key spend N times it: as rate limits, budgets need Redis."""
    from translator.cli import main
    from translator.config import workers_refusal

    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[[keys]]\nname = "alice"\nhash = "{HASH_A}"\nbudget_usd = 5\n'
                   f'[[keys]]\nname = "bob"\nhash = "{HASH_B}"\nrpm = 3\nbudget_tokens = 1000\n')
    assert main(["serve", "--demo", "--config", str(cfg), "--workers", "2"]) == 2
    assert capsys.readouterr().err == (
        "translator: --workers 2 with rate limits and budgets in process memory would let each worker through a "
        "key's whole limit or budget (keys with limits: bob; keys with budgets: alice, bob): set [redis] url to "
        "share the limits and budgets between workers, or run one worker\n"
    )
    settings = load_settings(str(cfg), env={})
    only_budget = settings.model_copy(update={"keys": settings.keys[:1]})
    assert workers_refusal(only_budget, 2) == (
        "--workers 2 with budgets in process memory would let each worker through a key's whole budget (keys "
        "with budgets: alice): set [redis] url to share the budgets between workers, or run one worker"
    )
    assert workers_refusal(only_budget, 1) is None
    shared = only_budget.model_copy(update={"redis": settings.redis.model_copy(update={"url": "redis://r"})})
    assert workers_refusal(shared, 4) is None


def test_the_readmes_ready_made_config_loads(tmp_path: Path) -> None:
    import re

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### A ready-made config"):]
    example = section[section.index("```toml\n") + len("```toml\n"):section.index("```\n", section.index("```toml"))]
    filled = re.sub(r'"sha256:<[^>]*>"', lambda m: f'"sha256:{"%064x" % (len(m.group()) + m.start())}"', example)
    cfg = tmp_path / "c.toml"
    cfg.write_text(filled)
    settings = load_settings(str(cfg), env={}, proxies={})
    assert [u.name for u in settings.upstream_list] == ["anthropic", "gateway"]
    assert [(k.name, k.rpm, k.concurrency, k.admin) for k in settings.keys] == [
        ("ci", 60, None, False), ("alice", None, 4, False), ("ops", None, None, True),
    ]
    ops = settings.keys[-1]
    assert ops.models == []  # (the admin key scrapes /metrics; it calls no model)
    assert settings.resolve_model("fast")[0] == "claude-haiku-4-5"
    assert settings.redis.url == "redis://127.0.0.1:6379/0"
    assert settings.server.pid_file == "/run/translator/translator.pid"


def test_a_pid_file_that_cannot_be_written_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from translator.cli import main

    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[server]\nport = 0\npid_file = "{tmp_path}/no/such/dir/translator.pid"\n')
    assert main(["serve", "--demo", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err == f"translator: cannot write server.pid_file: [Errno 2] No such file or directory: " \
                  f"'{tmp_path}/no/such/dir/translator.pid'"


def test_translator_reload_needs_a_server_and_a_sound_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from translator.cli import main

    cfg = tmp_path / "c.toml"
    cfg.write_text("[server]\n")
    assert main(["reload", "--config", str(cfg)]) == 2
    assert capsys.readouterr().err == ("translator: which server? Give --pid PID, or set server.pid_file in the "
                                       "config\n")
    cfg.write_text(f'[server]\npid_file = "{tmp_path}/gone.pid"\n')
    assert main(["reload", "--config", str(cfg)]) == 1
    assert capsys.readouterr().err.startswith(f"translator: cannot read the pid file {tmp_path}/gone.pid: ")
    cfg.write_text('[redis]\nurl = "localhost"\n')
    assert main(["reload", "--config", str(cfg), "--pid", "1"]) == 2  # checked before anything is sent
    assert capsys.readouterr().err == ("translator: not reloading, the config has a mistake: redis.url: not a "
                                       "redis://, rediss:// or unix:// URL (leave it empty for no Redis)\n")


def test_translator_reload_refuses_a_config_that_would_open_the_proxy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As at start: no client keys on a public address is refused before anything is sent."""
    import subprocess
    import sys

    from translator.cli import main

    cfg = tmp_path / "c.toml"
    cfg.write_text('[server]\nhost = "0.0.0.0"\n')
    sleeper = "import signal, time; signal.signal(signal.SIGHUP, signal.SIG_DFL); time.sleep(60)"
    bystander = subprocess.Popen([sys.executable, "-c", sleeper])  # (SIGHUP would end it)
    try:
        assert main(["reload", "--config", str(cfg), "--pid", str(bystander.pid)]) == 2
        assert capsys.readouterr().err == (
            "translator: not reloading: refusing to bind 0.0.0.0 with no client keys configured: anyone who can "
            "reach it could use the upstream. Add [[keys]] (see `translator keys create`) or set "
            "server.allow_open_access = true.\n"
        )
        assert bystander.poll() is None  # nothing was sent
        cfg.write_text('[server]\nhost = "0.0.0.0"\nallow_open_access = true\n')  # (as it was told)
        assert main(["reload", "--config", str(cfg), "--pid", str(bystander.pid)]) == 0
        assert bystander.wait(timeout=10) == -1  # SIGHUP
    finally:
        bystander.kill()
        bystander.wait()
