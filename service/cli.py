"""The `earnwatch` command: parses arguments, calls the modules that do the work, prints.

A user's mistake (a bad rule file, a bad setting) is one clear line per problem and a
non-zero exit code, never a traceback. A usage mistake (an unknown option, a missing
argument, a value out of range) is exit 2, its first line `earnwatch CMD: error: ...`.

The arguments are parsed with the standard library's argparse: typer (with click, its
rich help and a pydantic adapter per option) was ~90 ms of every command's start.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from service import __version__

#: typing.TYPE_CHECKING without loading typing (~3 ms of `version`); mypy reads it as True.
TYPE_CHECKING = False
if TYPE_CHECKING:  # each command imports what it needs: `--help` and `version` need none
    from datetime import datetime
    from pathlib import Path
    from typing import Any, NoReturn

    from service.config import Settings
    from service.rules import RuleSet

RULES_HELP = "rule file (default: $EARNWATCH_RULES, else rules.yaml)"


def _echo(text: str, *, err: bool = False) -> None:
    print(text, file=sys.stderr if err else sys.stdout, flush=True)


def _now() -> datetime:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _path(text: str) -> Path:
    """An argparse type: a path (pathlib is loaded when a command takes one)."""
    from pathlib import Path

    return Path(text)


def _settings() -> Settings:
    from service.config import load_settings
    from service.errors import ConfigError

    try:
        return load_settings()
    except ConfigError as exc:
        _echo(f"earnwatch: {exc}", err=True)
        raise SystemExit(2) from None


def _channel_configs() -> dict[str, type]:
    from service.notify import CHANNEL_CONFIGS

    return dict(CHANNEL_CONFIGS)


def read_rules(path: Path, settings: Settings | None = None) -> RuleSet:
    """Load a rule file for a command, or print why not and exit 1 (the daemon's rule file:
    the same size limit, decoding, validation and SSRF check, built by `service.parts`)."""
    from service.errors import RuleFileError
    from service.parts import rule_file_for

    settings = settings or _settings()
    try:
        return rule_file_for(settings, path).load()
    except OSError as exc:
        _echo(f"{path}: cannot read the rule file: {exc.strerror}", err=True)
        raise SystemExit(1) from None
    except RuleFileError as exc:
        for line in exc.lines():
            _echo(line, err=True)
        _echo(f"{path}: {len(exc.problems)} problem(s)", err=True)
        raise SystemExit(1) from None


def check(path: Path | None, rules: Path | None, budget: bool) -> int:
    """Validate a rule file: exit 0 with a summary, or 1 with every problem as PATH:LINE:COL."""
    from service.budget import counts_of, rule_budget
    from service.providers import confirmation_problem

    settings = _settings()
    if (problem := confirmation_problem(settings)) is not None:
        _echo(f"earnwatch: {problem}", err=True)
        return 2
    target = path or rules or settings.rules
    ruleset = read_rules(target, settings)
    for line in ruleset.warning_lines(str(target)):
        _echo(line, err=True)
    _echo(f"{target}: OK: {ruleset.summary()}")
    plan = rule_budget(settings, counts_of(ruleset))
    for line in plan.lines() if budget else [plan.summary()]:
        _echo(line)
    return 0


def schema(tests: bool) -> int:
    """Print the JSON Schema of the rule file, or with --tests of the rule-test file (for
    editors)."""
    import json

    if tests:
        from service.rules.testfile import rule_test_schema

        _echo(json.dumps(rule_test_schema(), indent=2))
        return 0
    from service.rules.schema import rule_file_schema

    _echo(json.dumps(rule_file_schema(_channel_configs()), indent=2))
    return 0


def test_rules(files: list[Path]) -> int:
    """Run rule unit tests on a simulated clock: exit 0 when all pass, 1 when one fails
    (with a diff), 2 for an invalid test or rule file (PATH:LINE:COL: message)."""
    from service.testrun import run_rule_tests

    settings = _settings()
    code, lines = run_rule_tests(files, max_bytes=settings.rules_max_bytes)
    for text, is_error in lines:
        _echo(text, err=is_error)
    return code


def run(rules: Path | None, once: bool) -> int:
    """Run the daemon: poll, evaluate, notify, until SIGTERM/SIGINT."""
    import asyncio

    from service.daemon import Daemon
    from service.logs import setup_logging

    settings = _settings()
    mask = setup_logging(
        fmt=settings.log_format, level=settings.log_level, secrets=settings.secrets()
    )
    daemon = Daemon(settings, rules_path=rules or settings.rules, mask=mask, owns_process=True)
    return asyncio.run(daemon.run(once=once))


def history(limit: int, rule: str | None, status: str | None, as_json: bool) -> int:
    """List alerts with each delivery's status and attempts (secrets redacted)."""
    from service.commands import show_history
    from service.store.statuses import STATUSES

    if status is not None and status not in STATUSES:
        _echo(f"--status: unknown status {status!r}; use {', '.join(STATUSES)}", err=True)
        return 2
    code, text = show_history(_settings(), limit=limit, rule=rule, status=status, as_json=as_json)
    _echo(text, err=code != 0)
    return code


