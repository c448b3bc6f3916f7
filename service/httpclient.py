"""The one place httpx clients are built (the providers' and the heartbeat's): timeouts,
limits, User-Agent, `redact_url()`, the shared TLS context, and the guard against
server-side request forgery (SSRF) that the channels' client (service/h11client.py)
applies too.

Never log a request URL or `str()` of an httpx error (both may embed a key): log
`redact_url(url)` instead.

The SSRF guard classifies the addresses a host name *resolves to*, never the text of the
host (`0x7f000001`, `2130706433` and `127.1` all resolve to 127.0.0.1). `check_target()`
does it once, for `earnwatch check`; a client built with `build_client(guard=...)`, or an
`H11Client`, does it again at connect time on every address it resolves, then connects to
the checked address itself, so a DNS answer that changes between the two (rebinding)
cannot slip through.
Redirects are never followed, so a 3xx cannot lead anywhere either.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

from service import __version__
from service.errors import UnsafeTargetError

if TYPE_CHECKING:  # httpx, httpcore and anyio load with the first client: `check` needs none
    import ssl

    import httpx

USER_AGENT: Final = f"earnwatch/{__version__} (+https://github.com/earnwatch/earnwatch)"

#: Async resolver: (host, port) -> the IP addresses to try, in order.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
#: Blocking resolver, for `check_target()`.
SyncResolver = Callable[[str, int], Sequence[str]]

_IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
#: Names refused whatever they resolve to (cloud metadata, RFC 6761 localhost).
_METADATA_NAMES: Final = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data"}
)
_METADATA_IPS: Final = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_CGNAT: Final = _V4("100.64.0.0/10")
_NAT64: Final = (_V6("64:ff9b::/96"), _V6("64:ff9b:1::/48"))
_SITE_LOCAL: Final = _V6("fec0::/10")


def build_client(
    *,
    timeout: float = 10.0,
    headers: dict[str, str] | None = None,
    guard: TargetGuard | None = None,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An AsyncClient with our defaults: bounded timeouts and pool, no redirects followed.

    With `guard`, every connection is checked on the address actually connected to, and
    refused targets raise UnsafeTargetError. Such a client ignores `HTTP(S)_PROXY`
    (a proxy would be the address checked, not the target)."""
    import httpx

    from service.httptransport import LIMITS, GuardedTransport, ssl_context

    merged = {"User-Agent": USER_AGENT, **(headers or {})}
    if guard is not None:
        kwargs["transport"] = GuardedTransport(guard, verify=kwargs.pop("verify", True))
    elif "transport" not in kwargs:
        kwargs["verify"] = ssl_context(kwargs.get("verify", True))  # the shared CA bundle
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        limits=LIMITS,
        headers=merged,
        follow_redirects=False,
        **kwargs,
    )


