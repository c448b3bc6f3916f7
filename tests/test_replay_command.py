"""`earnwatch replay`: the real pipeline over a recorded scenario on a simulated clock,
printing each alert; `--plot` draws it (matplotlib); nothing is ever sent."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from service import parts
from service.notify import CHANNEL_TYPES
from service.providers.replay import default_scenario
from service.replay import find_scenario, load_rules, replay_command, replay_settings, run_replay
from service.replay_plot import build_figure, panel_symbols, read_panels
from service.rules.expr import compile_condition
from service.rules.levels import price_levels

ROOT = Path(__file__).resolve().parent.parent
DEMO_RULES = ("earnings-tomorrow", "revenue-miss", "post-earnings-drop", "below-median-target")


def earnwatch(*args: str, cwd: Path, prelude: str = "") -> subprocess.CompletedProcess[str]:
    code = f"{prelude}\nimport sys\nfrom service.cli import main\nsys.argv = ['earnwatch', *{list(args)!r}]\nmain()"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_replay_prints_the_demos_four_alerts_and_writes_a_png(tmp_path: Path) -> None:
    result = earnwatch("replay", "lumn-q4-2025", "--instant", "--plot", "lumn.png", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    rows = [line for line in lines if "  LUMN  " in line]
    assert [next(r for r in DEMO_RULES if f"  {r}  " in row) for row in rows] == list(DEMO_RULES)
    assert rows[0].startswith("Mon 2026-02-02 16:00 EST")  # New York time, 24 h before
    assert rows[1].startswith("Tue 2026-02-03 16:05 EST")  # the publication minute
    assert "$3.041B vs $3.08B (-1.3%), while EPS beat: 0.23 vs -0.21 (+209.5%)" in rows[1]
    assert "fell through the $7.56 median analyst target" in rows[3]
    # aligned: the rule and symbol columns start at the same place on every row
    header = next(line for line in lines if line.startswith("time (New York)"))
    assert {row.index("  LUMN  ") for row in rows} == {header.index("  symbol") + 0}
    assert "4 alert(s) fired; nothing was sent." in lines
    assert "Chart: lumn.png (1 panel(s), 4 alert marker(s))" in lines
    png = tmp_path / "lumn.png"
    assert png_size(png) == (1320, 528)  # 12 x 4.8 inches at 110 dpi, one panel
    assert png.stat().st_size > 20_000  # drawn, not an empty canvas
    assert result.stderr == ""


def test_the_chart_draws_a_marker_per_alert_the_levels_targets_and_publication(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        """version: 1
channels:
  hook: {type: webhook, url: "https://example.invalid/hook"}
defaults: {notify: [hook]}
rules:
  - name: under-seven
    symbols: [LUMN]
    when: price < 7
  - name: range
    symbols: [LUMN]
    when: day_high >= 9.5 or 6.5 > day_low or change_pct <= -20
  - name: pltr-beat
    symbols: [PLTR]
    when: reported and eps_surprise_pct > 0
