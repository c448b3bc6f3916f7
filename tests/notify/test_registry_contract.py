"""The channel registry's contract: every channel type declares its URL fields and its
secret fields, and what reads those declarations (the SSRF check at `check` time, the log
mask, `build_notifiers`, the schema) covers every channel type there is.

Each test walks `CHANNEL_TYPES`, so a new channel type is covered by being registered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from pydantic import SecretStr

from service.config import Settings
from service.logs import SecretMask
from service.notify import CHANNEL_CONFIGS, CHANNEL_TYPES, build_notifiers
from service.notify.base import ChannelConfig, Message
from service.notify.plugin import ChannelType, registry
from service.rulefile import RuleFile
from service.rules.schema import rule_file_schema
from service.targets import channel_check

KINDS = sorted(CHANNEL_TYPES)


def test_every_registered_declaration_is_sound() -> None:
    assert {"webhook", "slack", "email"} <= set(KINDS)
    for kind, channel in CHANNEL_TYPES.items():
        assert channel.problems() == [], kind
        assert channel.kind == kind
        channel.config.model_validate(channel.example)  # the example is valid options


# --- a declaration that forgets something is refused ------------------------------------


class _ForgetfulConfig(ChannelConfig):
    url: SecretStr
    bot_token: SecretStr


class _ForgetfulNotifier:
    kind: ClassVar[str] = "forgetful"
    Config: ClassVar[type[ChannelConfig]] = _ForgetfulConfig
    deadline = 1.0

    def destination(self, config: ChannelConfig) -> str:
        return "nowhere:0"

    async def send(self, message: Message, config: ChannelConfig, *, delivery_id: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _forgetful(**overrides: Any) -> ChannelType:
    fields: dict[str, Any] = {
        "notifier": _ForgetfulNotifier,
        "url_fields": frozenset({"url"}),
        "secret_fields": frozenset({"url", "bot_token"}),
        "build": lambda context: _ForgetfulNotifier(),
        "example": {"url": "https://example.com/x", "bot_token": "t"},
    }
    fields.update(overrides)
    return ChannelType(**fields)


def test_the_complete_fake_declaration_passes_so_the_failures_below_are_its_gaps() -> None:
    assert _forgetful().problems() == []


def test_a_url_field_left_out_of_url_fields_fails_the_contract() -> None:
    problems = _forgetful(url_fields=frozenset()).problems()
    assert problems == ["channel type 'forgetful': field 'url' looks like a URL: declare it"]
    with pytest.raises(TypeError, match="'url' looks like a URL"):
        registry(_forgetful(url_fields=frozenset()))


def test_a_secret_field_left_out_of_secret_fields_fails_the_contract() -> None:
    problems = _forgetful(secret_fields=frozenset({"url"})).problems()
    assert (
        "channel type 'forgetful': field 'bot_token' is a SecretStr but not in secret_fields"
        in (problems)
    )
    assert any("'bot_token' looks like a secret" in p for p in problems)
    with pytest.raises(TypeError, match="bot_token"):
        registry(_forgetful(secret_fields=frozenset({"url"})))


def test_a_secret_field_must_be_typed_secretstr_so_it_never_prints() -> None:
    class Plain(ChannelConfig):
        api_token: str

    class PlainNotifier(_ForgetfulNotifier):
        kind: ClassVar[str] = "plain"
        Config: ClassVar[type[ChannelConfig]] = Plain

    declared = ChannelType(
        notifier=PlainNotifier,
        url_fields=frozenset(),
        secret_fields=frozenset({"api_token"}),
        build=lambda context: PlainNotifier(),
        example={"api_token": "t"},
    )
    assert declared.problems() == [
        "channel type 'plain': secret field 'api_token' must be typed SecretStr"
    ]


def test_a_declared_field_that_does_not_exist_and_a_twin_kind_are_refused() -> None:
    assert _forgetful(url_fields=frozenset({"url", "hook"})).problems() == [
        "channel type 'forgetful': declares 'hook', which is not a field of its config"
    ]
    with pytest.raises(TypeError, match="declared twice"):
        registry(_forgetful(), _forgetful())


# --- what reads the declarations covers every channel type ------------------------------


def _with_urls(channel: ChannelType, url: str) -> dict[str, Any]:
    options = dict(channel.example)
    for field in channel.url_fields:
        options[field] = url
    return options


@pytest.mark.parametrize("kind", [k for k in KINDS if CHANNEL_TYPES[k].url_fields])
def test_the_ssrf_check_refuses_every_url_field_of_every_channel_type(kind: str) -> None:
    channel = CHANNEL_TYPES[kind]
    check = channel_check(Settings(_env_file=None))
    config = channel.config.model_validate(_with_urls(channel, "http://169.254.169.254/latest"))
    problems = check(kind, config)
    assert sorted(field for field, _ in problems) == sorted(channel.url_fields)
    assert all("169.254.169.254" in message for _, message in problems)
    allowed = channel.config.model_validate(channel.example)
    assert check(kind, allowed) == []


@pytest.mark.parametrize("kind", KINDS)
def test_every_secret_of_every_channel_type_is_masked_once_the_rule_file_loads(
    kind: str, tmp_path: Path
) -> None:
    channel = CHANNEL_TYPES[kind]
    secrets = list(channel.secrets(channel.config.model_validate(channel.example)))
    rules = {
        "channels": {"out": {"type": kind, **channel.example}},
        "rules": [{"name": "r", "symbols": ["LUMN"], "when": "price > 1", "notify": ["out"]}],
    }
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    mask = SecretMask(())
    rule_file = RuleFile(path, env_file=None, mask=mask, channel_configs=CHANNEL_CONFIGS)
    rule_file.load()
    for secret in secrets:
        assert secret not in mask.mask(f"sent to {secret}!"), (kind, secret)
    if kind in ("webhook", "slack"):
        assert secrets  # the URL at least


@pytest.mark.anyio
@pytest.mark.parametrize("kind", KINDS)
async def test_every_channel_type_is_in_the_schema_and_builds_its_notifier(kind: str) -> None:
    schema = json.dumps(rule_file_schema(CHANNEL_CONFIGS))
    assert json.dumps(kind) in schema
    notifiers = build_notifiers(Settings(_env_file=None, delivery_timeout="7s"))
    try:
        assert type(notifiers[kind]) is CHANNEL_TYPES[kind].notifier
        if kind != "email":  # email's deadline is SMTP_TIMEOUT
            assert notifiers[kind].deadline == 7.0
    finally:
        for notifier in notifiers.values():
            await notifier.aclose()


@pytest.mark.parametrize("kind", KINDS)
def test_a_validation_error_of_any_channel_type_never_quotes_its_input(kind: str) -> None:
    from pydantic import ValidationError

    channel = CHANNEL_TYPES[kind]
    options = dict(channel.example)
    secret = "SENTINELnotquoted42"
    for field in channel.config.model_fields:
        options[field] = ["not", "valid", secret]  # a list fits no scalar field
    with pytest.raises(ValidationError) as caught:
        channel.config.model_validate(options)
    assert secret not in str(caught.value)
