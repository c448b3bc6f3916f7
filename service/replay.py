"""`earnwatch replay`: rules run over a recorded scenario on a simulated clock.

The real pipeline (`service/pipeline.py`: the calendar refresh, the quote and report-window
polls, the engine, the stages, the outbox of a throw-away SQLite database), as `earnwatch
demo` runs it, fed by the replay provider (`service/providers/replay.py`) and driven step by
step on a `FakeClock`: no network, and no notifier is built, so nothing can be sent. Each
alert is printed as it is recorded. `--plot` draws the run (`service/replay_plot.py`).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

from service.clock import FakeClock
from service.config import Settings, load_settings
from service.errors import ConfigError
from service.market import NEW_YORK
from service.marketdata import MarketData
from service.metrics import Metrics
from service.parts import health_for, stages_for, store_for
from service.pipeline import Cadence, Pipeline, second_opinion_of
from service.providers.base import Provider
from service.providers.failover import FailoverProvider
from service.providers.replay import (
    PROVIDER,
    SECOND_PROVIDER,
    ReplayProvider,
    Scenario,
    SecondReplayProvider,
    bundled_rules,
    bundled_scenario,
    load_scenario,
)
from service.rulefile import RuleFile
from service.rules import RuleSet

#: Simulated time between two steps: every poll the settings below make due is run.
STEP = timedelta(minutes=1)
#: The calendar refresh of a replay (EARNWATCH_CALENDAR_REFRESH: 6 h by default).
REPLAY_CALENDAR_REFRESH = timedelta(minutes=30)
#: Without --speed or --instant a replay takes about this long, as the demo does.
DEFAULT_SECONDS = 40.0
#: The bundled rules' webhook: never called (no notifier is built), only validated.
NOWHERE = "http://127.0.0.1:9/replay-sends-nothing"


@dataclass(frozen=True, slots=True)
class ReplayAlert:
    """One alert as the pipeline recorded it."""

    fired_at: datetime
    rule: str
    symbol: str
    text: str
    kind: str  # "fired", "resolved" (notify_resolved) or "amended" (notify_amended)
    price: float | None  # the price the alert read, when it read one


@dataclass(frozen=True, slots=True)
class ReplayRun:
    scenario: Scenario
    ruleset: RuleSet
    alerts: tuple[ReplayAlert, ...]


def find_scenario(name_or_path: str) -> tuple[Scenario, str | None]:
    """The scenario (a file's path, or a bundled one's name) and its bundled rule file's
    text (None for a file). Raises ConfigError naming the file and the field."""
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists() or "/" in name_or_path:
        return load_scenario(path), None
    try:
        scenario = bundled_scenario(name_or_path)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; or give the path of a scenario file (.json)") from None
    return scenario, bundled_rules(name_or_path)


def replay_settings(database_url: str, **overrides: object) -> Settings:
    """The settings of a replay and of the demo: the replay provider, no HTTP server,
    every poll once a simulated minute."""
    values: dict[str, object] = {
        "database_url": database_url,
        "providers": "replay",
        "http": "off",
        # Every half hour (the daemon: 6 h): a change made after a report, when its
        # report-window polls have stopped, is seen within half an hour.
        "calendar_refresh": REPLAY_CALENDAR_REFRESH,
        "allow_private_targets": True,
        "price_poll": "1m",
        "off_hours_poll": "1m",
        "earnings_poll": "1m",
        # The clock runs hundreds of times faster than real time: a lease of minutes
        # would run out in a fraction of a second and a slow send would be re-sent.
        "delivery_lease": "30d",
    }
    values.update(overrides)
    return load_settings(env_file=None, **values)


#: EARNWATCH_CONFIRM_WAIT of a replayed scenario with a second provider's figures: five
#: steps of a simulated minute (the demo, whose polls are simulated minutes apart, waits at
#: least a few of its polls: `scenario_overrides(confirm_wait=...)`).
REPLAY_CONFIRM_WAIT = timedelta(minutes=5)


def scenario_overrides(
    scenario: Scenario, *, confirm_wait: timedelta = REPLAY_CONFIRM_WAIT
) -> dict[str, object]:
    """The settings a scenario needs besides `replay_settings`: with a second provider's
    figures (`second` on a calendar row), both replay providers and EARNWATCH_CONFIRM=2
    with `confirm_wait` (shorter than the daemon's 10 minutes: the replay is short)."""
    if not scenario.has_second:
        return {}
    return {
        "providers": f"{PROVIDER.name},{SECOND_PROVIDER.name}",
        "confirm": "2",
        "confirm_wait": f"{confirm_wait.total_seconds():.0f}s",
    }


def scenario_provider(scenario: Scenario, clock: FakeClock) -> Provider:
    """The replay provider of `scenario`; with a second provider's figures, it and
    `replay-b` behind one FailoverProvider (which also gives the second opinion)."""
    first = ReplayProvider(scenario, clock)
    if not scenario.has_second:
        return first
    serves = {p.name: p.capabilities for p in (PROVIDER, SECOND_PROVIDER)}
    second = SecondReplayProvider(scenario, clock)
    return FailoverProvider([first, second], clock=clock, serves=serves)


def load_rules(settings: Settings, path: Path, *, env_file: str | Path | None) -> RuleSet:
    """The rule file, validated and compiled as the daemon does, but without the SSRF
    check of the channels' URLs: it resolves host names (the network), and a replay sends
    nothing. Raises RuleFileError or OSError."""
    from service.notify import CHANNEL_CONFIGS

    rule_file = RuleFile(
        path,
        env_file=env_file,
        channel_configs=CHANNEL_CONFIGS,
        max_bytes=settings.rules_max_bytes,
    )
    return rule_file.load()


def _price_at(scenario: Scenario, symbol: str, moment: datetime) -> float | None:
    for name, data in scenario.symbols.items():
        if name.upper() != symbol:
            continue
        before = [p for p in data.prices if p.at <= moment]
        if before:
            return max(before, key=lambda p: p.at).price
    return None


async def run_replay(
    scenario: Scenario,
    ruleset: RuleSet,
    *,
    speed: float | None,
    on_alert: Callable[[ReplayAlert], None] = lambda _alert: None,
    source: str = "rule file",
) -> ReplayRun:
    """Run `ruleset` over `scenario`, a STEP at a time, `speed` times faster than real
    time (None: as fast as possible). Raises ConfigError or StoreError."""
    logging.getLogger("service").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="earnwatch-replay-") as folder:
        settings = replay_settings(
            f"sqlite:///{Path(folder) / 'replay.db'}", **scenario_overrides(scenario)
        )
        clock = FakeClock(scenario.start)
        store = await asyncio.to_thread(store_for, settings, daemon=True)
        try:
            recorded = asyncio.Event()
            provider = scenario_provider(scenario, clock)
            pipeline = Pipeline(
                provider=provider,
                store=store,
                data=MarketData(),
                states={},
                rules=lambda: ruleset,
                metrics=Metrics(),
                health=health_for(settings),
                on_alerts=recorded.set,
                source=source,
                cadence=Cadence.from_settings(settings),
                stages=stages_for(settings, store),
                second_opinion=second_opinion_of(provider),
            )
            alerts = await _drive(pipeline, clock, scenario, settings, speed, recorded, on_alert)
        finally:
            await asyncio.to_thread(store.close)
    return ReplayRun(scenario=scenario, ruleset=ruleset, alerts=tuple(alerts))


