"""Loading the rule file: RULES.md's example, substitution, and every problem named."""

from datetime import timedelta
from pathlib import Path

import pytest

from service.errors import RuleFileError
from tests.rules.conftest import load


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(RuleFileError) as info:
        load(text, env)
    return info.value.lines()


def test_the_example_of_rules_md_loads_completely(testdata: Path) -> None:
    ruleset = load((testdata / "good.yaml").read_text())
    assert ruleset.summary() == "6 rules, 3 symbols, 3 channels"
    assert ruleset.symbols == {"LUMN", "PLTR", "EQIX"}
    miss = ruleset.rule("lumn-q4-miss")
    assert miss is not None and miss.channels == ("me", "team-slack")
    assert miss.uses_earnings and miss.cooldown == timedelta(hours=4)
    target = ruleset.rule("lumn-above-target")
    assert target is not None and target.channels == ("team-slack",)  # from defaults
    assert target.clear_when is not None and not target.uses_earnings
    drop = ruleset.rule("post-earnings-drop")
    assert drop is not None and drop.hold == timedelta(minutes=10)
    assert drop.symbols == ("LUMN", "PLTR", "EQIX")
    assert ruleset.channels["team-slack"].kind == "slack"


def test_three_different_mistakes_are_all_named_with_their_lines(testdata: Path) -> None:
    with pytest.raises(RuleFileError) as info:
        load((testdata / "bad_three.yaml").read_text(), source="bad_three.yaml")
    assert info.value.lines() == [
        "bad_three.yaml:9:24: rules[0].when: unknown name 'eps_actul' (did you mean 'eps_actual'?)",
        "bad_three.yaml:14:14: rules[1].notify[0]: undefined channel 'team-slack'; defined: 'ops-hook'",
        "bad_three.yaml:18:10: rules[2].for: invalid duration '10 minutes': use a number and a "
        "unit, like 30s, 10m, 4h or 2d",
    ]


def test_a_missing_environment_variable_is_named_at_its_place() -> None:
    text = "channels:\n  s:\n    type: slack\n    url: ${SLACK_URL}\nrules: []\n"
    assert problems(text, env={}) == [
        "rules.yaml:4:10: channels.s.url: environment variable SLACK_URL is not set "
        "(set it in the environment or .env, or write ${SLACK_URL:-default})"
    ]


def test_substitution_uses_defaults_and_dollar_escapes() -> None:
    text = (
        "channels:\n  h:\n    type: webhook\n    url: ${HOOK:-https://example.com/h}\n"
        "    headers: {X-Cost: $$5}\nrules: []\n"
    )
    ruleset = load(text, env={})
    config = ruleset.channels["h"].config
    assert config.url == "https://example.com/h"  # type: ignore[attr-defined]
    assert config.headers == {"X-Cost": "$5"}  # type: ignore[attr-defined]


def test_substituted_values_cannot_inject_yaml() -> None:
    text = "rules:\n  - name: r\n    symbols: [LUMN]\n    when: ${COND}\n"
    lines = problems(text, env={"COND": "price > 1\nextra: key"})
    assert [line.split(": ")[1] for line in lines] == ["rules[0].when"]  # no key 'extra'
    rule = load(text, env={"COND": "price > 1"}).rule("r")
    assert rule is not None and rule.when.source == "price > 1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\na: 2\n", "rules.yaml:2:1: a: duplicate key 'a'"),
        ("rules: [\n", "rules.yaml:2:1: YAML syntax error"),
        ("- 1\n", "rules.yaml:1:1: the rule file must be a mapping"),
        ("version: 2\nrules: []\n", "rules.yaml:1:10: version: input should be 1"),
        ("rulez: []\n", "rules.yaml:1:1: rulez: unknown key 'rulez'"),
        (
            "rules:\n  - symbols: [LUMN]\n    when: price > 1\n",
            "rules.yaml:2:5: rules[0].name: missing required key 'name'",
        ),
        (
            "rules:\n  - name: r\n    symbols: [TOOLONGSYMBOL]\n    when: price > 1\n",
            "rules.yaml:3:15: rules[0].symbols[0]: 'TOOLONGSYMBOL' is not a symbol",
        ),
        (
            "rules:\n  - name: r\n    symbols: [LUMN]\n    when: price > 1\n"
            "    message: '{{ prise }}'\n",
            "rules.yaml:5:14: rules[0].message: unknown name 'prise' in message "
            "(did you mean 'price'?)",
        ),
        (
            "groups:\n  ai-infra: [PLTR]\nrules:\n  - name: r\n    symbols: ai-infar\n"
            "    when: price > 1\n",
            "rules.yaml:5:14: rules[0].symbols[0]: unknown group 'ai-infar' "
            "(did you mean 'ai-infra'?)",
        ),
        (
            "channels:\n  x:\n    type: pager\nrules: []\n",
            "rules.yaml:3:11: channels.x.type: unknown channel type 'pager'; "
            "use email, slack, webhook",
        ),
        (
            "channels:\n  x:\n    type: slack\n    token: abc\nrules: []\n",
            "rules.yaml:4:5: channels.x.token: unknown key 'token'",
        ),
    ],
)
def test_each_kind_of_mistake_names_its_place(text: str, expected: str) -> None:
    assert any(line.startswith(expected) for line in problems(text)), problems(text)


