"""The default install has no PostgreSQL driver: every command that needs no PostgreSQL
works without psycopg, and a postgresql URL without it is one line naming the fix.

Each case runs `earnwatch` in a subprocess where `import psycopg` fails, as it does after
`pip install .` without the `postgres` extra (CI also proves this on a real wheel)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Runs the CLI with psycopg made unimportable (a None entry in sys.modules does that).
LAUNCH = (
    "import sys; sys.modules['psycopg'] = None; "
    "from service.cli import main; sys.argv[0] = 'earnwatch'; sys.exit(main())"
)
RULES = """\
channels:
  hook: {type: webhook, url: "https://hooks.example.com/x"}
rules:
  - {name: above, symbols: [LUMN], when: price > 7.56, notify: [hook]}
"""


def earnwatch(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LAUNCH, *args],
        cwd=folder,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES)
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [("check",), ("schema",), ("history",), ("run", "--once")],
    ids=lambda a: " ".join(a),
)
def test_commands_run_without_psycopg(folder: Path, args: tuple[str, ...]) -> None:
    env = {"EARNWATCH_PROVIDERS": "nasdaq", "NASDAQ_BASE_URL": "http://127.0.0.1:9/api"}
    done = earnwatch(folder, *args, env=env)
    assert "psycopg" not in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == 0, done.stdout + done.stderr


def test_postgresql_url_without_psycopg_is_one_line_and_exit_2(folder: Path) -> None:
    env = {
        "EARNWATCH_DATABASE_URL": "postgresql://u:pw-s3cret@127.0.0.1:9/db",
        "EARNWATCH_PROVIDERS": "nasdaq",
    }
    done = earnwatch(folder, "run", env=env)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "pip install 'earnwatch[postgres]'" in output
    assert "Traceback" not in output
    assert "pw-s3cret" not in output
