"""Notification channels: one module per channel type, each ending in its `CHANNEL`
declaration (`service/notify/plugin.py`), and the registry built from those.

`CHANNEL_TYPES` is the registry: a new channel type is its module plus one line below.
`CHANNEL_CONFIGS` is what the rule loader validates each `channels.<name>` entry against
(by its `type:`); `build_notifiers(settings)` makes one notifier per kind, the HTTP ones
each with one shared client behind the SSRF guard.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from pydantic import BaseModel

from service.config import Settings
from service.httpclient import TargetGuard
from service.notify import discord, email, ntfy, slack, telegram, webhook
from service.notify.base import ChannelConfig, Message, Notifier
from service.notify.email import EmailConfig
from service.notify.plugin import ChannelType, NotifierContext, registry
from service.notify.slack import SlackConfig
from service.notify.webhook import WebhookConfig

if TYPE_CHECKING:  # ssl loads with a client or a mail, not with the registry
    import ssl

CHANNEL_TYPES: Final[Mapping[str, ChannelType]] = registry(
    webhook.CHANNEL,
    slack.CHANNEL,
    email.CHANNEL,
    telegram.CHANNEL,
    discord.CHANNEL,
    ntfy.CHANNEL,
)
NOTIFIERS: Final[Mapping[str, type[Notifier]]] = MappingProxyType(
    {kind: channel.notifier for kind, channel in CHANNEL_TYPES.items()}
)
CHANNEL_CONFIGS: Final[Mapping[str, type[ChannelConfig]]] = MappingProxyType(
    {kind: channel.config for kind, channel in CHANNEL_TYPES.items()}
)

__all__ = [
    "CHANNEL_CONFIGS",
    "CHANNEL_TYPES",
    "NOTIFIERS",
    "ChannelType",
    "EmailConfig",
    "Message",
    "Notifier",
    "SlackConfig",
    "WebhookConfig",
    "build_notifiers",
    "channel_secrets",
]


def build_notifiers(
    settings: Settings, *, smtp_ssl_context: ssl.SSLContext | None = None
) -> dict[str, Notifier]:
    """One notifier per kind, configured from settings. The caller closes each with
    `aclose()` (the HTTP notifiers own their client). Deadlines: EARNWATCH_DELIVERY_TIMEOUT
    for the HTTP channels, SMTP_TIMEOUT for email."""
    context = NotifierContext(
        settings=settings,
        guard=TargetGuard(
            allow_private=settings.allow_private_targets,
            allowed_hosts=settings.allowed_host_names,
        ),
        timeout=settings.http_timeout.total_seconds(),
        deadline=settings.delivery_timeout.total_seconds(),
        smtp_ssl_context=smtp_ssl_context,
    )
    return {kind: channel.build(context) for kind, channel in CHANNEL_TYPES.items()}


def channel_secrets(kind: str, config: BaseModel) -> list[str]:
    """The secret values of one channel's options, as its type declares them."""
    channel = CHANNEL_TYPES.get(kind)
    if channel is None or not isinstance(config, ChannelConfig):
        return []
    return list(channel.secrets(config))
