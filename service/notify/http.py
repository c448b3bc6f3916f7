"""One HTTP POST attempt for the HTTP channels, with every failure turned into a
DeliveryError whose message names the host but never the URL's path, query or a secret.

The channels send through `H11Client` (service/h11client.py: asyncio streams and h11,
behind the SSRF guard), not httpx. Transport failures (refused, reset, timeout) are
retryable; a target the SSRF guard refuses, or a URL the client cannot use, is permanent.
Status codes are classified by the caller (`classify_status`, or Slack's own rules). At
most `MAX_REPLY_BYTES` of a reply's body are read (asked for uncompressed, read raw): a
receiver cannot make us hold a large body, nor a compression bomb. The total deadline of
a send is the delivery worker's.

A receiver's reply may quote what we sent it (`Cannot POST /services/T000/B000/SECRET`):
`scrub()` takes the channel's secrets, and its URL's path and query, out of any text
before it goes into an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import SecretStr

from service.errors import DeliveryError, UnsafeTargetError
from service.httpclient import redact_url
from service.logs import SecretMask
from service.notify.base import ChannelConfig

if TYPE_CHECKING:  # h11 loads with the client (NotifierContext.http_client), not the registry
    from service.h11client import H11Client, Headers

C = TypeVar("C", bound=ChannelConfig)

#: How much of a receiver's reply body is kept in an error (the attempt record).
DETAIL_CHARS = 300
#: How much of a receiver's reply body is read at all; the rest is never received.
MAX_REPLY_BYTES: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class Reply:
    """A receiver's answer: status, headers and the first `MAX_REPLY_BYTES` of its body."""

    status_code: int
    headers: Headers  # read-only, looked up without regard to case
    body: bytes
    truncated: bool = False

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


async def post(
    client: H11Client,
    url: str,
    content: bytes,
    headers: Mapping[str, str],
    *,
    limit: int = MAX_REPLY_BYTES,
) -> Reply:
    """POST once and read at most `limit` bytes of the reply (asking for it uncompressed:
    the client sends `accept-encoding: identity`); raise DeliveryError on any transport
    failure."""
    from service.h11client import InvalidURL, TimeoutException, TransportError, UnsupportedProtocol

    try:
        status, reply_headers, body, truncated = await client.post(
            url, content, headers, limit=limit
        )
    except UnsafeTargetError as exc:
        raise DeliveryError(f"{redact_url(url)}: {exc}", permanent=True) from None
    except TimeoutException as exc:
        where = redact_url(url)
        raise DeliveryError(f"{where}: timed out ({type(exc).__name__})", permanent=False) from exc
    except (UnsupportedProtocol, InvalidURL) as exc:
        raise DeliveryError(
            f"{_where(url)}: unusable URL ({type(exc).__name__})", permanent=True
        ) from None
    except TransportError as exc:
        raise DeliveryError(f"{redact_url(url)}: {type(exc).__name__}", permanent=False) from exc
    return Reply(status, reply_headers, body, truncated)


def _where(url: str) -> str:
    try:
        return redact_url(url)
    except ValueError:
        return "(invalid URL)"


def url_destination(url: str) -> str:
    """`host:port` of an http(s) URL: the key of the per-host cap (an origin without the
    scheme: two servers on one address but different ports are two destinations)."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "(invalid URL)"
    host = (parts.hostname or "").lower()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def detail(response: Reply, config: ChannelConfig | None = None) -> str:
    """The reply body as one short line, for the attempt record, scrubbed of the
    channel's secrets when `config` is given."""
    text = " ".join(response.text.split())
    if config is not None:
        text = scrub(text, config)
    cut = len(text) > DETAIL_CHARS or response.truncated
    return text[:DETAIL_CHARS] + ("…" if cut else "")


def scrub(text: str, config: ChannelConfig) -> str:
    """`text` with every secret of the channel replaced by `***`: each secret value, and
    of a secret URL its path, its query and each query value (in their usual encodings)."""
    mask = SecretMask(_secret_parts(config.__dict__.values()))
    return mask.mask(text)


def _secret_parts(values: Iterable[object]) -> Iterator[str]:
    for value in values:
        if isinstance(value, Mapping):
            yield from _secret_parts(value.values())
        elif isinstance(value, SecretStr):
            secret = value.get_secret_value()
            yield secret
            yield from _url_parts(secret)


def _url_parts(value: str) -> Iterator[str]:
    try:
        parts = urlsplit(value)
    except ValueError:
        return
    if not parts.scheme or not parts.netloc:
        return
    if parts.path not in ("", "/"):
        yield parts.path
        yield unquote(parts.path)
        last = parts.path.rstrip("/").rsplit("/", 1)[-1]
        if len(last) >= 8:  # a token as the last segment, quoted alone
            yield last
    if parts.query:
        yield parts.query
        for _, query_value in parse_qsl(parts.query):
            yield query_value


def expect(config: ChannelConfig, kind: type[C]) -> C:
    """The config as this channel's own model; a mismatch is a programming error."""
    if not isinstance(config, kind):
        raise TypeError(f"expected {kind.__name__}, got {type(config).__name__}")
    return config


def http_url(value: SecretStr) -> SecretStr:
    """Validator for a channel URL: http(s) with a host. The message never quotes it."""
    try:
        parts = urlsplit(value.get_secret_value())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("must be a valid http:// or https:// URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if any(ch in value.get_secret_value() for ch in "\r\n\t "):
        raise ValueError("must not contain whitespace")
    return value