async def _drive(
    pipeline: Pipeline,
    clock: FakeClock,
    scenario: Scenario,
    settings: Settings,
    speed: float | None,
    recorded: asyncio.Event,
    on_alert: Callable[[ReplayAlert], None],
) -> list[ReplayAlert]:
    """The daemon's three cycles at every step, the calendar every EARNWATCH_CALENDAR_
    REFRESH of simulated time; the alerts in the order they were recorded."""
    seen: set[str] = set()
    alerts: list[ReplayAlert] = []
    last_calendar: datetime | None = None
    started = time.monotonic()
    now = clock.now()
    while True:
        if last_calendar is None or now - last_calendar >= settings.calendar_refresh:
            last_calendar = now
            await pipeline.calendar_cycle(now)
        await pipeline.quotes_cycle(clock.now)
        await pipeline.market_cycle(now)
        if recorded.is_set():
            recorded.clear()
            history = await asyncio.to_thread(pipeline.store.history, 1_000_000)
            # Alerts recorded at the same moment in the order of their rules in the file
            # (the store orders them by time only).
            order = {rule.name: i for i, rule in enumerate(pipeline.rules().rules)}
            fresh = sorted(
                (e for e in history if e.alert_id not in seen),
                key=lambda e: (e.fired_at, order.get(e.rule, len(order)), e.message.kind),
            )
            for entry in fresh:
                seen.add(entry.alert_id)
                price = entry.message.values.get("price")
                alert = ReplayAlert(
                    fired_at=entry.fired_at,
                    rule=entry.rule,
                    symbol=entry.symbol,
                    text=entry.message.text,
                    kind=entry.message.kind,
                    price=(
                        float(price)
                        if isinstance(price, int | float) and not isinstance(price, bool)
                        else _price_at(scenario, entry.symbol, entry.fired_at)
                    ),
                )
                alerts.append(alert)
                on_alert(alert)
        if now >= scenario.end:
            return alerts
        now = clock.advance(min(STEP, scenario.end - now))
        if speed is not None:
            ahead = (now - scenario.start).total_seconds() / speed - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)


