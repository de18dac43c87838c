"""Reading the deployment files as Docker, Compose and Kubernetes read them, for the tests that check them.

test_deploy.py checks the files themselves; test_package.py runs the image's commands on an installed wheel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def dockerfile_instructions(path: Path = ROOT / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in file order, continuation lines joined and comments left out."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def healthcheck_command() -> list[str]:
    """The HEALTHCHECK's command, which must be in exec form (a JSON array, run without a shell)."""
    (arguments,) = [rest for keyword, rest in dockerfile_instructions() if keyword == "HEALTHCHECK"]
    _, cmd, command = arguments.partition("CMD ")
    assert cmd, f"HEALTHCHECK without CMD: {arguments}"
    parsed = json.loads(command)
    assert isinstance(parsed, list)
    return [str(part) for part in parsed]


def image_user() -> tuple[int, int]:
    """The uid and gid of the Dockerfile's (last) USER, which must be numeric."""
    user = [rest for keyword, rest in dockerfile_instructions() if keyword == "USER"][-1]
    uid, gid = user.split(":")
    return int(uid), int(gid)


def image_env() -> dict[str, str]:
    """The variables the image's ENV instructions set (``ENV A=1 B=2`` form)."""
    env: dict[str, str] = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "ENV":
            env.update(pair.split("=", 1) for pair in rest.split())
    return env


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def manifests() -> list[dict[str, Any]]:
    """Every object ``kubectl apply -f deploy/`` creates (the .yaml files directly in deploy/)."""
    return [doc for path in sorted(DEPLOY.glob("*.yaml")) for doc in yaml_documents(path)]


def manifest(kind: str, name: str) -> dict[str, Any]:
    (found,) = [m for m in manifests() if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


def compose() -> dict[str, Any]:
    (document,) = yaml_documents(ROOT / "docker-compose.yml")
    return document


def tool(name: str) -> str:
    """A command-line tool of the test extra, from this interpreter's virtualenv. CI must have it."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        message = f"{name} is not installed: pip install -e '.[test]'"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def seconds(duration: str) -> float:
    """A Compose duration written in minutes and seconds, such as ``40s`` or ``1m30s``."""
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert match and duration, f"not a duration in minutes and seconds: {duration!r}"
    minutes, secs = match.groups()
    return 60 * int(minutes or 0) + int(secs or 0)
