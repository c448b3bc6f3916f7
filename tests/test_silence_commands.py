"""`earnwatch silence add | list | expire` as a user runs them: subprocesses in a temporary
folder whose `.env` names a SQLite database."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ID = r"s_[0-9a-f]{10}"
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def earnwatch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=90,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / ".env").write_text(f"EARNWATCH_DATABASE_URL=sqlite:///{tmp_path}/earnwatch.db\n")
    return tmp_path


def added_id(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    first = result.stdout.split()[0]
    assert re.fullmatch(ID, first)
    return first


def test_add_prints_the_new_id_first_and_what_it_silences(folder: Path) -> None:
    both = earnwatch(
        "silence", "add", "--rule", "lumn-above", "--symbol", "lumn", "--for", "2h", cwd=folder
    )
    assert re.fullmatch(rf"{ID} silences rule lumn-above for LUMN until {TIME}\n", both.stdout)
    added_id(both)
    rule = earnwatch("silence", "add", "--rule", "lumn-above", "--for", "30m", cwd=folder)
    assert re.fullmatch(rf"{ID} silences rule lumn-above until {TIME}\n", rule.stdout)
    symbol = earnwatch(
        "silence", "add", "--symbol", "PLTR", "--until", "2099-01-02T03:04:05", cwd=folder
    )
    assert added_id(symbol) and symbol.stdout.split(" ", 1)[1] == (
        "silences symbol PLTR until 2099-01-02T03:04:05Z\n"  # no offset: read as UTC
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--for", "1h"], "give --rule NAME, --symbol SYM or both"),
        (["--rule", "r"], "exactly one of --for DURATION or --until TIME"),
        (["--rule", "r", "--for", "1h", "--until", "2099-01-01T00:00:00Z"], "exactly one of"),
        (["--rule", "r", "--until", "2020-01-01T00:00:00Z"], "has passed"),
        (["--rule", "r", "--for", "soon"], "invalid duration 'soon'"),
        (["--symbol", "NOT A SYMBOL", "--for", "1h"], "--symbol"),
    ],
)
def test_add_refuses_a_mistake_with_one_line_and_exit_2(
    folder: Path, args: list[str], says: str
) -> None:
    result = earnwatch("silence", "add", *args, cwd=folder)
    assert result.returncode == 2
    assert result.stdout == "" and says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert earnwatch("silence", "list", cwd=folder).stdout == "no active silences\n"


def test_list_shows_the_active_silences_aligned_and_as_json(folder: Path) -> None:
    assert earnwatch("silence", "list", cwd=folder).stdout == "no active silences\n"
    assert json.loads(earnwatch("silence", "list", "--json", cwd=folder).stdout) == []
    first = added_id(
        earnwatch(
            "silence",
            "add",
            "--rule",
            "lumn-above",
            "--symbol",
            "LUMN",
            "--for",
            "2h",
            "--comment",
            "earnings call at 17:00",
            cwd=folder,
        )
    )
    second = added_id(earnwatch("silence", "add", "--symbol", "PLTR", "--for", "1d", cwd=folder))
    table = earnwatch("silence", "list", cwd=folder)
    assert table.returncode == 0
    header, rule, *rows = table.stdout.splitlines()
    assert header.split() == ["ID", "RULE", "SYMBOL", "UNTIL", "COMMENT", "CREATED"]
    assert set(rule) <= {"-", " "}
    starts = [header.index(name) for name in ("RULE", "SYMBOL", "UNTIL", "COMMENT", "CREATED")]
    assert [row.split()[0] for row in rows] == [first, second]
    for row in rows:  # every column starts under its header
        assert all(row[i - 2 : i] == "  " and row[i] != " " for i in starts)
    assert rows[0].split()[1:3] == ["lumn-above", "LUMN"] and "earnings call at 17:00" in rows[0]
    assert rows[1].split()[1:3] == ["-", "PLTR"]

    listed = json.loads(earnwatch("silence", "list", "--json", cwd=folder).stdout)
    assert [set(s) for s in listed] == [{"id", "rule", "symbol", "until", "comment", "created"}] * 2
    assert listed[0]["id"] == first and listed[1]["id"] == second
    assert (listed[1]["rule"], listed[1]["symbol"], listed[1]["comment"]) == (None, "PLTR", None)
    until = datetime.fromisoformat(listed[1]["until"])
    created = datetime.fromisoformat(listed[1]["created"])
    assert until.utcoffset() == timedelta(0) and created.utcoffset() == timedelta(0)
    assert abs(created - datetime.now(UTC)) < timedelta(minutes=2)
    assert abs(until - created - timedelta(days=1)) < timedelta(seconds=2)


def test_expire_ends_a_silence_then_refuses_it_and_an_unknown_id_with_exit_1(
    folder: Path,
) -> None:
    kept = added_id(earnwatch("silence", "add", "--symbol", "PLTR", "--for", "1h", cwd=folder))
    gone = added_id(earnwatch("silence", "add", "--rule", "lumn-above", "--for", "1h", cwd=folder))
    expired = earnwatch("silence", "expire", gone, cwd=folder)
    assert expired.returncode == 0
    assert re.fullmatch(
        rf"{gone} expired at {TIME}: new alerts of rule lumn-above are sent\n", expired.stdout
    )
    listed = json.loads(earnwatch("silence", "list", "--json", cwd=folder).stdout)
    assert [s["id"] for s in listed] == [kept]
    for again in (gone, "s_0000000000"):
        result = earnwatch("silence", "expire", again, cwd=folder)
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr == (
            f"silence expire: no active silence {again!r} (unknown or already ended)\n"
        )


def test_a_database_that_cannot_be_opened_is_one_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"EARNWATCH_DATABASE_URL=sqlite:///{tmp_path}/no/such/e.db\n")
    for args in (["add", "--rule", "r", "--for", "1h"], ["list"], ["expire", "s_0000000000"]):
        result = earnwatch("silence", *args, cwd=tmp_path)
        assert result.returncode == 1, result
        assert result.stderr.startswith(f"silence {args[0]}: ")
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
