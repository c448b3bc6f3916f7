"""The `earnwatch` command: parses arguments, calls the modules that do the work, prints.

A user's mistake (a bad rule file, a bad setting) is one clear line per problem and a
non-zero exit code, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from service import __version__
from service.errors import ConfigError, RuleFileError

if TYPE_CHECKING:  # each command imports what it needs: `--help` and `version` need none
    from service.config import Settings
    from service.rules import RuleSet

app = typer.Typer(
    name="earnwatch",
    help="Earnings-event alerting: watch calendars and prices, evaluate rules, notify.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

RulesPath = Annotated[
    Path | None,
    typer.Option("--rules", help="rule file (default: $EARNWATCH_RULES, else rules.yaml)"),
]


def _settings() -> Settings:
    from service.config import load_settings

    try:
        return load_settings()
    except ConfigError as exc:
        typer.echo(f"earnwatch: {exc}", err=True)
        raise typer.Exit(2) from None


def _channel_configs() -> dict[str, type]:
    from service.notify import CHANNEL_CONFIGS

    return dict(CHANNEL_CONFIGS)


def read_rules(path: Path, settings: Settings | None = None) -> RuleSet:
    """Load a rule file for a command, or print why not and exit 1 (the daemon's rule file:
    the same size limit, decoding, validation and SSRF check, built by `service.parts`)."""
    from service.parts import rule_file_for

    settings = settings or _settings()
    try:
        return rule_file_for(settings, path).load()
    except OSError as exc:
        typer.echo(f"{path}: cannot read the rule file: {exc.strerror}", err=True)
        raise typer.Exit(1) from None
    except RuleFileError as exc:
        for line in exc.lines():
            typer.echo(line, err=True)
        typer.echo(f"{path}: {len(exc.problems)} problem(s)", err=True)
        raise typer.Exit(1) from None


@app.command()
def check(
    path: Annotated[Path | None, typer.Argument(help="rule file to check")] = None,
    rules: RulesPath = None,
    budget: Annotated[
        bool, typer.Option("--budget", help="the calls per provider against its free tier")
    ] = False,
) -> None:
    """Validate a rule file: exit 0 with a summary, or 1 with every problem as PATH:LINE:COL."""
    from service.budget import counts_of, rule_budget
    from service.providers import confirmation_problem

    settings = _settings()
    if (problem := confirmation_problem(settings)) is not None:
        typer.echo(f"earnwatch: {problem}", err=True)
        raise typer.Exit(2)
    target = path or rules or settings.rules
    ruleset = read_rules(target, settings)
    for line in ruleset.warning_lines(str(target)):
        typer.echo(line, err=True)
    typer.echo(f"{target}: OK: {ruleset.summary()}")
    plan = rule_budget(settings, counts_of(ruleset))
    for line in plan.lines() if budget else [plan.summary()]:
        typer.echo(line)


@app.command()
def schema(
    tests: Annotated[
        bool, typer.Option("--tests", help="the schema of the rule-test file instead")
    ] = False,
) -> None:
    """Print the JSON Schema of the rule file, or with --tests of the rule-test file (for
    editors)."""
    if tests:
        from service.rules.testfile import rule_test_schema

        typer.echo(json.dumps(rule_test_schema(), indent=2))
        return
    from service.rules.schema import rule_file_schema

    typer.echo(json.dumps(rule_file_schema(_channel_configs()), indent=2))


@app.command("test")
def test_rules(
    files: Annotated[list[Path], typer.Argument(help="rule-test files (rules_test.yaml)")],
) -> None:
    """Run rule unit tests on a simulated clock: exit 0 when all pass, 1 when one fails
    (with a diff), 2 for an invalid test or rule file (PATH:LINE:COL: message)."""
    from service.testrun import run_rule_tests

    settings = _settings()
    code, lines = run_rule_tests(files, max_bytes=settings.rules_max_bytes)
    for text, is_error in lines:
        typer.echo(text, err=is_error)
    raise typer.Exit(code)


@app.command()
def run(
    rules: RulesPath = None,
    once: Annotated[bool, typer.Option("--once", help="one full cycle, then exit")] = False,
) -> None:
    """Run the daemon: poll, evaluate, notify, until SIGTERM/SIGINT."""
    import asyncio

    from service.daemon import Daemon
    from service.logs import setup_logging

    settings = _settings()
    mask = setup_logging(
        fmt=settings.log_format, level=settings.log_level, secrets=settings.secrets()
    )
    daemon = Daemon(settings, rules_path=rules or settings.rules, mask=mask, owns_process=True)
    raise typer.Exit(asyncio.run(daemon.run(once=once)))


@app.command()
def history(
    limit: Annotated[int, typer.Option("--limit", min=1, help="newest N alerts")] = 20,
    rule: Annotated[str | None, typer.Option("--rule", help="only this rule")] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="pending, deferred, sending, delivered, dead, muted or silenced",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """List alerts with each delivery's status and attempts (secrets redacted)."""
    from service.commands import show_history
    from service.store.tables import STATUSES

    if status is not None and status not in STATUSES:
        typer.echo(f"--status: unknown status {status!r}; use {', '.join(STATUSES)}", err=True)
        raise typer.Exit(2)
    code, text = show_history(_settings(), limit=limit, rule=rule, status=status, as_json=as_json)
    typer.echo(text, err=code != 0)
    raise typer.Exit(code)


