from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from translator.config import Settings, load_settings
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
    assert err.startswith("translator: cannot load the settings: 1 validation error for Settings\nserver.prot")
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

    applied = return_big_blocks_to_the_os()
    assert applied == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


# --- the upstream's proxy: the settings' own, else the environment's ---


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2"}, "http://lower:2"),  # lower case first
        ({"HTTPS_PROXY": "http://upper:1", "https_proxy": ""}, "http://upper:1"),  # (an empty one is unset)
        ({"HTTP_PROXY": "http://plain:3"}, ""),  # the https upstream's scheme's only
        ({"ALL_PROXY": "http://all:4"}, "http://all:4"),  # else ALL_PROXY
        ({"https_proxy": "proxy.corp:3128"}, "http://proxy.corp:3128"),  # a bare host:port, as curl reads it
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "anthropic.com"}, ""),  # a domain and its subdomains
        ({"HTTPS_PROXY": "http://p:1", "no_proxy": ".anthropic.com"}, ""),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, ""),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "api.anthropic.com:443"}, ""),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "api.anthropic.com:8443, thropic.com"}, "http://p:1"),
        ({}, None),
    ],
)
def test_the_environments_proxy_for_the_upstream(env: dict[str, str], expected: str | None) -> None:
    assert load_settings(env=env).upstream.proxy == expected


@pytest.mark.parametrize(
    ("url", "no_proxy", "proxied"),
    [
        ("http://127.0.0.1:9000", "", False),  # loopback: never from the environment
        ("http://localhost:9000", "", False),
        ("http://[::1]:9000", "", False),
        ("http://10.1.2.3:9000", "10.0.0.0/8", False),  # CIDR
        ("http://10.1.2.3:9000", "10.1.2.3", False),
        ("http://[fd00::1]:9000", "fd00::/8", False),
        ("http://10.1.2.3:9000", "192.168.0.0/16,example.com", True),
        ("http://gateway.internal:8080", "internal", False),
        ("http://gateway.internal:8080", "ateway.internal", True),  # a suffix of the name is not its domain
    ],
)
def test_no_proxy_and_loopback(url: str, no_proxy: str, proxied: bool) -> None:
    env = {"HTTP_PROXY": "http://egress:3128", "NO_PROXY": no_proxy, "ANTHROPIC_BASE_URL": url}
    assert load_settings(env=env).upstream.proxy == ("http://egress:3128" if proxied else "")


def test_the_settings_proxy_wins_and_empty_means_none(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[upstreams]]\nbase_url = "https://a.example"\nproxy = "http://mine:8080"\n'
                   '[[upstreams]]\nbase_url = "https://b.example"\nproxy = ""\n'
                   '[[upstreams]]\nbase_url = "http://c.example"\n')
    settings = load_settings(str(cfg), env={"HTTPS_PROXY": "http://env:1", "HTTP_PROXY": "http://env:2"})
    assert [u.proxy for u in settings.upstream_list] == ["http://mine:8080", "", "http://env:2"]


def test_http_proxy_is_not_read_under_cgi() -> None:
    env = {"ANTHROPIC_BASE_URL": "http://gw.example", "HTTP_PROXY": "http://client-chosen:1", "REQUEST_METHOD": "GET"}
    assert not load_settings(env=env).upstream.proxy
    assert not load_settings(env={**env, "REQUEST_METHOD": ""}).upstream.proxy  # (set, even empty: CGI)
    del env["REQUEST_METHOD"]
    assert load_settings(env=env).upstream.proxy == "http://client-chosen:1"


