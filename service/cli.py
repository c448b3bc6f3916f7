"""The `earnwatch` command: parses arguments, calls the modules that do the work, prints.

A user's mistake (a bad rule file, a bad setting) is one clear line per problem and a
non-zero exit code, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from service import __version__
from service.config import Settings, load_env, load_settings
from service.errors import ConfigError, RuleFileError
from service.rules import RuleSet, load_rules
from service.rules.schema import rule_file_schema

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
    try:
        return load_settings()
    except ConfigError as exc:
        typer.echo(f"earnwatch: {exc}", err=True)
        raise typer.Exit(2) from None


def _channel_configs() -> dict[str, type]:
    from service.notify import CHANNEL_CONFIGS

    return dict(CHANNEL_CONFIGS)


def read_rules(path: Path) -> RuleSet:
    """Load a rule file for a command, or print why not and exit 1."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        typer.echo(f"{path}: cannot read the rule file: {exc.strerror}", err=True)
        raise typer.Exit(1) from None
    try:
        return load_rules(
            text, source=str(path), env=load_env(), channel_configs=_channel_configs()
        )
    except RuleFileError as exc:
        for line in exc.lines():
            typer.echo(line, err=True)
        typer.echo(f"{path}: {len(exc.problems)} problem(s); nothing was changed", err=True)
        raise typer.Exit(1) from None


@app.command()
def check(
    path: Annotated[Path | None, typer.Argument(help="rule file to check")] = None,
) -> None:
    """Validate a rule file: exit 0 with a summary, or 1 with every problem as PATH:LINE:COL."""
    target = path or _settings().rules
    ruleset = read_rules(target)
    typer.echo(f"{target}: OK: {ruleset.summary()}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of the rule file (for editors)."""
    typer.echo(json.dumps(rule_file_schema(_channel_configs()), indent=2))


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"earnwatch {__version__}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
