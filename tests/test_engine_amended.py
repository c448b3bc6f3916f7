"""The engine's amended alerts (`notify_amended: true`): one per correction of the actuals
a rule notified for a report it fired on, judged against the figures it fired with (or
last amended to), never against figures seen before it fired; none for figures re-sent
unchanged, first known, or gone missing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from service.engine import AMENDED_SUFFIX, Alert, RuleState
from service.errors import RuleFileError
from service.market import EarningsEvent, Quote, Snapshot
from service.marketdata import MarketData
from service.notify.base import Message
from service.notify.render import render
from service.notify.webhook import payload
from service.store import Store, open_store
from tests.test_engine import Run, report, rules, with_event

BEAT = "  - name: beat\n    symbols: [LUMN]\n    when: reported and eps_actual > eps_estimate\n"
AMENDED = "    notify_amended: true\n"
NOW = datetime(2026, 2, 3, 22, 0, tzinfo=UTC)
FIRED_KEY = "beat|LUMN|report:2025Q4"


class Feed:
    """Merges provider rows through MarketData (which keeps the per-report history) and
    evaluates the engine on its snapshot, as the pipeline does."""

    def __init__(self, body: str) -> None:
        self.run = Run(rules(body))
        self.data = MarketData()
        self.data.apply_quotes({"LUMN": Quote("LUMN", 8.46)}, NOW)
        self.steps = 0

    def feed(self, event: EarningsEvent, days_later: int = 0) -> int:
        self.steps += 1
        day = event.date
        self.data.apply_events(
            [event], ["LUMN"], day - timedelta(days=10), day + timedelta(days=10)
        )
        now = NOW + timedelta(days=days_later, minutes=self.steps)
        return self.run.feed(self.data.snapshots(["LUMN"]), now)

    def of(self, kind: str) -> list[Alert]:
        return [a for a in self.run.alerts if a.kind == kind]


def test_a_correction_after_the_alert_sends_one_amended_alert_naming_the_fired_one() -> None:
    feed = Feed(BEAT + AMENDED)
    assert feed.feed(report()) == 0
    assert feed.feed(report(eps=0.23, revenue=3.041e9)) == 1
    assert feed.feed(report(eps=0.25, revenue=3.041e9)) == 1
    # the corrected figures polled again: nothing more, not even a duplicate to drop
    assert [feed.feed(report(eps=0.25, revenue=3.041e9)) for _ in range(3)] == [0, 0, 0]
    fired, amended = feed.run.alerts
    assert (fired.kind, amended.kind) == ("fired", "amended")
    assert fired.dedup_key == FIRED_KEY
    assert amended.resolves_key == fired.dedup_key
    assert amended.dedup_key == (
        FIRED_KEY + AMENDED_SUFFIX + "|0.23->0.25,3041000000.0->3041000000.0"
    )
    assert amended.text == "AMENDED: LUMN: beat: EPS 0.23 -> 0.25, revenue 3.041B"
    assert amended.values["eps_actual"] == 0.25
    assert amended.values["eps_actual_previous"] == 0.23
    assert amended.values["revenue_actual_previous"] == 3.041e9
    assert amended.report_key == "2025Q4"
    assert render(amended, "alt_2").title == "LUMN · beat amended"


def test_figures_corrected_before_the_rule_fired_are_not_an_amendment() -> None:
    # first seen as a miss (no alert), corrected to a beat: the rule fires on the
    # corrected figures, and that is what later figures are compared with
    feed = Feed(BEAT + AMENDED)
    assert feed.feed(report(eps=-0.30, revenue=3.041e9)) == 0
    assert feed.feed(report(eps=0.25, revenue=3.041e9)) == 1
    assert [feed.feed(report(eps=0.25, revenue=3.041e9)) for _ in range(3)] == [0, 0, 0]
    assert [a.kind for a in feed.run.alerts] == ["fired"]
    assert feed.run.alerts[0].values["eps_actual"] == 0.25


def test_a_second_correction_sends_a_second_amended_alert_from_the_amended_figures() -> None:
    feed = Feed(BEAT + AMENDED)
    feed.feed(report(eps=0.23, revenue=3.041e9))
    assert feed.feed(report(eps=0.25, revenue=3.041e9)) == 1
    assert feed.feed(report(eps=0.25, revenue=3.041e9)) == 0
    assert feed.feed(report(eps=0.27, revenue=3.05e9)) == 1
    first, second = feed.of("amended")
    assert second.text == "AMENDED: LUMN: beat: EPS 0.25 -> 0.27, revenue 3.041B -> 3.05B"
    assert second.values["eps_actual_previous"] == 0.25
    assert first.resolves_key == second.resolves_key == FIRED_KEY  # both amend the alert
    assert first.dedup_key != second.dedup_key


def test_a_correction_that_makes_the_condition_false_is_still_sent() -> None:
    # the first alert was wrong: the beat was a miss (the rule re-arms, fires no more)
    feed = Feed(BEAT + AMENDED)
    feed.feed(report(eps=0.23, revenue=3.041e9))
    assert feed.feed(report(eps=-0.30, revenue=3.041e9)) == 1
    assert feed.feed(report(eps=0.23, revenue=3.041e9)) == 1  # and back: one more
    assert [a.kind for a in feed.run.alerts] == ["fired", "amended", "amended"]
    assert feed.of("amended")[0].text == "AMENDED: LUMN: beat: EPS 0.23 -> -0.3, revenue 3.041B"


def test_a_figure_known_for_the_first_time_is_no_correction_but_its_change_is() -> None:
    feed = Feed(BEAT + AMENDED)
    assert feed.feed(report(eps=0.23)) == 1
    assert feed.feed(report(eps=0.23, revenue=3.041e9)) == 0  # revenue arrives: no alert
    assert feed.feed(report(eps=0.23, revenue=3.05e9)) == 1  # revenue corrected
    [amended] = feed.of("amended")
    assert amended.text == "AMENDED: LUMN: beat: EPS 0.23, revenue 3.041B -> 3.05B"


def test_a_figure_that_disappears_changes_nothing() -> None:
    # MarketData keeps a known actual when a newer row lacks it; the engine does not rely
    # on that: figures going unknown neither alert nor forget what was notified
    run = Run(rules(BEAT + AMENDED))
    times = iter(NOW + timedelta(minutes=i) for i in range(10))
    assert run.feed(with_event(report(eps=0.23, revenue=3.041e9)), next(times)) == 1
    assert run.feed(with_event(report(eps=None, revenue=None)), next(times)) == 0
    assert run.feed(with_event(report(eps=0.23, revenue=None)), next(times)) == 0
    assert run.feed(with_event(report(eps=0.23, revenue=3.041e9)), next(times)) == 0
    assert run.feed(with_event(report(eps=0.24, revenue=None)), next(times)) == 1
    [amended] = [a for a in run.alerts if a.kind == "amended"]
    assert amended.text == "AMENDED: LUMN: beat: EPS 0.23 -> 0.24, revenue 3.041B"


def test_no_amended_alert_without_a_firing_or_without_notify_amended() -> None:
    feed = Feed(BEAT + AMENDED)
    assert feed.feed(report(eps=-0.30, revenue=3.041e9)) == 0  # a miss: never fired
    assert feed.feed(report(eps=-0.31, revenue=3.041e9)) == 0
    for extra in ("", "    notify_amended: false\n"):
        feed = Feed(BEAT + extra)
        feed.feed(report(eps=0.23, revenue=3.041e9))
        assert feed.feed(report(eps=0.25, revenue=3.041e9)) == 0
        assert [a.kind for a in feed.run.alerts] == ["fired"]
        assert feed.run.states[("beat", "LUMN")].eps_notified is None  # nothing tracked


def test_the_next_report_is_compared_with_its_own_firing_not_the_last_one() -> None:
    feed = Feed(BEAT + AMENDED)
    feed.feed(report(eps=0.23, revenue=3.041e9))
    q1 = {"date": date(2026, 5, 5), "fiscal_year": 2026, "fiscal_quarter": 1}
    assert feed.feed(report(**q1), 90) == 0  # the next report, no actuals yet
    assert feed.feed(report(eps=0.10, revenue=3.0e9, **q1), 91) == 1  # it fires on it
    assert [a.kind for a in feed.run.alerts] == ["fired", "fired"]
    assert feed.feed(report(eps=0.11, revenue=3.0e9, **q1), 91) == 1
    amended = feed.of("amended")[0]
    assert amended.resolves_key == "beat|LUMN|report:2026Q1"
    assert amended.text == "AMENDED: LUMN: beat: EPS 0.1 -> 0.11, revenue 3B"


def test_an_urgent_rule_sends_an_urgent_amended_alert() -> None:
    feed = Feed(BEAT + AMENDED + "    urgent: true\n")
    feed.feed(report(eps=0.23, revenue=3.041e9))
    feed.feed(report(eps=0.25, revenue=3.041e9))
    assert [a.urgent for a in feed.run.alerts] == [True, True]


def test_the_webhook_payload_of_an_amended_message() -> None:
    message = Message(
        id="alt_2",
        rule="beat",
        symbol="LUMN",
        title="LUMN · beat amended",
        text="AMENDED: LUMN: beat: EPS 0.23 -> 0.25",
        fired_at=NOW,
        values={"eps_actual": 0.25, "eps_actual_previous": 0.23},
        kind="amended",
        amends="alt_1",
    )
    body = json.loads(payload(message))
    assert body["type"] == "alert.amended"
    assert body["amends"] == "alt_1"
    assert list(body)[-1] == "amends"
    assert body["values"] == {"eps_actual": 0.25, "eps_actual_previous": 0.23}
    assert "resolves" not in body
    assert Message.from_json(message.to_json()) == message


# --- across restarts: the figures notified are part of the stored rule state -----------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Store]:
    url = sqlite_url if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))
    opened = open_store(url)
    yield opened
    opened.close()


def test_the_figures_notified_survive_a_restart_and_the_correction_is_not_sent_twice(
    store: Store,
) -> None:
    def snap(eps: float) -> dict[str, Snapshot]:
        return with_event(report(eps=eps, revenue=3.041e9))

    ruleset = rules(BEAT + AMENDED)
    run = Run(ruleset)
    assert run.feed(snap(0.23), NOW) == 1
    store.save_states(run.states)
    state = store.load_states()[("beat", "LUMN")]
    assert (state.eps_notified, state.revenue_notified) == (0.23, 3.041e9)
    assert state == run.states[("beat", "LUMN")]
    # a restarted daemon (or the next leader) sees the correction: one amended alert
    again = Run(ruleset)
    again.states = store.load_states()
    assert again.feed(snap(0.25), NOW + timedelta(minutes=5)) == 1
    store.save_states(again.states)
    # and once more after the next restart: the correction was already sent
    third = Run(ruleset)
    third.states = store.load_states()
    assert third.feed(snap(0.25), NOW + timedelta(minutes=10)) == 0
    assert store.load_states()[("beat", "LUMN")] == RuleState(
        fingerprint=state.fingerprint,
        armed=False,
        last_fired=NOW,
        last_report="2025Q4",
        fired=1,
        eps_notified=0.25,
        revenue_notified=3.041e9,
    )


# --- the rule file -----------------------------------------------------------------------


def test_notify_amended_on_a_rule_that_reads_no_earnings_variable_is_refused() -> None:
    with pytest.raises(RuleFileError) as caught:
        rules("  - name: above\n    symbols: [LUMN]\n    when: price > 7.56\n" + AMENDED)
    text = str(caught.value)
    assert "notify_amended" in text and "earnings variable" in text
    assert rules(BEAT + AMENDED).rules[0].notify_amended is True


def test_the_same_correction_seen_twice_is_sent_once() -> None:
    # figures flipping between two rows: 0.23 -> 0.25 -> 0.23 -> 0.25; the third change
    # derives the first one's key, which the store keeps once
    feed = Feed(BEAT + AMENDED)
    for value in (0.23, 0.25, 0.23, 0.25):
        feed.feed(report(eps=value, revenue=3.041e9))
    keys = [a.dedup_key for a in feed.of("amended")]
    assert len(keys) == 3 and keys[0] == keys[2] and len(set(keys)) == 2


def test_a_figure_that_is_not_a_finite_number_is_unknown_never_a_correction() -> None:
    run = Run(rules(BEAT + AMENDED))
    times = iter(NOW + timedelta(minutes=i) for i in range(5))
    assert run.feed(with_event(report(eps=0.23, revenue=3.041e9)), next(times)) == 1
    for _ in range(2):
        assert run.feed(with_event(report(eps=float("nan"), revenue=3.041e9)), next(times)) == 0
    assert run.states[("beat", "LUMN")].eps_notified == 0.23
