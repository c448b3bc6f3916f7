"""End to end (issue #13, item 4): `earnwatch run` with EARNWATCH_CONFIRM=2 against two
local servers, one speaking Finnhub's API and one FMP's. (a) The providers disagree, then
agree: no beat or miss while they disagree (the `data_suspect` rule fires), one beat when
they agree, with `confirmed_by` 2 and both providers' names. (b) Only Finnhub has figures:
the beat comes after EARNWATCH_CONFIRM_WAIT, with `confirmed_by` 1."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.daemon_setup import ROW, TODAY, write_env
from tests.e2e import Daemon, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.fakes.fmp import FakeFmp
from tests.servers import Receiver

pytestmark = pytest.mark.slow

RULES = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}"}
rules:
  - name: lumn-beat
    symbols: [LUMN]
    when: reported and eps_surprise_pct > 0
    notify: [hook]
  - name: lumn-miss
    symbols: [LUMN]
    when: eps_surprise_pct < 0 or revenue_surprise_pct < -5
    notify: [hook]
  - name: lumn-suspect
    symbols: [LUMN]
    when: data_suspect
    notify: [hook]
    message: "LUMN: the providers disagree ({{ figures_from }})"
"""
#: FMP's row of the same report: its own field names, the fiscal label FMP gives it.
FMP_ROW = {
    "symbol": "LUMN",
    "date": TODAY,
    "epsEstimated": -0.21,
    "revenueEstimated": 3080000000,
    "time": "amc",
    "fiscalPeriod": "Q4",
    "fiscalYear": 2025,
}
FINNHUB_ACTUALS = {**ROW, "epsActual": 0.23, "revenueActual": 3041000000}


def bodies(receiver: Receiver) -> list[dict]:
    return [json.loads(r.body) for r in receiver.requests]


def start(
    tmp_path: Path, finnhub: FakeFinnhub, fmp: FakeFmp, receiver: Receiver, wait: str
) -> Daemon:
    write_env(
        tmp_path,
        finnhub,
        receiver,
        "EARNWATCH_PROVIDERS=finnhub,fmp",
        f"FMP_API_KEY={fmp.apikey}",
        f"FMP_BASE_URL={fmp.base_url}",
        "EARNWATCH_CONFIRM=2",
        f"EARNWATCH_CONFIRM_WAIT={wait}",
    )
    (tmp_path / "rules.yaml").write_text(RULES)
    return Daemon(tmp_path, "--rules", "rules.yaml").start()


def test_no_beat_or_miss_while_the_providers_disagree_one_beat_once_they_agree(
    tmp_path: Path,
) -> None:
    with FakeFinnhub() as finnhub, FakeFmp() as fmp, Receiver() as receiver:
        finnhub.set_event(**ROW)
        finnhub.set_quote("LUMN", 8.46, 8.93, int(time.time()))
        fmp.set_event(**FMP_ROW)
        daemon = start(tmp_path, finnhub, fmp, receiver, "10m")
        try:
            line = f"calendar LUMN: {TODAY} amc 2025Q4"
            wait_for(lambda: line in daemon.log(), 20, "the row", daemon)
            assert fmp.count("/earnings-calendar") == 0  # no actuals: FMP is not asked
            # Finnhub: a beat; FMP (re-dated a day forward, as FMP does): a miss
            fmp.set_event(
                **{**FMP_ROW, "epsActual": -0.30, "revenueActual": 2500000000}, redated=True
            )
            finnhub.set_event(**FINNHUB_ACTUALS)
            wait_for(lambda: receiver.requests, 20, "the suspect alert", daemon)
            asked = fmp.count("/earnings-calendar")
            wait_for(lambda: fmp.count("/earnings-calendar") >= asked + 3, 20, "more asks", daemon)
            suspect = bodies(receiver)
            assert [b["rule"] for b in suspect] == ["lumn-suspect"], daemon.log()[-3000:]
            # FMP corrects its figures: within $0.01 and 0.5 %
            fmp.set_event(
                **{**FMP_ROW, "epsActual": 0.235, "revenueActual": 3045000000}, redated=True
            )
            wait_for(lambda: len(receiver.requests) >= 2, 20, "the beat alert", daemon)
            asked = fmp.count("/earnings-calendar")
            time.sleep(3)  # confirmed: FMP is no longer asked, and nothing more fires
            after = fmp.count("/earnings-calendar")
        finally:
            daemon.stop()
    sent = bodies(receiver)
    assert [b["rule"] for b in sent] == ["lumn-suspect", "lumn-beat"], daemon.log()[-3000:]
    suspect_values = sent[0]["values"]
    assert suspect_values["data_suspect"] is True and suspect_values["confirmed_by"] == 0
    assert suspect_values["reported"] is False and "eps_actual" not in suspect_values
    assert suspect_values["figures_from"] == "finnhub,fmp"
    assert "the providers disagree (finnhub,fmp)" in json.dumps(sent[0])
    beat = sent[1]["values"]
    assert beat["confirmed_by"] == 2 and beat["figures_from"] == "finnhub,fmp"
    assert beat["data_suspect"] is False and beat["eps_actual"] == 0.23  # the first provider's
    assert after == asked
    assert "confirmation LUMN 2025Q4: finnhub and fmp, confirmed by 2" in daemon.log()


def test_with_one_provider_having_figures_the_beat_comes_after_the_wait(tmp_path: Path) -> None:
    with FakeFinnhub() as finnhub, FakeFmp() as fmp, Receiver() as receiver:
        finnhub.set_event(**ROW)
        finnhub.set_quote("LUMN", 8.46, 8.93, int(time.time()))
        fmp.set_event(**FMP_ROW)  # FMP never gets the actuals
        daemon = start(tmp_path, finnhub, fmp, receiver, "2s")
        try:
            line = f"calendar LUMN: {TODAY} amc 2025Q4"
            wait_for(lambda: line in daemon.log(), 20, "the row", daemon)
            finnhub.set_event(**FINNHUB_ACTUALS)
            published = time.monotonic()
            wait_for(lambda: fmp.count("/earnings-calendar"), 20, "FMP asked", daemon)
            wait_for(lambda: receiver.requests, 20, "the beat alert", daemon)
            time.sleep(2)
        finally:
            daemon.stop()
    sent = bodies(receiver)
    assert [b["rule"] for b in sent] == ["lumn-beat"], daemon.log()[-3000:]
    assert receiver.requests[0].at - published >= 2.0  # not before the wait
    values = sent[0]["values"]
    assert values["confirmed_by"] == 1 and values["figures_from"] == "finnhub"
    assert values["reported"] is True and values["data_suspect"] is False
