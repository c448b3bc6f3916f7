"""The deploy files: the unit, the image and the compose file say what deploy/README.md says."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.metrics import Metrics
from service.web import start_web

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNIT = DEPLOY / "systemd" / "earnwatch.service"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def unit_sections(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd's format: [Section], Key=Value, repeatable keys, # and ; comments."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not Key=Value: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_the_unit_runs_the_daemon_unprivileged_with_its_state_directory() -> None:
    service = unit_sections(UNIT.read_text())["Service"]
    assert service["ExecStart"] == [
        "/opt/earnwatch/.venv/bin/earnwatch run --rules /etc/earnwatch/rules.yaml"
    ]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["EnvironmentFile"] == ["/etc/earnwatch/.env"]
    assert (
        "EARNWATCH_DATABASE_URL=sqlite:////var/lib/earnwatch/earnwatch.db"
        in (service["Environment"])
    )
    assert service["User"] == ["earnwatch"] or service.get("DynamicUser") == ["yes"]
    assert service["StateDirectory"] == ["earnwatch"]
    assert service["WorkingDirectory"] == ["/var/lib/earnwatch"]
    assert service["UMask"] == ["0077"]


def test_the_unit_restarts_on_failure_and_stops_within_the_grace() -> None:
    service = unit_sections(UNIT.read_text())["Service"]
    assert service["Restart"] == ["on-failure"]
    assert service["RestartSec"] == ["5"]
    assert service["KillSignal"] == ["SIGTERM"]
    assert service["TimeoutStopSec"] == ["20"]


def test_the_unit_is_hardened() -> None:
    service = unit_sections(UNIT.read_text())["Service"]
    required = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "RestrictNamespaces": "yes",
        "SystemCallFilter": "@system-service",
        "CapabilityBoundingSet": "",
    }
    for key, value in required.items():
        assert value in service.get(key, []), key
    assert unit_sections(UNIT.read_text())["Install"]["WantedBy"] == ["multi-user.target"]


def test_the_image_is_multi_stage_and_runs_as_a_non_root_user() -> None:
    steps = dockerfile_instructions(DOCKERFILE.read_text())
    bases = [args for word, args in steps if word == "FROM"]
    assert len(bases) == 2
    assert all(base.startswith("python:3.11-slim") for base in bases)
    users = [args for word, args in steps if word == "USER"]
    assert users, "no USER instruction"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_the_image_exposes_the_port_checks_health_and_runs_the_daemon() -> None:
    steps = dict(dockerfile_instructions(DOCKERFILE.read_text()))
    assert steps["EXPOSE"] == "8787"
    assert "EARNWATCH_HTTP=0.0.0.0:8787" in steps["ENV"].split()
    assert steps["HEALTHCHECK"].startswith("--")
    assert "/healthz" in steps["HEALTHCHECK"]
    assert steps["STOPSIGNAL"] == "SIGTERM"
    assert steps["WORKDIR"] == "/config"
    assert json.loads(steps["ENTRYPOINT"]) == ["earnwatch"]
    assert json.loads(steps["CMD"]) == ["run", "--rules", "/config/rules.yaml"]


def compose() -> Any:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_runs_postgres_and_two_earnwatch_replicas() -> None:
    services = compose()["services"]
    assert services["postgres"]["image"] == "postgres:16"
    assert "healthcheck" in services["postgres"]
    assert any("pgdata:" in str(v) for v in services["postgres"]["volumes"])
    replicas = [s for name, s in services.items() if name.startswith("earnwatch")]
    assert len(replicas) == 2


def test_compose_replicas_wait_for_postgres_and_share_the_database() -> None:
    services = compose()["services"]
    for name in ("earnwatch-a", "earnwatch-b"):
        replica = services[name]
        assert replica["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        env = replica["environment"]
        assert isinstance(env, dict)
        assert env["EARNWATCH_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert "@postgres:5432/" in env["EARNWATCH_DATABASE_URL"]
        assert "./config:/config:ro" in replica["volumes"]
        assert "healthcheck" in replica
    ports = [services[n]["ports"] for n in ("earnwatch-a", "earnwatch-b")]
    assert ports[0] != ports[1]


def test_compose_holds_no_password() -> None:
    text = COMPOSE.read_text()
    assert "${POSTGRES_PASSWORD:?" in text
    assert not re.search(r"POSTGRES_PASSWORD:\s*['\"]?[A-Za-z0-9]", text)


async def run_healthcheck(argv: list[str], port: int) -> int:
    env = {"EARNWATCH_HTTP": f"0.0.0.0:{port}", "PATH": "/usr/bin:/bin"}
    argv = [sys.executable if argv[0] == "python" else argv[0], *argv[1:]]
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(proc.wait(), 20)


@pytest.mark.anyio
async def test_the_image_and_compose_healthchecks_pass_on_200_and_fail_on_503() -> None:
    healthcheck = dict(dockerfile_instructions(DOCKERFILE.read_text()))["HEALTHCHECK"]
    image_argv = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    compose_test = compose()["services"]["earnwatch-a"]["healthcheck"]["test"]
    assert isinstance(compose_test, list) and compose_test[0] == "CMD"
    state = [True]
    web = await start_web("127.0.0.1", 0, lambda: (state[0], "down"), Metrics())
    try:
        compose_argv = [a.replace("8787", str(web.port)) for a in compose_test[1:]]
        assert await run_healthcheck(image_argv, web.port) == 0
        assert await run_healthcheck(compose_argv, web.port) == 0
        state[0] = False
        assert await run_healthcheck(image_argv, web.port) != 0
        assert await run_healthcheck(compose_argv, web.port) != 0
    finally:
        await web.aclose()


def test_compose_starts_the_replicas_with_a_token_it_does_not_hold() -> None:
    text = COMPOSE.read_text()
    for name in ("earnwatch-a", "earnwatch-b"):
        env = compose()["services"][name]["environment"]
        assert env["EARNWATCH_HTTP"] == "0.0.0.0:8787"  # not loopback: a token is required
        assert env["EARNWATCH_HTTP_TOKEN"].startswith("${EARNWATCH_HTTP_TOKEN:?")
    assert not re.search(r"EARNWATCH_HTTP_TOKEN:\s*['\"]?[A-Za-z0-9]", text)


def test_the_image_and_the_env_example_say_where_the_token_comes_from() -> None:
    assert "EARNWATCH_HTTP_TOKEN" in DOCKERFILE.read_text()
    example = (DEPLOY.parent / ".env.example").read_text()
    assert re.search(r"^EARNWATCH_HTTP_TOKEN=$", example, re.MULTILINE)  # empty: no default
    readme = (DEPLOY / "README.md").read_text()
    assert "EARNWATCH_HTTP_TOKEN" in readme


@pytest.mark.anyio
async def test_the_healthchecks_need_no_token_on_a_server_that_has_one() -> None:
    healthcheck = dict(dockerfile_instructions(DOCKERFILE.read_text()))["HEALTHCHECK"]
    image_argv = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    compose_test = compose()["services"]["earnwatch-a"]["healthcheck"]["test"]

    async def status() -> dict[str, Any]:
        return {}

    web = await start_web(
        "127.0.0.1", 0, lambda: (True, "ok"), Metrics(), status=status, token="t0ken-x"
    )
    try:
        compose_argv = [a.replace("8787", str(web.port)) for a in compose_test[1:]]
        assert await run_healthcheck(image_argv, web.port) == 0
        assert await run_healthcheck(compose_argv, web.port) == 0
    finally:
        await web.aclose()
