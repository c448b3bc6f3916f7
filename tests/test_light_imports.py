"""What each command imports (issue 16.2): a command loads the libraries its work needs and
no others. Counted in modules, never in seconds: each command runs as a real subprocess
(`python -c` around `service.cli.main`, in an empty folder with no EARNWATCH_* variables)
that writes `sys.modules` when it exits. bench/startup.py prints the times."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.store import db
from service.store.db import (
    create_db_engine,
    current_revision,
    migrate,
    open_database,
    packaged_head,
)

WRAPPER = """\
import atexit, os, sys
def _dump():
    with open(os.environ["MODULES_OUT"], "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
atexit.register(_dump)
sys.argv = ["earnwatch", *sys.argv[1:]]
from service.cli import main
main()
"""

RULES = """\
version: 1
channels:
  hook: {type: webhook, url: "https://hooks.example.com/x", secret: whsec_YmVuY2gtc2lnbmluZy1rZXk=}
defaults:
  notify: [hook]
rules:
  - name: lumn_up
    symbols: [LUMN]
    when: price > 10
  - name: reminder
    symbols: [LUMN]
    when: not reported and hours_to_earnings <= 24
"""
MESSAGE_RULE = """\
  - name: with_message
    symbols: [LUMN]
    when: price < 2
    message: "{{ symbol }} fell to {{ price }}"
"""
DIGEST_RULE = """\
  - name: weekly
    symbols: [LUMN]
    digest: "0 8 * * mon"
"""

#: Never needed to read and check a rule file without messages or digests.
NOT_FOR_CHECK = frozenset(
    {
        "alembic",
        "psycopg",
        "sqlalchemy",
        "sqlmodel",
        "starlette",
        "uvicorn",
        "websockets",
        "jinja2",
        "apscheduler",
        "httpx",
        "httpcore",
        "anyio",
        "aiosmtplib",
        "holidays",
        "prometheus_client",
        "matplotlib",
        # Settings are read by service/config.py itself (0.2 s and 14 MiB less a command)
        "pydantic_settings",
        # The arguments are parsed by argparse (service/cli.py): typer, with click, rich's
        # help and pydantic adapters per option, was ~90 ms of every command's start
        "typer",
        "click",
        "rich",
        "shellingham",
    }
)


def imported(args: list[str], folder: Path, **env: str) -> tuple[set[str], int, str]:
    """The top-level packages a command imported, its exit code and its output."""
    names, code, output = imported_modules(args, folder, **env)
    return {name.split(".", 1)[0] for name in names}, code, output


def imported_modules(args: list[str], folder: Path, **env: str) -> tuple[set[str], int, str]:
    """Every module a command imported, its exit code and its output."""
    out = folder / "modules.txt"
    out.unlink(missing_ok=True)
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EARNWATCH_", "FINNHUB_", "FMP_", "SMTP_"))
    }
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args],
        cwd=folder,
        env={**clean, **env, "MODULES_OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    return set(out.read_text().splitlines()), done.returncode, done.stdout + done.stderr


def test_check_of_a_file_without_messages_imports_no_database_client_web_or_jinja(
    tmp_path: Path,
) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    tops, code, output = imported(["check", "--rules", "rules.yaml"], tmp_path)
    assert code == 0, output
    assert "rules.yaml: OK: 2 rules" in output
    assert tops & NOT_FOR_CHECK == set()
    assert {"service", "pydantic", "yaml"} <= tops  # it did load and validate the file


def test_check_loads_no_event_loop_tls_or_engine(tmp_path: Path) -> None:
    """A check reads and validates; it runs nothing. asyncio (the clock, the limiters, the
    pacers), ssl (the channels' TLS context, email) and the engine load with their first
    use, not with the registries `check` imports."""
    (tmp_path / "rules.yaml").write_text(RULES)
    names, code, output = imported_modules(["check", "--rules", "rules.yaml"], tmp_path)
    assert code == 0, output
    tops = {name.split(".", 1)[0] for name in names}
    assert tops & {"asyncio", "ssl", "_ssl"} == set()
    assert names & {"service.engine", "service.daemon", "service.pipeline"} == set()


def test_a_message_brings_jinja2_and_a_digest_apscheduler_and_nothing_else(
    tmp_path: Path,
) -> None:
    (tmp_path / "message.yaml").write_text(RULES + MESSAGE_RULE)
    (tmp_path / "digest.yaml").write_text(RULES + DIGEST_RULE)
    tops, code, output = imported(["check", "--rules", "message.yaml"], tmp_path)
    assert code == 0, output
    assert tops & NOT_FOR_CHECK == {"jinja2"}
    tops, code, output = imported(["check", "--rules", "digest.yaml"], tmp_path)
    assert code == 0, output
    assert tops & NOT_FOR_CHECK == {"apscheduler"}


def test_a_bad_message_is_still_reported_with_its_position(tmp_path: Path) -> None:
    bad = MESSAGE_RULE.replace("{{ price }}", "{{ price ")
    (tmp_path / "rules.yaml").write_text(RULES + bad)
    tops, code, output = imported(["check", "--rules", "rules.yaml"], tmp_path)
    assert code == 1
    assert "rules.yaml:16:" in output, output
    assert "jinja2" in tops


BUILT_WRAPPER = """\
import atexit, os, sys
def _dump():
    model = sys.modules["service.rules.model"].RuleModel
    with open(os.environ["MODULES_OUT"], "w") as f:
        f.write(repr(model.__pydantic_complete__))
atexit.register(_dump)
sys.argv = ["earnwatch", *sys.argv[1:]]
from service.cli import main
main()
"""


@pytest.mark.parametrize(("rule", "built"), [("", False), ("    for: [5m]\n", True)])
def test_check_builds_the_rule_model_only_for_a_rule_not_written_plainly(
    tmp_path: Path, rule: str, built: bool
) -> None:
    """RuleModel is built at its first use (`defer_build`): a file of plainly written rules
    is read by the loader's fast path without it; a rule the fast path leaves to pydantic
    (here `for:` given a list) builds it, and its problem is still reported."""
    (tmp_path / "rules.yaml").write_text(RULES + rule)
    out = tmp_path / "built.txt"
    done = subprocess.run(
        [sys.executable, "-c", BUILT_WRAPPER, "check", "--rules", "rules.yaml"],
        cwd=tmp_path,
        env={**os.environ, "MODULES_OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == (1 if built else 0), done.stdout + done.stderr
    assert out.read_text() == repr(built)
    if built:
        assert "rules.yaml:13:" in done.stderr, done.stderr


PLUGIN_WRAPPER = """\
import atexit, os, sys
def _dump():
    loader = sys.modules.get("pydantic.plugin._loader")
    with open(os.environ["MODULES_OUT"], "w") as f:
        f.write(repr(None if loader is None else loader._plugins))
atexit.register(_dump)
sys.argv = ["earnwatch", *sys.argv[1:]]
from service.cli import main
main()
"""


@pytest.mark.parametrize(("preset", "scanned"), [(None, False), ("", True)])
def test_check_looks_for_no_pydantic_plugins_unless_the_user_asks(
    tmp_path: Path, preset: str | None, scanned: bool
) -> None:
    """pydantic reads every installed distribution's entry points for its plugins the first
    time a model is built; Earnwatch uses none and skips that, unless PYDANTIC_DISABLE_PLUGINS
    is already set (here to "": no plugin disabled)."""
    (tmp_path / "rules.yaml").write_text(RULES)
    out = tmp_path / "plugins.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EARNWATCH_", "PYDANTIC_"))}
    if preset is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = preset
    done = subprocess.run(
        [sys.executable, "-c", PLUGIN_WRAPPER, "check", "--rules", "rules.yaml"],
        cwd=tmp_path,
        env={**env, "MODULES_OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # the loader's cache of plugins found: None until it scanned, then a dict
    assert (out.read_text() != "None") is scanned


@pytest.mark.parametrize("args", [["--help"], ["version"], ["silence", "--help"]])
def test_help_and_version_import_no_command_s_libraries(tmp_path: Path, args: list[str]) -> None:
    tops, code, output = imported(args, tmp_path)
    assert code == 0, output
    assert tops & NOT_FOR_CHECK == set()
    assert tops & {"yaml", "pydantic", "pydantic_core"} == set()  # nothing is validated


def test_run_on_a_current_sqlite_schema_imports_neither_sqlalchemy_alembic_nor_psycopg(
    tmp_path: Path,
) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    env = {
        "EARNWATCH_PROVIDERS": "replay",
        "EARNWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'earnwatch.db'}",
        "EARNWATCH_HTTP": "off",
    }
    first, code, output = imported(["run", "--once", "--rules", "rules.yaml"], tmp_path, **env)
    assert code == 0, output
    # an empty database: migrated in a child process (service/store/migrator.py), so
    # neither the migration's SQLAlchemy nor Alembic and Mako are in the daemon
    database = open_database(env["EARNWATCH_DATABASE_URL"])
    try:
        assert current_revision(database) == packaged_head()
    finally:
        database.close()
    assert first & {"alembic", "mako", "sqlalchemy"} == set()
    again, code, output = imported(["run", "--once", "--rules", "rules.yaml"], tmp_path, **env)
    assert code == 0, output
    # the schema is at the head: one plain query, no Alembic; SQLite runs on sqlite3
    assert again & {"alembic", "sqlalchemy"} == set()
    assert {"sqlite3", "apscheduler"} <= again  # what run does need on SQLite
    for tops in (first, again):
        # PostgreSQL's driver, the stream (replay has none), templates (no message), the
        # web stack (EARNWATCH_HTTP off); settings are read without pydantic-settings;
        # httpx (replay calls no API, no heartbeat URL is set, webhooks go through h11)
        unneeded = {"psycopg", "websockets", "jinja2", "starlette", "uvicorn", "pydantic_settings"}
        unneeded |= {"httpx", "httpcore", "anyio"}
        assert tops & unneeded == set()
        # httpx's command-line tool, Mako's error-page highlighting (service/__init__.py)
        assert tops & {"rich", "pygments"} == set()  # click is typer's own


def test_the_daemon_s_modules_import_no_sqlalchemy() -> None:
    """`import service.daemon` (what `earnwatch run` loads before it opens the store) loads
    the store's SQLite layer on sqlite3, and no SQLAlchemy: PostgreSQL's engine, the Core
    tables and the migrations come only with a PostgreSQL URL or a schema behind the head."""
    code = (
        "import sys, service.daemon, service.store; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'alembic', "
        "'psycopg'}), 'service.store.lite' in sys.modules, 'service.store.tables' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["[]", "True", "False"]


@pytest.mark.postgres
def test_run_on_postgresql_imports_sqlalchemy_and_psycopg_and_on_sqlite_neither(
    tmp_path: Path, pg_url: str
) -> None:
    """A SQLite daemon process holds no sqlalchemy module; a PostgreSQL one does (its
    engine, psycopg through it), the schema at the head for both (no Alembic)."""
    (tmp_path / "rules.yaml").write_text(RULES)
    env = {"EARNWATCH_PROVIDERS": "replay", "EARNWATCH_HTTP": "off"}
    sqlite = {**env, "EARNWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'earnwatch.db'}"}
    postgresql = {**env, "EARNWATCH_DATABASE_URL": pg_url}
    for backend in (sqlite, postgresql):  # the first run of each migrates the empty schema
        _, code, output = imported(["run", "--once", "--rules", "rules.yaml"], tmp_path, **backend)
        assert code == 0, output
    on_sqlite, code, output = imported(
        ["run", "--once", "--rules", "rules.yaml"], tmp_path, **sqlite
    )
    assert code == 0, output
    on_postgresql, code, output = imported(
        ["run", "--once", "--rules", "rules.yaml"], tmp_path, **postgresql
    )
    assert code == 0, output
    assert on_sqlite & {"sqlalchemy", "alembic", "psycopg"} == set()
    assert {"sqlalchemy", "psycopg"} <= on_postgresql
    assert "alembic" not in on_postgresql


#: The plug-in modules of the registries (service/plugins.py), imported with their lookup.
CHANNEL_MODULES = {
    f"service.notify.{kind}"
    for kind in ("webhook", "slack", "email", "telegram", "discord", "ntfy")
}
PROVIDER_MODULES = {f"service.providers.{name}" for name in ("finnhub", "fmp", "nasdaq", "replay")}


def test_check_imports_the_channel_types_its_file_names_and_the_providers_listed(
    tmp_path: Path,
) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    names, code, output = imported_modules(["check", "--rules", "rules.yaml"], tmp_path)
    assert code == 0, output
    assert names & CHANNEL_MODULES == {"service.notify.webhook"}
    assert names & PROVIDER_MODULES == {"service.providers.finnhub"}  # the default list
    # an unknown type is still refused with every registered type named, none imported
    (tmp_path / "odd.yaml").write_text(RULES.replace("type: webhook", "type: pager"))
    names, code, output = imported_modules(["check", "--rules", "odd.yaml"], tmp_path)
    assert code == 1, output
    assert "unknown channel type 'pager'; use discord, email, ntfy, slack, telegram, webhook" in (
        output
    )
    assert names & CHANNEL_MODULES == set(), output


def test_importing_the_daemon_loads_no_channel_or_provider_module() -> None:
    code = "import sys, service.daemon; print(*sorted(sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    names = set(done.stdout.split())
    assert "service.app" in names
    assert names & (CHANNEL_MODULES | PROVIDER_MODULES | {"service.status"}) == set()
    assert {name.split(".", 1)[0] for name in names} & {"httpx", "aiosmtplib"} == set()


def test_run_on_replay_with_a_slack_channel_loads_no_other_provider_nor_smtp(
    tmp_path: Path,
) -> None:
    slack = RULES.replace(
        'hook: {type: webhook, url: "https://hooks.example.com/x", '
        "secret: whsec_YmVuY2gtc2lnbmluZy1rZXk=}",
        'chat: {type: slack, url: "https://hooks.slack.com/services/T0/B0/x"}',
    ).replace("notify: [hook]", "notify: [chat]")
    assert "type: slack" in slack
    (tmp_path / "rules.yaml").write_text(slack)
    env = {
        "EARNWATCH_PROVIDERS": "replay",
        "EARNWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'earnwatch.db'}",
        "EARNWATCH_HTTP": "off",
    }
    names, code, output = imported_modules(
        ["run", "--once", "--rules", "rules.yaml"], tmp_path, **env
    )
    assert code == 0, output
    assert names & PROVIDER_MODULES == {"service.providers.replay"}
    assert "service.providers.wire" not in names  # the HTTP providers' payload readers
    tops = {name.split(".", 1)[0] for name in names}
    assert tops & {"aiosmtplib", "httpx"} == set()  # email sends load aiosmtplib, not run


def test_no_command_imports_sqlmodel_or_the_orm(tmp_path: Path) -> None:
    """The tables are SQLAlchemy Core (service/store/tables.py): declaring them needs
    neither SQLModel nor `sqlalchemy.orm`, and no query uses a session."""
    (tmp_path / "rules.yaml").write_text(RULES + MESSAGE_RULE + DIGEST_RULE)
    env = {
        "EARNWATCH_PROVIDERS": "replay",
        "EARNWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'earnwatch.db'}",
        "EARNWATCH_HTTP": "off",
    }
    commands = [
        ["check", "--rules", "rules.yaml"],
        ["run", "--once", "--rules", "rules.yaml"],  # an empty database: a child migrates
        ["run", "--once", "--rules", "rules.yaml"],  # at the head: the store alone
        ["silence", "list"],
    ]
    for args in commands:
        names, code, output = imported_modules(args, tmp_path, **env)
        assert code == 0, (args, output)
        assert "service.store" in names or args[0] == "check"  # the store was loaded
        assert not {name for name in names if name.split(".", 1)[0] == "sqlmodel"}, args
        assert not {name for name in names if name.startswith("sqlalchemy.orm")}, args


def test_httpx_and_a_migration_come_without_the_cli_and_highlighting_they_never_use(
    tmp_path: Path,
) -> None:
    """httpx's __init__ imports its CLI (click, rich, pygments) and Alembic's Mako its
    error pages' highlighting (pygments); service/__init__.py refuses those two modules,
    once each, then leaves sys.meta_path, and both libraries work otherwise."""
    code = (
        "import sys, service, httpx; from service.store import open_store; "
        f"open_store('sqlite:///{tmp_path / 'new.db'}').close(); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'rich', 'pygments'})); "
        "import mako.exceptions, mako.template; "
        "print(type(httpx.Client()).__name__, callable(httpx.main)); "
        "print(mako.template.Template('${x}').render(x=1), 'alembic' in sys.modules); "
        "print(any(type(f).__name__ == '_Unneeded' for f in sys.meta_path))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.splitlines() == ["[]", "Client True", "1 True", "False"]


# --- the revision check that stands in for Alembic ---------------------------------------


def test_the_packaged_head_read_from_the_files_is_alembic_s_head() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(db.alembic_config())
    assert packaged_head() == script.get_current_head()


def test_a_database_behind_the_head_is_still_migrated(tmp_path: Path) -> None:
    from alembic import command

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_db_engine(url)
    try:
        with db.write_tx(engine) as connection:
            command.upgrade(db.alembic_config(connection), "r0001")
        assert current_revision(engine) == "r0001"
        migrate(engine)  # a SQLAlchemy engine, as before
        assert current_revision(engine) == packaged_head()
        with db.write_tx(engine) as connection:
            command.downgrade(db.alembic_config(connection), "r0002")
    finally:
        engine.dispose()
    database = open_database(url)  # the store's own layer, on sqlite3
    try:
        assert current_revision(database) == "r0002"
        migrate(database)
        assert current_revision(database) == packaged_head()
    finally:
        database.close()


def test_an_unclear_head_in_the_files_leaves_the_decision_to_alembic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "a.py").write_text('revision = "a"\ndown_revision = None\n')
    (versions / "b.py").write_text('revision = "b"\ndown_revision: str | None = "a"\n')
    monkeypatch.setattr(db, "MIGRATIONS", tmp_path)
    packaged_head.cache_clear()
    try:
        assert packaged_head() == "b"
        packaged_head.cache_clear()
        (versions / "c.py").write_text('revision = "c"\ndown_revision = "a"\n')  # two heads
        assert packaged_head() is None
        packaged_head.cache_clear()
        (versions / "c.py").write_text('revision = "c"\ndown_revision = ("a", "b")\n')  # merge
        assert packaged_head() is None
    finally:
        packaged_head.cache_clear()


# --- the NYSE calendar without the package's other calendars -----------------------------


def test_the_nyse_calendar_loaded_alone_is_the_package_s_nyse_calendar() -> None:
    import holidays as package

    from service import hours

    for year in range(1950, 2061):
        assert hours.holidays(year) == frozenset(package.financial_holidays("NYSE", years=year))
        half = package.financial_holidays("NYSE", years=year, categories=("half_day",))
        assert hours.early_closes(year) == frozenset(half), year


def test_a_trading_day_question_loads_no_other_country_or_exchange(tmp_path: Path) -> None:
    code = (
        "import sys; from datetime import date; from service import hours; "
        "assert not hours.is_trading_day(date(2025, 1, 9)); "  # a day of mourning
        "assert hours.is_early_close(date(2026, 11, 27)); "
        "print(sorted(m for m in sys.modules if m.startswith('holidays')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = ast.literal_eval(done.stdout)
    assert "holidays.countries" not in loaded
    assert "holidays.financial" not in loaded
    assert len(loaded) < 80  # the base classes and calendars; the whole package is ~340


# --- the channels' HTTP client without httpx ---------------------------------------------

CHANNEL_SEND = """\
import asyncio, sys
from datetime import UTC, datetime

from service.config import Settings
from service.notify import build_notifiers
from service.notify.base import Message
from service.notify.webhook import WebhookConfig


RECEIVED = []


async def answer(reader, writer):
    while not reader.at_eof():
        try:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
        except asyncio.IncompleteReadError:
            break
        length = int(head.lower().split(b"content-length:")[1].split(b"\\r\\n")[0])
        RECEIVED.append(await reader.readexactly(length))
        writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")
        await writer.drain()
    writer.close()


async def main():
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    notifiers = build_notifiers(Settings())
    message = Message("alert_1", "rule", "LUMN", "title", "text", datetime.now(UTC), {})
    config = WebhookConfig.model_validate({"url": f"http://127.0.0.1:{port}/hook"})
    for n in range(3):
        await notifiers["webhook"].send(message, config, delivery_id=f"d{n}")
    for notifier in notifiers.values():
        await notifier.aclose()
    server.close()
    assert len(RECEIVED) == 3, RECEIVED
    print(" ".join(sorted({name.split(".", 1)[0] for name in sys.modules})))


asyncio.run(main())
"""


def test_sending_a_webhook_loads_neither_httpx_nor_httpcore_nor_anyio(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EARNWATCH_")}
    done = subprocess.run(
        [sys.executable, "-c", CHANNEL_SEND],
        cwd=tmp_path,
        env={**clean, "EARNWATCH_ALLOW_PRIVATE_TARGETS": "true"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    tops = set(done.stdout.split())
    assert {"h11", "service"} <= tops  # it did build the notifiers and send
    assert tops & {"httpx", "httpcore", "anyio"} == set()


# --- the web stack without Jinja2 until a page is asked for ------------------------------

WEB_PAGES = """\
import asyncio, sys, urllib.error, urllib.request

from service.metrics import Metrics
from service.web import start_web
from tests.test_status import snapshot


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


async def main():
    async def status():
        return snapshot()

    web = await start_web(
        "127.0.0.1", 0, lambda: (True, "ok"), Metrics(), status=status, token=sys.argv[1] or None
    )
    seen = []
    for path in ("/healthz", "/metrics", "/api/status", "/"):
        code = await asyncio.to_thread(get, web.port, path)
        seen.append(f"{path} {code} {'jinja2' in sys.modules}")
    await web.aclose()
    print(*seen, sep="\\n")


asyncio.run(main())
"""


@pytest.mark.parametrize("token", ["", "page-token"])
def test_the_web_stack_loads_jinja2_with_the_first_page_it_renders(token: str) -> None:
    """/healthz, /metrics and /api/status render no template: Jinja2 comes with the first
    HTML answer (the status page, or the login form a token-guarded page answers with)."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", WEB_PAGES, token],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    closed = "401" if token else "200"
    assert done.stdout.splitlines() == [
        "/healthz 200 False",
        f"/metrics {closed} False",
        f"/api/status {closed} False",
        f"/ {closed} True",
    ]


def test_the_stream_s_module_loads_websockets_only_to_connect() -> None:
    """A standby replica builds its stream and never connects (only the leader streams):
    websockets is imported by the first connection attempt."""
    code = (
        "import sys; import service.providers.finnhub_stream as s; "
        "print('websockets' in sys.modules, callable(s.build_stream))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["False", "True"]
