"""The SSRF guard as a rule-file check: `earnwatch check` and every reload refuse a
channel URL that resolves to a refused address, at the line of the field that holds it.
Which fields are URLs each channel type declares itself (`ChannelType.url_fields`)."""

from __future__ import annotations

from pydantic import BaseModel

from service.config import Settings
from service.errors import UnsafeTargetError
from service.httpclient import check_target
from service.notify import CHANNEL_TYPES
from service.notify.base import ChannelConfig
from service.rules import ChannelCheck


def channel_check(settings: Settings) -> ChannelCheck:
    def check(kind: str, config: BaseModel) -> list[tuple[str, str]]:
        channel = CHANNEL_TYPES.get(kind)
        if channel is None or not isinstance(config, ChannelConfig):
            return []
        problems = []
        for field, url in channel.urls(config):
            try:
                check_target(
                    url,
                    allow_private=settings.allow_private_targets,
                    allowed_hosts=settings.allowed_host_names,
                )
            except UnsafeTargetError as exc:
                problems.append((field, str(exc)))
        return problems

    return check
