"""ReplayProvider on a FakeClock over the shipped LUMN Q4 2025 scenario."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from service.clock import FakeClock
from service.config import Settings
from service.errors import ConfigError, ProviderUnsupported
from service.market import ReportTime, pct_change
from service.providers import PROVIDERS, build_providers, confirmation_problem
from service.providers.plugin import Capability
from service.providers.replay import (
    ReplayProvider,
    SecondReplayProvider,
    bundled_scenario,
    default_scenario,
    load_scenario,
)

FEB = date(2026, 2, 1), date(2026, 2, 28)


def at(text: str) -> FakeClock:
    return FakeClock(datetime.fromisoformat(text).replace(tzinfo=UTC))


@pytest.mark.anyio
async def test_before_the_report_the_event_is_scheduled_with_estimates():
    replay = ReplayProvider(default_scenario(), at("2026-02-02T15:00:00"))
    (event,) = await replay.earnings(*FEB, ["LUMN"])
    assert (event.date, event.time, event.fiscal_period) == (
        date(2026, 2, 3),
        ReportTime.AMC,
        "2025Q4",
    )
    assert (event.eps_estimate, event.revenue_estimate) == (-0.21, 3_080_000_000)
    assert event.eps_actual is None and event.revenue_actual is None and not event.reported
    assert (event.published_at - datetime(2026, 2, 2, 15, tzinfo=UTC)) > timedelta(hours=24)


@pytest.mark.anyio
async def test_after_the_release_the_actuals_are_a_beat_and_a_miss():
    replay = ReplayProvider(default_scenario(), at("2026-02-03T21:30:00"))
    (event,) = await replay.earnings(*FEB, ["lumn"])
    assert (event.eps_actual, event.revenue_actual) == (0.23, 3_041_000_000)
    assert event.eps_actual > event.eps_estimate
    assert event.revenue_actual < event.revenue_estimate


@pytest.mark.anyio
async def test_the_price_path_follows_the_recorded_days():
    clock = at("2026-02-02T21:00:00")
    replay = ReplayProvider(default_scenario(), clock)
    assert (await replay.quotes(["LUMN"]))["LUMN"].price == 8.93
    clock.set(datetime(2026, 2, 3, 21, 1, tzinfo=UTC))
    close = (await replay.quotes(["LUMN"]))["LUMN"]
    assert close.price == 8.46 and round(pct_change(close.price, close.prev_close), 2) == -5.26
    clock.set(datetime(2026, 2, 3, 23, 0, tzinfo=UTC))
    after_hours = (await replay.quotes(["LUMN"]))["LUMN"].price
    assert pct_change(after_hours, 8.46) < -4
    clock.set(datetime(2026, 2, 4, 18, 0, tzinfo=UTC))
    assert (await replay.quotes(["LUMN"]))["LUMN"].price == 6.42
    clock.set(datetime(2026, 2, 4, 21, 0, tzinfo=UTC))
    feb4 = (await replay.quotes(["LUMN"]))["LUMN"]
    assert round(pct_change(feb4.price, feb4.prev_close), 2) == -21.63


@pytest.mark.anyio
async def test_the_price_crosses_the_756_median_target_on_feb_4():
    clock = at("2026-02-03T21:00:00")
    replay = ReplayProvider(default_scenario(), clock)
    targets = await replay.price_targets("LUMN")
    assert targets is not None and targets.median == 7.56
    assert (await replay.quotes(["LUMN"]))["LUMN"].price > 7.56
    clock.set(datetime(2026, 2, 4, 16, 30, tzinfo=UTC))
    assert (await replay.quotes(["LUMN"]))["LUMN"].price < 7.56


@pytest.mark.anyio
async def test_before_the_first_point_and_for_unknown_symbols_there_is_no_quote():
    replay = ReplayProvider(default_scenario(), at("2026-01-30T12:00:00"))
    assert await replay.quotes(["LUMN", "ZZZZ"]) == {}
    assert await replay.price_targets("ZZZZ") is None


@pytest.mark.anyio
async def test_without_symbols_every_symbol_of_the_scenario_is_listed():
    replay = ReplayProvider(default_scenario(), at("2026-02-05T21:00:00"))
    events = await replay.earnings(*FEB, [])
    assert [e.symbol for e in events] == ["PLTR", "LUMN", "EQIX"]
    assert not events[2].reported
    await replay.aclose()


def test_the_scenario_says_which_figures_are_filled_in():
    scenario = default_scenario()
    assert any("Filled in" in note for note in scenario.notes)
    assert all(p.note for p in scenario.symbols["LUMN"].prices)
    assert scenario.symbols["PLTR"].illustrative and scenario.symbols["EQIX"].illustrative
    assert not scenario.symbols["LUMN"].illustrative
    assert scenario.start.date() == date(2026, 2, 2)


def test_a_bad_scenario_file_is_a_config_error(tmp_path: Path):
    bad = tmp_path / "bad.json"
    data = json.loads(default_scenario().model_dump_json())
    data["symbols"]["LUMN"]["prices"][0]["price"] = 0
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"bad\.json"):
        load_scenario(bad)
    good = tmp_path / "good.json"
    good.write_text(default_scenario().model_dump_json())
    assert load_scenario(good) == default_scenario()


# --- calendar rows that change over time (the synthetic scenario) -----------------------


@pytest.mark.anyio
async def test_a_rows_changes_apply_from_their_time_and_actuals_stay_hidden_until_published():
    scenario = bundled_scenario("synthetic-moves")
    assert scenario.synthetic and "synthetic" in scenario.name
    assert scenario.description.startswith("SYNTHETIC")

    async def row(moment: str) -> tuple[object, ...]:
        (event,) = await ReplayProvider(scenario, at(moment)).earnings(*FEB, ["SYNTH"])
        return (event.date, event.time, event.eps_estimate, event.eps_actual)

    assert await row("2026-02-09T16:59:00") == (date(2026, 2, 11), ReportTime.BMO, 1.10, None)
    assert await row("2026-02-09T17:00:00") == (date(2026, 2, 12), ReportTime.BMO, 1.10, None)
    assert await row("2026-02-10T16:00:00") == (date(2026, 2, 12), ReportTime.AMC, 1.10, None)
    assert await row("2026-02-12T21:05:00") == (date(2026, 2, 12), ReportTime.AMC, 1.10, 1.25)
    assert await row("2026-02-12T21:40:00") == (date(2026, 2, 12), ReportTime.AMC, 1.30, 1.25)
    assert await row("2026-02-12T22:05:00") == (date(2026, 2, 12), ReportTime.AMC, 1.30, 1.05)


def test_a_change_that_changes_nothing_is_refused_naming_the_field(tmp_path: Path):
    data = json.loads(bundled_scenario("synthetic-moves").model_dump_json())
    data["symbols"]["SYNTH"]["calendar"][0]["changes"].append({"at": "2026-02-10T00:00:00Z"})
    bad = tmp_path / "moves.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as caught:
        load_scenario(bad)
    assert str(caught.value) == (
        f"{bad}: symbols.SYNTH.calendar[0]: Value error, changes[4] changes nothing: give one "
        "of date, time, eps_estimate, eps_actual, revenue_estimate, revenue_actual"
    )
    data["symbols"]["SYNTH"]["calendar"][0]["changes"][4] = {"at": "2026-02-10", "date": "x"}
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"calendar\[0\]\.changes\[4\]\.at: .*\(and 1 more"):
        load_scenario(bad)


def test_a_scenario_without_changes_or_synthetic_still_loads(tmp_path: Path):
    """Backward compatible: the fields added for the synthetic scenario are optional."""
    data = json.loads(default_scenario().model_dump_json())
    for symbol in data["symbols"].values():
        for row in symbol["calendar"]:
            del row["changes"]
            del row["second"]
    del data["synthetic"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    assert load_scenario(old) == default_scenario()
    assert not default_scenario().synthetic
    assert not default_scenario().has_second


# --- a second provider's figures (`second`, served by replay-b) -------------------------


@pytest.mark.anyio
async def test_the_second_provider_reads_its_own_figures_then_the_rows_correction():
    """replay-b's EPS is 1.40 for ten minutes after publication, then 1.25 as replay's;
    the row's correction to 1.05 an hour later is seen by both; the rest is the row's."""
    scenario = bundled_scenario("synthetic-moves")
    assert scenario.has_second

    async def both(moment: str) -> tuple[object, ...]:
        clock = at(moment)
        (first,) = await ReplayProvider(scenario, clock).earnings(*FEB, ["SYNTH"])
        (second,) = await SecondReplayProvider(scenario, clock).earnings(*FEB, ["SYNTH"])
        assert (second.date, second.time, second.eps_estimate, second.revenue_actual) == (
            first.date,
            first.time,
            first.eps_estimate,
            first.revenue_actual,
        )
        return first.eps_actual, second.eps_actual

    assert await both("2026-02-12T21:04:00") == (None, None)
    assert await both("2026-02-12T21:05:00") == (1.25, 1.40)
    assert await both("2026-02-12T21:14:00") == (1.25, 1.40)
    assert await both("2026-02-12T21:15:00") == (1.25, 1.25)
    assert await both("2026-02-12T22:05:00") == (1.05, 1.05)


@pytest.mark.anyio
async def test_a_row_without_a_second_block_reads_the_same_to_both_providers():
    clock = at("2026-02-03T21:30:00")
    first = await ReplayProvider(default_scenario(), clock).earnings(*FEB, ["LUMN"])
    second = SecondReplayProvider(default_scenario(), clock)
    assert await second.earnings(*FEB, ["LUMN"]) == first
    with pytest.raises(ProviderUnsupported, match="replay-b: serves earnings only"):
        await second.quotes(["LUMN"])
    with pytest.raises(ProviderUnsupported):
        await second.price_targets("LUMN")


@pytest.mark.anyio
async def test_replay_b_is_its_own_registered_provider_that_confirms_replay():
    ptype = PROVIDERS["replay-b"]
    assert ptype.capabilities == frozenset({Capability.EARNINGS})
    settings = Settings(_env_file=None, providers="replay,replay-b", confirm="2")  # type: ignore[call-arg]
    assert confirmation_problem(settings) is None
    chain = build_providers(settings)
    assert [p.name for p in chain.providers] == ["replay", "replay-b"]
    name, events = await chain.earnings_besides("replay", *FEB, ["LUMN"])
    assert name == "replay-b" and [e.symbol for e in events] == ["LUMN"]
    await chain.aclose()


def test_a_second_block_that_moves_the_date_or_changes_nothing_is_refused(tmp_path: Path):
    data = json.loads(bundled_scenario("synthetic-moves").model_dump_json())
    second = data["symbols"]["SYNTH"]["calendar"][0]["second"]
    second["changes"].append({"at": "2026-02-12T21:20:00Z", "date": "2026-02-13"})
    bad = tmp_path / "second.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as caught:
        load_scenario(bad)
    assert str(caught.value) == (
        f"{bad}: symbols.SYNTH.calendar[0].second: Value error, changes[1]: a second "
        "provider's changes give figures only (eps_estimate, eps_actual, revenue_estimate, "
        "revenue_actual); the date and time are the row's"
    )
    second["changes"][1] = {"at": "2026-02-12T21:20:00Z", "note": "nothing"}
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"calendar\[0\]\.second: .*changes\[1\] changes nothing"):
        load_scenario(bad)
    second["changes"].pop()
    second["eps_actual"] = "many"
    bad.write_text(json.dumps(data))
    with pytest.raises(
        ConfigError, match=r"second\.json: symbols\.SYNTH\.calendar\[0\]\.second\.eps_actual: "
    ):
        load_scenario(bad)
