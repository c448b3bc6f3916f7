"""The rule file under a running `earnwatch run`: an edit it cannot read is read as soon as
it can be (also after a `chmod` that keeps mtime and size), a file removed or replaced by a
directory is logged once while the old rules go on firing, and content that is not a rule
file (binary, UTF-16, too large) is one line, at start (exit 2) and on reload (counted in
`earnwatch_rule_reload_errors_total`, the old rules kept)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.daemon_setup import (
    MISSED,
    RULES,
    UnprivilegedDaemon,
    can_drop_file_permissions,
    fake_finnhub,
    web_base,
    write_env,
)
from tests.e2e import Daemon, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver

pytestmark = pytest.mark.slow

ABOVE = (
    RULES + "  - name: lumn-above\n    symbols: [LUMN]\n    when: price > 9\n    notify: [hook]\n"
)


@pytest.fixture
def finnhub() -> Iterator[FakeFinnhub]:
    fake = fake_finnhub()
    try:
        yield fake
    finally:
        fake.stop()


def reload_errors(daemon: Daemon) -> float:
    base = web_base(daemon)
    assert base is not None
    for line in httpx.get(f"{base}/metrics", timeout=5).text.splitlines():
        if line.startswith("earnwatch_rule_reload_errors_total "):
            return float(line.split()[1])
    return 0.0


def rules_fired(receiver: Receiver) -> list[str]:
    return [json.loads(r.body)["rule"] for r in receiver.requests]


@pytest.mark.skipif(not can_drop_file_permissions(), reason="needs setpriv to drop CAP_DAC_*")
def test_an_edit_denied_then_allowed_by_chmod_is_read_and_applied(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    with Receiver() as receiver:
        write_env(tmp_path, finnhub, receiver)
        rules = tmp_path / "rules.yaml"
        rules.write_text(ABOVE)
        with UnprivilegedDaemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: "earnwatch running" in daemon.log(), 20, "the daemon to run", daemon)
            time.sleep(2)
            assert receiver.requests == []  # 8.46 is not above 9
            # The edit lands unreadable in one step (a config tool writing a 0600 file
            # owned by someone else, say): same size, threshold 9 -> 8.
            edit = tmp_path / "edit.yaml"
            edit.write_text(ABOVE.replace("price > 9", "price > 8"))
            edit.chmod(0)
            os.replace(edit, rules)
            wait_for(
                lambda: "cannot read the rule file: Permission denied" in daemon.log(),
                10,
                "the refusal to be logged",
                daemon,
            )
            time.sleep(3)  # several watch ticks
            assert daemon.log().count("cannot read the rule file") == 1  # logged once
            assert reload_errors(daemon) == 1
            assert receiver.requests == []  # the old threshold still holds
            stat = rules.stat()
            rules.chmod(0o600)  # the mtime and size stay as they were
            assert (rules.stat().st_mtime_ns, rules.stat().st_size) == (
                stat.st_mtime_ns,
                stat.st_size,
            )
            wait_for(lambda: receiver.requests, 10, "the alert of the edited rule", daemon)
            log = daemon.log()
        assert rules_fired(receiver) == ["lumn-above"]
        assert "the rule file can be read again" in log and "rules reloaded" in log
        assert "Traceback" not in log


def test_a_file_removed_or_replaced_by_a_directory_is_logged_once_and_the_rules_go_on(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    with Receiver() as receiver:
        write_env(tmp_path, finnhub, receiver)
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES)
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: "earnwatch running" in daemon.log(), 20, "the daemon to run", daemon)
            rules.unlink()
            wait_for(
                lambda: "cannot read the rule file: No such file or directory" in daemon.log(),
                10,
                "the missing file to be logged",
                daemon,
            )
            rules.mkdir()
            wait_for(
                lambda: "cannot read the rule file: Is a directory" in daemon.log(),
                10,
                "the directory to be logged",
                daemon,
            )
            time.sleep(3)
            finnhub.set_event(**MISSED)  # the rules loaded before still fire
            wait_for(lambda: receiver.requests, 10, "the alert of the old rules", daemon)
            assert daemon.log().count("cannot read the rule file") == 2
            assert reload_errors(daemon) == 2
            shutil.rmtree(rules)
            rules.write_text(RULES)
            wait_for(
                lambda: "the rule file can be read again" in daemon.log(),
                10,
                "the file's return",
                daemon,
            )
            code = daemon.stop()
        log = daemon.log()
        assert code == 0 and "Traceback" not in log
        assert rules_fired(receiver) == ["lumn-miss"]
        assert "rule file unchanged" in log


_LARGE = (RULES + "#" * 5000 + "\n").encode()
BAD_CONTENT = {
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00", "rules.yaml: not UTF-8 text (byte 0)"),
    "utf-16": (RULES.encode("utf-16"), "rules.yaml: not UTF-8 text (byte 0)"),
    "too large": (
        _LARGE,
        f"rules.yaml: the file is {len(_LARGE):,} bytes, above EARNWATCH_RULES_MAX_BYTES (5,000)",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_CONTENT))
def test_content_that_is_no_rule_file_is_one_line_at_start_and_on_reload(
    tmp_path: Path, finnhub: FakeFinnhub, kind: str
) -> None:
    content, line = BAD_CONTENT[kind]
    with Receiver() as receiver:
        write_env(tmp_path, finnhub, receiver, "EARNWATCH_RULES_MAX_BYTES=5000")
        rules = tmp_path / "rules.yaml"
        rules.write_bytes(content)
        daemon = Daemon(tmp_path, "--rules", "rules.yaml").start()
        assert daemon.process is not None
        try:
            assert daemon.process.wait(30) == 2
        finally:
            daemon.stop()  # never leave a daemon behind when it did start
        log = daemon.log()
        assert f"ERROR service.daemon: {line}" in log and "Traceback" not in log
        assert "cannot start: the rule file has 1 problem(s)" in log

        rules.write_text(RULES)
        daemon.start()
        try:
            wait_for(lambda: "earnwatch running" in daemon.log(), 20, "the daemon to run", daemon)
            rules.write_bytes(content)
            wait_for(lambda: "rule file refused" in daemon.log(), 10, "the refusal", daemon)
            assert reload_errors(daemon) == 1
            finnhub.set_event(**MISSED)
            wait_for(lambda: receiver.requests, 10, "the alert of the old rules", daemon)
        finally:
            code = daemon.stop()
        log = daemon.log()
        assert code == 0 and "Traceback" not in log
        assert log.count(line) == 2  # at start, then on reload
        assert rules_fired(receiver) == ["lumn-miss"]


def test_an_empty_file_on_reload_keeps_the_old_rules(tmp_path: Path, finnhub: FakeFinnhub) -> None:
    with Receiver() as receiver:
        write_env(tmp_path, finnhub, receiver)
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES)
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: "earnwatch running" in daemon.log(), 20, "the daemon to run", daemon)
            rules.write_text("")
            wait_for(lambda: "rule file refused" in daemon.log(), 10, "the refusal", daemon)
            finnhub.set_event(**MISSED)
            wait_for(lambda: receiver.requests, 10, "the alert of the old rules", daemon)
        assert rules_fired(receiver) == ["lumn-miss"]
