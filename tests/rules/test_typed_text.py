"""What users type is what is read: YAML 1.1 booleans and numbers in symbol and name
positions stay the text, and non-ASCII is refused before any case folding (issue 9.8)."""

import pytest

from service.errors import RuleFileError
from tests.rules.conftest import load


def problems(text: str) -> list[str]:
    with pytest.raises(RuleFileError) as info:
        load(text)
    return info.value.lines()


def test_symbols_that_yaml_reads_as_booleans_or_numbers_are_the_tickers_typed() -> None:
    text = "rules:\n  - name: r\n    symbols: [ON, NO, Y, 0700, 1e3]\n    when: price > 1\n"
    rule = load(text).rule("r")
    assert rule is not None and rule.symbols == ("ON", "NO", "Y", "0700", "1E3")


def test_a_single_symbol_a_group_member_and_a_group_name_are_the_text_typed() -> None:
    text = (
        "groups:\n  semis: [ON, off, YES]\n  true: [NVDA]\n"
        "rules:\n  - name: a\n    symbols: ON\n    when: price > 1\n"
        "  - name: b\n    symbols: [semis, true]\n    when: price > 1\n"
    )
    ruleset = load(text)
    assert ruleset.groups == {"semis": ("ON", "OFF", "YES"), "true": ("NVDA",)}
    a, b = ruleset.rule("a"), ruleset.rule("b")
    assert a is not None and a.symbols == ("ON",)
    assert b is not None and b.symbols == ("ON", "OFF", "YES", "NVDA")


def test_names_and_notify_that_yaml_reads_as_booleans_are_the_names_typed() -> None:
    text = (
        "channels:\n  on:\n    type: webhook\n    url: https://hooks.example.com/x\n"
        "defaults:\n  notify: on\n"
        "rules:\n  - name: yes\n    symbols: [LUMN]\n    when: true\n"
        "  - name: 2024\n    symbols: [LUMN]\n    when: price > 1\n    notify: [on]\n"
    )
    ruleset = load(text)
    assert set(ruleset.channels) == {"on"}
    first, second = ruleset.rule("yes"), ruleset.rule("2024")
    assert first is not None and first.channels == ("on",) and first.when.source == "true"
    assert second is not None and second.channels == ("on",)


@pytest.mark.parametrize(
    ("symbols", "expected"),
    [
        ('["\u0131bm"]', "rules.yaml:3:15: rules[0].symbols[0]: '\u0131bm' is not a symbol"),
        ("[LUMN, \u0131bm]", "rules.yaml:3:21: rules[0].symbols[1]: '\u0131bm' is not a symbol"),
        ("\uff2c\uff35\uff2d\uff2e", "rules.yaml:3:14: rules[0].symbols[0]:"),
    ],
)
def test_a_symbol_that_is_not_ascii_is_refused_before_upper_casing(
    symbols: str, expected: str
) -> None:
    text = f"rules:\n  - name: r\n    symbols: {symbols}\n    when: price > 1\n"
    assert problems(text)[0].startswith(expected), problems(text)


def test_a_group_member_or_group_name_that_is_not_ascii_is_refused() -> None:
    text = "groups:\n  g: [\u0131bm]\n  gr\u00fcn: [SAP]\nrules:\n  - name: r\n    symbols: [g]\n    when: price > 1\n"
    lines = problems(text)
    assert lines[0].startswith("rules.yaml:2:7: groups.g[0]: '\u0131bm' is not a symbol")
    assert lines[1].startswith("rules.yaml:3:3: groups['gr\\xfcn']: group name 'gr\u00fcn'")


@pytest.mark.parametrize(
    ("when", "col"),
    [("\uff50rice > 1", 11), ("price > 1 and \u0131bm", 25), ('earnings_time == "b\u043co"', 30)],
)
def test_a_condition_that_is_not_ascii_is_refused_at_the_character(when: str, col: int) -> None:
    text = f"rules:\n  - name: r\n    symbols: [LUMN]\n    when: {when}\n"
    assert problems(text) == [f"rules.yaml:4:{col}: rules[0].when: a condition is written in ASCII"]


def test_a_non_ascii_clear_when_in_a_block_is_refused_on_its_line() -> None:
    text = (
        "rules:\n  - name: r\n    symbols: [LUMN]\n    when: price > 1\n"
        "    clear_when: >-\n      price < 1 or\n      \uff50rice < 0\n"
    )
    assert problems(text) == [
        "rules.yaml:7:7: rules[0].clear_when: a condition is written in ASCII"
    ]


@pytest.mark.parametrize("name", ["r\u00e9gle", "\u0131bm-miss"])
def test_a_rule_name_that_is_not_ascii_is_refused(name: str) -> None:
    text = f"rules:\n  - name: {name}\n    symbols: [LUMN]\n    when: price > 1\n"
    assert problems(text)[0].startswith("rules.yaml:2:11: rules[0].name: a rule name uses")


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ('"ops\\nINFO alert sent"', "'ops\\nINFO alert sent'"),
        ("caf\u00e9", "'caf\u00e9'"),
        ('"my hook"', "'my hook'"),
    ],
)
def test_a_channel_name_follows_the_rule_name_pattern(key: str, shown: str) -> None:
    text = f"channels:\n  {key}:\n    type: webhook\n    url: https://h.example/x\nrules: []\n"
    lines = problems(text)
    assert len(lines) == 1 and lines[0].startswith("rules.yaml:2:3: channels"), lines
    assert f"channel name {shown}: use letters, digits, _ . - (ASCII" in lines[0]
    assert "\n" not in lines[0]
