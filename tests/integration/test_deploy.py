"""The Dockerfile, docker-compose.yml and deploy/ checked as Docker, Compose and Kubernetes would read them,
without a container runtime or a cluster: hadolint, the Compose specification's schema (shipped with
check-jsonschema) and the Kubernetes schemas (shipped with kubernetes-validate), all offline; then what the
schemas cannot see: that the files agree with each other and with the proxy's own settings.

test_package.py runs the image's commands on the wheel installed in a fresh virtualenv.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from docker.utils.build import exclude_paths
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.integration.deployfiles import (
    DEPLOY,
    ROOT,
    compose,
    dockerfile_instructions,
    healthcheck_command,
    image_env,
    image_user,
    manifest,
    manifests,
    seconds,
    tool,
    yaml_documents,
)
from translator.cli import open_access_refusal
from translator.config import Settings, load_settings
from translator.keys_command import keys_command

# After the grace period the proxy gives the streams still open this long to write their error event
# (translator.cli.serve), then exits.
FAREWELL_SECONDS = 5
# The oldest Kubernetes release the manifests are checked against (Kubernetes supports each for about 14 months).
OLDEST_KUBERNETES = "1.30.0"


# -- Dockerfile --------------------------------------------------------------------------------------------


def test_hadolint_passes_on_the_dockerfile() -> None:
    done = subprocess.run([tool("hadolint"), "Dockerfile"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


async def _healthcheck(port: int) -> int:
    """The image's HEALTHCHECK command run as Docker runs it, with this interpreter as ``python``."""
    program, *args = healthcheck_command()
    assert program == "python"
    env = {"PATH": os.environ.get("PATH", ""), "TRANSLATOR_PORT": str(port)}
    process = await asyncio.create_subprocess_exec(sys.executable, *args, env=env, stderr=subprocess.DEVNULL)
    return await process.wait()


async def test_the_healthcheck_follows_translator_port(aiohttp_server: Any, unused_tcp_port_factory: Any) -> None:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    server = await aiohttp_server(app, host="127.0.0.1")
    assert server.port != 8080

    assert await _healthcheck(server.port) == 0
    assert await _healthcheck(unused_tcp_port_factory()) != 0  # nothing listens there


async def test_the_healthcheck_fails_on_an_unhealthy_answer(aiohttp_server: Any) -> None:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "shutting down"}, status=503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    server = await aiohttp_server(app, host="127.0.0.1")

    assert await _healthcheck(server.port) != 0


def test_the_image_runs_as_the_non_root_user_the_manifests_name() -> None:
    (user,) = [rest for keyword, rest in dockerfile_instructions() if keyword == "USER"]
    assert user == "10001:10001"  # numeric, so that Kubernetes' runAsNonRoot can check it
    pod = manifest("Deployment", "translator")["spec"]["template"]["spec"]
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == image_user()
    assert image_env()["TRANSLATOR_PORT"] == "8080"
    assert image_env()["TRANSLATOR_HOST"] == "0.0.0.0"


