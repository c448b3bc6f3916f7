"""The domain's imports, as an allow-list: a domain module may import only the standard
library, the few pure libraries below, and other domain modules. So adapters depend on
the domain and never the reverse, and a domain module reaching for the pipeline, the web
edge or any IO library fails here, whatever that library is called."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "service"
DOMAIN_MODULES = (
    "service.market",
    "service.engine",
    "service.wakes",
    "service.clock",
    "service.errors",
    "service.durations",
    "service.hours",
    "service.marketdata",
    "service.schedule",
    "service.stages",
    "service.quiet",
    "service.figures",
    "service.confirm",
    "service.digest",
    "service.explain",
    "service.rules",
    "service.ruletests",
)
#: Pure libraries the domain may use: validation, YAML, templates, the NYSE holidays.
LIBRARIES = (
    "pydantic",
    "pydantic_core",
    "yaml",
    "jinja2",
    "markupsafe",
    "holidays",
    # APScheduler's cron trigger alone, as the cron parser of digest rules (issue #13
    # asks for it): pure date arithmetic, no scheduler, no IO. The scheduler itself stays
    # in service/daemon.py.
    "apscheduler.triggers.cron",
)
#: The standard library's own IO, refused too.
STDLIB_IO = (
    "socket",
    "ssl",
    "sqlite3",
    "smtplib",
    "subprocess",
    "urllib.request",
    "http.client",
    "http.server",
)


def _path(module: str) -> list[Path]:
    base = ROOT.parent.joinpath(*module.split("."))
    if base.is_dir():
        return sorted(base.glob("*.py"))
    return [base.with_suffix(".py")] if base.with_suffix(".py").exists() else []


DOMAIN = [path for module in DOMAIN_MODULES for path in _path(module)]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def not_allowed(names: set[str]) -> list[str]:
    """The imports a domain module may not make."""
    return sorted(
        name
        for name in names
        if (name.split(".")[0] not in sys.stdlib_module_names or _within(name, STDLIB_IO))
        and not _within(name, LIBRARIES)
        and not _within(name, DOMAIN_MODULES)
        and name != "__future__"
    )


@pytest.mark.parametrize("path", DOMAIN, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_domain_module_imports_only_the_stdlib_pure_libraries_and_the_domain(
    path: Path,
) -> None:
    assert not_allowed(imports_of(path)) == []


def test_every_listed_domain_module_exists() -> None:
    for module in DOMAIN_MODULES:
        if module == "service.figures" and not _path(module):
            continue  # single-sourced formatting lands with the channel work
        assert _path(module), module


def test_the_allow_list_refuses_io_and_the_service_edges(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import httpx\nfrom sqlmodel import Session\nfrom service.store import x\n"
        "from service.pipeline import Pipeline\nimport service.web\nimport socket\n"
        "from service.config import Settings\nfrom service.market import Quote\n"
        "from datetime import date\nimport jinja2\n"
    )
    assert not_allowed(imports_of(bad)) == [
        "httpx",
        "service.config",
        "service.pipeline",
        "service.store",
        "service.web",
        "socket",
        "sqlmodel",
    ]
