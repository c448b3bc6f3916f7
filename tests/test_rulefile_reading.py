"""Reading the rule file: one path for `check` and the daemon, a size limit checked before
the read, undecodable bytes as one line, and a stat recorded only once the content was
read (so an unreadable edit is looked at again)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.config import SECRET_ENV_NAMES
from service.errors import RuleFileError
from service.notify import CHANNEL_CONFIGS
from service.rulefile import RuleFile, RuleFileRefused, load_rule_file
from tests.e2e import ROOT

GOOD = "rules:\n  - name: r\n    symbols: [LUMN]\n    when: price > 1\n"


def rule_file(tmp_path: Path, text: str = GOOD, **kwargs: int) -> RuleFile:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return RuleFile(path, env_file=None, channel_configs=CHANNEL_CONFIGS, **kwargs)


def check(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", "check", *args],
        cwd=folder,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("content", "byte"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 0),
        ("rules: []\n".encode("utf-16"), 0),
        (b"rules:\n  - name: caf\xe9\n", 20),
    ],
    ids=["binary", "utf-16", "latin-1"],
)
def test_bytes_that_are_not_utf8_are_one_line_naming_the_byte(
    tmp_path: Path, content: bytes, byte: int
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes(content)
    with pytest.raises(RuleFileError) as info:
        load_rule_file(path, env={}, channel_configs=CHANNEL_CONFIGS)
    assert info.value.lines() == [f"{path}: not UTF-8 text (byte {byte})"]
    assert str(info.value) == f"{path}: not UTF-8 text (byte {byte})"


def test_a_file_above_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD + "#" * 5000 + "\n")
    with pytest.raises(RuleFileRefused) as info:
        load_rule_file(path, env={}, channel_configs=CHANNEL_CONFIGS, max_bytes=1000)
    assert str(info.value) == (
        f"{path}: the file is 5,060 bytes, above EARNWATCH_RULES_MAX_BYTES (1,000)"
    )
    with path.open("r+b") as handle:  # 8 GB, sparse: reading it whole would need 8 GB
        handle.truncate(8_000_000_000)
    with pytest.raises(RuleFileRefused, match="8,000,000,000 bytes, above"):
        load_rule_file(path, env={}, channel_configs=CHANNEL_CONFIGS)


def test_check_and_the_daemon_read_through_the_same_code(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_bytes(b"\xff\xfe" + "rules: []".encode("utf-16-le"))
    result = check(tmp_path, "rules.yaml")
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == "rules.yaml: not UTF-8 text (byte 0)"
    assert "Traceback" not in result.stderr
    (tmp_path / "big.yaml").write_text(GOOD + "#" * 3000 + "\n")
    result = check(tmp_path, "big.yaml", env={"EARNWATCH_RULES_MAX_BYTES": "2000"})
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        "big.yaml: the file is 3,060 bytes, above EARNWATCH_RULES_MAX_BYTES (2,000)"
    )
    result = check(tmp_path, "big.yaml")  # the default limit is 20 MB
    assert result.returncode == 0, result.stderr


def test_an_unreadable_edit_is_looked_at_again_until_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = rule_file(tmp_path)
    first = rules.load()
    edited = GOOD.replace("> 1", "> 2")  # same size
    rules.path.write_text(edited)
    real_open = Path.open

    def denied(self: Path, *args: object, **kwargs: object) -> object:
        if self == rules.path:
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", denied)
    for _ in range(3):  # every watch tick looks again, and says why it cannot read
        found = rules.inspect()
        assert found.kind == "unreadable" and found.reason == "Permission denied"
        rules.apply(found)
    assert rules.ruleset is first and rules.failure == "Permission denied"
    monkeypatch.setattr(Path, "open", real_open)  # `chmod`: same mtime, same size
    found = rules.inspect()
    assert found.kind == "loaded"
    rules.apply(found)
    assert rules.ruleset is not first and rules.failure is None
    assert rules.inspect().kind == "unchanged"


@pytest.mark.parametrize("replacement", ["removed", "directory"])
def test_a_file_removed_or_replaced_by_a_directory_keeps_the_rules(
    tmp_path: Path, replacement: str
) -> None:
    rules = rule_file(tmp_path)
    first = rules.load()
    rules.path.unlink()
    if replacement == "directory":
        rules.path.mkdir()
    found = rules.inspect()
    assert found.kind == "unreadable"
    rules.apply(found)
    assert rules.ruleset is first
    assert rules.inspect().kind == "unreadable"  # looked at again, not forgotten
    if replacement == "directory":
        rules.path.rmdir()
    rules.path.write_text(GOOD)
    found = rules.inspect()
    assert found.kind == "unchanged"  # the same content came back
    rules.apply(found)
    assert rules.failure is None and rules.ruleset is first


def test_a_refused_edit_is_recorded_and_not_parsed_again_each_tick(tmp_path: Path) -> None:
    rules = rule_file(tmp_path)
    rules.load()
    rules.path.write_text(GOOD.replace("price", "prise"))
    found = rules.inspect()
    assert found.kind == "refused"
    rules.apply(found)
    assert rules.inspect().kind == "unchanged"
    assert rules.inspect(force=True).kind == "refused"  # SIGHUP looks again


def test_an_edit_of_dotenv_alone_is_a_change_on_sighup(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("HOOK=https://hooks.example.com/a\n")
    path = tmp_path / "rules.yaml"
    path.write_text(
        'channels:\n  h: {type: webhook, url: "${HOOK}"}\n' + GOOD + "    notify: [h]\n"
    )
    rules = RuleFile(path, env_file=env, channel_configs=CHANNEL_CONFIGS)
    rules.load()
    assert rules.inspect(force=True).kind == "unchanged"
    env.write_text("HOOK=https://hooks.example.com/b\n")
    assert rules.inspect().kind == "unchanged"  # the watch tick looks at the rule file only
    assert rules.inspect(force=True).kind == "loaded"


def test_the_reserved_names_are_the_secret_settings() -> None:
    assert {"FINNHUB_API_KEY", "FMP_API_KEY", "SMTP_PASSWORD", "EARNWATCH_DATABASE_URL"} <= (
        SECRET_ENV_NAMES
    )
    assert "FINNHUB_BASE_URL" not in SECRET_ENV_NAMES
    assert all(name.isupper() for name in SECRET_ENV_NAMES)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    os.mkfifo(path)
    with pytest.raises(RuleFileRefused, match="not a regular file"):
        load_rule_file(path, env={}, channel_configs=CHANNEL_CONFIGS)
