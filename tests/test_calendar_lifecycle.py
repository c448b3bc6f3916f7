"""`earnwatch calendar` (issue #13, item 7 for items 1-2): with the daemon's stored last
known data, a reported row shows the consensus frozen before its actuals next to the
provider's latest, and a moved report shows the date it moved from."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from service.market import EarningsEvent, ReportTime
from service.marketdata import MarketData
from service.store import open_store
from tests.fakes.finnhub import FakeFinnhub
from tests.test_commands import (
    CALENDAR_RULES,
    EQIX_UPCOMING,
    LUMN_MISSED,
    TODAY,
    earnwatch,
    output,
    write_env,
)


@pytest.fixture
def finnhub() -> Iterator[FakeFinnhub]:
    with FakeFinnhub() as fake:
        yield fake


def stored(folder: Path) -> None:
    """What a daemon saw before: LUMN pending at a -0.27 consensus, EQIX 2 days earlier."""
    data = MarketData()
    lumn = EarningsEvent(
        "LUMN", TODAY, ReportTime.AMC, 2025, 4, eps_estimate=-0.27, revenue_estimate=3.1e9
    )
    eqix = EarningsEvent(
        "EQIX", TODAY + timedelta(days=3), ReportTime.BMO, 2025, 4, eps_estimate=8.5
    )
    data.apply_events([lumn, eqix], ["LUMN", "EQIX"], date.min, date.max)
    store = open_store(f"sqlite:///{folder}/earnwatch.db")
    try:
        store.save_market_data("market", data.to_json(), datetime.now(UTC))
    finally:
        store.close()


def folder_with(tmp_path: Path, finnhub: FakeFinnhub) -> None:
    finnhub.set_event(**LUMN_MISSED)  # actuals out, consensus now -0.21
    finnhub.set_event(**EQIX_UPCOMING)  # now in 5 days
    (tmp_path / "rules.yaml").write_text(CALENDAR_RULES)
    write_env(
        tmp_path,
        "FINNHUB_API_KEY=test-finnhub-key",
        f"FINNHUB_BASE_URL={finnhub.base_url}",
        f"EARNWATCH_DATABASE_URL=sqlite:///{tmp_path}/earnwatch.db",
    )
    stored(tmp_path)


def test_calendar_shows_the_frozen_consensus_and_a_moved_date(
    tmp_path: Path, finnhub: FakeFinnhub
) -> None:
    folder_with(tmp_path, finnhub)
    result = earnwatch("calendar", "--days", "14", "--rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    lines = result.stdout.rstrip("\n").splitlines()
    lumn = next(line.split() for line in lines if "LUMN" in line)
    eqix = next(line.split() for line in lines if "EQIX" in line)
    # frozen -0.27 (surprise against it), latest -0.21
    assert lumn[4:7] == ["-0.27", "-0.3", "-11.1%"] and lumn[-1] == "-0.21", lumn
    assert eqix[-1] == (TODAY + timedelta(days=3)).isoformat(), eqix
    json_result = earnwatch("calendar", "--json", "--rules", "rules.yaml", cwd=tmp_path)
    rows = {r["symbol"]: r for r in json.loads(json_result.stdout)}
    assert rows["LUMN"]["eps_estimate"] == -0.27 and rows["LUMN"]["eps_estimate_latest"] == -0.21
    assert rows["LUMN"]["consensus_frozen"] is True
    assert rows["EQIX"]["earnings_date_changed"] is True
    assert rows["EQIX"]["earnings_date_previous"] == (TODAY + timedelta(days=3)).isoformat()
