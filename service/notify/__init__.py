"""Notification channels: one module per channel type, registered in NOTIFIERS.

Interim: the channel option models only, until the notifier modules land.
"""

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, SecretStr


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookOptions(_Options):
    url: SecretStr
    secret: SecretStr | None = None
    headers: dict[str, str] | None = None


class SlackOptions(_Options):
    url: SecretStr


class EmailOptions(_Options):
    to: list[str] | str
    subject: str | None = None


CHANNEL_CONFIGS: dict[str, type[BaseModel]] = {
    "webhook": WebhookOptions,
    "slack": SlackOptions,
    "email": EmailOptions,
}
__all__ = ["CHANNEL_CONFIGS", "AnyHttpUrl"]
