"""The `earnwatch` command: parses arguments, calls the modules that do the work, prints.

A user's mistake (a bad rule file, a bad setting) is one clear line and exit code 1 or 2,
never a traceback.
"""

from __future__ import annotations

import typer

from service import __version__

app = typer.Typer(
    name="earnwatch",
    help="Earnings-event alerting: watch calendars and prices, evaluate rules, notify.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"earnwatch {__version__}")


def main() -> None:
    app()
