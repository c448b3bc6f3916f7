"""`service/explain.py`: the verdict and state of a rule for one symbol, from states the
real engine produced, and agreement with the engine on whether it fires now."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine import RuleState, amend, step
from service.explain import Held, explain, explain_digest, state_text
from service.market import EarningsEvent, Quote, ReportTime, variables
from service.marketdata import MarketData
from service.rules import CompiledRule
from tests.rules.conftest import load

T0 = datetime(2026, 2, 4, 16, 30, tzinfo=UTC)


def rule(body: str) -> CompiledRule:
    (compiled,) = load("rules:\n" + body).rules
    return compiled


def priced(price: float | None, at: datetime = T0) -> MarketData:
    return MarketData(quotes={"LUMN": Quote("LUMN", price, 8.46, time=at)})


def run(r: CompiledRule, prices: list[float | None], every: timedelta) -> RuleState | None:
    """The state the engine reaches after one evaluation per price."""
    state: RuleState | None = None
    for i, price in enumerate(prices):
        now = T0 + i * every
        state = step(r, state, variables(priced(price).snapshot("LUMN"), now), now)[0]
    return state


@dataclass(frozen=True)
class Silence:
    id: str
    rule: str | None
    symbol: str | None
    starts_at: datetime
    ends_at: datetime


ABOVE = "  - {name: above, symbols: [LUMN], when: price > 7.56"


def test_an_armed_true_rule_would_fire_now_and_ages_come_from_the_quote() -> None:
    e = explain(rule(ABOVE + "}"), "LUMN", priced(8.0, T0 - timedelta(seconds=90)), None, T0)
    assert e.verdict == "would fire now"
    assert e.values["price"].value == 8.0 and e.values["price"].age == timedelta(seconds=90)
    assert state_text(e) == ["armed (no stored state)"]


def test_a_fired_rule_re_arms_by_clear_when_or_when_false() -> None:
    hysteresis = rule(ABOVE + ", clear_when: price < 7.40}")
    state = run(hysteresis, [8.0], timedelta(minutes=1))
    e = explain(hysteresis, "LUMN", priced(7.5), state, T0 + timedelta(minutes=1))
    assert e.verdict == "fired at 2026-02-04 16:30Z, re-arms when price < 7.40"
    e = explain(hysteresis, "LUMN", priced(7.3), state, T0 + timedelta(minutes=1))
    assert e.verdict.endswith("re-arms at the next evaluation (price < 7.40 is true)")
    plain = rule(ABOVE + "}")
    e = explain(plain, "LUMN", priced(8.1), run(plain, [8.0], timedelta(minutes=1)), T0)
    assert e.verdict == "fired at 2026-02-04 16:30Z, re-arms when the condition turns false"


def test_a_running_for_shows_the_time_left() -> None:
    held = rule(ABOVE + ", for: 10m}")
    state = run(held, [8.0], timedelta(minutes=1))
    assert state is not None and state.pending_since == T0
    e = explain(held, "LUMN", priced(8.0), state, T0 + timedelta(minutes=3))
    assert e.verdict == "pending for 7m more" and e.pending_left == timedelta(minutes=7)
    assert "pending since 2026-02-04 16:30Z (7m of 10m left)" in state_text(e)
    assert explain(held, "LUMN", priced(8.0), None, T0).verdict.startswith("true: fires once")


def test_cooldown_names_its_end() -> None:
    cooled = rule(ABOVE + ", cooldown: 4h}")
    state = run(cooled, [8.0, 7.0], timedelta(minutes=5))
    e = explain(cooled, "LUMN", priced(8.0), state, T0 + timedelta(minutes=10))
    assert e.verdict == "in cooldown until 2026-02-04 20:30Z"
    assert "in cooldown until 2026-02-04 20:30Z" in state_text(e)


def test_a_matching_silence_and_a_deferred_delivery_are_shown() -> None:
    r = rule(ABOVE + "}")
    hour = timedelta(hours=1)
    silences = [
        Silence("s_other", "other-rule", None, T0 - hour, T0 + hour),
        Silence("s_gone", None, "LUMN", T0 - 2 * hour, T0 - hour),
        Silence("s_1", "above", "lumn", T0 - hour, T0 + hour),
    ]
    held = [Held("me", T0 + 2 * hour, "quiet hours of me")]
    e = explain(r, "LUMN", priced(8.0), None, T0, silences=silences, deferred=held)
    assert [s.id for s in e.silences] == ["s_1"]
    assert e.verdict == "would fire now, but its alert is silenced by s_1 until 2026-02-04 17:30Z"
    facts = state_text(e)
    assert "silenced by s_1 until 2026-02-04 17:30Z" in facts
    assert "a delivery to me is deferred until 2026-02-04 18:30Z: quiet hours of me" in facts


def test_an_earnings_rule_that_fired_for_a_report_waits_for_the_next() -> None:
    miss = rule("  - {name: miss, symbols: [LUMN], when: reported and eps_actual < eps_estimate}")

    def report(quarter: int, day: date) -> MarketData:
        event = EarningsEvent(
            "LUMN", day, ReportTime.AMC, 2025, quarter, eps_estimate=-0.21, eps_actual=-0.3
        )
        return MarketData(events={"LUMN": (event,)})

    now = datetime(2026, 2, 4, 15, 0, tzinfo=UTC)
    q4 = report(4, date(2026, 2, 3))
    state = step(miss, None, variables(q4.snapshot("LUMN"), now), now)[0]
    e = explain(miss, "LUMN", q4, state, now)
    assert e.verdict == (
        "fired at 2026-02-04 15:00Z, re-arms when the condition turns false, "
        "or with the next report"
    )
    assert "last alerted report 2025Q4" in state_text(e)
    q1 = report(1, date(2026, 2, 4))
    e = explain(miss, "LUMN", q1, state, now)
    assert e.verdict == "would fire now" and "report 2025Q1 is new: it re-arms the rule" in e.notes


def test_a_state_of_an_earlier_definition_starts_afresh() -> None:
    r = rule(ABOVE + "}")
    old = RuleState(fingerprint="earlier", armed=False, last_fired=T0)
    e = explain(r, "LUMN", priced(8.0), old, T0)
    assert e.verdict == "would fire now" and not e.stored
    assert any("earlier version" in fact for fact in state_text(e))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.sampled_from([7.0, 7.5, 8.0])), min_size=1, max_size=12),
    st.sampled_from(
        [", for: 10m", ", cooldown: 20m", ", clear_when: price < 7.40", ", for: 5m, cooldown: 1h"]
    ),
)
def test_would_fire_now_exactly_when_the_engine_fires(
    prices: list[float | None], extra: str
) -> None:
    r = rule(ABOVE + extra + "}")
    state: RuleState | None = None
    for i, price in enumerate(prices):
        now = T0 + i * timedelta(minutes=4)
        data = priced(price)
        verdict = explain(r, "LUMN", data, state, now).verdict
        state, fired, _error = step(r, state, variables(data.snapshot("LUMN"), now), now)
        assert (verdict == "would fire now") is fired, (prices, i, verdict)


def test_a_notify_amended_rule_shows_the_figures_sent_and_a_correction_that_waits() -> None:
    beat = rule(
        "  - {name: beat, symbols: [LUMN], when: reported and eps_actual > eps_estimate,"
        " notify_amended: true}"
    )

    def reported(eps: float) -> MarketData:
        event = EarningsEvent(
            "LUMN",
            date(2026, 2, 3),
            ReportTime.AMC,
            2025,
            4,
            eps_estimate=-0.21,
            eps_actual=eps,
            revenue_actual=3.041e9,
        )
        return MarketData(events={"LUMN": (event,)})

    now = datetime(2026, 2, 4, 15, 0, tzinfo=UTC)
    first = variables(reported(0.23).snapshot("LUMN"), now)
    # the engine's pass: the step fires, and the firing records the figures it sent
    state, fires = step(beat, None, first, now)[:2]
    assert fires
    state = amend(beat, "LUMN", state, True, first, now)[0]

    e = explain(beat, "LUMN", reported(0.23), state, now)
    assert e.correction is None
    assert "figures last sent: EPS 0.23, revenue 3.041B (no correction since)" in state_text(e)

    later = now + timedelta(minutes=5)
    e = explain(beat, "LUMN", reported(0.25), state, later)
    assert e.correction == "AMENDED: LUMN: beat: EPS 0.23 -> 0.25, revenue 3.041B"
    lines = state_text(e)
    assert "figures last sent: EPS 0.23, revenue 3.041B" in lines
    assert (
        "a correction waits: the next evaluation sends"
        " 'AMENDED: LUMN: beat: EPS 0.23 -> 0.25, revenue 3.041B'" in lines
    )
    # the engine agrees: its pass on those values sends that very message
    _, amended = amend(
        beat, "LUMN", state, False, variables(reported(0.25).snapshot("LUMN"), later), later
    )
    assert amended is not None and amended.text == e.correction

    plain = explain(rule(ABOVE + "}"), "LUMN", priced(8.0), None, T0)
    assert plain.sent == () and plain.correction is None
    assert not any(line.startswith("figures last sent") for line in state_text(plain))


def test_a_digest_explains_its_next_firing_with_the_message_it_would_send() -> None:
    (digest,) = load(
        'rules:\n  - name: week-ahead\n    symbols: [LUMN, PLTR]\n    digest: "0 8 * * mon"\n'
    ).digests
    lumn = EarningsEvent("LUMN", date(2026, 2, 10), ReportTime.AMC, 2025, 4, eps_estimate=-0.21)
    data = MarketData(events={"LUMN": (lumn,)})
    now = datetime(2026, 2, 4, 15, 0, tzinfo=UTC)  # a Wednesday
    e = explain_digest(digest, data, now)
    assert e.next_firing == datetime(2026, 2, 9, 13, 0, tzinfo=UTC)  # Monday 08:00 EST
    assert e.verdict == "sends 1 report at 2026-02-09 08:00 EST (13:00Z)"
    assert e.message == (
        "week-ahead: 1 report in the 7 days from 2026-02-09 08:00 EST\n"
        "LUMN 2026-02-10 (Tue), amc, 2025Q4, EPS est -0.21, revenue est n/a"
    )
    # a silence over the firing mutes it; one that ends before it does not
    over = Silence("s1", "week-ahead", None, now, now + timedelta(days=7))
    short = Silence("s2", None, None, now, now + timedelta(days=1))
    muted = explain_digest(digest, data, now, silences=[over, short])
    assert muted.verdict.endswith(", but it is silenced by s1 until 2026-02-11 15:00Z")
    # as the daemon's silence stage matches a digest's alert: by the symbols it lists
    listed = Silence("s3", None, "LUMN", now, now + timedelta(days=7))
    assert explain_digest(digest, data, now, silences=[listed]).silences == (listed,)
    other = Silence("s4", None, "PLTR", now, now + timedelta(days=7))
    assert explain_digest(digest, data, now, silences=[other]).silences == ()
    # nothing in the window: nothing to send, and it says so
    later = MarketData(events={"LUMN": (replace(lumn, date=date(2026, 3, 3)),)})
    empty = explain_digest(digest, later, now)
    assert empty.message is None and empty.reports == 0
    assert empty.verdict == (
        "sends nothing at 2026-02-09 08:00 EST (13:00Z): no report of its symbols falls in"
        " the 7 days from then (as the calendar stands)"
    )
