"""The `slack` channel: a Slack incoming-webhook message with blocks and a plain-text
fallback, paced per webhook URL.

Outcomes follow Slack's documented replies: 200 with body `ok` is success; 429 is
retryable and honours `Retry-After`; 5xx (`rollup_error`) is retryable; any other reply
(`invalid_payload`, `no_service`, `channel_not_found`, a 200 that is not `ok`, ...) is
permanent, with Slack's body in the error. Pacing: at most one post per `interval` per
URL (Slack asks for about one a second); callers queue, nothing is dropped. A 429 also
holds that URL back for `Retry-After`. A send whose turn is further off than `max_wait`
is not held: it raises a retryable DeliveryError with `retry_after` set to the wait.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar, Final

from pydantic import SecretStr, field_validator

from service.errors import DeliveryError
from service.figures import shown_values
from service.notify.base import ChannelConfig, Message, is_permanent
from service.notify.http import detail, expect, http_url, post, url_destination
from service.notify.pacing import Pacer
from service.notify.plugin import ChannelType, NotifierContext
from service.retry_after import retry_after

if TYPE_CHECKING:  # h11 loads with the client (NotifierContext.http_client), not the registry
    from service.h11client import H11Client

TEXT_LIMIT: Final = 3000  # Slack's limit for a section's text
HEADER_LIMIT: Final = 150  # Slack's limit for a header block
MAX_FIELDS: Final = 10  # Slack's limit of fields in a section


class SlackConfig(ChannelConfig):
    """A `type: slack` channel: the incoming-webhook URL (a secret; never printed)."""

    url: SecretStr

    _url = field_validator("url")(http_url)


class SlackPacer(Pacer):
    """Per webhook URL: Slack asks for about one message a second."""

    what = "Slack URL"


def _mrkdwn(text: str) -> str:
    """Slack's escaping: only &, < and > are control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def payload(message: Message) -> dict[str, Any]:
    """The Slack message: header, the alert text, its values, and a plain `text` fallback
    (shown in notifications and by clients that cannot render blocks)."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut(message.title, HEADER_LIMIT)},
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _cut(_mrkdwn(message.text), TEXT_LIMIT)},
        },
    ]
    fields = [
        {"type": "mrkdwn", "text": _cut(f"*{_mrkdwn(name)}*\n{_mrkdwn(text)}", 2000)}
        for name, text in shown_values(message.values)
    ][:MAX_FIELDS]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    fired = message.fired_at.isoformat(timespec="seconds")
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"fired {fired} · earnwatch"}]}
    )
    return {"text": _cut(f"{message.title}: {message.text}", TEXT_LIMIT), "blocks": blocks}


class SlackNotifier:
    """One paced POST per send(). Owns its (guarded) client; close with aclose()."""

    kind: ClassVar[str] = "slack"
    Config: ClassVar[type[ChannelConfig]] = SlackConfig

    def __init__(
        self, client: H11Client, *, pacer: SlackPacer | None = None, deadline: float = 10.0
    ) -> None:
        """`pacer`'s `max_wait` should stay well under `deadline`: a turn further off is
        a retry at that time, not a send cut short by its deadline."""
        self._client = client
        self._pacer = pacer or SlackPacer(1.0, max_wait=deadline / 2)
        self.deadline = deadline

    def destination(self, config: ChannelConfig) -> str:
        return url_destination(expect(config, SlackConfig).url.get_secret_value())

    async def send(self, message: Message, config: ChannelConfig, *, delivery_id: str) -> None:
        """Return when Slack answers `ok`; raise DeliveryError otherwise."""
        cfg = expect(config, SlackConfig)
        url = cfg.url.get_secret_value()
        await self._pacer.turn(url)
        body = json.dumps(
            payload(message), ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
        response = await post(
            self._client, url, body.encode(), {"content-type": "application/json"}
        )
        status = response.status_code
        if status == 200 and response.text.strip() == "ok":
            return
        wait = retry_after(response.headers)  # seconds or an HTTP-date, capped
        if status == 429 or wait is not None:
            self._pacer.hold(url, wait if wait is not None else 1.0)
        permanent = is_permanent(status)
        raise DeliveryError(
            f"Slack HTTP {status}: {detail(response, cfg) or '(empty body)'}",
            permanent=permanent,
            retry_after=wait,
            status=status,
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def _build(context: NotifierContext) -> SlackNotifier:
    # A Slack turn further off than half the deadline is a retry then, not a cut send.
    interval = context.settings.slack_interval.total_seconds()
    pacer = SlackPacer(interval, max_wait=context.deadline / 2)
    return SlackNotifier(context.http_client(), pacer=pacer, deadline=context.deadline)


CHANNEL: Final = ChannelType(
    notifier=SlackNotifier,
    url_fields=frozenset({"url"}),
    secret_fields=frozenset({"url"}),
    build=_build,
    example={"url": "https://hooks.slack.com/services/T000/B000/EXAMPLESECRET"},
)
