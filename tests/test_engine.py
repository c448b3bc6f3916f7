"""The engine: edge triggering, hysteresis, for, cooldown, once per report, unknowns."""

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine import RuleState, evaluate
from service.market import EarningsEvent, Quote, ReportTime, Snapshot
from service.rules import RuleSet
from tests.rules.conftest import load

T0 = datetime(2026, 2, 3, 15, 0, tzinfo=UTC)


def rules(body: str) -> RuleSet:
    return load("rules:\n" + body)


def price_rule(extra: str = "") -> RuleSet:
    return rules("  - name: above\n    symbols: [LUMN]\n    when: price > 7.56\n" + extra)


def quote(price: float | None) -> dict[str, Snapshot]:
    return {"LUMN": Snapshot("LUMN", quote=Quote("LUMN", price, prev_close=8.93))}


class Run:
    """Feeds snapshots through the engine as the pipeline would, keeping the states."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.states: dict[tuple[str, str], RuleState] = {}
        self.alerts: list = []

    def feed(self, snapshots: dict[str, Snapshot], now: datetime) -> int:
        result = evaluate(self.ruleset, snapshots, self.states, now)
        self.states.update(result.states)
        self.alerts.extend(result.alerts)
        return len(result.alerts)


def walk(run: Run, prices: list[float | None], step: timedelta = timedelta(minutes=5)) -> list[int]:
    return [run.feed(quote(p), T0 + i * step) for i, p in enumerate(prices)]


def test_crossing_up_down_up_fires_twice_without_cooldown() -> None:
    run = Run(price_rule())
    assert walk(run, [7.0, 7.6, 7.7, 7.5, 7.6]) == [0, 1, 0, 0, 1]
    assert len({a.dedup_key for a in run.alerts}) == 2


def test_crossing_up_down_up_fires_once_with_a_4h_cooldown() -> None:
    run = Run(price_rule("    cooldown: 4h\n"))
    assert walk(run, [7.0, 7.6, 7.5, 7.6, 7.5]) == [0, 1, 0, 0, 0]
    later = T0 + timedelta(hours=5)
    assert run.feed(quote(7.5), later) == 0
    assert run.feed(quote(7.6), later + timedelta(minutes=1)) == 1


def test_clear_when_holds_re_arming_until_it_is_true() -> None:
    run = Run(price_rule("    clear_when: price < 7.40\n"))
    assert walk(run, [7.6, 7.5, 7.6, 7.45, 7.7, 7.3, 7.6]) == [1, 0, 0, 0, 0, 0, 1]


def test_for_fires_only_after_the_condition_held_that_long() -> None:
    run = Run(price_rule("    for: 10m\n"))
    minute = timedelta(minutes=1)
    assert [run.feed(quote(7.6), T0 + i * minute) for i in range(10)] == [0] * 10
    assert run.feed(quote(7.6), T0 + 10 * minute) == 1
    assert run.feed(quote(7.6), T0 + 11 * minute) == 0


def test_for_restarts_when_the_condition_breaks_or_turns_unknown() -> None:
    run = Run(price_rule("    for: 10m\n"))
    minute = timedelta(minutes=1)
    for i, p in enumerate([7.6, 7.6, 7.5, 7.6, None, 7.6]):
        run.feed(quote(p), T0 + i * minute)
    assert run.feed(quote(7.6), T0 + 14 * minute) == 0  # held 9 minutes since 5
    assert run.feed(quote(7.6), T0 + 15 * minute) == 1


def test_a_missing_price_never_fires_and_never_re_arms() -> None:
    run = Run(price_rule())
    assert walk(run, [None, None, 7.6, None, 7.6, None, 7.7]) == [0, 0, 1, 0, 0, 0, 0]
    assert run.feed({}, T0 + timedelta(hours=1)) == 0  # no snapshot at all


def report(eps: float | None = None, revenue: float | None = None, **kw: object) -> EarningsEvent:
    fields = {
        "symbol": "LUMN",
        "date": date(2026, 2, 3),
        "time": ReportTime.AMC,
        "fiscal_year": 2025,
        "fiscal_quarter": 4,
        "eps_estimate": -0.21,
        "eps_actual": eps,
        "revenue_estimate": 3.08e9,
        "revenue_actual": revenue,
    }
    fields.update(kw)
    return EarningsEvent(**fields)  # type: ignore[arg-type]


def with_event(event: EarningsEvent, price: float | None = 8.46) -> dict[str, Snapshot]:
    return {"LUMN": Snapshot("LUMN", quote=Quote("LUMN", price), events=(event,))}


MISS = "  - name: miss\n    symbols: [LUMN]\n    when: reported and eps_actual < eps_estimate\n"


def test_a_reported_miss_fires_once_per_report_however_often_evaluated() -> None:
    run = Run(rules(MISS))
    now = datetime(2026, 2, 3, 22, 0, tzinfo=UTC)
    assert run.feed(with_event(report()), now) == 0  # not reported yet
    missed = report(eps=-0.30, revenue=3.041e9)
    fired = [run.feed(with_event(missed), now + timedelta(minutes=i)) for i in range(1, 50)]
    assert sum(fired) == 1
    # the estimate flaps so the condition goes false and true again: still the same report
    run.feed(with_event(report(eps=-0.30, revenue=3.041e9, eps_estimate=-0.40)), now)
    run.feed(with_event(missed), now + timedelta(hours=1))
    # a re-dated duplicate row of the same fiscal period is the same report
    run.feed(with_event(report(eps=-0.3, revenue=3.041e9, date=date(2026, 2, 4))), now)
    assert len(run.alerts) == 1
    alert = run.alerts[0]
    assert alert.dedup_key == "miss|LUMN|report:2025Q4" and alert.report_key == "2025Q4"
    assert "eps_actual -0.3" in alert.text and "eps_estimate -0.21" in alert.text


def test_the_next_report_fires_again() -> None:
    run = Run(rules(MISS))
    run.feed(with_event(report(eps=-0.3)), datetime(2026, 2, 4, tzinfo=UTC))
    q1 = report(eps=-0.5, date=date(2026, 5, 5), fiscal_year=2026, fiscal_quarter=1)
    run.feed(with_event(q1), datetime(2026, 5, 5, 22, tzinfo=UTC))
    assert [a.report_key for a in run.alerts] == ["2025Q4", "2026Q1"]


def test_a_null_estimate_or_no_earnings_data_never_fires() -> None:
    run = Run(rules(MISS + "  - name: soon\n    symbols: [LUMN]\n    when: not reported\n"))
    now = datetime(2026, 2, 3, 22, 0, tzinfo=UTC)
    assert run.feed(with_event(report(eps=-0.3, eps_estimate=None)), now) == 0
    assert run.feed({"LUMN": Snapshot("LUMN", quote=Quote("LUMN", 8.0))}, now) == 0


def test_lumn_q4_2025_beat_on_eps_and_missed_on_revenue() -> None:
    run = Run(
        load((__import__("pathlib").Path(__file__).parent / "rules/testdata/good.yaml").read_text())
    )
    now = datetime(2026, 2, 3, 21, 30, tzinfo=UTC)
    run.feed(with_event(report(eps=0.23, revenue=3.041e9)), now)
    assert [a.rule for a in run.alerts] == ["lumn-feb3-miss-only", "lumn-above-target"]
    feb3 = run.alerts[0]
    assert round(feb3.values["eps_surprise_pct"], 2) == 209.52  # type: ignore[arg-type]
    assert round(feb3.values["revenue_surprise_pct"], 2) == -1.27  # type: ignore[arg-type]


def test_the_reminder_fires_the_day_before_and_once() -> None:
    run = Run(
        rules(
            "  - name: soon\n    symbols: [LUMN]\n    when: not reported and hours_to_earnings <= 24\n"
        )
    )
    event = with_event(report())
    start = datetime(2026, 2, 1, 21, 0, tzinfo=UTC)  # report at 2026-02-03 21:00 UTC (16:00 ET)
    fired = [run.feed(event, start + timedelta(hours=h)) for h in range(0, 48)]
    assert fired.index(1) == 24 and sum(fired) == 1


def test_states_carried_across_a_restart_never_re_fire() -> None:
    first = Run(price_rule())
    walk(first, [7.6])
    second = Run(price_rule())
    second.states = dict(first.states)
    assert walk(second, [7.7, 7.8]) == [0, 0]


def test_a_changed_condition_starts_afresh_but_an_unchanged_one_keeps_state() -> None:
    run = Run(price_rule())
    walk(run, [7.6])
    run.ruleset = price_rule("    message: now {{ price }}\n")
    assert walk(run, [7.7]) == [0]
    run.ruleset = rules("  - name: above\n    symbols: [LUMN]\n    when: price > 7.0\n")
    assert walk(run, [7.7]) == [1]


def test_evaluating_only_changed_symbols_gives_the_same_alerts() -> None:
    ruleset = rules(
        "  - name: r\n    symbols: [AAA, BBB]\n    when: price > 10\n"
        "  - name: soon\n    symbols: [AAA, BBB]\n    when: not reported and hours_to_earnings <= 24\n"
    )
    event = EarningsEvent("BBB", date(2026, 2, 4), ReportTime.BMO)
    snaps = {
        "AAA": Snapshot("AAA", quote=Quote("AAA", 11.0)),
        "BBB": Snapshot("BBB", quote=Quote("BBB", 12.0), events=(event,)),
    }
    full = evaluate(ruleset, snaps, {}, T0)
    partial = evaluate(ruleset, snaps, {}, T0, changed={"AAA"})
    at = "|1|2026-02-03T15:00:00.000000+00:00"
    assert {a.dedup_key for a in full.alerts} == {
        "r|AAA|" + ruleset.rules[0].fingerprint + at,
        "r|BBB|" + ruleset.rules[0].fingerprint + at,
        "soon|BBB|report:2026-02-04",
    }
    # BBB's price rule is skipped (no new data); its time-dependent reminder is not
    assert {(a.rule, a.symbol) for a in partial.alerts} == {("r", "AAA"), ("soon", "BBB")}
    assert partial.evaluated == 3


def reference_crossings(prices: list[float | None], threshold: float) -> list[int]:
    """The simplest model: fire on each move from not-above (or the start) to above;
    unknown prices are skipped entirely."""
    fired, armed = [], True
    for i, p in enumerate(prices):
        if p is None:
            continue
        if p > threshold and armed:
            fired.append(i)
            armed = False
        elif p <= threshold:
            armed = True
    return fired


prices = st.lists(
    st.one_of(st.none(), st.floats(min_value=6.0, max_value=9.0, allow_nan=False)),
    min_size=1,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(prices)
def test_alerts_match_a_reference_model_of_crossings(path: list[float | None]) -> None:
    run = Run(price_rule())
    fired = [i for i, n in enumerate(walk(run, path)) if n]
    assert fired == reference_crossings(path, 7.56)
    assert all(path[i] is not None for i in fired)


@settings(max_examples=200, deadline=None)
@given(
    prices,
    st.sampled_from(["", "    cooldown: 1h\n", "    for: 10m\n", "    clear_when: price < 7\n"]),
)
def test_nothing_ever_fires_on_an_unknown_value(path: list[float | None], extra: str) -> None:
    run = Run(price_rule(extra))
    counts = walk(run, path)
    assert all(path[i] is not None for i, n in enumerate(counts) if n)
    assert len(run.alerts) <= len(reference_crossings(path, 7.56))


def test_a_rule_can_read_the_session_and_is_evaluated_as_the_clock_moves() -> None:
    from service.market import variables

    snapshot = Snapshot("LUMN", quote=Quote("LUMN", 7.61))
    after_hours = datetime(2026, 2, 3, 21, 30, tzinfo=UTC)  # 16:30 New York
    assert variables(snapshot, after_hours)["session"] == "post"
    assert variables(snapshot, after_hours)["price"] == 7.61  # an after-hours trade counts
    ruleset = load(
        'channels: {hook: {type: webhook, url: "https://example.com/h"}}\n'
        "rules:\n"
        "  - name: regular-only\n"
        "    symbols: [LUMN]\n"
        '    when: price > 7.56 and session == "regular"\n'
        "    notify: [hook]\n"
    )
    assert ruleset.rules[0].time_dependent
    regular = datetime(2026, 2, 4, 15, 0, tzinfo=UTC)  # 10:00 New York
    fired = evaluate(ruleset, {"LUMN": snapshot}, {}, after_hours)
    assert fired.alerts == []
    assert [a.rule for a in evaluate(ruleset, {"LUMN": snapshot}, {}, regular).alerts] == [
        "regular-only"
    ]