"""
    )
    scenario, _ = find_scenario("lumn-q4-2025")
    ruleset = load_rules(replay_settings("sqlite://"), rules, env_file=None)
    run = asyncio.run(run_replay(scenario, ruleset, speed=None))
    fired = [(a.rule, a.symbol) for a in run.alerts]
    assert fired == [("pltr-beat", "PLTR"), ("under-seven", "LUMN"), ("range", "LUMN")]
    figure = build_figure(run)
    drawn = read_panels(figure, panel_symbols(run))
    assert [p.symbol for p in drawn.panels] == ["LUMN", "PLTR"]  # EQIX is not watched
    lumn, pltr = drawn.panels
    assert lumn.markers == 2 and lumn.labels == ("under-seven", "range")
    assert sorted(lumn.levels) == [6.5, 7.0, 9.5]  # the percentage is no price level
    assert lumn.targets == ("median", "mean", "high", "low")
    assert lumn.published == 1 and lumn.points == 14
    assert pltr.markers == 1 and pltr.labels == ("pltr-beat",) and pltr.levels == ()
    # the markers sit at the price the alert read, at its time
    ax = figure.axes[0]
    markers = [ln for ln in ax.get_lines() if (ln.get_gid() or "").startswith("alert:")]
    assert [float(m.get_ydata()[0]) for m in markers] == [6.95, 6.42]
    assert ax.get_xlabel() == "time (New York, ET)" and ax.get_ylabel() == "price (USD)"
    svg = tmp_path / "chart.svg"
    from service.replay_plot import plot_replay

    assert plot_replay(run, svg).panels == drawn.panels
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()


def test_without_matplotlib_plot_says_how_to_install_it(tmp_path: Path) -> None:
    result = earnwatch(
        "replay",
        "lumn-q4-2025",
        "--instant",
        "--plot",
        "lumn.png",
        cwd=tmp_path,
        prelude="import sys; sys.modules['matplotlib'] = None",
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "earnwatch replay: --plot needs matplotlib: pip install 'earnwatch[plot]'"
    ]
    assert not (tmp_path / "lumn.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--plot", "lumn.jpg"],
            "earnwatch replay: --plot lumn.jpg: the file must end in .png or .svg",
        ),
        (
            ["--speed", "10", "--instant"],
            "earnwatch replay: --speed and --instant: give one of them",
        ),
    ],
)
def test_bad_options_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = asyncio.run(
        replay_command(
            "lumn-q4-2025",
            rules=None,
            speed=10.0 if "--speed" in args else None,
            instant="--instant" in args,
            plot=Path(args[1]) if args[0] == "--plot" else None,
            out=out,
            err=err,
        )
    )
    assert code == 2 and err.getvalue().splitlines() == [message] and out.getvalue() == ""


def test_a_bad_scenario_file_names_the_file_and_the_field(tmp_path: Path) -> None:
    data = json.loads(default_scenario().model_dump_json())
    data["symbols"]["LUMN"]["calendar"][0]["time"] = "noon"
    bad = tmp_path / "mine.json"
    bad.write_text(json.dumps(data))
    err = io.StringIO()
    code = asyncio.run(
        replay_command(
            str(bad), rules=None, speed=None, instant=True, plot=None, out=io.StringIO(), err=err
        )
    )
    assert code == 2
    assert err.getvalue().splitlines() == [
        f"earnwatch replay: {bad}: symbols.LUMN.calendar[0].time: Input should be "
        "'bmo', 'amc', 'dmh' or 'unknown'"
    ]
    unknown = io.StringIO()
    assert (
        asyncio.run(
            replay_command(
                "no-such",
                rules=None,
                speed=None,
                instant=True,
                plot=None,
                out=io.StringIO(),
                err=unknown,
            )
        )
        == 2
    )
    assert "no bundled scenario 'no-such' (bundled: lumn-q4-2025" in unknown.getvalue()


def test_replay_sends_nothing_and_builds_no_notifier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's rule file whose webhook is a live local server: the replay fires its
    alerts, the server is never called, and no notifier is even built."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("replay built a notifier")

    monkeypatch.setattr(parts, "notifiers_for", refuse)
    for channel in CHANNEL_TYPES.values():
        monkeypatch.setattr(channel.notifier, "__init__", refuse)

    async def scenario() -> tuple[int, str, int]:
        calls = 0

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal calls
            calls += 1
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        rules = tmp_path / "rules.yaml"
        rules.write_text(
            f"""version: 1
channels:
  hook: {{type: webhook, url: "http://127.0.0.1:{port}/alerts"}}
defaults: {{notify: [hook]}}
rules:
  - name: miss
    symbols: [LUMN]
    when: reported and revenue_surprise_pct < 0
  - name: target
    symbols: [LUMN]
    when: price < target_median
