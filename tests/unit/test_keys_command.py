"""``translator keys create|hash`` (translator/keys_command.py): the printed key, its entry, and the exit codes."""

from __future__ import annotations

import io
import re
import tomllib

import pytest

from translator.config import Settings
from translator.gateway.keys import KeyRing, hash_key
from translator.keys_command import keys_command

ALICE_KEY = "sk-tr-alice-secret"
BOB_KEY = "sk-tr-bob-secret"


def run_keys(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = keys_command(argv, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def printed_key(stderr: str) -> str:
    found = re.findall(r"sk-tr-[A-Za-z0-9_-]{43}", stderr)
    assert len(found) == 1, stderr
    return str(found[0])


def test_create_prints_key_once_and_a_toml_entry_with_its_hash() -> None:
    code, out, err = run_keys(
        ["create", "--name", "ci bot", "--models", "claude-sonnet-4-5, claude-haiku-*", "--rpm", "60",
         "--tpm", "100000", "--concurrency", "4"]
    )
    assert code == 0
    key = printed_key(err)
    assert key not in out  # the secret never goes into what is pasted into the config
    parsed = tomllib.loads(out)
    assert parsed == {
        "keys": [{
            "name": "ci bot",
            "hash": hash_key(key),
            "models": ["claude-sonnet-4-5", "claude-haiku-*"],
            "rpm": 60,
            "tpm": 100000,
            "concurrency": 4,
        }]
    }
    # The entry is a valid config, and the key it describes authenticates against it.
    ring = KeyRing(Settings.model_validate(parsed).keys)
    found = ring.authenticate(key)
    assert found is not None and found.name == "ci bot"
    ring.authorize(found, "claude-haiku-4-5")


def test_create_sets_budgets_and_admin() -> None:
    code, out, err = run_keys(["create", "--name", "team", "--budget-tokens", "500000", "--budget-usd", "12.5",
                               "--budget-period", "day"])
    assert code == 0
    assert tomllib.loads(out) == {"keys": [{
        "name": "team", "hash": hash_key(printed_key(err)), "models": ["*"], "budget_tokens": 500000,
        "budget_usd": 12.5, "budget_period": "day",
    }]}
    code, out, err = run_keys(["create", "--name", "ops", "--admin"])  # reads; calls no model unless --models
    assert code == 0
    entry = tomllib.loads(out)["keys"][0]
    assert entry == {"name": "ops", "hash": hash_key(printed_key(err)), "models": [], "admin": True}
    assert Settings.model_validate(tomllib.loads(out)).keys[0].admin is True
    code, out, err = run_keys(["create", "--name", "lead", "--admin", "--models", "claude-*"])
    assert tomllib.loads(out)["keys"][0]["models"] == ["claude-*"]


@pytest.mark.parametrize("argv", [["--budget-usd", "0"], ["--budget-usd", "ten"], ["--budget-usd", "inf"],
                                  ["--budget-tokens", "0"], ["--budget-period", "week"]])
def test_create_refuses_bad_budgets(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_keys(["create", "--name", "x", *argv])[0] == 2


def test_create_defaults_to_all_models_and_no_limits() -> None:
    code, out, err = run_keys(["create", "--name", "plain"])
    assert code == 0
    assert tomllib.loads(out) == {"keys": [{"name": "plain", "hash": hash_key(printed_key(err)), "models": ["*"]}]}


def test_create_escapes_names_for_toml() -> None:
    name = 'quote " back \\ tab \t del \x7f ünï 🙂'
    code, out, _ = run_keys(["create", "--name", name])
    assert code == 0
    assert tomllib.loads(out)["keys"][0]["name"] == name


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["create"],
        ["create", "--name", "  "],
        ["create", "--name", "x", "--rpm", "0"],
        ["create", "--name", "x", "--tpm", "ten"],
        ["create", "--name", "x", "--models", " , "],
        ["rotate"],
    ],
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_keys(argv)
    assert code == 2
    assert out == ""


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert keys_command(["create", "--help"]) == 0
    assert "--concurrency" in capsys.readouterr().out


def test_hash_of_an_existing_key() -> None:
    code, out, _ = run_keys(["hash", ALICE_KEY])
    assert (code, out) == (0, hash_key(ALICE_KEY) + "\n")


def test_hash_reads_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(BOB_KEY + "\n"))
    assert run_keys(["hash"]) == (0, hash_key(BOB_KEY) + "\n", "")
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    code, out, err = run_keys(["hash", "-"])
    assert (code, out) == (2, "")
    assert "no key given" in err
