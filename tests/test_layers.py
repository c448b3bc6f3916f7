"""The domain imports no IO library: adapters depend on the domain, never the reverse."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "service"
DOMAIN = [
    ROOT / "market.py",
    ROOT / "engine.py",
    ROOT / "clock.py",
    ROOT / "errors.py",
    ROOT / "durations.py",
    ROOT / "hours.py",
    ROOT / "marketdata.py",
    ROOT / "schedule.py",
    *sorted((ROOT / "rules").glob("*.py")),
]
FORBIDDEN = (
    "httpx",
    "sqlmodel",
    "sqlalchemy",
    "alembic",
    "apscheduler",
    "aiosmtplib",
    "psycopg",
    "requests",
    "urllib.request",
    "socket",
    "service.providers",
    "service.notify",
    "service.store",
    "service.daemon",
    "service.httpclient",
    "service.config",
)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def forbidden_in(names: set[str]) -> list[str]:
    return sorted(n for n in names if any(n == f or n.startswith(f + ".") for f in FORBIDDEN))


@pytest.mark.parametrize("path", [p for p in DOMAIN if p.exists()], ids=lambda p: p.name)
def test_domain_module_imports_no_io_library(path: Path) -> None:
    assert forbidden_in(imports_of(path)) == []


def test_the_check_catches_an_io_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import httpx\nfrom sqlmodel import Session\nfrom service.store import x\n")
    assert forbidden_in(imports_of(bad)) == ["httpx", "service.store", "sqlmodel"]