"""
        )
        out = io.StringIO()
        code = await replay_command(
            "lumn-q4-2025",
            rules=rules,
            speed=None,
            instant=True,
            plot=None,
            out=out,
            err=io.StringIO(),
        )
        await asyncio.sleep(0.2)
        server.close()
        await server.wait_closed()
        return code, out.getvalue(), calls

    code, out, calls = asyncio.run(scenario())
    assert code == 0
    assert "2 alert(s) fired; nothing was sent." in out
    assert calls == 0


def test_price_levels_are_the_numbers_a_price_is_compared_with() -> None:
    levels = price_levels(compile_condition("price < 7.5 and (-2 > change_pct or 8 >= day_high)"))
    assert levels == (7.5, 8.0)
    assert price_levels(compile_condition("price < target_median * 1.02")) == ()
    assert price_levels(compile_condition("6 < price < 9 and price_at_report > -1")) == (
        6.0,
        9.0,
        -1.0,
    )
    assert price_levels(None) == ()


def test_the_readmes_example_scenario_replays(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### The scenario format") :]
    example = section[section.index("```json") + len("```json") : section.index("```\n\nTo record")]
    scenario_file = tmp_path / "acme.json"
    scenario_file.write_text(example)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        """version: 1
channels:
  hook: {type: webhook, url: "https://example.invalid/hook"}
defaults: {notify: [hook]}
rules:
  - name: eps-miss
    symbols: [ACME]
    when: reported and eps_surprise_pct < 0
  - name: gap-down
    symbols: [ACME]
    when: gap_pct <= -5
"""
    )
    out = io.StringIO()
    code = asyncio.run(
        replay_command(
            str(scenario_file),
            rules=rules,
            speed=None,
            instant=True,
            plot=None,
            out=out,
            err=io.StringIO(),
        )
    )
    assert code == 0, out.getvalue()
    rows = [line for line in out.getvalue().splitlines() if "  ACME  " in line]
    assert [row.split()[4] for row in rows] == ["eps-miss", "gap-down"]
    assert rows[0].startswith("Tue 2026-10-27 16:05 EDT")


SYNTHETIC = [
    (
        "Mon 2026-02-09 12:00 EST",
        "date-moved",
        "moved its 2025Q4 report from 2026-02-11 to 2026-02-12 (bmo)",
    ),
    ("Tue 2026-02-10 11:00 EST", "time-changed", "now reports 2025Q4 amc on 2026-02-12 (was bmo)"),
    ("Wed 2026-02-11 16:00 EST", "earnings-tomorrow", "amc on 2026-02-12 (in 24 h)"),
    (
        "Thu 2026-02-12 16:05 EST",
        "data-suspect",
        "the providers (replay,replay-b) disagree on the figures; no beat or miss",
    ),
    (
        "Thu 2026-02-12 16:15 EST",
        "eps-beat",
        "beat: EPS 1.25 vs 1.1 (+13.6%), confirmed by 2 providers",
    ),
    ("Thu 2026-02-12 17:00 EST", "consensus-revised", "1.3 now; the surprise still uses 1.1"),
    (
        "Thu 2026-02-12 17:30 EST",
        "eps-beat (amended)",
        "AMENDED: SYNTH: eps-beat: EPS 1.25 -> 1.05, revenue 512M",
    ),
    ("Thu 2026-02-12 17:30 EST", "eps-miss", "EPS now reads 1.05 vs 1.1 (-4.5%)"),
    (
        "Fri 2026-02-13 09:30 EST",
        "gap-down",
        "opened -4.7% from its report price ($51.00 -> $48.60)",
    ),
    ("Fri 2026-02-13 12:00 EST", "under-48-50", "fell under $48.50: $48.10"),
]


def test_replay_of_the_synthetic_scenario_tells_the_moving_report(tmp_path: Path) -> None:
    """The date moves (one alert, and the reminder for the new date and time only), the
    time flips, the two providers disagree for ten minutes (data suspect, no beat) and then
    agree (the beat, confirmed by 2), the consensus is revised after the report (the
    surprise keeps the frozen one), the EPS is corrected an hour later (the beat's amended
    alert and the miss it becomes)."""
    result = earnwatch("replay", "synthetic-moves", "--instant", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if "  SYNTH  " in line]
    assert len(rows) == len(SYNTHETIC)
    for row, (when, rule, text) in zip(rows, SYNTHETIC, strict=True):
        assert row.startswith(when) and f"  {rule}  " in row and text in row, row
    assert "10 alert(s) fired; nothing was sent." in result.stdout