def test_a_mistake_inside_a_folded_expression_points_at_its_line() -> None:
    text = (
        "rules:\n  - name: r\n    symbols: [LUMN]\n    when: >-\n      price > 1 and\n"
        "      __import__('os')\n"
    )
    assert problems(text)[0].startswith("rules.yaml:6:7: rules[0].when: calling '__import__'")


def test_every_problem_of_one_rule_is_named_even_with_an_unknown_key() -> None:
    text = (
        "rules:\n  - name: r\n    symbols: [LUMN]\n    when: price >\n    colldown: 4h\n"
        "  - name: r\n    symbols: [LUMN]\n    when: price > 1\n"
    )
    lines = problems(text)
    assert [line.split(": ")[1] for line in lines] == [
        "rules[0].when",
        "rules[0].colldown",
        "rules[1].name",
    ]


def test_symbols_are_upper_cased_and_groups_expanded() -> None:
    text = (
        "groups:\n  g: [pltr, EQIX]\nrules:\n  - name: r\n    symbols: [lumn, g, LUMN]\n"
        "    when: price > 1\n"
    )
    rule = load(text).rule("r")
    assert rule is not None and rule.symbols == ("LUMN", "PLTR", "EQIX")


def test_a_disabled_rule_is_validated_but_idle() -> None:
    text = "rules:\n  - name: r\n    symbols: [LUMN]\n    when: price > 1\n    enabled: false\n"
    ruleset = load(text)
    assert ruleset.rules == () and ruleset.disabled == ("r",)
    assert problems(text.replace("price > 1", "prize > 1"))


def test_the_fingerprint_follows_what_decides_firing_only() -> None:
    base = "rules:\n  - name: r\n    symbols: [LUMN]\n    when: price > 1\n"
    fingerprint = load(base).rules[0].fingerprint
    assert load(base + "    message: hi {{ price }}\n").rules[0].fingerprint == fingerprint
    assert load(base.replace("> 1", "> 2")).rules[0].fingerprint != fingerprint
    assert load(base + "    cooldown: 1h\n").rules[0].fingerprint != fingerprint


def test_errors_never_echo_secret_values() -> None:
    secret = "https://hooks.slack.com/services/T0/B0/SECRET"
    text = "channels:\n  s:\n    type: slack\n    url: ${U}\n    bogus: ${U}\nrules: []\n"
    lines = problems(text, env={"U": secret})
    assert lines and all("SECRET" not in line for line in lines)


def test_rules_with_equal_symbols_or_channels_share_one_tuple() -> None:
    text = (
        "channels:\n  hook: {type: webhook, url: 'https://hooks.example.com/x'}\n"
        "defaults:\n  notify: [hook]\n"
        "groups:\n  g: [PLTR, EQIX]\n"
        "rules:\n"
        "  - name: a\n    symbols: g\n    when: price > 1\n"
        "  - name: b\n    symbols: [PLTR, EQIX]\n    when: price > 2\n"
        "  - name: c\n    symbols: [LUMN]\n    when: price > 3\n"
        "  - name: d\n    symbols: [lumn]\n    when: price > 4\n    notify: [hook]\n"
        "  - name: e\n    symbols: [EQIX, PLTR]\n    when: price > 5\n"
    )
    a, b, c, d, e = load(text).rules
    assert a.symbols == ("PLTR", "EQIX") and a.symbols is b.symbols
    assert c.symbols == ("LUMN",) and c.symbols is d.symbols
    assert e.symbols == ("EQIX", "PLTR")  # another order is another value
    assert a.channels == ("hook",) and all(r.channels is a.channels for r in (b, c, d, e))