def _context(root: Path) -> set[str]:
    """The files a docker client sends as the build context of ``root``, after its .dockerignore."""
    lines = (root / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return set(exclude_paths(str(root), patterns))


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    context = _context(ROOT)
    copied = [rest.split()[:-1] for keyword, rest in dockerfile_instructions() if keyword == "COPY"]
    sources = [source for sources in copied if not sources[0].startswith("--from") for source in sources]
    assert sources == ["pyproject.toml", "README.md", "translator", "requirements.lock"]
    for source in sources:
        assert source in context
    assert "translator/cli.py" in context
    assert not [path for path in context if "__pycache__" in path or path.endswith(".pyc")]


def test_the_build_context_leaves_out_secrets_and_history(tmp_path: Path) -> None:
    kept = ["Dockerfile", "pyproject.toml", "README.md", "requirements.lock", "translator/cli.py"]
    left_out = [
        ".git/config",
        ".venv/bin/python",
        "secrets/anthropic_api_key",
        "config.toml",
        ".env",
        "deploy/secret.yaml",
        "tests/conftest.py",
        "translator/__pycache__/cli.cpython-311.pyc",
    ]
    for name in kept + left_out:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x", encoding="utf-8")
    (tmp_path / ".dockerignore").write_bytes((ROOT / ".dockerignore").read_bytes())

    files = {path for path in _context(tmp_path) if (tmp_path / path).is_file()}
    assert files == {*kept, ".dockerignore"}


def test_requirements_lock_pins_every_dependency_of_pyproject_with_hashes() -> None:
    """The image installs the lock with --require-hashes and the wheel with --no-deps: a dependency added
    to pyproject.toml and not compiled into the lock would be missing from the image."""
    entries = (ROOT / "requirements.lock").read_text(encoding="utf-8").replace("\\\n", " ").splitlines()
    pinned: dict[str, str] = {}
    for entry in entries:
        if not entry.strip() or entry.lstrip().startswith("#"):
            continue
        requirement, *hashes = entry.split("--hash=")
        parsed = Requirement(requirement.strip())
        (specifier,) = parsed.specifier
        assert specifier.operator == "==", entry
        assert hashes and all(h.startswith("sha256:") for h in hashes), entry
        pinned[canonicalize_name(parsed.name)] = specifier.version
    linux = {"sys_platform": "linux", "platform_system": "Linux", "python_version": "3.11"}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for dependency in map(Requirement, project["dependencies"]):
        if dependency.marker and not dependency.marker.evaluate(linux):
            continue
        name = canonicalize_name(dependency.name)
        assert name in pinned, f"{dependency} is not in requirements.lock: run the command at its top"
        assert dependency.specifier.contains(pinned[name]), f"requirements.lock pins {name}=={pinned[name]}"


# -- docker-compose.yml ------------------------------------------------------------------------------------


def test_the_compose_file_follows_the_compose_specification() -> None:
    command = [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def _compose_settings() -> tuple[dict[str, Any], Settings]:
    """The proxy's service and the settings it starts with: the mounted config, the image's environment
    and the service's own."""
    spec = compose()
    service = spec["services"]["translator"]
    (mount,) = service["configs"]
    assert mount["target"] == service["environment"]["TRANSLATOR_CONFIG"]
    config = ROOT / spec["configs"][mount["source"]]["file"]
    env = {**image_env(), **service["environment"]}
    return service, load_settings(str(config), env=env, proxies={})


def test_the_compose_proxy_shares_its_state_through_the_compose_redis() -> None:
    service, settings = _compose_settings()
    redis = urlsplit(settings.redis.url)
    assert (redis.scheme, redis.hostname, redis.port) == ("redis", "redis", 6379)
    assert compose()["services"]["redis"]["image"].startswith("redis:")
    assert service["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert (settings.server.host, settings.server.port) == ("0.0.0.0", 8080)
    assert service["ports"] == [f"127.0.0.1:8080:{settings.server.port}"]


def test_the_compose_stop_grace_period_covers_the_proxys_shutdown() -> None:
    service, settings = _compose_settings()
    shutdown = settings.server.drain_seconds + settings.server.shutdown_grace_seconds + FAREWELL_SECONDS
    assert seconds(service["stop_grace_period"]) >= shutdown + 5  # and a margin for the process to exit


def test_every_compose_service_runs_unprivileged() -> None:
    services = compose()["services"]
    assert "user" not in services["translator"]  # the image's: 10001:10001
    assert services["redis"]["user"] == "999:1000"  # the redis image's redis user
    for service in services.values():
        assert service["cap_drop"] == ["ALL"]
        assert service["security_opt"] == ["no-new-privileges:true"]
        assert service["read_only"] is True


def _run_compose_entrypoint(tmp_path: Path, secret: str | None) -> subprocess.CompletedProcess[str]:
    """The service's entrypoint run by sh as the container would (Compose turns ``$$`` into ``$``), with
    the mounted secret's path pointing at a file here (None: a missing one) and a ``translator`` that
    prints what it was given."""
    service = compose()["services"]["translator"]
    (mount,) = service["secrets"]
    secret_path = f"/run/secrets/{mount['target']}"
    shell, flag, script, name = [part.replace("$$", "$") for part in service["entrypoint"]]
    assert (shell, flag, name) == ("/bin/sh", "-c", "translator")
    assert secret_path in script
    if secret is not None:
        (tmp_path / "secret").write_text(secret, encoding="utf-8")
    fake = tmp_path / "bin" / "translator"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "key=$ANTHROPIC_API_KEY" "$@"\n', encoding="utf-8")
    fake.chmod(0o755)
    script = script.replace(secret_path, str(tmp_path / "secret"))
    env = {"PATH": f"{fake.parent}:{os.environ['PATH']}"}
    return subprocess.run([shell, flag, script, name, *service["command"], "--flag"], env=env,
                          capture_output=True, text=True, check=False)


def test_the_compose_entrypoint_reads_the_upstream_key_from_its_secret(tmp_path: Path) -> None:
    done = _run_compose_entrypoint(tmp_path, "sk-ant-test")
    assert (done.returncode, done.stdout.splitlines()) == (0, ["key=sk-ant-test", "serve", "--flag"])


def test_the_compose_entrypoint_with_an_empty_secret_leaves_the_key_to_clients(tmp_path: Path) -> None:
    done = _run_compose_entrypoint(tmp_path, "")
    assert (done.returncode, done.stdout.splitlines()) == (0, ["key=", "serve", "--flag"])
    env = {**image_env(), "ANTHROPIC_API_KEY": ""}
    assert load_settings(None, env=env, proxies={}).upstream.api_key == ""


def test_the_compose_entrypoint_stops_when_the_secret_cannot_be_read(tmp_path: Path) -> None:
    """Rather than start without the upstream key and forward clients' keys instead."""
    done = _run_compose_entrypoint(tmp_path, None)
    assert (done.returncode, done.stdout) == (1, "")


# -- Kubernetes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, None])
def test_the_manifests_are_valid_kubernetes(version: str | None) -> None:
    files = sorted(str(path.relative_to(ROOT)) for path in DEPLOY.glob("*.yaml"))
    command = [tool("kubernetes-validate"), "--strict", "--quiet", *files]
    if version:
        command[2:2] = ["--kubernetes-version", version]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_deploy_holds_the_objects_an_operator_applies() -> None:
    objects = sorted((m["kind"], m["metadata"]["name"]) for m in manifests())
    assert objects == [
        ("ConfigMap", "translator-config"),
        ("Deployment", "translator"),
        ("Deployment", "translator-redis"),
        ("HorizontalPodAutoscaler", "translator"),
        ("NetworkPolicy", "translator-redis"),
        ("PodDisruptionBudget", "translator"),
        ("Secret", "translator-secrets"),
        ("Service", "translator"),
        ("Service", "translator-redis"),
    ]


def _proxy_container() -> dict[str, Any]:
    (container,) = manifest("Deployment", "translator")["spec"]["template"]["spec"]["containers"]
    return container


def _container_env(container: dict[str, Any]) -> dict[str, str]:
    return {var["name"]: var["value"] for var in container["env"] if "value" in var}


def _cluster_settings(tmp_path: Path) -> Settings:
    """The settings a proxy pod starts with: the ConfigMap's file where the Deployment mounts it, the
    image's environment and the container's."""
    container = _proxy_container()
    env = {**image_env(), **_container_env(container)}
    pod = manifest("Deployment", "translator")["spec"]["template"]["spec"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "config"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "config"]
    config_map = manifest("ConfigMap", volume["configMap"]["name"])
    config_path = Path(env["TRANSLATOR_CONFIG"])
    assert config_path.parent == Path(mount["mountPath"])
    mounted = tmp_path / config_path.name
    mounted.write_text(config_map["data"][config_path.name], encoding="utf-8")
    return load_settings(str(mounted), env={**env, "TRANSLATOR_CONFIG": str(mounted)}, proxies={})


def test_the_proxy_is_probed_on_its_own_port(tmp_path: Path) -> None:
    container = _proxy_container()
    settings = _cluster_settings(tmp_path)
    assert container["ports"] == [{"name": "http", "containerPort": settings.server.port}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["args"] == ["serve"]


def test_the_termination_grace_period_covers_prestop_drain_and_grace(tmp_path: Path) -> None:
    pod = manifest("Deployment", "translator")["spec"]["template"]["spec"]
    sleep, pause = _proxy_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep == "sleep"
    server = _cluster_settings(tmp_path).server
    assert server.drain_seconds > 0  # /readyz says 503 while clients behind slower balancers move away
    shutdown = int(pause) + server.drain_seconds + server.shutdown_grace_seconds + FAREWELL_SECONDS
    assert pod["terminationGracePeriodSeconds"] >= shutdown + 5  # and a margin for the process to exit


def test_the_replicas_share_state_through_the_redis_service(tmp_path: Path) -> None:
    redis = urlsplit(_cluster_settings(tmp_path).redis.url)
    service = manifest("Service", "translator-redis")
    (port,) = service["spec"]["ports"]
    assert (redis.scheme, redis.hostname, redis.port) == ("redis", "translator-redis", port["port"])
    pods = manifest("Deployment", "translator-redis")["spec"]["template"]
    assert service["spec"]["selector"].items() <= pods["metadata"]["labels"].items()
    (container,) = pods["spec"]["containers"]
    assert container["image"].startswith("redis:")


@pytest.mark.parametrize("name", ["translator", "translator-redis"])
def test_every_pod_runs_as_a_non_root_user_with_nothing_to_escalate(name: str) -> None:
    pod = manifest("Deployment", name)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"]:
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }


def test_the_service_autoscaler_and_disruption_budget_select_the_proxy() -> None:
    deployment = manifest("Deployment", "translator")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert "replicas" not in deployment["spec"]  # the autoscaler's to set; an apply would reset it
    service = manifest("Service", "translator")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
    hpa = manifest("HorizontalPodAutoscaler", "translator")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "translator"}
    assert hpa["minReplicas"] >= 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"]  # what the autoscaler's utilization is a share of
    pdb = manifest("PodDisruptionBudget", "translator")["spec"]
    assert pdb["selector"] == deployment["spec"]["selector"]
    assert pdb["maxUnavailable"] < hpa["minReplicas"]


def test_the_upstream_key_comes_from_the_secret_and_none_is_written_in(tmp_path: Path) -> None:
    secret = manifest("Secret", "translator-secrets")
    assert "data" not in secret
    assert "stringData" not in secret  # set in the cluster; an apply of deploy/ must not empty it
    (key,) = [var for var in _proxy_container()["env"] if var["name"] == "ANTHROPIC_API_KEY"]
    assert key["valueFrom"]["secretKeyRef"] == {"name": "translator-secrets", "key": "ANTHROPIC_API_KEY",
                                                "optional": True}
    assert _cluster_settings(tmp_path).upstream.api_key == ""
    _, settings = _compose_settings()
    assert settings.upstream.api_key == ""


@pytest.mark.parametrize("where", ["compose", "kubernetes"])
def test_the_proxy_starts_once_a_created_key_is_appended_to_its_config(where: str, tmp_path: Path) -> None:
    """The README's steps: without a client key the proxy refuses to bind 0.0.0.0; with the entry that
    ``translator keys create`` prints appended to the config, it starts and knows that key."""
    if where == "compose":
        config = ROOT / compose()["configs"]["translator_config"]["file"]
        text, env = config.read_text(encoding="utf-8"), image_env()
    else:
        text = manifest("ConfigMap", "translator-config")["data"]["config.toml"]
        env = {**image_env(), **_container_env(_proxy_container())}
    mounted = tmp_path / "config.toml"
    mounted.write_text(text, encoding="utf-8")
    assert open_access_refusal(load_settings(str(mounted), env=env, proxies={}))

    entry, shown = io.StringIO(), io.StringIO()
    assert keys_command(["create", "--name", "me"], stdout=entry, stderr=shown) == 0
    with mounted.open("a", encoding="utf-8") as appended:
        appended.write(entry.getvalue())
    settings = load_settings(str(mounted), env=env, proxies={})
    assert open_access_refusal(settings) is None
    assert [key.name for key in settings.keys] == ["me"]
    assert settings.redis.url


def test_every_manifest_file_is_one_that_kubectl_applies() -> None:
    """kubectl apply -f deploy/ takes .yaml, .yml and .json files: none may be anything but a manifest."""
    for path in DEPLOY.iterdir():
        if path.suffix in {".yaml", ".yml", ".json"}:
            assert path.suffix == ".yaml", path
            assert all({"apiVersion", "kind", "metadata"} <= doc.keys() for doc in yaml_documents(path)), path
