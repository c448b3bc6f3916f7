"""One HTTP POST attempt for the HTTP channels, with every failure turned into a
DeliveryError whose message names the host but never the URL's path, query or a secret.

Transport failures (refused, reset, timeout) are retryable; a target the SSRF guard
refuses, or a URL httpx cannot use, is permanent. Status codes are classified by the
caller (`classify_status`, or Slack's own rules).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from service.errors import DeliveryError, UnsafeTargetError
from service.httpclient import redact_url
from service.notify.base import ChannelConfig

C = TypeVar("C", bound=ChannelConfig)

#: How much of a receiver's reply body is kept in an error (the attempt record).
DETAIL_CHARS = 300


async def post(
    client: httpx.AsyncClient, url: str, content: bytes, headers: Mapping[str, str]
) -> httpx.Response:
    """POST once and read the reply; raise DeliveryError on any transport failure."""
    where = redact_url(url)
    try:
        return await client.post(url, content=content, headers=dict(headers))
    except UnsafeTargetError as exc:
        raise DeliveryError(f"{where}: {exc}", permanent=True) from None
    except httpx.TimeoutException as exc:
        raise DeliveryError(f"{where}: timed out ({type(exc).__name__})", permanent=False) from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise DeliveryError(
            f"{where}: unusable URL ({type(exc).__name__})", permanent=True
        ) from None
    except httpx.TransportError as exc:
        raise DeliveryError(f"{where}: {type(exc).__name__}", permanent=False) from exc


def detail(response: httpx.Response) -> str:
    """The reply body as one short line, for the attempt record."""
    text = " ".join(response.text.split())
    return text[:DETAIL_CHARS] + ("…" if len(text) > DETAIL_CHARS else "")


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
