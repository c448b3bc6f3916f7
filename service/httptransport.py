"""The httpx transports: the guarded one behind `build_client(guard=...)`
(`service/httpclient.py` has the policy it applies) and the key-adding one of FMP. Kept
apart so that the policy (`check_target`, `TargetGuard`) and the channel and provider
registries import without httpx and httpcore, which load with the first client."""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any, Final

import httpcore
import httpx
from pydantic import SecretStr

from service.errors import UnsafeTargetError
from service.httpclient import ResolveError, ResolveTimeout, TargetGuard, verified_context

LIMITS: Final = httpx.Limits(max_connections=20, max_keepalive_connections=10)


def ssl_context(verify: Any) -> ssl.SSLContext:
    """The context for `verify`: the shared one for True, else as httpx builds it."""
    if verify is True:
        return verified_context()
    return httpx.create_ssl_context(verify, trust_env=False)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves the host itself, checks every address,
    and connects to a checked address (TLS SNI and `Host` still carry the name)."""

    def __init__(self, guard: TargetGuard, inner: httpcore.AsyncNetworkBackend | None = None):
        self._guard = guard
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._guard.addresses(host, port, timeout)
        except ResolveTimeout as exc:
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except ResolveError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeTargetError("unix sockets are refused by the SSRF guard")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool whose connections go through the guard."""

    def __init__(self, guard: TargetGuard, *, verify: Any = True) -> None:
        context = ssl_context(verify)  # one, not one for httpx's pool and one for ours
        super().__init__(verify=context, limits=LIMITS, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=LIMITS.max_connections,
            max_keepalive_connections=LIMITS.max_keepalive_connections,
            keepalive_expiry=LIMITS.keepalive_expiry,
            network_backend=GuardedBackend(guard),
        )


class QueryKeyTransport(httpx.AsyncBaseTransport):
    """Adds `param=secret` to each request's query on its way to the network, for vendors
    that take a key only in the URL (FMP). The request the client holds, and that httpx
    logs at INFO ("HTTP Request: GET ..."), never carries the key."""

    def __init__(self, inner: httpx.AsyncBaseTransport, param: str, secret: SecretStr) -> None:
        self._inner = inner
        self._param = param
        self._secret = secret

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        keyed = httpx.Request(
            request.method,
            request.url.copy_set_param(self._param, self._secret.get_secret_value()),
            headers=request.headers,
            stream=request.stream,
            extensions=request.extensions,
        )
        return await self._inner.handle_async_request(keyed)

    async def aclose(self) -> None:
        await self._inner.aclose()
