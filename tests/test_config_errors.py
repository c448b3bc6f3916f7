"""Bad settings as a user meets them: `earnwatch run` and `earnwatch check` as subprocesses
exit 2 with one line naming the variable, never the value and never a traceback. IPv6
listen addresses work."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.config import env_file_warning, load_settings
from service.errors import ConfigError
from tests.daemon_setup import RULES, fake_finnhub, write_env
from tests.e2e import ROOT, Daemon, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver

BAD = [
    ("EARNWATCH_HTTP", "foo"),
    ("EARNWATCH_HTTP", "0.0.0.0"),
    ("EARNWATCH_HTTP", "127.0.0.1:99999"),
    ("EARNWATCH_HTTP", "::1:8799"),
    ("EARNWATCH_LOG_LEVEL", "LOUD"),
    ("EARNWATCH_CALENDAR_REFRESH", "99999999999d"),
    ("EARNWATCH_PRICE_POLL", "1e400"),
    ("EARNWATCH_RULES_MAX_BYTES", "-1"),
]


def command(folder: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=folder,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}={v}" for n, v in BAD])
def test_a_bad_setting_is_one_line_naming_it(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None, **{name.removeprefix("EARNWATCH_").lower(): value})
    text = str(info.value)
    assert name in text and value not in text and "\n" not in text


@pytest.mark.slow
@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}={v}" for n, v in BAD])
def test_run_and_check_refuse_a_bad_setting_with_exit_2(
    tmp_path: Path, name: str, value: str
) -> None:
    (tmp_path / "rules.yaml").write_text("rules: []\n")
    for args in (("run", "--rules", "rules.yaml"), ("check", "rules.yaml")):
        result = command(tmp_path, *args, env={name: value})
        lines = result.stderr.splitlines()
        assert result.returncode == 2, (args, result.stderr)
        assert len(lines) == 1 and name in lines[0], (args, result.stderr)
        assert value not in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def finnhub() -> Iterator[FakeFinnhub]:
    fake = fake_finnhub()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.mark.slow
def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path, finnhub: FakeFinnhub) -> None:
    with Receiver() as receiver, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        write_env(tmp_path, finnhub, receiver, f"EARNWATCH_HTTP=127.0.0.1:{port}")
        (tmp_path / "rules.yaml").write_text(RULES)
        daemon = Daemon(tmp_path, "--rules", "rules.yaml").start()
        assert daemon.process is not None
        try:
            assert daemon.process.wait(30) == 2
        finally:
            daemon.stop()  # never leave a daemon behind when it did start
    log = daemon.log()
    assert (
        f"ERROR service.daemon: cannot start: EARNWATCH_HTTP: cannot listen on 127.0.0.1:{port}: "
        "Address already in use" in log
    ), log
    assert "Traceback" not in log


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_an_ipv6_listen_address_works(tmp_path: Path, finnhub: FakeFinnhub) -> None:
    with socket.socket(socket.AF_INET6) as free:
        free.bind(("::1", 0))
        port = free.getsockname()[1]
    with Receiver() as receiver:
        write_env(tmp_path, finnhub, receiver, f"EARNWATCH_HTTP=[::1]:{port}")
        (tmp_path / "rules.yaml").write_text(RULES)
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: "earnwatch running" in daemon.log(), 20, "the daemon to run", daemon)
            assert f"health and metrics on http://[::1]:{port}" in daemon.log()
            answer = httpx.get(f"http://[::1]:{port}/metrics", timeout=5)
        assert answer.status_code == 200


@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o640, True), (0o600, False)])
def test_a_dotenv_readable_by_others_is_named_with_the_fix(
    tmp_path: Path, mode: int, warned: bool
) -> None:
    env = tmp_path / ".env"
    env.write_text("FINNHUB_API_KEY=k\n")
    env.chmod(mode)
    expected = f"{env} is readable by others (mode {mode:04o}): chmod 600 {env}"
    assert env_file_warning(env) == (expected if warned else None)
    assert env_file_warning(tmp_path / "absent") is None


@pytest.mark.slow
def test_run_warns_at_start_about_a_dotenv_readable_by_others(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    with Receiver() as receiver:
        write_env(tmp_path, finnhub, receiver).chmod(0o644)
        (tmp_path / "rules.yaml").write_text(RULES)
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: "earnwatch running" in daemon.log(), 20, "the daemon to run", daemon)
    assert (
        "WARNING service.daemon: .env is readable by others (mode 0644): chmod 600 .env"
        in daemon.log()
    )
