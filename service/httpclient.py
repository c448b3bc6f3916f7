"""The one place httpx clients are built: timeouts, limits, User-Agent, and `redact_url()`.

Never log a request URL or `str()` of an httpx error (both may embed a key): log
`redact_url(url)` instead.
"""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from service import __version__

USER_AGENT: Final = f"earnwatch/{__version__} (+https://github.com/earnwatch/earnwatch)"
_SECRET_PARAMS: Final = re.compile(
    r"(token|key|apikey|api_key|secret|password|sig|signature)", re.I
)


def build_client(
    *, timeout: float = 10.0, headers: dict[str, str] | None = None, **kwargs: Any
) -> httpx.AsyncClient:
    """An AsyncClient with our defaults: bounded timeouts and pool, no redirects followed."""
    merged = {"User-Agent": USER_AGENT, **(headers or {})}
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        headers=merged,
        follow_redirects=False,
        **kwargs,
    )


def redact_url(url: str | httpx.URL) -> str:
    """The URL with its path and secret-looking query values masked: scheme and host stay,
    so a log still says where, never with what key (Slack webhook paths are secrets)."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    path = "/***" if parts.path not in ("", "/") else parts.path
    query = urlencode(
        [(k, "***" if _SECRET_PARAMS.search(k) else v) for k, v in parse_qsl(parts.query)]
    )
    return urlunsplit((parts.scheme, host, path, query, ""))
