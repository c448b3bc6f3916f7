"""Channel option models for rule tests: the loader takes them by injection, so these
tests do not depend on the notifiers."""

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from service.rules import RuleSet, load_rules

TESTDATA = Path(__file__).parent / "testdata"


class _Hook(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str
    secret: str | None = None
    headers: dict[str, str] | None = None


class _Slack(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str


class _Email(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: list[str] | str
    subject: str | None = None


CHANNEL_CONFIGS = {"webhook": _Hook, "slack": _Slack, "email": _Email}
ENV = {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/XYZ", "WEBHOOK_SECRET": "s3"}


def load(text: str, env: dict[str, str] | None = None, source: str = "rules.yaml") -> RuleSet:
    return load_rules(
        text, source=source, env=ENV if env is None else env, channel_configs=CHANNEL_CONFIGS
    )


@pytest.fixture
def testdata() -> Path:
    return TESTDATA