@app.command()
def explain(
    rule: Annotated[str, typer.Argument(help="a rule name from the rule file")],
    symbol: Annotated[str | None, typer.Option("--symbol", help="only this symbol")] = None,
    rules: RulesPath = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Why a rule would fire or not now: its values, each comparison, its state, a verdict
    (from the stored state and last known data; reads the database, calls no provider)."""
    from service.explain_command import show_explain

    settings = _settings()
    ruleset = read_rules(rules or settings.rules, settings)
    now = datetime.now(UTC)
    code, text = show_explain(settings, ruleset, rule, symbol, as_json=as_json, now=now)
    typer.echo(text, err=code != 0)
    raise typer.Exit(code)


silence_app = typer.Typer(
    help="Stop the alerts of a rule, a symbol or both for a while (stored in the database).",
    no_args_is_help=True,
)
app.add_typer(silence_app, name="silence")


@silence_app.command("add")
def silence_add(
    rule: Annotated[str | None, typer.Option("--rule", help="silence this rule")] = None,
    symbol: Annotated[str | None, typer.Option("--symbol", help="silence this symbol")] = None,
    for_: Annotated[str | None, typer.Option("--for", help="how long, e.g. 30m, 2h, 1d")] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            help="until this ISO 8601 time, e.g. 2026-02-04T18:00:00Z; read as UTC "
            "when it has no offset",
        ),
    ] = None,
    comment: Annotated[str | None, typer.Option("--comment", help="why (shown by list)")] = None,
) -> None:
    """Silence --rule and/or --symbol from now for --for or until --until; prints the id."""
    from service.silence_commands import add

    code, text = add(
        _settings(),
        rule=rule,
        symbol=symbol,
        for_=for_,
        until=until,
        comment=comment,
        now=datetime.now(UTC),
    )
    typer.echo(text, err=code != 0)
    raise typer.Exit(code)


@silence_app.command("list")
def silence_list(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """The active silences: id, rule, symbol, until, comment, created."""
    from service.silence_commands import show

    code, text = show(_settings(), as_json=as_json, now=datetime.now(UTC))
    typer.echo(text, err=code != 0)
    raise typer.Exit(code)


@silence_app.command("expire")
def silence_expire(
    silence_id: Annotated[str, typer.Argument(metavar="ID", help="the id `add` printed")],
) -> None:
    """End a silence now (what it stopped stays stopped: nothing is re-sent)."""
    from service.silence_commands import expire

    code, text = expire(_settings(), silence_id, now=datetime.now(UTC))
    typer.echo(text, err=code != 0)
    raise typer.Exit(code)


@app.command("test-notify")
def test_notify(
    channel: Annotated[str, typer.Argument(help="a channel name from the rule file")],
    rules: RulesPath = None,
) -> None:
    """Send a test message through one channel and report the outcome."""
    import asyncio

    from service.commands import send_test

    settings = _settings()
    ruleset = read_rules(rules or settings.rules, settings)
    ok, line = asyncio.run(send_test(settings, ruleset, channel))
    typer.echo(line, err=not ok)
    raise typer.Exit(0 if ok else 1)


@app.command()
def calendar(
    days: Annotated[int, typer.Option("--days", min=1, max=365, help="days ahead")] = 14,
    rules: RulesPath = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """A table of the upcoming (and just reported) reports of the watched symbols."""
    import asyncio

    from service.commands import show_calendar

    settings = _settings()
    ruleset = read_rules(rules or settings.rules, settings)
    code, text = asyncio.run(show_calendar(settings, ruleset, days=days, as_json=as_json))
    typer.echo(text, err=code != 0)
    raise typer.Exit(code)


@app.command()
def demo(
    seconds: Annotated[
        float, typer.Option("--seconds", min=5, help="how long the replay takes")
    ] = 40.0,
    scenario: Annotated[
        str,
        typer.Option(
            "--scenario", help="a bundled scenario: lumn-q4-2025, or synthetic-moves (invented)"
        ),
    ] = "lumn-q4-2025",
) -> None:
    """Run the real daemon offline on LUMN's Q4 2025 report (or --scenario), replayed on a
    fast clock."""
    import asyncio

    from service.demo import run_demo

    try:
        code = asyncio.run(run_demo(seconds=seconds, scenario_name=scenario))
    except ConfigError as exc:
        typer.echo(f"earnwatch demo: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


@app.command()
def replay(
    scenario: Annotated[
        str,
        typer.Argument(
            help="a scenario file (JSON), or a bundled one: lumn-q4-2025, synthetic-moves"
        ),
    ],
    rules: Annotated[
        Path | None,
        typer.Option("--rules", help="rule file (default: the scenario's bundled rules)"),
    ] = None,
    speed: Annotated[
        float | None, typer.Option("--speed", help="N times real time (default: ~40 s in all)")
    ] = None,
    instant: Annotated[bool, typer.Option("--instant", help="as fast as possible")] = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="draw the run into FILE (.png or .svg)")
    ] = None,
) -> None:
    """Run rules over a recorded scenario on a simulated clock and print each alert as it
    fires (no network, nothing sent); --plot draws the prices, levels and alerts."""
    import asyncio

    from service.replay import replay_command

    code = asyncio.run(
        replay_command(
            scenario,
            rules=rules,
            speed=speed,
            instant=instant,
            plot=plot,
            out=sys.stdout,
            err=sys.stderr,
        )
    )
    raise typer.Exit(code)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"earnwatch {__version__}")


def main() -> None:
    # pydantic looks for plugins in the entry points of every installed distribution the
    # first time a model is built (~35 ms, and importlib.metadata and email with it);
    # Earnwatch uses none. A PYDANTIC_DISABLE_PLUGINS the user set is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
