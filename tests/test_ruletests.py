"""The rule-test runner (`service/ruletests.py`): the real engine over a grid of steps,
fed the way the daemon feeds it."""

from service.rules import RuleSet
from service.rules.testfile import RuleTest, load_tests
from service.ruletests import Outcome, report_lines, run_test, unknown_rules
from tests.rules.conftest import load


def _test(body: str) -> RuleTest:
    text = "rule_files: [r.yaml]\ntests:\n  - name: t\n    start: 2026-02-10T14:30:00Z\n" + body
    (test,) = load_tests(text, source="t.yaml").tests
    return test


def _fired(outcome: Outcome) -> list[tuple[int, str, str]]:
    found = [(f.step, f.rule, f.symbol) for _, f in outcome.matched]
    return sorted(found + [(f.step, f.rule, f.symbol) for f in outcome.unexpected])


def _rules(body: str) -> RuleSet:
    return load("rules:\n" + body)


HOLD_AND_COOLDOWN = _rules(
    "  - name: drop\n    symbols: [LUMN]\n    when: price < 7\n    for: 3m\n    cooldown: 10m\n"
)


def test_for_must_hold_and_cooldown_swallows_a_second_crossing() -> None:
    # 0..3m below for 3m: fires at 3m; back above at 4m; below again from 5m, held 3m at
    # 8m but inside the 10m cooldown of 3m: swallowed; above at 11m re-arms; below from
    # 12m, held 3m at 15m, 12m after the last alert: fires.
    test = _test(
        "    interval: 1m\n"
        '    series: {LUMN: {price: "6.9x4 7.1 6.9x6 7.2 6.9x5"}}\n'
        "    expect:\n"
        "      - {at: 3m, rule: drop, symbol: LUMN}\n"
        "      - {at: 15m, rule: drop, symbol: LUMN}\n"
    )
    outcome = run_test(test, [HOLD_AND_COOLDOWN])
    assert outcome.passed, report_lines(outcome)
    assert _fired(outcome) == [(3, "drop", "LUMN"), (15, "drop", "LUMN")]


def test_a_break_in_the_condition_restarts_for() -> None:
    test = _test('    interval: 1m\n    series: {LUMN: {price: "6.9 6.9 7.5 6.9 6.9 6.9"}}\n')
    outcome = run_test(test, [HOLD_AND_COOLDOWN])
    assert _fired(outcome) == []  # 3..5m holds only 2m
    assert report_lines(outcome) == ["ok    t"]


def test_an_unknown_price_keeps_the_last_one_as_in_the_daemon() -> None:
    # A step whose price is `_` sends no quote (a provider that gave none): the last price
    # stays, so `for` goes on; an unknown target makes `price < target_median` unknown.
    ruleset = _rules(
        "  - name: drop\n    symbols: [LUMN]\n    when: price < 7\n    for: 2m\n"
        "  - name: below\n    symbols: [LUMN]\n    when: price < target_median\n"
    )
    test = _test(
        '    interval: 1m\n    series: {LUMN: {price: "6.9 _ 6.9", target_median: "_ _ 8"}}\n'
    )
    outcome = run_test(test, [ruleset])
    assert _fired(outcome) == [(2, "below", "LUMN"), (2, "drop", "LUMN")]


def test_an_unexpected_alert_and_a_wrong_message_fail_with_a_diff() -> None:
    ruleset = _rules(
        "  - name: up\n    symbols: [LUMN]\n    when: price > 7.56\n"
        "    message: '{{ symbol }} at {{ price | money }}'\n"
    )
    test = _test(
        "    interval: 30s\n"
        '    series: {LUMN: {price: "7.5 7.6 7.5 7.7"}}\n'
        "    expect:\n"
        "      - {at: 30s, rule: up, symbol: LUMN, message: LUMN at $7.60}\n"
    )
    outcome = run_test(test, [ruleset])
    assert not outcome.passed
    assert report_lines(outcome) == [
        "FAIL  t",
        "        matched     30s  up  LUMN",
        '      + got         90s  up  LUMN "LUMN at $7.70"',
    ]
    wrong = _test(
        test_text := (
            "    interval: 30s\n"
            '    series: {LUMN: {price: "7.5 7.6"}}\n'
            "    expect:\n"
            "      - {at: 30s, rule: up, symbol: LUMN, message: LUMN at $7.6}\n"
        )
    )
    assert test_text
    assert report_lines(run_test(wrong, [ruleset])) == [
        "FAIL  t",
        '      - expected    30s  up  LUMN "LUMN at $7.6"',
        '      + got         30s  up  LUMN "LUMN at $7.60"',
    ]


