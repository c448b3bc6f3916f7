"""`${VAR}` may not name one of Earnwatch's own secrets (issue 9.9): today
`message: "${FINNHUB_API_KEY}"` would send the key to every channel."""

import pytest

from service.errors import RuleFileError
from service.rules import RuleSet, load_rules
from tests.rules.conftest import CHANNEL_CONFIGS

RESERVED = ("FINNHUB_API_KEY", "FMP_API_KEY", "SMTP_PASSWORD", "EARNWATCH_DATABASE_URL")
ENV = {
    "FINNHUB_API_KEY": "fh-SECRET-KEY",
    "SMTP_PASSWORD": "smtp-SECRET",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/XYZ",
    "WEBHOOK_SECRET": "s3",
}
RULE = "rules:\n  - name: r\n    symbols: [LUMN]\n    when: price > 1\n"


def load(text: str) -> RuleSet:
    return load_rules(
        text,
        source="rules.yaml",
        env=ENV,
        channel_configs=CHANNEL_CONFIGS,
        reserved_env=RESERVED,
    )


def refused(text: str) -> list[str]:
    with pytest.raises(RuleFileError) as info:
        load(text)
    lines = info.value.lines()
    assert all("SECRET" not in line for line in lines)
    return lines


MESSAGE = "is one of Earnwatch's own secrets and cannot be used in the rule file"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            RULE + '    message: "key ${FINNHUB_API_KEY}"\n',
            "5:14: rules[0].message: ${FINNHUB_API_KEY}",
        ),
        (
            RULE + "    message: ${FINNHUB_API_KEY:-none}\n",
            "5:14: rules[0].message: ${FINNHUB_API_KEY}",
        ),
        (
            RULE + "    description: |\n      ${SMTP_PASSWORD}\n",
            "5:18: rules[0].description: ${SMTP_PASSWORD}",
        ),
        (
            "channels:\n  h:\n    type: webhook\n    url: https://h.example/?k=${FMP_API_KEY}\n"
            + RULE,
            "4:10: channels.h.url: ${FMP_API_KEY}",
        ),
        (
            "channels:\n  h:\n    type: webhook\n    url: https://h.example/\n"
            "    secret: ${EARNWATCH_DATABASE_URL}\n" + RULE,
            "5:13: channels.h.secret: ${EARNWATCH_DATABASE_URL}",
        ),
    ],
)
def test_a_reserved_variable_is_refused_wherever_it_is_written(text: str, expected: str) -> None:
    assert refused(text) == [f"rules.yaml:{expected} {MESSAGE}"]


def test_the_channels_own_variables_still_substitute() -> None:
    text = (
        "channels:\n  s:\n    type: slack\n    url: ${SLACK_WEBHOOK_URL}\n"
        "  h:\n    type: webhook\n    url: https://h.example/\n    secret: ${WEBHOOK_SECRET}\n"
        + RULE
        + '    message: "{{ symbol }} costs $$5"\n'
    )
    ruleset = load(text)
    assert ruleset.channels["s"].config.url.endswith("/XYZ")  # type: ignore[attr-defined]
    assert ruleset.channels["h"].config.secret == "s3"  # type: ignore[attr-defined]


def test_without_reserved_names_nothing_changes() -> None:
    text = RULE + '    message: "${SMTP_PASSWORD}"\n'
    ruleset = load_rules(text, source="r", env=ENV, channel_configs=CHANNEL_CONFIGS)
    assert ruleset.rules[0].template is not None