def explain(rule: str, symbol: str | None, rules: Path | None, as_json: bool) -> int:
    """Why a rule would fire or not now: its values, each comparison, its state, a verdict
    (from the stored state and last known data; reads the database, calls no provider)."""
    from service.explain_command import show_explain

    settings = _settings()
    ruleset = read_rules(rules or settings.rules, settings)
    now = _now()
    code, text = show_explain(settings, ruleset, rule, symbol, as_json=as_json, now=now)
    _echo(text, err=code != 0)
    return code


SILENCE_HELP = "Stop the alerts of a rule, a symbol or both for a while (stored in the database)."


def silence_add(
    rule: str | None,
    symbol: str | None,
    for_: str | None,
    until: str | None,
    comment: str | None,
) -> int:
    """Silence --rule and/or --symbol from now for --for or until --until; prints the id."""
    from service.silence_commands import add

    code, text = add(
        _settings(),
        rule=rule,
        symbol=symbol,
        for_=for_,
        until=until,
        comment=comment,
        now=_now(),
    )
    _echo(text, err=code != 0)
    return code


def silence_list(as_json: bool) -> int:
    """The active silences: id, rule, symbol, until, comment, created."""
    from service.silence_commands import show

    code, text = show(_settings(), as_json=as_json, now=_now())
    _echo(text, err=code != 0)
    return code


def silence_expire(silence_id: str) -> int:
    """End a silence now (what it stopped stays stopped: nothing is re-sent)."""
    from service.silence_commands import expire

    code, text = expire(_settings(), silence_id, now=_now())
    _echo(text, err=code != 0)
    return code


def test_notify(channel: str, rules: Path | None) -> int:
    """Send a test message through one channel and report the outcome."""
    import asyncio

    from service.commands import send_test

    settings = _settings()
    ruleset = read_rules(rules or settings.rules, settings)
    ok, line = asyncio.run(send_test(settings, ruleset, channel))
    _echo(line, err=not ok)
    return 0 if ok else 1


def calendar(days: int, rules: Path | None, as_json: bool) -> int:
    """A table of the upcoming (and just reported) reports of the watched symbols."""
    import asyncio

    from service.commands import show_calendar

    settings = _settings()
    ruleset = read_rules(rules or settings.rules, settings)
    code, text = asyncio.run(show_calendar(settings, ruleset, days=days, as_json=as_json))
    _echo(text, err=code != 0)
    return code


def demo(seconds: float, scenario: str) -> int:
    """Run the real daemon offline on LUMN's Q4 2025 report (or --scenario), replayed on a
    fast clock."""
    import asyncio

    from service.demo import run_demo
    from service.errors import ConfigError

    try:
        return asyncio.run(run_demo(seconds=seconds, scenario_name=scenario))
    except ConfigError as exc:
        _echo(f"earnwatch demo: {exc}", err=True)
        return 2


