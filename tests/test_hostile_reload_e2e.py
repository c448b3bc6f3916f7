"""Every hostile rule file of issue #9, against `earnwatch run` as users run it: at start
it is one line and exit 2 (never a crash loop under `Restart=on-failure`); written over a
running daemon's good file it is refused on reload with one line naming its place, counted
in `earnwatch_rule_reload_errors_total`, in bounded time, and the old rules keep firing.

One daemon takes every hostile edit in turn (each refusal must be counted before the next
edit is written), then the report its old rule watches is published and must arrive."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_setup import MISSED, RULES, fake_finnhub, write_env
from tests.e2e import ROOT, Daemon, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver
from tests.test_daemon_rulefile import reload_errors

pytestmark = pytest.mark.slow


def _laughs() -> str:
    lines = ["version: 1", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefghi", "bcdefghij", strict=True):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    return "\n".join([*lines, "rules: []"]) + "\n"


def _rule(**fields: str) -> str:
    body = {"name": "bad", "symbols": "[LUMN]", "when": "price > 1", **fields}
    return RULES + "".join(
        f"  {'- ' if i == 0 else '  '}{k}: {v}\n" for i, (k, v) in enumerate(body.items())
    )


#: name -> (file content, text the refusal must contain). Each was a traceback, a hang, a
#: memory blow-up or a silent acceptance before.
HOSTILE: dict[str, tuple[bytes, str]] = {
    "billion laughs": (_laughs().encode(), "YAML aliases"),
    "python tag": (
        (RULES + "x: !!python/object/apply:os.system ['true']\n").encode(),
        "tag",
    ),
    "bad merge key": ((RULES + "defaults:\n  <<: 5\n").encode(), "merge"),
    "template loop": (_rule(message="'{% for i in [1]*10**7 %}{% endfor %}'").encode(), ":"),
    "template repetition": (_rule(message="\"{{ 'x' * 10**9 }}\"").encode(), ":"),
    "pct size": (_rule(message="'{{ price|pct(10**8) }}'").encode(), ":"),
    "filter typo": (_rule(message="'{{ price | rond(2) }}'").encode(), "rond"),
    "deep not": (_rule(when="not " * 5000 + "reported").encode(), ":"),
    "long plus chain": (_rule(when="price" + " + 1" * 2000 + " > 1").encode(), ":"),
    "huge integer": (_rule(when="price * 1" + "0" * 400 + " > 1").encode(), "too large"),
    "huge duration": (_rule(cooldown="99999999999999999999d").encode(), "cooldown"),
    "reserved secret": (_rule(message="'${FINNHUB_API_KEY}'").encode(), "FINNHUB_API_KEY"),
    "empty file": (b"", "no rules"),
    "cut after channels": (b"channels:\n", "no rules"),
    "utf-16": (RULES.encode("utf-16"), "UTF-8"),
    "binary": (bytes(range(256)) * 4, "UTF-8"),
    "non-ascii symbol": (_rule(symbols='["\u0131bm"]').encode(), "ASCII"),
    "newline in a channel name": (
        RULES.replace("  hook:", '  "hook\\nINFO forged":', 1).encode(),
        "channels",
    ),
}


@pytest.fixture
def finnhub() -> Iterator[FakeFinnhub]:
    fake = fake_finnhub()
    try:
        yield fake
    finally:
        fake.stop()


def _one_line_refusal(log: str, expected: str) -> None:
    assert "Traceback" not in log, log[-3000:]
    refused = [line for line in log.splitlines() if "ERROR" in line]
    assert refused, log[-3000:]
    assert any(expected in line for line in refused), log[-3000:]
    assert all(len(line) < 600 for line in refused), refused  # a line, not a dump


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_file_at_start_is_one_line_and_exit_2(
    tmp_path: Path, finnhub: FakeFinnhub, name: str
) -> None:
    content, expected = HOSTILE[name]
    with Receiver() as receiver:
        write_env(tmp_path, finnhub, receiver)
        (tmp_path / "rules.yaml").write_bytes(content)
        done = subprocess.run(
            [sys.executable, "-m", "service", "run", "--rules", "rules.yaml"],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    log = done.stdout + done.stderr
    assert done.returncode == 2, log[-3000:]
    _one_line_refusal(log, expected)
    assert "test-finnhub-key" not in log


def test_every_hostile_edit_is_refused_and_the_old_rules_keep_firing(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    with Receiver() as receiver:
        write_env(tmp_path, finnhub, receiver)
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES)
        with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
            wait_for(lambda: "earnwatch running" in daemon.log(), 20, "the daemon to run", daemon)
            for count, name in enumerate(sorted(HOSTILE), start=1):
                content, expected = HOSTILE[name]
                before = len(daemon.log())
                rules.write_bytes(content)
                wait_for(
                    lambda count=count: reload_errors(daemon) >= count,
                    20,
                    f"the refusal of the {name} edit",
                    daemon,
                )
                _one_line_refusal(daemon.log()[before:], expected)
            assert daemon.process is not None
            peak = _peak_rss_mib(daemon.process.pid)
            finnhub.set_event(**MISSED)
            wait_for(lambda: receiver.requests, 15, "the alert of the old rules", daemon)
            assert daemon.stop() == 0
        log = daemon.log()
    assert [json.loads(r.body)["rule"] for r in receiver.requests] == ["lumn-miss"]
    assert "Traceback" not in log
    assert not re.search(r"^INFO forged", log, re.M)
    assert "test-finnhub-key" not in log
    # Bounded memory: before, the laughs took `check` to 7 GB and `[1]*10**7` to 7.6 GB.
    assert peak < 400, f"peak RSS {peak:.0f} MiB"


def _peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/PID/status")
