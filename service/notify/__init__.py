"""Notification channels: one module per channel type, registered in NOTIFIERS.

`CHANNEL_CONFIGS` is what the rule loader validates each `channels.<name>` entry against
(by its `type:`); `build_notifiers(settings)` makes one notifier per kind, the HTTP ones
each with one shared client behind the SSRF guard.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from service.config import Settings
from service.httpclient import TargetGuard, build_client
from service.notify.base import ChannelConfig, Message, Notifier
from service.notify.email import EmailConfig, EmailNotifier, SmtpOptions
from service.notify.slack import SlackConfig, SlackNotifier, SlackPacer
from service.notify.webhook import WebhookConfig, WebhookNotifier

NOTIFIERS: Final[Mapping[str, type[Notifier]]] = MappingProxyType(
    {"webhook": WebhookNotifier, "slack": SlackNotifier, "email": EmailNotifier}
)
CHANNEL_CONFIGS: Final[Mapping[str, type[ChannelConfig]]] = MappingProxyType(
    {kind: cls.Config for kind, cls in NOTIFIERS.items()}
)

__all__ = [
    "CHANNEL_CONFIGS",
    "NOTIFIERS",
    "EmailConfig",
    "Message",
    "Notifier",
    "SlackConfig",
    "WebhookConfig",
    "build_notifiers",
]


def build_notifiers(
    settings: Settings, *, smtp_ssl_context: ssl.SSLContext | None = None
) -> dict[str, Notifier]:
    """One notifier per kind, configured from settings. The caller closes each with
    `aclose()` (the HTTP notifiers own their client). Deadlines: EARNWATCH_DELIVERY_TIMEOUT
    for webhook and Slack, SMTP_TIMEOUT for email."""
    guard = TargetGuard(
        allow_private=settings.allow_private_targets,
        allowed_hosts=settings.allowed_host_names,
    )
    timeout = settings.http_timeout.total_seconds()
    deadline = settings.delivery_timeout.total_seconds()
    # A Slack turn further off than half the deadline is a retry then, not a cut send.
    pacer = SlackPacer(settings.slack_interval.total_seconds(), max_wait=deadline / 2)
    return {
        "webhook": WebhookNotifier(build_client(timeout=timeout, guard=guard), deadline=deadline),
        "slack": SlackNotifier(
            build_client(timeout=timeout, guard=guard), pacer=pacer, deadline=deadline
        ),
        "email": EmailNotifier(SmtpOptions.from_settings(settings), ssl_context=smtp_ssl_context),
    }
