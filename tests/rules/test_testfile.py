"""The rule-test file (`service/rules/testfile.py`): the load, with every problem at its
line and column."""

from datetime import UTC, datetime, timedelta

import pytest

from service.errors import RuleFileError
from service.rules.testfile import load_tests

GOOD = """\
rule_files: rules.yaml
tests:
  - name: t
    start: 2026-02-04T14:30:00Z
    interval: 1m
    series:
      lumn: {price: 7.5 7.6 _, target_median: 7}
      ON: {price: "1x3"}
    earnings:
      LUMN:
        - {date: 2026-02-03, time: amc, fiscal_period: 2025Q4, eps_actual: 0.23}
    expect:
      - {at: 0m, rule: r, symbol: lumn}
      - {at: 2026-02-04T14:32:00Z, rule: r, symbol: ON, message: "ON"}
"""


def test_a_valid_file_loads_to_a_grid() -> None:
    loaded = load_tests(GOOD, source="t.yaml")
    assert [name for name, _, _ in loaded.rule_files] == ["rules.yaml"]
    (test,) = loaded.tests
    assert test.steps == 3
    assert test.series["LUMN"] == {"price": (7.5, 7.6, None), "target_median": (7.0,)}
    assert test.series["ON"]["price"] == (1.0, 1.0, 1.0)  # a ticker, not YAML 1.1's true
    assert [(e.step, e.symbol, e.message) for e in test.expect] == [
        (0, "LUMN", None),
        (2, "ON", "ON"),
    ]
    (row,) = test.earnings["LUMN"]
    assert row.event.fiscal_period == "2025Q4"
    # without published_at, the actuals appear at the report's time (amc: 16:00 New York)
    assert row.published_at == datetime(2026, 2, 3, 21, 0, tzinfo=UTC)
    assert row.at(row.published_at - timedelta(seconds=1)).eps_actual is None
    assert row.at(row.published_at).eps_actual == 0.23


def _problems(text: str) -> list[str]:
    with pytest.raises(RuleFileError) as caught:
        load_tests(text, source="t.yaml")
    return caught.value.lines()


def test_every_mistake_of_every_test_is_named_with_its_place() -> None:
    text = """\
rule_files: [rules.yaml]
tests:
  - name: one
    start: 2026-02-04T14:30:00
    interval: 1m
    series:
      LUMN: {price: "7 8 x", volume: "1"}
    expect:
      - {at: 1m, rule: r, symbol: LUMN}
  - name: two
    start: 2026-02-04T14:30:00Z
    interval: 1m
    colour: red
    series:
      LUMN: {price: "7 8"}
    earnings:
      LUMN:
        - {date: 2026-02-03, time: late}
    expect:
      - {at: 90s, rule: r, symbol: LUMN}
      - {at: 2m, rule: r, symbol: "lumn!"}
      - {at: soon, rule: r, symbol: LUMN}
"""
    assert _problems(text) == [
        "t.yaml:4:12: tests[0].start: input should have timezone info",
        "t.yaml:7:26: tests[0].series.LUMN.price: 'x' is not a value: write a number, _ "
        "(unknown) or VALUExN (the value N times, e.g. 7.5x3)",
        "t.yaml:7:30: tests[0].series.LUMN.volume: 'volume' cannot be given as a series; use "
        "price, prev_close, day_high, day_low, open, target_median, target_mean, "
        "target_high, target_low (earnings figures go in `earnings:`)",
        "t.yaml:13:5: tests[1].colour: unknown key 'colour'",
        "t.yaml:18:36: tests[1].earnings.LUMN[0].time: input should be 'bmo', 'amc', 'dmh' "
        "or 'unknown'",
        "t.yaml:22:14: tests[1].expect[2].at: write `at` as an offset from start (0m, 90s, 5m, "
        "2h) or an ISO time with its zone",
    ]


