"""The command line itself (service/cli.py, argparse): every command and option is there
with its help, and a usage mistake is exit 2 with the mistake on the first line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = (
    "check",
    "schema",
    "test",
    "run",
    "history",
    "explain",
    "test-notify",
    "calendar",
    "demo",
    "replay",
    "version",
    "silence",
)


def earnwatch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )


def test_no_arguments_prints_the_help_with_every_command(tmp_path: Path) -> None:
    bare = earnwatch(cwd=tmp_path)
    asked = earnwatch("--help", cwd=tmp_path)
    assert (bare.returncode, asked.returncode) == (2, 0)
    assert bare.stdout == asked.stdout and bare.stderr == asked.stderr == ""
    assert "Earnings-event alerting" in asked.stdout
    listed = [line.split()[0] for line in asked.stdout.splitlines() if line.startswith("    ")]
    assert [name for name in listed if name in COMMANDS] == list(COMMANDS)


def test_silence_alone_prints_its_help(tmp_path: Path) -> None:
    bare = earnwatch("silence", cwd=tmp_path)
    assert bare.returncode == 2 and bare.stderr == ""
    assert "Stop the alerts of a rule" in bare.stdout
    for action in ("add", "list", "expire"):
        assert f"    {action}  " in bare.stdout


@pytest.mark.parametrize(
    ("args", "options"),
    [
        (["check"], ["--rules PATH", "--budget", "rule file to check"]),
        (["history"], ["--limit N", "--rule NAME", "--status STATUS", "--json"]),
        (["calendar"], ["--days N", "--rules PATH", "--json"]),
        (["demo"], ["--seconds S", "--scenario NAME"]),
        (["replay"], ["SCENARIO", "--rules PATH", "--speed N", "--instant", "--plot FILE"]),
        (["silence", "add"], ["--rule NAME", "--for DURATION", "--until TIME", "--comment"]),
        (["silence", "expire"], ["ID", "the id `add` printed"]),
    ],
)
def test_each_command_s_help_shows_its_options(
    tmp_path: Path, args: list[str], options: list[str]
) -> None:
    done = earnwatch(*args, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for option in options:
        assert option in done.stdout, (option, done.stdout)


@pytest.mark.parametrize(
    ("args", "first"),
    [
        (["nosuch"], "earnwatch: error: argument COMMAND: invalid choice: 'nosuch'"),
        (["check", "--nope"], "earnwatch check: error: unrecognized arguments: --nope"),
        (["check", "a.yaml", "b.yaml"], "earnwatch check: error: unrecognized arguments: b.yaml"),
        (["explain"], "earnwatch explain: error: the following arguments are required: RULE"),
        (["test"], "earnwatch test: error: the following arguments are required: FILES"),
        (["history", "--limit", "0"], "earnwatch history: error: argument --limit: '0' is out"),
        (["history", "--limit", "x"], "earnwatch history: error: argument --limit: 'x' is not"),
        (["calendar", "--days", "366"], "earnwatch calendar: error: argument --days: '366'"),
        (["demo", "--seconds", "4.5"], "earnwatch demo: error: argument --seconds: '4.5'"),
        (["replay", "x", "--speed", "fast"], "earnwatch replay: error: argument --speed:"),
        (["silence", "list", "--all"], "earnwatch silence list: error: unrecognized arguments"),
        (["version", "extra"], "earnwatch version: error: unrecognized arguments: extra"),
        (["check", "--rule", "x.yaml"], "earnwatch check: error: unrecognized arguments"),
    ],
)
def test_a_usage_mistake_is_exit_2_with_it_on_the_first_line(
    tmp_path: Path, args: list[str], first: str
) -> None:
    done = earnwatch(*args, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines[0].startswith(first), done.stderr
    assert lines[1:] == [f"Try '{first.split(':')[0]} --help' for help."]
    assert done.stdout == "" and "Traceback" not in done.stderr


def test_the_bounds_of_a_number_are_inclusive(tmp_path: Path) -> None:
    """`--days 365` and `--limit 1` are accepted (the command then runs: no usage error)."""
    for args in (["calendar", "--days", "365"], ["history", "--limit", "1"]):
        done = earnwatch(*args, cwd=tmp_path)
        assert "error: argument" not in done.stderr, (args, done.stderr)
