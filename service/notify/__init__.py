"""Notification channels: one module per channel type, each ending in its `CHANNEL`
declaration (`service/notify/plugin.py`), and the registry of those.

`CHANNEL_MODULES` is the registry's one list: a new channel type is its module plus one
line there. `CHANNEL_TYPES` imports a type's module with its first lookup
(`service/plugins.py`): `check` loads the channel types its rule file names (a daemon, by
building a notifier of each kind, all of them).
`CHANNEL_CONFIGS` is what the rule loader validates each `channels.<name>` entry against
(by its `type:`); `build_notifiers(settings)` makes one notifier per kind, the HTTP ones
each with one shared client behind the SSRF guard.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from pydantic import BaseModel

from service.config import Settings
from service.httpclient import TargetGuard
from service.notify.base import ChannelConfig, Message, Notifier
from service.notify.plugin import ChannelType, NotifierContext, registry
from service.plugins import Plugins

if TYPE_CHECKING:  # ssl loads with a client or a mail, not with the registry
    import ssl

    from service.notify.email import EmailConfig
    from service.notify.slack import SlackConfig
    from service.notify.webhook import WebhookConfig

#: Every channel type by its `type:` name, in this order, and where its declaration is.
CHANNEL_MODULES: Final[Mapping[str, str]] = {
    "webhook": "service.notify.webhook:CHANNEL",
    "slack": "service.notify.slack:CHANNEL",
    "email": "service.notify.email:CHANNEL",
    "telegram": "service.notify.telegram:CHANNEL",
    "discord": "service.notify.discord:CHANNEL",
    "ntfy": "service.notify.ntfy:CHANNEL",
}


def _checked(kind: str, channel: ChannelType) -> None:
    """Raises TypeError for an unsound declaration, or one of another kind than its name."""
    registry(channel)
    if channel.kind != kind:
        raise TypeError(f"channel type {kind!r}: its module declares {channel.kind!r}")


CHANNEL_TYPES: Final[Plugins[ChannelType]] = Plugins(CHANNEL_MODULES, ChannelType, _checked)
NOTIFIERS: Final[Mapping[str, type[Notifier]]] = CHANNEL_TYPES.view(lambda c: c.notifier)
CHANNEL_CONFIGS: Final[Mapping[str, type[ChannelConfig]]] = CHANNEL_TYPES.view(lambda c: c.config)

#: The config models this package names (`from service.notify import WebhookConfig`),
#: read from the registry when asked for.
_CONFIGS: Final = {"EmailConfig": "email", "SlackConfig": "slack", "WebhookConfig": "webhook"}


def __getattr__(name: str) -> type[ChannelConfig]:
    kind = _CONFIGS.get(name)
    if kind is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return CHANNEL_CONFIGS[kind]


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
    """One notifier per kind, configured from settings (so every channel module is
    imported here: the worker's lease covers every kind's deadline, and a reload may name
    any kind). The caller closes each with `aclose()` (the HTTP notifiers own their
    client). Deadlines: EARNWATCH_DELIVERY_TIMEOUT for the HTTP channels, SMTP_TIMEOUT for
    email."""
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
