"""The silence stage (service/silences.py): which alerts a silence covers (pure), what the
stage does when the store fails, and, through the real pipeline and store, a silenced
alert recorded as `silenced` with the silence's id and counted once."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from service.commands import show_history
from service.config import Settings
from service.engine import Alert
from service.errors import StoreError
from service.health import HealthState
from service.market import Quote
from service.marketdata import MarketData
from service.metrics import Metrics
from service.notify import CHANNEL_CONFIGS
from service.parts import stages_for
from service.pipeline import Pipeline
from service.rules import Channel, RuleSet, load_rules
from service.silence_commands import silence_end
from service.silences import SilenceStage, covers, matching
from service.stages import SEND, Decision
from service.store import Silence, Store
from tests.test_metrics import key, samples

NOW = datetime(2026, 2, 4, 15, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

RULES = """
channels:
  hook: {type: webhook, url: "https://hooks.example/a"}
  other: {type: webhook, url: "https://hooks.example/b"}
rules:
  - name: above
    symbols: [LUMN, PLTR]
    when: price > 7.56
    notify: [hook, other]
"""


def load() -> RuleSet:
    return load_rules(RULES, source="rules.yaml", env={}, channel_configs=CHANNEL_CONFIGS)


def alert(rule: str = "above", symbol: str = "LUMN", at: datetime = NOW) -> Alert:
    return Alert(
        rule=rule,
        symbol=symbol,
        dedup_key=f"{rule}|{symbol}|1",
        fired_at=at,
        text=f"{symbol} above 7.56",
        channels=("hook", "other"),
    )


def silence(
    rule: str | None = None,
    symbol: str | None = None,
    *,
    starts: datetime = NOW - HOUR,
    ends: datetime = NOW + HOUR,
    id: str = "s_0123456789",
) -> Silence:
    return Silence(id, rule, symbol, starts, ends, None, starts)


def channel() -> Channel:
    return load().channels["hook"]


# --- which alerts a silence covers ------------------------------------------------------------


def test_a_silence_of_a_rule_covers_that_rule_on_every_symbol_and_no_other_rule() -> None:
    only_rule = silence(rule="above")
    assert covers(only_rule, alert(symbol="LUMN")) and covers(only_rule, alert(symbol="PLTR"))
    assert not covers(only_rule, alert(rule="below"))


def test_a_silence_of_a_symbol_covers_every_rule_on_that_symbol_and_no_other_symbol() -> None:
    only_symbol = silence(symbol="LUMN")
    assert covers(only_symbol, alert(rule="above")) and covers(only_symbol, alert(rule="miss"))
    assert not covers(only_symbol, alert(symbol="PLTR"))


def test_a_silence_of_a_rule_and_a_symbol_covers_only_both_together() -> None:
    both = silence(rule="above", symbol="LUMN")
    assert covers(both, alert())
    assert not covers(both, alert(symbol="PLTR"))
    assert not covers(both, alert(rule="below"))


def test_a_silence_covers_alerts_fired_from_its_start_up_to_but_not_at_its_end() -> None:
    held = silence(rule="above")
    assert covers(held, alert(at=NOW - HOUR))  # its first moment
    assert not covers(held, alert(at=NOW + HOUR))  # expired: its end is not covered
    assert not covers(held, alert(at=NOW + 2 * HOUR))
    not_started = silence(rule="above", starts=NOW + timedelta(minutes=1))
    assert not covers(not_started, alert())


def test_of_several_matching_silences_the_first_one_is_named() -> None:
    other = silence(rule="below", id="s_aaaaaaaaaa")
    first = silence(symbol="LUMN", id="s_bbbbbbbbbb")
    second = silence(rule="above", id="s_cccccccccc")
    assert matching([other, first, second], alert()) == first
    assert matching([other], alert()) is None
    assert matching([], alert()) is None


# --- the stage ----------------------------------------------------------------------------


class FakeStore:
    """Hands out `silences`, or raises StoreError while `failing`."""

    def __init__(self, silences: list[Silence]) -> None:
        self.silences_now = silences
        self.failing = False
        self.reads: list[datetime] = []

    def silences(self, now: datetime) -> list[Silence]:
        self.reads.append(now)
        if self.failing:
            raise StoreError("store silences failed: OperationalError: disk I/O error")
        return [s for s in self.silences_now if s.active(now)]


@pytest.mark.anyio
async def test_the_stage_mutes_as_silenced_with_the_id_once_it_has_read_the_silences() -> None:
    store = FakeStore([silence(rule="above", id="s_3f9a2c0001")])
    stage = SilenceStage(store)  # type: ignore[arg-type]
    assert stage.decide(alert(), channel(), NOW) is SEND  # nothing read yet
    await stage.prepare(NOW)
    assert store.reads == [NOW]
    assert stage.decide(alert(), channel(), NOW) == Decision.mute(
        "silence s_3f9a2c0001", status="silenced"
    )
    assert stage.decide(alert(rule="below"), channel(), NOW) is SEND


@pytest.mark.anyio
async def test_when_the_store_fails_the_stage_keeps_the_last_silences_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FakeStore([silence(symbol="LUMN")])
    stage = SilenceStage(store)  # type: ignore[arg-type]
    await stage.prepare(NOW)
    store.failing = True
    with caplog.at_level(logging.WARNING, logger="service.silences"):
        for minute in range(3):
            await stage.prepare(NOW + timedelta(minutes=minute))
        assert stage.decide(alert(), channel(), NOW).status == "silenced"
        # the last known silence still ends when it ends
        assert stage.decide(alert(at=NOW + HOUR), channel(), NOW + HOUR) is SEND
        store.failing = False
        store.silences_now = []
        await stage.prepare(NOW + timedelta(minutes=5))
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "silences cannot be read" in m]) == 1
    assert "disk I/O error" in messages[0]
    assert any("silences can be read again" in m for m in messages)
    assert stage.decide(alert(), channel(), NOW) is SEND  # the new read: none left


def test_the_silence_stage_is_first_in_the_stage_list(store: Store) -> None:
    stages = list(stages_for(Settings(_env_file=None), store))
    assert isinstance(stages[0], SilenceStage)


# --- through the real pipeline and store ------------------------------------------------------


def _pipeline(store: Store, metrics: Metrics) -> Pipeline:
    ruleset = load()
    return Pipeline(
        provider=None,  # type: ignore[arg-type]  # evaluation calls no provider
        store=store,
        data=MarketData(),
        states={},
        rules=lambda: ruleset,
        metrics=metrics,
        health=HealthState(stale_after=timedelta(hours=1)),
        stages=stages_for(Settings(_env_file=None), store),
    )


@pytest.mark.anyio
async def test_a_silenced_alert_is_recorded_silenced_on_every_channel_and_counted_once(
    store: Store, sqlite_url: str
) -> None:
    metrics = Metrics()
    pipeline = _pipeline(store, metrics)
    added = store.add_silence(
        rule="above", symbol="LUMN", ends_at=NOW + HOUR, comment="call", now=NOW - HOUR
    )
    pipeline.data.apply_quotes({"LUMN": Quote("LUMN", 7.61), "PLTR": Quote("PLTR", 7.61)}, NOW)
    assert len(await pipeline.evaluate(NOW, {"LUMN", "PLTR"})) == 2
    entries = {e.symbol: e for e in store.history(limit=5)}
    assert {(d.status, d.hold_reason) for d in entries["LUMN"].deliveries} == {
        ("silenced", f"silence {added.id}")
    }
    assert {d.status for d in entries["PLTR"].deliveries} == {"pending"}
    got = samples(metrics)
    assert got[key("earnwatch_alerts_silenced_total", rule="above")] == 1.0  # not 2 channels
    assert got[key("earnwatch_deliveries_held_total", action="mute")] == 2.0
    code, text = show_history(
        Settings(_env_file=None, database_url=sqlite_url),
        limit=5,
        rule=None,
        status="silenced",
        as_json=False,
    )
    assert code == 0 and f"silence {added.id}" in text and "PLTR" not in text


@pytest.mark.anyio
async def test_a_silence_added_or_expired_between_passes_holds_from_the_next_alert(
    store: Store,
) -> None:
    pipeline = _pipeline(store, Metrics())
    pipeline.data.apply_quotes({"LUMN": Quote("LUMN", 7.61)}, NOW)
    await pipeline.evaluate(NOW, {"LUMN"})  # fired and sent: no silence yet
    added = store.add_silence(rule="above", symbol=None, ends_at=NOW + HOUR, comment=None, now=NOW)
    later = NOW + timedelta(minutes=1)
    pipeline.data.apply_quotes({"LUMN": Quote("LUMN", 7.0)}, later)
    await pipeline.evaluate(later, {"LUMN"})  # re-armed
    later += timedelta(minutes=1)
    pipeline.data.apply_quotes({"LUMN": Quote("LUMN", 7.7)}, later)
    await pipeline.evaluate(later, {"LUMN"})  # the next crossing: silenced
    assert store.expire_silence(added.id, later) is not None
    for price in (7.0, 7.8):
        later += timedelta(minutes=1)
        pipeline.data.apply_quotes({"LUMN": Quote("LUMN", price)}, later)
        await pipeline.evaluate(later, {"LUMN"})  # after the expiry: sent again
    statuses = [{d.status for d in e.deliveries} for e in reversed(store.history(limit=5))]
    assert statuses == [{"pending"}, {"silenced"}, {"pending"}]


# --- when a silence ends (the command's parsing) ------------------------------------------------


def test_a_silence_lasts_for_a_duration_or_until_a_time_read_as_utc_without_an_offset() -> None:
    assert silence_end("2h", None, NOW) == NOW + 2 * HOUR
    assert silence_end("1d", None, NOW) == NOW + timedelta(days=1)
    assert silence_end(None, "2026-02-04T18:00:00Z", NOW) == NOW + 3 * HOUR
    assert silence_end(None, "2026-02-04T18:00:00", NOW) == NOW + 3 * HOUR
    assert silence_end(None, "2026-02-04T13:00:00-05:00", NOW) == NOW + 3 * HOUR


@pytest.mark.parametrize(
    ("for_", "until", "says"),
    [
        (None, None, "exactly one of"),
        ("2h", "2026-02-04T18:00:00Z", "exactly one of"),
        ("0s", None, "longer than 0s"),
        ("soon", None, "invalid duration"),
        (None, "tomorrow", "not an ISO 8601 time"),
        (None, "2026-02-04T14:59:59Z", "has passed"),
        (None, "2026-02-04T15:00:00Z", "has passed"),
    ],
)
def test_a_silence_that_would_not_end_in_the_future_is_refused(
    for_: str | None, until: str | None, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        silence_end(for_, until, NOW)
