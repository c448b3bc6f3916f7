"""A rule file with no rules is a bad edit, not "0 rules" (issue 10.5); `rules: []` is
valid, with a warning."""

import pytest

from service.errors import RuleFileError
from tests.rules.conftest import load

NO_RULES = (
    'the rule file has no rules (an empty or truncated file?); write "rules: []" to run with none'
)
CHANNELS = "version: 1\nchannels:\n  h:\n    type: webhook\n    url: https://h.example/x\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", f"rules.yaml: {NO_RULES}"),
        ("\n\n", f"rules.yaml: {NO_RULES}"),
        ("# rules.yaml\n# to do\n", f"rules.yaml: {NO_RULES}"),
        ("---\n", f"rules.yaml: {NO_RULES}"),
        ("~\n", f"rules.yaml: {NO_RULES}"),
        ("version: 1\n", f"rules.yaml: {NO_RULES}"),
        (CHANNELS, f"rules.yaml: {NO_RULES}"),  # a file cut after `channels:`
        (CHANNELS + "rules:\n", f"rules.yaml:6:1: rules: {NO_RULES}"),
        (CHANNELS + "rules: ~\n", f"rules.yaml:6:1: rules: {NO_RULES}"),
    ],
)
def test_a_file_without_rules_is_one_problem(text: str, expected: str) -> None:
    with pytest.raises(RuleFileError) as info:
        load(text)
    assert info.value.lines() == [expected]
    assert str(info.value) == expected


def test_an_explicit_empty_rule_list_loads_with_a_warning() -> None:
    ruleset = load(CHANNELS + "rules: []\n")
    assert ruleset.rules == () and set(ruleset.channels) == {"h"}
    assert ruleset.warning_lines("rules.yaml") == [
        "rules.yaml:6:1: warning: rules: the file has no rules (rules: []): "
        "Earnwatch runs, but nothing will alert"
    ]


def test_a_file_with_rules_has_no_warning() -> None:
    ruleset = load("rules:\n  - name: r\n    symbols: [LUMN]\n    when: price > 1\n")
    assert ruleset.warnings == ()