def test_earnings_rows_report_from_published_at_once_per_report() -> None:
    ruleset = _rules(
        "  - name: miss\n    symbols: [LUMN]\n    when: reported and eps_actual < eps_estimate\n"
    )
    test = _test(
        "    interval: 1h\n"
        '    series: {LUMN: {price: "7.5x5"}}\n'
        "    earnings:\n"
        "      LUMN:\n"
        "        - {date: 2026-02-10, time: bmo, fiscal_period: 2025Q4, eps_estimate: 0.2,\n"
        "           eps_actual: 0.1, published_at: 2026-02-10T16:30:00Z}\n"
        "    expect:\n"
        "      - {at: 2h, rule: miss, symbol: LUMN}\n"
    )
    outcome = run_test(test, [ruleset])
    assert outcome.passed, report_lines(outcome)


def test_expectations_must_name_a_rule() -> None:
    text = (
        "rule_files: [r.yaml]\ntests:\n  - name: t\n    start: 2026-02-10T14:30:00Z\n"
        "    interval: 1m\n    expect:\n      - {at: 0m, rule: dorp, symbol: LUMN}\n"
    )
    (problem,) = unknown_rules(load_tests(text, source="t.yaml"), [HOLD_AND_COOLDOWN])
    assert (problem.line, problem.col) == (7, 9)
    assert problem.message == "no rule 'dorp' in the rule files (did you mean 'drop'?)"


AMENDED = _rules(
    "  - name: lumn-beat\n    symbols: [LUMN]\n"
    "    when: reported and eps_actual > eps_estimate\n    notify_amended: true\n"
)
REPORT = (
    "    interval: 5m\n"
    '    series: {{LUMN: {{price: "7.5x7"}}}}\n'
    "    earnings:\n"
    "      LUMN:\n"
    "        - {{date: 2026-02-03, time: amc, fiscal_period: 2025Q4, eps_estimate: -0.21,\n"
    "           eps_actual: {eps}, revenue_actual: 3041000000,\n"
    "           published_at: 2026-02-03T21:05:00Z, corrections: [{corrections}]}}\n"
)


def _report_test(eps: float, corrections: str, expect: str) -> RuleTest:
    text = (
        "rule_files: [r.yaml]\ntests:\n  - name: t\n    start: 2026-02-03T21:00:00Z\n"
        + REPORT.format(eps=eps, corrections=corrections)
        + expect
    )
    (test,) = load_tests(text, source="t.yaml").tests
    return test


def test_a_correction_after_the_alert_sends_one_amended_alert_per_change() -> None:
    # fired at 5m on 0.23; the EPS corrected at 15m, the revenue at 25m: an amended
    # alert at each, judged against what the one before it sent
    test = _report_test(
        0.23,
        "{at: 15m, eps_actual: 0.25}, {at: 25m, revenue_actual: 3050000000}",
        "    expect:\n"
        "      - {at: 5m, rule: lumn-beat, symbol: LUMN, kind: fired}\n"
        "      - {at: 15m, rule: lumn-beat, symbol: LUMN, kind: amended,\n"
        '         message: "AMENDED: LUMN: lumn-beat: EPS 0.23 -> 0.25, revenue 3.041B"}\n'
        "      - {at: 25m, rule: lumn-beat, symbol: LUMN, kind: amended,\n"
        '         message: "AMENDED: LUMN: lumn-beat: EPS 0.25, revenue 3.041B -> 3.05B"}\n',
    )
    outcome = run_test(test, [AMENDED])
    assert outcome.passed, report_lines(outcome)
    assert [f.kind for _, f in outcome.matched] == ["fired", "amended", "amended"]


