"""One GET to a vendor, with every transport fault mapped to a ProviderError.

`fetch()` waits for the provider's limiter, sends the request, maps timeouts, network
errors, 429 (pausing the limiter for Retry-After: seconds or an HTTP-date, read by
`service.retry_after` like a notifier's) and 5xx, caps the body size, and hands back the
status and body of every other answer for the vendor module to judge. Messages
name the provider and the endpoint path, never a URL (it may hold a key) and never
`str()` of an httpx error.

Every call has a total deadline (the client's timeout, i.e. EARNWATCH_HTTP_TIMEOUT) over
the whole exchange, headers and body: httpx's timeouts are per read, so a server dripping
one byte a second would otherwise hold a poll for as long as it likes. A missed deadline is
ProviderUnavailable (retryable) and logged. A body that cannot be decoded (a non-text
charset, bytes its codec rejects, JSON nested too deep) is ProviderDataError, like any
other malformed answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from service.errors import (
    ProviderAuthError,
    ProviderDataError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from service.httpclient import read_at_most, redact_url
from service.providers.limiter import RateLimiter
from service.retry_after import retry_after

if TYPE_CHECKING:  # httpx loads with the client (build_client), not with the registry
    import httpx

log = logging.getLogger(__name__)

#: A body larger than this is refused as malformed rather than read into memory.
MAX_BODY: Final = 8 * 1024 * 1024
#: The deadline of a call on a client without any timeout (never the case for a provider).
DEFAULT_DEADLINE: Final = 30.0

Params = Mapping[str, str] | Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Answer:
    """A response the transport layer did not reject: status and body text."""

    status: int
    text: str

    def json(self, provider: str, endpoint: str) -> object:
        """The body as JSON; ProviderDataError when it is not, or holds NaN/Infinity."""
        try:
            return json.loads(self.text, parse_constant=_no_constant)
        except ValueError as exc:
            raise ProviderDataError(provider, f"{endpoint} returned a body not JSON") from exc
        except RecursionError as exc:  # `[[[[...]]]]` deeper than the interpreter's stack
            raise ProviderDataError(provider, f"{endpoint} returned JSON nested too deep") from exc


def _no_constant(name: str) -> object:
    # json.loads accepts NaN and Infinity by default; a vendor that sends them sent no number.
    return None


def auth_error(provider: str, status: int, variable: str) -> ProviderAuthError:
    """The one clear message for a refused key."""
    return ProviderAuthError(
        provider, f"the API key was refused (HTTP {status}); set {variable} to a valid key"
    )


async def fetch(
    client: httpx.AsyncClient,
    limiter: RateLimiter,
    provider: str,
    endpoint: str,
    params: Params,
    *,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """GET `endpoint` (a path below the client's base URL) with `params`, within the
    client's timeout as a total deadline (the wait for the limiter is not counted)."""
    import asyncio

    import httpx

    await limiter.acquire()
    limit = deadline(client)
    try:
        async with asyncio.timeout(limit):
            async with client.stream(
                "GET", endpoint, params=httpx.QueryParams(list(_pairs(params))), headers=headers
            ) as response:
                body, cut = await read_at_most(response.aiter_bytes(), MAX_BODY)
                if cut:
                    raise ProviderDataError(provider, f"{endpoint} returned more than 8 MB")
    except httpx.TimeoutException as exc:
        raise ProviderUnavailable(provider, f"{endpoint} timed out") from exc
    except httpx.TransportError as exc:
        raise ProviderUnavailable(provider, f"{endpoint}: {type(exc).__name__}") from exc
    except httpx.InvalidURL as exc:
        raise ProviderUnavailable(provider, f"{endpoint}: invalid URL") from exc
    except TimeoutError as exc:
        log.warning(
            "%s: %s gave no complete answer within %g s; given up", provider, endpoint, limit
        )
        raise ProviderUnavailable(
            provider, f"{endpoint} gave no complete answer within {limit:g} s"
        ) from exc
    status = response.status_code
    log.debug("%s GET %s -> %d", provider, redact_url(response.request.url), status)
    if status == 429:
        wait = retry_after(response.headers)
        applied = limiter.pause(wait)
        raise ProviderRateLimited(
            provider, f"{endpoint} answered HTTP 429; pausing {applied:.0f} s", retry_after=applied
        )
    if status >= 500:
        if (wait := retry_after(response.headers)) is not None:
            limiter.pause(wait)
        raise ProviderUnavailable(provider, f"{endpoint} answered HTTP {status}")
    return Answer(status, _decode(body, response, provider, endpoint))


def deadline(client: httpx.AsyncClient) -> float:
    """The total time one call may take: the longest of the client's timeouts (they are
    all EARNWATCH_HTTP_TIMEOUT for a provider client), DEFAULT_DEADLINE when none is set."""
    timeout = client.timeout
    parts = [t for t in (timeout.connect, timeout.read, timeout.write, timeout.pool) if t]
    return max(parts) if parts else DEFAULT_DEADLINE


def _decode(raw: bytes, response: httpx.Response, provider: str, endpoint: str) -> str:
    charset = response.encoding or "utf-8"
    try:
        return raw.decode(charset, errors="replace")
    except (LookupError, UnicodeError, ValueError, TypeError) as exc:
        # `charset=hex` names a bytes-to-bytes codec (LookupError; httpx falls back to UTF-8
        # only for names no codec knows), and some codecs raise despite errors="replace".
        raise ProviderDataError(
            provider, f"{endpoint} returned a body in an unreadable charset {charset[:40]!r}"
        ) from exc


def _pairs(params: Params) -> Iterator[tuple[str, str | int | float | bool | None]]:
    yield from params.items() if isinstance(params, Mapping) else params
