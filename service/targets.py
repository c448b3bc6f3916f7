"""The SSRF guard as a rule-file check: `earnwatch check` and every reload refuse a
webhook or Slack URL that resolves to a refused address, at the line of its `url`."""

from __future__ import annotations

from pydantic import BaseModel, SecretStr

from service.config import Settings
from service.errors import UnsafeTargetError
from service.httpclient import check_target
from service.rules import ChannelCheck

#: Channel kinds whose `url` Earnwatch connects to.
URL_KINDS = frozenset({"webhook", "slack"})


def channel_check(settings: Settings) -> ChannelCheck:
    def check(kind: str, config: BaseModel) -> list[tuple[str, str]]:
        url = getattr(config, "url", None)
        if kind not in URL_KINDS or url is None:
            return []
        text = url.get_secret_value() if isinstance(url, SecretStr) else str(url)
        try:
            check_target(
                text,
                allow_private=settings.allow_private_targets,
                allowed_hosts=settings.allowed_host_names,
            )
        except UnsafeTargetError as exc:
            return [("url", str(exc))]
        return []

    return check