def test_figures_corrected_before_the_rule_fires_send_the_alert_alone() -> None:
    # -0.30 is no beat; corrected to 0.25 at 15m, the rule fires then, on 0.25
    test = _report_test(
        -0.30,
        "{at: 15m, eps_actual: 0.25}",
        "    expect:\n      - {at: 15m, rule: lumn-beat, symbol: LUMN, kind: fired}\n",
    )
    outcome = run_test(test, [AMENDED])
    assert outcome.passed, report_lines(outcome)


def test_an_expectation_of_the_wrong_kind_fails_with_the_kinds_in_the_diff() -> None:
    test = _report_test(
        0.23,
        "{at: 15m, eps_actual: 0.25}",
        "    expect:\n"
        "      - {at: 5m, rule: lumn-beat, symbol: LUMN}\n"
        "      - {at: 15m, rule: lumn-beat, symbol: LUMN, kind: resolved}\n",
    )
    outcome = run_test(test, [AMENDED])
    assert report_lines(outcome) == [
        "FAIL  t",
        "        matched      5m  lumn-beat  LUMN",
        "      - expected    15m  lumn-beat  LUMN  resolved",
        "      + got         15m  lumn-beat  LUMN  amended"
        ' "AMENDED: LUMN: lumn-beat: EPS 0.23 -> 0.25, revenue 3.041B"',
    ]


WEEK_AHEAD = _rules(
    "  - name: week-ahead\n    symbols: [LUMN, PLTR, EQIX]\n"
    '    digest: "0 8 * * mon"\n    window: 7d\n'
)


def test_a_digest_fires_at_its_cron_time_listing_the_reports_of_its_window() -> None:
    # Monday 2026-02-02 07:30 New York, every 15m: the 08:00 firing lists PLTR (Mon) and
    # LUMN (Tue); EQIX reports after the window; nothing fires before 08:00 or twice.
    text = (
        "rule_files: [r.yaml]\ntests:\n  - name: t\n    start: 2026-02-02T12:30:00Z\n"
        "    interval: 15m\n"
        '    series: {LUMN: {price: "7.5x5"}}\n'
        "    earnings:\n"
        "      PLTR: [{date: 2026-02-02, time: amc, fiscal_period: 2025Q4, eps_estimate: 0.23}]\n"
        "      LUMN: [{date: 2026-02-03, time: amc, fiscal_period: 2025Q4, eps_estimate: -0.21,\n"
        "              revenue_estimate: 3080000000}]\n"
        "      EQIX: [{date: 2026-02-11, time: amc, fiscal_period: 2025Q4}]\n"
        "    expect:\n"
        "      - {at: 30m, rule: week-ahead, symbol: 'pltr,LUMN', message: \"week-ahead: 2 reports"
        " in the 7 days from 2026-02-02 08:00 EST\\nPLTR 2026-02-02 (Mon), amc, 2025Q4, EPS est"
        " 0.23, revenue est n/a\\nLUMN 2026-02-03 (Tue), amc, 2025Q4, EPS est -0.21, revenue est"
        ' $3.08B"}\n'
    )
    (test,) = load_tests(text, source="t.yaml").tests
    assert [e.symbol for e in test.expect] == ["PLTR,LUMN"]
    outcome = run_test(test, [WEEK_AHEAD])
    assert outcome.passed, report_lines(outcome)
    assert _fired(outcome) == [(2, "week-ahead", "PLTR,LUMN")]
    assert unknown_rules(load_tests(text, source="t.yaml"), [WEEK_AHEAD]) == []


def test_a_test_starts_as_a_daemon_does_so_a_firing_of_the_last_hour_is_sent_first() -> None:
    # 08:40 New York: the 08:00 firing is 40 minutes old, as a daemon started then sends it
    text = (
        "rule_files: [r.yaml]\ntests:\n  - name: t\n    start: 2026-02-02T13:40:00Z\n"
        "    interval: 15m\n"
        '    series: {LUMN: {price: "7.5x3"}}\n'
        "    earnings:\n"
        "      LUMN: [{date: 2026-02-03, time: amc}]\n"
        "    expect:\n"
        "      - {at: 0m, rule: week-ahead, symbol: LUMN}\n"
    )
    (test,) = load_tests(text, source="t.yaml").tests
    outcome = run_test(test, [WEEK_AHEAD])
    assert outcome.passed, report_lines(outcome)