async def read_at_most(chunks: AsyncIterator[bytes], limit: int) -> tuple[bytes, bool]:
    """The first `limit` bytes of a streamed body, and whether more was sent; reads one
    byte past the limit at the most, so a huge reply is never held in memory (leaving the
    response's block then closes the connection on the rest)."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk[: limit + 1 - len(body)]
        if len(body) > limit:
            break
    return bytes(body[:limit]), len(body) > limit


def redact_url(url: str | httpx.URL) -> str:
    """`scheme://host[:port]`, then `/***` when the URL has a path or a query: a log or an
    error still says where, never with what key. The whole path and query go, not only
    parameters with secret-looking names: Slack webhook paths are secrets, and so is an
    Azure Functions `?code=`."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    path = "/***" if parts.path not in ("", "/") or parts.query else parts.path
    return urlunsplit((parts.scheme, host, path, "", ""))


class ResolveError(Exception):
    """The connect-time guard could not resolve a host name (no httpcore needed)."""


class ResolveTimeout(ResolveError):
    """Resolving a host name took longer than the connect timeout."""


@cache
def verified_context() -> ssl.SSLContext:
    """The one verifying TLS context (certifi's CA bundle, loaded once: about 1 MiB per
    context) that every client with the default `verify=True` shares, httpx's and the
    channels' alike; an SSLContext is made to be shared between connections. Built as
    httpx builds it (`ssl.create_default_context(cafile=certifi.where())`), without
    importing httpx."""
    import ssl

    import certifi

    return ssl.create_default_context(cafile=certifi.where())


# --- address policy --------------------------------------------------------------------


def refusal_reason(address: str, *, allow_private: bool) -> str | None:
    """Why connecting to this IP address is refused, or None when it is allowed.

    `allow_private` admits loopback, RFC 1918, CGNAT and IPv6 unique-local addresses.
    Link-local (which holds cloud metadata), unspecified, multicast and reserved
    addresses stay refused: only `allowed_hosts` admits those."""
    ip: _IP = ipaddress.ip_address(address.split("%", 1)[0])
    ip = _embedded_ipv4(ip) or ip
    if ip in _METADATA_IPS or ip.is_link_local:
        return "link-local (cloud metadata)"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        reason = "loopback"
    elif ip.is_multicast or ip.is_reserved:
        return "multicast or reserved"
    elif isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        reason = "shared address space (CGNAT)"
    elif ip.is_private or (isinstance(ip, ipaddress.IPv6Address) and ip in _SITE_LOCAL):
        reason = "private"
    elif not ip.is_global:
        reason = "not globally routable"
    else:
        return None
    return None if allow_private else reason


def _embedded_ipv4(ip: _IP) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, -compatible, 6to4 or NAT64 IPv6 address."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    as_int = int(ip)
    if any(ip in net for net in _NAT64) or (as_int >> 32 == 0 and as_int > 1):
        return ipaddress.IPv4Address(as_int & 0xFFFFFFFF)
    return None


def _normal_host(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


def _name_reason(host: str, *, allow_private: bool) -> str | None:
    if host in _METADATA_NAMES:
        return "cloud metadata name"
    if host == "localhost" or host.endswith(".localhost"):
        return None if allow_private else "loopback name"
    return None


def _refuse(where: str, host: str, what: str, *, always: bool) -> UnsafeTargetError:
    hint = "" if always else "set EARNWATCH_ALLOW_PRIVATE_TARGETS=true or "
    return UnsafeTargetError(
        f"{where}: refused target {host!r}: {what}; {hint}list the host in "
        "EARNWATCH_ALLOWED_HOSTS to allow it"
    )


def _check_addresses(
    where: str, host: str, addresses: Iterable[str], *, allow_private: bool
) -> list[str]:
    checked = []
    for address in addresses:
        reason = refusal_reason(address, allow_private=allow_private)
        if reason is not None:
            always = refusal_reason(address, allow_private=True) is not None
            raise _refuse(where, host, f"resolves to {address} ({reason})", always=always)
        checked.append(address)
    return checked


def _system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def _system_resolve_async(host: str, port: int) -> list[str]:
    import asyncio

    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_target(
    url: str,
    *,
    allow_private: bool,
    allowed_hosts: frozenset[str],
    resolve: SyncResolver | None = None,
) -> None:
    """Raise UnsafeTargetError (naming the host, never the path) if `url` is not an
    http(s) URL or its host resolves to a refused address. A name that does not resolve
    now passes: it cannot be judged here, and the connect-time check still applies."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        where = redact_url(url)
    except ValueError:
        raise UnsafeTargetError("not a valid URL (not shown: it may hold a secret)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTargetError(f"{where}: only http:// and https:// URLs are allowed")
    host = _normal_host(parts.hostname)
    if host in allowed_hosts:
        return
    reason = _name_reason(host, allow_private=allow_private)
    if reason is not None:
        raise _refuse(where, host, reason, always=reason.startswith("cloud"))
    try:
        addresses = (resolve or _system_resolve)(host, port)
    except (OSError, UnicodeError, ValueError):
        return
    _check_addresses(where, host, addresses, allow_private=allow_private)


# --- connect-time guard ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TargetGuard:
    """The SSRF policy a guarded client applies at connect time. `resolve` is injectable
    so tests can play a rebinding DNS server."""

    allow_private: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    resolve: Resolver = field(default=_system_resolve_async)

    async def addresses(self, host: str, port: int, timeout: float | None) -> list[str]:
        """The checked addresses to connect to, in order; raises UnsafeTargetError for a
        refused one, ResolveError (ResolveTimeout after `timeout` seconds) when the name
        does not resolve. Each client maps the last two to its own connect errors."""
        import asyncio

        host = _normal_host(host)
        where = f"connect to port {port}"
        if host not in self.allowed_hosts:
            reason = _name_reason(host, allow_private=self.allow_private)
            if reason is not None:
                raise _refuse(where, host, reason, always=reason.startswith("cloud"))
        try:
            async with asyncio.timeout(timeout):
                addresses = await self.resolve(host, port)
        except TimeoutError as exc:
            raise ResolveTimeout(f"resolving {host!r} timed out") from exc
        except (OSError, UnicodeError) as exc:
            raise ResolveError(f"cannot resolve {host!r}") from exc
        if not addresses:
            raise ResolveError(f"cannot resolve {host!r}")
        if host in self.allowed_hosts:
            return list(addresses)
        return _check_addresses(where, host, addresses, allow_private=self.allow_private)