def test_proxies_that_are_not_http_are_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"the environment's proxy for https://api.anthropic.com: .*https:// and "
                                         r"socks proxies are not supported.*set proxy in \[upstream\]"):
        load_settings(env={"ALL_PROXY": "socks5://127.0.0.1:1080"})
    cfg = tmp_path / "c.toml"
    cfg.write_text('[upstream]\nproxy = "https://proxy:443"\n')
    with pytest.raises(ValidationError, match="not supported"):
        load_settings(str(cfg), env={})
    # The demo upstream is in process: the environment's proxies do not matter, even a broken one
    settings = load_settings(env={"ALL_PROXY": "socks5://127.0.0.1:1080"}, overrides={"demo": True})
    assert settings.upstream.proxy is None


def test_a_proxy_password_never_shows_in_an_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    for bad in ("https://bob:hunter2@proxy.corp:3128", "socks5://bob:hunter2@proxy.corp:1080",
                "http://bob:hunter2@proxy.corp:31 28", "http://bob:hunt/er2@proxy.corp:3128"):
        cfg.write_text(f'[upstream]\nproxy = "{bad}"\n')
        with pytest.raises(ValidationError) as caught:
            load_settings(str(cfg), env={})
        assert "hunt" not in str(caught.value) and "proxy" in str(caught.value)
        with pytest.raises(ValueError) as raised:
            load_settings(env={"HTTPS_PROXY": bad})
        assert "hunt" not in str(raised.value) and "set proxy in [upstream]" in str(raised.value)


def test_with_several_upstreams_only_theirs_are_resolved(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[upstreams]]\nname = "a"\nbase_url = "https://a.example"\nproxy = ""\n'
                   '[[upstreams]]\nname = "b"\nbase_url = "https://b.example"\nproxy = "http://p:1"\n')
    broken = {"ALL_PROXY": "socks5://127.0.0.1:1080"}
    assert [u.proxy for u in load_settings(str(cfg), env=broken).upstream_list] == ["", "http://p:1"]
    cfg.write_text(cfg.read_text().replace('proxy = "http://p:1"\n', ""))
    with pytest.raises(ValueError, match=r'the environment\'s proxy for https://b.example: .*\[\[upstreams\]\] "b"'):
        load_settings(str(cfg), env=broken)


@pytest.mark.parametrize(
    "host", ["localhost.", "127.1", "2130706433", "0x7f.1", "[::ffff:127.0.0.1]", "0.0.0.0", "[::]", "a.localhost"]
)
def test_every_spelling_of_this_machine_goes_direct(host: str) -> None:
    env = {"HTTP_PROXY": "http://egress:3128", "ANTHROPIC_BASE_URL": f"http://{host}:9000"}
    assert load_settings(env=env).upstream.proxy == ""


@pytest.mark.parametrize(
    ("host", "no_proxy", "proxied"),
    [
        ("[2001:db8::1]", "[2001:db8::1]", False),
        ("[2001:db8::1]", "[2001:db8::]/32", False),
        ("[2001:db8::1]", "2001:db8::1", False),
        ("[2001:db8::1]", "[2001:db8::1]:9000", False),
        ("[2001:db8::1]", "[2001:db8::1]:443", True),
        ("gw.example.com", "example.com.", False),  # trailing dots are ignored
        ("gw.example.com.", "example.com", False),
        ("10.1.2.3", "2.3", True),  # an IP host is compared as an IP, never as a name
        ("GW.Example.COM", "example.com", False),
    ],
)
def test_no_proxy_forms(host: str, no_proxy: str, proxied: bool) -> None:
    env = {"HTTP_PROXY": "http://egress:3128", "NO_PROXY": no_proxy, "ANTHROPIC_BASE_URL": f"http://{host}:9000"}
    assert load_settings(env=env).upstream.proxy == ("http://egress:3128" if proxied else "")


def test_an_upstreams_key_and_proxy_stay_out_of_its_repr() -> None:
    from translator.config import UpstreamSettings

    shown = repr(Settings(upstream=UpstreamSettings(api_key="sk-ant-secret", proxy="http://ann:hunter2@p:3128")))
    assert "sk-ant-secret" not in shown and "hunter2" not in shown and "base_url='https://api.anthropic.com'" in shown
