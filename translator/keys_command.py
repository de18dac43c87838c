"""``translator keys create|hash``: mint a client key and print its ``[[keys]]`` entry, or hash an existing key.

The keys themselves (hashing, matching, permissions) are ``translator.gateway.keys``'; this is only the
command line around them.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from translator.config import KeySettings
from translator.gateway.keys import hash_key, new_key


def keys_command(argv: list[str], *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """``translator keys create|hash ...`` (``argv`` is what follows ``keys``); returns the exit status.

    ``create`` writes the new key to stderr and the TOML entry to stdout, so
    ``translator keys create --name ci >> config.toml`` appends the entry without ever writing the secret
    into the config file, while the operator still sees the key once on the terminal.
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = _keys_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on bad usage; the caller wants a status
        return exc.code if isinstance(exc.code, int) else 2
    if args.action == "create":
        return _create(args, out, err)
    return _hash(args.key, out, err)


def _keys_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="translator keys", description="mint and hash client API keys")
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="mint a key; prints it once and a [[keys]] entry for the config")
    create.add_argument("--name", required=True, type=_nonblank, help="label used in logs, metrics, and errors")
    create.add_argument("--models", type=_model_list,
                        help="comma-separated names or globs (default: every model; none for an --admin key)")
    create.add_argument("--rpm", type=_positive_int, help="requests per minute")
    create.add_argument("--tpm", type=_positive_int, help="tokens (input + output) per minute")
    create.add_argument("--concurrency", type=_positive_int, help="requests in flight at once")
    create.add_argument("--budget-tokens", type=_positive_int, help="tokens per budget period (cached included)")
    create.add_argument("--budget-usd", type=_positive_usd, help="USD per budget period, by the price table")
    create.add_argument("--budget-period", choices=["day", "month"], help="UTC day or month (default month)")
    create.add_argument("--admin", action="store_true", help="may read /metrics and /v1/usage (and, without "
                        "--models, call no model)")
    hashp = sub.add_parser("hash", help="print the config hash of an existing key")
    hashp.add_argument("key", nargs="?", default="-", help="the key; '-' or nothing reads it from stdin")
    return parser


def _nonblank(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be blank")
    return value.strip()


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _positive_usd(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError("must be a positive amount")
    return number


def _model_list(value: str) -> list[str]:
    models = [m.strip() for m in value.split(",") if m.strip()]
    if not models:
        raise argparse.ArgumentTypeError("name at least one model or glob")
    return models


def _create(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    key = new_key()
    print(f"New API key for '{args.name}' (shown only now; the proxy stores just its hash):", file=err)
    print(f"  {key}", file=err)
    settings = KeySettings(
        name=args.name, hash=hash_key(key), models=_models(args), rpm=args.rpm, tpm=args.tpm,
        concurrency=args.concurrency, budget_tokens=args.budget_tokens, budget_usd=args.budget_usd,
        budget_period=args.budget_period or "month", admin=args.admin,
    )
    print(toml_entry(settings), file=out)
    return 0


def _models(args: argparse.Namespace) -> list[str]:
    """What the key may call: as given, else every model, but none for an admin key (it reads, it does not
    spend)."""
    if args.models is not None:
        return list(args.models)
    return [] if args.admin else ["*"]


def _hash(key: str, out: TextIO, err: TextIO) -> int:
    if key == "-":  # reading stdin keeps the key out of shell history and `ps`
        key = sys.stdin.readline()
    key = key.strip()
    if not key:
        print("translator keys hash: no key given", file=err)
        return 2
    print(hash_key(key), file=out)
    return 0


def toml_entry(settings: KeySettings) -> str:
    """A ``[[keys]]`` table for the config file; optional limits, budgets and ``admin`` appear only when set."""
    lines = [
        "[[keys]]",
        f"name = {_toml_string(settings.name)}",
        f"hash = {_toml_string(settings.hash)}",
        "models = [" + ", ".join(_toml_string(m) for m in settings.models) + "]",
    ]
    for field in ("rpm", "tpm", "concurrency", "budget_tokens", "budget_usd"):
        value = getattr(settings, field)
        if value is not None:
            lines.append(f"{field} = {value}")
    if settings.budget_tokens is not None or settings.budget_usd is not None:
        lines.append(f"budget_period = {_toml_string(settings.budget_period)}")
    if settings.admin:
        lines.append("admin = true")
    return "\n".join(lines)


def _toml_string(value: str) -> str:
    """A TOML basic string. JSON escaping is not quite TOML (surrogate pairs, DEL), so escape by hand."""
    escaped = []
    for char in value:
        if char in ('"', "\\"):
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'