def test_expectations_off_the_grid_are_errors() -> None:
    text = GOOD.replace("at: 0m", "at: 90s").replace(
        "symbol: ON, message", "symbol: 'ON!', message"
    )
    text = text.replace("- {at: 2026-02-04T14:32:00Z", "- {at: 2026-02-04T14:33:00Z")
    assert _problems(text) == [
        "t.yaml:13:14: tests[0].expect[0].at: 90s after start is not a step: steps are every "
        "1m from 0s to 2m",
        "t.yaml:14:14: tests[0].expect[1].at: 3m is after the last step (2m): the longest "
        "series has 3 value(s)",
        "t.yaml:14:53: tests[0].expect[1].symbol: 'ON!' is not a symbol (1-10 characters of "
        "A-Z 0-9 . -)",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "t.yaml:1:1: a rule-test file is a mapping with `rule_files:` and `tests:`"),
        ("tests: []\n", "t.yaml:1:1: rule_files: missing required key 'rule_files'"),
        ("rule_files: [r.yaml]\ntests: [\n", "t.yaml:3:1: YAML syntax error"),
        ("rule_files: [r.yaml]\ntests: [1]\n", "t.yaml:2:9: tests[0]: a test is a mapping"),
        (
            "rule_files: [r.yaml]\ntests: []\n",
            "t.yaml:2:8: tests: list should have at least 1 item",
        ),
    ],
)
def test_files_that_are_not_test_files(text: str, problem: str) -> None:
    assert _problems(text)[0].startswith(problem)


def test_no_variable_is_substituted_in_a_test_file() -> None:
    text = GOOD.replace('message: "ON"', 'message: "${HOME} costs $$5"')
    (test,) = load_tests(text, source="t.yaml").tests
    assert test.expect[1].message == "${HOME} costs $$5"


CORRECTED = """\
rule_files: rules.yaml
tests:
  - name: t
    start: 2026-02-03T21:00:00Z
    interval: 5m
    series: {LUMN: {price: "7.5x6"}}
    earnings:
      LUMN:
        - date: 2026-02-03
          time: amc
          eps_estimate: -0.21
          eps_actual: -0.30
          revenue_actual: 3041000000
          published_at: 2026-02-03T21:05:00Z
          corrections:
            - {at: 15m, eps_actual: -0.28}
            - {at: 2026-02-03T21:25:00Z, revenue_actual: 3050000000}
    expect:
      - {at: 20m, rule: r, symbol: LUMN, kind: amended}
"""


def test_a_rows_corrections_show_from_their_moment_on_each_over_the_one_before() -> None:
    (test,) = load_tests(CORRECTED, source="t.yaml").tests
    (row,) = test.earnings["LUMN"]
    figures = [(e.eps_actual, e.revenue_actual) for e in (row.at(test.moment(s)) for s in range(6))]
    assert figures == [
        (None, None),  # before publication
        (-0.30, 3041000000),
        (-0.30, 3041000000),
        (-0.28, 3041000000),  # 15m: the EPS corrected
        (-0.28, 3041000000),
        (-0.28, 3050000000),  # 25m: then the revenue, the EPS as corrected
    ]
    assert row.at(test.moment(5)).eps_estimate == -0.21  # what no correction names stays
    assert [e.kind for e in test.expect] == ["amended"]


def test_a_correction_that_names_no_figure_or_comes_too_early_is_an_error_at_its_place() -> None:
    text = CORRECTED.replace(
        "            - {at: 15m, eps_actual: -0.28}\n"
        "            - {at: 2026-02-03T21:25:00Z, revenue_actual: 3050000000}\n",
        "            - {at: 0m, eps_actual: -0.28}\n"  # before the actuals are out
        "            - {at: 20m, eps_actual: -0.28}\n"
        "            - {at: 10m, eps_actual: -0.27}\n"  # before the one above
        "            - {at: 30m}\n",
    )
    assert _problems(text) == [
        "t.yaml:16:20: tests[0].earnings.LUMN[0].corrections[0].at: a correction comes after"
        " the actuals are published (2026-02-03T21:05:00+00:00); this one is at"
        " 2026-02-03T21:00:00+00:00",
        "t.yaml:18:20: tests[0].earnings.LUMN[0].corrections[2].at: a correction comes after"
        " the correction before it (2026-02-03T21:20:00+00:00); this one is at"
        " 2026-02-03T21:10:00+00:00",
        "t.yaml:19:15: tests[0].earnings.LUMN[0].corrections[3]: a correction gives"
        " eps_actual, revenue_actual or both",
    ]


def test_an_expectations_kind_is_fired_resolved_or_amended() -> None:
    assert _problems(CORRECTED.replace("kind: amended", "kind: corrected")) == [
        "t.yaml:19:48: tests[0].expect[0].kind: input should be 'fired', 'resolved' or 'amended'"
    ]