def replay(
    scenario: str, rules: Path | None, speed: float | None, instant: bool, plot: Path | None
) -> int:
    """Run rules over a recorded scenario on a simulated clock and print each alert as it
    fires (no network, nothing sent); --plot draws the prices, levels and alerts."""
    import asyncio

    from service.replay import replay_command

    return asyncio.run(
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


def version() -> int:
    """Print the version."""
    _echo(f"earnwatch {__version__}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with a usage error's first line naming it (`earnwatch check: error: ...`),
    then where the help is; exit 2, as before."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\nTry '{self.prog} --help' for help.\n")


def _number(
    kind: type[int] | type[float], low: float | None = None, high: float | None = None
) -> Any:
    """An argparse type: `kind`, at least `low` (and at most `high`) when given, else a
    clear error."""
    word = "an integer" if kind is int else "a number"

    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {word}") from None
        if low is not None and (value < low or (high is not None and value > high)):
            bounds = f"at least {low:g}" if high is None else f"from {low:g} to {high:g}"
            raise argparse.ArgumentTypeError(f"{text!r} is out of range: {bounds}")
        return value

    return convert


def _doc(command: Callable[..., int]) -> str:
    return " ".join((command.__doc__ or "").split())


def _json(parser: _Parser) -> None:
    parser.add_argument(
        "--json", dest="as_json", action="store_true", help="machine-readable output"
    )


def _rules(parser: _Parser, help: str = RULES_HELP) -> None:
    parser.add_argument("--rules", type=_path, metavar="PATH", help=help)


def _check_args(sub: _Parser) -> None:
    sub.add_argument("path", nargs="?", type=_path, metavar="PATH", help="rule file to check")
    _rules(sub)
    sub.add_argument(
        "--budget", action="store_true", help="the calls per provider against its free tier"
    )


def _schema_args(sub: _Parser) -> None:
    sub.add_argument(
        "--tests", action="store_true", help="the schema of the rule-test file instead"
    )


def _test_args(sub: _Parser) -> None:
    sub.add_argument(
        "files", nargs="+", type=_path, metavar="FILES", help="rule-test files (rules_test.yaml)"
    )


def _run_args(sub: _Parser) -> None:
    _rules(sub)
    sub.add_argument("--once", action="store_true", help="one full cycle, then exit")


def _history_args(sub: _Parser) -> None:
    sub.add_argument(
        "--limit",
        type=_number(int, 1),
        default=20,
        metavar="N",
        help="newest N alerts (default: 20)",
    )
    sub.add_argument("--rule", metavar="NAME", help="only this rule")
    sub.add_argument(
        "--status",
        metavar="STATUS",
        help="pending, deferred, sending, delivered, dead, muted or silenced",
    )
    _json(sub)


def _explain_args(sub: _Parser) -> None:
    sub.add_argument("rule", metavar="RULE", help="a rule name from the rule file")
    sub.add_argument("--symbol", metavar="SYMBOL", help="only this symbol")
    _rules(sub)
    _json(sub)


def _test_notify_args(sub: _Parser) -> None:
    sub.add_argument("channel", metavar="CHANNEL", help="a channel name from the rule file")
    _rules(sub)


def _calendar_args(sub: _Parser) -> None:
    sub.add_argument(
        "--days",
        type=_number(int, 1, 365),
        default=14,
        metavar="N",
        help="days ahead (default: 14)",
    )
    _rules(sub)
    _json(sub)


def _demo_args(sub: _Parser) -> None:
    sub.add_argument(
        "--seconds",
        type=_number(float, 5),
        default=40.0,
        metavar="S",
        help="how long the replay takes (default: 40)",
    )
    sub.add_argument(
        "--scenario",
        metavar="NAME",
        default="lumn-q4-2025",
        help="a bundled scenario: lumn-q4-2025 (the default), or synthetic-moves (invented)",
    )


def _replay_args(sub: _Parser) -> None:
    sub.add_argument(
        "scenario",
        metavar="SCENARIO",
        help="a scenario file (JSON), or a bundled one: lumn-q4-2025, synthetic-moves",
    )
    _rules(sub, "rule file (default: the scenario's bundled rules)")
    sub.add_argument(
        "--speed",
        type=_number(float),
        metavar="N",
        help="N times real time (default: ~40 s in all)",
    )
    sub.add_argument("--instant", action="store_true", help="as fast as possible")
    sub.add_argument(
        "--plot", type=_path, metavar="FILE", help="draw the run into FILE (.png or .svg)"
    )


def _no_args(sub: _Parser) -> None:
    pass


def _silence_add_args(sub: _Parser) -> None:
    sub.add_argument("--rule", metavar="NAME", help="silence this rule")
    sub.add_argument("--symbol", metavar="SYMBOL", help="silence this symbol")
    sub.add_argument("--for", dest="for_", metavar="DURATION", help="how long, e.g. 30m, 2h, 1d")
    sub.add_argument(
        "--until",
        metavar="TIME",
        help="until this ISO 8601 time, e.g. 2026-02-04T18:00:00Z; read as UTC when it has "
        "no offset",
    )
    sub.add_argument("--comment", metavar="TEXT", help="why (shown by list)")


def _silence_list_args(sub: _Parser) -> None:
    _json(sub)


def _silence_expire_args(sub: _Parser) -> None:
    sub.add_argument("silence_id", metavar="ID", help="the id `add` printed")


Arguments = Callable[[_Parser], None]
#: `earnwatch silence ...`: each action, what runs it and its arguments.
SILENCE_ACTIONS: dict[str, tuple[Callable[..., int], Arguments]] = {
    "add": (silence_add, _silence_add_args),
    "list": (silence_list, _silence_list_args),
    "expire": (silence_expire, _silence_expire_args),
}
#: Every command, in the order the help lists it: what runs it and its arguments
#: (`silence` is the group of SILENCE_ACTIONS).
COMMANDS: dict[str, tuple[Callable[..., int], Arguments] | None] = {
    "check": (check, _check_args),
    "schema": (schema, _schema_args),
    "test": (test_rules, _test_args),
    "run": (run, _run_args),
    "history": (history, _history_args),
    "explain": (explain, _explain_args),
    "test-notify": (test_notify, _test_notify_args),
    "calendar": (calendar, _calendar_args),
    "demo": (demo, _demo_args),
    "replay": (replay, _replay_args),
    "version": (version, _no_args),
    "silence": None,
}


def _add_commands(
    parser: _Parser,
    table: Mapping[str, tuple[Callable[..., int], Arguments] | None],
    words: Sequence[str],
) -> None:
    """The commands of `table` as subcommands of `parser`. When the first of `words` names
    one, only that one is built (a parser per command is ~1 ms: argparse looks up its
    messages' translations for each), else all, for the help or the error listing them."""
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    chosen = words[0] if words and words[0] in table else None
    for name, entry in table.items():
        if chosen is not None and name != chosen:
            continue
        if entry is None:  # the silence group
            sub = commands.add_parser(
                name, help=SILENCE_HELP, description=SILENCE_HELP, allow_abbrev=False
            )
            sub.set_defaults(command=None, parser=sub)
            if chosen is not None:
                _add_commands(sub, SILENCE_ACTIONS, words[1:])
            continue
        command, arguments = entry
        sub = commands.add_parser(
            name, help=_doc(command), description=_doc(command), allow_abbrev=False
        )
        sub.set_defaults(command=command, parser=sub)
        if chosen is not None:
            arguments(sub)


def build_parser(words: Sequence[str] = ()) -> _Parser:
    """The parser of `earnwatch`, for the command line `words`: every command, argument
    and option with its help (only the command `words` names has its arguments built)."""
    top = _Parser(
        prog="earnwatch",
        description="Earnings-event alerting: watch calendars and prices, evaluate rules, notify.",
        allow_abbrev=False,
    )
    top.set_defaults(command=None, parser=top)
    _add_commands(top, COMMANDS, words)
    return top


def main(argv: Sequence[str] | None = None) -> None:
    # pydantic looks for plugins in the entry points of every installed distribution the
    # first time a model is built (~35 ms, and importlib.metadata and email with it);
    # Earnwatch uses none. A PYDANTIC_DISABLE_PLUGINS the user set is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    words = sys.argv[1:] if argv is None else list(argv)
    args, extra = build_parser(words).parse_known_args(words)
    options = vars(args)
    command, used = options.pop("command"), options.pop("parser")
    if extra:
        used.error(f"unrecognized arguments: {' '.join(extra)}")
    if command is None:  # `earnwatch` or `earnwatch silence` alone: its help
        used.print_help()
        sys.exit(2)
    try:
        sys.exit(command(**options))
    except KeyboardInterrupt:
        sys.exit(130)
