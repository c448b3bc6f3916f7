"""`earnwatch replay --plot FILE`: the run drawn, one panel per symbol (matplotlib, Agg).

Each panel shows the price over time as the replay provider served it, the previous
close, the analysts' targets, every constant price level a rule of that symbol compares
with (`service/rules/levels.py`), the report's publication time and each alert as a
marker labelled with its rule, on a New York time axis. matplotlib is the optional extra
`earnwatch[plot]`, imported only when a chart is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.hours import session
from service.market import NEW_YORK
from service.providers.replay import Scenario, SymbolData
from service.rules.levels import price_levels

if TYPE_CHECKING:
    from service.replay import ReplayRun

PLOT_MISSING = "earnwatch replay: --plot needs matplotlib: pip install 'earnwatch[plot]'"
_TARGETS = ("median", "mean", "high", "low")
_TARGET_STYLE = {"median": "-", "mean": "--", "high": ":", "low": ":"}


def plot_available() -> bool:
    """Whether matplotlib can be imported (`earnwatch[plot]` is installed)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Panel:
    """What one panel holds, read back from its artists."""

    symbol: str
    markers: int  # alert markers
    labels: tuple[str, ...]  # the rule named next to each marker, in time order
    levels: tuple[float, ...]  # constant levels of rules
    targets: tuple[str, ...]  # which analysts' targets
    published: int  # publication lines
    points: int  # price points drawn


@dataclass(frozen=True, slots=True)
class Drawn:
    panels: tuple[Panel, ...]

    def describe(self) -> str:
        markers = sum(p.markers for p in self.panels)
        return f"{len(self.panels)} panel(s), {markers} alert marker(s)"


def panel_symbols(run: ReplayRun) -> list[str]:
    """The scenario's symbols the rules watch (all of them when the rules watch none)."""
    names = {s.upper(): s for s in run.scenario.symbols}
    watched = [s for s in sorted(names) if s in run.ruleset.symbols]
    return watched or sorted(names)


def _data(scenario: Scenario, symbol: str) -> SymbolData:
    return next(d for s, d in scenario.symbols.items() if s.upper() == symbol)


