"""The tolerance and the verdict of cross-provider confirmation (service/confirm.py), and
how MarketData keeps them with a report's history, across a save and a restore."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from service.confirm import (
    SUSPECT_POLLING,
    Figures,
    Verdict,
    agree,
    asks_second,
    eps_agree,
    revenue_agree,
    verdict,
)
from service.market import EarningsEvent, ReportTime, variables
from service.marketdata import MarketData

T0 = datetime(2026, 11, 3, 21, 5, tzinfo=UTC)
WAIT = timedelta(minutes=10)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (0.30, 0.31, True),  # exactly $0.01 (1 % of 0.30 is less)
        (0.50, 0.5101, False),  # just over $0.01, and over 1 % of 0.50
        (2.00, 2.02, True),  # exactly 1 % of the smaller (and over $0.01)
        (2.02, 2.00, True),  # symmetric
        (2.00, 2.0201, False),  # just over 1 %
        (5.00, 5.05, True),  # 1 % of 5.00
        (-0.30, -0.31, True),  # negative: $0.01
        (-0.30, -0.32, False),
        (-5.00, -5.05, True),  # negative: 1 % of |-5.00|
        (-0.01, 0.00, True),  # across zero: $0.01
        (0.00, 0.00, True),  # zero EPS
        (0.00, 0.01, True),
        (0.00, 0.02, False),  # 1 % of zero is zero: only the $0.01 holds
        (-0.05, 0.05, False),  # the sign flipped
    ],
)
def test_eps_agrees_within_a_cent_or_one_percent(a: float, b: float, expected: bool) -> None:
    assert eps_agree(a, b) is expected
    assert eps_agree(b, a) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (1_000_000_000, 1_005_000_000, True),  # exactly 0.5 % of the smaller
        (1_005_000_000, 1_000_000_000, True),
        (1_000_000_000, 1_005_000_100, False),  # just over
        (3_041_000_000, 3_041_000_000, True),
        (3_041_000_000, 3_080_000_000, False),  # 1.3 %
        (0, 0, True),
        (0, 1, False),
    ],
)
def test_revenue_agrees_within_half_a_percent(a: float, b: float, expected: bool) -> None:
    assert revenue_agree(a, b) is expected
    assert revenue_agree(b, a) is expected


def test_only_the_figures_both_carry_are_compared() -> None:
    both = Figures(eps=0.23, revenue=3_041_000_000)
    assert agree(both, Figures(eps=0.23)) is True  # revenue missing on one side (Nasdaq)
    assert agree(both, Figures(eps=0.30)) is False
    assert agree(Figures(eps=0.23), Figures(revenue=3_041_000_000)) is None  # nothing common
    assert agree(both, Figures(eps=0.23, revenue=3_200_000_000)) is False  # EPS ok, revenue off
    assert agree(both, Figures()) is None


def test_the_verdict_two_agree_one_alone_and_a_disagreement() -> None:
    first = Figures(eps=0.23, revenue=3_041_000_000)
    assert verdict(Figures(), None, None, T0, WAIT) == Verdict(0, False, False)
    alone = verdict(first, None, T0, T0 + WAIT - timedelta(seconds=1), WAIT)
    assert alone == Verdict(confirmed_by=1, suspect=False, reported=False)
    assert verdict(first, None, T0, T0 + WAIT, WAIT) == Verdict(1, False, True)  # the wait
    assert verdict(first, Figures(eps=0.23), T0, T0, WAIT) == Verdict(2, False, True)
    assert verdict(first, Figures(eps=0.30), T0, T0 + WAIT * 9, WAIT) == Verdict(0, True, False)
    # nothing in common: the second cannot confirm; the wait applies
    assert verdict(Figures(eps=0.23), Figures(revenue=1.0), T0, T0, WAIT).confirmed_by == 1


def test_the_second_provider_is_asked_until_it_agrees_the_wait_ends_or_suspect_polling() -> None:
    alone, agreed, suspect = Verdict(1), Verdict(2, reported=True), Verdict(0, suspect=True)
    assert asks_second(alone, T0, T0 + WAIT - timedelta(seconds=1), WAIT)
    assert not asks_second(alone, T0, T0 + WAIT, WAIT)
    assert not asks_second(agreed, T0, T0, WAIT)
    assert asks_second(suspect, T0, T0 + SUSPECT_POLLING - timedelta(seconds=1), WAIT)
    assert not asks_second(suspect, T0, T0 + SUSPECT_POLLING, WAIT)
    assert not asks_second(alone, None, T0, WAIT)


ROW = EarningsEvent(
    symbol="LUMN",
    date=date(2026, 11, 3),
    time=ReportTime.AMC,
    fiscal_year=2026,
    fiscal_quarter=3,
    eps_estimate=-0.21,
    revenue_estimate=3_080_000_000,
)


def _reported(eps: float, revenue: float | None = 3_041_000_000, **kw: object) -> EarningsEvent:
    fields = {
        "symbol": ROW.symbol,
        "date": ROW.date,
        "time": ROW.time,
        "fiscal_year": ROW.fiscal_year,
        "fiscal_quarter": ROW.fiscal_quarter,
        "eps_estimate": ROW.eps_estimate,
        "revenue_estimate": ROW.revenue_estimate,
        "eps_actual": eps,
        "revenue_actual": revenue,
        **kw,
    }
    return EarningsEvent(**fields)  # type: ignore[arg-type]


def _data(first: EarningsEvent) -> MarketData:
    data = MarketData(confirming=True)
    start, end = ROW.date - timedelta(days=1), ROW.date + timedelta(days=1)
    data.apply_events([ROW], ["LUMN"], start, end)
    data.apply_events([first], ["LUMN"], start, end)
    assert data.settle(T0, WAIT, source="finnhub", symbols=["LUMN"]) == {"LUMN"}
    return data


def _vars(data: MarketData, now: datetime) -> dict[str, object]:
    return dict(variables(data.snapshot("LUMN"), now))


def test_disagreeing_figures_are_suspect_and_hidden_until_the_second_agrees() -> None:
    data = _data(_reported(0.23))
    now = T0 + timedelta(seconds=30)
    before = _vars(data, now)
    assert before["reported"] is False and before["confirmed_by"] == 1
    assert before["eps_actual"] is None and before["eps_surprise_pct"] is None
    awaiting = data.awaiting_second(now, WAIT)
    assert list(awaiting) == ["LUMN"]
    # FMP's row: re-dated a day forward, its own fiscal label, and another EPS
    fmp = _reported(0.30, fiscal_year=2027, fiscal_quarter=1, date=ROW.date + timedelta(days=1))
    assert data.apply_second("fmp", [fmp], awaiting, now, WAIT) == {"LUMN"}
    suspect = _vars(data, now)
    assert suspect["data_suspect"] is True and suspect["reported"] is False
    assert suspect["confirmed_by"] == 0 and suspect["figures_from"] == "finnhub,fmp"
    assert suspect["eps_surprise_pct"] is None
    # a long disagreement: still suspect after the wait (the wait is for one provider alone)
    assert data.settle(T0 + WAIT * 3, WAIT) == set()
    assert _vars(data, T0 + WAIT * 3)["reported"] is False
    # restored from the store (a restart, another replica): the same verdict and inputs
    data = MarketData.from_json(data.to_json())
    data.confirming = True
    assert _vars(data, now)["data_suspect"] is True
    awaiting = data.awaiting_second(now + timedelta(minutes=1), WAIT)
    agreed = _reported(0.235, fiscal_year=2027, fiscal_quarter=1)
    assert data.apply_second("fmp", [agreed], awaiting, now, WAIT) == {"LUMN"}
    after = _vars(data, now)
    assert after["reported"] is True and after["confirmed_by"] == 2
    assert after["data_suspect"] is False and after["eps_actual"] == 0.23
    assert data.awaiting_second(now, WAIT) == {}  # confirmed: the second is not asked again


def test_a_correction_after_two_agreed_is_confirmed_afresh_not_suspect() -> None:
    data = _data(_reported(0.23))
    awaiting = data.awaiting_second(T0, WAIT)
    assert data.apply_second("fmp", [_reported(0.23)], awaiting, T0, WAIT) == {"LUMN"}
    assert _vars(data, T0)["confirmed_by"] == 2
    # three hours later (past SUSPECT_POLLING) the first provider corrects its EPS: FMP's
    # answer is of the old figure, so this is no disagreement (no data_suspect alert) but
    # figures to confirm again, from now, with FMP asked again
    later = T0 + timedelta(hours=3)
    start, end = ROW.date - timedelta(days=1), ROW.date + timedelta(days=1)
    data.apply_events([_reported(0.25)], ["LUMN"], start, end)
    assert data.settle(later, WAIT, source="finnhub", symbols=["LUMN"]) == {"LUMN"}
    pending = _vars(data, later)
    assert pending["data_suspect"] is False and pending["confirmed_by"] == 1
    assert pending["reported"] is False and pending["eps_actual"] is None
    awaiting = data.awaiting_second(later, WAIT)
    assert list(awaiting) == ["LUMN"]
    assert data.apply_second("fmp", [_reported(0.25)], awaiting, later, WAIT) == {"LUMN"}
    confirmed = _vars(data, later)
    assert confirmed["confirmed_by"] == 2 and confirmed["eps_actual"] == 0.25
    # had FMP kept the old figure on a fresh reading, that is a real disagreement
    data.apply_events([_reported(0.27)], ["LUMN"], start, end)
    data.settle(later, WAIT, source="finnhub", symbols=["LUMN"])
    awaiting = data.awaiting_second(later, WAIT)
    data.apply_second("fmp", [_reported(0.25)], awaiting, later, WAIT)
    assert _vars(data, later)["data_suspect"] is True


def test_one_provider_alone_is_reported_after_the_wait_and_the_wait_survives_a_restart() -> None:
    data = _data(_reported(0.23))
    awaiting = data.awaiting_second(T0, WAIT)
    unreported = EarningsEvent(symbol="LUMN", date=ROW.date, eps_estimate=-0.21)
    assert data.apply_second("fmp", [unreported], awaiting, T0, WAIT) == set()
    assert _vars(data, T0)["figures_from"] == "finnhub"
    data = MarketData.from_json(data.to_json())
    data.confirming = True
    assert data.settle(T0 + WAIT - timedelta(seconds=1), WAIT) == set()
    assert data.settle(T0 + WAIT, WAIT) == {"LUMN"}  # dated when first seen, not restarted
    done = _vars(data, T0 + WAIT)
    assert done["reported"] is True and done["confirmed_by"] == 1
    assert done["eps_actual"] == 0.23
    assert data.awaiting_second(T0 + WAIT, WAIT) == {}


def test_without_confirmation_the_variables_are_as_before() -> None:
    data = MarketData()
    start, end = ROW.date - timedelta(days=1), ROW.date + timedelta(days=1)
    data.apply_events([_reported(0.23)], ["LUMN"], start, end)
    values = _vars(data, T0)
    assert values["reported"] is True and values["eps_actual"] == 0.23
    assert values["confirmed_by"] is None and values["data_suspect"] is None
    assert values["figures_from"] is None


def test_confirm_with_one_earnings_provider_is_a_one_line_error_at_check_and_startup(
    tmp_path: Path,
) -> None:
    from pydantic import SecretStr

    from service.config import Settings
    from service.errors import ConfigError
    from service.providers import build_providers, confirmation_problem

    one = Settings(_env_file=None, providers="finnhub", confirm="2", finnhub_api_key=SecretStr("k"))
    problem = confirmation_problem(one)
    assert problem is not None and problem.startswith("EARNWATCH_CONFIRM=2: needs at least two")
    assert "lists finnhub" in problem and "\n" not in problem
    with pytest.raises(ConfigError, match="EARNWATCH_CONFIRM=2"):
        build_providers(one)
    two = Settings(_env_file=None, providers="finnhub,nasdaq", confirm="2")
    assert confirmation_problem(two) is None
    assert confirmation_problem(Settings(_env_file=None, providers="finnhub")) is None
    (tmp_path / "rules.yaml").write_text(
        "channels:\n  hook: {type: webhook, url: 'https://example.com/h'}\n"
        "rules:\n  - name: suspect\n    symbols: [LUMN]\n    when: data_suspect\n"
        "    notify: [hook]\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parent.parent)}
    run = [sys.executable, "-m", "service", "check", "rules.yaml"]
    refused = subprocess.run(
        run,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "EARNWATCH_CONFIRM": "2"},
    )
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[0].startswith("earnwatch: EARNWATCH_CONFIRM=2: needs")
    accepted = subprocess.run(
        run,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "EARNWATCH_CONFIRM": "2", "EARNWATCH_PROVIDERS": "finnhub,fmp"},
    )
    assert accepted.returncode == 0, accepted.stderr  # a data_suspect rule is no longer refused
    assert "confirmation" not in accepted.stdout  # the summary line only; --budget shows it
