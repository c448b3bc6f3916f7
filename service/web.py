"""The daemon's HTTP side on EARNWATCH_HTTP: `/healthz`, `/metrics` and the status page.

Promises: GET and HEAD on `/healthz` (200 `ok` or `ok (degraded: ...)`, or 503 with the
reason) and `/metrics` (Prometheus text); with a status source, the status page `/`
(HTML) and `/api/status` (the same data as JSON), and `/login?token=`; 404 for other
paths, 405 for other methods, 400 for a request that is not HTTP/1.x; one request per
connection, closed after the response (`Connection: close`); a client that sends no
complete request within READ_TIMEOUT is dropped; a failing health callable, status source
or render is answered with an error and never raises into the daemon.

Access (`token`, from EARNWATCH_HTTP_TOKEN): with a token, `/`, `/api/*` and `/metrics`
need `Authorization: Bearer <token>` or the session cookie `/login?token=` sets; `/healthz`
stays open. Tokens are compared in constant time and never logged (the access log is off).
`refusal()` is the one line for a non-loopback address without a token.

The server is Starlette served by uvicorn in the daemon's own loop (`service/webapp.py`),
imported only when `start_web` is called: the CLI never loads the web stack.
`HealthState` (service/health.py) is the pure part behind `/healthz`, `status.py` the one
behind the page.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from service.metrics import Metrics

READ_TIMEOUT: Final = 5.0
MAX_REQUEST_LINE: Final = 8192

HealthCheck = Callable[[], tuple[bool, str]]
StatusSource = Callable[[], Awaitable[dict[str, Any]]]
#: `/api/history`'s source: (limit, rule, status) -> the alerts as `history --json` has them.
HistorySource = Callable[[int, str | None, str | None], Awaitable[list[dict[str, Any]]]]


class WebServer(Protocol):
    """A running server; `aclose()` stops it and drops its clients (idempotent)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    async def aclose(self) -> None: ...
    async def __aenter__(self) -> WebServer: ...
    async def __aexit__(self, *exc: object) -> None: ...


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`; False for 0.0.0.0, ::, any other
    address and any other name."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def refusal(host: str, token: str | None) -> str | None:
    """The one line refusing to listen on a non-loopback `host` without a token, or None."""
    if token or is_loopback(host):
        return None
    shown = f"[{host}]" if ":" in host else host
    return (
        f"EARNWATCH_HTTP listens on {shown}, not a loopback address: set "
        "EARNWATCH_HTTP_TOKEN (the status page shows rule names, symbols and channels)"
    )


async def start_web(
    host: str,
    port: int,
    health: HealthCheck,
    metrics: Metrics,
    *,
    status: StatusSource | None = None,
    history: HistorySource | None = None,
    token: str | None = None,
) -> WebServer:
    """Listen on `host:port` (port 0 picks a free one; see `WebServer.port`) and answer in
    the background. Without `status` only `/healthz` and `/metrics` are served, and
    `/api/history` only with `history`. Raises OSError only when the address cannot be
    bound."""
    from service.webapp import serve

    return await serve(
        host, port, health, metrics, status=status, history=history, token=token or None
    )
