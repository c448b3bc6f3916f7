"""The daemon's HTTP side: `/healthz` and `/metrics`, on plain `asyncio.start_server`.

Promises: GET and HEAD on `/healthz` (200 `ok` or `ok (degraded: ...)`, or 503 with the
reason) and `/metrics`
(Prometheus text); 404 for other paths, 405 for other methods, 400 for a request that is
not HTTP/1.x; one request per connection, closed after the response; a slow or broken
client, a failing health callable or a failing render is answered or dropped and never
raises into the daemon. No framework, no thread.

`HealthState` (service/health.py) is the pure part behind `/healthz`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Final

from service.health import MAX_REASON
from service.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from service.metrics import Metrics

log = logging.getLogger(__name__)

READ_TIMEOUT: Final = 5.0
MAX_REQUEST_LINE: Final = 8192
MAX_HEADER_LINES: Final = 100

TEXT: Final = "text/plain; charset=utf-8"

HealthCheck = Callable[[], tuple[bool, str]]


class _BadRequest(Exception):
    """The bytes received are not an HTTP/1.x request we can answer."""


class WebServer:
    """A running `/healthz` + `/metrics` server; `aclose()` stops it and drops clients."""

    def __init__(self, health: HealthCheck, metrics: Metrics) -> None:
        self._health = health
        self._metrics = metrics
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    @property
    def host(self) -> str:
        """The address actually bound."""
        return str(self._sockname()[0])

    @property
    def port(self) -> int:
        """The port actually bound (useful after asking for port 0)."""
        port = self._sockname()[1]
        assert isinstance(port, int)
        return port

    def _sockname(self) -> tuple[object, ...]:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the web server is not listening")
        name: tuple[object, ...] = tuple(self._server.sockets[0].getsockname())
        return name

    async def _start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_REQUEST_LINE)

    async def aclose(self) -> None:
        """Stop listening, end open connections, and wait until done. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> WebServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            try:
                method, path = await asyncio.wait_for(_read_request(reader), READ_TIMEOUT)
            except _BadRequest:
                status, ctype, body, method = HTTPStatus.BAD_REQUEST, TEXT, b"bad request\n", ""
            else:
                status, ctype, body = self._route(method, path)
            writer.write(_response(status, ctype, body, head=method == "HEAD"))
            await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
        except (TimeoutError, ConnectionError, OSError):
            pass  # a client that is slow or gone gets no answer
        except Exception:
            log.exception("web: unexpected error while answering a request")
        finally:
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()
            if task is not None:
                self._clients.discard(task)

    def _route(self, method: str, path: str) -> tuple[HTTPStatus, str, bytes]:
        if path not in ("/healthz", "/metrics"):
            return HTTPStatus.NOT_FOUND, TEXT, b"not found\n"
        if method not in ("GET", "HEAD"):
            return HTTPStatus.METHOD_NOT_ALLOWED, TEXT, b"method not allowed\n"
        if path == "/metrics":
            try:
                return HTTPStatus.OK, METRICS_CONTENT_TYPE, self._metrics.render()
            except Exception:
                log.exception("web: rendering /metrics failed")
                return HTTPStatus.INTERNAL_SERVER_ERROR, TEXT, b"metrics unavailable\n"
        try:
            healthy, reason = self._health()
        except Exception:
            log.exception("web: the health check raised")
            healthy, reason = False, "health check failed"
        if healthy:  # "ok", or "ok (degraded: ...)" while REST covers for the stream
            shown = reason if reason.startswith("ok (") else "ok"
            return HTTPStatus.OK, TEXT, (shown[:MAX_REASON] + "\n").encode("utf-8")
        text = " ".join(reason.split())[:MAX_REASON] or "unhealthy"
        return HTTPStatus.SERVICE_UNAVAILABLE, TEXT, (text + "\n").encode("utf-8")


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    """(method, path without query) of one request; headers are read and ignored."""
    try:
        line = await reader.readline()
        parts = line.decode("ascii").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest
        method, target = parts[0], parts[1]
        if not method.isalpha() or not method.isupper() or not target.startswith("/"):
            raise _BadRequest
        for _ in range(MAX_HEADER_LINES):
            header = await reader.readline()
            if header in (b"\r\n", b"\n"):
                return method, target.split("?", 1)[0].split("#", 1)[0]
            if not header.endswith(b"\n"):
                raise _BadRequest  # the client closed mid-request
    except (UnicodeDecodeError, ValueError, asyncio.LimitOverrunError) as exc:
        raise _BadRequest from exc
    raise _BadRequest  # too many header lines


def _response(status: HTTPStatus, content_type: str, body: bytes, *, head: bool) -> bytes:
    headers = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n"
    )
    if status is HTTPStatus.METHOD_NOT_ALLOWED:
        headers += "Allow: GET, HEAD\r\n"
    return (headers + "\r\n").encode("ascii") + (b"" if head else body)


async def start_web(host: str, port: int, health: HealthCheck, metrics: Metrics) -> WebServer:
    """Listen on `host:port` (port 0 picks a free one; see `WebServer.port`) and answer in
    the background. Raises OSError only when the address cannot be bound."""
    server = WebServer(health, metrics)
    await server._start(host, port)
    log.info("web: listening on %s:%d (/healthz, /metrics)", server.host, server.port)
    return server