def build_figure(run: ReplayRun) -> Any:
    """The chart as a matplotlib Figure (Agg), not yet saved."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    symbols = panel_symbols(run)
    scenario = run.scenario
    figure = Figure(figsize=(12, 4.8 * len(symbols)), layout="constrained")
    axes = figure.subplots(len(symbols), 1, squeeze=False)[:, 0]
    for ax, symbol in zip(axes, symbols, strict=True):
        data = _data(scenario, symbol)
        points = sorted(data.prices, key=lambda p: p.at)
        times: list[datetime] = [p.at for p in points]
        if points:
            times_end = [*times, max(scenario.end, times[-1])]
            prices = [p.price for p in points]
            ax.step(
                times_end,
                [*prices, prices[-1]],
                where="post",
                color="tab:blue",
                linewidth=2,
                label="price",
                gid="price",
            )
            if any(p.prev_close is not None for p in points):
                closes = [p.prev_close for p in points]
                ax.step(
                    times_end,
                    [*closes, closes[-1]],
                    where="post",
                    color="grey",
                    linestyle="--",
                    linewidth=1,
                    label="previous close",
                    gid="prev_close",
                )
        targets = data.price_targets
        for name in _TARGETS:
            value = getattr(targets, name) if targets is not None else None
            if value is not None:
                ax.axhline(
                    value,
                    color="tab:green",
                    linestyle=_TARGET_STYLE[name],
                    linewidth=1.2,
                    alpha=0.8,
                    label=f"target {name} ${value:,.2f}",
                    gid=f"target:{name}",
                )
        colors = iter(["tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"] * 20)
        for rule in run.ruleset.rules:
            if symbol not in rule.symbols:
                continue
            for value in dict.fromkeys(price_levels(rule.when) + price_levels(rule.clear_when)):
                ax.axhline(
                    value,
                    color=next(colors),
                    linestyle="-.",
                    linewidth=1.2,
                    label=f"{rule.name}: ${value:,.2f}",
                    gid=f"level:{rule.name}:{value}",
                )
        for row in data.calendar:
            if row.published_at is not None and scenario.start <= row.published_at <= scenario.end:
                period = (
                    f"Q{row.fiscal_quarter} {row.fiscal_year} "
                    if row.fiscal_quarter and row.fiscal_year
                    else ""
                )
                when = row.published_at.astimezone(NEW_YORK).strftime("%a %H:%M ET")
                ax.axvline(
                    row.published_at,
                    color="tab:red",
                    linestyle=":",
                    linewidth=1.5,
                    label=f"{period}report published {when}",
                    gid="published",
                )
        alerts = sorted((a for a in run.alerts if a.symbol == symbol), key=lambda a: a.fired_at)
        for i, alert in enumerate(alerts):
            y = alert.price if alert.price is not None else (points[0].price if points else 0.0)
            ax.plot(
                [alert.fired_at],
                [y],
                marker="v" if alert.kind == "fired" else "^",
                markersize=11,
                color="tab:orange",
                markeredgecolor="black",
                linestyle="none",
                gid=f"alert:{alert.rule}",
                label="alert" if i == 0 else "_nolegend_",
                zorder=5,
            )
            ax.annotate(
                alert.rule,
                (alert.fired_at, y),
                xytext=(8, 14 if i % 2 == 0 else -20),
                textcoords="offset points",
                fontsize=9,
                gid=f"alert-label:{alert.rule}",
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.85},
                arrowprops={"arrowstyle": "-", "color": "grey"},
            )
        first = True
        day = scenario.start.astimezone(NEW_YORK).date()
        while day <= scenario.end.astimezone(NEW_YORK).date():
            hours = session(day)
            if hours is not None:
                ax.axvspan(
                    hours[0],
                    hours[1],
                    color="#f3f3f3",
                    zorder=0,
                    gid="session",
                    label="NYSE regular session" if first else "_nolegend_",
                )
                first = False
            day += timedelta(days=1)
        if scenario.synthetic:
            illustrative = " (SYNTHETIC: invented figures)"
        else:
            illustrative = " (illustrative figures)" if data.illustrative else ""
        ax.set_title(f"{symbol}{illustrative}: replay of {scenario.name}", fontsize=12)
        ax.set_ylabel("price (USD)")
        ax.set_xlabel("time (New York, ET)")
        ax.set_xlim(scenario.start, scenario.end)
        locator = mdates.AutoDateLocator(tz=NEW_YORK)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        formatter = mdates.DateFormatter("%a %b %d\n%H:%M", tz=NEW_YORK)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(formatter)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)
    return figure


def read_panels(figure: Any, symbols: list[str]) -> Drawn:
    """What each panel of `figure` shows, from its artists' ids (for the command's
    summary and the tests)."""
    panels = []
    for ax, symbol in zip(figure.axes, symbols, strict=True):
        gids = [line.get_gid() or "" for line in ax.get_lines()]
        markers = [g for g in gids if g.startswith("alert:")]
        labels = tuple(
            t.get_gid().removeprefix("alert-label:")
            for t in ax.texts
            if (t.get_gid() or "").startswith("alert-label:")
        )
        price = next((ln for ln in ax.get_lines() if ln.get_gid() == "price"), None)
        panels.append(
            Panel(
                symbol=symbol,
                markers=len(markers),
                labels=labels,
                levels=tuple(float(g.rsplit(":", 1)[1]) for g in gids if g.startswith("level:")),
                targets=tuple(g.removeprefix("target:") for g in gids if g.startswith("target:")),
                published=gids.count("published"),
                points=len(price.get_xdata()) - 1 if price is not None else 0,
            )
        )
    return Drawn(tuple(panels))


def plot_replay(run: ReplayRun, path: Path) -> Drawn:
    """Draw `run` into `path` (PNG or SVG by its extension); what was drawn."""
    figure = build_figure(run)
    drawn = read_panels(figure, panel_symbols(run))
    kind = path.suffix.lower().lstrip(".")
    figure.savefig(path, format=kind, dpi=110)
    return drawn