# --- printing --------------------------------------------------------------------------


def _when(moment: datetime) -> str:
    return moment.astimezone(NEW_YORK).strftime("%a %Y-%m-%d %H:%M %Z")


class AlertTable:
    """Alerts as an aligned table, printed a row at a time as they fire."""

    def __init__(self, ruleset: RuleSet, symbols: Sequence[str], out: TextIO) -> None:
        names = [r.name for r in ruleset.rules] + [d.name for d in ruleset.digests]
        self.rule_width = max([len("rule"), *(len(n) + len(" (resolved)") for n in names)])
        self.symbol_width = max([len("symbol"), *(len(s) for s in symbols)])
        self.out = out

    def header(self) -> None:
        self._row("time (New York)", "rule", "symbol", "message")

    def row(self, alert: ReplayAlert) -> None:
        rule = alert.rule + (f" ({alert.kind})" if alert.kind != "fired" else "")
        self._row(_when(alert.fired_at), rule, alert.symbol, " ".join(alert.text.split()))

    def _row(self, when: str, rule: str, symbol: str, message: str) -> None:
        print(
            f"{when:<24}  {rule:<{self.rule_width}}  {symbol:<{self.symbol_width}}  {message}",
            file=self.out,
            flush=True,
        )


def speed_for(scenario: Scenario, speed: float | None, instant: bool) -> float | None:
    """None (as fast as possible) with --instant; --speed N; else the demo's pace."""
    if instant:
        return None
    if speed is not None:
        return speed
    return (scenario.end - scenario.start).total_seconds() / DEFAULT_SECONDS


def check_plot_path(path: Path) -> str:
    """The chart's format from its extension: `png` or `svg`; ConfigError otherwise."""
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("png", "svg"):
        raise ConfigError(f"--plot {path}: the file must end in .png or .svg")
    return kind


async def replay_command(
    scenario_arg: str,
    *,
    rules: Path | None,
    speed: float | None,
    instant: bool,
    plot: Path | None,
    out: TextIO,
    err: TextIO,
) -> int:
    """`earnwatch replay`: 0 when it ran, 1 for a rule file that cannot be used, 2 for a
    bad scenario, option or a missing matplotlib."""
    from service.errors import RuleFileError, StoreError
    from service.replay_plot import PLOT_MISSING, plot_available, plot_replay

    try:
        if plot is not None:
            check_plot_path(plot)
        if speed is not None and instant:
            raise ConfigError("--speed and --instant: give one of them")
        if speed is not None and speed <= 0:
            raise ConfigError("--speed must be greater than 0")
        scenario, template = find_scenario(scenario_arg)
    except ConfigError as exc:
        print(f"earnwatch replay: {exc}", file=err)
        return 2
    if plot is not None and not plot_available():
        print(PLOT_MISSING, file=err)
        return 2
    with tempfile.TemporaryDirectory(prefix="earnwatch-replay-rules-") as folder:
        if rules is None:
            if template is None:
                print(
                    f"earnwatch replay: {scenario_arg} has no bundled rules: give --rules PATH",
                    file=err,
                )
                return 2
            rules_path = Path(folder) / f"{scenario.name}.rules.yaml"
            rules_path.write_text(template.replace("${DEMO_WEBHOOK_URL}", NOWHERE))
            env_file: str | None = None
        else:
            rules_path, env_file = rules, ".env"
        try:
            ruleset = load_rules(replay_settings("sqlite://"), rules_path, env_file=env_file)
        except OSError as exc:
            print(f"{rules_path}: cannot read the rule file: {exc.strerror}", file=err)
            return 1
        except RuleFileError as exc:
            for line in exc.lines():
                print(line, file=err)
            print(f"{rules_path}: {len(exc.problems)} problem(s)", file=err)
            return 1
        pace = speed_for(scenario, speed, instant)
        print(
            f"Replaying {scenario.name}: {_when(scenario.start)} to {_when(scenario.end)}, "
            + ("as fast as possible" if pace is None else f"{pace:g}x real time")
            + f"; rules {rules if rules is not None else 'bundled with the scenario'}; "
            "nothing is sent.",
            file=out,
            flush=True,
        )
        table = AlertTable(ruleset, sorted(scenario.symbols), out)
        table.header()
        try:
            run = await run_replay(
                scenario, ruleset, speed=pace, on_alert=table.row, source=str(rules_path)
            )
        except (ConfigError, StoreError) as exc:
            print(f"earnwatch replay: {exc}", file=err)
            return 2
    print(f"{len(run.alerts)} alert(s) fired; nothing was sent.", file=out, flush=True)
    if plot is not None:
        drawn = plot_replay(run, plot)
        print(f"Chart: {plot} ({drawn.describe()})", file=out, flush=True)
    return 0
